"""`ablate --until-decided`: looks decided from the run files, resumable without counting a seed twice."""
from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from evidence.decisions import decide
from evidence.load import load_results
from evidence.sequential import plan_looks
from experiments.until_decided import SequentialDesign, final_states, looks

GRID, PROTOCOL = "g", "cpu"


def decide_and_train(grid, reference, variants, protocol, results, max_seeds, margin, train) -> dict[str, dict]:
    """The engine's flow (``runs.ablate_until_decided``) with ``train(seeds, open_variants)`` as the training."""
    design = SequentialDesign(grid=grid, reference=reference, variants=tuple(variants), protocol=protocol,
                              margin=margin, max_seeds=max_seeds)
    for look in looks(design, results):
        train(look.seeds, list(look.open_variants))
    return final_states(design, results)


def write_run(root: Path, variant: str, seed: int, top1: float, engine_version: int = 2) -> None:
    run_dir = root / GRID / f"{variant}-{seed:04d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (root / GRID / "grid.json").write_text(json.dumps({"grid": GRID, "reference": "ref", "paired": True}))
    (run_dir / "config.json").write_text(json.dumps({"variant": variant, "seed": seed, "engine_version": engine_version}))
    (run_dir / "result.json").write_text(json.dumps({
        "run_id": run_dir.name, "grid": GRID, "variant": variant, "seed": seed, "model": "m", "dataset": "d",
        "protocol": PROTOCOL, "status": "ok", "reason": None, "metrics": {"test_top1": top1},
        "cost": {"params": 1, "macs": 1, "latency_ms": 1.0}}))


class Trainer:
    """Stands in for the engine: 'trains' seeds by writing their result files; counts every run trained."""

    def __init__(self, root: Path, effects: dict[str, float], sd: float = 1.0, die_after: int | None = None):
        self.root, self.effects, self.sd, self.die_after = root, effects, sd, die_after
        self.trained: list[tuple[str, int]] = []

    def __call__(self, n: int, open_variants: list[str]) -> None:
        for seed in range(n):
            for variant in ["ref", *open_variants]:
                if (self.root / GRID / f"{variant}-{seed:04d}").exists():
                    continue  # finished before: never trained twice
                if self.die_after is not None and len(self.trained) >= self.die_after:
                    raise KeyboardInterrupt("killed mid-look")
                noise = np.random.default_rng([seed, zlib.crc32(variant.encode())]).normal(0, self.sd)
                write_run(self.root, variant, seed, 70.0 + self.effects.get(variant, 0.0) + noise)
                self.trained.append((variant, seed))


def test_a_large_effect_stops_early_and_no_effect_goes_on(tmp_path):
    """O'Brien-Fleming spending leaves almost no alpha to the 3-seed look: even a 6-point effect waits
    for the second look (5 seeds), then stops."""
    schedule = plan_looks(12)
    assert schedule == (3, 5, 8, 12)
    trainer = Trainer(tmp_path, {"big": 6.0, "none": 0.0}, sd=0.3)
    trainer(schedule[1], ["big", "none"])
    states = decide(load_results(tmp_path), GRID, PROTOCOL, "ref", ["big", "none"], schedule, 0.5, 2)
    assert states["big"]["label"] == "better" and states["big"]["look"] == 2 and states["big"]["n"] == 5
    assert states["none"]["label"] == "continue" and states["none"]["look"] == 2


def test_an_older_engines_runs_never_decide_a_look_even_before_a_newer_run_finishes(tmp_path):
    for seed in range(5):  # engine version 1's seeds would decide look 2; no run of this version has finished
        write_run(tmp_path, "ref", seed, 70.0, engine_version=1)
        write_run(tmp_path, "big", seed, 76.0 + 0.1 * seed, engine_version=1)
    states = decide(load_results(tmp_path), GRID, PROTOCOL, "ref", ["big"], plan_looks(12), 0.5, 2)
    assert states["big"]["label"] == "continue" and states["big"]["look"] == 0  # nothing to decide from yet


def test_looks_train_only_open_variants_and_resume_only_open_variants_and_resumes_after_a_kill(tmp_path):
    effects = {"big": 6.0, "none": 0.0}
    killed = Trainer(tmp_path, effects, sd=0.3, die_after=8)
    with pytest.raises(KeyboardInterrupt):
        decide_and_train(GRID, "ref", ["big", "none"], PROTOCOL, tmp_path, 12, 0.5, killed)
    resumed = Trainer(tmp_path, effects, sd=0.3)
    states = decide_and_train(GRID, "ref", ["big", "none"], PROTOCOL, tmp_path, 12, 0.5, resumed)
    runs = killed.trained + resumed.trained
    assert len(runs) == len(set(runs))  # no seed trained twice
    assert states["big"]["label"] == "better" and states["big"]["look"] == 2
    assert {seed for v, seed in runs if v == "big"} == set(range(5))  # decided at look 2: no more seeds
    assert states["none"]["look"] >= 3 and {seed for v, seed in runs if v == "none"} == set(range(states["none"]["n"]))
    if states["none"]["label"].startswith("inconclusive"):
        assert "paired seeds per variant would detect 0.5 points with 80% power" in states["none"]["to_decide"]
    recorded = json.loads((tmp_path / GRID / "sequential.json").read_text())
    assert recorded["schedule"] == list(plan_looks(12)) and recorded["variants"]["big"]["label"] == "better"
    again = Trainer(tmp_path, effects, sd=0.3)
    assert decide_and_train(GRID, "ref", ["big", "none"], PROTOCOL, tmp_path, 12, 0.5, again) == states
    assert again.trained == []  # a rerun of a finished procedure trains nothing and repeats no look


