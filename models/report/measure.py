"""Every number of one method, computed once and cached: NVS-SQA (score, windows, quality curve, warnings), the
full-reference metrics per frame and the CrossScore mean per frame.

Each part is cached on its own in ``OUT/cache/<part>-<key>.json``, the key hashing what the numbers depend on
(the render's content fingerprint, the checkpoint's sha256, the preset and its parameters, the ground truth's and
references' fingerprints): adding a method, or ``--gt`` to a report made without it, computes only what is new.
A cache file is written atomically when its part finishes, so an interrupted report keeps the finished parts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.cli import as_flags
from models.discovery import fingerprint
from models.errors import InputError
from models.report.scene import FrameProblems, Method, render_problem
from models.report.series import CROSSSCORE, FVVDP, JOD
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
        if part == "fullref":
            d = self.fullref().describe()
            return {k: v for k, v in d.items() if k not in ("device", "torch")}
        m = self.crossscore()
        return {"checkpoint": {k: v for k, v in m.info.items() if k != "warning"}, "n_ref": m.n_ref,
                "short_side": m.short_side, "seed": m.seed}


def cache_key(part: str, inputs: list[str], identity: dict[str, Any]) -> str:
    blob = json.dumps({"v": CACHE_VERSION, "part": part, "inputs": inputs, "identity": identity}, sort_keys=True,
                      default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached(cache: Path | None, part: str, inputs: list[str], models: Models, compute: Callable[[], dict],
           redo: bool = False) -> dict:
    """The part's result from ``cache`` when its key matches, else ``compute()`` written there (atomically)."""
    ident = models.identity(part)
    key = cache_key(part, inputs, ident)
    path = None if cache is None else cache / f"{part}-{key}.json"
    if path is not None and not redo:
        try:
            hit = read_json(path)
        except InputError as e:
            log.warning("%s; recomputing", e)
            hit = None
        if hit is not None:
            return hit
    result = {"part": part, "key": key, "identity": ident, **compute()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, result)
    return result


# ------------------------------------------------------------------------------------------ the parts
def _windows(w: Any) -> dict[str, Any] | None:
    if w is None:
        return None
    return {"starts": w.starts.tolist(), "ends": w.ends.tolist(), "scores": np.asarray(w.scores).tolist()}


def jod_part(method: Method, models: Models, progress: bool) -> dict[str, Any]:
    """NVS-SQA on the whole render: the score and its windows, the quality curve, the validity warnings, the
    disjoint unit windows the comparisons pair (:func:`~models.report.stats.unit_window`, scored from the same
    per-frame features), and the frame statistics of the model's blind spots."""
    from models.nvs_sqa.validity import Limits

    lim = Limits.load()
    model = models.nvssqa()
    a = model.assess(method.path, progress=progress, limits=lim)
    units = None
    if a.score is not None and a.frame_features is not None:
        w = unit_window(a.n_frames, lim.min_frames, lim.curve_window)
        spans = unit_spans(a.n_frames, w)
        if spans:
            reps = np.stack([model.aggregate(a.frame_features[s:e]) for s, e in spans])
            units = {"starts": [s for s, _ in spans], "ends": [e for _, e in spans],
                     "scores": np.asarray(model.predict(reps)).tolist()}
    st = a.stats
    return {"score": a.score, "mode": a.mode, "n_frames": a.n_frames, "width": a.width, "height": a.height,
            "windows": _windows(a.windowed), "curve": _windows(a.curve), "units": units,
            "warnings": list(a.warnings), "noise_sigma": st.noise_sigma if st else None,
            "blockiness": st.blockiness if st else None}


def fvvdp_part(method: Method, models: Models, progress: bool) -> dict[str, Any]:
    """FovVideoVDP of the frames paired with ground truth, one JOD per disjoint unit window (the same windows as
    NVS-SQA's where every frame is paired)."""
    from models.nvs_sqa.validity import Limits
    from models.pixels import read_image

    lim = Limits.load()
    n = len(method.pairs)
    spans = unit_spans(n, unit_window(n, lim.min_frames, lim.curve_window))

    def render(s: int, e: int) -> np.ndarray:
        got = method.read([p.index for p in method.pairs[s:e]])
        return np.stack([got[p.index] for p in method.pairs[s:e]])

    def truth(s: int, e: int) -> np.ndarray:
        return np.stack([read_image(p.gt) for p in method.pairs[s:e]])

    from tqdm import tqdm

    scores, done, errors = [], [], []
    for s, e in tqdm(spans, desc=f"{method.name}: FovVideoVDP", unit="window", disable=not progress):
        try:
            scores += models.fvvdp().windows(render, truth, [(s, e)])
            done.append((s, e))
        except (InputError, KeyError, ValueError) as err:
            errors.append(f"FovVideoVDP, frames {s}-{e - 1}: {err}")
    return {"starts": [s for s, _ in done], "ends": [e for _, e in done], "scores": scores, "errors": errors}


