"""batch_targets (how a run scores its pairs: batched, on the training device) equals pair_targets (the targets'
reference definition, one pair at a time)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.fullref.fvvdp import fvvdp_available
from models.training.device_targets import batch_targets
from models.training.pairs import PairSpec
from models.training.targets import RECIPES, pair_targets


def _batch(shapes: list[tuple[int, int, int]], seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    items = []
    for i, (t, h, w) in enumerate(shapes):
        s1 = torch.randint(0, 256, (t, 3, h, w), dtype=torch.uint8, generator=g)
        noise = torch.randint(-20, 21, s1.shape, generator=g)
        s2 = s1.clone() if i == 0 else (s1.int() + noise).clamp(0, 255).to(torch.uint8)  # pair 0: identical
        spec = PairSpec("s", "a", "b", (0, 0, w, h), False, False, 0, t, [], 0.5 + 0.1 * i, (11, 11))
        items.append({"seq1": s1, "seq2": s2, "spec": spec})
    return items


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("shapes", [[(4, 40, 48)] * 3, [(4, 40, 48), (3, 36, 52), (4, 40, 48)]])
def test_batch_targets_equal_the_reference_definition(recipe, shapes):
    batch = _batch(shapes)
    needed = (True, True, True, True, False)
    got = batch_targets(batch, recipe, needed, "cpu").numpy()
    want = np.stack([pair_targets(x["seq1"], x["seq2"], x["spec"].ratio, needed, recipe=RECIPES[recipe])
                     for x in batch])
    assert got.shape == (len(batch), 5) and got.dtype == np.float32 and np.isnan(got[:, 4]).all()
    np.testing.assert_allclose(got[:, :3], want[:, :3], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[:, 3], want[:, 3], rtol=0, atol=1e-5)
    assert got[0, 0] == 1 and got[0, 1] == 1  # pair 0: identical sequences


def test_batch_targets_in_chunks_equal_one_call():
    batch = _batch([(3, 30, 30)] * 3 + [(2, 30, 30)])
    whole = batch_targets(batch, "upstream", (True,) * 4 + (False,))
    one_by_one = batch_targets(batch, "upstream", (True,) * 4 + (False,), chunk_values=1)
    torch.testing.assert_close(whole, one_by_one, rtol=0, atol=1e-6, equal_nan=True)


def test_batch_targets_skip_weight_zero_heads():
    got = batch_targets(_batch([(2, 24, 24)] * 2), "upstream", (False, True, False, False, False)).numpy()
    assert np.isnan(got[:, [0, 2, 3, 4]]).all() and np.isfinite(got[:, 1]).all()


@pytest.mark.skipif(not fvvdp_available(), reason="pyfvvdp not installed")
def test_batch_targets_fvvdp_equals_the_reference_definition():
    batch = _batch([(4, 64, 64), (4, 64, 64)])
    needed = (False, False, False, False, True)
    got = batch_targets(batch, "upstream", needed).numpy()[:, 4]
    want = [pair_targets(x["seq1"], x["seq2"], 0.5, needed, recipe=RECIPES["upstream"])[4] for x in batch]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


@pytest.mark.skipif(not fvvdp_available(), reason="pyfvvdp not installed")
def test_fvvdp_of_a_shape_s_pairs_in_one_call_equals_pair_by_pair():
    """The batched FovVideoVDP (CUDA's path), forced on the CPU, gives pyfvvdp's own per-pair JODs: two shapes,
    an identical pair (JOD 10), frames in pyramids of a few frames at a time."""
    batch = _batch([(5, 64, 72), (5, 64, 72), (4, 70, 64), (5, 64, 72)], seed=3)
    needed = (False, False, False, False, True)
    per_pair = batch_targets(batch, "paper", needed, fvvdp_batched=False).numpy()[:, 4]
    for chunk in (1 << 26, 4 * 64 * 72 * 3):  # all frames at once; 3 frames a pyramid
        got = batch_targets(batch, "paper", needed, fvvdp_batched=True, chunk_values=chunk).numpy()[:, 4]
        np.testing.assert_allclose(got, per_pair, rtol=0, atol=1e-6)
    assert per_pair[0] == 1.0  # identical sequences: JOD 10


@pytest.mark.skipif(not fvvdp_available(), reason="pyfvvdp not installed")
def test_fvvdp_batch_refuses_pairs_of_two_shapes():
    from models.errors import InputError
    from models.fullref.fvvdp import FovVideoVDP

    a = torch.zeros((1, 3, 3, 64, 64), dtype=torch.uint8)
    with pytest.raises(InputError, match=r"FovVideoVDP.batch: need two \(N, T, 3, H, W\) tensors of one shape"):
        FovVideoVDP().batch(a, a[:, :2])
