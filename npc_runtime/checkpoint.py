"""Checkpoints: `model.safetensors` (weights) + `model.yaml` (config and provenance).

Loading checks the file against the config: every missing, unexpected or mis-shaped tensor is
named in one error, and a corrupt file is reported as such — never a silently wrong model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from npc_runtime.config import ModelConfig, config_from_dict, config_to_dict

WEIGHTS, META = "model.safetensors", "model.yaml"


class CheckpointError(ValueError):
    """A checkpoint that does not match its model, or cannot be read."""


def save_checkpoint(directory: str | Path, model: torch.nn.Module, cfg: ModelConfig,
                    trained: bool, info: dict[str, Any] | None = None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(directory / WEIGHTS)
    meta = {"config": config_to_dict(cfg), "trained": bool(trained), "info": info or {}}
    (directory / META).write_text(yaml.safe_dump(meta, sort_keys=False))
    return directory


def read_meta(directory: str | Path) -> tuple[ModelConfig, bool, dict[str, Any]]:
    path = Path(directory) / META
    if not path.is_file():
        raise CheckpointError(f"no {META} in checkpoint directory {directory}")
    try:
        meta = yaml.safe_load(path.read_text())
        cfg = config_from_dict(meta["config"])
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint config: {exc}") from exc
    return cfg, bool(meta.get("trained", False)), dict(meta.get("info") or {})


def load_weights(directory: str | Path, model: torch.nn.Module) -> None:
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"no {WEIGHTS} in checkpoint directory {directory}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable safetensors file: {exc}") from exc
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected))
                  if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors (e.g. {', '.join(unexpected[:5])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:5])})")
    if problems:
        raise CheckpointError(f"{path} does not match the model config: " + "; ".join(problems))
    model.load_state_dict(state)
