"""Video decoding (models/video.py, PyAV): exact counts, colours from the stream's tags, damaged files, streaming.

Every video is made here, in tmp_path, with PyAV itself (models.video.encode).
"""

from __future__ import annotations

import logging
import weakref
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from consts import EXAMPLES_DIR
from models import video
from models.errors import InputError
from models.frames import open_frame_folder, open_sequence, open_video

MIN = 69  # models.nvs_sqa.MIN_FRAME_SIZE, literal so that this file does not import torch models
H, W = 80, 96


def gradient(i: int = 0, h: int = H, w: int = W) -> np.ndarray:
    """Smooth RGB ramps (chroma subsampling loses little), a different blue level per frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), np.full_like(xx, 10 + 20 * i)], -1).astype(np.uint8)


def patches() -> np.ndarray:
    """Saturated colour patches, where the matrix and the range matter most."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255), (255, 255, 255),
               (0, 0, 0), (200, 120, 40), (30, 60, 90), (128, 128, 128), (16, 235, 128)]
    out = np.zeros((H, W, 3), np.uint8)
    for k, c in enumerate(colours):
        r, q = divmod(k, 4)
        out[r * 26:(r + 1) * 26, q * 24:(q + 1) * 24] = c
    return out


def clip(n: int = 10) -> list[np.ndarray]:
    return [gradient(i) for i in range(n)]


def decode(path: Path) -> np.ndarray:
    seq = open_video(path, MIN)
    return np.stack(list(seq))


# --------------------------------------------------------------------------------------------- counts
@pytest.mark.parametrize("suffix, by", [(".mkv", "duration"), (".avi", "header"), (".mp4", "header")])
def test_exact_frame_count_and_lossless_rgb(tmp_path, suffix, by):
    path = tmp_path / f"v{suffix}"
    codec = {".mp4": ("libx264rgb", "rgb24", {"qp": "0"})}.get(suffix, ("ffv1", "bgr0", {}))
    video.encode(path, clip(10), codec=codec[0], pix_fmt=codec[1], options=codec[2])
    info = video.probe(path)
    assert (info.width, info.height, info.declared, info.declared_by, info.colour.kind) == (W, H, 10, by, "rgb")
    seq = open_video(path, MIN)
    got = np.stack(list(seq))
    assert seq.n_frames == 10 and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.stack(clip(10)))  # lossless RGB is decoded exactly


def test_truncated_file_warns_with_both_counts_and_scores_what_decodes(tmp_path, caplog):
    whole = tmp_path / "whole.mkv"
    video.encode(whole, clip(10))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    seq = open_video(cut, MIN)
    assert seq.n_frames == 10  # what the container declares, until decoded
    with caplog.at_level(logging.WARNING, logger="models.video"):
        got = np.stack(list(seq))
    assert seq.n_frames == len(got) == 5
    np.testing.assert_array_equal(got, np.stack(clip(5)))
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith(f"{cut}: decoded 5 frames but the container declares 10 (from its duration);")
    # the same doubt travels with the sequence, into the score's `warnings` column (models/nvs_sqa/run.py)
    assert seq.warnings == ["video: decoded 5 frames but the container declares 10 (from its duration)"]


def test_decode_error_warns_with_both_counts(tmp_path, caplog):
    whole = tmp_path / "whole.avi"
    video.encode(whole, clip(10))
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    problems: list[str] = []
    with caplog.at_level(logging.WARNING, logger="models.video"):
        got = list(video.frames(cut, W, H, problems))
    assert len(got) == 5
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg.startswith(f"{cut}: decoded 5 frames but the container declares 10; 1 decode error(s), first: ")
    assert problems == [msg[len(f"{cut}: "):msg.index("; the score is")].replace("decoded", "video: decoded", 1)]


def test_nothing_decodes_is_one_line_error(tmp_path):
    whole = tmp_path / "whole.mkv"
    video.encode(whole, clip(10))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[:1500])  # the header survives, no frame does
    with pytest.raises(InputError) as e:
        open_video(cut, MIN)
    assert str(e.value) == (f"{cut}: cannot read this video (no frame decodes: no complete frame in the file); "
                            "re-encode the video (e.g. H.264 .mp4) or extract its frames")
    with pytest.raises(InputError, match=r"cut\.mkv: no frame could be decoded \(no complete frame in the file\)"):
        list(video.frames(cut, W, H))
    (tmp_path / "junk.mp4").write_bytes(b"\x00junk" * 200)
    with pytest.raises(InputError, match=r"junk\.mp4: cannot read this video \(Invalid data found"):
        open_sequence(tmp_path / "junk.mp4", MIN)


