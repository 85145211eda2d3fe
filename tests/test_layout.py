"""The house rules the layout keeps: short functions, and a study definition that imports no torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dyclot", "baselines", "study", "costing", "experiments", "analysis", "benchmarks")
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


def test_the_study_definition_imports_no_torch():
    code = ("import sys, study, study.grids, study.questions, study.claims\n"
            "assert 'torch' not in sys.modules and 'experiments' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def imported_packages(path: Path) -> set[str]:
    """The project's top-level packages a module imports, anywhere in it (function bodies included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


# What each package's modules may not import: data flows run.py -> experiments -> models -> results -> analysis.
# A command module (cli.py) sits above every package and is exempt.
FORBIDDEN = {"dyclot": {"baselines", "study", "costing", "experiments", "analysis"},
             "baselines": {"study", "costing", "experiments", "analysis"},
             "study": {"dyclot", "baselines", "costing", "experiments", "analysis"},
             "costing": {"experiments", "analysis"},
             "analysis": {"dyclot", "baselines", "costing", "experiments"}}


def test_imports_flow_one_way():
    wrong = [f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}"
             for package, banned in FORBIDDEN.items() for path in sorted((ROOT / package).rglob("*.py"))
             if path.name != "cli.py" and (bad := imported_packages(path) & banned)]
    assert not wrong, "; ".join(wrong)
