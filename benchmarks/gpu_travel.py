"""``make gpu-prepare``: the folder that travels with the working tree to the lent GPU machine, and its size.

    python -m benchmarks.gpu_travel            # -> .gpu/ (git-ignored), then the size table against 64 MiB

The GPU machine has no network and no venv: its own ``python3`` holds torch + CUDA and most of what this project
imports (``benchmarks/gpu_image.txt``), and everything else must travel beside the tree, within 64 MiB together:

- ``.gpu/site/``: the pure-Python packages that image lacks, installed here with ``pip --target`` (no
  dependencies, no byte-code), so ``PYTHONPATH=.gpu/site`` is all the machine needs. Their versions are the pins of
  ``requirements.txt`` (one source). PyAV is left behind on purpose: its wheel alone would not fit, and the check
  reads JPEG frames only (``models.video`` is imported only when a video is read).
- ``.gpu/reference/``: the release's own features and scores from ``../shared/reference`` (``../shared`` does not
  travel), for the scorer's parity check.
- ``checkpoints/v0.0.1`` (the released weights of ``make setup``) travels as it is: it is named in ``carry``;
- so do the small full-reference weights of ``checkpoints/fullref`` (the LPIPS lin layers and DISTS' alpha/beta,
  27 kB) for the check's ``fullref`` part; its AlexNet and VGG16 backbones (69 MB) would not fit and are replaced
  there by seeded stand-ins (benchmarks/gpu_fullref.py).

It prints the command and the ``carry`` list of the device call (docs/performance.md, "GPU check"), and exits 2
with one line when the tree plus what travels would not fit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # `python benchmarks/gpu_travel.py`
    sys.path.insert(0, str(ROOT))

from benchmarks.gpu_fullref import BACKBONES  # noqa: E402
from consts import FULLREF_DIR, FULLREF_WEIGHTS, REFERENCE_FEATURES, RELEASED, ROOT  # noqa: E402
from models import cli  # noqa: E402
from models.cli import opt  # noqa: E402
from models.errors import InputError  # noqa: E402

TRAVEL_DIR = ROOT / ".gpu"  # git-ignored
LIMIT_BYTES = 64 * 2**20  # the device call's limit on the working tree plus the carried paths
# What the GPU image lacks and the check imports (pyfvvdp: the FovVideoVDP training target; ffmpeg-python and future:
# what pyfvvdp imports; submitit: models.cluster's executors). Versions: requirements.txt.
TRAVEL_PACKAGES = ("pyfvvdp", "ffmpeg-python", "future", "submitit")
REFERENCE_FILES = ("features.npz", "scores.json")
IMAGE_FILE = ROOT / "benchmarks" / "gpu_image.txt"  # the GPU image's packages that this project imports
FULLREF_CARRIED = tuple(FULLREF_DIR / n for n in FULLREF_WEIGHTS if n not in BACKBONES)  # all but the backbones


@dataclass
class TravelConfig:
    """Flags of ``python -m benchmarks.gpu_travel`` (make gpu-prepare)."""

    out: str = opt(str(TRAVEL_DIR), "the travelling folder (rebuilt from scratch)")
    reference: str = opt(str(REFERENCE_FEATURES.parent), "folder holding the release's features.npz and scores.json")
    image_pins: bool = opt(False, "print the GPU image's packages as pins (for the rehearsal venv) and build nothing")


def _specs(path: Path) -> list[str]:
    """The requirement lines of ``path``, comments and blanks dropped."""
    return [s for line in path.read_text().splitlines() if (s := line.split("#", 1)[0].strip())]


def pins(names: tuple[str, ...] = TRAVEL_PACKAGES, requirements: Path = ROOT / "requirements.txt") -> list[str]:
    """``name==version`` of each of ``names`` as requirements.txt pins it; a name it does not pin is an error."""
    found = {s.split("==", 1)[0].strip().lower(): s for s in _specs(requirements) if "==" in s}
    missing = [n for n in names if n.lower() not in found]
    if missing:
        raise InputError(f"{requirements}: no exact pin (name==version) for {', '.join(missing)}")
    return [found[n.lower()] for n in names]


def image_pins(image: Path = IMAGE_FILE) -> list[str]:
    """The GPU image's packages that the rehearsal venv installs: the version seen there where the image file gives
    one, else requirements.txt's pin."""
    specs = _specs(image)
    bare = tuple(s for s in specs if "==" not in s)
    given = {s for s in specs if "==" in s}
    return [*given, *pins(bare)] if bare else sorted(given)