def test_size_change_mid_stream_is_one_line_error(tmp_path):
    path = tmp_path / "sizes.avi"  # MJPEG: every frame is a JPEG with its own size
    with av.open(str(path), "w") as c:
        stream = c.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuvj420p"
        wider = av.CodecContext.create("mjpeg", "w")
        wider.width, wider.height, wider.pix_fmt, wider.time_base = W + 16, H, "yuvj420p", Fraction(1, 10)
        for i in range(4):
            ctx = stream.codec_context if i < 2 else wider
            frame = av.VideoFrame.from_ndarray(gradient(i, H, ctx.width), format="rgb24").reformat(format="yuvj420p")
            frame.pts = i
            for packet in [*ctx.encode(frame), *(ctx.encode(None) if i in (1, 3) else [])]:
                packet.stream = stream
                c.mux(packet)
    seq = open_video(path, MIN)
    it = iter(seq)
    assert next(it).shape == next(it).shape == (H, W, 3)
    with pytest.raises(InputError) as e:
        next(it)
    assert str(e.value) == (f"{path}: frame 2 is {W + 16}x{H} but the video starts at {W}x{H}; all frames must "
                            "have one size (re-encode at one size)")


# --------------------------------------------------------------------------------------------- colours
def _mean_err(path: Path, src: np.ndarray) -> tuple[float, int]:
    d = np.abs(decode(path)[0].astype(int) - src)
    return float(d.mean()), int(d.max())


@pytest.mark.parametrize("pix_fmt", ["yuv444p", "yuv444p10le"])
def test_limited_and_full_range_decode_to_the_source(tmp_path, pix_fmt):
    src = patches()
    for matrix in ("BT.709", "BT.601"):
        for full in (False, True):
            path = tmp_path / f"{matrix}-{full}.mkv"
            video.encode(path, [src] * 2, pix_fmt=pix_fmt, matrix=matrix, full_range=full)
            colour = video.probe(path).colour
            assert (colour.matrix, colour.full_range, colour.tagged) == (matrix, full, True)
            assert colour.bits == (10 if "10" in pix_fmt else 8)
            mean, worst = _mean_err(path, src)
            assert worst <= (1 if "10" in pix_fmt else 2) and mean < 0.6, (matrix, full, mean, worst)


def test_the_tags_are_used(tmp_path):
    """The same YUV samples decode right with their tags and far off without them (read as BT.601 limited)."""
    src = patches()
    for matrix, full in (("BT.709", True), ("BT.709", False)):
        tagged, bare = tmp_path / f"t{full}.mkv", tmp_path / f"u{full}.mkv"
        video.encode(tagged, [src] * 2, pix_fmt="yuv444p", matrix=matrix, full_range=full)
        video.encode(bare, [src] * 2, pix_fmt="yuv444p", matrix=matrix, full_range=full, tag=False)
        assert not video.probe(bare).colour.tagged and video.probe(bare).colour.matrix == "BT.601 (untagged)"
        assert _mean_err(tagged, src)[1] <= 2
        assert _mean_err(bare, src)[1] >= 20  # BT.709 colours read as BT.601, full range read as limited


def test_untagged_bt601_round_trips_and_420_is_close(tmp_path):
    src = np.stack(clip(3))
    path = tmp_path / "plain.mkv"
    video.encode(path, src, pix_fmt="yuv420p", matrix="BT.601", tag=False)  # what ffmpeg makes by default
    d = np.abs(decode(path).astype(int) - src)
    assert d.max() <= 3 and d.mean() < 0.4  # 4:2:0 chroma costs a little on smooth ramps


def test_doubtful_colours_and_rotation_warn_once(tmp_path, caplog):
    path = tmp_path / "hdr.mp4"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.set_display_rotation(90)
        stream.codec_context.color_trc = 16  # PQ
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(gradient(i), format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            c.mux(stream.encode(frame))
        c.mux(stream.encode(None))
    with caplog.at_level(logging.WARNING, logger="models.video"):
        assert decode(path).shape == (3, H, W, 3)  # scored as stored
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: HDR transfer PQ (SMPTE 2084) scored as coded, without tone mapping; display rotation 90 degrees "
        "ignored (frames scored as stored); see docs/scoring.md, 'Videos'"]


# --------------------------------------------------------------------------------------------- streaming
def test_frames_are_streamed_not_kept(tmp_path):
    path = tmp_path / "long.mkv"
    video.encode(path, clip(40))
    alive = []
    for i, frame in enumerate(open_video(path, MIN)):
        alive.append(weakref.ref(frame))
        del frame
        assert sum(r() is not None for r in alive) <= 1, f"frame {i}: earlier frames are still held"
    assert len(alive) == 40


def test_lossless_video_scores_as_its_frames(tmp_path, released_model):
    frames = np.stack(list(open_frame_folder(EXAMPLES_DIR / "Giraffe+NeRF", MIN)))[:16]
    path = tmp_path / "nerf.mkv"
    video.encode(path, frames)  # FFV1, bgr0: lossless RGB, native 960x768
    seq = open_video(path, MIN)
    f_video = released_model.features(seq)
    f_frames = released_model.features(frames)
    assert seq.n_frames == 16
    s_video, s_frames = released_model.predict(np.stack([f_video, f_frames]))
    assert abs(s_video - s_frames) < 1e-4
