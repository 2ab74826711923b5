"""crossscore.py end to end on a tiny dataset made in code: train, resume, predict, test, and bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"

import crossscore  # noqa: E402
from consts import EXAMPLES_DIR  # noqa: E402

SIZE = (42, 28)  # width, height: 3 x 2 patches


def _scene(root: Path, rng) -> None:
    """scene/{a,b}: gt images (smooth random) and two kinds of renders with the same names."""
    for split in ("a", "b"):
        for i in range(3):
            base = rng.random((4, 5, 3))
            gt = (np.kron(base, np.ones((7, 9, 1)))[:SIZE[1], :SIZE[0]] * 255).astype(np.uint8)
            name = f"{split}{i}.png"
            for sub, img in (("gt", gt), ("renders/noise", np.clip(gt + rng.normal(0, 40, gt.shape), 0, 255)),
                             ("renders/flat", np.full_like(gt, 128))):
                (root / "scene" / split / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.asarray(img, np.uint8)).save(root / "scene" / split / sub / name)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cs") / "data"
    _scene(root, np.random.default_rng(0))
    return root


def _train(data: Path, runs: Path, name: str, steps: int, *extra: str) -> int:
    return crossscore.main(["train", "--data", str(data), "--backbone", "tiny", "--name", name, "--runs-dir",
                            str(runs), "--steps", str(steps), "--batch-size", "2", "--short-side", "0", "--crop", "28",
                            "--n-ref", "2", "--log-every", "1", "--save-every", "2", "--fig-every", "2",
                            "--device", "cpu", "--quiet", *extra])


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    assert _train(data, runs, "two", 2) == 0
    return runs / "two"


def test_two_step_train_writes_run(model):
    assert {"config.json", "metrics.jsonl", "state.pth", "model", "figures"} <= {p.name for p in model.iterdir()}
    lines = [json.loads(ln) for ln in (model / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2] and all(r["l1"] > 0 for r in lines)
    meta = json.loads((model / "model" / "config.json").read_text())["meta"]
    assert meta["n_ref"] == 2 and 0 < meta["train_target_mean"] < 1
    assert (model / "figures" / "step_000002.png").is_file()


def test_resume_is_exact(data, tmp_path):
    assert _train(data, tmp_path, "straight", 3) == 0
    assert _train(data, tmp_path, "split", 1) == 0
    assert _train(data, tmp_path, "split", 1) == 2  # refuses to overwrite a run without --resume
    assert _train(data, tmp_path, "split", 3, "--resume") == 0
    a = torch.load(tmp_path / "straight" / "model" / "model.pth", weights_only=True)
    b = torch.load(tmp_path / "split" / "model" / "model.pth", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_predict_outputs(data, model, tmp_path):
    q = data / "scene" / "a" / "renders" / "noise"
    out = tmp_path / "pred"
    rc = crossscore.main(["predict", str(q), "--references", str(data / "scene" / "b" / "gt"), "--gt",
                          str(data / "scene" / "a" / "gt"), "--checkpoint", str(model / "model"), "--n-ref", "5",
                          "--out", str(out), "--quiet"])
    assert rc == 0
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert [(r["image"], r["source"]) for r in rows] == [(f"a{i}.png", str(q / f"a{i}.png")) for i in range(3)]
    for r in rows:
        m = np.load(out / r["map_npy"])
        assert m.shape == (28, 42) and float(r["pred_ssim"]) == pytest.approx(float(m.mean()), abs=1e-6)
        assert (r["width"], r["height"], r["working_width"], r["working_height"]) == ("42", "28", "42", "28")
        assert 0 <= float(r["true_ssim"]) <= 1
        assert r["references"].split(";") == [str(data / "scene" / "b" / "gt" / f"b{i}.png") for i in range(3)]
        assert Image.open(out / r["map_png"]).size == (42, 28)
        assert (out / r["figure"]).is_file()
    meta = json.loads((out / "scores.json").read_text())
    assert meta["config"]["n_ref"] == 5 and meta["checkpoint_sha256"]
    # a second predict into the same --out merges by name; another file under a taken name is refused
    other = data / "scene" / "a" / "renders" / "flat"
    assert crossscore.main(["predict", str(other / "a0.png"), "--references", str(data / "scene" / "b" / "gt"),
                            "--checkpoint", str(model / "model"), "--out", str(out), "--quiet"]) == 2
    again = ["predict", str(q / "a1.png"), "--references", str(data / "scene" / "b" / "gt"), "--checkpoint",
             str(model / "model"), "--out", str(out), "--quiet"]  # fmt: skip
    assert crossscore.main(again) == 0
    merged = list(csv.DictReader(open(out / "scores.csv")))
    assert [r["image"] for r in merged] == ["a0.png", "a2.png", "a1.png"] and merged[2]["true_ssim"] == ""
    assert len(list(csv.DictReader(open(out / "scores_upstream.csv")))) == 3 and not (out / ".staging").exists()


def test_test_command_tables(data, model, tmp_path):
    for baseline in ("none", "constant"):
        out = tmp_path / baseline
        rc = crossscore.main(["test", "--data", str(data), "--checkpoint", str(model / "model"), "--baseline",
                              baseline, "--short-side", "0", "--out", str(out), "--quiet"])
        assert rc == 0
        rows = {(r["dataset"], r["method"]): r for r in csv.DictReader(open(out / "summary.csv"))}
        assert set(rows) == {("data", "flat"), ("data", "noise"), ("all", "all")} and rows[("all", "all")]["n"] == "12"
        assert float(rows[("all", "all")]["upstream_l1"]) == pytest.approx(float(rows[("all", "all")]["l1"]), abs=1e-6)
    const = list(csv.DictReader(open(tmp_path / "constant" / "per_image.csv")))
    assert len({r["pred_ssim"] for r in const}) == 1


def test_bad_input_one_line_errors(data, model, tmp_path, capsys):
    q = str(data / "scene" / "a" / "renders" / "noise" / "a0.png")
    only = tmp_path / "only"  # a reference folder holding nothing but the query itself
    ck = ["--checkpoint", str(model / "model"), "--out", str(tmp_path / "o"), "--quiet"]
    cases = [
        (["predict", q, "--references", str(tmp_path / "missing")] + ck, "reference folder not found"),
        (["predict", str(only / "a0.png"), "--references", str(only)] + ck, "no reference image"),
        (["predict", q, "--references", str(data / "scene" / "b" / "gt"), "--gt", str(tmp_path / "big.png")] + ck,
         f"{tmp_path / 'big.png'}: ground truth is 50x30 but render {q} is 42x28 (width x height); a render and its "
         "ground truth must have one size"),
        # the sizes of the files, not of the images resized to --short-side 56 (93x56 and 84x56)
        (["predict", q, "--references", str(data / "scene" / "b" / "gt"), "--gt", str(tmp_path / "big.png"),
          "--short-side", "56"] + ck, ": ground truth is 50x30 but render "),
        # the same aspect ratio at twice the size: equal once resized to a short side, refused all the same
        (["predict", q, "--references", str(data / "scene" / "b" / "gt"), "--gt", str(tmp_path / "twice.png"),
          "--short-side", "28"] + ck, ": ground truth is 84x56 but render "),
        (["predict", q, "--references", str(data / "scene" / "b" / "gt"), "--checkpoint", "no-such-model", "--quiet"],
         "error: --checkpoint no-such-model: not found (looked in: "),
        (["demo-data", "--sources", str(EXAMPLES_DIR / "Giraffe+NeRF"), "--out", str(tmp_path / "big.png" / "d")],
         f"{tmp_path / 'big.png' / 'd'}: {tmp_path / 'big.png'} is a file, not a folder"),
        (["predict", q, "--references", str(data / "scene" / "b" / "gt"), "--checkpoint", str(tmp_path / "x.ckpt"),
          "--quiet"], "not a PyTorch checkpoint"),
    ]
    only.mkdir()
    Image.open(q).save(only / "a0.png")
    Image.new("RGB", (50, 30)).save(tmp_path / "big.png")
    Image.new("RGB", (84, 56)).save(tmp_path / "twice.png")
    (tmp_path / "x.ckpt").write_bytes(b"\x00" * 64)
    for argv, msg in cases:
        capsys.readouterr()
        assert crossscore.main(argv) == 2, argv
        err = capsys.readouterr().err
        errors = err.strip().splitlines()  # the whole of stderr: one line, no traceback
        assert len(errors) == 1 and errors[0].startswith("error: ") and msg in errors[0], (msg, err)
    assert not (tmp_path / "o" / "scores.csv").exists()


def test_checkpoint_by_name_under_runs(data, model, tmp_path, monkeypatch, capsys):
    """The paths rule: --checkpoint NAME that is not a path here is looked up under checkpoints/, then runs/."""
    from models.crossscore import options

    monkeypatch.setattr(options, "RUNS_DIR", model.parent)
    monkeypatch.chdir(tmp_path)
    q = str(data / "scene" / "a" / "renders" / "noise" / "a0.png")
    rc = crossscore.main(["predict", q, "--references", str(data / "scene" / "b" / "gt"), "--checkpoint",
                          f"{model.name}/model", "--out", "o", "--quiet"])
    assert rc == 0
    meta = json.loads((tmp_path / "o" / "scores.json").read_text())
    assert meta["checkpoint"] == str(model / "model") and meta["config"]["checkpoint"] == str(model / "model")


def test_predict_upstream_csv_attention_and_precision(data, model, tmp_path, capsys):
    q = data / "scene" / "a" / "renders" / "noise" / "a0.png"
    base = ["predict", str(q), "--references", str(data / "scene" / "b" / "gt"), "--checkpoint", str(model / "model"),
            "--quiet", "--n-ref", "2"]
    assert crossscore.main([*base, "--out", str(tmp_path / "a"), "--attention", "0,0;1,2"]) == 0
    out = tmp_path / "a"
    up = list(csv.DictReader((out / "scores_upstream.csv").open()))
    ours = list(csv.DictReader((out / "scores.csv").open()))
    assert list(up[0]) == ["scene_name", "rendered_dir", "image_name", "pred_ssim_0_1"]
    assert up[0]["scene_name"] == "scene" and up[0]["image_name"] == "a0.png"  # <scene>/<split>/<dir>/<dir>/<img>
    assert up[0]["rendered_dir"] == str(q.parents[1]) and up[0]["pred_ssim_0_1"] == f"{float(ours[0]['pred_ssim']):.4f}"
    fig = Image.open(out / ours[0]["attention"])
    assert ours[0]["attention"] == "attention/a0.png" and fig.size[0] > fig.size[1]  # 2 rows x (query + 2 refs)
    # fp16 autocast (the CUDA default) vs fp32 on the same inputs: close, not identical
    assert crossscore.main([*base, "--out", str(tmp_path / "h"), "--precision", "fp16"]) == 0
    half, full = np.load(tmp_path / "h" / "maps" / "a0.npy"), np.load(out / "maps" / "a0.npy")
    assert 0 < np.abs(half - full).max() < 0.02
    for bad, msg in ((["--attention", "middle"], "use 'centre' or token coordinates"),
                     (["--attention", "5,0"], "the token grid is 2 rows x 3 columns"),
                     (["--attention", "centre", "--attn-head", "9"], "the decoder has 8 heads")):
        capsys.readouterr()
        assert crossscore.main([*base, "--out", str(tmp_path / "bad"), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err


def test_committed_demo_model_predicts_by_default(tmp_path, capsys):
    from consts import CROSSSCORE_DEMO_MODEL, CROSSSCORE_DEMO_SHA256
    from models.results import sha256_file

    assert sha256_file(CROSSSCORE_DEMO_MODEL) == CROSSSCORE_DEMO_SHA256  # committed: predict works after setup
    frames = sorted((EXAMPLES_DIR / "Giraffe+NeRF").glob("*.jpg"))
    refs = tmp_path / "refs"
    refs.mkdir()
    for f in frames[20:26:2]:
        (refs / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "out"
    assert crossscore.main(["predict", str(frames[21]), "--references", str(refs), "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "scores.json").read_text())
    assert meta["checkpoint_sha256"] == CROSSSCORE_DEMO_SHA256 and meta["pos_interp"] == "hf-4.33"
    row = meta["rows"][0]
    assert (row["working_height"], row["width"], row["height"]) == (112, 960, 768)  # made at 112, shown at 768
    assert np.load(out / "maps" / f"{frames[21].stem}.npy").shape == (768, 960)
    err = capsys.readouterr().err
    assert err.count("the CrossScore demonstration model") == 1 and meta["warning"].startswith("the Cr")
    for said in (err, meta["warning"]):  # crossscore.py's flag, not the library's parameter
        assert "CrossScore-v1.0.0.ckpt (--checkpoint)" in said and "`checkpoint`" not in said
    capsys.readouterr()
    assert crossscore.main(["predict", str(frames[21]), "--references", str(refs), "--checkpoint",
                            str(tmp_path / "crossscore-demo.pth"), "--quiet"]) == 2
    assert "`make crossscore-demo` trains the offline model" in capsys.readouterr().err
