"""Full-reference metrics as data: a registry (name -> implementation + default options), as pyiqa's
``create_metric``. Adding a metric is adding an entry to :data:`METRICS`.

Every metric takes a render and its ground truth as (B, 3, H, W) float tensors in [0, 1] on its device and returns
one value per image (B,); those with ``has_map`` also give a per-pixel map. PSNR, MSE, MAE, SSIM and MS-SSIM work in
the inputs' precision (float32 from :class:`FullReference`, float64 if given): the error metrics' differences and
sums (within ~1e-7 of float64: :func:`models.ssim.mse`), and SSIM in a form that float32 computes to within 1e-6
of float64 (``models.ssim._terms``; the tools' textbook float32 is off by up to 8e-5 on images with flat areas).
The networks run in float32, FLIP in the ``flip-evaluator`` package on the CPU.

    >>> m = create("lpips-alex", device="cpu")
    >>> m(render, gt)            # tensor (B,)
    >>> m.map(render, gt)        # tensor (B, H, W)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from consts import FLIP_EVALUATOR_VERSION
from models.errors import InputError
from models.fullref import networks, weights
from models.runtime import DEVICES, resolve_device
from models.ssim import mse, psnr, ssim_and_cs, ssim_map, working_precision

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli & Bovik 2003; pytorch_msssim's
Result = tuple[torch.Tensor, torch.Tensor | None]


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise InputError(f"{name}={value!r}: choose one of {', '.join(map(repr, choices))}")


class Metric:
    """One full-reference metric with fixed options. ``m(render, gt)`` -> (B,); ``m.map(render, gt)`` -> (B, H', W')
    where ``has_map``; ``m.evaluate(render, gt, with_map)`` gives both from one pass."""

    higher_is_better: ClassVar[bool] = False
    has_map: ClassVar[bool] = False

    def __init__(self, name: str, device: torch.device, **options: Any) -> None:
        self.name, self.device, self.options = name, device, options

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        raise NotImplementedError

    def __call__(self, render: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        return self.evaluate(render, gt)[0]

    def map(self, render: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        if not self.has_map:
            raise InputError(f"metric={self.name!r}: has no per-pixel map")
        out = self.evaluate(render, gt, with_map=True)[1]
        assert out is not None
        return out

    def weights(self) -> list[str]:
        """The converted weights files this metric reads (keys of ``consts.FULLREF_WEIGHTS``)."""
        return []

    def describe(self) -> dict[str, Any]:
        """Every parameter, for results files."""
        out = {"metric": self.name, "implementation": f"{type(self).__module__}.{type(self).__qualname__}",
               "higher_is_better": self.higher_is_better, **{k: _plain(v) for k, v in self.options.items()}}
        if self.weights():
            out["weights_files"] = [weights.provenance(w) for w in self.weights()]
        return out


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


class PSNR(Metric):
    """10·log10(L² / MSE) per image, MSE over channels and pixels (``models.ssim.psnr``); +inf for equal images."""

    higher_is_better = True

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        return psnr(render, gt, self.options["data_range"]), None


class MSE(Metric):
    """Mean squared error per image (over channels and pixels; ``models.ssim.mse``)."""

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        return mse(render, gt), None


class MAE(Metric):
    """Mean absolute error per image (over channels and pixels), in the working precision (as :func:`mse`)."""

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        a, b = working_precision(render, gt)
        return (a - b).abs_().sum((1, 2, 3)).double() / a[0].numel(), None


class SSIM(Metric):
    """SSIM (``models.ssim``): per colour channel, averaged over channels and pixels; the map is the channel mean
    ((H − 10, W − 10) for ``padding="valid"``, else (H, W))."""

    higher_is_better = has_map = True

    def __init__(self, name: str, device: torch.device, **options: Any) -> None:
        super().__init__(name, device, **options)
        _choice("padding", options["padding"], ("valid", "reflect", "zero"))
        _choice("clamp", options["clamp"], ("none", "variance", "dm_pix"))
        rng = options["data_range"]
        if not (rng == "auto" or (isinstance(rng, (int, float)) and not isinstance(rng, bool) and rng > 0)):
            raise InputError(f"data_range={rng!r}: give a positive number or 'auto'")

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        o = self.options
        m = ssim_map(render, gt, o["data_range"], o["padding"], o["win_size"], o["sigma"], clamp=o["clamp"])
        return m.mean((1, 2, 3)).double(), m.mean(1) if with_map else None


class MSSSIM(Metric):
    """MS-SSIM with pytorch_msssim 1.0's semantics: five scales, 'valid' Gaussian window, cs and SSIM per channel,
    ReLU'd, the weighted product per channel averaged over channels; 2×2 average pooling that pads odd sizes
    (``count_include_pad``). Needs a shorter side above 160 px."""

    higher_is_better = True

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        o, levels = self.options, len(self.options["weights"])
        limit = (o["win_size"] - 1) * 2 ** (levels - 1)
        if min(render.shape[-2:]) <= limit:
            raise InputError(f"ms-ssim: images of {render.shape[-1]}x{render.shape[-2]} are too small; the shorter "
                             f"side must exceed {limit} px for {levels} scales")
        x, y, factors = render, gt, []
        for level in range(levels):
            s, cs = ssim_and_cs(x, y, o["data_range"], "valid", o["win_size"], o["sigma"])
            if level < levels - 1:
                factors.append(torch.relu(cs.mean((2, 3)).double()))
                pad = [s_ % 2 for s_ in x.shape[2:]]
                x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
        factors.append(torch.relu(s.mean((2, 3)).double()))
        w = torch.tensor(o["weights"], dtype=torch.float64, device=x.device).view(-1, 1, 1)
        return torch.prod(torch.stack(factors) ** w, dim=0).mean(1), None


class LPIPS(Metric):
    """LPIPS v0.1 (:class:`models.fullref.networks.LPIPS`); the map is lpips' ``spatial=True`` map."""

    has_map = True

    def __init__(self, name: str, device: torch.device, **options: Any) -> None:
        super().__init__(name, device, **options)
        _choice("net", options["net"], ("alex", "vgg"))
        _choice("feature_norm", options["feature_norm"], ("lpips", "torchmetrics"))
        _choice("scale_input", options["scale_input"], (True, False))
        self.model = networks.LPIPS(options["net"], device, options["scale_input"], options["feature_norm"])

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        return self.model(render, gt, spatial=with_map)

    def weights(self) -> list[str]:
        return ["alexnet.pth" if self.options["net"] == "alex" else "vgg16.pth", "lpips_v0.1_lin.pth"]


