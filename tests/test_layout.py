"""The shape of the repository: package layout, import graph, sizes, docs links, Makefile help.

Nothing here imports the toolkit: modules are read as text and parsed with :mod:`ast`.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
SUBPACKAGES = {"nvs_sqa", "evaluation", "training", "preprocess", "crossscore", "fullref", "report"}
MAX_FLAT_MODULES = 13  # errors frames pixels video results runtime stats ssim cli + cluster (the submitit executors
# that preprocess.py, app.py/evaluate.py and train.py all submit through) + discovery (the render trees on disk and
# their names, which scoring, the full-reference metrics and the scene report all read) + journal (result files
# replaced as one unit, and file names from user names, for app.py, crossscore.py and report.py: delicate enough for
# its own module and failure-injection tests) + unpickle (the one allow-list unpickler of the weight loaders of
# nvs_sqa, crossscore and fullref, which may not import each other)
MAX_MODULE_LINES = 420
SCRIPTS = ("app.py", "evaluate.py", "train.py", "preprocess.py", "crossscore.py", "report.py")
MAX_SCRIPT_LINES = 170
MAX_README_BYTES = 15 * 1024
# what the reference-free packages may not depend on, even through another module of models/
INDEPENDENT = ("models.crossscore", "models.preprocess", "models.fullref")
FORBIDDEN = ("models.nvs_sqa", "models.training", "models.evaluation")


# --------------------------------------------------------------------------------------------- import graph
def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(MODELS.rglob("*.py")) if "__pycache__" not in p.parts}


def _imports(tree: ast.AST):
    """Every import statement, at any depth: functions and ``if TYPE_CHECKING:`` blocks included (an import hidden
    there is still a dependency; hiding it only hides a cycle)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool, modules) -> set[str]:
    """The modules of models/ that one import statement loads explicitly (not the parent packages)."""
    def longest_known(name: str) -> str | None:
        parts = name.split(".")
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in modules:
                return ".".join(parts[:n])
        return None

    if isinstance(node, ast.Import):
        found = {longest_known(a.name) for a in node.names}
    else:
        if node.level:
            package = here.split(".") if is_package else here.split(".")[:-1]
            base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        found = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else longest_known(base) for a in node.names}
    return {m for m in found if m is not None and m != here}


def import_graph() -> dict[str, dict[str, str]]:
    """module -> {imported module: "file:line" of the first import of it}."""
    sources = _sources()
    graph: dict[str, dict[str, str]] = {}
    for name, path in sources.items():
        edges = graph.setdefault(name, {})
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _imports(tree):
            for target in _targets(node, name, path.name == "__init__.py", sources):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                edges[target] = min(edges.get(target, where), where, key=lambda w: int(w.rsplit(":", 1)[1]))
    return graph


