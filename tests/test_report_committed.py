"""REPORT.md is generated: regenerating it from the committed results/ must give the committed file."""
from __future__ import annotations

import difflib
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from analysis.report import build_report

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python run.py report --results results --out REPORT.md"


@pytest.mark.skipif(not (ROOT / "REPORT.md").exists(), reason="no committed REPORT.md yet")
def test_committed_report_matches_a_regeneration_from_results(monkeypatch):
    monkeypatch.chdir(ROOT)  # the report names its paths as given on the command line
    text, figures = build_report("results", "REPORT.md")
    names = sorted(figures)
    plt.close("all")
    committed = (ROOT / "REPORT.md").read_text(encoding="utf-8")
    diff = "".join(list(difflib.unified_diff(committed.splitlines(True), text.splitlines(True), "REPORT.md (committed)",
                                             "REPORT.md (regenerated)"))[:60])
    assert committed == text, f"REPORT.md is not what `{COMMAND}` writes; rerun it and commit:\n{diff}"
    folder = ROOT / "report_figures"
    assert sorted(p.stem for p in folder.glob("*.png")) == names == sorted(p.stem for p in folder.glob("*.pdf"))


def test_the_committed_report_covers_every_grid_with_results():
    if not (ROOT / "REPORT.md").exists():
        pytest.skip("no committed REPORT.md yet")
    text = (ROOT / "REPORT.md").read_text(encoding="utf-8")
    grids = sorted(p.parent.name for p in (ROOT / "results").glob("*/grid.json"))
    assert grids and all(f"## Grid `{g}`" in text for g in grids)
    assert "## Limitations" in text and "--protocol paper --executor ray" in text and "JPEG" in text
