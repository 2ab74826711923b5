"""The peers of ``make bench-fullref``: the packages a user would call instead of our full-reference metrics, each
computing the metric with its own code.

    with peers() as p:            # wheels fetched pinned (pip, sha256) into .cache/wheels, unpacked into .cache/peers
        p["ssim"].fn(x, y)        # pytorch_msssim.ssim on (1, 3, H, W) float32 in [0, 1]

Nothing is installed into the venv or named in requirements.txt: each wheel is downloaded by
``models.fullref.weights.pip_download`` (``pip download --no-deps`` in hash-checking mode), unpacked into its own
folder under ``.cache/peers/`` and put on ``sys.path`` only inside the ``with`` block (the tests of tests/fullref
import the same pinned wheels the same way).

torchvision does not import beside torch 2.13, and ``lpips`` and ``DISTS_pytorch`` take their backbones from
``torchvision.models``. Inside the block, ``torchvision`` is a stand-in module (:func:`torchvision_standin`) whose
``alexnet()`` / ``vgg16()`` build torchvision's ``features`` layer layout (the same ``nn.Sequential`` indices, ReLU
in place, max pooling) and fill it with the ImageNet weights of ``checkpoints/fullref`` (the AlexNet / VGG16 that
LPIPS v0.1 and DISTS were trained on). The peers then run their own code end to end: lpips' scaling layer,
normalisation and its own v0.1 lin weights from its wheel; DISTS' L2 pooling, statistics and the alpha/beta of its
own ``weights.pt``.

FLIP has no peer: ``flip-evaluator`` (NVIDIA's reference implementation) is already what our metric calls, so its
row times that package called directly, which measures only our wrapper.
"""

from __future__ import annotations

import contextlib
import sys
import types
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from consts import CACHE_DIR, FLIP_EVALUATOR_VERSION, FULLREF_DISTS, ArchiveMember, PyPIArchive
from models.fullref import weights

PEERS_DIR = CACHE_DIR / "peers"


def _wheel(name: str, version: str, file: str, sha256: str) -> PyPIArchive:
    return PyPIArchive(name, version, file, sha256, True, {})


TORCHMETRICS = {
    "1.4.0": _wheel("torchmetrics", "1.4.0", "torchmetrics-1.4.0-py3-none-any.whl",
                    "18599929a0fff7d4b840a3f9a7700054121850c378caaf7206f4161c0a5dc93c"),
    "1.9.0": _wheel("torchmetrics", "1.9.0", "torchmetrics-1.9.0-py3-none-any.whl",
                    "bfdcbff3dd1d96b3374bb2496eb39f23c4b28b8a845b6a18c313688e0d2d9ca1"),
}
LIGHTNING_UTILITIES = _wheel("lightning-utilities", "0.15.3", "lightning_utilities-0.15.3-py3-none-any.whl",
                             "6c55f1bee70084a1cbeaa41ada96e4b3a0fea5909e844dd335bd80f5a73c5f91")
PYTORCH_MSSSIM = _wheel("pytorch_msssim", "1.0.0", "pytorch_msssim-1.0.0-py3-none-any.whl",
                        "0b4b7bbf7035fe9dc8084244237aac13b1f104852c45b63a7e9fab4363bede54")
