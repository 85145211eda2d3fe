"""Optional wandb tracking: one wandb run per training run; failures only ever warn."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from evidence.status import RunStatus

from .config import RunConfig, WandbMode

log = logging.getLogger(__name__)


class Tracker:
    """Logs epochs and the result to wandb (``mode`` off | offline | online); never raises."""

    def __init__(self, mode: WandbMode, cfg: RunConfig, run_dir: Path) -> None:
        self.run = None
        if mode == "off":
            return
        try:
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.run = wandb.init(
                project=os.environ.get("WANDB_PROJECT", "dyclot"), group=cfg.grid, job_type=cfg.variant,
                name=f"{cfg.grid}/{cfg.variant}/seed{cfg.seed}", id=cfg.run_id, resume="allow",
                config=cfg.model_dump(mode="json"), dir=os.environ.get("WANDB_DIR") or str(run_dir), mode=mode,
                reinit="create_new", settings=wandb.Settings(init_timeout=60, console="off"))
        except Exception as error:  # noqa: BLE001 -- no network, no login, bad install: training goes on
            log.warning("wandb disabled for run %s: %s", cfg.run_id, str(error).splitlines()[0] if str(error) else error)
            self.run = None

    def log(self, metrics: dict) -> None:
        self._call(lambda: self.run.log({k: v for k, v in metrics.items() if v is not None}, step=metrics["epoch"]))

    def finish(self, result: dict) -> None:
        def finish() -> None:
            self.run.summary.update({"status": result["status"], "reason": result["reason"],
                                     **{k: v for k, v in result["metrics"].items() if v is not None},
                                     **{k: v for k, v in (result.get("cost") or {}).items() if v is not None}})
            self.run.finish(exit_code=0 if result["status"] == RunStatus.OK else 1)
        self._call(finish)
        self.run = None

    def _call(self, action) -> None:
        if self.run is None:
            return
        try:
            action()
        except Exception as error:  # noqa: BLE001 -- wandb never fails a run
            log.warning("wandb call failed (ignored): %s", error)
