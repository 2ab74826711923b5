"""Every number of one method, computed once and cached: NVS-SQA (score, windows, quality curve, warnings), the
full-reference metrics per frame, FovVideoVDP per window and the CrossScore mean per frame.

Each part is cached on its own in ``OUT/cache/<part>-<key>.json``, the key hashing what the numbers depend on
(the render's content fingerprint, the checkpoint's sha256, the preset and its parameters, the ground truth's and
references' fingerprints): adding a method, or ``--gt`` to a report made without it, computes only what is new.
A cache file is written atomically when its parts finish, so an interrupted report keeps the finished methods.

The parts not cached come from one pass over the method's frames (:class:`~models.report.onepass.FramePass`):
each frame of the render and of its ground truth is decoded once and handed to every part that needs it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.cli import as_flags
from models.discovery import fingerprint
from models.errors import InputError
from models.report.onepass import STAGES, CrossScoreSink, FramePass, FullrefSink, FvvdpSink, Sink
from models.report.scene import Method
from models.report.series import CROSSSCORE, FULLREF, FVVDP, JOD, PARTS
from models.report.stats import unit_spans, unit_window
from models.results import atomic_write_json, read_json

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when a cached part's content changes meaning


@dataclass
class Models:
    """The models a report needs, each loaded once, on first use. A cache key holds the checkpoint's identity, so
    a report whose parts are all cached still loads the models it names; it computes nothing with them."""

    checkpoint: str | None = None
    crossscore_checkpoint: str | None = None
    preset: str = "nerfbaselines"
    fullref_metrics: tuple[str, ...] | None = None  # None: the preset's
    device: str = "auto"
    background: str | None = None  # what RGBA images are composited onto (None: the preset's rule)
    _loaded: dict[str, Any] = field(default_factory=dict)

    def _get(self, what: str, load: Callable[[], Any]) -> Any:
        if what not in self._loaded:
            self._loaded[what] = load()
        return self._loaded[what]

    def nvssqa(self) -> Any:
        from models.nvs_sqa import NVSSQA

        return self._get("nvssqa", lambda: NVSSQA.from_checkpoint(self.checkpoint, device=self.device))

    def fullref(self) -> Any:
        from models.fullref import FullReference

        return self._get("fullref", lambda: FullReference(self.preset, self.fullref_metrics, self.device,
                                                          self.background))

    def crossscore(self) -> Any:
        return self._get("crossscore", self._load_crossscore)

    def fvvdp(self) -> Any:
        from models.fullref.fvvdp import FovVideoVDP

        return self._get("fvvdp", lambda: FovVideoVDP("cuda" if self.device == "cuda" else "cpu"))

    def _load_crossscore(self) -> Any:
        """CrossScore, its demo-model warning naming report.py's flag (the library names the parameter)."""
        import warnings

        from models.crossscore import CrossScore
        from models.errors import ValidityWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ValidityWarning)
            cs = CrossScore.from_checkpoint(self.crossscore_checkpoint, device=self.device)
        if cs.info.get("warning"):
            cs.info["warning"] = as_flags(cs.info["warning"], {"checkpoint": "--crossscore-checkpoint"})
            warnings.warn(cs.info["warning"], ValidityWarning, stacklevel=2)
        return cs

    def identity(self, part: str) -> dict[str, Any]:
        """What a part's numbers depend on besides the inputs: the checkpoint sha256 / the preset's parameters."""
        if part == JOD:
            from models.nvs_sqa.validity import Limits

            return {"checkpoint_sha256": self.nvssqa().info.get("checkpoint_sha256", ""),
                    "limits": Limits.load().version}
        if part == FVVDP:
            from models.fullref import fvvdp

            return {"metric": "pyfvvdp", "display": fvvdp.DISPLAY, "fps": fvvdp.FPS}
        if part == FULLREF:
            d = self.fullref().describe()
            return {k: v for k, v in d.items() if k not in ("device", "torch")}
        m = self.crossscore()
        return {"checkpoint": {k: v for k, v in m.info.items() if k != "warning"}, "n_ref": m.n_ref,
                "short_side": m.short_side, "seed": m.seed}