def test_a_look_names_its_open_comparisons_furthest_from_stopping_first(tmp_path):
    """The order the next look's seeds train ahead in (``runs.run_grid_command``'s spares): the comparison likeliest
    to need them first. Look 1 of three (alpha split three ways) stops none of them."""
    from experiments.until_decided import distance_from_stopping

    Trainer(tmp_path, {"big": 6.0, "mid": 1.5, "none": 0.0}, sd=0.3)(3, ["big", "mid", "none"])
    design = SequentialDesign(grid=GRID, reference="ref", variants=("big", "mid", "none"), protocol=PROTOCOL,
                              margin=0.5, max_seeds=12)
    states = design.states(tmp_path)
    assert {s["label"] for s in states.values()} == {"continue"} and {s["look"] for s in states.values()} == {1}
    distance = {v: distance_from_stopping(s) for v, s in states.items()}
    assert distance["none"] > distance["mid"] > distance["big"] > 1  # p (or TOST p) over its level: none stopped
    assert next(looks(design, tmp_path)).open_variants == ("none", "mid", "big")
    assert distance_from_stopping({"label": "continue", "look": 0, "n": 0}) == float("inf")  # before the first look


def test_a_procedure_stopped_mid_look_leaves_its_state_in_sequential_json(tmp_path):
    """A process killed while a look trains (every session's end on the CPU) has recorded where each
    comparison stood, so that the report can say so before the procedure ends."""
    path = tmp_path / GRID / "sequential.json"
    with pytest.raises(KeyboardInterrupt):  # look 1 (3 seeds x 3 networks) trains, then look 2 is killed
        decide_and_train(GRID, "ref", ["big", "none"], PROTOCOL, tmp_path, 12, 0.5,
                          Trainer(tmp_path, {"big": 6.0, "none": 0.0}, sd=0.3, die_after=11))
    recorded = json.loads(path.read_text())
    assert recorded["schedule"] == [3, 5, 8, 12] and recorded["reference"] == "ref"
    assert {v: (s["label"], s["look"], s["n"]) for v, s in recorded["variants"].items()} == {
        "big": ("continue", 1, 3), "none": ("continue", 1, 3)}  # look 1 decided nothing; look 2 was training
    assert "ci" in recorded["variants"]["big"]


def test_a_variant_without_ok_pairs_is_stopped_and_said_so(tmp_path):
    def train(n, open_variants):
        for seed in range(n):
            write_run(tmp_path, "ref", seed, 70.0)
    states = decide_and_train(GRID, "ref", ["broken"], PROTOCOL, tmp_path, 5, 0.5, train)
    assert states["broken"]["label"].startswith("stopped before look 1: a seed of it or of the reference has no ok run")


def test_seeds_to_decide_plans_with_the_sd_upper_bound():
    from evidence.decisions import seeds_to_decide

    text = seeds_to_decide(np.array([1.0, -1.0, 0.5, -0.5, 0.0]), 0.5, 2)
    assert text.startswith("about 61 paired seeds") and "alpha 0.05/2" in text and "upper bound 1.23)" in text


def test_a_recorded_design_is_kept_and_another_one_is_refused_naming_both(tmp_path):
    """The boundaries depend on the whole schedule: a rerun with another --max-seeds (or margin) after the first
    look would re-decide the looks already made at other levels, so it is refused before anything trains."""
    trainer = Trainer(tmp_path, {"none": 0.0}, sd=0.3, die_after=6)
    with pytest.raises(KeyboardInterrupt):  # look 1 trained and recorded, look 2 killed
        decide_and_train(GRID, "ref", ["none"], PROTOCOL, tmp_path, 12, 0.5, trainer)
    before = (tmp_path / GRID / "sequential.json").read_text()
    for max_seeds, margin, named in ((40, 0.5, "schedule [3, 5, 8, 12]"), (12, 1.0, "margin 0.5")):
        idle = Trainer(tmp_path, {"none": 0.0})
        with pytest.raises(ValueError, match=r"records a sequential design with .*" + re.escape(named)) as err:
            decide_and_train(GRID, "ref", ["none"], PROTOCOL, tmp_path, max_seeds, margin, idle)
        assert "--max-seeds 12 --margin 0.5" in str(err.value)
        assert idle.trained == [] and (tmp_path / GRID / "sequential.json").read_text() == before
    resumed = Trainer(tmp_path, {"none": 0.0}, sd=0.3)
    assert decide_and_train(GRID, "ref", ["none"], PROTOCOL, tmp_path, 12, 0.5, resumed)["none"]["look"] >= 2


def test_alpha_is_split_over_the_compared_variants_only(tmp_path):
    """A variant of the grid that is not compared (trained or not) takes no share of alpha."""
    from evidence.sequential import nominal_levels

    trainer = Trainer(tmp_path, {"big": 6.0, "other": 0.0}, sd=0.3)
    trainer(5, ["big", "other"])  # the grid holds runs of "other" too
    alone = decide_and_train(GRID, "ref", ["big"], PROTOCOL, tmp_path, 12, 0.5, Trainer(tmp_path, {}))
    assert alone["big"]["boundary"] == pytest.approx(nominal_levels(plan_looks(12), n_comparisons=1)[1][1])
    both = decide(load_results(tmp_path), GRID, PROTOCOL, "ref", ["big", "other"], plan_looks(12), 0.5, 2)
    assert both["big"]["boundary"] == pytest.approx(nominal_levels(plan_looks(12), n_comparisons=2)[1][1])
    assert both["big"]["boundary"] < alone["big"]["boundary"]
