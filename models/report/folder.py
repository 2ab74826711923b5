"""A report folder accumulates, like app.py's ``--out``: one page of every scene reported into it.

Each scene's rendered pieces are kept in ``OUT/scenes/<file_name(scene)>.json`` (:class:`Kept`: its report.json
entry with the provenance of the run that reported it, its page section, its report.csv and frames.csv rows, the
figures and maps it wrote). A run merges its scenes into the folder under the folder's lock (:func:`write`): it reads
the kept scenes, replaces those it reported again (their old figures and maps go), keeps the others, and rebuilds
index.html, report.csv, frames.csv and report.json from all of them, everything as one unit
(:func:`models.journal.unit`). Concurrent runs into one folder take turns, each merging into what the other wrote.
``only``: the page holds this run's scenes only. A kept entry that cannot be read is one warning and is dropped.
"""

from __future__ import annotations

import logging
import os
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from models.errors import InputError
from models.journal import Unit, file_name, unit
from models.report import outputs, page
from models.results import csv_bytes, json_bytes, json_parse, read_json

log = logging.getLogger(__name__)

KEPT = "scenes"
FIGURES = "figures"
MAPS = "maps"
FORMAT = 1  # of a kept scene's file; another format is dropped (one warning) and the scene is reported again
DROPPED = "dropped from the page (report its scene again to put it back)"


@dataclass
class Kept:
    """One scene of the page as its run rendered it; ``files``: its figures and maps, relative to the folder."""

    scene: str
    provenance: dict[str, Any]
    errors: list[str]
    summary: dict[str, Any]
    methods: list[dict[str, Any]]
    section: str
    report_rows: list[dict[str, Any]]
    frame_rows: list[dict[str, Any]]
    frame_columns: list[str]
    files: list[str]

    def path(self, out: Path) -> Path:
        """Where the scene is kept in the report folder ``out``."""
        return out / KEPT / f"{file_name(self.scene)}.json"

    @classmethod
    def parse(cls, obj: Any, path: Path) -> Kept:
        """A kept scene from its file's JSON; :class:`InputError` saying what is wrong with it."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise InputError(f"{path}: not a kept scene of format {FORMAT}")
        for f in fields(cls):
            if not _is(obj.get(f.name), typing.get_type_hints(cls)[f.name]):
                raise InputError(f"{path}: its {f.name} is not a {typing.get_type_hints(cls)[f.name]}")
        kept = cls(**{f.name: obj[f.name] for f in fields(cls)})
        if not all(isinstance(p, str) and p.split("/")[0] in (FIGURES, MAPS) and ".." not in p.split("/")
                   for p in kept.files):  # fmt: skip
            raise InputError(f"{path}: a file outside {FIGURES}/ and {MAPS}/")
        return kept

    def entry(self) -> dict[str, Any]:
        """The scene in report.json."""
        return {"scene": self.scene, "provenance": self.provenance, "summary": self.summary, "methods": self.methods}


def _is(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON has the type ``hint`` (``str``, ``dict[str, Any]``, ``list[X]``: each item)."""
    kind = typing.get_origin(hint) or hint
    if kind is list:
        return isinstance(value, list) and all(_is(v, typing.get_args(hint)[0]) for v in value)
    return isinstance(value, kind)


def read_kept(out: Path, skip: set[str]) -> tuple[dict[str, Kept], set[str]]:
    """The scenes kept in ``out`` by earlier runs, by name, except the entries named in ``skip`` (those this run
    replaces); an entry that cannot be read is one warning, and is dropped (the caller removes it). Also the names
    of the dropped entries' scenes, where known."""
    kept, named = {}, set()
    for path in sorted((out / KEPT).iterdir()) if (out / KEPT).is_dir() else ():
        if path.name in skip:
            continue
        try:
            k = Kept.parse(json_parse(path.read_text()), path)
        except (OSError, ValueError) as e:
            log.warning("%s: a kept scene that cannot be read (%s); %s", path,
                        getattr(e, "strerror", None) or type(e).__name__, DROPPED)
            continue
        except InputError as e:
            log.warning("%s; %s", e, DROPPED)
            continue
        if path.name != f"{file_name(k.scene)}.json":
            log.warning("%s: holds scene %r, whose entry has another name; %s", path, k.scene, DROPPED)
            named.add(k.scene)
            continue
        kept[k.scene] = k
    return kept, named


