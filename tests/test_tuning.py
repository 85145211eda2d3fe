"""Learning rates chosen on validation, the same search for every network."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.config import ENGINE_VERSION
from experiments.grids import get_grid, resolve
from experiments.tuning import LR_CANDIDATES, TUNING_FIRST_SEED, choose_learning_rates, read_choice, tuning_grid, write_choice


def test_the_search_is_a_grid_of_every_variant_at_every_candidate():
    grid = get_grid("replicator-vs-recalibrator")
    search = tuning_grid(grid)
    assert search.name == "replicator-vs-recalibrator-lr"
    assert set(search.variants) == {f"{v}@lr{lr:g}" for v in grid.variants for lr in LR_CANDIDATES}
    configs, _ = resolve(search, "cpu", 2, check=False, first_seed=TUNING_FIRST_SEED)
    assert {c.seed for c in configs} == {1000, 1001}  # disjoint from the main runs' seeds
    assert {c.protocol.lr for c in configs if c.variant.startswith("dct@")} == set(LR_CANDIDATES)
    with pytest.raises(ValueError, match="positive finite"):
        tuning_grid(grid, (0.1, -1.0))


def test_main_runs_train_at_the_rates_chosen_under_their_protocol(tmp_path):
    grid = get_grid("replicator-vs-recalibrator")
    plain, _ = resolve(grid, "cpu", 1, check=False, results=tmp_path)
    (tmp_path / "replicator-vs-recalibrator-lr").mkdir()
    write_choice(tmp_path, grid, "cpu", {"dct": {"lr": 0.05}})
    tuned, _ = resolve(grid, "cpu", 1, check=False, results=tmp_path)
    lrs = {c.variant: c.protocol.lr for c in tuned}
    assert lrs["dct"] == 0.05 and lrs["replicator"] == 0.1
    assert {c.protocol.lr for c in resolve(grid, "cpu-full", 1, check=False, results=tmp_path)[0]} == {0.1}  # another protocol
    assert {c.run_id for c in tuned if c.variant == "dct"} != {c.run_id for c in plain if c.variant == "dct"}


def _search_run(root: Path, variant: str, seed: int, val: float, status: str = "ok", protocol: str = "cpu",
                engine_version: int = ENGINE_VERSION, reason: str = "diverged") -> None:
    """A finished search run of the ``seed``-th search seed (``TUNING_FIRST_SEED + seed``)."""
    seed += TUNING_FIRST_SEED
    run = root / "g-lr" / f"{variant}-{seed}-v{engine_version}".replace("@", "_")
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"variant": variant, "seed": seed, "engine_version": engine_version}))
    (run / "result.json").write_text(json.dumps({
        "run_id": run.name, "grid": "g-lr", "variant": variant, "seed": seed, "model": "m", "dataset": "d",
        "protocol": protocol, "status": status, "reason": None if status == "ok" else reason,
        "metrics": {"test_top1": 99.0 - val, "val_top1": val}, "cost": {"params": 1, "macs": 1, "latency_ms": 1.0}}))


def test_the_choice_uses_validation_only_and_ties_go_to_the_smaller_rate(tmp_path):
    from experiments.grids import Grid, Variant

    (tmp_path / "g-lr").mkdir()
    (tmp_path / "g-lr" / "grid.json").write_text(json.dumps({"grid": "g-lr", "reference": "a@lr0.1"}))
    for seed, (low, high) in enumerate([(60.0, 70.0), (62.0, 68.0)]):  # a: 0.2 wins on validation (test says 0.1)
        _search_run(tmp_path, "a@lr0.1", seed, low)
        _search_run(tmp_path, "a@lr0.2", seed, high)
        _search_run(tmp_path, "b@lr0.1", seed, 65.0)  # a tie: the smaller rate
        _search_run(tmp_path, "b@lr0.2", seed, 65.0)
        _search_run(tmp_path, "c@lr0.1", seed, 65.0, "failed" if seed else "ok")  # not all finished: left out
        _search_run(tmp_path, "c@lr0.2", seed, 60.0)
        _search_run(tmp_path, "d@lr0.1", seed, 60.0)  # d's other candidate not trained yet: left out
    _search_run(tmp_path, "e@lr0.1", 0, 60.0)  # e: one seed of two at each candidate: left out
    _search_run(tmp_path, "e@lr0.2", 0, 70.0)
    grid = Grid("g", "test", "a", {name: Variant("m") for name in "abcde"})
    chosen = choose_learning_rates(tmp_path, grid, (0.1, 0.2), 2)
    assert chosen["a"] == {"lr": 0.2, "val_top1": {"0.1": 61.0, "0.2": 69.0}, "runs": {"0.1": 2, "0.2": 2}}
    assert chosen["b"]["lr"] == 0.1 and set(chosen) == {"a", "b"}
    for seed, (low, high) in enumerate([(80.1, 80.0), (80.3, 80.4)]):  # equal means (80.2) that float sums split
        _search_run(tmp_path, "f@lr0.1", seed, low)
        _search_run(tmp_path, "f@lr0.2", seed, high)
    _search_run(tmp_path, "a@lr0.1", 2, 99.0)  # a third seed (another tune --seeds): not the search's two
    grid = Grid("g", "test", "a", {name: Variant("m") for name in "abcdef"})
    chosen = choose_learning_rates(tmp_path, grid, (0.1, 0.2), 2)
    assert chosen["f"]["lr"] == 0.1 and chosen["f"]["val_top1"] == {"0.1": 80.2, "0.2": 80.2}  # a tie: the smaller
    assert chosen["a"]["val_top1"] == {"0.1": 61.0, "0.2": 69.0} and set(chosen) == {"a", "b", "f"}
    # one seed: only seed 1000 is the search's (c's failed run is seed 1001)
    assert set(choose_learning_rates(tmp_path, grid, (0.1, 0.2), 1)) == {"a", "b", "c", "e", "f"}
    write_choice(tmp_path, grid, "cpu", chosen)
    assert read_choice(tmp_path, grid, "cpu") == {"a": 0.2, "b": 0.1, "f": 0.1}
    assert read_choice(tmp_path, grid, "cpu-full") == {}  # chosen under another budget: not applied
    (tmp_path / "g-lr" / "chosen.json").write_text("{}")
    with pytest.raises(ValueError, match="is not a learning-rate choice"):
        read_choice(tmp_path, grid, "cpu")


def test_the_choice_is_made_from_this_protocols_runs_at_the_candidates_only(tmp_path):
    from experiments.grids import Grid, Variant

    grid = Grid("g", "test", "a", {"a": Variant("m")})
    (tmp_path / "g-lr").mkdir()
    (tmp_path / "g-lr" / "grid.json").write_text(json.dumps({"grid": "g-lr", "reference": "a@lr0.1"}))
    for seed in (0, 1):
        _search_run(tmp_path, "a@lr0.1", seed, 60.0)
        _search_run(tmp_path, "a@lr0.2", seed, 62.0)
        _search_run(tmp_path, "a@lr0.05", seed, 70.0)  # a leftover of another search's candidates: not this one's
    assert choose_learning_rates(tmp_path, grid, (0.1, 0.2), 2, "cpu")["a"]["lr"] == 0.2
    assert choose_learning_rates(tmp_path, grid, (0.1, 0.2), 2, "cpu-full") == {}  # no run under that protocol


def test_runs_of_another_engine_version_never_choose_nor_widen_even_before_a_run_of_this_one_finishes(tmp_path):
    from experiments.grids import Grid, Variant
    from experiments.tuning import search_runs, widened_before

    (tmp_path / "g-lr").mkdir()
    (tmp_path / "g-lr" / "grid.json").write_text(json.dumps({"grid": "g-lr", "reference": "a@lr0.1"}))
    grid = Grid("g", "test", "a", {"a": Variant("engine_test_net")})
    for seed in (0, 1):  # the older engine's search put the best rate at the top edge; this engine's has no run yet
        _search_run(tmp_path, "a@lr0.1", seed, 60.0, protocol="smoke", engine_version=ENGINE_VERSION - 1)
        _search_run(tmp_path, "a@lr0.2", seed, 70.0, protocol="smoke", engine_version=ENGINE_VERSION - 1)
    assert choose_learning_rates(tmp_path, grid, (0.1, 0.2), 2) == {}
    configs = search_runs(grid, "smoke", (0.1, 0.2), 2, ("conftest",))[1]
    assert widened_before(tmp_path, grid, (0.1, 0.2), 2, configs) == (0.1, 0.2)  # not widened from them
    for seed in (0, 1):  # this engine's runs choose, whatever the older ones said
        _search_run(tmp_path, "a@lr0.1", seed, 70.0, protocol="smoke")
        _search_run(tmp_path, "a@lr0.2", seed, 60.0, protocol="smoke")
    assert choose_learning_rates(tmp_path, grid, (0.1, 0.2), 2)["a"]["lr"] == 0.1


def test_a_search_names_its_candidates_exactly_and_never_a_named_grids_folder():
    from analysis.learning_rates import is_search
    from experiments.grids import get_grid
    from study.grids import search_name, searched_grid

    with pytest.raises(ValueError, match="named by 6 significant digits"):
        tuning_grid(get_grid("replicator-vs-recalibrator"), (0.1, 0.1234567))
    # the first pass's paper-claim-lr is a grid of its own: (c)'s search lands beside it, and is read back as (c)'s
    search = tuning_grid(get_grid("paper-claim"))
    assert search.name == "paper-claim-search-lr" and searched_grid(search.name) == "paper-claim"
    assert is_search(search.name, {"variants": search.variants}) and not is_search("paper-claim-lr", {
        "variants": get_grid("paper-claim-lr").variants})
    for grid in ("replicator-vs-recalibrator", "replicator-vs-recalibrator-gpu", "lr-check", "paper-claim-gpu"):
        assert search_name(grid) == f"{grid}-lr" and searched_grid(search_name(grid)) == grid


def test_a_search_run_that_diverged_is_finished_scoring_zero_and_the_search_is_not_widened_past_its_rate(tmp_path):
    from experiments.grids import Grid, Variant
    from experiments.tuning import widen

    (tmp_path / "g-lr").mkdir()
    (tmp_path / "g-lr" / "grid.json").write_text(json.dumps({"grid": "g-lr", "reference": "a@lr0.1"}))
    nan = "Diverged: loss is nan at epoch 2 step 6"  # what experiments.trainer.Diverged records
    for seed in (0, 1):
        _search_run(tmp_path, "a@lr0.1", seed, 60.0)
        _search_run(tmp_path, "a@lr0.2", seed, 70.0)
        _search_run(tmp_path, "a@lr0.4", seed, 50.0, "failed", reason=nan)  # its last validation score is not used
        _search_run(tmp_path, "b@lr0.1", seed, 61.0)
        _search_run(tmp_path, "b@lr0.2", seed, 65.0)
        _search_run(tmp_path, "b@lr0.4", seed, 80.0, *(("failed",) if seed else ()), reason=nan)  # one seed of two
        _search_run(tmp_path, "c@lr0.1", seed, 61.0)
        _search_run(tmp_path, "c@lr0.2", seed, 65.0)
        _search_run(tmp_path, "c@lr0.4", seed, 80.0, *(("failed",) if seed else ()), reason="RuntimeError: disk full")
    grid = Grid("g", "test", "a", {name: Variant("m") for name in "abc"})
    chosen = choose_learning_rates(tmp_path, grid, (0.1, 0.2, 0.4), 2)
    assert chosen["a"] == {"lr": 0.2, "val_top1": {"0.1": 60.0, "0.2": 70.0, "0.4": 0.0}, "runs": {"0.1": 2, "0.2": 2, "0.4": 2},
                           "diverged": {"0.4": 2}}
    assert chosen["b"]["lr"] == 0.2 and chosen["b"]["val_top1"]["0.4"] == 40.0 and chosen["b"]["diverged"] == {"0.4": 1}
    assert "c" not in chosen  # a failure of another kind still waits for --retry-failed
    assert widen((0.1, 0.2, 0.4), chosen, (0.1, 0.2)) is None  # 0.2 is interior: the rate above it was searched


def test_a_search_that_does_not_choose_every_network_says_why_writes_nothing_and_removes_an_older_choice(tmp_path):
    from experiments.grids import Grid, Variant
    from experiments.tuning import settle, why_unchosen

    rows = [{"variant": "a@lr0.1", "status": "ok"}, {"variant": "b@lr0.1", "status": "failed"},
            {"variant": "c@lr0.1", "status": "running"}, {"variant": "d@lr0.1", "status": "todo"},
            {"variant": "e@lr0.1", "status": "ok"}, {"variant": "f@lr0.1", "status": "running"},
            {"variant": "f@lr0.2", "status": "failed", "reason": "Diverged: loss is nan at epoch 2 step 5"}]
    assert why_unchosen(rows, {"a": {}}) == {  # f's diverged run is finished: f waits on its running one
        "b": "a search run failed (rerun with --retry-failed)", "c": "a search run is training in another process",
        "d": "search runs not finished yet", "e": "its search runs have no validation top-1",
        "f": "a search run is training in another process"}
    grid = Grid("g", "test", "a", {"a": Variant("m"), "b": Variant("m")})
    for seed in (0, 1):
        _search_run(tmp_path, "a@lr0.1", seed, 60.0)
        _search_run(tmp_path, "b@lr0.1", seed, 60.0, "failed" if seed else "ok")
    (tmp_path / "g-lr" / "grid.json").write_text(json.dumps({"grid": "g-lr", "reference": "a@lr0.1"}))
    write_choice(tmp_path, grid, "cpu", {"a": {"lr": 0.1}, "b": {"lr": 0.1}})  # an older, complete choice
    rows = [{"variant": f"{v}@lr0.1", "status": "failed" if (v, seed) == ("b", 1) else "ok"}
            for v in "ab" for seed in (0, 1)]
    chosen, unchosen, wider = settle(tmp_path, grid, rows, (0.1,), 2, "cpu")
    assert set(chosen) == {"a"} and set(unchosen) == {"b"} and wider is None
    assert not (tmp_path / "g-lr" / "chosen.json").exists()  # neither the partial choice nor the older one


def test_a_best_rate_at_an_edge_widens_the_search_for_every_network_up_to_the_cap():
    from experiments.tuning import widen

    first = (0.025, 0.05, 0.1, 0.2)
    assert widen(first, {"a": {"lr": 0.1}, "b": {"lr": 0.05}}, first) is None  # bracketed: nothing to widen
    assert widen(first, {"a": {"lr": 0.2}, "b": {"lr": 0.05}}, first) == (0.025, 0.05, 0.1, 0.2, 0.4)
    assert widen(first, {"a": {"lr": 0.2}, "b": {"lr": 0.025}}, first) == (0.0125, 0.025, 0.05, 0.1, 0.2, 0.4)
    widened = (0.025, 0.05, 0.1, 0.2, 0.4)
    assert widen(widened, {"a": {"lr": 0.4}}, first) == (*widened, 0.8)  # still an edge: widened again
    capped = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    assert widen(capped, {"a": {"lr": 1.6}}, first) is None  # LR_EXTENSIONS (3) a side: the edge stays, named the cap
    assert widen(widened, {"a": {"lr": 0.4}, "b": {"lr": 0.025}}, first) == (0.0125, *widened, 0.8)
    assert widen((0.0125, *widened), {"a": {"lr": 0.0125}}, first) == (0.00625, 0.0125, *widened)
    assert widen((0.2, 0.4, 0.8), {"a": {"lr": 0.8}}, (0.2, 0.4, 0.8)) == (0.2, 0.4, 0.8, 1.6)  # the grid's own step
    assert widen((0.999999, 1.0), {"a": {"lr": 1.0}}, (0.999999, 1.0)) is None  # a step lost to rounding: nothing


def test_settle_writes_no_choice_at_an_edge_until_the_widened_search_has_finished(tmp_path):
    from experiments.grids import Grid, Variant
    from experiments.tuning import settle

    grid = Grid("g", "test", "a", {"a": Variant("m"), "b": Variant("m")})
    for seed in (0, 1):
        for network, scores in {"a": (55.0, 60.0, 65.0), "b": (58.0, 63.0, 61.0)}.items():
            for lr, score in zip(("0.05", "0.1", "0.2"), scores, strict=True):
                _search_run(tmp_path, f"{network}@lr{lr}", seed, score)
    (tmp_path / "g-lr" / "grid.json").write_text(json.dumps({"grid": "g-lr", "reference": "a@lr0.1"}))
    write_choice(tmp_path, grid, "cpu", {"a": {"lr": 0.1}, "b": {"lr": 0.1}})  # an older choice
    rows = [{"variant": f"{n}@lr{lr}", "status": "ok"} for n in "ab" for lr in ("0.05", "0.1", "0.2") for _ in (0, 1)]
    chosen, unchosen, wider = settle(tmp_path, grid, rows, (0.05, 0.1, 0.2), 2, "cpu")
    assert chosen["a"]["lr"] == 0.2 and not unchosen and wider == (0.05, 0.1, 0.2, 0.4)  # a's best: the top edge
    assert not (tmp_path / "g-lr" / "chosen.json").exists()  # nor the older choice: ablate must wait
    for seed in (0, 1):
        _search_run(tmp_path, "a@lr0.4", seed, 64.0)
        _search_run(tmp_path, "b@lr0.4", seed, 50.0)
    rows += [{"variant": f"{n}@lr0.4", "status": "ok"} for n in "ab" for _ in (0, 1)]
    chosen, unchosen, wider = settle(tmp_path, grid, rows, (0.05, 0.1, 0.2, 0.4), 2, "cpu", (0.05, 0.1, 0.2))
    assert {n: c["lr"] for n, c in chosen.items()} == {"a": 0.2, "b": 0.1} and wider is None
    assert read_choice(tmp_path, grid, "cpu") == {"a": 0.2, "b": 0.1}
    assert chosen["a"]["val_top1"] == {"0.05": 55.0, "0.1": 60.0, "0.2": 65.0, "0.4": 64.0}


def test_a_search_widened_before_resumes_at_its_widest_without_removing_its_choice(tmp_path):
    from experiments.grids import Grid, Variant
    from experiments.tuning import search_bracketed

    grid = Grid("g", "test", "a", {"a": Variant("engine_test_net"), "b": Variant("engine_test_net")})
    scores = {"a": {"0.05": 55.0, "0.1": 60.0, "0.2": 65.0, "0.4": 64.0}, "b": {"0.05": 58.0, "0.1": 63.0, "0.2": 61.0,
                                                                             "0.4": 50.0}}
    for seed in (0, 1):  # every run of the search, widened to 0.4 by an earlier process, has finished
        for network, by_rate in scores.items():
            for lr, score in by_rate.items():
                _search_run(tmp_path, f"{network}@lr{lr}", seed, score, protocol="smoke")
    (tmp_path / "g-lr" / "grid.json").write_text(json.dumps({"grid": "g-lr", "reference": "a@lr0.1"}))
    write_choice(tmp_path, grid, "smoke", {"a": {"lr": 0.2}, "b": {"lr": 0.1}})
    rounds = []

    def train(search, configs, missing):  # what a new process would train: nothing is left to train
        rounds.append(sorted({c.variant for c in configs}))
        assert read_choice(tmp_path, grid, "smoke") == {"a": 0.2, "b": 0.1}  # never removed on the way
        return [{"variant": c.variant, "status": "ok"} for c in configs]

    widenings = []
    _, _, chosen, unchosen = search_bracketed(grid, "smoke", (0.05, 0.1, 0.2), 2, tmp_path, train, ("conftest",),
                                              lambda searched, wider: widenings.append((searched, wider)))
    assert widenings == [((0.05, 0.1, 0.2), (0.05, 0.1, 0.2, 0.4))]  # the resumed widening is announced
    assert rounds == [[f"{n}@lr{lr}" for n in "ab" for lr in ("0.05", "0.1", "0.2", "0.4")]]  # one round, widest
    assert not unchosen and {n: c["lr"] for n, c in chosen.items()} == {"a": 0.2, "b": 0.1}
    recorded = json.loads((tmp_path / "g-lr" / "chosen.json").read_text())  # where the search started: the cap's base
    assert recorded["first_candidates"] == [0.05, 0.1, 0.2]
    with pytest.raises(ValueError, match="repeat a rate"):
        search_bracketed(grid, "smoke", (0.1, 0.2, 0.2), 2, tmp_path, train, ("conftest",))


@pytest.mark.parametrize(("reasons", "boxed", "expected"), [
    (("search runs not finished yet", "a search run is training in another process"), True, None),  # ended by its box
    (("a search run is training in another process",), False, False),  # asked to finish, and could not
    (("search runs not finished yet", "a search run failed (rerun with --retry-failed)"), True, False)])
def test_tune_under_a_time_box_is_no_failure_where_runs_are_unfinished_or_trained_elsewhere(
        tmp_path, monkeypatch, reasons, boxed, expected):
    from experiments import runs, tuning

    grid = get_grid("p-sweep")  # nothing trains: the search is replaced by its outcome
    unchosen = {f"net{i}": why for i, why in enumerate(reasons)}
    monkeypatch.setattr(tuning, "search_bracketed", lambda *a, **k: (tuning_grid(grid), [], {}, unchosen))
    options = runs.RunOptions(wandb="off", deadline=1e12 if boxed else None)
    assert runs.tune(grid.name, protocol="smoke", candidates=(0.1, 0.2), seeds=1, results=tmp_path,
                     options=options) is expected
