# `make run` and `make test` set everything up on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

# Some Linux distributions ship Python without ensurepip (Debian's python3-venv package). Then the virtual
# environment is made without pip, and pip's own wheel, fetched from PyPI and checked against PyPI's digest,
# installs itself.
define GET_PIP
import hashlib, json, os, subprocess, sys, tempfile, urllib.parse, urllib.request
index = "https://pypi.org/pypi/pip/json"
meta = json.load(urllib.request.urlopen(index, timeout=60))
wheel = next(f for f in meta["urls"] if f["packagetype"] == "bdist_wheel")
path = os.path.join(tempfile.mkdtemp(), wheel["filename"])
urllib.request.urlretrieve(urllib.parse.urljoin(index, wheel["url"]), path)
if hashlib.sha256(open(path, "rb").read()).hexdigest() != wheel["digests"]["sha256"]:
    sys.exit("the pip wheel downloaded from PyPI does not match its published digest")
subprocess.check_call([sys.argv[1], os.path.join(path, "pip"), "install", "--quiet", path])
endef
export GET_PIP

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + ")")'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		echo "This Python has no ensurepip: making $(VENV) without it and fetching pip from PyPI."; \
		$(PYTHON) -m venv --clear --without-pip $(VENV) && $(PYTHON) -c "$$GET_PIP" $(BIN)/python; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/sensing hub serve

test: $(STAMP)
	$(BIN)/ruff check hub cli tests bench
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.lorawan_airtime
	$(BIN)/python -m bench.firmware_memory

clean:
	rm -rf $(VENV) .pytest_cache
