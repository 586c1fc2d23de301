"""Training and distillation: VAE -> Base LPM (bidirectional flow matching) -> Online LPM
(causal few-step student: ODE-pair regression, then Self-Forcing rollouts against the teacher).

`npc-runtime train vae|base|online --config configs/train/X.yaml --out runs/X [--resume]`;
the recipe and measured results are in docs/training.md.
"""

from __future__ import annotations

import importlib

from npc_runtime.train.config import TrainConfig, load_train_config, smoke

# stage name -> "module:Class" (imported lazily: the CLI need not load every stage).
STAGES = {"vae": "npc_runtime.train.vae:VAEStage",
          "base": "npc_runtime.train.base:BaseStage",
          "online": "npc_runtime.train.online:OnlineStage"}


def stage_class(name: str):
    module, cls = STAGES[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["STAGES", "TrainConfig", "load_train_config", "smoke", "stage_class"]
