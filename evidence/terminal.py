"""Rich tables that fit a narrow terminal, shared by every CLI table (``run.py profile``, ``list``,
``show``, ``status``, ``ablate``, ``recount``, ``analyze``, ``compare``). A light module: rich only,
so ``run.py`` can import it at the top without pandas or torch."""
from __future__ import annotations

from rich.table import Table

NAME_COLUMNS = ("model", "variant", "grid", "run")


def keep_names_whole(table: Table, names: tuple[str, ...] = NAME_COLUMNS) -> Table:
    """Fit ``table`` to the terminal without cutting names: the columns titled ``names`` (model,
    variant, grid, run id) never wrap or shrink, so rich narrows the others, which fold rather than
    end in an ellipsis. Without this an 80-column terminal shows ``mobilenetv2_cifar_…``. Returns
    ``table``."""
    for column in table.columns:
        if str(column.header) in names:
            column.no_wrap = True
        else:
            column.overflow = "fold"
    return table