class DISTS(Metric):
    """DISTS (:class:`models.fullref.networks.DISTS`), no resizing (pyiqa's and the PyPI package's default)."""

    def __init__(self, name: str, device: torch.device, **options: Any) -> None:
        super().__init__(name, device, **options)
        self.model = networks.DISTS(device)

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        return self.model(render, gt), None

    def weights(self) -> list[str]:
        return ["vgg16.pth", "dists.pth"]


class FLIP(Metric):
    """LDR-FLIP by NVIDIA's ``flip-evaluator`` (``evaluate(reference, test, "LDR")`` on float32 sRGB in [0, 1]):
    its mean error and its raw error map (no colour map). ``ppd=None``: the package's default pixels per degree
    (67.02, a 0.7 m wide 3840-px monitor at 0.7 m). Runs on the CPU whatever the device."""

    has_map = True

    def __init__(self, name: str, device: torch.device, **options: Any) -> None:
        super().__init__(name, device, **options)
        ppd = options["ppd"]
        if ppd is not None and (isinstance(ppd, bool) or not isinstance(ppd, (int, float)) or ppd <= 0):
            raise InputError(f"ppd={ppd!r}: give a positive number of pixels per degree, or None")
        try:
            import flip_evaluator
        except ImportError:
            raise InputError(f"metric={name!r}: the flip-evaluator package is missing; install requirements.txt "
                             f"(flip-evaluator=={FLIP_EVALUATOR_VERSION})") from None
        self._evaluate = flip_evaluator.evaluate

    def evaluate(self, render: torch.Tensor, gt: torch.Tensor, with_map: bool = False) -> Result:
        params = {} if self.options["ppd"] is None else {"ppd": float(self.options["ppd"])}
        values, maps = [], []
        for r, g in zip(render, gt, strict=True):
            ref, test = (np.ascontiguousarray(t.permute(1, 2, 0).float().cpu().numpy()) for t in (g, r))
            error_map, mean, _ = self._evaluate(ref, test, "LDR", inputsRGB=True, applyMagma=False,
                                                computeMeanError=True, parameters=dict(params))
            values.append(mean)
            maps.append(torch.from_numpy(error_map[..., 0]))
        out = torch.tensor(values, dtype=torch.float64, device=render.device)
        return out, torch.stack(maps).to(render.device) if with_map else None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "package": f"flip-evaluator=={FLIP_EVALUATOR_VERSION}", "range": "LDR"}


