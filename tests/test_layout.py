"""The package layout: imports flow one way, models saved by the pre-layout code still load, and the
top-level name `benchmark` belongs to this project in the installed environment."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neipalette.persist import load_predictor, predict_frame

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "pre-layout-models"

# What each room may import from the project (besides itself). Leaves first.
ALLOWED = {
    "neipalette.errors": set(),
    "neipalette.seeding": set(),
    "neipalette.evaluation": set(),
    "neipalette.colour": {"neipalette.errors", "neipalette.seeding"},
    "neipalette.data": {"neipalette.errors", "neipalette.seeding", "neipalette.evaluation", "neipalette.colour"},
    "neipalette.models": {"neipalette.errors", "neipalette.seeding", "neipalette.evaluation", "neipalette.colour",
                          "neipalette.data"},
}


def _room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _project_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "neipalette" else [f"neipalette.{a.name}" for a in node.names]
            found.update(n for n in names if n.split(".")[0] in ("neipalette", "benchmark"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in ("neipalette", "benchmark"))
    return found


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_neipalette_never_imports_benchmark_and_rooms_import_only_earlier_layers():
    bad = []
    for path in sorted((REPO / "neipalette").rglob("*.py")):
        module = _module_name(path)
        room = _room(module)
        for imported in _project_imports(path):
            if imported.startswith("benchmark"):
                bad.append(f"{module} imports {imported}")
            target = _room(imported)
            if room in ALLOWED and target != room and target not in ALLOWED[room]:
                bad.append(f"{module} imports {imported}")
    assert not bad, bad


def _import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (at the top or inside a function: a lazy import that
    closes a circle is still a circle). `from package import module` points at the module."""
    paths = sorted([*(REPO / "neipalette").rglob("*.py"), *(REPO / "benchmark").rglob("*.py")])
    modules = {_module_name(p) for p in paths}
    graph: dict[str, set[str]] = {}
    for path in paths:
        here = _module_name(path)
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    edges.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
        graph[here] = {e for e in edges if e in modules and e != here}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_through_others():
    """No import circles between the project's modules (a package __init__ counts as a module)."""
    assert not _cycles(_import_graph()), _cycles(_import_graph())


def test_modules_stay_short_guideline():
    """Guideline, not a rule: a module over 350 lines is printed (a hint to split it by concern), never failed."""
    long = {p.relative_to(REPO).as_posix(): n
            for p in sorted([*(REPO / "neipalette").rglob("*.py"), *(REPO / "benchmark").rglob("*.py")])
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 350}
    for path, n in long.items():
        print(f"guideline: {path} has {n} lines (> 350)")


def test_neipalette_has_few_top_level_modules():
    """The top level keeps the command line, errors, seeding and the persist alias; the rest lives in rooms."""
    top = sorted(p.name for p in (REPO / "neipalette").glob("*.py"))
    assert len(top) <= 8, top


def test_mlflow_optuna_and_click_live_at_the_edges():
    # neipalette/cli.py: `neipalette predict` loads an MLflow model with a lazy import inside the command
    edges = {"mlflow": ("benchmark/tracking/", "neipalette/cli.py"), "optuna": ("benchmark/tuning.py",),
             "click": ("neipalette/cli.py", "benchmark/run.py", "benchmark/report/cli.py", "benchmark/sweep/cli.py",
                       "benchmark/perf.py", "benchmark/coverage/cli.py",
                       "benchmark/baselines_check.py")}
    bad = []
    for path in sorted([*(REPO / "neipalette").rglob("*.py"), *(REPO / "benchmark").rglob("*.py")]):
        rel = path.relative_to(REPO).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        for lib, homes in edges.items():
            if lib in mods and not rel.startswith(homes):
                bad.append(f"{rel} imports {lib}")
    assert not bad, bad


def test_benchmark_top_level_name_belongs_to_this_distribution():
    """`benchmark` is also the name of an unrelated PyPI distribution: installing both would shadow silently."""
    owners = importlib.metadata.packages_distributions().get("benchmark", [])
    assert set(owners) <= {"neipalette"}, f"another distribution installs a top-level 'benchmark': {owners}"
    import benchmark

    assert Path(benchmark.__file__).resolve().parent == REPO / "benchmark"


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"top": [str(FIXTURE / "images" / "top.png")],
                         "bottom": [str(FIXTURE / "images" / "bottom.png")]})


@pytest.mark.parametrize("name", ["colour_stats", "resnet18_head"])
def test_predictor_saved_by_the_pre_layout_code_loads_and_predicts_the_same(name):
    expected = json.loads((FIXTURE / "expected.json").read_text())["proba"][name]
    got = predict_frame(load_predictor(FIXTURE / name / "predictor"), _frame())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_pyfunc_model_logged_by_the_pre_layout_code_loads_and_predicts_the_same():
    # MLflow puts a logged model's bundled code on sys.path, so load it in a fresh interpreter
    expected = json.loads((FIXTURE / "expected.json").read_text())["proba"]
    script = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        "frame = pd.DataFrame(json.loads(sys.argv[2]))\n"
        "print(json.dumps([float(p) for p in mlflow.pyfunc.load_model(sys.argv[1]).predict(frame)]))\n"
    )
    for name, proba in expected.items():
        out = subprocess.run([sys.executable, "-c", script, str(FIXTURE / name / "pyfunc"),
                              json.dumps(_frame().to_dict(orient="list"))], capture_output=True, text=True, check=True)
        np.testing.assert_allclose(json.loads(out.stdout.strip().splitlines()[-1]), proba, rtol=1e-5, atol=1e-7)
