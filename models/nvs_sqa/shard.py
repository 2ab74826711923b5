"""app.py in shards: ``--shard I/N`` scores a deterministic 1/N of the sequences, ``--merge OUT SHARD…`` puts the
shards together into the files one unsharded run writes, ``--executor local|slurm --shards N`` does both.

A sequence's shard is the sha256 of its identity (its path from the folder holding the input it was found in, e.g.
``examples/Giraffe+NeRF``) modulo N: the same whatever the order of the inputs or of the files, and on any
machine. Each shard folder gets
``shard.json`` (which shard of how many, the inputs, the checkpoint, every scored name with its place in the
unsharded discovery order); the merge refuses a missing or duplicated shard, shards of other inputs or of another
checkpoint, and writes the rows in the unsharded order, with the provenance of every shard in the metadata.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

from models import results as res
from models.errors import InputError
from models.nvs_sqa.app_config import AppConfig
from models.nvs_sqa.outputs import FEATURES, FEATURES_META, SCORES_JSON, WINDOWS_CSV, curve_file, write_results

log = logging.getLogger("app")
MANIFEST = "shard.json"


def parse(spec: str, flag: str = "--shard") -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N; one-line :class:`InputError` otherwise."""
    m = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise InputError(f"{flag} {spec}: use I/N with 0 <= I < N (e.g. 0/2 and 1/2 for two shards)")
    return int(m.group(1)), int(m.group(2))


def identity(path: Path, inputs: list[str]) -> str:
    """What decides a sequence's shard: its path from the folder that holds the input it was found in
    (``examples/Giraffe+NeRF`` for ``app.py /any/where/examples``); not its place among the inputs."""
    p = Path(path).resolve()
    for item in inputs:
        root = Path(item).resolve()
        if p == root or root in p.parents:
            return p.relative_to(root.parent).as_posix()
    return p.as_posix()


def shard_of(ident: str, n: int) -> int:
    return int(hashlib.sha256(ident.encode()).hexdigest()[:16], 16) % n


def select(paths: list[Path], inputs: list[str], spec: str, out: str | None = "."
           ) -> tuple[list[Path], dict[str, tuple[int, str]]]:
    """The paths of shard ``spec`` (in discovery order) and {path: (place in the unsharded discovery order,
    identity)} of every path."""
    i, n = parse(spec)
    if out is None:
        raise InputError(f"--shard {spec}: needs --out DIR (each shard writes its own folder; merge them with "
                         "--merge OUT_DIR SHARD_DIR…)")
    order = {str(p): (k, identity(p, inputs)) for k, p in enumerate(paths)}
    return [p for p in paths if shard_of(order[str(p)][1], n) == i], order


def write_manifest(out: Path, cfg: AppConfig, origin: dict[str, Path], order: dict[str, tuple[int, str]],
                   info: dict) -> None:
    """``shard.json`` of a shard run: its place among the shards and every name it scored with its order."""
    i, n = parse(cfg.shard or "")
    rows = sorted(({"name": name, "order": order[str(p)][0], "identity": order[str(p)][1]}
                   for name, p in origin.items()), key=lambda r: r["order"])  # fmt: skip
    res.atomic_write_json(out / MANIFEST, {
        "shard": i, "of": n, "inputs": sorted(Path(x).resolve().as_posix() for x in cfg.inputs),
        "sequences": len(order), "checkpoint_sha256": info.get("checkpoint_sha256"),
        "regressor_sha256": info.get("regressor_sha256"), "features_only": cfg.features_only,
        "precision": info.get("precision", "exact"), "rows": rows})