def cache_key(part: str, inputs: list[str], identity: dict[str, Any]) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "part": part, "inputs": inputs, "identity": identity}, sort_keys=True,
                      default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class Slot:
    """One part of one method in the cache: its key, what it depends on, its file (None: no cache)."""

    part: str
    key: str
    identity: dict[str, Any]
    path: Path | None

    @classmethod
    def of(cls, cache: Path | None, part: str, inputs: list[str], models: Models) -> Slot:
        ident = models.identity(part)
        key = cache_key(part, inputs, ident)
        return cls(part, key, ident, None if cache is None else cache / f"{part}-{key}.json")

    def load(self) -> dict | None:
        """The cached result when its file holds one (an unreadable file is recomputed, saying so)."""
        if self.path is None:
            return None
        try:
            return read_json(self.path)
        except InputError as e:
            log.warning("%s; recomputing", e)
            return None

    def store(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` stamped with the part's key and identity, written to its file (atomically)."""
        result = {"part": self.part, "key": self.key, "identity": self.identity, **result}
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, result)
        return result


# ------------------------------------------------------------------------------------------ the parts
def _windows(w: Any) -> dict[str, Any] | None:
    if w is None:
        return None
    return {"starts": w.starts.tolist(), "ends": w.ends.tolist(), "scores": np.asarray(w.scores).tolist()}


def jod_part(feed: FramePass, models: Models) -> dict[str, Any]:
    """NVS-SQA on the whole render, read through the pass: the score and its windows, the quality curve, the
    validity warnings, the disjoint unit windows the comparisons pair (:func:`~models.report.stats.unit_window`,
    scored from the same per-frame features), and the frame statistics of the model's blind spots."""
    from models.nvs_sqa.validity import Limits

    lim = Limits.load()
    model = models.nvssqa()
    t, busy = time.perf_counter(), feed.busy
    try:
        a = model.assess(feed.sequence(model), limits=lim)
        units = None
        if a.score is not None and a.frame_features is not None:
            w = unit_window(a.n_frames, lim.min_frames, lim.curve_window)
            spans = unit_spans(a.n_frames, w)
            if spans:
                reps = np.stack([model.aggregate(a.frame_features[s:e]) for s, e in spans])
                units = {"starts": [s for s, _ in spans], "ends": [e for _, e in spans],
                         "scores": np.asarray(model.predict(reps)).tolist()}
    finally:
        STAGES[JOD] += max(time.perf_counter() - t - (feed.busy - busy), 0.0)
    st = a.stats
    return {"score": a.score, "mode": a.mode, "n_frames": a.n_frames, "width": a.width, "height": a.height,
            "windows": _windows(a.windowed), "curve": _windows(a.curve), "units": units,
            "warnings": list(a.warnings), "noise_sigma": st.noise_sigma if st else None,
            "blockiness": st.blockiness if st else None}


def sinks_of(method: Method, models: Models, parts: set[str], references: Path | None) -> tuple[dict[str, Sink],
                                                                                                dict[str, str]]:
    """The pass's sink of each part of ``parts`` besides NVS-SQA, its model loaded; a model that cannot be loaded
    is that part's error."""
    sinks: dict[str, Sink] = {}
    errors: dict[str, str] = {}
    for part in (FULLREF, FVVDP, CROSSSCORE):
        if part not in parts:
            continue
        try:
            if part == FULLREF:
                sinks[part] = FullrefSink(method, models.fullref())
            elif part == FVVDP:
                from models.nvs_sqa.validity import Limits

                lim, n = Limits.load(), len(method.pairs)
                sinks[part] = FvvdpSink(method, models.fvvdp(), unit_spans(n, unit_window(n, lim.min_frames,
                                                                                          lim.curve_window)))
            else:
                assert references is not None
                sinks[part] = CrossScoreSink(method, models.crossscore(), references)
        except InputError as e:
            errors[part] = str(e)
    return sinks, errors


def compute_parts(method: Method, models: Models, parts: set[str], references: Path | None = None,
                  progress: bool = False) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """``parts`` of one method from one pass over its frames: (part -> its numbers, part -> why it has none)."""
    sinks, errors = sinks_of(method, models, parts, references)
    feed = FramePass(method, list(sinks.values()), progress)
    before = dict(STAGES)
    results: dict[str, dict[str, Any]] = {}
    try:
        if JOD in parts:
            try:
                results[JOD] = jod_part(feed, models)
            except InputError as e:
                errors[JOD] = str(e)
        feed.drain()
    finally:
        feed.close()
    for part, sink in sinks.items():
        try:
            results[part] = sink.result()
        except InputError as e:
            errors[part] = str(e)
    log.debug("%s: %s", method.key, ", ".join(f"{k} {v - before.get(k, 0):.2f}" for k, v in STAGES.items()))
    return results, errors


def wanted(method: Method, parts: set[str], references: Path | None, render: str) -> dict[str, list[str]]:
    """The parts that can be computed for ``method``, each with the fingerprints of its inputs."""
    out: dict[str, list[str]] = {}
    if JOD in parts:
        out[JOD] = [render]
    if FULLREF in parts and method.gt:
        gts = sorted({str(p.parent) for p in method.gt.values()})
        out[FULLREF] = [render, *(fingerprint(Path(g)) for g in gts)]
    if FVVDP in parts and len(method.pairs) >= 1:
        gts = sorted({str(p.gt.parent) for p in method.pairs})
        out[FVVDP] = [render, *(fingerprint(Path(g)) for g in gts)]
    if CROSSSCORE in parts and references is not None and method.frames:
        out[CROSSSCORE] = [render, fingerprint(references)]
    return out


def measure(method: Method, models: Models, parts: set[str], cache: Path | None, references: Path | None = None,
            redo: bool = False, progress: bool = False) -> dict[str, Any]:
    """Every requested part of one method (``parts`` ⊆ {jod, fullref, fvvdp, crossscore}): each from its cache file,
    the others from one pass over the frames; a part that cannot be computed is one line in ``errors`` and the
    others are still computed."""
    out: dict[str, Any] = {"key": method.key, "scene": method.scene, "name": method.name, "path": str(method.path),
                           "n_frames": method.n_frames, "errors": []}  # fmt: skip
    render = out["fingerprint"] = fingerprint(method.path)
    slots, failed = {}, {}
    for part, inputs in wanted(method, parts, references, render).items():
        try:
            slots[part] = Slot.of(cache, part, inputs, models)
        except InputError as e:
            failed[part] = str(e)
    hits = {part: None if redo else slot.load() for part, slot in slots.items()}
    todo = {part for part, hit in hits.items() if hit is None}
    results, errors = compute_parts(method, models, todo, references, progress) if todo else ({}, {})
    failed.update(errors)
    for part in PARTS:
        if hits.get(part) is not None:
            out[part] = hits[part]
        elif part in results:
            out[part] = slots[part].store(results[part])
        elif part in failed:
            out["errors"].append(f"{part}: {failed[part]}")
            log.warning("%s: %s: %s", method.key, part, failed[part])
    return out
