"""The CLI's tables at 80 columns: model, variant, grid and run names are printed whole (rich would
otherwise cut them to ``mobilenetv2_cifar_…``)."""
from __future__ import annotations

import re

import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table

import run
from evidence.terminal import keep_names_whole
from experiments import grids, runs

LONG = "mobilenetv2_cifar_condconv_100"


@pytest.fixture
def narrow(monkeypatch):
    """An 80-column terminal: for the Consoles made per command (COLUMNS) and the engine's module-level one."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(runs, "console", Console(width=80))


def printed(capsys, *args: str) -> str:
    code = run.main(list(args))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert max(map(len, out.splitlines())) <= 80, out
    return out


def test_keep_names_whole_at_80_columns():
    def table() -> Table:
        table = Table("model", "params", "MACs (ptflops)", "MACs after fuse()", "FLOPs (torch)", "latency b1 ms",
                      "train img/s b128", "peak train MiB")
        table.add_row(LONG, "8,650,000", "102,000,000", "102,000,000", "193,000,000", "53.22", "11", "538")
        return table

    console = Console(width=80, record=True)
    console.print(table())
    assert LONG not in console.export_text()  # what rich does by default
    console = Console(width=80, record=True)
    console.print(keep_names_whole(table()))
    text = console.export_text()
    assert LONG in text and "…" not in text  # the other columns fold rather than end in an ellipsis


def test_profile_table(narrow, capsys):
    out = printed(capsys, "profile", "--models", f"{LONG},resnet20_cifar_mdconv,dyclotnet_050", "--no-timing")
    assert all(name in out for name in (LONG, "resnet20_cifar_mdconv", "dyclotnet_050"))
    assert re.search(rf"{LONG} +│ +8\.65M │ +102M │ +102M", out), out  # counts to 3 significant digits
    assert "ms b1" not in out  # --no-timing: no empty timing columns


def test_profile_table_keeps_exact_counts_on_a_wide_terminal(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "160")
    assert run.main(["profile", "--models", LONG, "--no-timing"]) == 0
    out = capsys.readouterr().out
    assert LONG in out and "MACs after fuse()" in out and re.search(r"\d{3},\d{3},\d{3}", out)


def test_list_show_and_status_tables(narrow, capsys, tmp_path):
    out = printed(capsys, "list")
    assert all(name in out for name in grids.GRIDS)
    out = printed(capsys, "show", "baselines", "--seeds", "1")
    models = {variant.model for variant in grids.get_grid("baselines").variants.values()}
    assert LONG.replace("_100", "_050") in models
    assert all(name in out for name in models), out
    out = printed(capsys, "status", "baselines", "--seeds", "1", "--results", str(tmp_path))
    assert all(name in out for name in grids.get_grid("baselines").variants), out
    configs, _ = grids.resolve(grids.get_grid("baselines"), None, 1, None, check=False)
    assert all(cfg.run_id in out for cfg in configs)


def test_ablate_result_table(narrow, capsys):
    runs.print_results([{"variant": LONG, "seed": 0, "status": "ok", "run_id": "0123456789abcdef",
                                "metrics": {"test_top1": 71.234, "val_top1": 70.5},
                                "reason": "a long note about why this run is worth a second look"}])
    out = capsys.readouterr().out
    assert LONG in out and "0123456789abcdef" in out and max(map(len, out.splitlines())) <= 80


def test_analyze_table(narrow, capsys, tmp_path):
    names = [LONG, "mobilenetv2_cifar_dynconv_100"]
    pd.DataFrame({"grid": ["baselines"] * 6, "variant": [names[0]] * 3 + [names[1]] * 3, "seed": [0, 1, 2] * 2,
                  "test_top1": [70, 71, 70.5, 72, 73, 72.5]}).to_csv(tmp_path / "t.csv", index=False)
    out = printed(capsys, "analyze", "--csv", str(tmp_path / "t.csv"), "--reference", LONG)
    assert all(name in out for name in names), out
