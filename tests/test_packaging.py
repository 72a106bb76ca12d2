"""Packaging: conda.yaml agrees with pyproject.toml, MLproject passes its parameters, the CLI is declared."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _mlproject() -> dict:
    return yaml.safe_load((REPO / "MLproject").read_text())


def _norm(req: str) -> str:
    r = Requirement(req)
    spec = ",".join(sorted(str(s) for s in r.specifier))
    extras = f"[{','.join(sorted(r.extras))}]" if r.extras else ""
    marker = f"; {r.marker}" if r.marker else ""
    return f"{canonicalize_name(r.name)}{extras}{spec}{marker}"


def test_conda_pip_dependencies_match_pyproject():
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_lists = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "conda.yaml needs exactly one pip: section"
    pip = [p for p in pip_lists[0] if not p.startswith("-")]  # `-e .` installs the project itself
    assert any(p.strip() in ("-e .", "-e ./") for p in pip_lists[0]), "conda.yaml should install the project"
    declared = _pyproject()["project"]["dependencies"]
    assert {_norm(p) for p in pip} == {_norm(d) for d in declared}
    assert len(pip) == len(declared), "duplicate requirement lines"


def test_conda_python_matches_requires_python():
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pythons = [d for d in conda["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert pythons, "conda.yaml pins no python"
    want = _pyproject()["project"]["requires-python"].replace(" ", "")
    assert pythons[0].replace(" ", "").removeprefix("python") == want


def test_every_mlproject_parameter_reaches_its_command():
    entry_points = _mlproject()["entry_points"]
    assert entry_points
    for name, ep in entry_points.items():
        command = ep["command"]
        params = ep.get("parameters") or {}
        for p in params:
            assert f"{{{p}}}" in command, f"entry point {name}: parameter {p} is not passed to the command"
        # and the command uses no placeholder that is not declared
        used = set(re.findall(r"\{(\w+)\}", command))
        assert used <= set(params), f"entry point {name}: undeclared placeholders {used - set(params)}"


def test_benchmark_entry_point_runs_benchmark_run():
    ep = _mlproject()["entry_points"]["benchmark"]
    assert "benchmark.run" in ep["command"]
    assert {"config", "seed", "n_trials", "n_splits", "n_repeats"} <= set(ep["parameters"])
    assert ep["parameters"]["config"]["default"].startswith("experiments/")
    assert (REPO / ep["parameters"]["config"]["default"]).is_file()
    # numeric parameters default to "config": keep the config file's value
    for p in ("seed", "n_trials", "n_splits", "n_repeats"):
        assert str(ep["parameters"][p]["default"]) == "config"


def test_report_entry_point_exists():
    ep = _mlproject()["entry_points"]["report"]
    assert "benchmark.report" in ep["command"]
    assert importlib.util.find_spec("benchmark.report") is not None


def test_mlproject_uses_conda_yaml():
    mlp = _mlproject()
    assert mlp["conda_env"] == "conda.yaml"
    assert (REPO / mlp["conda_env"]).is_file()


def test_console_script_is_declared_and_resolves():
    scripts = _pyproject()["project"]["scripts"]
    assert "neipalette" in scripts
    module, _, attr = scripts["neipalette"].partition(":")
    target = getattr(importlib.import_module(module), attr)
    assert callable(target)


def test_console_script_is_installed():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert eps.get("neipalette") == _pyproject()["project"]["scripts"]["neipalette"]


def test_mlproject_cli_options_exist():
    """Every --option the benchmark command passes is an option of benchmark.run.main."""
    from benchmark.run import main

    command = _mlproject()["entry_points"]["benchmark"]["command"]
    passed = set(re.findall(r"(--[\w-]+)", command))
    known = {opt for p in main.params for opt in p.opts}
    assert passed <= known


def test_one_version_and_an_spdx_license():
    import neipalette

    project = _pyproject()["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "neipalette.__version__"}
    assert importlib.metadata.version("neipalette") == neipalette.__version__
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    build = _pyproject()["build-system"]["requires"]
    assert any(Requirement(r).name == "setuptools" and Requirement(r).specifier.contains("77") for r in build)
    assert not any(Requirement(r).name == "setuptools" and Requirement(r).specifier.contains("76.9") for r in build)


def test_mlproject_config_is_a_path():
    assert _mlproject()["entry_points"]["benchmark"]["parameters"]["config"]["type"] == "path"