def _lost(out: Path, kept: set[str]) -> list[str]:
    """Scenes of the earlier report.json without a kept entry (a page made before reports accumulated, or an entry
    removed) and not in ``kept`` (kept or reported by this run, or named by a dropped entry)."""
    try:
        old = read_json(out / "report.json")
    except InputError:
        return []
    scenes = old.get("scenes") if isinstance(old, dict) else None
    names = [s.get("scene") for s in scenes if isinstance(s, dict)] if isinstance(scenes, list) else []
    return [n for n in names if isinstance(n, str) and n not in kept
            and not (out / KEPT / f"{file_name(n)}.json").exists()]  # fmt: skip


def _scene_meta(k: Kept) -> str:
    p = k.provenance
    return (f"<p class=meta>{page.esc(k.scene)}: reported {page.esc(p.get('created', ''))} by "
            f"<code>{page.esc(p.get('command', ''))}</code> · {page.esc(p.get('project', ''))} "
            f"{page.esc(p.get('project_version', ''))} · bootstrap {page.esc(p.get('bootstrap', ''))}, seed "
            f"{page.esc(p.get('seed', ''))}</p>")


def page_files(scenes: list[Kept], prov: dict[str, Any]) -> dict[str, bytes]:
    """index.html, report.csv, frames.csv and report.json of ``scenes`` (in name order); ``prov``: this run's
    provenance (report.json's top; each scene keeps the provenance of the run that reported it)."""
    scenes = sorted(scenes, key=lambda k: k.scene)
    errors = list(dict.fromkeys(e for k in scenes for e in k.errors))
    meta = (f"{page.esc(prov['created'])} · {page.esc(prov['project'])} {page.esc(prov['project_version'])} · "
            f"{len(scenes)} scene(s): the command, time and settings of each below its section")
    top = [page.notes(errors, "err")] if errors else []
    body = [k.section + "\n" + _scene_meta(k) for k in scenes]
    columns = list(dict.fromkeys(c for k in scenes for c in k.frame_columns))
    return {"index.html": page.document("Scene report", meta, top + body + [page.how_to_read()]).encode(),
            "report.csv": csv_bytes([r for k in scenes for r in k.report_rows], outputs.REPORT_COLUMNS),
            "frames.csv": csv_bytes([r for k in scenes for r in k.frame_rows], ["scene", "method", "frame", *columns]),
            "report.json": json_bytes({"provenance": prov, "errors": errors, "scenes": [k.entry() for k in scenes]})}


def _stale(out: Path, path: Path, keep: set[str]) -> list[Path]:
    """``path`` when it holds no file of ``keep`` (paths relative to ``out``; a folder as a whole), else what under
    it is not kept."""
    rel = path.relative_to(out).as_posix()
    if not os.path.lexists(path) or rel in keep:
        return []
    if path.is_dir() and not path.is_symlink() and any(k.startswith(rel + "/") for k in keep):
        return [g for p in sorted(path.iterdir()) for g in _stale(out, p, keep)]
    return [path]


def _stage(u: Unit, out: Path, kept: list[Kept], new: list[Kept], files: dict[str, bytes],
           prov: dict[str, Any]) -> None:  # fmt: skip
    scenes = kept + new
    keep = set(files) | {f for k in scenes for f in k.files}
    for p in _stale(out, out / FIGURES, keep) + _stale(out, out / MAPS, keep):
        u.remove(p)
    paths = {k.path(out) for k in scenes}
    for p in sorted((out / KEPT).iterdir()) if (out / KEPT).is_dir() else ():
        if p not in paths:
            u.remove(p)  # a scene not on the page any more, an entry that could not be read
    for k in new:
        u.write_json(k.path(out), {"format": FORMAT, **asdict(k)})
    for rel, data in {**files, **page_files(scenes, prov)}.items():
        u.write_bytes(out / rel, data)


def write(out: Path, new: list[Kept], files: dict[str, bytes], prov: dict[str, Any], only: bool) -> list[str]:
    """Merge this run's scenes (``new``; ``files``: their figures and maps, relative path -> bytes) into ``out`` as
    one unit under its lock (module docstring); returns the names of the earlier scenes kept on the page."""
    with unit(out) as u:
        kept, named = ({}, set()) if only else read_kept(out, {k.path(out).name for k in new})
        lost = [] if only else _lost(out, set(kept) | {k.scene for k in new} | named)
        if lost:
            log.warning("%s: scene(s) %s of the earlier page have no %s/ entry (a page made before reports "
                        "accumulated): not kept; report them again to put them back", out, ", ".join(lost), KEPT)
        _stage(u, out, list(kept.values()), new, files, prov)
    return sorted(kept)
