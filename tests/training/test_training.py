"""train.py / models.training.loop / models.training.pairs on tiny renders made in code (CPU, seconds)."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import consts
from models.errors import InputError
from models.results import write_json
from models.training.config import TrainConfig, epoch_batches, make_config
from models.training.device_targets import batch_targets
from models.training.loop import train
from models.training.pairs import (
    NOISES,
    RECIPES,
    PairConfig,
    PairDataset,
    apply_noise,
    build_pair,
    sample_pair,
    scan_renders,
)

# One crop size and 2 frames: a single tensor shape, so oneDNN builds its kernels once per test process.
TINY_PAIRS = {"crop_min": 69, "crop_max": 69, "crop_margin": 4, "segment_pixels": 69 * 69 * 2}


def _frames(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Smooth random images drifting over time (a camera path)."""
    base = rng.random((h // 8 + 2, w // 8 + n + 2, 3))
    out = []
    for t in range(n):
        small = (base[:, t:t + w // 8 + 2] * 255).astype(np.uint8)
        out.append(np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR)))
    return np.stack(out)


def make_renders(root: Path, scenes: dict[str, int], n: int = 6, h: int = 80, w: int = 88, seed: int = 0) -> Path:
    """renders/<scene>__m<i>/00000.png: method i = the scene's frames with method-specific noise."""
    rng = np.random.default_rng(seed)
    for scene, n_methods in scenes.items():
        clean = _frames(rng, n, h, w)
        for m in range(n_methods):
            d = root / f"{scene}__m{m}"
            d.mkdir(parents=True)
            frames = np.clip(clean + rng.normal(0, 6 * m, clean.shape), 0, 255).astype(np.uint8)
            for i, f in enumerate(frames):
                Image.fromarray(f).save(d / f"{i:05d}.png")
    return root


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> Path:
    return make_renders(tmp_path_factory.mktemp("renders"), {"sceneA": 2, "sceneB": 3})


def tiny(tmp_path: Path, renders: Path, **kw) -> TrainConfig:
    base = dict(renders=str(renders), runs_dir=str(tmp_path), epochs=2, scene_repeats=2, batch_size=2, workers=0,
                val_pairs=0, weights=[1.0, 0.5, 0.2, 0.0, 0.0], pairs=dict(TINY_PAIRS), name="run")
    base.update(kw)
    return make_config("cpu-smoke", **base)


# --------------------------------------------------------------------------------------------- data
def test_scan_renders_errors(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        scan_renders(tmp_path / "nope")
    one = make_renders(tmp_path / "one", {"solo": 1})
    with pytest.raises(InputError, match=r"solo__m0: scene 'solo' has one method"):
        scan_renders(one)
    bad = make_renders(tmp_path / "bad", {"s": 2})
    (bad / "s__m1" / "00005.png").unlink()
    with pytest.raises(InputError, match=r"s__m1: 5 frames of 88x80, but s__m0 has 6"):
        scan_renders(bad)
    odd = make_renders(tmp_path / "odd", {"s": 2})
    (odd / "s__m1").rename(odd / "nounderscores")
    with pytest.raises(InputError, match="nounderscores: folder name must be <scene>__<method>"):
        scan_renders(odd)


def test_pair_sampling_follows_the_recipe(renders):
    scene = scan_renders(renders)[1]  # sceneB, 3 methods
    cfg = PairConfig(crop_min=20, crop_max=60, crop_margin=10, segment_pixels=30 * 30 * 4)
    for i in range(50):
        s = sample_pair(scene, cfg, np.random.default_rng(i))
        x, y, w, h = s.box
        assert s.m1 != s.m2 and 20 <= w <= 60 and 20 <= h <= 60 and x + w <= 88 and y + h <= 80
        assert w <= 88 - 10 and h <= 80 - 10
        assert s.length == min(6, max(2, 30 * 30 * 4 // (w * h)))
        assert 0.5 <= s.ratio <= 1 and len(s.replaced) == int(np.floor(s.ratio * s.length))
        assert 0 <= s.start <= 6 - s.length and all(0 <= n < 12 for n in s.noise)
    s1, s2 = build_pair(scene, s, cfg)
    assert s1.shape == s2.shape == (s.length, 3, h, w) and s1.dtype == torch.uint8


def test_pair_mixing_and_flips(renders):
    scene = scan_renders(renders)[0]
    cfg = PairConfig(crop_min=20, crop_max=20, crop_margin=0, noise=False)
    spec = sample_pair(scene, cfg, np.random.default_rng(3))
    spec.hflip, spec.vflip, spec.replaced = True, False, [0]
    s1, s2 = build_pair(scene, spec, cfg)
    x, y, w, h = spec.box
    raw1 = np.asarray(Image.open(scene.methods[spec.m1][spec.start]))[y:y + h, x:x + w][:, ::-1]
    raw2 = np.asarray(Image.open(scene.methods[spec.m2][spec.start]))[y:y + h, x:x + w][:, ::-1]
    assert np.array_equal(s1[0].permute(1, 2, 0).numpy(), raw1)
    assert np.array_equal(s2[0].permute(1, 2, 0).numpy(), raw2)  # position 0 replaced by m2
    assert torch.equal(s1[1:], s2[1:])  # the others kept


def test_noise_keys():
    frames = np.full((2, 16, 16, 3), 128, np.uint8)
    for key, name in enumerate(NOISES):
        out = apply_noise(frames, key, np.random.default_rng(0), (10, 75))
        assert out.dtype == np.uint8 and out.shape == frames.shape
        assert np.array_equal(out, frames) == (name in ("none", "jpeg"))  # a flat image survives JPEG
    g = apply_noise(frames, 0, np.random.default_rng(0), (10, 75)).astype(int) - 128
    assert np.abs(g).max() <= 2 and 0.05 < np.mean(g != 0) < 0.2  # σ = √0.1 on 0–255: |n| > 0.5 in ~11 %
    sp = apply_noise(frames, 1, np.random.default_rng(0), (10, 75))
    assert 0.02 < np.mean(sp != 128) < 0.06 and set(np.unique(sp)) == {0, 128, 255}


def test_dataset_pairs_do_not_depend_on_history(renders):
    scenes = scan_renders(renders)
    ds = PairDataset(scenes, PairConfig(**TINY_PAIRS), seed=1, per_epoch=4)
    a = ds[5]
    ds[2], ds[7]
    b = ds[5]
    assert torch.equal(a["seq1"], b["seq1"]) and torch.equal(a["seq2"], b["seq2"]) and a["spec"] == b["spec"]
    assert set(a) == {"seq1", "seq2", "spec", "timings"}  # no targets: the loop scores batches (batch_targets)
    t = batch_targets([a], ds.recipe, (True, True, True, False, False))[0].numpy()
    assert np.isnan(t[3]) and np.isnan(t[4]) and np.all(np.abs(t[:3]) <= 1)


def test_upstream_pairs_share_the_batch_crop_and_replace_all_or_nothing(tmp_path):
    scenes = scan_renders(make_renders(tmp_path, {"a": 3, "b": 2, "c": 2}, n=9, h=90, w=100))
    scenes[2].width, scenes[2].height = 96, 84  # a smaller scene bounds the crops of its batches (index only)
    cfg = PairConfig(crop_min=69, crop_max=95, segment_pixels=69 * 69 * 5, replace_min=0.5, replace_max=1.0)
    ds = PairDataset(scenes, cfg, seed=3, per_epoch=12, batch_size=3)
    cfg_t = TrainConfig(seed=3, batch_size=3)
    whole = ratios = 0.0
    for epoch in range(6):
        for batch in epoch_batches(cfg_t, 12, epoch):
            specs = [ds.spec(g) for g in batch]
            shapes = {(s.box[2], s.box[3], s.length) for s in specs}
            assert len(shapes) == 1  # one crop size and one segment length per batch
            w, h, length = shapes.pop()
            members = [scenes[(g % 12) % 3] for g in batch]
            assert w <= min(x.width for x in members) - 15 and h <= min(x.height for x in members) - 5
            assert length == min(9, 69 * 69 * 5 // (w * h))
            for s in specs:
                assert s.replaced in ([], list(range(length))) and s.recipe == "upstream" and s.m1 != s.m2
                whole += bool(s.replaced)
                ratios += np.floor(s.ratio * length) / length
    assert abs(whole - ratios) < 3 * np.sqrt(72 * 0.25)  # P(replaced) = floor(rL)/L
    scenes = scan_renders(tmp_path)
    ds = PairDataset(scenes, cfg, seed=3, per_epoch=12, batch_size=3)
    same = next(g for g in range(12) if not ds.spec(g).replaced)
    other = next(g for g in range(12) if ds.spec(g).replaced and ds.spec(g).noise[0] < 5)
    a, b = ds[same], ds[other]
    assert torch.equal(a["seq1"], a["seq2"])  # not replaced: sequence 2 is sequence 1, noise included
    assert not torch.equal(b["seq1"], b["seq2"])


def test_recipes_and_runs_without_a_recipe(tmp_path, renders):
    import train as train_script

    assert make_config().recipe == "upstream" and set(RECIPES) == {"upstream", "paper"}
    cfg, _ = train_script.parse_args(["--preset", "full", "--recipe", "paper"])
    assert (cfg.preset, cfg.recipe) == ("full", "paper")
    with pytest.raises(InputError, match=r"^`preset`=paper: unknown; choose one of full, cpu-smoke$"):
        make_config("paper")  # "paper" is a recipe, not a preset
    old = tmp_path / "old"  # a run from before --recipe: its config has none, and it behaved as the paper recipe
    saved = tiny(tmp_path, renders).to_dict()
    del saved["recipe"]
    write_json(old / "config.json", {"config": saved})
    assert train_script.parse_args(["--resume", str(old)])[0].recipe == "paper"
    with pytest.raises(SystemExit):
        train_script.parse_args(["--resume", str(old), "--recipe", "upstream"])  # not a resumable change


def test_epoch_batches_drop_incomplete_and_shuffle():
    cfg = TrainConfig(seed=0, batch_size=3)
    b0, b1 = epoch_batches(cfg, 7, 0), epoch_batches(cfg, 7, 1)
    assert len(b0) == 2 and all(len(b) == 3 for b in b0)
    assert set(sum(b0, [])) <= set(range(7)) and set(sum(b1, [])) <= set(range(7, 14))


# --------------------------------------------------------------------------------------------- training
def _flat(obj) -> list[torch.Tensor]:  # noqa: ANN001
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in _flat(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for x in obj for t in _flat(x)]
    return [torch.tensor(float(obj))] if isinstance(obj, (int, float)) else []


def _state(run: Path, folder: str = "latest") -> dict:
    return torch.load(run / folder / "model.pth", map_location="cpu", weights_only=True)


def test_two_steps_write_a_run_folder_app_can_load(tmp_path, renders):
    cfg = tiny(tmp_path, renders, epochs=1, weights=[1.0, 0.5, 0.2, 0.0, 1.0], val_pairs=3)  # FovVideoVDP too
    run = train(cfg)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    assert len(steps) == 2 and all(np.isfinite(r["loss"]) for r in steps)
    assert steps[0]["head_loss"]["strred"] is None and steps[0]["head_loss"]["fvvdp"] is not None
    val = [r for r in rows if r["kind"] == "val"]
    assert len(val) == 1 and set(val[0]["corr"]) == {"ssim", "psnr", "replace", "strred", "fvvdp"}
    assert (run / "val_correlation.png").stat().st_size > 1000 and (run / "epoch_0001" / "model.pth").is_file()
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["batch_size"] == 2 and saved["pairs"]["crop_min"] == 69

    import app

    out = tmp_path / "scored"
    code = app.run(app.AppConfig(inputs=[str(renders / "sceneA__m0")], out=str(out),
                                 checkpoint=str(run / "latest"), device="cpu", features_only=True, quiet=True))
    assert code == 0
    feats = np.load(out / "output_features.npz")["sceneA__m0"]
    assert feats.shape == (384,) and np.all(np.isfinite(feats))


@pytest.mark.parametrize("recipe", ["upstream", "paper"])
def test_kill_and_resume_equals_uninterrupted(tmp_path, renders, recipe):
    full = train(tiny(tmp_path / "a", renders, val_pairs=3, recipe=recipe))  # 2 epochs of 2 steps
    cut = tiny(tmp_path / "b", renders, val_pairs=3, stop_after_steps=2, workers=2, recipe=recipe)  # killed at the
    # epoch end
    part = train(cut)
    assert json.loads((part / "metrics.jsonl").read_text().splitlines()[-1])["kind"] == "val"
    import train as train_script

    for stop in ("3", "0"):  # killed mid-epoch, then to the end
        resumed_cfg, resume = train_script.parse_args(["--resume", str(part), "--stop-after-steps", stop])
        assert train_script.run(resumed_cfg, resume) == 0
    a, b = _state(full), _state(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = torch.load(full / "latest" / "train_state.pth", map_location="cpu", weights_only=True)
    sb = torch.load(part / "latest" / "train_state.pth", map_location="cpu", weights_only=True)
    assert all(torch.equal(sa["projector"][k], sb["projector"][k]) for k in sa["projector"])
    assert (sa["epoch"], sa["step"]) == (sb["epoch"], sb["step"]) == (2, 4)
    assert all(torch.equal(x, y) for x, y in zip(_flat(sa["optimizer"]), _flat(sb["optimizer"]), strict=True))
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    ra = strip(json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines())
    rb = strip(json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines())
    assert ra == rb


def test_resume_refuses_changed_settings(tmp_path, renders):
    import train as train_script

    run = tmp_path / "run"
    write_json(run / "config.json", {"config": tiny(tmp_path, renders).to_dict()})
    with pytest.raises(SystemExit) as e:
        train_script.parse_args(["--resume", str(run), "--lr", "0.1"])
    assert e.value.code == 2


def test_bad_inputs_are_one_line_errors(tmp_path, renders, monkeypatch):
    import train as train_script

    monkeypatch.chdir(tmp_path)
    looked = f"looked in: {tmp_path / 'missing'}, {consts.ROOT / 'missing'}"  # here, then the repository's folder
    with pytest.raises(InputError, match=f"^--renders missing: not found \\({re.escape(looked)}\\); lay out"):
        train_script.run(tiny(tmp_path, "missing"))
    with pytest.raises(InputError, match="fewer than --batch-size 16"):
        train_script.run(tiny(tmp_path, renders, batch_size=16))
    with pytest.raises(InputError, match="--crop-min 40"):
        train_script.run(tiny(tmp_path, renders, pairs={**TINY_PAIRS, "crop_min": 40}))
    with pytest.raises(InputError, match=f"^{tmp_path}/file/run: {tmp_path}/file is a file, not a folder"):
        (tmp_path / "file").write_text("")
        train_script.run(tiny(tmp_path / "file", renders))  # --runs-dir under a file: refused before training
    with pytest.raises(InputError, match=f"^--init nope: not found \\(looked in: {tmp_path}/nope, "):
        train_script.run(tiny(tmp_path, renders, init="nope"))


def test_library_errors_name_parameters_and_train_py_shows_flags(tmp_path, renders):
    """The library names its parameters in backticks; train.py (the CLI layer) shows them as its flags."""
    import train as train_script

    with pytest.raises(InputError, match=r"fewer than `batch_size`=16; raise `scene_repeats`$"):
        train(tiny(tmp_path, renders, batch_size=16))
    with pytest.raises(InputError, match=r"^`init` nope: not found \(looked in: "):
        train(tiny(tmp_path, renders, init="nope"))
    from models import cli

    got = cli.as_flags("`crop_min`=40 / `crop_max`=75: need 69 ≤ `crop_min`; choose another `runs_dir` or "
                       "`name`; `resume`=x; `other`=1", train_script.FLAGS)
    assert got == "--crop-min 40 / --crop-max 75: need 69 ≤ --crop-min; choose another --runs-dir or --name; " \
                  "--resume x; `other`=1"  # fmt: skip


def test_trainer_steps_by_hand_equal_train(tmp_path, renders):
    """The Trainer's pieces, driven one at a time, give train()'s weights bit for bit."""
    import time

    from models.training.loop import Trainer

    ref = train(tiny(tmp_path / "ref", renders, stop_after_steps=1))
    t = Trainer(tiny(tmp_path / "hand", renders))
    t.restore()
    todo = t.remaining_batches()
    assert (t.step, t.steps_per_epoch, len(todo)) == (0, 2, 4) and todo[:2] == epoch_batches(t.cfg, t.per_epoch, 0)
    t.prepare()
    row = t.train_step([t.data[g] for g in todo[0]], time.perf_counter())
    assert t.step == row["step"] == 1 and t.metrics.rows == [row]
    assert not t.after_step() and not (t.run_dir / "latest").exists()  # mid-epoch and not asked to stop
    t.save(0)
    a, b = _state(ref), _state(t.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("workers", [0, 1])
def test_targets_computed_ahead_give_the_same_run(tmp_path, renders, workers):
    """Targets of the next batch computed on a background thread while the encoder trains (CUDA's default): the
    same weights and losses bit for bit, every step's row with the background seconds; a stop after step 3 of 4
    leaves no thread behind and resumes to the same end."""
    cfg = dict(weights=[1.0, 0.5, 0.2, 0.3, 1.0], workers=workers)  # all five heads, FovVideoVDP included
    inline = train(tiny(tmp_path / "inline", renders, **cfg), overlap=False)
    ahead = train(tiny(tmp_path / "ahead", renders, stop_after_steps=3, **cfg), overlap=True)
    train(tiny(tmp_path / "ahead", renders, **cfg), resume=ahead, overlap=True)
    a, b = _state(inline), _state(ahead)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(x) for x in (ahead / "metrics.jsonl").read_text().splitlines() if '"step"' in x]
    ref = [json.loads(x) for x in (inline / "metrics.jsonl").read_text().splitlines() if '"step"' in x]
    assert [r["loss"] for r in rows if r["kind"] == "step"] == [r["loss"] for r in ref if r["kind"] == "step"]
    assert all(r["targets_ahead_s"] > 0 for r in rows if r["kind"] == "step")
    assert not [t for t in threading.enumerate() if t.name.startswith("targets")]


def test_stop_signal_sets_a_flag_the_loop_reads(monkeypatch):
    import signal
    import time

    from models.training import stop

    monkeypatch.setattr(stop, "_STOP", {"installed": False, "asked": False})
    assert stop.stop_requested(1, False) is False and stop.stop_requested(1, True) is True
    old = signal.getsignal(signal.SIGUSR2)
    try:
        stop.install_stop_handler()
        assert not stop.stop_requested(1, False) and not stop.stop_signalled()
        os.kill(os.getpid(), signal.SIGUSR2)
        for _ in range(100):  # the Python-level handler runs between bytecodes of the main thread
            if stop.stop_signalled():
                break
            time.sleep(0.01)
        assert stop.stop_signalled() and stop.stop_requested(1, False)
    finally:
        signal.signal(signal.SIGUSR2, old)


def test_resume_by_name_finds_runs_name(tmp_path, renders, monkeypatch, capsys):
    """The paths rule: --resume NAME is runs/NAME when NAME is not a folder here; else one line naming both."""
    import train as train_script

    monkeypatch.setattr(train_script, "RUNS_DIR", tmp_path / "runs")
    write_json(tmp_path / "runs" / "mine" / "config.json", {"config": tiny(tmp_path, renders, name="mine").to_dict()})
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    cfg, resume = train_script.parse_args(["--resume", "mine", "--epochs", "3"])
    assert resume == str(tmp_path / "runs" / "mine") and (cfg.name, cfg.epochs) == ("mine", 3)
    with pytest.raises(SystemExit):
        train_script.parse_args(["--resume", "other"])
    assert capsys.readouterr().err == (f"error: --resume other: not found (looked in: {tmp_path}/here/other, "
                                       f"{tmp_path}/runs/other); give a run folder or the name of one under runs/\n")
    (tmp_path / "here" / "mine").mkdir()  # a folder of that name here wins (as typed, relative to the current folder)
    with pytest.raises(SystemExit):
        train_script.parse_args(["--resume", "mine"])  # ... and it is not a run
    assert capsys.readouterr().err == ("error: mine/config.json: cannot read the run's config (FileNotFoundError); "
                                       "is mine a run of train.py?\n")


@pytest.mark.parametrize("argv", [
    ["--device", "tpu"], ["--workers", "-1"], ["--lr", "-1"], ["--lr", "nan"], ["--epochs", "0"],
    ["--batch-size", "0"], ["--scene-repeats", "0"], ["--save-every", "0"], ["--seed", "-1"], ["--weights", "1", "2"],
    ["--weights", "1", "-1", "1", "1", "1"], ["--crop-min", "0"], ["--replace-max", "2"],
    ["--jpeg-quality", "80", "10"], ["--preset", "nope"], ["--preset", "paper"], ["--resume", "no/such/run"],
    ["--resume", "RUN", "--epochs", "0"], ["--resume", "RUN", "--crop-min", "80"],
])
def test_bad_flags_are_one_error_line_and_exit_2(argv, tmp_path, renders, capsys):
    import train as train_script

    run = tmp_path / "run"
    write_json(run / "config.json", {"config": tiny(tmp_path, renders).to_dict()})
    with pytest.raises(SystemExit) as e:  # refused while parsing: nothing is trained
        train_script.main([str(run) if a == "RUN" else a for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    assert all(line.startswith(("usage:", " ")) for line in err.splitlines() if line not in errors), err


def test_flags_override_the_preset():
    import train as train_script

    cfg, resume = train_script.parse_args(["--preset", "cpu-smoke", "--epochs", "3", "--crop-min", "80", "--no-noise"])
    assert resume is None
    assert (cfg.preset, cfg.name, cfg.epochs, cfg.batch_size) == ("cpu-smoke", "cpu-smoke-seed0", 3, 4)
    assert (cfg.pairs.crop_min, cfg.pairs.crop_max, cfg.pairs.noise, cfg.pairs.replace_min) == (80, 112, False, 0.5)
    assert cfg == make_config("cpu-smoke", epochs=3, pairs={"crop_min": 80, "noise": False})
    full, _ = train_script.parse_args(["--seed", "3", "--weights", "1", "0", "0", "0", "0"])
    assert full == make_config(seed=3, weights=[1, 0, 0, 0, 0]) and full.name == "full-seed3"
    assert (full.preset, full.recipe) == ("full", "upstream")
    with pytest.raises(InputError, match="--workers -1: must be >= 0"):
        make_config("full", workers=-1)  # the library checks what the flags check


def test_link_examples_entry_point(tmp_path):
    from consts import EXAMPLES_DIR
    from models.training import pairs

    assert pairs.main(["--link-examples", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "Giraffe__NeRF").resolve() == (EXAMPLES_DIR / "Giraffe+NeRF").resolve()
    assert len(scan_renders(tmp_path / "r")) == 1


def test_init_released_loads_the_released_encoder(tmp_path, renders, released_dir):
    run = train(tiny(tmp_path, renders, epochs=1, scene_repeats=1, init="released", lr=0.0))
    rel = torch.load(released_dir / "model.pth", map_location="cpu", weights_only=True)
    got = _state(run)
    # lr 0: weights unchanged, only BatchNorm running statistics move
    assert all(torch.equal(rel[k], got[k]) for k in rel if "running" not in k and "num_batches" not in k)


# --------------------------------------------------------------------------------------------- DDP
def _ddp_worker(rank: int, world: int, port: int, cfg: TrainConfig, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from models.training import loop as training

    captured = {}
    orig = training.ContrastiveModel.__init__

    def keep(self, *a, **k):  # noqa: ANN001, ANN002, ANN003
        orig(self, *a, **k)
        captured["model"] = self

    training.ContrastiveModel.__init__ = keep
    training.train(cfg)
    torch.save(captured["model"].state_dict(), Path(out) / f"rank{rank}.pth")


def test_ddp_gloo_two_processes(tmp_path, renders):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tiny(tmp_path, renders, epochs=1, batch_size=4, scene_repeats=4)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, port, cfg, str(tmp_path)), nprocs=2, join=True)
    s0, s1 = torch.load(tmp_path / "rank0.pth"), torch.load(tmp_path / "rank1.pth")
    params = [k for k in s0 if "running" not in k and "num_batches" not in k]  # BatchNorm stats stay per process
    assert all(torch.equal(s0[k], s1[k]) for k in params)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["pairs"] for r in rows if r["kind"] == "step"] == [4, 4]
    rel = _state(tmp_path / "run")
    assert all(torch.equal(rel[k], s0["encoder." + k]) for k in rel)


@pytest.mark.parametrize("batching", ["pair", "frame_index"])
def test_gradient_checkpointing_gives_the_same_gradients(batching):
    from models.nvs_sqa import ModelConfig
    from models.training.contrastive import ContrastiveModel, head_losses

    g = torch.Generator().manual_seed(0)
    pairs = [tuple((torch.rand(1, 3, 69, 69, generator=g) * 255).to(torch.uint8) for _ in range(2)) for _ in range(2)]
    targets = torch.rand(5, 2, generator=g) * 2 - 1
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = ContrastiveModel(ModelConfig(), grad_checkpoint=ckpt, batching=batching)
        torch.manual_seed(1)  # same dropout masks
        head_losses(*model(pairs), targets).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert all(torch.allclose(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-7) for n in grads[0])


@pytest.mark.parametrize(("recipe", "kept"), [("upstream", [1, 2, 3, 4, 5, 10, 12]), ("paper", [5, 10, 12])])
def test_kept_epoch_checkpoints_follow_the_recipe(recipe, kept):
    """Upstream keeps epochs 1–4 and every 5th (spec item 6); the paper recipe every --save-every and the last."""
    from models.training.loop import kept_epoch
    from models.training.targets import get_recipe

    cfg = make_config("cpu-smoke", recipe=recipe, epochs=12, save_every=5)
    assert [e for e in range(1, 13) if kept_epoch(e, cfg, get_recipe(recipe))] == kept
