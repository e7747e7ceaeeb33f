"""The community hub: devices, consent, ingest, storage and open data."""
