"""``--recipe upstream`` against the authors' own code: the CC0 wheel's ``qa_methods.py`` and ``sequence_models.py``.

The wheel (``make setup`` puts it in .cache/wheels/) is extracted into tmp_path and its modules are loaded by file
path; the modules they import that this environment lacks (torchvision) are stubbed in ``sys.modules`` for the
test only. Without the wheel these tests skip, except under CI (env CI set), where they fail.

What is compared: the SSIM and PSNR targets (≤ 1e-6), and the BatchNorm running statistics of the view encoder
after training-mode forwards of one batch (our per-frame-index batching against their ``forward``). The noises
are checked against the documented parameters (upstream's ``train_utils.py`` is not in the wheel).
"""

from __future__ import annotations

import importlib.util
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from consts import ROOT
from models.nvs_sqa import ModelConfig
from models.ssim import gaussian_window
from models.training.contrastive import ContrastiveModel
from models.training.device_targets import batch_targets
from models.training.pairs import (
    NOISES,
    RECIPES,
    PairConfig,
    PairDataset,
    noise_frame_upstream,
    noise_values_upstream,
    scan_renders,
)
from models.training.targets import pair_targets
from tests.conftest import _need

UPSTREAM = RECIPES["upstream"]
NEEDED = (True, True, True, False, False)


# --------------------------------------------------------------------------------------------- their code
def _wheel() -> Path:
    wheels = sorted((ROOT / ".cache" / "wheels").glob("nvs_sqa-*.whl"))
    return _need(wheels[-1] if wheels else ROOT / ".cache" / "wheels" / "nvs_sqa-*.whl",
                 "the authors' wheel; run `make setup`")


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def upstream(tmp_path, monkeypatch) -> types.SimpleNamespace:
    """Their ``qa_methods``, ``encoders`` and ``sequence_models`` modules, loaded from the extracted wheel."""
    with zipfile.ZipFile(_wheel()) as zf:
        zf.extractall(tmp_path, [n for n in zf.namelist() if n.startswith("nvs_sqa/models/")])
    models_dir = tmp_path / "nvs_sqa" / "models"
    # torchvision is only used for a transforms.Compose/ToTensor in an inference helper: stub it
    tv = types.ModuleType("torchvision")
    tv.transforms = types.SimpleNamespace(Compose=lambda ts: ts, ToTensor=lambda: None)
    pkg = types.ModuleType("upstream_nvs_sqa")  # the package `from . import encoders` resolves against
    pkg.__path__ = [str(models_dir)]
    for name, mod in {"torchvision": tv, "torchvision.transforms": tv.transforms, "upstream_nvs_sqa": pkg}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    for name in ("qa_methods", "encoders", "sequence_models"):
        monkeypatch.delitem(sys.modules, f"upstream_nvs_sqa.{name}", raising=False)
    qa = _load("upstream_nvs_sqa.qa_methods", models_dir / "qa_methods.py")
    enc = _load("upstream_nvs_sqa.encoders", models_dir / "encoders.py")
    pkg.encoders = enc
    seq = _load("upstream_nvs_sqa.sequence_models", models_dir / "sequence_models.py")
    for name in ("qa_methods", "encoders", "sequence_models"):  # cleaned up after the test
        monkeypatch.setitem(sys.modules, f"upstream_nvs_sqa.{name}", sys.modules[f"upstream_nvs_sqa.{name}"])
    return types.SimpleNamespace(qa=qa, encoders=enc, seq=seq)


