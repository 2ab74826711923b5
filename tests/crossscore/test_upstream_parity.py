"""CrossScore as upstream's code behaves for a user with CrossScore-v1.0.0.ckpt: DINOv2's position-embedding
interpolation of transformers 4.33.3 (fixture from the real 4.33.3, see calibration/make_posembed_fixture.py) and a
full-size checkpoint in upstream's exact key layout (random tensors, written here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"

import crossscore  # noqa: E402
from models.crossscore.checkpoint import _LEGACY, _rename, load_model  # noqa: E402
from models.crossscore.network import CrossScoreConfig, set_pos_interpolation  # noqa: E402
from models.errors import InputError  # noqa: E402

CAL = Path(__file__).parent / "calibration"
META = json.loads((CAL / "posembed_hf433.json").read_text())


def _pattern(h: int, w: int) -> np.ndarray:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_posembed_fixture", CAL / "make_posembed_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # numpy only at import: the script imports transformers inside its functions
    return mod.pattern(h, w)


@pytest.fixture(scope="module")
def fixture_model():
    """The fixture's tiny DINOv2 in the installed transformers (5.x), its 4.33.3 tensor names mapped."""
    from transformers import Dinov2Config, Dinov2Model

    arrays = np.load(CAL / "posembed_hf433.npz")
    state = {_rename(k[len("param/"):], _LEGACY): torch.from_numpy(arrays[k])
             for k in arrays.files if k.startswith("param/")}
    model = Dinov2Model(Dinov2Config(**META["tiny"])).eval()
    model.load_state_dict(state, strict=True)
    return model, arrays


