"""``run.py profile`` and ``claim-costs``: the cost of registered models, and the published cost claim under each reading."""
from __future__ import annotations

import csv
import io
import json
import re
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from evidence.files import atomic_write
from evidence.terminal import keep_names_whole

# The registry, profiling and claims modules are imported inside the commands: they load timm and
# every model's registration, which `run.py --help` does not need.


class ProfileFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``"3x32x32"`` -> (3, 32, 32); channels 1-4, sides 8-1024."""
    match = re.fullmatch(r"\s*(\d+)x(\d+)x(\d+)\s*", text)
    if not match:
        raise ValueError(f"--input {text!r} is not CxHxW (e.g. 3x32x32 or 1x28x28)")
    chans, height, width = map(int, match.groups())
    if not 1 <= chans <= 4 or not (8 <= height <= 1024 and 8 <= width <= 1024):
        raise ValueError(f"--input {text!r} is out of range: channels 1-4, height and width 8-1024")
    return chans, height, width


def _short_count(n: int) -> str:
    """A count to 3 significant digits: 2236682 -> "2.24M", 950 -> "950"."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def parse_model_names(text: str) -> list[str]:
    from baselines.registry import check_model_name

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--models {text!r} names no model; give a comma-separated list")
    for name in names:
        check_model_name(name)
    return names


def render(rows: list[dict], fmt: ProfileFormat) -> str:
    if fmt is ProfileFormat.json:
        return json.dumps(rows, indent=2)
    if fmt is ProfileFormat.csv:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().rstrip("\n")
    raise ValueError(f"format {fmt!r} is rendered by rich")


def profile(
    models: str = typer.Option("dyclotnet_050,dyclotnet_100,dyclotnet_200", help="Comma-separated registered model names."),
    input: str = typer.Option("3x32x32", "--input", help="Input shape CxHxW."),
    num_classes: int = typer.Option(10, min=1, max=100000, help="Classifier outputs."),
    format: ProfileFormat = typer.Option(ProfileFormat.table, "--format", help="Output format."),
    timing: bool = typer.Option(True, help="Measure latency, throughput and memory (--no-timing: counts only)."),
    batch_size: int = typer.Option(128, min=1, max=4096, help="Batch of the training-throughput measurement."),
    threads: int = typer.Option(0, min=0, max=1024, help="torch threads for timing (0: torch's default)."),
    list_models: bool = typer.Option(False, "--list", help="List the registered model names and exit."),
) -> None:
    """Parameters, MACs (ptflops; also after ``fuse()`` where a model has one), FLOPs (torch counter), batch-1 latency,
    batch-128 training throughput, peak memory."""
    from baselines.registry import list_models as registered

    from .profiling import profile_models, profiles_as_dicts

    if list_models:
        typer.echo("\n".join(name for name in registered() if "cifar" in name or name.startswith("dyclotnet")))
        return
    names, shape = parse_model_names(models), parse_input_shape(input)
    rows = profiles_as_dicts(profile_models(names, input_shape=shape, num_classes=num_classes, timing=timing,
                                            batch_size=batch_size, threads=threads or None))
    if format is not ProfileFormat.table:
        typer.echo(render(rows, format))
        return
    print_profiles(rows, input, batch_size)


def claim_costs(
    format: ProfileFormat = typer.Option(ProfileFormat.table, "--format", help="table (markdown), json or csv."),
    update_docs: bool = typer.Option(False, help="Also write the markdown table into docs/interpretation.md."),
    out: Path | None = typer.Option(None, "--out", help="Also write the rows as JSON here (the report reads "
                                    "RESULTS/claim_costs.json)."),
) -> None:
    """DyClotNet-2.0 vs MobileNetV2-1.0 parameter and MAC ratios under each reading of the open points."""
    from .claims import claim_cost_rows, rows_as_markdown

    rows = claim_cost_rows()
    text = rows_as_markdown(rows) if format is ProfileFormat.table else render(rows, format)
    typer.echo(text)
    if update_docs:
        _replace_block(DOCS_INTERPRETATION, "claim-costs", rows_as_markdown(rows))
    if out is not None:
        atomic_write(out, render(rows, ProfileFormat.json) + "\n", then=None)


