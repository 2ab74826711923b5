"""The report's one pass over a method's frames: every file decoded once, and each part's numbers those of the part
computed on its own (NVS-SQA's assess bit for bit, the full-reference metrics pair by pair to float rounding,
FovVideoVDP per window and CrossScore per frame exactly); a broken frame, a frame of the wrong size; what is not
requested or is cached is not computed; memory held by the sinks is one batch / one window."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.errors import InputError, ValidityWarning
from models.fullref.fvvdp import fvvdp_available
from models.pixels import read_image
from models.report import measure as measure_mod
from models.report import onepass
from models.report.measure import Models, compute_parts, measure
from models.report.scene import load_scene
from models.report.stats import unit_spans, unit_window
from tests.sequences import make_seq, make_smooth

N, SIZE = 24, (72, 96)  # NVS-SQA needs 69 px; 24 frames = 4 unit windows of 6
METRICS = ("psnr", "ssim", "mae", "mse")
READERS = ("models.frames", "models.report.onepass", "models.crossscore.data", "models.fullref.inputs",
           "models.report.scene")  # every module that decodes a frame file by name


def noisy(gt: Path, folder: Path, sigma: float, seed: int, alpha: bool = False) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for p in sorted(gt.iterdir()):
        a = np.clip(np.rint(np.asarray(Image.open(p)) + rng.normal(0, sigma, (*SIZE, 3))), 0, 255).astype(np.uint8)
        if alpha:  # an RGBA render: the presets composite it, NVS-SQA reads its colour channels
            a = np.dstack([a, rng.integers(128, 256, SIZE, dtype=np.uint8)])
        Image.fromarray(a).save(folder / p.name)
    return folder


def count_reads(monkeypatch) -> Counter:
    reads: Counter = Counter()

    def counted(path, *a, **k):
        reads[Path(path).resolve()] += 1
        return read_image(path, *a, **k)

    for mod in READERS:
        monkeypatch.setattr(f"{mod}.read_image", counted)
    return reads


def models_of(released=None, crossscore=False) -> Models:
    m = Models(fullref_metrics=METRICS, device="cpu")
    if released is not None:
        m._loaded["nvssqa"] = released
    if crossscore:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ValidityWarning)
            m.crossscore()
    return m


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("measure")
    gt = make_smooth(root / "gt", n=N, size=SIZE)
    noisy(gt, root / "scene" / "rgba", 6.0, 1, alpha=True)
    refs = make_seq(root / "refs", n=3, size=SIZE)
    return root, gt, refs


def method_of(scene, name="rgba"):
    root, gt, _ = scene
    return next(m for m in load_scene("scene", [root / "scene"], gt).methods if m.name == name)


@pytest.mark.skipif(not fvvdp_available(), reason="pyfvvdp not installed")
def test_every_file_is_decoded_once_and_each_part_is_as_computed_alone(scene, released_model, monkeypatch):
    root, gt, refs = scene
    method = method_of(scene)
    models = models_of(released_model, crossscore=True)
    released_model.features(method.frames[:8])  # as for a report's second method: NVS-SQA has run in the process
    reads = count_reads(monkeypatch)
    threads = []  # the metrics run on NVS-SQA's reading thread: with every core, not its encoder workers' one
    real = type(models.fullref()).compute_prepared
    monkeypatch.setattr(type(models.fullref()), "compute_prepared",
                        lambda *a, **k: threads.append(torch.get_num_threads()) or real(*a, **k))
    results, errors = compute_parts(method, models, {"jod", "fullref", "fvvdp", "crossscore"}, refs)
    monkeypatch.undo()
    assert errors == {} and set(threads) == {torch.get_num_threads()}
    frames = {p.resolve() for p in method.frames} | {p.resolve() for p in gt.iterdir()}
    assert {p: n for p, n in reads.items() if p in frames} == dict.fromkeys(frames, 1)

    # NVS-SQA: assess() on the folder, bit for bit
    a = released_model.assess(method.path)
    jod = results["jod"]
    assert (jod["score"], jod["n_frames"], jod["warnings"]) == (a.score, a.n_frames, list(a.warnings))
    assert jod["windows"]["scores"] == np.asarray(a.windowed.scores).tolist()
    assert (jod["noise_sigma"], jod["blockiness"]) == (a.stats.noise_sigma, a.stats.blockiness)
    spans = unit_spans(N, unit_window(N, 6, 30))
    units = [float(released_model.predict(released_model.aggregate(a.frame_features[s:e]))[0]) for s, e in spans]
    assert jod["units"]["scores"] == units and len(units) == 4

    # the full-reference metrics, pair by pair from the files (RGBA composited by the preset)
    fr = models.fullref()
    rows = results["fullref"]["rows"]
    assert [r["frame"] for r in rows] == [p.frame for p in method.pairs] and results["fullref"]["errors"] == []
    for row, pair in zip(rows, method.pairs, strict=True):
        alone = fr.compute(method.frames[pair.index], pair.gt)
        assert all(abs(row[k] - v) <= 1e-12 * max(1.0, abs(v)) for k, v in alone.items()), (row, alone)

    # FovVideoVDP per window, each window's frames read from the files
    def frames_of(paths):
        return lambda s, e: np.stack([read_image(p) for p in paths[s:e]])

    alone = models.fvvdp().windows(frames_of(method.frames), frames_of(sorted(gt.iterdir())), spans)
    assert results["fvvdp"]["scores"] == alone and results["fvvdp"]["starts"] == [s for s, _ in spans]

    # CrossScore per frame, the render given by its file
    cs = models.crossscore()
    assert results["crossscore"]["scores"] == [float(np.mean(cs.predict(f, refs))) for f in method.frames]


def test_a_broken_frame_and_a_frame_of_another_size_are_counted_the_rest_scored(scene, tmp_path, monkeypatch):
    root, gt, _ = scene
    render = noisy(gt, tmp_path / "scene" / "m", 4.0, 2)
    broken, small = render / "0007.png", render / "0013.png"
    broken.write_bytes(broken.read_bytes()[:200])
    Image.fromarray(np.zeros((SIZE[0] // 2, SIZE[1] // 2, 3), np.uint8)).save(small)
    method = load_scene("scene", [tmp_path / "scene"], gt).methods[0]
    reads = count_reads(monkeypatch)
    out = measure(method, models_of(), {"fullref"}, None)
    monkeypatch.undo()
    fr = out["fullref"]
    assert len(fr["rows"]) == N - 2 and "0007.png" not in {r["frame"] for r in fr["rows"]}
    assert fr["errors"][0].startswith(f"{broken}: cannot decode image")
    assert fr["errors"][1] == (f"{small}: the render is 48x36 but the ground truth {gt / '0013.png'} is 96x72; "
                               "render at the ground truth's size")
    assert set(reads.values()) == {1}  # without NVS-SQA nothing is read twice


def test_a_frame_nvs_sqa_cannot_read_fails_jod_only(scene, tmp_path, released_model):
    root, gt, _ = scene
    render = noisy(gt, tmp_path / "scene" / "m", 4.0, 2)
    (render / "0007.png").write_bytes((render / "0007.png").read_bytes()[:200])
    method = load_scene("scene", [tmp_path / "scene"], gt).methods[0]
    results, errors = compute_parts(method, models_of(released_model), {"jod", "fullref"})
    assert set(errors) == {"jod"} and "0007.png: cannot decode image" in errors["jod"]
    assert len(results["fullref"]["rows"]) == N - 1  # the frames after it are read by the pass on its own


def test_what_is_cached_or_not_requested_is_not_computed(scene, tmp_path, monkeypatch):
    method = method_of(scene)
    cache = tmp_path / "cache"
    built = []
    real = onepass.FullrefSink.__init__
    monkeypatch.setattr(onepass.FullrefSink, "__init__", lambda self, *a: built.append(1) or real(self, *a))
    first = measure(method, models_of(), {"fullref"}, cache)
    assert built == [1] and "jod" not in first and "fvvdp" not in first
    calls = []
    monkeypatch.setattr(measure_mod, "compute_parts", lambda m, mo, parts, *a: calls.append(parts) or ({}, {}))
    again = measure(method, models_of(), {"fullref"}, cache)
    assert calls == [] and again["fullref"] == first["fullref"]
    measure(method, models_of(), {"fullref", "fvvdp"}, cache)
    assert calls == [{"fvvdp"}]


class Recorder:
    """A FovVideoVDP stand-in: the shape of each window it is given."""

    def __init__(self):
        self.shapes = []

    def windows(self, read_test, read_ref, spans):
        (s, e), = spans
        self.shapes.append(read_test(s, e).shape)
        return [float(s)]


def test_the_sinks_hold_one_batch_and_one_window(scene):
    method = method_of(scene)
    fv = onepass.FvvdpSink(method, Recorder(), [(0, 6), (6, 12), (12, 18)])
    fr = onepass.FullrefSink(method, models_of().fullref())
    held_fv, held_fr = 0, 0
    for j, p in enumerate(method.pairs):
        frame = read_image(method.frames[p.index], alpha=True)
        d = onepass.Decoded(p.index, frame, p, j, read_image(p.gt, alpha=True))
        fv.add(d)
        fr.add(d)
        held_fv, held_fr = max(held_fv, len(fv.render)), max(held_fr, len(fr.pending))
    assert held_fv == 5 and held_fr == onepass.BATCH - 1  # a full window / batch is scored and let go at once
    assert fv.metric.shapes == [(6, *SIZE, 3)] * 3 and fv.result()["scores"] == [0.0, 6.0, 12.0]
    assert len(fr.result()["rows"]) == N


def test_a_video_that_breaks_off_keeps_the_frames_before(scene):
    method = method_of(scene)
    fv = onepass.FvvdpSink(method, Recorder(), [(0, 6), (6, 12)])
    for j, p in enumerate(method.pairs[:8]):
        fv.add(onepass.Decoded(p.index, np.zeros((*SIZE, 3), np.uint8), p, j, np.zeros((*SIZE, 3), np.uint8)))
    fv.stopped("v.mp4: frame 8 is 10x10 but the video starts at 96x72")
    out = fv.result()
    assert out["scores"] == [0.0] and out["errors"] == ["FovVideoVDP, frames 6-11: v.mp4: frame 8 is 10x10 but the "
                                                        "video starts at 96x72"]
    nothing = onepass.FvvdpSink(method, Recorder(), [(0, 6)])
    nothing.stopped("v.mp4: no frame could be decoded")
    with pytest.raises(InputError, match="no frame could be decoded"):
        nothing.result()