def fullref_part(method: Method, models: Models, progress: bool) -> dict[str, Any]:
    """The preset's metrics per frame with ground truth (:attr:`Method.pairs`: frames read from their files, a video
    decoded once). A problem of single frames is counted by kind: one line in ``errors`` per kind, naming how many
    frames it hit (the other frames are still scored)."""
    from tqdm import tqdm

    fr = models.fullref()
    rows, problems = [], FrameProblems()
    for pair, render in tqdm(method.paired(), total=len(method.pairs), desc=f"{method.name}: full-reference",
                             unit="img", disable=not progress):
        try:
            rows.append({"frame": pair.frame, **fr.compute(render, pair.gt)})
        except InputError as e:
            render_problem(method, problems, pair, render, str(e))
    errors = problems.lines(len(method.pairs))
    if len(rows) + len(problems) < len(method.pairs):  # a video with fewer frames than its container declared
        errors.append(f"{method.path}: only {len(rows) + len(problems)} of the {len(method.pairs)} frames paired "
                      "with ground truth could be decoded")
    for line in errors:
        log.warning("%s: %s", method.key, line)
    higher = {k: m.higher_is_better for k, m in fr.metrics.items()}
    return {"preset": fr.protocol.name, "higher_is_better": higher, "rows": rows, "errors": errors,
            "unmatched": list(method.unmatched), "n_paired": len(method.pairs)}


def crossscore_part(method: Method, references: Path, models: Models, progress: bool) -> dict[str, Any]:
    """The mean of CrossScore's predicted SSIM map per frame (1 = as the unseen ground truth would be)."""
    cs = models.crossscore()
    frames, scores, errors = [], [], []
    from tqdm import tqdm

    for f in tqdm(method.frames, desc=f"{method.name}: CrossScore", unit="img", disable=not progress):
        try:
            scores.append(float(np.mean(cs.predict(f, references))))
            frames.append(f.name)
        except InputError as e:
            errors.append(str(e))
            log.warning("%s", e)
    return {"frames": frames, "scores": scores, "errors": errors, "warning": cs.info.get("warning")}


def measure(method: Method, models: Models, parts: set[str], cache: Path | None, references: Path | None = None,
            redo: bool = False, progress: bool = False) -> dict[str, Any]:
    """Every requested part of one method (``parts`` ⊆ {jod, fullref, fvvdp, crossscore}); a part that cannot be
    computed is one line in ``errors`` and the others are still computed."""
    out: dict[str, Any] = {"key": method.key, "scene": method.scene, "name": method.name, "path": str(method.path),
                           "n_frames": method.n_frames, "errors": []}  # fmt: skip
    render = out["fingerprint"] = fingerprint(method.path)
    todo: list[tuple[str, list[str], Callable[[], dict]]] = []
    if JOD in parts:
        todo.append((JOD, [render], lambda: jod_part(method, models, progress)))
    if "fullref" in parts and method.gt:
        gts = sorted({str(p.parent) for p in method.gt.values()})
        todo.append(("fullref", [render, *(fingerprint(Path(g)) for g in gts)],
                     lambda: fullref_part(method, models, progress)))
    if FVVDP in parts and len(method.pairs) >= 1:
        gts = sorted({str(p.gt.parent) for p in method.pairs})
        todo.append((FVVDP, [render, *(fingerprint(Path(g)) for g in gts)],
                     lambda: fvvdp_part(method, models, progress)))
    if CROSSSCORE in parts and references is not None and method.frames:
        todo.append((CROSSSCORE, [render, fingerprint(references)],
                     lambda: crossscore_part(method, references, models, progress)))
    for part, inputs, compute in todo:
        try:
            out[part] = cached(cache, part, inputs, models, compute, redo)
        except InputError as e:
            out["errors"].append(f"{part}: {e}")
            log.warning("%s: %s: %s", method.key, part, e)
    return out