@dataclass(frozen=True)
class Entry:
    """A registry entry: the implementation, its default options (every option it takes), one line about it."""

    impl: type[Metric]
    options: Mapping[str, Any]
    about: str


_SSIM = {"padding": "valid", "clamp": "none", "data_range": 1.0, "win_size": 11, "sigma": 1.5}
_LPIPS = {"scale_input": True, "feature_norm": "lpips"}
METRICS: dict[str, Entry] = {
    "psnr": Entry(PSNR, {"data_range": 1.0}, "PSNR in dB per image (higher is better)"),
    "mse": Entry(MSE, {}, "mean squared error per image"),
    "mae": Entry(MAE, {}, "mean absolute error per image"),
    "ssim": Entry(SSIM, _SSIM, "SSIM (Wang et al. 2004), Gaussian 11/1.5, valid window, per channel, range 1"),
    "ms-ssim": Entry(MSSSIM, {"data_range": 1.0, "win_size": 11, "sigma": 1.5, "weights": MS_SSIM_WEIGHTS},
                     "MS-SSIM, pytorch_msssim 1.0 semantics (shorter side > 160 px)"),
    "lpips-alex": Entry(LPIPS, {"net": "alex", **_LPIPS}, "LPIPS v0.1, AlexNet, [0, 1] scaled to [-1, 1]"),
    "lpips-vgg": Entry(LPIPS, {"net": "vgg", **_LPIPS}, "LPIPS v0.1, VGG16, [0, 1] scaled to [-1, 1]"),
    "dists": Entry(DISTS, {}, "DISTS (Ding et al. 2020), no resizing"),
    "flip": Entry(FLIP, {"ppd": None}, f"LDR-FLIP, flip-evaluator {FLIP_EVALUATOR_VERSION}, default ppd"),
}


def device_of(device: str | torch.device) -> torch.device:
    """``device`` ("auto": CUDA when present, "cpu", "cuda", "cuda:N") as a torch device; errors name the
    parameter."""
    try:
        dev = torch.device("cpu" if str(device) == "auto" else device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise InputError(f"device={device!r}: choose one of {', '.join(DEVICES)}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={str(device)!r}: no CUDA device is available here; use 'cpu' or 'auto'")
    return resolve_device(device)


def list_metrics() -> dict[str, str]:
    """name -> one line about it, for every registered metric."""
    return {name: e.about for name, e in METRICS.items()}


def create(name: str, device: str | torch.device = "cpu", **options: Any) -> Metric:
    """The metric ``name`` of :data:`METRICS` on ``device`` ("auto", "cpu", "cuda"), its default options updated by
    ``options``; an unknown name or option is an :class:`InputError` naming it."""
    entry = METRICS.get(name)
    if entry is None:
        raise InputError(f"name={name!r}: unknown metric; choose one of {', '.join(METRICS)}")
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise InputError(f"{unknown[0]}: not an option of {name} (its options: {', '.join(entry.options) or 'none'})")
    return entry.impl(name, device_of(device), **{**entry.options, **options})