@pytest.mark.parametrize("case", META["cases"], ids=lambda c: f"{c['height']}x{c['width']}")
def test_pos_embedding_as_transformers_433(fixture_model, case):
    model, arrays = fixture_model
    h, w = case["height"], case["width"]
    x = torch.from_numpy(_pattern(h, w))
    dummy = torch.zeros(1, (h // 14) * (w // 14) + 1, META["tiny"]["hidden_size"])
    want_pos, want_tok = arrays[f"pos/{h}x{w}"], arrays[f"tokens/{h}x{w}"]
    set_pos_interpolation(model, "hf-4.33")
    with torch.no_grad():
        pos = model.embeddings.interpolate_pos_encoding(dummy, h, w).numpy()
        tok = model(pixel_values=x).last_hidden_state[:, ::3].numpy()
        set_pos_interpolation(model, "hf-5")
        pos5 = model.embeddings.interpolate_pos_encoding(dummy, h, w).numpy()
    assert pos.shape == want_pos.shape and tok.shape == want_tok.shape
    assert np.abs(pos - want_pos).max() <= 1e-5 and np.abs(tok - want_tok).max() <= 1e-5
    # the fixture tells the two rules apart: transformers 5.x's own rule differs except on 518x518 itself
    if (h, w) == (518, 518):
        assert np.array_equal(pos5, want_pos)
    else:
        assert np.abs(pos5 - want_pos).max() > 1e-3


def test_which_rule_a_checkpoint_uses(tmp_path):
    assert CrossScoreConfig().pos_interp == "hf-4.33"  # new trainings: upstream's rule
    old = CrossScoreConfig.from_dict({"backbone": "tiny"})  # a config.json written before the field
    assert old.pos_interp == "hf-5"  # what those models were trained and tested with
    with pytest.raises(InputError, match="pos_interp 'bilinear' is not one of"):
        CrossScoreConfig.from_dict({"pos_interp": "bilinear"})


# --------------------------------------------------------------------------------------------- full-size fake
def _upstream_state(seed: int) -> dict[str, torch.Tensor]:
    """Upstream's Lightning ``state_dict`` layout: DINOv2-S as transformers 4.33.3 names it (from the fixture),
    the decoder as ``nn.TransformerDecoder`` (2 layers, 8 heads, ff = hidden), the head, the table, the buffer."""
    g = torch.Generator().manual_seed(seed)
    sd = {f"model.backbone.{k}": torch.randn(shape, generator=g) * 0.02
          for k, shape in META["dinov2_small_state_dict"].items()}
    dec = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(384, 8, 384, 0.0, batch_first=True), 2)
    head = torch.nn.Sequential(torch.nn.Linear(384, 384), torch.nn.LeakyReLU(), torch.nn.Linear(384, 196))
    for prefix, module in (("model.ref_cross.attn.", dec), ("model.ref_cross.head.", head)):
        sd.update({prefix + k: torch.randn(v.shape, generator=g) * 0.05 for k, v in module.state_dict().items()})
    sd["model.pos_enc_fn.PE"] = torch.randn(1, 40, 40, 384, generator=g)
    sd["model.img_mean_std"] = torch.tensor([0.485, 0.456, 0.406, 0.229, 0.224, 0.225])
    return sd


@pytest.fixture(scope="module")
def upstream_ckpt(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    sd = _upstream_state(0)
    path = tmp_path_factory.mktemp("up") / "CrossScore-v1.0.0.ckpt"
    torch.save({"state_dict": sd, "epoch": 8, "global_step": 1000, "pytorch-lightning_version": "2.2.1",
                "hyper_parameters": {"cfg": {"model": {"patch_size": 14}}}}, path)
    return path, sd


def test_full_size_upstream_checkpoint_loads_strictly(upstream_ckpt):
    path, sd = upstream_ckpt
    net, info = load_model(path)
    assert info["format"] == "upstream-lightning" and net.cfg.pos_interp == "hf-4.33"
    ours = net.state_dict()
    assert len(ours) == len(sd)  # strict: every tensor of the file, and nothing else
    for k, v in sd.items():
        assert torch.equal(ours[_rename(k[len("model."):], _LEGACY)], v), k
    assert net.cfg.backbone_config["hidden_size"] == 384 and net.cfg.n_layers == 2


def test_full_size_upstream_checkpoint_predicts(upstream_ckpt, tmp_path):
    path, _ = upstream_ckpt
    rng = np.random.default_rng(0)
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(refs / f"r{i}.png")
    q = tmp_path / "render.png"
    Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(q)
    out = tmp_path / "out"
    assert crossscore.main(["predict", str(q), "--references", str(refs), "--checkpoint", str(path),
                            "--short-side", "56", "--out", str(out), "--quiet"]) == 0
    m = np.load(out / "maps" / "render.npy")
    assert m.shape == (60, 80) and 0 <= m.min() and m.max() <= 1  # the render's own size
    row = __import__("json").loads((out / "scores.json").read_text())["rows"][0]
    assert (row["working_height"], row["working_width"]) == (56, 70)  # 56x74 -> 4x5 patches of 14
    rows = list(__import__("csv").DictReader((out / "scores_upstream.csv").open()))
    assert float(rows[0]["pred_ssim_0_1"]) == pytest.approx(row["pred_ssim"], abs=1e-4)


@pytest.mark.parametrize("damage", ["truncated", "wrong_shape", "missing_key"])
def test_damaged_upstream_checkpoint_is_one_line(upstream_ckpt, tmp_path, capsys, damage):
    path, sd = upstream_ckpt
    bad = tmp_path / "CrossScore-v1.0.0.ckpt"
    if damage == "truncated":
        data = path.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        sd = dict(sd)
        if damage == "wrong_shape":
            sd["model.ref_cross.head.2.weight"] = torch.zeros(100, 384)
        else:
            del sd["model.backbone.encoder.layer.11.mlp.fc2.weight"]
        torch.save({"state_dict": sd}, bad)
    q = tmp_path / "q.png"
    Image.new("RGB", (28, 28)).save(q)
    capsys.readouterr()
    assert crossscore.main(["predict", str(q), "--references", str(tmp_path), "--checkpoint", str(bad),
                            "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: "), err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------- test metrics
def test_upstream_test_metrics_pool_pixels_per_batch():
    from models.crossscore.evaluate import _sums, upstream_metrics

    g = torch.Generator().manual_seed(0)
    preds = [torch.rand(28, 42, generator=g) for _ in range(5)]
    trues = [(p * 0.5 + torch.rand(28, 42, generator=g) * 0.5) ** (1 + i) for i, p in enumerate(preds)]
    rows = [_sums(p, t) for p, t in zip(preds, trues, strict=True)]
    got = upstream_metrics(rows, batch=2)
    # upstream's test_step per batch (utils/evaluation/metric.py): corrcoef of the flattened batch, L1, abs2psnr;
    # Lightning's epoch value: the mean over batches weighted by batch size (2, 2, 1)
    per = []
    for i in range(0, 5, 2):
        p, t = torch.stack(preds[i:i + 2]).double(), torch.stack(trues[i:i + 2]).double()
        l1 = (p - t).abs().mean()
        corr = torch.stack([p.flatten(), t.flatten()]).corrcoef()[0, 1]
        per.append((len(preds[i:i + 2]), float(l1), float(-10 * torch.log10(l1.pow(2))), float(corr)))
    w = np.array([n for n, *_ in per], float) / 5
    for j, key in enumerate(("upstream_l1", "upstream_psnr", "upstream_pearson")):
        assert got[key] == pytest.approx(float(np.dot(w, [v[1 + j] for v in per])), abs=1e-10)
    mean_of_images = np.mean([np.corrcoef(p.flatten(), t.flatten())[0, 1] for p, t in zip(preds, trues, strict=True)])
    assert abs(got["upstream_pearson"] - mean_of_images) > 1e-3  # the two definitions really differ here