def study_costs(
    out: Path | None = typer.Option(None, "--out", help="Also write the rows as JSON here (the plan reads "
                                    "RESULTS/study_costs.json)."),
    latency_rounds: int = typer.Option(7, "--latency-rounds", min=0, max=1000, help=(
        "Also measure CPU batch-1 latency (1 thread) of every distinct network side by side, each timed in turn in "
        "every round, median over this many rounds; the report's cost ratios in the looks read it. 0: no latency. "
        "Measure on a machine doing nothing else.")),
) -> None:
    """Parameters, MACs, bytes per image and (side by side) CPU latency of every variant of the second edition's grids
    and of the pilots: the plan's cost scale, the engine's twin test, the looks' cost ratios."""
    from .claims import study_cost_rows

    rows = study_cost_rows(latency_rounds=latency_rounds)
    hidden = {"model_kwargs", "latency_setup"}
    typer.echo(render([{k: v for k, v in row.items() if k not in hidden} for row in rows], ProfileFormat.csv))
    if out is not None:
        atomic_write(out, json.dumps(rows, indent=1) + "\n", then=None)


def dct_bound(
    out: Path | None = typer.Option(None, "--out", help="Also write the rows as JSON here (the report reads "
                                    "RESULTS/dct_bound.json)."),
) -> None:
    """Eq. (8)'s bound C1 <= 5/16 C0 counted on DyClotNet's layers (M = N, p = 2), and the DCT module's share."""
    from .claims import dct_bound_rows

    rows = dct_bound_rows()
    typer.echo(render(rows, ProfileFormat.csv))
    if out is not None:
        atomic_write(out, json.dumps(rows, indent=1) + "\n", then=None)


def print_profiles(rows: list[dict], input: str, batch_size: int) -> None:
    """The profile rows as a rich table; below 120 columns a narrow one with whole model names."""
    console = Console()
    table = Table(title=f"Model cost at {input} ({rows[0]['threads']} threads; medians)")
    columns = [("model", "model", str), ("params", "params", "{:,}".format), ("MACs (ptflops)", "macs", "{:,}".format),
               ("MACs after fuse()", "macs_fused", "{:,}".format),
               ("FLOPs (torch)", "flops", "{:,}".format), ("latency b1 ms", "latency_ms", "{:.2f}".format),
               (f"train img/s b{batch_size}", "train_images_per_s", "{:.0f}".format),
               ("peak train MiB", "peak_train_mib", "{:.0f}".format)]
    if console.width < 120:  # whole model names first; --format csv or json gives every count exactly
        table = Table(title=table.title, show_edge=False)
        short = {"params": "params", "macs": "MACs", "macs_fused": "fused", "latency_ms": "ms b1",
                 "train_images_per_s": "img/s", "peak_train_mib": "MiB"}  # FLOPs: in csv/json
        columns = [(short.get(key, title), key, _short_count if fmt == "{:,}".format else fmt)
                   for title, key, fmt in columns if key == "model" or key in short
                   and any(row[key] is not None for row in rows)]
    for title, *_ in columns:
        table.add_column(title, justify="left" if title == "model" else "right")
    for row in rows:
        table.add_row(*("-" if row[key] is None else fmt(row[key]) for _, key, fmt in columns))
    console.print(keep_names_whole(table))


def register(app: typer.Typer) -> None:
    app.command()(profile)
    app.command("claim-costs")(claim_costs)
    app.command("study-costs")(study_costs)
    app.command("dct-bound")(dct_bound)


DOCS_INTERPRETATION = __import__("pathlib").Path(__file__).resolve().parent.parent / "docs" / "interpretation.md"


def _replace_block(path, name: str, body: str) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``."""
    text = path.read_text()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise ValueError(f"{path} has no {begin} ... {end} block to fill")
    head, rest = text.split(begin, 1)
    path.write_text(head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1])
