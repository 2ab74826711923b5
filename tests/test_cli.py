"""models.cli: config dataclass -> flags -> config, presets, nested groups, validation, the shared entry point."""

from __future__ import annotations

import errno
from dataclasses import dataclass

import pytest

from models import cli
from models.cli import opt
from models.errors import InputError


@dataclass
class Inner:
    crop: int = opt(64, "crop side", min=8)
    quality: tuple[int, int] = opt((10, 75), "JPEG quality range")


@dataclass
class Demo:
    inputs: list[str] = opt(["x"], "things to read", positional=True)
    name: str = opt("", "run name")
    lr: float = opt(1e-3, "learning rate", min=0.0)
    device: str = opt("auto", "device", choices=("auto", "cpu", "cuda"))
    quiet: bool = opt(False, "no progress bars")
    no_cache: bool = opt(False, "recompute")
    out: str | None = opt(None, "output folder")
    weights: list[float] = opt([1.0, 0.5], "loss weights")
    inner: Inner = opt(Inner(), "pair sampling")


PRESETS = {"base": {}, "small": {"lr": 0.01, "inner": {"crop": 16}}}


def test_defaults_and_given_flags():
    p = cli.parse(Demo, [])
    assert p.config == Demo() and p.given == {}
    p = cli.parse(Demo, ["a", "b", "--lr", "0.5", "--quiet", "--crop", "32", "--weights", "2", "3", "--no-cache"])
    assert p.config.inputs == ["a", "b"] and p.config.lr == 0.5 and p.config.quiet and p.config.no_cache
    assert p.config.inner == Inner(crop=32) and p.config.weights == [2.0, 3.0]
    assert p.given == {"inputs": ["a", "b"], "lr": 0.5, "quiet": True, "no_cache": True, "weights": [2.0, 3.0],
                       "inner": {"crop": 32}}


def test_round_trip_through_to_argv():
    cfg = cli.parse(Demo, ["a", "--device", "cpu", "--out", "o", "--quality", "5", "9", "--no-cache"]).config
    argv = cli.to_argv(cfg)
    assert cli.parse(Demo, argv).config == cfg
    assert cli.to_argv(Demo()) == []


@pytest.mark.parametrize("inputs", [["a", "b"], ["-odd name", "b"]])
def test_positionals_and_list_flags_round_trip(inputs):
    """A positional after a list flag would be read as one of its values (``--weights 2 3 a``): to_argv puts the
    positionals first, or after ``--`` where one starts with ``-``."""
    cfg = Demo(inputs=inputs, lr=0.5, weights=[2.0, 3.0])  # --weights last: it would take the positionals
    argv = cli.to_argv(cfg)
    assert cli.parse(Demo, argv).config == cfg
    assert argv[:2] == inputs if not inputs[0].startswith("-") else argv[-3:] == ["--", *inputs]


def test_presets_then_flags():
    p = cli.parse(Demo, ["--preset", "small", "--quality", "1", "2"], presets=PRESETS, default_preset="base")
    assert p.preset == "small" and p.config.lr == 0.01
    assert p.config.inner == Inner(crop=16, quality=(1, 2))  # the preset's nested value and the flag's, merged
    assert cli.parse(Demo, ["--preset", "small", "--lr", "1"], presets=PRESETS).config.lr == 1.0


@pytest.mark.parametrize("argv, needle", [
    (["--lr", "-1"], "--lr -1.0: must be >= 0.0"),
    (["--crop", "2"], "--crop 2: must be >= 8"),
    (["--device", "tpu"], "invalid choice"),
    (["--lr", "fast"], "invalid float value"),
])
def test_bad_values_exit_2_with_one_error_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse(Demo, argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "error:" in ln]) == 1


def test_help_carries_the_field_text(capsys):
    with pytest.raises(SystemExit):
        cli.parse(Demo, ["--help"])
    out = capsys.readouterr().out
    assert "learning rate (default: 0.001)" in out and "pair sampling" in out and "--no-quiet" in out


def test_build_refuses_unknown_fields():
    with pytest.raises(InputError, match="unknown option"):
        cli.build(Demo, {"nope": 1})


def test_main_maps_errors_and_interrupts(capsys):
    def raise_input(cfg):
        raise InputError("bad.png: not an image; re-export it")

    def interrupt(cfg):
        raise KeyboardInterrupt

    assert cli.main(lambda a: Demo(), lambda c: 0, []) == 0
    assert cli.main(lambda a: Demo(), raise_input, []) == 2
    assert capsys.readouterr().err.strip() == "error: bad.png: not an image; re-export it"
    assert cli.main(lambda a: Demo(), interrupt, [], interrupted="stopped") == 130
    assert capsys.readouterr().err.strip() == "stopped"


@pytest.mark.parametrize("error, line", [
    (OSError(errno.ENOSPC, "No space left on device", "/r/out/scores.csv"),
     "error: /r/out/scores.csv: No space left on device; free some space there or write elsewhere, and run again"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "/r/" + "m" * 300),
     f"error: /r/{'m' * 300}: File name too long; shorten the path or the names it is made of"),
    (PermissionError(errno.EACCES, "Permission denied", "/r/out"),
     "error: /r/out: Permission denied; write somewhere you may write to (or change its permissions)"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/out"),
     "error: /mnt/ro/out: Read-only file system; that file system is read-only: write elsewhere"),
    (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"),
     "error: /a -> /b: Invalid cross-device link; check the path and the disk, then run again"),
    (OSError(errno.EIO, "Input/output error"), "error: Input/output error (OSError); check the path and the disk, "
                                               "then run again"),
])  # fmt: skip
def test_main_turns_a_file_system_error_into_one_line_naming_the_path(error, line, capsys):
    def fails(cfg):
        raise error

    assert cli.main(lambda a: Demo(), fails, []) == 2
    assert capsys.readouterr().err == line + "\n"
    assert cli.main(fails, lambda c: 0, []) == 2  # also while the flags are read (a config file, say)
    assert capsys.readouterr().err == line + "\n"


def test_library_errors_become_the_scripts_flags():
    """One rule for every script: a library error names parameters (leading ``name=value:``/``name:`` or
    backticked anywhere); the CLI shows them as the flags the user types."""
    from dataclasses import dataclass

    from models.cli import as_flags, flags_of, opt

    @dataclass
    class Conf:
        inputs: list[str] = opt([], "inputs", positional=True, metavar="INPUT")
        batch_size: int = opt(1, "batch")
        precision: str = opt("exact", "mode")

    flags = flags_of(Conf, render="--query")
    assert flags == {"inputs": "INPUT", "batch_size": "--batch-size", "precision": "--precision", "render": "--query"}
    assert as_flags("precision=fp8: use one of exact, fp16", flags) == "--precision fp8: use one of exact, fp16"
    assert as_flags("render: not an image", flags) == "--query: not an image"
    assert as_flags("`batch_size`=0 must be >= 1; see `inputs`", flags) == "--batch-size 0 must be >= 1; see INPUT"
    assert as_flags("window=3: unknown `other`", flags) == "window=3: unknown `other`"  # not a flag here: unchanged