def _strongly_connected(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Tarjan's components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _path(graph, start: str, goal: str, within=None) -> list[str] | None:
    """A shortest import chain start -> ... -> goal (breadth first), or None."""
    prev: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        nxt = []
        for v in todo:
            for w in sorted(graph.get(v, {})):
                if within is not None and w not in within:
                    continue
                if w == goal:
                    chain = [w, v]
                    while prev[chain[-1]] is not None:
                        chain.append(prev[chain[-1]])
                    return chain[::-1]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        todo = nxt
    return None


def _show(graph, chain: list[str]) -> str:
    return "\n".join(f"    {a} -> {b}   ({graph[a][b]})" for a, b in zip(chain, chain[1:], strict=False))


def test_import_graph_is_read():
    graph = import_graph()
    assert {"models", "models.errors", "models.nvs_sqa", "models.crossscore"} <= set(graph)
    assert "models.errors" in graph["models.frames"]  # a plain top-level import is an edge
    assert all(not k.startswith("models.") or k in graph for edges in graph.values() for k in edges)


def test_import_rules_on_a_snippet():
    tree = ast.parse(textwrap.dedent('''
        from typing import TYPE_CHECKING
        from . import jobs
        from .commands import plan
        from models import errors
        import models.nvs_sqa.network as net
        if TYPE_CHECKING:
            from models.training.loop import train
        def late():
            from models.nvs_sqa import NVSSQA
    '''))
    modules = {"models", "models.errors", "models.nvs_sqa", "models.nvs_sqa.network", "models.training.loop",
               "models.preprocess", "models.preprocess.jobs", "models.preprocess.commands", "models.preprocess.run"}
    found = set().union(*(_targets(n, "models.preprocess.run", False, modules) for n in _imports(tree)))
    assert found == {"models.preprocess.jobs", "models.preprocess.commands", "models.errors",
                     "models.nvs_sqa.network", "models.nvs_sqa", "models.training.loop"}  # TYPE_CHECKING counts
    graph = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:1"}, "c": {"a": "c.py:9", "d": "c.py:2"}, "d": {}}
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _path(graph, "a", "a") == ["a", "b", "c", "a"] and _path(graph, "d", "a") is None


def test_no_import_cycle():
    graph = import_graph()
    cycles = []
    for comp in _strongly_connected(graph):
        chain = _path(graph, comp[0], comp[0], within=set(comp))
        cycles.append(f"  cycle among {', '.join(comp)}:\n" + _show(graph, chain))
    assert not cycles, "import cycles in models/ (function-level and TYPE_CHECKING imports included):\n" + \
        "\n".join(cycles)  # fmt: skip


def test_crossscore_and_preprocess_do_not_need_nvs_sqa():
    graph = import_graph()
    bad = []
    for mod in sorted(graph):
        if not mod.startswith(INDEPENDENT):
            continue
        for target in sorted(t for t in graph if t.startswith(FORBIDDEN)):
            chain = _path(graph, mod, target)
            if chain:
                bad.append(f"  {mod} needs {target}:\n" + _show(graph, chain))
    assert not bad, "\n".join(bad)


def test_flat_modules_need_no_subpackage():
    graph = import_graph()
    flat = sorted(m for m in graph if m.count(".") == 1 and not m.endswith(tuple(f".{p}" for p in SUBPACKAGES)))
    bad = []
    for mod in flat:
        for target in sorted(t for t in graph if t.startswith(tuple(f"models.{p}" for p in SUBPACKAGES))):
            chain = _path(graph, mod, target)
            if chain:
                bad.append(f"  {mod} needs {target}:\n" + _show(graph, chain))
    assert flat and not bad, "a shared flat module of models/ depends on a subpackage:\n" + "\n".join(bad)


# --------------------------------------------------------------------------------------------- layout and sizes
def test_flat_modules_and_the_five_subpackages():
    flat = sorted(p.name for p in MODELS.glob("*.py") if p.name != "__init__.py")
    dirs = {p.name for p in MODELS.iterdir() if p.is_dir() and p.name != "__pycache__"}
    packages = {d for d in dirs if (MODELS / d / "__init__.py").is_file()}
    assert len(flat) <= MAX_FLAT_MODULES, f"{len(flat)} flat modules in models/ (at most {MAX_FLAT_MODULES}): {flat}"
    assert packages == SUBPACKAGES, f"subpackages: {sorted(packages)}, expected {sorted(SUBPACKAGES)}"
    assert dirs == packages, f"folders in models/ that are no package: {sorted(dirs - packages)}"


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_is_too_long():
    sizes = {str(p.relative_to(ROOT)): _line_count(p) for p in _sources().values()}
    over = {k: v for k, v in sorted(sizes.items(), key=lambda kv: -kv[1]) if v > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines: " + ", ".join(f"{k} ({v})" for k, v in over.items())


def test_scripts_are_thin():
    sizes = {s: _line_count(ROOT / s) for s in SCRIPTS}
    over = {k: v for k, v in sizes.items() if v > MAX_SCRIPT_LINES}
    assert not over, f"scripts over {MAX_SCRIPT_LINES} lines: " + ", ".join(f"{k} ({v})" for k, v in over.items())


# --------------------------------------------------------------------------------------------- docs
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _relative_links(md: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)  # no links inside code blocks
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:|#", t)]


def test_readme_is_short_and_links_every_docs_page():
    readme = ROOT / "README.md"
    size = readme.stat().st_size
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes (at most {MAX_README_BYTES}): move sections to docs/"
    linked = {str((ROOT / t.split("#")[0]).resolve().relative_to(ROOT)) for t in _relative_links(readme)
              if (ROOT / t.split("#")[0]).resolve().is_relative_to(ROOT)}  # fmt: skip
    pages = {str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").glob("*.md"))}
    assert not pages - linked, f"docs pages the README does not link: {sorted(pages - linked)}"


def test_relative_links_in_docs_resolve():
    broken = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in _relative_links(md):
            if not (md.parent / target.split("#")[0]).exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert not broken, "links to missing files:\n  " + "\n  ".join(dict.fromkeys(broken))


# --------------------------------------------------------------------------------------------- code rules
def _project_python_files() -> list[Path]:
    """The repository's own .py files outside tests/ (what .gitignore keeps out of git is skipped too)."""
    skip_top = {"tests", "runs", "checkpoints", "datasets", "outputs", "renders"}
    files = []
    for folder, dirs, names in os.walk(ROOT):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"
                   and not (here == ROOT and d in skip_top)]  # fmt: skip
        files += [here / n for n in names if n.endswith(".py")]
    return sorted(files)


def test_no_inspect_getsource_outside_tests():
    needle = "inspect." + "getsource"
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in _project_python_files()
            for i, line in enumerate(p.read_text().splitlines(), 1) if needle in line]  # fmt: skip
    assert not hits, f"{needle} in non-test code (reads source at run time): {hits}"


# --------------------------------------------------------------------------------------------- Makefile
def _make_help() -> str:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    r = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _help_targets(out: str) -> set[str]:
    return {line.split()[0] for line in out.splitlines() if line.startswith("  ") and line.strip()}


def test_make_help_lists_the_main_targets():
    listed = _help_targets(_make_help())
    missing = {"help", "setup", "demo", "test", "test-fast"} - listed
    assert not missing, f"`make help` does not list {sorted(missing)}"


def test_every_phony_target_is_documented():
    text = (ROOT / "Makefile").read_text()
    phony = {t for line in re.findall(r"^\.PHONY:(.*)$", text, flags=re.M) for t in line.split()}
    rules = set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", text, flags=re.M)) - {".PHONY", ".DEFAULT_GOAL"}
    documented = set(re.findall(r"^## ([A-Za-z0-9_.-]+): ", text, flags=re.M))
    assert not phony - rules, f".PHONY names without a rule: {sorted(phony - rules)}"
    assert not documented - rules, f"`## target:` lines without a rule: {sorted(documented - rules)}"
    assert not phony - documented, f"targets without a `## target: description` line: {sorted(phony - documented)}"
    assert re.search(r"^\.DEFAULT_GOAL\s*:=\s*help\s*$", text, flags=re.M), "`make` alone must only print the help"


# --------------------------------------------------------------------------------------------- the marker rule
def _conftest():
    path = Path(__file__).with_name("conftest.py")
    for mod in list(sys.modules.values()):
        if getattr(mod, "__file__", None) and Path(mod.__file__) == path:
            return mod
    pytest.skip("tests/conftest.py is not loaded")


def test_slow_rule_follows_helpers_of_the_module(tmp_path):
    # the snippet is spelled so that this test itself does not match the rule
    src = tmp_path / "fake_tests.py"
    src.write_text(textwrap.dedent('''
        import subprocess, sys

        def _cli(*args):
            return SP.run([sys.executable, "-c", "pass", *args])

        def _indirect():
            return _cli("x")

        def test_direct():
            SP.run([sys.executable, "--version"])

        def test_via_helpers():
            assert [_indirect() for _ in range(1)]

        def test_plain():
            assert sys.executable

        def test_spawn():
            import torch.multiprocessing as mp
            mp.SPAWN(print, nprocs=2)
    ''').replace("SP.", "subprocess.").replace("SPAWN", "spawn"))
    spec = importlib.util.spec_from_file_location("fake_tests_for_the_slow_rule", src)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rule = _conftest().runs_a_process
    assert rule([mod.test_direct], mod) and rule([mod.test_via_helpers], mod) and rule([mod.test_spawn], mod)
    assert not rule([mod.test_plain], mod)


# --------------------------------------------------------------------------------------------- module maps
def _modules_of(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def _docstring_names(init: Path, block: str | None = "Modules:") -> set[str]:
    """The names listed one per line (``    name   what it is``) in a package docstring, after ``block``."""
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    if block is not None:
        doc = doc.split(block, 1)[1] if block in doc else ""
    return set(re.findall(r"^    (\w+) {2,}\S", doc, flags=re.M))


def _readme_layout() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    return block.splitlines()


def test_package_docstrings_map_exactly_their_modules():
    subpackages = {p.name for p in MODELS.iterdir() if (p / "__init__.py").is_file()}
    assert _docstring_names(MODELS / "__init__.py", None) == _modules_of(MODELS) | subpackages
    for pkg in sorted(subpackages):
        named, real = _docstring_names(MODELS / pkg / "__init__.py"), _modules_of(MODELS / pkg)
        assert named == real, f"models/{pkg}/__init__.py lists {sorted(named - real)} (not modules) and misses " \
                              f"{sorted(real - named)}"  # fmt: skip


def test_readme_layout_maps_exactly_the_modules():
    lines = _readme_layout()
    flat = {m.group(1) for line in lines if (m := re.match(r"^  (\w+)\.py\s", line))}
    assert flat == _modules_of(MODELS)
    for pkg in sorted(p.name for p in MODELS.iterdir() if (p / "__init__.py").is_file()):
        line = next((x for x in lines if x.startswith(f"  {pkg}/ ")), None)
        assert line is not None, f"README Layout has no line for models/{pkg}/"
        listed = {w.strip() for w in line.split("/", 1)[1].split("—", 1)[0].split(",")}
        assert listed == _modules_of(MODELS / pkg), f"README Layout, models/{pkg}/: {sorted(listed)}"


def test_measurement_lives_in_benchmarks_and_the_library_never_imports_it():
    named = [p.relative_to(ROOT).as_posix() for p in MODELS.rglob("*.py")
             if re.search(r"bench|roofline|precision_check|calibrat", p.stem)]  # fmt: skip
    assert not named, f"measurement modules inside models/: {named} (they belong in benchmarks/)"
    bad = []
    for path in sorted(MODELS.rglob("*.py")):
        for node in _imports(ast.parse(path.read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            bad += [f"{path.relative_to(ROOT)}:{node.lineno}" for m in mods if m.split(".")[0] == "benchmarks"]
    assert not bad, f"library modules importing benchmarks/: {bad}"
