"""evaluate.py end to end on a tiny synthetic bank with a tiny random checkpoint: files, cache, errors, degrade."""

from __future__ import annotations

import csv
import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

import consts
import evaluate
from models.evaluation import protocol as bm
from models.nvs_sqa import NVSSQA, ModelConfig, SequenceModel
from models.nvs_sqa.checkpoint import load_regressor

KEYS = [f"{d}+s1+m{i}" for d in ("da", "db") for i in range(4)]


def make_checkpoint(folder, seed=0, regressor=False):
    """A tiny randomly initialised model in the checkpoint folder format (config.json + model.pth)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(view_enc_size=12, with_low_level=[4, 4, 4], angular_feat_size=8, num_layers=1, nhead=2,
                      version=f"tiny{seed}")
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save(SequenceModel(cfg).state_dict(), folder / "model.pth")
    if regressor:
        coef = np.random.default_rng(seed).normal(size=8).astype(np.float32)
        (folder / "regressor.json").write_text(json.dumps({"coef": coef.tolist(), "intercept": -1.0}))
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A bank of 8 sequences (2 noisy 72x72 PNG frames of one colour each), its label file, a tiny checkpoint."""
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    for key in KEYS:
        frames = root / "bank" / key.replace("+", "/") / "frames"
        frames.mkdir(parents=True)
        base = np.full((72, 72, 3), rng.integers(0, 256, 3))  # a colour per sequence, so that features differ
        for t in range(2):
            img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(frames / f"{t:05d}.png")
    labels = {k: float(rng.normal()) for k in KEYS}
    (root / "labels.json").write_text(json.dumps({
        "labels": labels, "tr_keys": [k for k in KEYS if k[-1] in "01"], "tt_keys": [k for k in KEYS if k[-1] in "23"],
    }))  # fmt: skip
    return {"root": root, "bank": root / "bank", "labels": root / "labels.json",
            "ckpt": make_checkpoint(root / "ckpt"), "ckpt_reg": make_checkpoint(root / "ckpt_reg", 1, True)}