def tree_files(root: Path = ROOT) -> list[Path]:
    """The files that travel without being named: tracked, and untracked but not ignored (what git would add)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout  # fmt: skip
    return [root / p for p in dict.fromkeys(out.decode().split("\0")) if p and (root / p).is_file()]


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (links not followed, as the transfer copies them as links), or
    of ``folder`` itself when it is a file."""
    if folder.is_file():
        return folder.stat().st_size
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def carried(out: Path) -> list[Path]:
    """The paths named in the device call's ``carry``: the travelling folder, the released weights and the small
    full-reference weights."""
    return [out, RELEASED.dir, *FULLREF_CARRIED]


def sizes(out: Path) -> list[tuple[str, int]]:
    """(what, bytes) of each part that travels: the working tree, then each carried path."""
    rows = [("working tree (tracked + untracked, not ignored)", sum(p.stat().st_size for p in tree_files()))]
    return rows + [(str(p.relative_to(ROOT)), folder_bytes(p)) for p in carried(out)]


def install(out: Path) -> list[str]:
    """``out/site``: the travelling packages, installed for any Python 3 (pure Python, no byte-code)."""
    reqs = pins(TRAVEL_PACKAGES)
    site = out / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--disable-pip-version-check",
           "--target", str(site), *reqs]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        raise InputError(f"pip could not install {' '.join(reqs)} into {site}: {' '.join(tail)}")
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: unused there
    compiled = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.suffix in (".so", ".pyd"))
    if compiled:  # this machine's Python may differ from the GPU machine's: only pure Python may travel this way
        raise InputError(f"{site}: {compiled[0]} is compiled; only pure-Python packages can travel in site/")
    return reqs


def copy_reference(src: Path, out: Path) -> None:
    """The release's features and scores, for the scorer's parity check there."""
    missing = [f for f in REFERENCE_FILES if not (src / f).is_file()]
    if missing:
        raise InputError(f"--reference {src}: no {', '.join(missing)} (the release's reference values, "
                         "../shared/reference)")
    (out / "reference").mkdir(parents=True)
    for f in REFERENCE_FILES:
        shutil.copy2(src / f, out / "reference" / f)


def size_table(rows: list[tuple[str, int]], limit: int = LIMIT_BYTES) -> str:
    """The parts that travel, their total and the margin left under ``limit``."""
    total = sum(b for _, b in rows)
    lines = [f"  {what:<50} {b / 2**20:8.2f} MiB" for what, b in rows]
    lines.append(f"  {'total':<50} {total / 2**20:8.2f} MiB of {limit / 2**20:.0f} MiB "
                 f"({(limit - total) / 2**20:+.2f} MiB left)")
    return "\n".join(lines)


def device_command(out: Path) -> str:
    """The command of the device call (run in the repository root there; ``$OUT`` is the folder that comes back)."""
    rel = out.relative_to(ROOT)
    return (f"PYTHONPATH=$PWD/{rel}/site PYTHONUNBUFFERED=1 python3 -m benchmarks.gpu_check "
            f"--reference {rel}/reference --out $OUT 2>&1 | tee $OUT/gpu-check.log")


def run(cfg: TravelConfig) -> int:
    if cfg.image_pins:
        print("\n".join(image_pins()))
        return 0
    out = Path(cfg.out).resolve()
    if not (RELEASED.dir / "model.pth").is_file():
        raise InputError(f"{RELEASED.dir}: no released weights; run `make setup` first")
    missing = [p for p in FULLREF_CARRIED if not p.is_file()]
    if missing:
        raise InputError(f"{missing[0]}: missing (the full-reference weights); run `make setup` first")
    if out == ROOT or ROOT not in out.parents:
        raise InputError(f"--out {cfg.out}: must be a folder inside the repository (it travels with the tree)")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    reqs = install(out)
    copy_reference(Path(cfg.reference), out)
    rows = sizes(out)
    manifest = {"packages": reqs, "reference": list(REFERENCE_FILES), "carry": [str(p.relative_to(ROOT))
                for p in carried(out)], "sizes_bytes": dict(rows), "limit_bytes": LIMIT_BYTES}  # fmt: skip
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{out.relative_to(ROOT)}/: {', '.join(reqs)}; reference {', '.join(REFERENCE_FILES)}")
    print(size_table(rows))
    print(f"device call: carry {json.dumps(manifest['carry'])}\n  command: {device_command(out)}")
    total = sum(b for _, b in rows)
    if total > LIMIT_BYTES:
        raise InputError(f"{out}: the tree and what travels come to {total / 2**20:.2f} MiB, over the device "
                         f"call's {LIMIT_BYTES / 2**20:.0f} MiB; leave something behind")
    return 0


main = cli.script(TravelConfig, run,
                  "Build .gpu/ (packages the GPU image lacks, the reference values) and check what travels fits 64 MiB")


if __name__ == "__main__":
    sys.exit(main())
