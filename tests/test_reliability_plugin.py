"""A model plugin for the Ray reliability test (imported by Ray workers through ``--import``-style plugins).

``reliability_kill_net`` is conftest's TinyNet that SIGKILLs its own process on the second training
step of epoch 2 (after the epoch-1 checkpoint): ``kill="once"`` the first time only, ``kill="always"``
every time. Each kill leaves a marker ``<tag>-kill-<n>`` in ``marker_dir`` first. No tests here.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import timm
import torch

from conftest import TinyNet


class KillNet(TinyNet):
    def __init__(self, marker_dir: str = "", tag: str = "", kill: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.marker_dir, self.tag, self.kill, self.epoch, self.epoch_steps = Path(marker_dir), tag, kill, 0, 0

    def set_epoch(self, epoch: int, num_epochs: int) -> None:
        super().set_epoch(epoch, num_epochs)
        self.epoch, self.epoch_steps = epoch, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.epoch_steps += 1
            if self.kill and self.epoch == 1 and self.epoch_steps == 2:
                done = len(list(self.marker_dir.glob(f"{self.tag}-kill-*")))
                if self.kill == "always" or done == 0:
                    (self.marker_dir / f"{self.tag}-kill-{done + 1}").touch()
                    os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


if not timm.is_model("reliability_kill_net"):
    @timm.models.register_model
    def reliability_kill_net(pretrained: bool = False, **kwargs) -> KillNet:
        return KillNet(**kwargs)