@pytest.fixture(autouse=True)
def _keep_threads():
    """evaluate.py --threads sets torch's thread count: restore it for the other tests."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def run(world, tmp_path, monkeypatch, capsys):
    """evaluate.main with runs/ and .cache/ in tmp; returns (exit code, run folder, the stderr lines of errors
    without their ``error: `` prefix)."""
    monkeypatch.setattr(consts, "RUNS_DIR", tmp_path / "runs")
    monkeypatch.setattr(consts, "CACHE_DIR", world["root"] / "cache")

    def go(*args, name="r", bank=True):
        capsys.readouterr()
        # one thread: bit-identical results, and far faster than two when the CI machine is busy
        base = ["--labels", str(world["labels"]), "--name", name, "--quiet", "--device", "cpu", "--threads", "1"]
        if bank:
            base += ["--bank", str(world["bank"])]
        rc = evaluate.main(base + [str(a) for a in args])
        err = capsys.readouterr().err.splitlines()
        return rc, tmp_path / "runs" / name, [ln.removeprefix("error: ") for ln in err if ln.startswith("error: ")]

    return go


def _results(folder):
    return json.loads((folder / "results.json").read_text())


def test_bank_run_files_cache_and_saved_regressor(world, run):
    rc, out, _ = run("--checkpoint", world["ckpt"], "--save-regressor", "--splits", "3", "--no-cache")
    assert rc == 0
    for f in ("config.json", "tables.md", "scenes.csv", "datasets.csv", "predictions.csv", "results.json",
              "features.npz", "splits.csv", "regressor.json", "checkpoint/model.pth"):
        assert (out / f).is_file(), f
    model = NVSSQA.from_checkpoint(world["ckpt"], "cpu")
    feats = dict(np.load(out / "features.npz"))
    key = "db+s1+m3"
    np.testing.assert_array_equal(feats[key], model.features(world["bank"] / "db/s1/m3/frames", batch_size=2))
    lab = bm.load_labels(world["labels"])
    ref = bm.evaluate_split(feats, lab.labels, lab.train, lab.test)
    res = _results(out)
    assert res["scenes"] == ref.scenes and res["computed"] == 8
    assert len(res["random_splits"]) == 3 and res["random_splits"][-1]["dataset"] == bm.AVERAGE
    with open(out / "scenes.csv") as f:
        assert next(csv.reader(f)) == ["dataset", "scene", "n_test", "srcc", "plcc", "krcc", "rmse"]
    # the saved checkpoint gives app.py-style JOD scores equal to the benchmark's predictions
    saved = NVSSQA.from_checkpoint(out / "checkpoint", "cpu")
    assert saved.score(world["bank"] / "db/s1/m3/frames", batch_size=2) == pytest.approx(res["predictions"][key],
                                                                                         abs=1e-5)
    # --features on the written features reproduces the tables without bank or model
    rc, out2, _ = run("--features", out / "features.npz", "--splits", "3", name="f", bank=False)
    assert rc == 0 and _results(out2)["scenes"] == res["scenes"]
    assert (out2 / "tables.md").read_text().split("\n", 1)[1] == (out / "tables.md").read_text().split("\n", 1)[1]
    # --save-regressor from features: regressor.json in app.py's format, giving the benchmark's predictions
    rc, out3, _ = run("--features", out / "features.npz", "--save-regressor", name="fr", bank=False)
    reg = load_regressor(out3 / "regressor.json")
    assert rc == 0 and not (out3 / "checkpoint").exists() and reg.alpha == 1.0
    assert float(reg.predict(feats[key][None])[0]) == res["predictions"][key]


def test_feature_cache_reuse_and_invalidation(world, run, tmp_path):
    assert run("--checkpoint", world["ckpt"])[0] == 0  # fills the cache
    rc, out, _ = run("--checkpoint", world["ckpt"])
    assert rc == 0 and _results(out)["computed"] == 0
    first = dict(np.load(out / "features.npz"))
    frame = world["bank"] / "da/s1/m0/frames/00001.png"
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a touched frame is recomputed
    assert _results(run("--checkpoint", world["ckpt"])[1])["computed"] == 1
    other = make_checkpoint(tmp_path / "other", seed=5)  # another checkpoint: everything recomputed
    rc, out, _ = run("--checkpoint", other)
    assert _results(out)["computed"] == 8 and not np.array_equal(np.load(out / "features.npz")["da+s1+m0"],
                                                                  first["da+s1+m0"])


def test_missing_sequences(world, run, tmp_path):
    rc, _, err = run("--checkpoint", world["ckpt"], "--bank", tmp_path)  # a bank with no frames at all
    assert rc == 2 and err == [f"{tmp_path}: no benchmark sequence with frames found; expected "
                               f"{tmp_path}/<dataset>/<scene>/<method>/frames/*.png|jpg (or a video per method)"]
    feats = dict(np.load(run("--checkpoint", world["ckpt"])[1] / "features.npz"))
    part = tmp_path / "part.npz"
    np.savez(part, **{k: v for k, v in feats.items() if k != "da+s1+m3"})
    rc, _, err = run("--features", part, bank=False)
    assert rc == 2 and "1 of 8 labelled sequences missing, e.g. ['da+s1+m3']" in err[0]
    rc, out, _ = run("--features", part, "--allow-missing", bank=False)
    res = _results(out)
    assert rc == 0 and res["missing"] == ["da+s1+m3"]
    assert res["scenes"][0]["srcc"] == "nan" and res["scenes"][0]["n_test"] == 1  # NaN in strict JSON: "nan"
    assert "> evaluated on 7 of 8 labelled sequences (4 train, 3 test); missing: da+s1+m3" in (
        out / "tables.md").read_text()


def test_bad_inputs_one_line_errors(world, run, tmp_path):
    rc, _, err = run("--features", tmp_path / "x.npz", "--labels", tmp_path / "none.json", bank=False)
    assert rc == 2 and err == [f"{tmp_path / 'none.json'}: label file not found; pass --labels, "
                               "or copy it from ../shared/benchmark"]
    bad = tmp_path / "unknown.npz"
    np.savez(bad, **{"Giraffe+NeRF": np.zeros(8, np.float32)})
    rc, _, err = run("--features", bad, bank=False)
    assert rc == 2 and err[0].startswith(f"{bad}: 1 key(s) are not benchmark keys")
    rc, out, err = run("--checkpoint", tmp_path / "nockpt", name="c")  # refused first: no run folder at all
    assert rc == 2 and err == [f"--checkpoint {tmp_path / 'nockpt'}: not found (looked in: {tmp_path / 'nockpt'}); "
                               "check the name, or give the full path"] and not out.exists()
    (tmp_path / "nockpt").mkdir()  # a folder, but not a checkpoint: the loader says so, and nothing is written
    rc, out, err = run("--checkpoint", tmp_path / "nockpt", name="c")
    # (the loader's own wording is tested in tests/nvs_sqa: here, one line naming the folder)
    assert rc == 2 and len(err) == 1 and err[0].startswith(str(tmp_path / "nockpt")) and not out.exists()


def _scores(folder):
    with open(folder / "degrade_scores.csv") as f:
        return [(r["sequence"], r["distortion"], int(r["level"]), float(r["score"])) for r in csv.DictReader(f)]


def test_degrade_end_to_end_reproducible(world, run):
    seq = world["bank"] / "da/s1/m0/frames"
    args = ("--degrade", seq, "--checkpoint", world["ckpt_reg"], "--frames", "2", "--distortions", "blur,floaters")
    rc, out, _ = run(*args, bank=False)
    assert rc == 0
    rows = _scores(out)
    assert len(rows) == 2 * 6 and {r[2] for r in rows} == set(range(6)) and {r[1] for r in rows} == {"blur", "floaters"}
    with open(out / "degrade_srcc.csv") as f:
        srcc = {r["distortion"]: float(r["srcc[frames]"]) for r in csv.DictReader(f)}
    for d in ("blur", "floaters"):
        pts = sorted((lv, s) for _, dd, lv, s in rows if dd == d)
        assert srcc[d] == pytest.approx(stats.spearmanr([p[0] for p in pts], [p[1] for p in pts]).statistic)
    assert (out / "degrade.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, out2, _ = run(*args, name="again", bank=False)
    assert rc == 0 and _scores(out2) == rows  # bit for bit
    # no regressor.json (a self-trained encoder): the score is the feature similarity to the clean clip
    rc, out3, _ = run("--degrade", seq, "--checkpoint", world["ckpt"], "--frames", "2", "--distortions", "blur",
                      name="noreg", bank=False)
    assert rc == 0
    sims = {lv: s for _, _, lv, s in _scores(out3)}
    assert sims[0] == pytest.approx(1.0, abs=1e-6) and all(-1 <= v <= 1 + 1e-6 for v in sims.values())
    assert "cosine similarity" in (out3 / "degrade.md").read_text()


def test_flags_are_the_config(world, run, capsys):
    """EvalConfig is the one source of the flags: defaults, round trip, one-line errors (exit 2)."""
    from models import cli
    from models.evaluation.run import EvalConfig

    assert evaluate.parse_args([]) == EvalConfig()
    cfg = evaluate.parse_args(["--degrade", "a", "b", "--distortions", "blur,jpeg", "--frames", "2", "--no-cache"])
    assert cfg.inputs == ["a", "b"] and cfg.distortions == "blur,jpeg" and not cfg.cache
    assert evaluate.parse_args(cli.to_argv(cfg)) == cfg
    for argv, msg in ((["--distortions", "blur,foo"], "--distortions: unknown ['foo']; choose from blur,jpeg,"),
                      (["examples"], "INPUT arguments are for --degrade"),
                      (["--alpha", "0"], "--alpha 0.0: must be > 0")):
        assert evaluate.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {msg}") and err.count("\n") == 1
    # the run's config.json records --distortions as the list of names, as before
    rc, out, _ = run("--degrade", world["bank"] / "da/s1/m0/frames", "--checkpoint", world["ckpt_reg"], "--frames", "2",
                     "--distortions", "blur", bank=False)
    saved = json.loads((out / "config.json").read_text())
    assert rc == 0 and saved["distortions"] == ["blur"] and saved["no_cache"] is False
    assert list(saved) == ["name", "checkpoint", "device", "batch_size", "threads", "quiet", "bank", "labels",
                           "features", "allow_missing", "splits", "seed", "alpha", "save_regressor", "no_cache",
                           "degrade", "inputs", "regressor", "distortions", "frames", "max_side"]
    # --no-cache recomputes what the cache holds (argparse reads any --no-... flag as False: it must still work)
    assert run("--checkpoint", world["ckpt"])[0] == 0
    assert _results(run("--checkpoint", world["ckpt"])[1])["computed"] == 0
    rc, out, _ = run("--checkpoint", world["ckpt"], "--no-cache")
    assert rc == 0 and _results(out)["computed"] == 8 and _results(out)["config"]["no_cache"] is True


def test_degrade_frames_beyond_the_sequence_and_checkpoint_by_name(world, run, tmp_path, monkeypatch, caplog):
    """--frames 5 on a 2-frame sequence: a warning naming it, and the 2 frames used recorded in degrade.json and
    degrade.md; --checkpoint NAME finds runs/NAME (the paths rule), from any folder."""
    import shutil

    seq = world["bank"] / "da/s1/m0/frames"
    shutil.copytree(world["ckpt_reg"], tmp_path / "runs" / "mine" / "latest")
    monkeypatch.chdir(tmp_path / "runs" / "mine")  # "mine/latest" does not exist from here: runs/ is looked in
    with caplog.at_level(logging.WARNING):
        rc, out, err = run("--degrade", seq, "--checkpoint", "mine/latest", "--frames", "5", "--distortions", "blur",
                           bank=False)
    assert rc == 0 and err == []
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{seq}: has 2 frames, fewer than --frames 5; its clips use all 2"]
    saved = json.loads((out / "degrade.json").read_text())
    assert saved["frames_used"] == {"frames": 2} and saved["config"]["frames"] == 5
    assert saved["config"]["checkpoint"] == str(tmp_path / "runs" / "mine" / "latest")
    assert "6 clips of 2 frames, longer side 320 px" in (out / "degrade.md").read_text()