def _their_targets(qa, s1: torch.Tensor, s2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Their SSIM and PSNR targets of (B, T, 3, H, W) batches in [0, 1], as upstream's loss calls them.

    Evaluated in float64: their code with its window (checked equal to ours to float32 precision) given in
    float64. In float32 their result is off the exact value by up to ~5e-6 on smooth frames (E[x²] − μ² cancels,
    and a window summing to 1 ± 1e-7 is amplified there), so that is compared to 1e-5 only; ours computes the
    SSIM target in float64.
    """
    window = qa.create_window
    exact = gaussian_window().outer(gaussian_window())  # float64, sums to 1
    assert torch.allclose(window(11, 1.5, 1, "cpu")[0, 0].double(), exact, rtol=1e-6, atol=1e-9)
    if s1.dtype == torch.float64:
        qa.create_window = lambda size, sigma, channel, device: exact.expand(channel, 1, size, size).to(device)
    try:
        ssim = qa.sequence_ssim(s1, s2, ssim_range=(-4, 1))  # clamp(((s + 1) / 2) · 5 − 4, −1, 1)
    finally:
        qa.create_window = window
    psnr = qa.psnr_metric(s1, s2, min_psnr=10, max_psnr=40)
    return ssim, psnr


def _batch(seed: int, b: int = 4, t: int = 5, h: int = 40, w: int = 52) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, 3, H, W) uint8 sequence pairs: pair 0 identical, pair 1 unrelated (a fully replaced sequence of
    another 'method'), the others noisy copies of different strength."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(b, t, 3, h // 4, w // 4, generator=g)
    s1 = torch.nn.functional.interpolate(base.flatten(0, 1), size=(h, w), mode="bilinear").view(b, t, 3, h, w)
    s1 = (s1 * 255).round().to(torch.uint8)
    s2 = s1.clone()
    s2[1] = (torch.rand(t, 3, h, w, generator=g) * 255).to(torch.uint8)
    for i in range(2, b):
        noise = torch.randn(t, 3, h, w, generator=g) * (3 * i)
        s2[i] = (s1[i].float() + noise).clamp(0, 255).to(torch.uint8)
    return s1, s2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_and_psnr_targets_equal_theirs(upstream, seed):
    s1, s2 = _batch(seed)
    theirs_ssim, theirs_psnr = _their_targets(upstream.qa, s1.double() / 255, s2.double() / 255)
    ours = np.stack([pair_targets(a, b, 1.0, NEEDED, recipe=UPSTREAM) for a, b in zip(s1, s2, strict=True)])
    assert np.abs(ours[:, 0] - theirs_ssim.numpy()).max() <= 1e-6
    assert np.abs(ours[:, 1] - theirs_psnr.numpy()).max() <= 1e-6
    fp32 = _their_targets(upstream.qa, s1.float() / 255, s2.float() / 255)  # their code as it runs upstream
    assert np.abs(ours[:, 0] - fp32[0].numpy()).max() <= 1e-5 and np.abs(ours[:, 1] - fp32[1].numpy()).max() <= 1e-6
    assert ours[0, 0] == ours[0, 1] == 1.0  # identical sequences: +1 (PSNR +inf -> 40 -> +1 per frame)
    # the paper recipe (valid-window SSIM of the mean, PSNR of the mean) is a different number
    paper = np.stack([pair_targets(a, b, 1.0, NEEDED) for a, b in zip(s1, s2, strict=True)])
    assert np.abs(paper[2:, :2] - theirs_ssim.numpy()[2:, None].repeat(2, 1)).max() > 1e-4


def test_targets_of_built_pairs_equal_theirs(upstream, tmp_path):
    """Through the whole data path: pairs of --recipe upstream (replaced or not), scored as the loop scores a
    batch, give their targets."""
    from tests.training.test_training import TINY_PAIRS, make_renders

    scenes = scan_renders(make_renders(tmp_path / "r", {"sceneA": 2, "sceneB": 3}))
    ds = PairDataset(scenes, PairConfig(**TINY_PAIRS), seed=0, per_epoch=8, batch_size=4)
    items = [ds[i] for i in range(8)]
    targets = batch_targets(items, UPSTREAM, NEEDED).numpy()
    kinds = {bool(it["spec"].replaced) for it in items}
    assert kinds == {True, False}, "want replaced and unreplaced pairs in the sample"
    for it, t in zip(items, targets, strict=True):
        s1, s2 = it["seq1"][None].double() / 255, it["seq2"][None].double() / 255
        ssim, psnr = _their_targets(upstream.qa, s1, s2)
        assert abs(t[0] - float(ssim)) <= 1e-6 and abs(t[1] - float(psnr)) <= 1e-6
        assert t[2] == pytest.approx(1 - 2 * it["spec"].ratio)  # the replace target stays 1 − 2r either way
        if not it["spec"].replaced:  # sequence 2 *is* sequence 1 (same noise)
            assert torch.equal(it["seq1"], it["seq2"]) and t[0] == t[1] == 1.0


# --------------------------------------------------------------------------------------------- BatchNorm
def _their_model(seq):  # noqa: ANN001, ANN202
    c = ModelConfig()
    return seq.EfficientSequenceModel(model_type="TransEncoder", enc_type="normal", img_mode="RGB",
                                      view_enc_size=c.view_enc_size, with_low_level=list(c.with_low_level),
                                      angular_feat_size=c.angular_feat_size, fusion=c.fusion,
                                      num_layers=c.num_layers, nhead=c.nhead, version="v0.0.1")


def _bn_stats(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


def test_frame_index_batching_gives_their_batchnorm_statistics(upstream):
    torch.manual_seed(0)
    ours = ContrastiveModel(ModelConfig(), batching="frame_index")
    theirs = _their_model(upstream.seq)
    theirs.load_state_dict(ours.encoder.state_dict())  # same names (strict): identical weights
    assert _bn_stats(theirs.view_encoder), "no BatchNorm layers found"
    g = torch.Generator().manual_seed(1)
    b, t = 3, 4
    seq1 = (torch.rand(b, t, 3, 72, 80, generator=g) * 255).to(torch.uint8)
    seq2 = (torch.rand(b, t, 3, 72, 80, generator=g) * 255).to(torch.uint8)
    ours.train()
    theirs.train()
    ours([(x, y) for x, y in zip(seq1, seq2, strict=True)])  # loop.py's training forward
    with torch.no_grad():  # contrast_learning.py: the batch of sequences 1, then the batch of sequences 2
        theirs(seq1.float() / 255)
        theirs(seq2.float() / 255)
    a, c = _bn_stats(ours.encoder.view_encoder), _bn_stats(theirs.view_encoder)
    assert a.keys() == c.keys()
    for k in a:
        assert torch.allclose(a[k].double(), c[k].double(), rtol=1e-5, atol=1e-6), k
    # the paper recipe's batching (one pair's 2·T frames at a time) moves the statistics differently
    torch.manual_seed(0)
    pair = ContrastiveModel(ModelConfig(), batching="pair")
    pair([(x, y) for x, y in zip(seq1, seq2, strict=True)])
    other = _bn_stats(pair.encoder.view_encoder)
    assert any(not torch.allclose(other[k].double(), c[k].double(), rtol=1e-5, atol=1e-6)
               for k in c if "running_mean" in k)
    # and in eval mode the two networks compute the same representation
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        za = ours.encoder(seq1.float() / 255)
        zc = theirs(seq1.float() / 255)
    assert torch.allclose(za, zc, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------- noise
def test_upstream_noise_moments():
    rng = np.random.default_rng(0)
    frame = np.full((200, 300, 3), 100, np.uint8)
    g = noise_values_upstream(frame, 0, rng) - 100  # Gaussian, σ² = 0.1 on 0–255 values
    assert abs(g.mean()) < 0.01 and abs(g.std() - 0.1**0.5) < 0.005
    m = noise_values_upstream(frame, 4, rng) / 100  # multiplicative N(1, 0.05)
    assert abs(m.mean() - 1) < 0.001 and abs(m.std() - 0.05) < 0.001
    s = (noise_values_upstream(frame, 2, rng) - 100) / 100  # speckle x + x·N(0, 1)
    assert abs(s.mean()) < 0.01 and abs(s.std() - 1) < 0.01
    two = np.where(np.arange(300) % 2, 100, 101).astype(np.uint8)[None, :, None].repeat(200, 0).repeat(3, 2)
    p = noise_values_upstream(two, 3, rng)  # Poisson: 2 unique values -> v = 2: poisson(2x) / 2
    assert np.allclose(p * 2, np.round(p * 2)) and abs(p.mean() - 100.5) < 0.05
    assert abs(p[:, 0::2].var() - 100 / 2) < 2  # var = x / v
    sp = noise_values_upstream(frame, 1, rng)
    n = int(np.ceil(0.04 * frame.size / 2))
    assert set(np.unique(sp)) == {0.0, 1.0, 100.0}  # salt is 1, not 255
    assert 0.9 * n < np.sum(sp == 1) <= n and 0.9 * n < np.sum(sp == 0) <= n  # collisions only lower the counts
    assert np.sum(sp[:, :, 0] != 100) > 0 and np.sum(sp[:, :, 1] != 100) > 0  # the channel axis is drawn too
    # randint(0, i): every index, the last row, column and channel included
    assert (sp[:, :, 2] != 100).any() and (sp[-1] != 100).any() and (sp[:, -1] != 100).any()
    # after keys 0–4: clip, then truncation (not rounding) to uint8
    for key in range(5):
        want = np.clip(noise_values_upstream(frame, key, np.random.default_rng(7)), 0, 255).astype(np.uint8)
        assert np.array_equal(noise_frame_upstream(frame, key, np.random.default_rng(7), (10, 75)), want)
    g8 = noise_frame_upstream(frame, 0, np.random.default_rng(1), (10, 75))
    assert abs(np.mean(g8 == 99) - 0.5) < 0.01  # a negative noise truncates down: half the values
    for key, name in enumerate(NOISES):
        if name == "none":
            assert noise_frame_upstream(frame, key, rng, (10, 75)) is frame


def test_upstream_jpeg_quality_is_drawn_per_frame(monkeypatch):
    from PIL import Image

    seen = []
    save = Image.Image.save

    def spy(self, fp, format=None, **kw):  # noqa: A002, ANN001, ANN003, ANN202
        seen.append(kw.get("quality"))
        return save(self, fp, format, **kw)

    monkeypatch.setattr(Image.Image, "save", spy)
    rng = np.random.default_rng(0)
    frame = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    out = [noise_frame_upstream(frame, 5, rng, (10, 75)) for _ in range(20)]
    assert all(o.dtype == np.uint8 and o.shape == frame.shape for o in out)
    assert all(10 <= q <= 75 for q in seen) and len(set(seen)) > 5
