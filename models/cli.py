"""One way from a config dataclass to flags and back, and the one entry point of every script.

A script's options are one dataclass whose fields document themselves with :func:`opt`::

    @dataclass
    class AppConfig:
        inputs: list[str] = opt(["examples"], "folders of frames, folders of them, or videos", positional=True)
        batch_size: int = opt(0, "frames per network call (0 = auto)", min=0)
        quiet: bool = opt(False, "no progress bars or info messages")

:func:`parse` turns it into argparse flags (``--batch-size``; booleans as ``--quiet/--no-quiet``; a nested
dataclass field becomes a group of flags; presets supply other defaults), checks ``min``/``choices``, and
builds the config; :func:`to_argv` goes back. :func:`main` runs a script: logging, one-line errors (exit 2) for
bad input and for file system errors (naming the path), Ctrl-C -> 130. Nothing repeats a default, and no source
code is read at run time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import errno
import logging
import re
import signal
import sys
import types
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from models.errors import InputError
from models.runtime import setup_logging

log = logging.getLogger("cli")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (``prog: error: <what> (see --help)``, exit 2), without the usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def opt(
    default: Any = MISSING, help: str = "", *, positional: bool = False, choices: Sequence[Any] | None = None,  # noqa: A002
    min: float | None = None, metavar: str | None = None, group: str | None = None, flag: bool = True,  # noqa: A002
    required: bool = False, repeat: bool = False,
) -> Any:
    """A config field that documents itself: its default, its help text, and how it appears as a flag.

    ``min``: values below it are refused (one line). ``group``: the --help section. ``flag=False``: not a flag
    (set by the script). ``repeat``: a list given one value per flag (``--method A=x --method B=y``). A
    list/dict/dataclass default is copied per instance.
    """
    md = {"help": help, "positional": positional, "choices": tuple(choices) if choices else None, "min": min,
          "metavar": metavar, "group": group, "flag": flag, "required": required, "repeat": repeat}
    if isinstance(default, (list, dict, set)) or is_dataclass(default):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=md)
    return field(default=default, metadata=md)


# --------------------------------------------------------------------------------------------- types
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``T | None`` -> (T, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _item_type(tp: Any) -> tuple[Any, str | int | None]:
    """(element type, nargs) of a list/tuple annotation; (tp, None) for a scalar."""
    origin = typing.get_origin(tp)
    if origin in (list, Sequence):
        return typing.get_args(tp)[0], "+"
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0], "+"
        return args[0], len(args)
    return tp, None


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def flags_of(*classes: type, **extra: str) -> dict[str, str]:
    """parameter name -> the flag a user types for it (a positional as --help shows it), over config classes."""
    out = {}
    for cls in classes:
        for f in fields(cls):
            out[f.name] = (f.metadata.get("metavar") or f.name) if f.metadata.get("positional") else flag_name(f.name)
    return out | extra


def as_flags(message: str, flags: Mapping[str, str]) -> str:
    r"""A library error in a script's terms. Library errors name parameters, as a leading ``name=value: …`` /
    ``name: …`` or as ``\`name\``` anywhere; each one in ``flags`` becomes the flag (``--name value: …``)."""
    def backticked(m: re.Match) -> str:
        return flags[m[1]] + (" " if m[2] else "") if m[1] in flags else m[0]

    message = re.sub(r"`(\w+)`(=?)", backticked, message)
    m = re.match(r"(\w+)(=|:)", message)
    if m and m[1] in flags:
        return flags[m[1]] + (" " if m[2] == "=" else ":") + message[m.end():]
    return message


@contextlib.contextmanager
def warnings_as_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """The warnings of a library call in a script's terms: each warning raised inside the block is raised again
    (same category) when it ends, its message through :func:`as_flags`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        warnings.warn(as_flags(str(w.message), flags), w.category, stacklevel=3)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return MISSING


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return " ".join(map(str, v)) if v else "none"
    return "none" if v is None else str(v)


# --------------------------------------------------------------------------------------------- config -> flags
def add_flags(p: argparse.ArgumentParser, cls: type, defaults: Mapping[str, Any] | None = None,
              exclude: Sequence[str] = ()) -> None:
    """One argparse argument per field of ``cls`` (groups for nested dataclasses); defaults are SUPPRESSed so that
    the namespace holds exactly the flags given. ``defaults`` overrides what --help shows (e.g. a preset's)."""
    hints, groups = _hints(cls), {}
    shown = dict(defaults or {})
    for f in fields(cls):
        md = f.metadata
        if f.name in exclude or not md.get("flag", True):
            continue
        tp, _optional = _unwrap(hints[f.name])
        default = shown.get(f.name, _default_of(f))
        if is_dataclass(tp):
            g = p.add_argument_group(md.get("help") or f.name)
            add_flags(g, tp, default if isinstance(default, Mapping) else None)  # type: ignore[arg-type]
            continue
        target: Any = p
        if md.get("group"):
            if md["group"] not in groups:
                groups[md["group"]] = p.add_argument_group(md["group"])
            target = groups[md["group"]]
        help_ = md.get("help", "")
        shown_default = default is not MISSING and default is not None and default is not False and default != ""
        if shown_default and "default" not in help_ and not md.get("required"):
            help_ = f"{help_} (default: {_show(default)})"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_.replace("%", "%%")}
        if md.get("choices"):
            kw["choices"] = md["choices"]
        if md.get("metavar"):
            kw["metavar"] = md["metavar"]
        item, nargs = _item_type(tp)
        if md.get("positional"):
            if md.get("required"):
                kw.pop("default")
            target.add_argument(f.name, nargs=("+" if md.get("required") else "*") if nargs else
                                (None if md.get("required") else "?"), type=item, **kw)
            continue
        if tp is bool:
            # --x/--no-x; a field already named no_x is a plain switch (argparse would read --no-x as "x off")
            action = "store_true" if f.name.startswith("no_") else argparse.BooleanOptionalAction
            target.add_argument(flag_name(f.name), dest=f.name, action=action, **kw)
            continue
        if md.get("repeat"):
            kw["action"] = "append"
        elif nargs is not None:
            kw["nargs"] = nargs
        target.add_argument(flag_name(f.name), dest=f.name, type=item, required=bool(md.get("required")), **kw)


def _nested(cls: type) -> dict[str, type]:
    hints = _hints(cls)
    return {f.name: _unwrap(hints[f.name])[0] for f in fields(cls) if is_dataclass(_unwrap(hints[f.name])[0])}


def split_given(cls: type, given: dict[str, Any]) -> dict[str, Any]:
    """Flat parsed flags -> a dict shaped like ``cls`` (nested dataclass fields collect their own flags)."""
    out = dict(given)
    for name, sub in _nested(cls).items():
        own = {f.name for f in fields(sub)}
        part = {k: out.pop(k) for k in list(out) if k in own}
        if part:
            out[name] = part
    return out


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """``cls(**values)`` with nested dataclasses built from dicts and lists/tuples coerced to the field's kind."""
    hints, kw = _hints(cls), {}
    for f in fields(cls):
        if f.name not in values:
            continue
        v, tp = values[f.name], _unwrap(hints[f.name])[0]
        if is_dataclass(tp) and isinstance(v, Mapping):
            base = dataclasses.asdict(_default_of(f)) if _default_of(f) not in (MISSING, None) else {}
            v = build(tp, {**base, **v})
        elif typing.get_origin(tp) is tuple and isinstance(v, list):
            v = tuple(v)
        elif typing.get_origin(tp) is list and isinstance(v, tuple):
            v = list(v)
        kw[f.name] = v
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise InputError(f"unknown option(s) {', '.join(sorted(unknown))} for {cls.__name__}")
    return cls(**kw)


def check(cfg: Any, prefix: str = "") -> None:
    """Refuse values below a field's ``min`` or outside its ``choices`` (one line naming the flag)."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if is_dataclass(v):
            check(v)
            continue
        lo, choices = f.metadata.get("min"), f.metadata.get("choices")
        vals = v if isinstance(v, (list, tuple)) else [v]
        for x in vals:
            if lo is not None and isinstance(x, (int, float)) and x < lo:
                raise InputError(f"{flag_name(f.name)} {x}: must be >= {lo}")
            if choices and x is not None and x not in choices:
                raise InputError(f"{flag_name(f.name)} {x}: choose one of {', '.join(map(str, choices))}")


@dataclass
class Parsed:
    """What :func:`parse` returns: the config, the flags actually given, and the chosen preset (if any)."""

    config: Any
    given: dict[str, Any]
    preset: str | None = None


def parser_for(cls: type, description: str = "", epilog: str | None = None,
               presets: Mapping[str, Mapping[str, Any]] | None = None, default_preset: str | None = None,
               parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The argparse parser of ``cls`` (``--preset`` first when the script has presets)."""
    # Descriptions/epilogs are short prose: let argparse wrap them (scripts with a pre-formatted text pass parser=).
    p = parser or ArgumentParser(description=description, epilog=epilog)
    if presets:
        p.add_argument("--preset", default=default_preset, choices=list(presets),
                       help=f"base settings that flags override (default: {default_preset})")
    add_flags(p, cls, presets.get(default_preset) if presets and default_preset else None)
    return p


def parse(cls: type, argv: Sequence[str] | None = None, *, description: str = "", epilog: str | None = None,
          presets: Mapping[str, Mapping[str, Any]] | None = None, default_preset: str | None = None,
          parser: argparse.ArgumentParser | None = None) -> Parsed:
    """Flags -> config: preset values, then the flags given; bad values exit 2 with argparse's one-line error."""
    p = parser_for(cls, description, epilog, presets, default_preset, parser)
    ns = vars(p.parse_args(argv))
    preset = ns.pop("preset", None) if presets else None  # else "preset" may be a field of cls
    extra = {k: ns.pop(k) for k in list(ns) if k not in {f.name for f in fields(cls)} and k not in _all_nested(cls)}
    given = split_given(cls, ns)
    base = copy.deepcopy(dict(presets[preset])) if presets and preset else {}
    for k, v in given.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    try:
        cfg = build(cls, base)
        check(cfg)
    except (InputError, TypeError, ValueError) as e:
        p.error(str(e))
    return Parsed(cfg, {**given, **extra}, preset)


def parse_subcommand(commands: Mapping[str, tuple[type, str]], argv: Sequence[str] | None = None, *,
                     description: str = "", epilog: str | None = None) -> Any:
    """:func:`parse` for a script with subcommands (``{name: (config class, one-line help)}``): one subparser per
    config class; returns the chosen command's config."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = ArgumentParser(description=description, epilog=epilog, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {name: parser_for(cls, parser=sub.add_parser(name, help=h, description=h))
               for name, (cls, h) in commands.items()}
    ns = vars(p.parse_args(argv))
    name = ns.pop("command")
    cls, sp = commands[name][0], parsers[name]
    try:
        cfg = build(cls, split_given(cls, ns))
        check(cfg)
    except (InputError, TypeError, ValueError) as e:
        sp.error(str(e))
    return cfg


def _all_nested(cls: type) -> set[str]:
    return {f.name for sub in _nested(cls).values() for f in fields(sub)}


def to_argv(cfg: Any, base: Any | None = None) -> list[str]:
    """Config -> the arguments that reproduce it (fields that differ from ``base``, default: the class defaults):
    positionals first (after a list flag they would be read as its values: ``SCENE --metrics psnr ssim``), or
    last after ``--`` where one starts with ``-``."""
    base = base if base is not None else type(cfg)()
    out: list[str] = []
    positional: list[str] = []
    for f in fields(cfg):
        v, b = getattr(cfg, f.name), getattr(base, f.name)
        if not f.metadata.get("flag", True) or v == b:
            continue
        if is_dataclass(v):
            out += to_argv(v, b)
        elif f.metadata.get("positional"):
            positional += [str(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        elif isinstance(v, bool):
            out.append(flag_name(f.name) if v or f.name.startswith("no_") else "--no-" + f.name.replace("_", "-"))
        elif isinstance(v, (list, tuple)) and f.metadata.get("repeat"):
            out += [x for item in v for x in (flag_name(f.name), str(item))]
        elif isinstance(v, (list, tuple)):
            out += [flag_name(f.name), *map(str, v)]
        elif v is not None:
            out += [flag_name(f.name), str(v)]
    if any(p.startswith("-") for p in positional):
        return [*out, "--", *positional]
    return positional + out


# --------------------------------------------------------------------------------------------- entry point
def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the same clean stop as Ctrl-C


def stop_on_sigterm() -> None:
    """Make SIGTERM (a scheduler's or ``kill``'s stop) behave like Ctrl-C in this process: the script stops the way
    it does on Ctrl-C (what is finished stays written) and exits 130. For a script's own process only."""
    signal.signal(signal.SIGTERM, _sigterm)


# What to do about a file system error, by its kind; the line names the path (:func:`os_error_line`).
_OS_ADVICE = {
    errno.ENOSPC: "free some space there or write elsewhere, and run again",
    errno.EDQUOT: "free some space there or write elsewhere, and run again",
    errno.EACCES: "write somewhere you may write to (or change its permissions)",
    errno.EPERM: "write somewhere you may write to (or change its permissions)",
    errno.EROFS: "that file system is read-only: write elsewhere",
    errno.ENAMETOOLONG: "shorten the path or the names it is made of",
    errno.ENOTDIR: "a file stands where a folder is needed: move it or choose another path",
    errno.EISDIR: "a folder stands where a file is needed: move it or choose another path",
    errno.ENOENT: "check the path",
}


def os_error_line(e: OSError) -> str:
    """One line for a file system error: the path(s), what the system said, and what to do."""
    where = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    why = e.strerror or str(e) or type(e).__name__
    advice = _OS_ADVICE.get(e.errno, "check the path and the disk, then run again")  # type: ignore[arg-type]
    return f"{where}: {why}; {advice}" if where else f"{why} ({type(e).__name__}); {advice}"


def main(parse_args: Callable[[list[str] | None], Any], run: Callable[[Any], int], argv: list[str] | None = None,
         interrupted: str = "interrupted") -> int:
    """``run(parse_args(argv))`` for every script: INFO logging (WARNING with ``quiet``), an :class:`InputError`
    -> ``error: <one line>`` and exit 2, an :class:`OSError` (a full disk, no permission, a name too long ...)
    -> ``error: <path>: <why>; <what to do>`` and exit 2, Ctrl-C -> ``interrupted`` and exit 130."""
    try:
        cfg = parse_args(argv)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 2
    setup_logging(bool(getattr(cfg, "quiet", False)))
    try:
        return run(cfg)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        log.debug("file system error", exc_info=True)
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def script(cls: type, run: Callable[[Any], int], description: str = "") -> Callable[[list[str] | None], int]:
    """The ``main(argv)`` of a script whose flags are one config class: parse, then :func:`main`."""

    def entry(argv: list[str] | None = None) -> int:
        return main(lambda a: parse(cls, a, description=description).config, run, argv)

    return entry
