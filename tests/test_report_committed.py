"""REPORT.md is generated: regenerating it from the committed results/ must give the committed file."""
from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from analysis.render import LINE_LIMIT
from analysis.report import appendix_path, build_report
from study.grids import searched_grid
from study.questions import SECOND_EDITION

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python run.py report --results results --out REPORT.md"
APPENDIX = appendix_path("REPORT.md").name
MAIN_LINES = 400  # the main report a reader finishes


def committed_results(tmp_path: Path) -> Path:
    """A copy of results/ holding only the files git tracks (a study running here adds unfinished runs)."""
    try:
        files = subprocess.run(["git", "ls-files", "-z", "results"], cwd=ROOT, capture_output=True, check=True,
                               text=True).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: the folder as it is
        return ROOT / "results"
    for name in filter(None, files):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path / "results"


@pytest.fixture
def regenerated(tmp_path, monkeypatch):
    if not list((ROOT / "results").glob("*/grid.json")):
        pytest.skip("no results/ grids in this checkout")
    assert (ROOT / "REPORT.md").exists(), f"results/ holds grids but REPORT.md is missing: run `{COMMAND}`"
    results = committed_results(tmp_path)
    monkeypatch.chdir(results.parent)  # the report names its paths as given on the command line
    pages, figures = build_report("results", "REPORT.md")
    plt.close("all")
    return pages, sorted(figures), results


@pytest.mark.parametrize("page", ["main", "appendix"])
def test_committed_report_matches_a_regeneration_from_results(regenerated, page):
    pages, names, _ = regenerated
    name = "REPORT.md" if page == "main" else APPENDIX
    text = getattr(pages, page)
    assert (ROOT / name).exists(), f"results/ holds grids but {name} is missing: run `{COMMAND}`"
    committed = (ROOT / name).read_text(encoding="utf-8")
    diff = "".join(list(difflib.unified_diff(committed.splitlines(True), text.splitlines(True), f"{name} (committed)",
                                             f"{name} (regenerated)"))[:60])
    assert committed == text, f"{name} is not what `{COMMAND}` writes; rerun it and commit:\n{diff}"
    folder = ROOT / "report_figures"
    assert sorted(p.stem for p in folder.glob("*.png")) == names == sorted(p.stem for p in folder.glob("*.pdf"))


def test_the_committed_report_covers_every_grid_with_results(regenerated):
    from analysis.learning_rates import is_search
    from analysis.second_edition import main_runs
    from evidence.load import load_results

    _, _, results = regenerated
    text = (ROOT / APPENDIX).read_text(encoding="utf-8")
    grids = {p.parent.name: json.loads(p.read_text()) for p in results.glob("*/grid.json")
             if list(p.parent.glob("*/result.json"))}
    searches = {g for g, meta in grids.items() if is_search(g, meta)}  # shown on validation, not as grids of their own
    # a grid holding only the second edition's main runs has no first pass for the appendix: its question's line in
    # the glance (asserted below for every question) and its looks are where it is reported
    every = load_results(results)
    sequential_only = set(every["grid"]) - set(every.loc[~main_runs(every), "grid"])
    main = (ROOT / "REPORT.md").read_text(encoding="utf-8")
    assert grids and all(f"## Grid `{g}`" in text for g in set(grids) - searches - sequential_only)
    assert all(f"### `{searched_grid(g)}` (protocol" in main and f"## Grid `{g}`" not in text for g in searches)
    assert "## Limitations" in main and "The paper's own budget (the `paper` protocol" in main and "JPEG" in text
    # every question `study --until-decided` trains is planned with its costs (results/study_costs.json covers it)
    assert all(f"| `{g}`" in main for g in SECOND_EDITION) and "MACs unknown" not in main


def test_the_committed_report_opens_with_the_claims_and_is_short():
    """The main report is at most MAIN_LINES lines and its first section is the paper's claims; no line of either
    file (table rows included) is longer than LINE_LIMIT characters."""
    main = (ROOT / "REPORT.md").read_text(encoding="utf-8")
    assert len(main.splitlines()) <= MAIN_LINES
    assert [line for line in main.splitlines() if line.startswith("## ")][0] == "## The paper's claims"
    for name in ("REPORT.md", APPENDIX):
        long = [(n, len(line)) for n, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1)
                if len(line) > LINE_LIMIT]
        assert not long, f"{name}: lines longer than {LINE_LIMIT} characters (line, length): {long}"
