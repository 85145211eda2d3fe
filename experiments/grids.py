"""The study's grids (defined in ``study.grids``) resolved into one RunConfig per (variant, seed)."""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from study.grids import GRIDS, PILOT_BUDGETS, STUDY, Grid, Variant, search_name

from .config import PROTOCOLS, Protocol, RunConfig, Seeds, Vary, choose, get_protocol

# The registry, the runner and the data module load torch and every model: they are imported inside the
# functions that build or check models, so that `run.py list` and `run.py --help` stay quick.


def get_grid(name: str) -> Grid:
    return GRIDS[choose("grid", name, GRIDS)]


@cache
def _unavailable(model: str, kwargs_json: str) -> str | None:
    """Why a variant cannot be built (unknown model, rejected option), or None if it can."""
    from baselines.registry import check_model_name, create_model

    try:
        check_model_name(model)
        create_model(model, num_classes=10, **json.loads(kwargs_json))
    except Exception as error:  # noqa: BLE001 -- any construction error makes the variant unavailable
        return " ".join(str(error).split())
    return None


def architecture_revisions(models: tuple[str, ...], plugins: tuple[str, ...] = ()) -> dict[str, int]:
    """``{model: its current architecture revision}`` (``baselines.registry.architecture_revision``), plugins imported."""
    from baselines.registry import architecture_revision

    from .runner import import_models

    import_models(plugins)
    return {model: architecture_revision(model) for model in models}


def check_variants(grid: Grid, plugins: tuple[str, ...] = (), strict: bool = True) -> tuple[dict[str, Variant], dict[str, str]]:
    """(buildable variants, {left-out variant: why}); a required variant that fails raises ValueError if ``strict``."""
    from .runner import import_models

    import_models(plugins)
    ready, missing = {}, {}
    for name, variant in grid.variants.items():
        reason = _unavailable(variant.model, json.dumps(variant.model_kwargs, sort_keys=True))
        if reason is None:
            ready[name] = variant
        elif variant.optional or not strict:
            missing[name] = reason
        else:
            raise ValueError(f"grid {grid.name!r} variant {name!r} cannot be built: {reason}")
    return ready, missing


def choice_path(results: Path, grid: Grid) -> Path:
    """Where ``run.py tune`` writes the learning rates it chose for ``grid``: RESULTS/<grid>-lr/chosen.json."""
    return Path(results) / search_name(grid.name) / "chosen.json"


def read_choice(results: Path, grid: Grid, protocol: str) -> dict[str, float]:
    """``{variant: lr}`` chosen for ``grid`` under ``protocol`` ({} when no search was made under it)."""
    path = choice_path(results, grid)
    if not path.exists():
        return {}
    try:
        choice = json.loads(path.read_text())
        if choice["protocol"] != protocol:
            return {}
        return {name: float(entry["lr"]) for name, entry in choice["variants"].items()}
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"'{path}' is not a learning-rate choice ({error}); rerun run.py tune {grid.name}") from None


def peak_learning_rates(grid: Grid, protocol: Protocol, chosen: dict[str, float]) -> dict[str, float]:
    """Each variant's peak learning rate: the one place it is set (docs/study.md section 2). The first that applies:

    1. ``chosen[variant]``: chosen on validation for this grid under this protocol (``read_choice``, written by
       ``run.py tune``);
    2. the variant's own ``lr`` (a learning-rate search's candidate, ``tuning.tuning_grid``);
    3. the protocol's ``lr`` times the grid's ``lr_scale`` (a sensitivity check of the schedule), given here as
       ``protocol``, already scaled by ``resolve`` unless the caller set the protocol's ``lr`` explicitly."""
    return {name: chosen.get(name, variant.lr if variant.lr is not None else protocol.lr)
            for name, variant in grid.variants.items()}


