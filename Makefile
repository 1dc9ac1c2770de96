# Two commands a new user needs: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean setup templates docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,bench,server]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/xl-factorlasso demo

# tests_server runs in its own process: xlwings-server switches xlwings' decorators at import.
test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q tests_server

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_maxdiv.py
	$(BIN)/python benchmarks/bench_udf.py

templates: $(STAMP)
	$(BIN)/python workbook_template/build.py

# needs LibreOffice (soffice), poppler-utils (pdftoppm) and fonts-crosextra-carlito from apt
docs: $(STAMP)
	$(BIN)/python docs/render_screenshots.py

lint: $(STAMP)
	$(BIN)/ruff check xl_factorlasso tests tests_server benchmarks examples workbook_template

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
