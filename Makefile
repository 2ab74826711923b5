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
	$(PY) -m models.nvs_sqa.checkpoint

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
	$(PY) -m models.nvs_sqa.bench

clean:
	rm -rf $(VENV) .cache checkpoints runs .pytest_cache .ruff_cache

# --------------------------------------------------------------------------------------------- evaluate.py
.PHONY: eval degrade degrade-control

## eval: benchmark tables (SRCC/PLCC/KRCC/RMSE) on benchmark_bank/ -> runs/benchmark-v0.0.1/ (needs the bank's frames)
eval: setup
	$(PY) evaluate.py --splits 100

## degrade: graded-degradation benchmark of the released model on examples/ -> runs/degrade-v0.0.1/
degrade: setup
	$(PY) evaluate.py --degrade --threads 1

## degrade-control: the regressor-free degradation score of a seeded *untrained* encoder (the baseline to beat)
degrade-control: setup
	$(PY) -c "import json, torch; from pathlib import Path; from models.nvs_sqa import ModelConfig, SequenceModel; \
	torch.manual_seed(0); d = Path('runs/random-init'); d.mkdir(parents=True, exist_ok=True); \
	(d / 'config.json').write_text(json.dumps(ModelConfig().to_dict())); torch.save(SequenceModel().state_dict(), d / 'model.pth')"
	$(PY) evaluate.py --degrade --threads 1 --checkpoint runs/random-init --name degrade-random-init

# --------------------------------------------------------------------------------------------- preprocess.py
## preprocess-plan: the full nerfstudio render plan (every command + GPU-hour estimate), runs nothing
preprocess-plan: $(STAMP)
	$(PY) preprocess.py --dry-run --plan-json runs/preprocess-plan.json

## preprocess-check: parse every planned command with a real nerfstudio (NS_BIN=its bin/), runs no training
preprocess-check: $(STAMP)
	$(PY) preprocess.py --check-cli --ns-bin $(NS_BIN) --device cuda --include-skipped --download \
		--plan-json benchmarks/preprocess_cli_check.json

.PHONY: preprocess-plan preprocess-check

# --------------------------------------------------------------------------------------------- training (train.py)
.PHONY: demo-renders train-demo bench-train
DEMO_RUN := runs/train-demo

## demo-renders: the two example sequences laid out as a tiny training set (symlinks in the git-ignored renders/)
demo-renders: $(STAMP)
	$(PY) -c "from models.training.pairs import link_example_renders; link_example_renders('renders')"

## train-demo: cpu-smoke training on the examples (a few minutes on 2 CPU cores), then the degradation benchmark
train-demo: setup demo-renders
	if [ -f $(DEMO_RUN)/latest/train_state.pth ]; then $(PY) train.py --resume $(DEMO_RUN); \
	else $(PY) train.py --preset cpu-smoke --renders renders --name train-demo; fi
	$(PY) app.py --checkpoint $(DEMO_RUN)/latest --features-only --out $(DEMO_RUN)/scored examples/
	$(PY) evaluate.py --degrade --threads 1 --checkpoint $(DEMO_RUN)/latest --name train-demo-degrade

## bench-train: training throughput + step-time split (smoke and paper presets) -> benchmarks/train-cpu.{json,md}
bench-train: setup demo-renders
	$(PY) -m models.training.bench --renders renders

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
	$(PY) -m models.crossscore.report --data $(CS_DATA)/heldout --checkpoint $(CS_CKPT) \
	    --noref runs/crossscore-tiny-noref/model --threads 1

## crossscore-test: the CrossScore tests only
crossscore-test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/test_ssim.py tests/crossscore
