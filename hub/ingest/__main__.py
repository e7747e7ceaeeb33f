"""`python -m hub.ingest`: run the standalone ingest workers (see hub.ingest.worker)."""

import sys

from hub.ingest.worker import main

sys.exit(main())
