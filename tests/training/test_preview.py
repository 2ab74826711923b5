"""train.py --preview: the first training batches written to DIR, exactly as the training loop draws them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.results import read_npz
from models.training import loop
from models.training.config import epoch_batches, make_config
from models.training.loop import train
from models.training.preview import preview, training_data
from models.training.targets import TARGETS

# Crops of 69..75 px and 2..3 frames: under --recipe paper, pairs of one batch differ in size.
PAIRS = {"crop_min": 69, "crop_max": 75, "crop_margin": 4, "segment_pixels": 69 * 69 * 3}
KEYS = {"seq1", "seq2", "lengths", "sizes", "replaced", "replace_ratio", "noise_keys", "targets", "target_names",
        "scenes", "methods", "pair_ids", "step", "epoch"}


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> Path:
    """renders/<scene>__m<i>/: 6 smooth random frames of 80x88 per method."""
    root = tmp_path_factory.mktemp("renders")
    rng = np.random.default_rng(0)
    for scene, n_methods in {"sceneA": 2, "sceneB": 3}.items():
        small = rng.random((6, 12, 13, 3))
        for m in range(n_methods):
            d = root / f"{scene}__m{m}"
            d.mkdir()
            for i, f in enumerate(small):
                img = Image.fromarray((f * 255).astype(np.uint8)).resize((88, 80), Image.BILINEAR)
                arr = np.clip(np.asarray(img) + rng.normal(0, 6 * m, (80, 88, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i:05d}.png")
    return root


def cfg_for(tmp_path: Path, renders: Path, **kw):
    base = dict(renders=str(renders), runs_dir=str(tmp_path / "runs"), epochs=2, scene_repeats=2, batch_size=2,
                workers=0, val_pairs=0, weights=[1.0, 0.5, 0.2, 0.0, 0.0], pairs=dict(PAIRS), name="run")
    return make_config("cpu-smoke", **{**base, **kw})


def _pair(a: dict, i: int, key: str) -> np.ndarray:
    n, (h, w) = a["lengths"][i], a["sizes"][i]
    return a[key][i, :n, :, :h, :w]


@pytest.mark.parametrize("recipe", ["upstream", "paper"])  # paper: crops per pair, so the padding is exercised
def test_preview_files_layout_order_and_determinism(tmp_path, renders, recipe):
    cfg = cfg_for(tmp_path, renders, recipe=recipe)
    paths = preview(cfg, tmp_path / "a", 3)  # 2 steps per epoch: the third batch is epoch 1's first
    assert [p.name for p in paths] == ["batch_000.npz", "batch_001.npz", "batch_002.npz"]
    assert all(p.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert not (tmp_path / "runs").exists()  # no run folder
    _, per_epoch = training_data(cfg)
    expected = epoch_batches(cfg, per_epoch, 0) + epoch_batches(cfg, per_epoch, 1)[:1]
    sizes = [read_npz(p)["sizes"] for p in paths]
    # upstream: one crop per batch (the dataset knows the batch size, as in the loop); paper: one per pair
    assert all((len(np.unique(s, axis=0)) == 1) == (recipe == "upstream") for s in sizes)
    again = preview(cfg, tmp_path / "b", 3)
    for k, (p, q) in enumerate(zip(paths, again, strict=True)):
        a, b = read_npz(p), read_npz(q)
        assert set(a) == KEYS
        for key in KEYS:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # two runs, the same arrays (NaN == NaN)
        n_pairs, t = cfg.batch_size, a["lengths"].max()
        assert a["seq1"].dtype == a["seq2"].dtype == np.uint8
        assert a["seq1"].shape == a["seq2"].shape == (n_pairs, t, 3, *a["sizes"].max(0))
        assert a["replaced"].shape == (n_pairs, t) and a["replaced"].dtype == bool
        r = a["replace_ratio"]
        assert r.shape == (n_pairs,) and np.all((r >= 0.5) & (r <= 1))
        assert a["noise_keys"].shape == (n_pairs, 2) and np.all((a["noise_keys"] >= 0) & (a["noise_keys"] < 12))
        assert a["targets"].shape == (n_pairs, len(TARGETS)) and a["targets"].dtype == np.float32
        assert np.isnan(a["targets"][:, 3:]).all() and np.isfinite(a["targets"][:, :3]).all()  # weight 0: NaN
        assert tuple(a["target_names"]) == TARGETS
        assert a["scenes"].shape == (n_pairs,) and set(a["scenes"]) <= {"sceneA", "sceneB"}
        assert a["methods"].shape == (n_pairs, 2) and all(m1 != m2 for m1, m2 in a["methods"])
        assert a["pair_ids"].tolist() == expected[k] and (int(a["step"]), int(a["epoch"])) == (k + 1, k // 2)
        for i in range(n_pairs):  # padding is zeros, the pair itself has its crop size
            n, (h, w) = a["lengths"][i], a["sizes"][i]
            assert 69 <= h <= 75 and 69 <= w <= 75 and 2 <= n <= 3
            assert a["seq1"][i].sum() == _pair(a, i, "seq1").sum() and not a["replaced"][i, n:].any()


def test_preview_batch_0_is_what_the_training_loop_trains_on(tmp_path, renders, monkeypatch):
    """Run one real optimisation step and record the pairs and targets the model and the loss receive."""
    seen: dict[str, list] = {}
    forward, head_losses = loop.ContrastiveModel.forward, loop.head_losses

    def record_forward(self, pairs):  # noqa: ANN001, ANN202
        seen["pairs"] = [(a.clone(), b.clone()) for a, b in pairs]
        return forward(self, pairs)

    def record_losses(p1, p2, targets):  # noqa: ANN001, ANN202
        seen["targets"] = targets.detach().clone()
        return head_losses(p1, p2, targets)

    monkeypatch.setattr(loop.ContrastiveModel, "forward", record_forward)
    monkeypatch.setattr(loop, "head_losses", record_losses)
    one_size = dict(PAIRS, crop_max=69, segment_pixels=69 * 69 * 2)  # one tensor shape: oneDNN kernels built once
    train(cfg_for(tmp_path, renders, pairs=one_size, stop_after_steps=1))
    a = read_npz(preview(cfg_for(tmp_path, renders, pairs=one_size), tmp_path / "p", 1)[0])
    assert len(seen["pairs"]) == len(a["seq1"])
    for i, (s1, s2) in enumerate(seen["pairs"]):
        np.testing.assert_array_equal(_pair(a, i, "seq1"), s1.numpy())
        np.testing.assert_array_equal(_pair(a, i, "seq2"), s2.numpy())
    np.testing.assert_array_equal(a["targets"], seen["targets"].T.numpy())  # the loop stacks them (K, B)


def test_train_script_preview_flags(tmp_path, renders, capsys):
    import train as train_script

    flags = ["--preset", "cpu-smoke", "--renders", str(renders), "--runs-dir", str(tmp_path / "runs"), "--epochs",
             "1", "--scene-repeats", "2", "--batch-size", "2", "--workers", "0", "--val-pairs", "0", "--weights",
             "1", "0.5", "0.2", "0", "0", "--crop-min", "69", "--crop-max", "75", "--crop-margin", "4",
             "--segment-pixels", str(69 * 69 * 3)]
    assert train_script.main([*flags, "--preview", str(tmp_path / "pv"), "--preview-batches", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "pv").iterdir()) == ["batch_000.npz", "batch_000.png"]
    assert not (tmp_path / "runs").exists()
    # the same flags without --preview give the same config: what the preview showed is what trains
    assert train_script.parse_job([*flags, "--preview", "x"])[0] == train_script.parse_args(flags)[0]
    first = read_npz(tmp_path / "pv" / "batch_000.npz")["seq1"]
    torch.testing.assert_close(torch.from_numpy(first), torch.from_numpy(read_npz(
        preview(train_script.parse_args(flags)[0], tmp_path / "pv2", 1)[0])["seq1"]), rtol=0, atol=0)
    for bad in (["--preview-batches", "2"], ["--preview", "x", "--preview-batches", "0"],
                ["--preview", "x", "--resume", "whatever"]):
        with pytest.raises(SystemExit) as e:
            train_script.parse_job([*flags, *bad])
        assert e.value.code == 2
        assert "preview" in capsys.readouterr().err
