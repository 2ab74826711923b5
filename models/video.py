"""Video files through PyAV (FFmpeg's libraries): probe a video, then stream it as ``uint8`` RGB frames.

Decoding (documented in docs/scoring.md, "Videos"):

- The colour matrix (BT.601, BT.709, BT.2020, FCC, SMPTE 240M) and range (limited/full) of a YUV stream are
  read from the first frame's tags and passed to swscale explicitly for every frame. Untagged YUV is decoded as
  BT.601, limited range (full range for the ``yuvj*`` formats): FFmpeg's own default, the matrix swscale also
  uses when it turns RGB into YUV without being told one, so such encodes round-trip.
- Every pixel format, 8-bit or deeper (10-, 12-bit), is converted to 8-bit RGB in one swscale call with
  accurate rounding and full chroma interpolation: closer to the source than swscale's default (which is about
  one code value dark; benchmarks/video.md) and, measured once on a 10-bit 4:2:0 frame of Giraffe+NeRF, than
  16-bit RGB and ``round(v / 257)`` (mean error 0.18 vs 0.21 code values). 8-bit RGB streams (FFV1
  ``bgr0``/``gbrp``, ``libx264rgb``, …) are copied exactly.
- The frame count is the number of frames that decode. Fewer than the container declares, or a decode error,
  gives a warning naming the file and both counts; no frame at all, or a frame whose size differs from the
  first, is an :class:`InputError`.
- Doubtful colours (an unknown matrix, HDR transfer, an alpha plane, a rotation tag) are decoded as stored,
  with a warning.

Frames are decoded one packet at a time: memory does not grow with the length of the video.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from models.errors import InputError

log = logging.getLogger(__name__)

REDO = "re-encode the video (e.g. H.264 .mp4) or extract its frames"
# FFmpeg's AVColorSpace values (libavutil/pixfmt.h) -> (name, swscale matrix).
MATRICES: dict[int, tuple[str, Colorspace]] = {
    1: ("BT.709", Colorspace.ITU709),
    4: ("FCC", Colorspace.FCC),
    5: ("BT.601", Colorspace.ITU601),  # BT470BG
    6: ("BT.601", Colorspace.ITU601),  # SMPTE170M
    7: ("SMPTE 240M", Colorspace.SMPTE240M),
    9: ("BT.2020", Colorspace.BT2020),  # non-constant luminance
}
UNSPECIFIED_MATRIX = 2
HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}  # AVColorTransferCharacteristic
FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
ENCODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
# encode(): matrix name -> (AVColorSpace tag, swscale matrix)
ENCODE_MATRICES = {"BT.601": (6, Colorspace.ITU601), "BT.709": (1, Colorspace.ITU709),
                   "BT.2020": (9, Colorspace.BT2020)}


@dataclass(frozen=True)
class Colour:
    """How one frame is turned into RGB: its matrix and range, as read from the tags or assumed."""

    kind: str  # "rgb", "gray" or "yuv"
    bits: int
    matrix: str = ""  # "BT.709", "BT.601 (untagged)", ... ; "" for RGB and gray
    full_range: bool = True
    tagged: bool = True  # matrix and range both came from the stream
    sws_matrix: int = Colorspace.ITU601

    def describe(self) -> str:
        if self.kind != "yuv":
            return f"{self.bits}-bit {self.kind.upper() if self.kind == 'rgb' else self.kind}"
        return f"{self.bits}-bit YUV, {self.matrix}, {'full' if self.full_range else 'limited'} range"


@dataclass(frozen=True)
class VideoInfo:
    """What a video says about itself, and what its first frame shows."""

    width: int
    height: int
    declared: int  # frames the container declares; 0 when it says nothing
    declared_by: str  # "header", "duration" or ""
    codec: str
    pix_fmt: str
    colour: Colour
    rotation: int


def colour_of(frame: av.VideoFrame, notes: set[str] | None = None) -> Colour:
    """The conversion a frame needs, from its pixel format and tags; doubtful cases are added to ``notes``."""
    fmt = frame.format
    notes = notes if notes is not None else set()
    bits = max(c.bits for c in fmt.components)
    if any(c.is_alpha for c in fmt.components):
        notes.add("alpha plane discarded")
    if frame.color_trc in HDR_TRANSFERS:
        notes.add(f"HDR transfer {HDR_TRANSFERS[frame.color_trc]} scored as coded, without tone mapping")
    if fmt.is_rgb or fmt.has_palette:
        return Colour("rgb", bits)
    if len([c for c in fmt.components if not c.is_alpha]) == 1:
        return Colour("gray", bits)
    cs = frame.colorspace
    tagged = frame.color_range != 0
    full = frame.color_range == 2 if tagged else fmt.name.startswith("yuvj")
    matrix, sws = MATRICES.get(cs, ("", Colorspace.ITU601))
    if cs == UNSPECIFIED_MATRIX:
        matrix, tagged = "BT.601 (untagged)", False
    elif cs == 10:
        matrix, sws = "BT.2020 (constant luminance, decoded as non-constant)", Colorspace.BT2020
        notes.add("BT.2020 constant-luminance matrix decoded as non-constant")
    elif not matrix:
        matrix = f"BT.601 (matrix {cs} unsupported)"
        notes.add(f"colour matrix {cs} (FFmpeg AVColorSpace) unsupported, decoded as BT.601")
    return Colour("yuv", bits, matrix, full, tagged, int(sws))


def to_rgb(frame: av.VideoFrame, colour: Colour, scaler: VideoReformatter | None = None) -> np.ndarray:
    """One decoded frame as ``uint8`` RGB (H, W, 3), with the matrix and range of ``colour``; pass one ``scaler``
    for a whole stream so that swscale is set up once."""
    if colour.kind == "rgb" and colour.bits == 8:
        return frame.to_ndarray(format="rgb24")  # exact: a reordering of the stored bytes
    scaler = scaler or VideoReformatter()
    if colour.kind != "yuv":
        return scaler.reformat(frame, format="rgb24", interpolation=FLAGS).to_ndarray()
    rng = ColorRange.JPEG if colour.full_range else ColorRange.MPEG
    out = scaler.reformat(frame, format="rgb24", src_colorspace=colour.sws_matrix, dst_colorspace=colour.sws_matrix,
                          src_color_range=rng, dst_color_range=ColorRange.JPEG, interpolation=FLAGS)
    return out.to_ndarray()


def _reason(e: BaseException) -> str:
    msg = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(msg).splitlines()[0]


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read this video ({_reason(e)}); {REDO}") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        raise InputError(f"{path}: cannot read this video (no video stream); {REDO}")
    return streams[0]


def declared_frames(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> tuple[int, str]:
    """(frames, how): the header's frame count (AVI, MP4, MOV), else duration × frame rate (Matroska, WebM)."""
    if stream.frames > 0:
        return int(stream.frames), "header"
    rate = stream.average_rate or stream.guessed_rate
    seconds = None
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    if rate and seconds:
        return int(round(seconds * float(rate))), "duration"
    return 0, ""