LPIPS = PyPIArchive("lpips", "0.1.4", "lpips-0.1.4-py3-none-any.whl",
                    "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e", True, {
                        "alex": ArchiveMember("lpips/weights/v0.1/alex.pth",
                                              "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
                        "vgg": ArchiveMember("lpips/weights/v0.1/vgg.pth",
                                             "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868")})
# torchvision's AlexNet / VGG16 ``features``: conv (in, out, kernel, stride, padding) or "M" (max pool 3/2 for
# AlexNet, 2/2 for VGG); a ReLU(inplace=True) follows every conv, as in torchvision/models/{alexnet,vgg}.py
TV_ALEXNET = ((3, 64, 11, 4, 2), "M", (64, 192, 5, 1, 2), "M", (192, 384, 3, 1, 1), (384, 256, 3, 1, 1),
              (256, 256, 3, 1, 1), "M")
TV_VGG16 = tuple(layer for i, o, n in ((3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3))
                 for layer in ([(i, o, 3, 1, 1)] + [(o, o, 3, 1, 1)] * (n - 1) + ["M"]))


def unpacked(*archives: PyPIArchive) -> list[Path]:
    """Each wheel (downloaded pinned and verified) unpacked once into .cache/peers/<file stem>/, a folder to put on
    sys.path; a failed download is an InputError naming the file."""
    out = []
    for archive in archives:
        folder = PEERS_DIR / archive.file.removesuffix(".whl")
        if not (folder / ".complete").is_file():
            with zipfile.ZipFile(weights.pip_download(archive)) as zf:
                zf.extractall(folder)
            (folder / ".complete").touch()
        out.append(folder)
    return out


@contextlib.contextmanager
def imported(folders: list[Path], *top_level: str) -> Iterator[None]:
    """``folders`` on sys.path for the block; afterwards the modules under ``top_level`` are forgotten, so that
    another version can be imported later in the same process."""
    sys.path[:0] = [str(f) for f in folders]
    try:
        yield
    finally:
        for f in folders:
            sys.path.remove(str(f))
        for name in [m for m in sys.modules if m.split(".")[0] in top_level]:
            del sys.modules[name]


def _features(layout: tuple, pool: int, state: dict[str, torch.Tensor]) -> nn.Sequential:
    """torchvision's ``features`` Sequential for ``layout``, its convolutions filled from our converted state dict
    (``convs.{i}.weight/bias`` in order)."""
    layers: list[nn.Module] = []
    for spec in layout:
        if spec == "M":
            layers.append(nn.MaxPool2d(kernel_size=pool, stride=2))
        else:
            i, o, k, s, p = spec
            layers += [nn.Conv2d(i, o, k, s, p), nn.ReLU(inplace=True)]
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    for n, conv in enumerate(convs):
        conv.weight.data.copy_(state[f"convs.{n}.weight"])
        conv.bias.data.copy_(state[f"convs.{n}.bias"])
    return nn.Sequential(*layers)


@contextlib.contextmanager
def torchvision_standin() -> Iterator[None]:
    """``torchvision``, ``torchvision.models`` and ``torchvision.transforms`` as far as lpips 0.1.4 and DISTS_pytorch
    0.1 use them, in sys.modules for the block: ``models.alexnet(...)`` / ``models.vgg16(...)`` return an object
    whose ``.features`` is torchvision's layer layout with the ImageNet weights of checkpoints/fullref (whatever
    ``pretrained`` says). Import torchmetrics before the block: it asks importlib whether torchvision is installed,
    and the stand-in is no installed package."""

    def net(layout: tuple, pool: int, file: str) -> Callable[..., nn.Module]:
        def build(*_: object, **__: object) -> nn.Module:
            model = nn.Module()
            model.features = _features(layout, pool, weights.load(file))
            return model

        return build

    tv = types.ModuleType("torchvision")
    tv.models = types.ModuleType("torchvision.models")  # type: ignore[attr-defined]
    tv.models.alexnet = net(TV_ALEXNET, 3, "alexnet.pth")  # type: ignore[attr-defined]
    tv.models.vgg16 = net(TV_VGG16, 2, "vgg16.pth")  # type: ignore[attr-defined]
    tv.transforms = types.ModuleType("torchvision.transforms")  # type: ignore[attr-defined]
    modules = {"torchvision": tv, "torchvision.models": tv.models,  # type: ignore[attr-defined]
               "torchvision.transforms": tv.transforms}  # type: ignore[attr-defined]
    if any(name in sys.modules for name in modules):
        raise RuntimeError("a torchvision module is already imported; the stand-in would hide it")
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name in modules:
            del sys.modules[name]


@dataclass(frozen=True)
class Peer:
    """One peer: what it is (package, version, function) and ``fn(render, gt)`` on (1, 3, H, W) float32 in [0, 1]."""

    label: str
    fn: Callable[[torch.Tensor, torch.Tensor], object]


def _dists(folder: Path) -> nn.Module:
    from DISTS_pytorch import DISTS

    model = DISTS(load_weights=False)  # it would read sys.prefix/weights.pt; the wheel's own copy is beside the code
    ab = torch.load(folder / "DISTS_pytorch" / "weights.pt", map_location="cpu", weights_only=True)
    model.alpha.data, model.beta.data = ab["alpha"], ab["beta"]
    return model.eval()


def _flip() -> Callable[[torch.Tensor, torch.Tensor], object]:
    import flip_evaluator

    def fn(render: torch.Tensor, gt: torch.Tensor) -> object:
        ref, test = (t[0].permute(1, 2, 0).contiguous().numpy() for t in (gt, render))
        return flip_evaluator.evaluate(ref, test, "LDR", inputsRGB=True, applyMagma=False, computeMeanError=True)[1]

    return fn


@contextlib.contextmanager
def peers(device: torch.device | str = "cpu") -> Iterator[dict[str, Peer]]:
    """metric name -> its peer on ``device`` (FLIP: the CPU), importable for the block (see the module docstring)."""
    folders = unpacked(TORCHMETRICS["1.9.0"], LIGHTNING_UTILITIES, PYTORCH_MSSSIM, LPIPS, FULLREF_DISTS)
    top = ("torchmetrics", "lightning_utilities", "pytorch_msssim", "lpips", "DISTS_pytorch")
    with imported(folders, *top):
        import pytorch_msssim
        from torchmetrics.functional.image import peak_signal_noise_ratio

        with torchvision_standin():
            import lpips

            nets = {n: lpips.LPIPS(net=n, version="0.1", verbose=False).eval().to(device) for n in ("alex", "vgg")}
            dists = _dists(folders[-1]).to(device)
        yield {
            "psnr": Peer("torchmetrics 1.9.0 peak_signal_noise_ratio(data_range=1.0)",
                         lambda x, y: peak_signal_noise_ratio(x, y, data_range=1.0)),
            "ssim": Peer("pytorch_msssim 1.0.0 ssim(data_range=1)", lambda x, y: pytorch_msssim.ssim(x, y, 1.0)),
            "ms-ssim": Peer("pytorch_msssim 1.0.0 ms_ssim(data_range=1)",
                            lambda x, y: pytorch_msssim.ms_ssim(x, y, 1.0)),
            "lpips-alex": Peer("lpips 0.1.4 LPIPS('alex')(normalize=True)",
                               lambda x, y: nets["alex"](x, y, normalize=True)),
            "lpips-vgg": Peer("lpips 0.1.4 LPIPS('vgg')(normalize=True)",
                              lambda x, y: nets["vgg"](x, y, normalize=True)),
            "dists": Peer("DISTS_pytorch 0.1 DISTS()", lambda x, y: dists(x, y)),
            "flip": Peer(f"none: flip-evaluator {FLIP_EVALUATOR_VERSION} evaluate() called directly", _flip()),
        }
