"""--precision: which mode runs where (native bfloat16 detection, the one-line fallback), which layers run in
which type, and the mixed mode's parity: within 1e-4 of the release's features on the examples; on sequences made
here (downscaled, degraded, noisy, long) within the larger bound docs/scoring.md states. Where this CPU has no
native bfloat16 the mixed layers run in oneDNN's emulation: the same roundings, so the same errors, only slower."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from consts import PUBLISHED_EXAMPLE_SCORES
from models.errors import InputError
from models.nvs_sqa import NVSSQA, precision
from models.nvs_sqa.app_config import AppConfig
from models.nvs_sqa.precision import PRECISIONS, Cast, apply_precision, cpu_flags, native_bf16, resolve_precision

CPU = torch.device("cpu")


def test_cpu_flags_and_native_bf16(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nprocessor\t: 1\nflags\t: fpu\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512f", "avx512_bf16"}  # the first core's
    assert cpu_flags(tmp_path / "missing") == set()
    assert native_bf16({"avx512_bf16"}) and native_bf16({"amx_bf16", "avx2"})
    assert not native_bf16({"avx2", "avx512f", "avx512bw"})  # AVX-512 without BF16 only emulates it


@pytest.mark.parametrize(("requested", "flags", "runs", "says"), [
    ("exact", set(), "exact", None),
    ("exact", {"avx512_bf16"}, "exact", None),
    ("mixed", {"avx512_bf16"}, "mixed", None),
    ("bf16", {"amx_bf16"}, "bf16", None),
    ("mixed", {"avx2"}, "exact", "precision='mixed': this CPU has no native bfloat16"),
    ("bf16", set(), "exact", "precision='bf16': this CPU has no native bfloat16"),
    ("fp16", {"avx512_bf16"}, "exact", "precision='fp16': float16 is for CUDA"),
])  # fmt: skip
def test_resolve_precision_on_cpu(requested, flags, runs, says):
    mode, why = resolve_precision(requested, CPU, flags)
    assert mode == runs
    assert (why is None) if says is None else why.startswith(says) and "running exact (float32)" in why


def test_unknown_precision_is_one_line():
    with pytest.raises(InputError, match="precision='half': use one of exact, mixed, bf16, fp16"):
        resolve_precision("half", CPU)


def test_app_choices_are_the_modes():
    import dataclasses

    field = next(f for f in dataclasses.fields(AppConfig) if f.name == "precision")
    assert field.metadata["choices"] == PRECISIONS and field.default == "exact"


def test_fallback_warns_once_and_runs_exact(released_dir, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx2"})
    with caplog.at_level(logging.WARNING):
        m = NVSSQA.from_checkpoint(None, "cpu", precision="mixed")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["precision='mixed': this CPU has no native bfloat16 (AVX512_BF16 or AMX), where bfloat16 is "
                      "slower than float32; running exact (float32)"]
    assert m.precision == "exact" and m.precision_requested == "mixed"
    assert all(p.dtype == torch.float32 for p in m._encoder.parameters())


def test_native_cpu_gets_the_mixed_layout(released_dir, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: {"avx512_bf16"})
    enc = NVSSQA.from_checkpoint(None, "cpu", precision="mixed")._encoder
    dtypes = {name.split(".")[0]: p.dtype for name, p in enc.named_parameters()}
    assert dtypes["conv_0"] == dtypes["low_level_convs"] == torch.float32
    trunk = {k: v for k, v in dtypes.items() if k not in ("conv_0", "low_level_convs")}
    assert set(trunk) == {"fused_conv_1", "fused_conv_2", "fused_conv_3", "fused_conv_4", "dwise_conv_1",
                          "dwise_conv_2", "pwise_conv", "out_feats"}
    assert set(trunk.values()) == {torch.bfloat16}
    assert isinstance(enc.out_feats, Cast) and enc.out_feats.out == torch.float32


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    x = np.random.default_rng(3).integers(0, 256, (2, 128, 160, 3), dtype=np.uint8)
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=torch.channels_last)


def test_modes_order_by_error(released_model, clip):
    """bf16 everywhere errs more than mixed; both return float32 features of the same shape."""
    base = released_model._encoder
    with torch.inference_mode():
        exact = base(clip)
        err = {}
        for mode in ("mixed", "bf16"):
            out = apply_precision(base, mode)(clip)
            assert out.dtype == torch.float32 and out.shape == exact.shape
            err[mode] = float((out - exact).abs().max())
    assert 0 < err["mixed"] < err["bf16"]
    assert apply_precision(base, "exact") is base


@pytest.fixture(scope="module")
def mixed_model(released_dir) -> NVSSQA:
    return NVSSQA.from_checkpoint(None, device="cpu", precision="mixed", emulate=True)  # emulated: no native bf16


@pytest.mark.parametrize("name", sorted(PUBLISHED_EXAMPLE_SCORES))
def test_mixed_parity_with_upstream_release(name, mixed_model, shared_dir):
    feats = np.load(shared_dir / "reference" / "features.npz")
    scores = json.loads((shared_dir / "reference" / "scores.json").read_text())
    f = mixed_model.features(shared_dir / "examples" / name)
    assert f.dtype == np.float32 and np.abs(f - feats[name]).max() <= 1e-4
    assert abs(float(mixed_model.predict(f)[0]) - scores[name]["score"]) <= 5e-3


def test_exact_turns_tf32_off_on_cuda_only_and_restores_it():
    """cuDNN may use TF32 for float32 convolutions on CUDA (PyTorch's default on Ampere and later; an H200 run
    measured the default on): ``exact`` turns it off for the encoder's call and puts the caller's setting back."""
    import torch

    from models.nvs_sqa.precision import exact_float32

    cudnn = torch.backends.cudnn
    before = cudnn.allow_tf32
    try:
        for setting in (True, False):
            cudnn.allow_tf32 = setting
            with exact_float32(torch.device("cuda")):
                assert cudnn.allow_tf32 is False
            assert cudnn.allow_tf32 is setting
            with exact_float32(torch.device("cpu")):
                assert cudnn.allow_tf32 is setting  # nothing to do off CUDA
        cudnn.allow_tf32 = True
        with pytest.raises(RuntimeError), exact_float32(torch.device("cuda")):
            raise RuntimeError("the encoder failed")
        assert cudnn.allow_tf32 is True  # restored on the way out of an error too
    finally:
        cudnn.allow_tf32 = before


def test_emulate_runs_bfloat16_modes_without_native_support_but_not_fp16_on_a_cpu():
    assert resolve_precision("mixed", CPU, {"avx2"}, emulate=True) == ("mixed", None)
    assert resolve_precision("bf16", CPU, set(), emulate=True) == ("bf16", None)
    assert resolve_precision("fp16", CPU, set(), emulate=True)[0] == "exact"  # no float16 convolutions on a CPU
