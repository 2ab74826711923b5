"""FullReference, the API object: scores of renders against their ground truth under one evaluation protocol.

    from models.fullref import FullReference
    fr = FullReference(preset="nerfbaselines", device="auto")     # the preset's metrics: psnr ssim mae mse lpips
    fr.compute("render.png", "gt.png")                             # {"psnr": 27.1, "ssim": 0.91, ...}
    fr.maps(render_array, gt_array)                                # {"ssim": (H-10, W-10), "lpips": (H, W)}
    rows = fr.compute_many(zip(renders, gts), progress=True)       # one dict per pair
    fr.mean(rows)                                                  # the preset's averaging
    fr.describe()                                                  # preset + every parameter, for results files

``metrics=`` picks some of the preset's metrics by their keys, or adds registered metrics by name
(``models.fullref.list_metrics()``), computed on the preset's prepared inputs: ``metrics=("psnr", "flip")``.
``background=`` ("white", "black", "R,G,B" or an RGB triple of 0-255 integers) composites RGBA renders and ground
truth onto that colour before scoring; None keeps the preset's rule (NerfBaselines and nerfstudio composite onto
the dataset's background, 3DGS drops the alpha channel; ``describe()["inputs"]`` says which).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from models.errors import InputError
from models.frames import prefetch
from models.fullref import inputs, protocols
from models.fullref.inputs import ImageLike
from models.fullref.metrics import METRICS, Metric, create, device_of

log = logging.getLogger(__name__)


def select(protocol: protocols.Protocol, names: Sequence[str] | None) -> dict[str, protocols.MetricRef]:
    """The metrics to report: the preset's (``names`` None), or each name as a key of the preset's metrics, else
    as a registered metric with its default options."""
    if names is None:
        return dict(protocol.metrics)
    if isinstance(names, str):
        names = (names,)
    out: dict[str, protocols.MetricRef] = {}
    for name in names:
        if name in protocol.metrics:
            out[name] = protocol.metrics[name]
        elif name in METRICS:
            out[name] = protocols.MetricRef(name)
        else:
            raise InputError(f"metrics: {name!r} is neither a metric of preset {protocol.name} "
                             f"({', '.join(protocol.metrics)}) nor a registered one ({', '.join(METRICS)})")
    if not out:
        raise InputError("metrics: empty; name at least one metric, or pass None for the preset's")
    return out


class FullReference:
    """Full-reference metrics of a render against its ground truth, as one named protocol computes them.

    ``preset``: a name of :data:`models.fullref.protocols.PROTOCOLS`; ``metrics``: see :func:`select`;
    ``device``: "auto" (CUDA when present), "cpu" or "cuda"; ``background``: what RGBA images are composited onto
    (:func:`models.fullref.protocols.background_of`; None: the preset's default). Images are paths or (H, W[, C])
    arrays (uint8, uint16, float in [0, 1]); see :mod:`models.fullref.inputs` for conversions (each is warned
    about once).
    """

    def __init__(self, preset: str = "nerfbaselines", metrics: Sequence[str] | None = None,
                 device: str | torch.device = "auto", background: str | Sequence[int] | None = None) -> None:
        self.protocol = protocols.get(preset).with_background(background)
        self.device = device_of(device)
        self.metrics: dict[str, Metric] = {key: create(ref.metric, self.device, **ref.options)
                                           for key, ref in select(self.protocol, metrics).items()}
        self._warned: set[str] = set()

    def describe(self) -> dict[str, Any]:
        """The preset, its input rules, averaging and every metric's parameters and weights, for results files."""
        return {**self.protocol.describe(), "metrics": {k: m.describe() for k, m in self.metrics.items()},
                "device": str(self.device), "torch": torch.__version__}

    def prepare(self, render: ImageLike, gt: ImageLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Both images as the protocol's (1, 3, H, W) float32 tensors in [0, 1] on the device."""
        notes: set[str] = set()
        r, g, name = inputs.read_pair(render, gt, notes)
        for note in sorted(notes - self._warned):
            what = self.protocol.alpha_rule if note == "alpha" else inputs.NOTES.get(note, note)
            log.warning("%s: %s (%s preset; reported once)", name, what, self.protocol.name)
        self._warned |= notes
        return tuple(torch.from_numpy(np.ascontiguousarray(self.protocol.prepare(a).transpose(2, 0, 1)))[None]
                     .to(self.device) for a in (r, g))  # type: ignore[return-value]

    def _scores(self, x: torch.Tensor, y: torch.Tensor, with_maps: bool) -> tuple[dict, dict]:
        values, maps = {}, {}
        for key, metric in self.metrics.items():
            v, m = metric.evaluate(x, y, with_map=with_maps and metric.has_map)
            values[key] = float(v[0])
            if m is not None:
                maps[key] = m[0].float().cpu().numpy()
        return values, maps

    def compute(self, render: ImageLike, gt: ImageLike) -> dict[str, float]:
        """One value per metric key for one render and its ground truth."""
        return self._scores(*self.prepare(render, gt), with_maps=False)[0]

    def maps(self, render: ImageLike, gt: ImageLike) -> dict[str, np.ndarray]:
        """The per-pixel maps (float32) of the metrics that have one: SSIM (channel mean; (H − 10, W − 10) with a
        valid window), LPIPS (lpips' spatial map, (H, W)), FLIP (its error map, (H, W))."""
        return self._scores(*self.prepare(render, gt), with_maps=True)[1]

    def compute_with_maps(self, render: ImageLike, gt: ImageLike) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """:meth:`compute` and :meth:`maps` from one pass."""
        return self._scores(*self.prepare(render, gt), with_maps=True)

    def compute_prepared(self, renders: torch.Tensor, gts: torch.Tensor,
                         keys: Sequence[str] | None = None) -> dict[str, list[float]]:
        """Several pairs of one size at once, one call per metric: ``renders`` and ``gts`` are (B, 3, H, W), the
        :meth:`prepare` outputs of B pairs concatenated; ``keys``: some of the metrics (None: all). Metric key ->
        the B values in order, those of :meth:`compute` pair by pair up to float rounding (each image is reduced
        on its own; a batch may sum in another order: ≤ 1e-9 apart)."""
        return {key: self.metrics[key].evaluate(renders, gts)[0].tolist() for key in keys or self.metrics}

    def compute_many(self, pairs: Iterable[tuple[ImageLike, ImageLike]], progress: bool = False,
                     total: int | None = None) -> list[dict[str, float]]:
        """:meth:`compute` for each (render, gt) pair, in order; reading and preparing the next pairs overlaps the
        metrics (a background thread). ``progress``: a progress bar (``total``: its length, else ``len(pairs)``)."""
        from tqdm import tqdm

        if total is None and hasattr(pairs, "__len__"):
            total = len(pairs)  # type: ignore[arg-type]
        prepared = prefetch((self.prepare(r, g) for r, g in pairs), depth=2)
        return [self._scores(x, y, with_maps=False)[0]
                for x, y in tqdm(prepared, total=total, desc=self.protocol.name, unit="img", disable=not progress)]

    def mean(self, rows: Sequence[dict[str, float]]) -> dict[str, float]:
        """The dataset value of each metric under the protocol (:meth:`Protocol.reduce`: the mean of the per-image
        values, PSNR the mean of per-image PSNRs, not the PSNR of the pooled MSE; an exact copy's infinite PSNR
        makes the mean infinite, as the tools report it; undefined values are left out with a warning)."""
        if not rows:
            raise InputError("rows: no per-image results to average")
        out = {}
        for key in rows[0]:
            r = self.protocol.reduce([row[key] for row in rows])
            if r.undefined:
                log.warning("%s: %d of %d per-image values are undefined (NaN) and left out of the mean", key,
                            len(r.undefined), len(rows))
            out[key] = r.value
        return out
