"""CrossScore, the API object: arrays or files in, the map of crossscore.py predict out; errors name parameters."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"

import crossscore  # noqa: E402
from consts import EXAMPLES_DIR  # noqa: E402
from models.crossscore import CrossScore  # noqa: E402
from models.errors import InputError  # noqa: E402

SIZE = (140, 112)  # the committed demo model's training size: no resizing, quick


def _frames(n: int, start: int = 20) -> list[np.ndarray]:
    files = sorted((EXAMPLES_DIR / "Giraffe+NeRF").glob("*.jpg"))[start:start + 2 * n:2]
    return [np.asarray(Image.open(f).convert("RGB").resize(SIZE, Image.BILINEAR)) for f in files]


@pytest.fixture(scope="module")
def cs() -> CrossScore:
    return CrossScore.from_checkpoint(device="cpu")  # the committed demo model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[list[Path], Path]:
    """Three renders and a folder of four references, as PNG files."""
    root = tmp_path_factory.mktemp("scorer")
    (root / "q").mkdir()
    (root / "refs").mkdir()
    renders = []
    for i, img in enumerate(_frames(3, start=21)):
        renders.append(root / "q" / f"r{i}.png")
        Image.fromarray(img).save(renders[-1])
    for i, img in enumerate(_frames(4)):
        Image.fromarray(img).save(root / "refs" / f"ref{i}.png")
    return renders, root / "refs"


def _cli_maps(renders: list[Path], refs: Path, out: Path, *flags: str) -> list[np.ndarray]:
    query = str(renders[0]) if len(renders) == 1 else str(renders[0].parent)
    assert crossscore.main(["predict", query, "--references", str(refs), "--out", str(out), "--quiet", *flags]) == 0
    return [np.load(out / "maps" / f"{r.stem}.npy") for r in renders]


def test_two_arrays_in_the_cli_map_out(cs, files, tmp_path):
    renders, _ = files
    render, ref = np.asarray(Image.open(renders[0])), _frames(1)[0]
    (tmp_path / "one").mkdir()
    Image.fromarray(ref).save(tmp_path / "one" / "ref.png")
    want = _cli_maps(renders[:1], tmp_path / "one", tmp_path / "out")[0]
    got = cs.predict(render, [ref])
    assert got.dtype == np.float32 and got.shape == want.shape == (112, 140)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_files_and_a_folder_give_the_cli_maps(cs, files, tmp_path):
    renders, refs = files
    want = _cli_maps(renders, refs, tmp_path / "out", "--n-ref", "3", "--batch-size", "2")
    three = CrossScore.from_checkpoint(device="cpu", n_ref=3)
    for got, w in zip(three.predict_many(renders, refs, batch_size=2), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=0, atol=1e-6)
    listed = sorted(refs.iterdir(), reverse=True)  # a list of files: natural-sorted, as the CLI's folder
    np.testing.assert_allclose(three.predict(renders[1], listed), want[1], rtol=0, atol=1e-6)


def test_floats_channels_first_and_tensors_are_the_same_image(cs):
    import torch

    render, refs = _frames(1, start=31)[0], _frames(2)
    base = cs.predict(render, refs)
    np.testing.assert_allclose(cs.predict(render.astype(np.float32) / 255, [r / 255.0 for r in refs]), base,
                               atol=1e-6)
    chw = [np.ascontiguousarray(x.transpose(2, 0, 1)) for x in (render, *refs)]
    np.testing.assert_array_equal(cs.predict(chw[0], chw[1:], dim_order="CHW"), base)
    np.testing.assert_array_equal(cs.predict(torch.tensor(render), [torch.tensor(r) for r in refs]), base)
    np.testing.assert_array_equal(cs.predict(render, np.stack(refs)), base)  # (N, H, W, 3): N references


def test_reference_rule_for_arrays(cs):
    render, refs = _frames(1, start=31)[0], _frames(5)
    five = CrossScore(cs.net, "cpu", n_ref=2, short_side=cs.short_side)
    assert [p.name for p in five.sample(render, refs).ref_paths] == ["references[0]", "references[4]"]  # spread
    seeded = CrossScore(cs.net, "cpu", n_ref=2, short_side=cs.short_side, seed=3)
    picked = [p.name for p in seeded.sample(render, refs).ref_paths]
    assert picked == [p.name for p in seeded.sample(render, refs).ref_paths] and len(picked) == 2
    none = CrossScore(cs.net, "cpu", n_ref=0, short_side=cs.short_side)
    assert none.predict(render, None).shape == (112, 140)  # the no-reference use of the network


def test_writes_no_files(cs, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    renders, refs = files
    cs.predict(renders[0], refs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("call, msg", [
    (lambda cs, r, refs: cs.predict(r, []), "references: no reference image"),
    (lambda cs, r, refs: cs.predict(r[:, :, :2], refs), "render: expected one RGB image of shape (H, W, 3)"),
    (lambda cs, r, refs: cs.predict(r * 2.0, refs), "render: float pixels must be finite and lie in [0, 1]"),
    (lambda cs, r, refs: cs.predict(r, [refs[0].astype(np.int32) - 300]), "references[0]: int32 frames hold values"),
    (lambda cs, r, refs: cs.predict(r, refs, dim_order="WHC"), "dim_order='WHC': use 'HWC' or 'CHW'"),
    (lambda cs, r, refs: cs.predict(r, "/no/such/folder"), "references: /no/such/folder is not a folder"),
    (lambda cs, r, refs: cs.attention(cs.sample(r, refs), "centre", head=8), "head=8: the decoder has 8 heads"),
    (lambda cs, r, refs: cs.attention(cs.sample(r, refs), "9,9"), "patches=9,9: the token grid is 8 rows x 10"),
    (lambda cs, r, refs: CrossScore(cs.net, "cpu", precision="fp8"), "precision=fp8: unknown; use auto, fp16, fp32"),
])
def test_errors_name_parameters(cs, call, msg):
    render, refs = _frames(1, start=31)[0], _frames(2)
    with pytest.raises(InputError) as e:
        call(cs, render, refs)
    assert str(e.value).startswith(msg), str(e.value)


def test_the_cli_says_flags_for_parameters():
    cfg = crossscore.parse_args(["predict", "q.png", "--references", "refs"])
    assert crossscore.as_flags("precision=fp8: unknown", cfg) == "--precision fp8: unknown"
    assert crossscore.as_flags("references: no reference image", cfg) == "--references: no reference image"
    assert crossscore.as_flags("render: not an image", cfg) == "query: not an image"
    assert crossscore.as_flags("head=9: the decoder", cfg) == "--attn-head 9: the decoder"
    assert crossscore.as_flags("patches=x: use", cfg) == "--attention x: use"
    assert crossscore.as_flags("refs: a folder typed as --references refs", cfg).startswith("refs: ")
    test = crossscore.parse_args(["test", "--data", "data"])
    assert crossscore.as_flags("data: no such dataset folder", test) == "data: no such dataset folder"  # a path


def test_maps_go_back_to_the_renders_own_pixels():
    from models.crossscore.data import map_to_render, resized_size

    assert resized_size(60, 80, 56) == (56, 75) and resized_size(60, 80, 0) == (60, 80)
    flat = map_to_render(np.full((56, 70), 0.25, np.float32), (60, 80), 56)
    assert flat.shape == (60, 80) and np.all(flat == 0.25)
    ramp = np.tile(np.arange(70, dtype=np.float32), (56, 1))  # 70 of the resized 75 columns are covered
    up = map_to_render(ramp, (60, 80), 56)
    covered = round(70 * 80 / 75)
    assert up.shape == (60, 80) and np.all(up[:, covered:] == up[:, covered - 1:covered])  # the strip repeats the edge
    assert np.all(np.diff(up[0, :covered]) >= 0) and up[0, 0] == pytest.approx(0.0, abs=0.5)


def test_the_demo_model_says_what_it_is_every_time():
    from models.crossscore import CrossScore
    from models.errors import ValidityWarning

    with pytest.warns(ValidityWarning, match="the CrossScore demonstration model"):
        cs = CrossScore.from_checkpoint()
    assert cs.info["warning"].startswith("the CrossScore demonstration model")
