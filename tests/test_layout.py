"""The house rules the layout keeps: short functions, and a study definition that imports no torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dyclot", "baselines", "study", "evidence", "costing", "experiments", "analysis", "benchmarks")
MAX_LINES = 80


def function_lengths() -> list[tuple[int, str]]:
    """(lines, "path:name") of every function and method in the packages and run.py."""
    files = [ROOT / "run.py", *(p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py")))]
    rows = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                rows.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(rows, reverse=True)


def test_no_function_is_longer_than_80_lines():
    long = [f"{name} ({lines} lines)" for lines, name in function_lengths() if lines > MAX_LINES]
    assert not long, f"functions over {MAX_LINES} lines: {', '.join(long)}"


def test_the_study_definition_and_the_evidence_import_no_torch():
    code = ("import sys, study, study.grids, study.questions, study.claims\n"
            "import evidence.decisions, evidence.files, evidence.load, evidence.terminal\n"
            "assert not {'torch', 'experiments', 'analysis'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def imported_packages(path: Path) -> set[str]:
    """The project's top-level packages a module imports, anywhere in it: every import statement,
    at the top or inside a function (``ast.walk`` visits both); a relative import stays in its package."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


# What each package may import, lowest first: the study and the models at the bottom, the evidence
# (run status, the store's files and reader, the sequential rule) below the engine, then the engine,
# then analysis and the report. Every module counts, command modules (cli.py) included; run.py sits
# above them all. Benchmarks time the engine and the models, and nothing imports them.
ALLOWED = {"study": set(),
           "dyclot": set(),
           "baselines": {"dyclot"},
           "evidence": set(),
           "costing": {"dyclot", "baselines", "study", "evidence"},
           "experiments": {"dyclot", "baselines", "study", "evidence", "costing"},
           "analysis": {"study", "evidence"},
           "benchmarks": {"dyclot", "baselines", "study", "evidence", "costing", "experiments"}}


def arrows_back(root: Path = ROOT) -> list[str]:
    """``"path imports a, b"`` for every module importing a package its own may not (``ALLOWED``)."""
    return [f"{path.relative_to(root)} imports {', '.join(sorted(bad))}"
            for package, allowed in ALLOWED.items() for path in sorted((root / package).rglob("*.py"))
            if (bad := imported_packages(path) - allowed - {package})]


def test_every_package_is_in_the_layout():
    assert set(ALLOWED) == set(PACKAGES)


def test_imports_flow_one_way():
    wrong = arrows_back()
    assert not wrong, "; ".join(wrong)


def test_an_arrow_back_is_caught_in_a_function_and_in_a_cli(tmp_path):
    """The check itself fails on an arrow back up: an import inside a command of a cli.py."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "costing" / "cli.py").write_text("def claims():\n    from experiments.store import atomic_write\n")
    (tmp_path / "experiments" / "runs.py").write_text("import analysis.status\n")
    assert arrows_back(tmp_path) == ["costing/cli.py imports experiments", "experiments/runs.py imports analysis"]