def _manifests(dirs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """The shard folders' manifests, checked to be exactly shards 0..N-1 of one run."""
    if not dirs:
        raise InputError("--merge OUT_DIR SHARD_DIR…: give the output folder, then every shard folder")
    found = []
    for d in dirs:
        man = res.read_json(d / MANIFEST) if d.is_dir() else None
        if not isinstance(man, dict):
            raise InputError(f"{d / MANIFEST}: not a shard folder (no {MANIFEST}); give the --out folders of "
                             "app.py --shard I/N runs")
        found.append((d, man))
    d0, m0 = found[0]
    for d, m in found:
        for key in ("of", "inputs", "checkpoint_sha256", "regressor_sha256", "features_only", "sequences",
                    "precision"):  # the precision the features were computed in (after any fallback)
            if m.get(key) != m0.get(key):
                raise InputError(f"{d / MANIFEST}: {key} differs from {d0 / MANIFEST}'s; merge the shards of one "
                                 "run only")
    seen: dict[int, Path] = {}
    for d, m in found:
        if m["shard"] in seen:
            raise InputError(f"{d}: shard {m['shard']}/{m['of']} given twice (also {seen[m['shard']]}); give each "
                             "shard once")
        seen[m["shard"]] = d
    if missing := sorted(set(range(m0["of"])) - set(seen)):
        names = ", ".join(f"{i}/{m0['of']}" for i in missing)
        raise InputError(f"{d0}: shard(s) {names} missing; run "
                         f"app.py --shard {missing[0]}/{m0['of']} (same inputs) and give its --out too")
    return sorted(found, key=lambda dm: dm[1]["shard"])


def merge(out: Path, dirs: list[Path]) -> int:
    """``--merge OUT SHARD…``: the shards' results merged into ``out`` as one unsharded run writes them."""
    shards = _manifests(dirs)
    features_only = shards[0][1]["features_only"]
    rows, feats, windows, curves, order, merged_from = [], {}, [], {}, {}, []
    failed: list[str] = []
    skipped: list[dict[str, Any]] = []
    meta0: dict[str, Any] = {}
    sequences: dict[str, Any] = {}  # per name: source, fingerprint, settings (what a rerun compares with)
    for d, man in shards:
        meta = res.read_json(d / FEATURES_META) or {}
        meta0 = meta0 or meta
        shard_feats = res.read_npz(d / FEATURES)
        shard_rows = {r["name"]: r for r in (res.read_json(d / SCORES_JSON) or {}).get("rows", [])}
        for r in man["rows"]:
            name = r["name"]
            if name in order:
                raise InputError(f"{d}: sequence name {name!r} is also in another shard (two inputs of one name); "
                                 "score those in one run")
            if name not in shard_feats or (not features_only and name not in shard_rows):
                raise InputError(f"{d}: {name} is listed in {MANIFEST} but its results are missing; rerun this shard")
            order[name] = r["order"]
            feats[name] = shard_feats[name]
            rows.append(shard_rows.get(name, {"name": name}))
            if name in meta.get("sequences", {}):
                sequences[name] = meta["sequences"][name]
            if curve_file(d, name).is_file():
                curves[name] = curve_file(d, name).read_bytes()
        windows += [w for w in res.read_csv(d / WINDOWS_CSV) if w["name"] in order]
        failed += [f for f in meta.get("failed", []) if f not in failed]
        skipped += [s for s in meta.get("skipped", []) if s not in skipped]
        merged_from.append({"dir": str(d), "shard": f"{man['shard']}/{man['of']}", "sequences": len(man["rows"]),
                            "features_sha256": res.sha256_file(d / FEATURES) if man["rows"] else None})
    rows.sort(key=lambda r: order[r["name"]])
    windows.sort(key=lambda w: order[w["name"]])
    config = {**meta0.get("config", {}), "shard": None, "out": str(out)}
    meta = {**meta0, "config": config, "failed": failed, "skipped": skipped, "merged_from": merged_from}
    info = {k: shards[0][1][k] for k in ("checkpoint_sha256", "regressor_sha256")}
    res.check_creatable(out)
    kept = write_results(out, rows, {n: feats[n] for n in sorted(feats, key=order.get)}, windows, curves, meta,
                         info, features_only, sequences)  # fmt: skip
    print(f"merged {len(shards)} shards ({len(rows)} sequences) into {out}"
          + (f" (kept {kept} earlier sequence(s))" if kept else ""))
    return 1 if failed or skipped else 0
