"""app.py in shards: two shard jobs through submitit (the one-node SLURM of tests/cluster/conftest.py) merged into
the files of the unsharded run; the shard rule (deterministic, stable under reordering); merge errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import app
from consts import EXAMPLES_DIR
from models import results as res
from models.cluster import SlurmOptions
from models.errors import InputError
from models.nvs_sqa import shard
from models.nvs_sqa.app_config import AppConfig
from models.nvs_sqa.launch import launch as run


@pytest.mark.slow
def test_two_shards_merged_equal_the_unsharded_run(released_dir, executor_kind, tmp_path):
    examples = tmp_path / "examples"  # the two examples, 10 frames each: seconds instead of a minute
    for seq in ("Giraffe+NeRF", "Giraffe+IBRNet-C"):
        (examples / seq).mkdir(parents=True)
        for f in sorted((EXAMPLES_DIR / seq).iterdir())[:10]:
            shutil.copy(f, examples / seq / f.name)
    full, merged = tmp_path / "full", tmp_path / "merged"
    assert run(AppConfig(inputs=[str(examples)], out=str(full), quiet=True)) == 0
    cfg = AppConfig(inputs=[str(examples)], out=str(merged), executor=executor_kind, shards=2, quiet=True,
                    slurm=SlurmOptions(cluster_dir=str(tmp_path / "shards")))
    assert run(cfg) == 0
    for i in range(2):  # the two example sequences land in different shards (examples/Giraffe+… hashes)
        man = json.loads((tmp_path / "shards" / str(i) / "shard.json").read_text())
        assert (man["shard"], man["of"], len(man["rows"])) == (i, 2, 1)

    a, b = res.read_npz(full / "output_features.npz"), res.read_npz(merged / "output_features.npz")
    assert list(a) == list(b) == ["Giraffe+IBRNet-C", "Giraffe+NeRF"]
    for name in a:
        assert b[name].dtype == np.float32 and np.abs(a[name] - b[name]).max() <= 1e-6
    rows_a, rows_b = res.read_csv(full / "scores.csv"), res.read_csv(merged / "scores.csv")
    assert [r["name"] for r in rows_a] == [r["name"] for r in rows_b]
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert abs(float(ra.pop("score")) - float(rb.pop("score"))) <= 1e-6
        ra.pop("seconds"), rb.pop("seconds")
        assert ra == rb
    ja, jb = (json.loads((d / "scores.json").read_text()) for d in (full, merged))
    assert ja.keys() <= jb.keys() and jb["checkpoint_sha256"] == ja["checkpoint_sha256"]
    assert [s["shard"] for s in jb["merged_from"]] == ["0/2", "1/2"]  # provenance of every shard kept
    assert sorted(p.name for p in merged.iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in full.iterdir() if not p.name.startswith("."))  # fmt: skip


def test_shard_rule_is_deterministic_and_stable_under_reordering(tmp_path):
    for name in ("b", "a", "c10", "c2", "d", "e", "f", "g"):
        (tmp_path / "renders" / name).mkdir(parents=True)
    paths = sorted((tmp_path / "renders").iterdir())
    inputs = [str(tmp_path / "renders")]
    shards = [shard.select(paths, inputs, f"{i}/3")[0] for i in range(3)]
    assert sorted(p for s in shards for p in s) == paths  # every sequence in exactly one shard
    assert sum(map(len, shards)) == len(paths) and all(shards)
    again = [shard.select(paths[::-1], inputs, f"{i}/3")[0] for i in range(3)]
    assert [set(s) for s in again] == [set(s) for s in shards]
    # the identity is the path from the input's folder: the same split wherever the folder lies
    moved = tmp_path / "elsewhere" / "renders"
    shutil.copytree(tmp_path / "renders", moved)
    assert [[p.name for p in shard.select(sorted(moved.iterdir()), [str(moved)], f"{i}/3")[0]] for i in range(3)] \
        == [[p.name for p in s] for s in shards]  # fmt: skip
    assert shard.identity(paths[0], inputs) == "renders/a"


@pytest.mark.parametrize(("spec", "ok"), [("0/2", True), ("1/2", True), ("2/2", False), ("1", False), ("-1/2", False)])
def test_shard_spec(spec, ok):
    if ok:
        assert shard.parse(spec) == tuple(map(int, spec.split("/")))
    else:
        with pytest.raises(InputError, match=r"--shard .*: use I/N with 0 <= I < N"):
            shard.parse(spec)


def _fake_shard(folder: Path, i: int, n: int, **kw) -> Path:
    folder.mkdir(parents=True)
    man = {"shard": i, "of": n, "inputs": ["/x"], "sequences": 2, "checkpoint_sha256": "c", "regressor_sha256": "r",
           "features_only": False, "precision": "exact", "rows": [], **kw}
    (folder / "shard.json").write_text(json.dumps(man))
    return folder


def test_merge_refuses_missing_duplicated_and_foreign_shards(tmp_path, capsys):
    s0, s1 = _fake_shard(tmp_path / "s0", 0, 2), _fake_shard(tmp_path / "s1", 1, 2)
    dup = _fake_shard(tmp_path / "dup", 0, 2)
    other = _fake_shard(tmp_path / "other", 1, 2, checkpoint_sha256="d")
    mixed = _fake_shard(tmp_path / "mixed", 1, 2, precision="mixed")  # features computed in another precision
    out = str(tmp_path / "out")
    cases = [([s0], "shard(s) 1/2 missing"), ([s0, dup, s1], "shard 0/2 given twice"),
             ([s0, other], "checkpoint_sha256 differs"), ([s0, mixed], "precision differs"),
             ([s0, tmp_path], "not a shard folder (no shard.json)")]
    for dirs, msg in cases:
        assert app.main(["--merge", out, *map(str, dirs)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_shard_needs_out(capsys):
    assert app.main(["--shard", "0/2", str(EXAMPLES_DIR)]) == 2
    assert "--shard 0/2: needs --out DIR" in capsys.readouterr().err
