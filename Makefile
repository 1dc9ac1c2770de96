# Two commands a new user needs: `make demo` and `make test`. Both build .venv on first use;
# the demo installs only the package and what it runs on, the tests add the dev, bench,
# server and dask extras. Each set has its own stamp, so either command works first on a
# fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.installed-runtime
TEST_STAMP    := $(VENV)/.installed-test

.PHONY: demo test test-floors bench lint clean setup templates docs dist

# a current pip: editable installs of a pyproject.toml project need pip >= 21.3
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# the extras include the runtime, so the demo's stamp is brought up to date too
$(TEST_STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,server,dask]"
	touch $@ $(RUNTIME_STAMP)

setup: $(TEST_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/xl-factorlasso demo

# tests_server runs in its own process: xlwings-server switches xlwings' decorators at import.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q tests_server

# The tests again on the lowest versions pyproject.toml admits (.ci/floors.txt), in a venv of
# their own. Deselected: the two checks that the committed templates equal a rebuild, whose
# pictures and licence text depend on matplotlib's and skfolio's versions; old releases'
# deprecation warnings are not ours to act on. tests_server is not run: the server extra asks
# for its own xlwings-server release (and the xlwings that needs).
FLOORS_VENV  := .venv-floors
FLOORS_STAMP := $(FLOORS_VENV)/.installed
$(FLOORS_STAMP): pyproject.toml setup.py .ci/floors.txt
	rm -rf $(FLOORS_VENV)
	$(PYTHON) -m venv $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOORS_VENV)/bin/python -m pip install --quiet --prefer-binary -c .ci/floors.txt -e ".[dev]"
	touch $@

test-floors: $(FLOORS_STAMP)
	$(FLOORS_VENV)/bin/python -m pytest -q -W ignore::DeprecationWarning \
	  --deselect tests/test_templates.py::test_rebuild_gives_the_committed_contents \
	  --deselect tests/test_templates.py::test_sp500_start_sheet_attributes_the_data_and_carries_skfolios_licence

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_maxdiv.py
	$(BIN)/python benchmarks/bench_udf.py
	$(BIN)/python benchmarks/bench_peers.py

# writes xl_factorlasso/templates/factorlasso_template*.xlsx/.xlsm (package data): one per add-in,
# with synthetic and with real sample data (skfolio's datasets: the dev extra)
templates: $(TEST_STAMP)
	$(BIN)/python workbook_template/build.py

# dist/xl_factorlasso-<version>-py3-none-any.whl, with the templates and the user guide; the
# package is not on PyPI: this wheel is what users install (docs/install.md). build/ is removed
# first because setuptools would otherwise pack files left there by an earlier build.
dist: | $(BIN)/python
	rm -rf build
	$(BIN)/python -m pip wheel --no-deps --wheel-dir dist .
	@ls dist/*.whl

# needs LibreOffice (soffice), poppler-utils (pdftoppm) and fonts-crosextra-carlito from apt
docs: $(TEST_STAMP)
	$(BIN)/python docs/render_screenshots.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check xl_factorlasso tests tests_server benchmarks examples workbook_template setup.py

clean:
	rm -rf $(VENV) $(FLOORS_VENV) build dist *.egg-info .pytest_cache
