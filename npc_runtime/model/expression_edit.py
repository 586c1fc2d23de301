"""An expression editor: redraw a sampled frame's expression as its emotion tag asks.

Interface: `ExpressionEditor(cfg)`, the latent editor (model/latent_edit.py) over the face's
window (`expression_edit.window`), conditioned on a frame's emotion weights (the designer's
tags as the request gave them, not the DiT's gained ones):
- `forward(z (N, c, h, w), weights (N, E), reference (N, c, h, w) | None) -> z'` edits every
  frame;
- `frames(z (B, F, c, h, w), weights (B, F, E), reference (B, c, h, w) | None)` edits the frames
  tagged with any non-neutral weight (`expressive`) and passes the neutral ones untouched, at
  no cost.
`reference`: with `expression_edit.reference`, the scaled latent of the NPC's first reference
image (its resting face), whose window the editor sees beside the frame's; None otherwise.

Why: distilled to two steps, the student draws the tagged emotions weaker than its teacher or
as another one (angry as happy, fearful as surprised: docs/training.md, sessions 18 and 21),
and a gain on the emotion's conditioning that makes them readable pulls the likeness below its
bar too, since it moves everything the AdaLN modulates. The editor sees only the face's window
and is trained (train/expression_edit.py) to redraw the expression from whatever the latent
holds while keeping the rest of the frame, so the likeness, pose and mouth stay the DiT's.
Like the mouth and nod editors' frames, its frames are shown but never committed to the KV
cache: the DiT streams exactly as without it.
"""

from __future__ import annotations

import torch

from npc_runtime.config import ModelConfig
from npc_runtime.model.latent_edit import LatentEditor


def expressive(weights: torch.Tensor) -> torch.Tensor:
    """Emotion weights (..., E) -> bool (...): any non-neutral weight (the vocabulary's neutral
    is its first tag)."""
    return (weights[..., 1:] > 0).any(-1)


class ExpressionEditor(LatentEditor):
    def __init__(self, cfg: ModelConfig) -> None:
        x = cfg.expression_edit
        super().__init__(cfg.vae.latent_channels, cfg.emotion_dim, x.channels, x.hidden,
                         x.blocks, cfg.expression_window,
                         cfg.vae.latent_channels if x.reference else 0)

    def forward(self, z: torch.Tensor, weights: torch.Tensor,
                reference: torch.Tensor | None = None) -> torch.Tensor:
        """z (N, c, h, w), emotion weights (N, E), reference latents (N, c, h, w) where the
        editor takes one -> z with the face's expression redrawn."""
        return self.edit(z, weights, reference)

    def frames(self, z: torch.Tensor, weights: torch.Tensor,
               reference: torch.Tensor | None = None) -> torch.Tensor:
        """Chunks z (B, F, c, h, w), weights (B, F, E), reference (B, c, h, w) where the editor
        takes one -> the tagged frames redrawn; frames tagged neutral as they came."""
        if weights.shape[:2] != z.shape[:2] or weights.shape[2:] != (self.cond_dim,):
            raise ValueError(f"expression editor: weights (B, F, {self.cond_dim}) with (B, F) = "
                             f"{tuple(z.shape[:2])} needed, got {tuple(weights.shape)}")
        extra = None
        if reference is not None:
            if reference.shape != (z.shape[0], *z.shape[2:]):
                raise ValueError(f"expression editor: reference (B, c, h, w) = "
                                 f"{(z.shape[0], *z.shape[2:])} needed, got "
                                 f"{tuple(reference.shape)}")
            extra = reference[:, None].expand(z.shape)
        weights = weights.to(z.dtype)
        return self.gated(z, weights, expressive(weights).to(z.dtype), extra)
