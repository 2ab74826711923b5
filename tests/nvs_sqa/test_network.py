"""The NVS-SQA model: parity with the upstream release, the fast path, determinism, input forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from consts import PUBLISHED_EXAMPLE_SCORES
from models.errors import InputError
from models.nvs_sqa import (
    MIN_FRAME_SIZE,
    NVSSQA,
    ModelConfig,
    SequenceModel,
    count_parameters,
    fold_batchnorm,
    optimize_for_inference,
)
from models.nvs_sqa.network import sinusoidal_encoding


@pytest.fixture(scope="module")
def reference(shared_dir):
    feats = np.load(shared_dir / "reference" / "features.npz")
    scores = json.loads((shared_dir / "reference" / "scores.json").read_text())
    return {k: feats[k] for k in feats.files}, scores


@pytest.mark.parametrize("name", sorted(PUBLISHED_EXAMPLE_SCORES))
def test_parity_with_upstream_release(name, released_model, shared_dir, reference):
    """Features to 1e-4 of the upstream release's own output; JOD to 5e-4 of the published score."""
    feats, scores = reference
    f = released_model.features(shared_dir / "examples" / name, batch_size=2)
    assert f.shape == (384,) and f.dtype == np.float32
    assert np.abs(f - feats[name]).max() <= 1e-4
    s = float(released_model.predict(f)[0])
    assert abs(s - PUBLISHED_EXAMPLE_SCORES[name]) <= 5e-4
    assert abs(s - scores[name]["score"]) <= 5e-5  # and to the release's own unrounded score


def test_released_architecture(released_model):
    m = released_model.model
    assert count_parameters(m) == 4_739_680  # 4.74 M, as the spec says
    assert m.config == ModelConfig()  # the released config is our default
    assert released_model.info["model_version"] == "v0.0.1"


def test_positional_encoding_matches_formula():
    pe = sinusoidal_encoding(5, 360)
    div = np.exp(np.arange(0, 360, 2) * -(np.log(10000.0) / 360))
    np.testing.assert_allclose(pe[3, 0::2].numpy(), np.sin(3 * div), atol=1e-6)
    np.testing.assert_allclose(pe[3, 1::2].numpy(), np.cos(3 * div), atol=1e-6)


@pytest.fixture(scope="module")
def small_clip():
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 72, 96, 3), dtype=np.uint8))


def test_fast_path_matches_plain_modules(released_model, small_clip):
    x = small_clip.permute(0, 3, 1, 2).float() / 255
    enc = released_model.model.view_encoder
    with torch.inference_mode():
        plain = enc(x)
        folded = fold_batchnorm(enc)(x)
        fast = optimize_for_inference(enc, torch.device("cpu"))(x.contiguous(memory_format=torch.channels_last))
    assert plain.shape == (3, 360)
    assert (plain - folded).abs().max() < 1e-5
    assert (plain - fast).abs().max() < 1e-5


def test_bitwise_deterministic_and_batch_invariant(released_model, small_clip):
    a = released_model.features(small_clip.numpy(), batch_size=2)
    b = released_model.features(small_clip.numpy(), batch_size=2)
    np.testing.assert_array_equal(a, b)
    c = released_model.features(small_clip.numpy(), batch_size=3)
    assert np.abs(a - c).max() < 1e-5


def test_input_forms_agree(released_model, small_clip, tmp_path):
    from PIL import Image

    arr = small_clip.numpy()
    for i, f in enumerate(arr):
        Image.fromarray(f).save(tmp_path / f"{i}.png")
    ref = released_model.features(arr)
    np.testing.assert_array_equal(released_model.features(tmp_path), ref)
    np.testing.assert_array_equal(released_model.features(sorted(tmp_path.glob("*.png"))), ref)
    np.testing.assert_array_equal(released_model.features(small_clip), ref)  # torch tensor
    np.testing.assert_array_equal(released_model.features(small_clip.float() / 255), ref)  # float in [0, 1]
    np.testing.assert_array_equal(released_model.features(small_clip.permute(0, 3, 1, 2), dim_order="TCHW"), ref)


def test_min_frame_size_is_tight(released_model):
    enc = released_model.model.view_encoder
    with torch.inference_mode():
        assert enc(torch.rand(1, 3, MIN_FRAME_SIZE, MIN_FRAME_SIZE)).shape == (1, 360)
        with pytest.raises(RuntimeError):
            enc(torch.rand(1, 3, MIN_FRAME_SIZE - 1, MIN_FRAME_SIZE - 1))


def test_training_forward_equals_inference_path():
    torch.manual_seed(0)
    model = SequenceModel().eval()
    clips = torch.rand(2, 3, 3, 72, 72)
    with torch.inference_mode():
        batched = model(clips)
        one = model.aggregate(model.encode_frames(clips[1]).unsqueeze(1))
    assert batched.shape == (2, 384)
    assert (batched[1] - one[0]).abs().max() < 1e-5


def test_config_validation():
    with pytest.raises(InputError, match="unknown config fields"):
        ModelConfig.from_dict({"bogus": 1})
    with pytest.raises(InputError, match="only TransEncoder/normal/RGB"):
        ModelConfig.from_dict({"model_type": "LSTM"})
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(InputError, match="no CUDA device"):
        NVSSQA(SequenceModel(), device="cuda")
