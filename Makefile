# Two commands on a fresh machine: `make demo` and `make test`. Everything runs from the venv in .venv/.
# `make` alone (or `make help`) lists the targets: every `## target: description` line of this file.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
GPU_VENV := .venv-gpu

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast lint bench roofline validity clean slurm-up cluster-test
.PHONY: gpu-check gpu-prepare gpu-rehearse

## help: this list (the default goal: `make` alone installs and runs nothing)
help:
	@echo "usage: make <target>   (everything runs from the venv in $(VENV)/)"
	@awk '/^## [A-Za-z0-9_.-]+: / { s = substr($$0, 4); i = index(s, ": "); \
		printf "  %-18s %s\n", substr(s, 1, i - 1), substr(s, i + 2) }' $(MAKEFILE_LIST)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $(STAMP)

## setup: venv + released NVS-SQA weights and the LPIPS/DISTS weights (downloaded, sha256-verified, into checkpoints/)
setup: $(STAMP)
	$(PY) -m models.nvs_sqa.checkpoint
	$(PY) -m models.fullref.weights

## demo: score the two example sequences
demo: setup
	$(PY) app.py examples/

## test: lint + the whole test suite (parity with ../shared/reference included; starts the one-node SLURM first)
test: setup lint
	-.ci/slurm-up  # the cluster tests use it; where it cannot start they say so and run locally (CI: they fail)
	$(PY) -m pytest -q tests

## test-fast: lint + the tests marked neither parity nor slow (no weights download, no subprocesses)
test-fast: $(STAMP) lint
	$(PY) -m pytest -q -m "not parity and not slow" tests

## lint: ruff over the whole repository
lint: $(STAMP)
	$(VENV)/bin/ruff check .

## validity: calibration: where scores are stable, noise floor, blind spots, failure floors -> benchmarks/, limits files
validity: setup
	$(PY) -m benchmarks.validity_calibration --write-limits
	$(PY) -m benchmarks.failure_floors

## bench: the authors' code vs ours (exact; mixed/bf16 with native bf16) and app.py, interleaved -> benchmarks/scorer.{json,md}
bench: setup
	$(PY) -m benchmarks.scorer_bench

## roofline: per-convolution time in place vs this CPU's float32 peak; the floor and ceiling speed-up -> benchmarks/roofline.{json,md}
roofline: setup
	$(PY) -m benchmarks.roofline

.PHONY: bench-decode
## bench-decode: 960x768 JPEGs decoded into the scorer's batches by threads and processes (frames/s, the ceiling) -> benchmarks/decode.{json,md}
bench-decode: setup
	$(PY) -m benchmarks.decode_bench

## gpu-check: on the GPU machine, with its own python3: decoding ceiling, scorer, full-reference vs CPU, CrossScore fp16, train fp32/AMP/DDP/resume -> gpu.{json,md}
# No venv, no network there: .gpu/ (make gpu-prepare) brings what its image lacks; results into $GPU_CHECK_OUT, else
# benchmarks/. Without CUDA it prints one line and writes nothing (docs/performance.md, "GPU check").
gpu-check:
	PYTHONPATH=$(CURDIR)/.gpu/site python3 -m benchmarks.gpu_check --reference .gpu/reference

## gpu-prepare: build .gpu/ (packages the GPU image lacks, reference values) and show what travels against 64 MiB
gpu-prepare: setup
	$(PY) -m benchmarks.gpu_travel

## gpu-rehearse: the GPU check's code paths on this CPU, in a venv of the GPU image's packages + .gpu/ only (--strict)
# OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep (no code path changes); spinning took 4x the CPU on a busy 2-core
gpu-rehearse: gpu-prepare $(GPU_VENV)/.installed
	rm -rf runs/gpu-rehearse
	env -i PATH=/usr/bin:/bin HOME="$$HOME" PYTHONPATH=$(CURDIR)/.gpu/site PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE \
		$(GPU_VENV)/bin/python -m benchmarks.gpu_check --preset rehearse --reference .gpu/reference \
		--out runs/gpu-rehearse

# the rehearsal's interpreter: the GPU image's packages (benchmarks/gpu_image.txt), nothing of requirements.txt else
$(GPU_VENV)/.installed: benchmarks/gpu_image.txt requirements.txt | $(STAMP)
	rm -rf $(GPU_VENV)
	$(PYTHON) -m venv $(GPU_VENV)
	$(PY) -m benchmarks.gpu_travel --image-pins > $(GPU_VENV)/image-pins.txt
	$(GPU_VENV)/bin/python -m pip install -q -r $(GPU_VENV)/image-pins.txt
	touch $@

## slurm-up: install (Debian slurm-wlm + munge) and start a one-node SLURM for the cluster tests; reuses a running one
slurm-up:
	.ci/slurm-up

## cluster-test: the cluster tests only (preprocess arrays, scoring shards, requeued training) against that SLURM
cluster-test: setup slurm-up
	$(PY) -m pytest -q tests/cluster

