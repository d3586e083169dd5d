# The two set-up commands of the README. Each creates .venv and installs what it needs when missing.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.fmcombo-installed

.PHONY: demo test install export clean-nbs readme docs bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, pinned: a looser pin lets pip fetch gigabytes of a newer CUDA build
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job with its defaults: plain fine-tuning against `combined` on the default backbone, tweets, 32 per class,
# seeds 0 and 1; prints the table and where the report is (fmcombo-compare/report.html). A rerun resumes.
demo: $(STAMP)
	$(VENV)/bin/fmcombo compare

# Everything CI runs
test: $(STAMP)
	$(PY) tools/check_unchanged.py -- $(VENV)/bin/nbdev-export
	$(PY) tools/check_unchanged.py -- $(VENV)/bin/nbdev-clean
	$(PY) tools/check_unchanged.py -- $(PY) tools/make_readme.py
	$(VENV)/bin/nbdev-test --n-workers 2
	$(PY) -m pytest tests/; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

export: $(STAMP)
	$(VENV)/bin/nbdev-clean && $(VENV)/bin/nbdev-export && $(PY) tools/make_readme.py

# Benchmarks (hours; never part of `make test`): few-shot quality against SetFit and the transformers Trainer, the cost of a training
# step and of prediction against a raw loop, the Trainer and a pipeline, and fmcombo's own overhead. QUICK=1: 2 seeds x 3 rows on
# the tiny backbone, in minutes. Results go to $(BENCH_OUT) (quality/, cost.json, cost.md); QUICK's to $(BENCH_OUT)/quick.
BENCH_OUT ?= benchmarks/results
BENCH_STAMP := $(VENV)/.fmcombo-bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[bench]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) benchmarks/quality.py --out $(BENCH_OUT)$(if $(QUICK),/quick)/quality $(if $(QUICK),--quick)
	$(PY) benchmarks/cost.py --out $(BENCH_OUT)$(if $(QUICK),/quick) $(if $(QUICK),--quick)
	$(if $(QUICK),,$(PY) benchmarks/overhead.py)

# The documentation site, offline, into _docs/: nbdev's processed notebooks, tools/build_site.py, Sphinx + myst-nb + furo with -W
DOCS_STAMP := $(VENV)/.fmcombo-docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) tools/build_site.py

# The tutorials: re-executed in place by tools/run_nb.py, real outputs kept, one at a time on 2 torch threads, then cleaned as
# CI expects. A tutorial not yet executed with clean outputs can wait in nbs/tutorials/_drafts/, which the site and nbdev-test skip.
.PHONY: tutorials
tutorials: $(STAMP)
	OMP_NUM_THREADS=2 $(PY) tools/run_nb.py $(wildcard nbs/tutorials/*.ipynb nbs/tutorials/_drafts/*.ipynb)
	$(VENV)/bin/nbdev-clean --fname nbs/tutorials