def probe(path: Path) -> VideoInfo:
    """Size, declared frame count and colour of a video, from its first decodable frame (decodes nothing else)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        declared, how = declared_frames(stream, container)
        first, error = None, "no complete frame in the file"
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as e:
                    error = _reason(e)
                    continue
                if frames:
                    first = frames[0]
                    break
        except av.error.FFmpegError as e:
            error = _reason(e)
        if first is None:
            raise InputError(f"{path}: cannot read this video (no frame decodes: {error}); {REDO}")
        return VideoInfo(first.width, first.height, declared, how, stream.codec_context.name, first.format.name,
                         colour_of(first), int(first.rotation or 0))


def frames(path: Path, width: int, height: int, problems: list[str] | None = None
           ) -> Generator[np.ndarray, None, int]:  # fmt: skip
    """Stream the video's frames as ``uint8`` RGB (H, W, 3), one packet at a time; returns how many decoded.

    Raises :class:`InputError` when no frame decodes or a frame is not ``width`` x ``height``; warns (naming
    the file and both counts) on a decode error or fewer frames than the container declares. Each warning is
    also appended, short and without the file name, to ``problems`` (for a score's ``warnings`` column).
    """
    notes: set[str] = set()
    errors: list[str] = []
    count, colour, rotation, scaler = 0, None, 0, VideoReformatter()
    with _open(path) as container:
        stream = _video_stream(container, path)
        declared, how = declared_frames(stream, container)
        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as e:  # a damaged packet: skip it, go on with the next
                    errors.append(_reason(e))
                    continue
                for frame in decoded:
                    if (frame.width, frame.height) != (width, height):
                        raise InputError(
                            f"{path}: frame {count} is {frame.width}x{frame.height} but the video starts at "
                            f"{width}x{height}; all frames must have one size (re-encode at one size)"
                        )
                    if colour is None:
                        colour, rotation = colour_of(frame, notes), int(frame.rotation or 0)
                    yield to_rgb(frame, colour, scaler)
                    count += 1
        except av.error.FFmpegError as e:  # the demuxer cannot go on: the rest of the file is unreadable
            errors.append(_reason(e))
    if count == 0:
        why = errors[0] if errors else "no complete frame in the file"
        raise InputError(f"{path}: no frame could be decoded ({why}); {REDO}")
    found = _report(path, count, declared, how, errors, notes, colour, rotation)
    if problems is not None:
        problems.extend(found)
    return count


def _report(path: Path, count: int, declared: int, how: str, errors: list[str], notes: set[str],
            colour: Colour | None, rotation: int) -> list[str]:
    """Log what makes this video's score doubtful; returns the same, short."""
    found = []
    short = declared > 0 and count < declared - (1 if how == "duration" else 0)  # a duration rounds to ±1 frame
    if short or errors:
        said = (f"the container declares {declared}" + (" (from its duration)" if how == "duration" else "")
                if declared else "the container declares no frame count")
        errs = f"; {len(errors)} decode error(s), first: {errors[0]}" if errors else ""
        log.warning("%s: decoded %d frames but %s%s; the score is from these %d frames only (re-export the video "
                    "to score them all)", path, count, said, errs, count)
        found.append(f"video: decoded {count} frames but {said}{errs}")
    if rotation:
        notes.add(f"display rotation {rotation} degrees ignored (frames scored as stored)")
    if notes:
        log.warning("%s: %s; see docs/scoring.md, 'Videos'", path, "; ".join(sorted(notes)))
        found.extend(f"video: {n}" for n in sorted(notes))
    if colour is not None and colour.kind == "yuv" and not colour.tagged:
        log.info("%s: colour tags missing, decoded as %s", path, colour.describe())
    return found


def encode(path: Path, frames: Iterable[np.ndarray], codec: str = "ffv1", pix_fmt: str = "bgr0", rate: int = 10,
           matrix: str = "BT.709", full_range: bool = False, tag: bool = True, options: dict[str, str] | None = None
           ) -> int:  # fmt: skip
    """Write ``uint8`` RGB frames (H, W, 3) as a video, for tests and benchmarks; returns the frame count.

    A YUV ``pix_fmt`` is made with ``matrix`` (BT.601, BT.709, BT.2020) and ``full_range``, and the stream is
    tagged with both unless ``tag`` is False. ``options``: the encoder's, e.g. ``{"crf": "23"}``.
    """
    av_matrix, sws = ENCODE_MATRICES[matrix]
    rng = ColorRange.JPEG if full_range else ColorRange.MPEG
    n = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        for rgb in frames:
            if n == 0:
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = pix_fmt
                if tag and not av.video.format.VideoFormat(pix_fmt).is_rgb:
                    stream.codec_context.colorspace, stream.codec_context.color_range = av_matrix, int(rng)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format=pix_fmt, src_colorspace=sws, dst_colorspace=sws, dst_color_range=rng,
                                   src_color_range=ColorRange.JPEG, interpolation=ENCODE_FLAGS)
            if not tag:
                frame.colorspace, frame.color_range = UNSPECIFIED_MATRIX, 0
            frame.pts = n
            container.mux(stream.encode(frame))
            n += 1
        container.mux(stream.encode(None))
    return n
