"""models/unpickle.py: the one allow-list unpickler of the three weight loaders rebuilds arrays, tensors and plain
containers, refuses anything else (or makes it an inert stand-in where a loader says so), and runs no code from
the file. Each loader's own refusal is tested beside it (tests/nvs_sqa/test_checkpoint.py,
tests/crossscore/test_network.py, tests/fullref/test_weights.py)."""

from __future__ import annotations

import ast
import collections
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from consts import ROOT
from models import unpickle


class _Touch:
    """A pickle that, loaded by a plain unpickler, would create the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _Custom:
    def __init__(self) -> None:
        self.x = 1


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_scalars_and_containers_are_rebuilt(protocol):
    obj = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.float64(2.5), "i": np.int64(-3),
           "o": collections.OrderedDict(k=[1, 2]), "set": {1, 2}, "fs": frozenset({3}), "sl": slice(1, 5, 2),
           "b": b"\x00\xff", "t": (1.0, "x", None)}  # fmt: skip
    got = unpickle.loads(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(got["a"], obj["a"])
    assert got["a"].dtype == np.float32 and got["s"] == 2.5 and type(got["o"]) is collections.OrderedDict
    assert {k: v for k, v in got.items() if k != "a"} == {k: v for k, v in obj.items() if k != "a"}


def test_code_and_classes_are_refused_by_name_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load (posix|os)\.system from w\.pkl: only arrays"):
        unpickle.loads(pickle.dumps({"x": _Touch(marker)}), source="w.pkl")
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load builtins\.eval"):
        unpickle.loads(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load tests\.test_unpickle\._Custom"):
        unpickle.loads(pickle.dumps(_Custom()))
    assert not marker.exists()


def test_stand_ins_keep_what_was_pickled_and_run_nothing(tmp_path):
    marker = tmp_path / "ran"
    got = unpickle.loads(pickle.dumps([_Touch(marker), _Custom()]), stand_ins=unpickle.ANY)
    assert not marker.exists()
    assert all(isinstance(g, unpickle.StandIn) for g in got)
    assert got[0].global_name in ("posix.system", "os.system") and got[0].args == (f"touch {marker}",)
    assert got[1].global_name == "tests.test_unpickle._Custom" and got[1].state == {"x": 1}
    only = unpickle.loads(pickle.dumps(_Custom()), stand_ins={"tests.test_unpickle._Custom"})
    assert only.state == {"x": 1}
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):  # a stand-in is for the names given
        unpickle.loads(pickle.dumps([_Custom(), _Touch(marker)]), stand_ins={"tests.test_unpickle._Custom"})


def test_torch_load_rebuilds_tensors_and_runs_no_code(tmp_path):
    marker, path = tmp_path / "ran", tmp_path / "lightning.ckpt"
    state = {"w": torch.randn(3, 2), "b": torch.arange(4, dtype=torch.int64), "h": torch.ones(2, dtype=torch.bfloat16)}
    torch.save({"state_dict": state, "hyper_parameters": _Touch(marker), "epoch": 3}, path)
    got = unpickle.torch_load(path)
    assert not marker.exists() and got["epoch"] == 3 and isinstance(got["hyper_parameters"], unpickle.StandIn)
    assert all(torch.equal(got["state_dict"][k], v) and got["state_dict"][k].dtype == v.dtype for k, v in state.items())
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        unpickle.torch_load(path, stand_ins=())


def test_one_unpickler_serves_the_three_loaders():
    """The allow-list has one home: no other module of models/ subclasses an Unpickler or resolves globals, and
    each loader that reads foreign pickles goes through models.unpickle."""
    own = []
    for path in sorted((ROOT / "models").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "find_class" or \
                    isinstance(node, ast.Attribute) and node.attr == "Unpickler":  # fmt: skip
                own.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert all(w.startswith("models/unpickle.py:") for w in own), own
    for loader in ("nvs_sqa/checkpoint.py", "crossscore/checkpoint.py", "fullref/weights.py"):
        tree = ast.parse((ROOT / "models" / loader).read_text())
        assert any(isinstance(n, ast.ImportFrom) and n.module == "models" and "unpickle" in [a.name for a in n.names]
                   for n in ast.walk(tree)), f"models/{loader} does not read its pickles through models.unpickle"
