"""CrossScore pictures: turbo score maps, float maps and summary figures, all written atomically."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.results import atomic_write_bytes


def turbo(m: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """(H, W) float map -> (H, W, 3) uint8 with matplotlib's turbo colormap over [vmin, vmax] (upstream)."""
    from matplotlib import colormaps

    x = np.clip((np.asarray(m, np.float64) - vmin) / (vmax - vmin), 0.0, 1.0)
    return (colormaps["turbo"](x)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


def _png(fig, dpi: int) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def to_hwc(img) -> np.ndarray:
    """(3, H, W) tensor/array in [0, 1] -> (H, W, 3) uint8."""
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    return (np.clip(a.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)


def figure_png(query: np.ndarray, pred: np.ndarray, refs: Sequence[np.ndarray], true: np.ndarray | None = None,
               title: str = "", ref_names: Sequence[str] = (), dpi: int = 72) -> bytes:
    """Query, predicted map (with its mean and a colour bar), the true map when known, and the references used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = 3 if true is not None else 2
    cols = max(top, len(refs), 1)
    fig, axes = plt.subplots(2 if refs else 1, cols, figsize=(3.2 * cols, 2.9 * (2 if refs else 1)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    axes[0, 0].imshow(query)
    axes[0, 0].set_title("query", fontsize=9)
    shown = axes[0, 1].imshow(pred, cmap="turbo", vmin=0, vmax=1)
    axes[0, 1].set_title(f"predicted SSIM map, mean {float(np.mean(pred)):.3f}", fontsize=9)
    fig.colorbar(shown, ax=axes[0, 1], fraction=0.046, pad=0.04).ax.tick_params(labelsize=7)
    if true is not None:
        axes[0, 2].imshow(true, cmap="turbo", vmin=0, vmax=1)
        axes[0, 2].set_title(f"true SSIM map, mean {float(np.mean(true)):.3f}", fontsize=9)
    for i, r in enumerate(refs):
        axes[1, i].imshow(r)
        axes[1, i].set_title(ref_names[i] if i < len(ref_names) else f"reference {i + 1}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig, dpi)


def write_figure(path: Path, *args, **kwargs) -> None:
    """:func:`figure_png`, written atomically to ``path``."""
    atomic_write_bytes(path, figure_png(*args, **kwargs))


def attention_png(query: np.ndarray, refs: Sequence[np.ndarray], attn: np.ndarray,
                  patches: Sequence[tuple[int, int]], patch: int = 14, ref_names: Sequence[str] = (),
                  dpi: int = 72) -> bytes:
    """One row per chosen query patch: the query with the patch boxed, then each reference with that patch's
    cross-attention (``attn``: (P, N_ref, Nh, Nw), one head of the last decoder layer) over it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    n = len(refs)
    fig, axes = plt.subplots(len(patches), 1 + n, figsize=(3.2 * (1 + n), 2.9 * len(patches)), squeeze=False)
    for row, (r, c) in enumerate(patches):
        axes[row, 0].imshow(query)
        axes[row, 0].add_patch(Rectangle((c * patch - 0.5, r * patch - 0.5), patch, patch, fill=False, lw=2,
                                         edgecolor="red"))
        axes[row, 0].set_title(f"query patch ({r}, {c})", fontsize=9)
        vmax = float(attn[row].max()) or 1.0  # one scale per row: the references compete for the attention
        for i, ref in enumerate(refs):
            h, w = attn.shape[2] * patch, attn.shape[3] * patch
            heat = np.kron(attn[row, i], np.ones((patch, patch)))
            axes[row, 1 + i].imshow(ref[:h, :w])
            axes[row, 1 + i].imshow(heat, cmap="inferno", alpha=0.6, vmin=0, vmax=vmax)
            name = ref_names[i] if i < len(ref_names) else f"reference {i + 1}"
            axes[row, 1 + i].set_title(f"{name}: {attn[row, i].sum():.2f} of the attention", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    return _png(fig, dpi)
