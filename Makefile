# Two commands on a fresh machine: `make demo` and `make test`. Everything runs from the venv in .venv/.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

## setup: venv + released NVS-SQA weights (downloaded, sha256-verified, unpacked into checkpoints/)
setup: $(STAMP)
	$(PY) -m models.checkpoints

## demo: score the two example sequences
demo: setup
	$(PY) app.py examples/

## test: lint + the whole test suite (parity with ../shared/reference included)
test: setup lint
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

## bench: our engine vs the upstream wheel's own inference code -> benchmarks/scorer.{json,md}
bench: setup
	$(PY) -m models.bench

clean:
	rm -rf $(VENV) .cache checkpoints runs .pytest_cache .ruff_cache

# ------------------------------------------------------------------------------------------------ CrossScore
# crossscore-demo: the offline CrossScore model, trained on this CPU in minutes from examples/ (no download):
# data -> train (tiny backbone, with references) -> train the no-reference variant -> held-out test of both
# and of the constant map -> benchmarks/crossscore_demo.{json,md} and docs/crossscore_demo.png.
CS_DATA  ?= runs/crossscore-demo-data
CS_CKPT  ?= checkpoints/crossscore-tiny
CS_STEPS ?= 3000
CS_FLAGS ?= --backbone tiny --short-side 112 --crop 112 --batch-size 8 --steps $(CS_STEPS) --threads 1 \
            --device cpu --save-every 250 --fig-every 250 --log-every 25
.PHONY: crossscore-demo crossscore-test
crossscore-demo: $(STAMP)
	rm -rf runs/crossscore-tiny runs/crossscore-tiny-noref
	$(PY) crossscore.py demo-data --out $(CS_DATA)
	$(PY) crossscore.py train --data $(CS_DATA)/train --name crossscore-tiny $(CS_FLAGS) --out-checkpoint $(CS_CKPT)
	$(PY) crossscore.py train --data $(CS_DATA)/train --name crossscore-tiny-noref --n-ref 0 $(CS_FLAGS)
	$(PY) -m models.crossscore_report --data $(CS_DATA)/heldout --checkpoint $(CS_CKPT) \
	    --noref runs/crossscore-tiny-noref/model --threads 1

## crossscore-test: the CrossScore tests only
crossscore-test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/test_ssim.py tests/test_crossscore.py tests/test_crossscore_cli.py