def resolve(grid: Grid, protocol: str | None = None, seeds: int = 1, dataset: str | None = None, vary: Vary = "all",
            plugins: tuple[str, ...] = (), check: bool = True, first_seed: int = 0, results: Path | None = None,
            choice: dict[str, float] | None = None, **protocol_overrides) -> tuple[list[RunConfig], dict[str, str]]:
    """One RunConfig per (variant, seed first_seed..first_seed+seeds-1), and the optional variants left out (with reasons).

    Each variant trains at its ``peak_learning_rates``: at the rate chosen on validation where ``results`` holds
    a choice for this grid under this protocol (or ``choice``, that choice already read with ``read_choice``).
    """
    from .data import DATASETS

    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be a whole number >= 1, got {seeds!r}")
    protocol_name = grid.protocol if protocol is None else protocol
    proto = get_protocol(protocol_name, **protocol_overrides)  # "" is unknown, not default
    if grid.lr_scale != 1.0 and "lr" not in protocol_overrides:
        proto = get_protocol(protocol_name, **protocol_overrides, lr=proto.lr * grid.lr_scale)
    dataset = choose("dataset", dataset if dataset is not None else grid.dataset or proto.dataset, DATASETS)
    variants, missing = check_variants(grid, plugins) if check else (grid.variants, {})
    if choice is None:
        choice = read_choice(results, grid, proto.name) if results is not None else {}
    rates = peak_learning_rates(grid, proto, choice)
    protocols = {name: proto if rates[name] == proto.lr else Protocol.model_validate({**proto.model_dump(), "lr": rates[name]})
                 for name in variants}
    revisions = architecture_revisions(tuple(sorted({v.model for v in variants.values()})), plugins)
    configs = [RunConfig(grid=grid.name, variant=name, model=v.model, model_kwargs=dict(v.model_kwargs), dataset=dataset,
                         protocol=protocols[name], seed=seed, vary=vary, seeds=Seeds.derive(seed, vary),
                         architecture_revision=revisions[v.model])
               for seed in range(first_seed, first_seed + seeds) for name, v in variants.items()]
    return configs, missing


def protocol_of(grid: Grid, protocol: str | None = None, dataset: str | None = None) -> str:
    """The name of the protocol ``grid``'s runs train under: ``protocol``, else the grid's own, checked with
    ``dataset`` as ``resolve`` checks them (an unknown protocol or dataset raises the same error)."""
    return resolve(grid, protocol, dataset=dataset, check=False)[0][0].protocol.name

def compared_variants(grid: Grid, compared: list[str] | None) -> list[str]:
    """The variants of ``grid`` compared with its reference: ``compared`` (each checked to be one), else every
    variant but the reference."""
    others = [v for v in grid.variants if v != grid.reference]
    named = [choose(f"variant of grid {grid.name} to compare with {grid.reference}", v, others) for v in compared or others]
    return list(dict.fromkeys(named))


def restrict(grid: Grid, compared: list[str] | None) -> Grid:
    """``grid`` with only its reference and the ``compared`` variants (``compared_variants``; all when None): the
    networks a question's search and main runs train (docs/study.md)."""
    return grid.only(compared_variants(grid, compared) if compared else None)


def grid_json(grid: Grid, configs: list[RunConfig], missing: dict[str, str]) -> dict:
    """What grid.json holds (docs/results-format.md)."""
    present = {c.variant for c in configs}
    return {"grid": grid.name, "description": grid.description, "reference": grid.reference,
            "variants": {n: v.as_json() for n, v in grid.variants.items() if n in present},
            "paired": grid.paired, "left_out": missing,
            "protocol": configs[0].protocol.name if configs else None, "dataset": configs[0].dataset if configs else None,
            "seeds": sorted({c.seed for c in configs}), "vary": configs[0].vary if configs else None}


__all__ = ["GRIDS", "PILOT_BUDGETS", "PROTOCOLS", "STUDY", "Grid", "Variant", "architecture_revisions",
           "check_variants", "choice_path", "compared_variants", "get_grid", "grid_json", "peak_learning_rates",
           "read_choice", "resolve", "restrict"]