## clean: remove the venv, caches, checkpoints/ and runs/ (everything `make setup` and the runs made)
clean:
	rm -rf $(VENV) $(GPU_VENV) .gpu .cache checkpoints runs .pytest_cache .ruff_cache

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
	$(PY) -m models.nvs_sqa.checkpoint --random-init runs/random-init --seed 0
	$(PY) evaluate.py --degrade --threads 1 --checkpoint runs/random-init --name degrade-random-init

# --------------------------------------------------------------------------------------------- preprocess.py
## preprocess-plan: the full nerfstudio render plan (every command + GPU-hour estimate), runs nothing
preprocess-plan: $(STAMP)
	$(PY) preprocess.py --dry-run --plan-json runs/preprocess-plan.json

## preprocess-check: parse every planned command with a real nerfstudio (NS_BIN=its bin/), runs no training
preprocess-check: $(STAMP)
	$(PY) preprocess.py --check-cli --ns-bin $(NS_BIN) --device cuda --download \
		--plan-json benchmarks/preprocess_cli_check.json

.PHONY: preprocess-plan preprocess-check

# --------------------------------------------------------------------------------------------- training (train.py)
.PHONY: demo-renders train-demo bench-train
DEMO_RUN := runs/train-demo

## demo-renders: the two example sequences laid out as a tiny training set (symlinks in the git-ignored renders/)
demo-renders: $(STAMP)
	$(PY) -m models.training.pairs --link-examples renders

## train-demo: cpu-smoke training on the examples (1-2 min on 2 CPU cores, ~3 min with scoring), then the degradation benchmark
train-demo: setup demo-renders
	if [ -f $(DEMO_RUN)/latest/train_state.pth ]; then $(PY) train.py --resume $(DEMO_RUN); \
	else $(PY) train.py --preset cpu-smoke --renders renders --name train-demo; fi
	rm -rf $(DEMO_RUN)/scored  # features of this run's checkpoint only (app.py refuses to mix checkpoints)
	$(PY) app.py --checkpoint $(DEMO_RUN)/latest --features-only --out $(DEMO_RUN)/scored examples/
	$(PY) evaluate.py --degrade --threads 1 --checkpoint $(DEMO_RUN)/latest --name train-demo-degrade

## bench-train: training throughput + step-time split (cpu-smoke and full presets) -> benchmarks/train-cpu.{json,md}
bench-train: setup demo-renders
	$(PY) -m benchmarks.train_bench --renders renders

# ------------------------------------------------------------------------------------------------ CrossScore
## crossscore-demo: re-make the committed offline CrossScore model from examples/ (no download; ~25 min on 2 CPU cores)
# data -> train (tiny backbone, with references) -> train the no-reference variant -> held-out test of both
# and of the constant map -> benchmarks/crossscore_demo.{json,md} and docs/crossscore_demo.png -> the model as one
# file, runs/crossscore-demo.pth (its sha256 printed: = CROSSSCORE_DEMO_SHA256 of examples/.crossscore-demo.pth).
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
	$(PY) -m benchmarks.crossscore_report --data $(CS_DATA)/heldout --checkpoint $(CS_CKPT) \
	    --noref runs/crossscore-tiny-noref/model --threads 1
	$(PY) -c "from models.crossscore.checkpoint import pack; print(pack('$(CS_CKPT)', 'runs/crossscore-demo.pth'))"

## crossscore-test: the CrossScore tests only
crossscore-test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/test_ssim.py tests/crossscore

# ------------------------------------------------------------------------------------------- full-reference metrics
.PHONY: bench-fullref

## bench-fullref: each full-reference metric beside its peer package (ms per 960x768 image, ratio), maps, presets -> benchmarks/fullref.{json,md}
bench-fullref: setup
	$(PY) -m benchmarks.fullref_bench

# --------------------------------------------------------------------------------------------- report.py
.PHONY: report-demo report-check bench-report report-validate
REPORT_DEMO := runs/report-demo

## report-demo: the two examples + a degraded copy as one scene -> runs/report-demo/report/index.html (about a minute)
report-demo: setup
	$(PY) -m benchmarks.report_scene --out $(REPORT_DEMO)/Giraffe --kind demo
	$(PY) report.py $(REPORT_DEMO)/Giraffe --out $(REPORT_DEMO)/report

## report-check: the demo report rendered in headless Chromium (installed by .ci/chromium-up) -> a checked screenshot
report-check: report-demo
	.ci/chromium-up
	$(PY) -m benchmarks.report_check --page $(REPORT_DEMO)/report/index.html --screenshot $(REPORT_DEMO)/screenshot.png

## bench-report: report.py's time for the demo and an 8-method x 200-frame scene with ground truth -> benchmarks/report.{json,md}
bench-report: setup
	$(PY) -m benchmarks.report_bench

## report-validate: the known-order bank: report.py's decisive claims checked against orders known by construction -> benchmarks/report_validate.{json,md}
report-validate: setup
	$(PY) -m benchmarks.report_validate
