"""The mouth editor: sets the mouth of a generated latent frame to the mouth track's values.

Interface: `MouthEditor(cfg)(z, mouth, emotion) -> z'`, z (N, c, h, w) scaled VAE latents of whole
frames, mouth (N, 3) target jaw open, lip width and lip rounding (`MOUTH_PARAMS`, the world's
normalised units), emotion (N, emotion_dim) the frame's emotion weights (read only with
`mouth_edit.emotion`: smile and sneer sit in the window, and a noisy latent alone does not say
how strong they are); z' = z + a residual that is zero at initialisation (an untrained editor
changes nothing) and zero outside the mouth window (`mouth_edit.window`, `cfg.mouth_window`),
the lower-middle quarter of the frame: the editor sees and changes only that crop.

Why a separate stage: the DiT is asked to find the mouth from a flow loss in which the mouth is a
few percent of the latents, and four training routes left its lip sync at ~0.71 while the mouth
track reads the jaw from audio at r ~0.85 (docs/training.md, sessions 9-12). Audio-driven talking
-head systems that need exact sync edit the mouth region in the generator's latent space from the
audio (LatentSync, MuseTalk: latent mouth inpainting); here the edit is conditioned on the track's
three mouth parameters rather than on audio features, so it is a small local regression: learn
what a frame with this face, pose and expression looks like with *that* mouth.

It is trained on counterfactual renders of the synthetic world (`npc-runtime train editor`,
train/editor.py): the same frame rendered with several mouths, so the target differs from the
input only by the mouth and the loss can be focused there.

Shape: a small U-Net over the window of one frame (16x16 latent -> 8x8 and back), FiLM-
conditioned on the mouth at every block, so the mouth values steer every feature map and the
receptive field at 8x8 (~26 latent pixels) covers the whole window: where the mouth is in it
depends on head pose. Session 13's editor worked on the whole frame at 4-7 ms a frame on this
CPU, which left the stream no margin over real time, and its edits reached the head (nods fell
below silence's rate): the window removes the cost and two thirds of those nods
(docs/training.md, "Session 14").
"""

from __future__ import annotations

import torch

from npc_runtime.config import ModelConfig
from npc_runtime.model.audio import MOUTH_PARAMS, audio_window_samples
from npc_runtime.model.latent_edit import LatentEditor


class MouthEditor(LatentEditor):
    def __init__(self, cfg: ModelConfig) -> None:
        e = cfg.mouth_edit
        emotion_dim = cfg.emotion_dim if e.emotion else 0
        super().__init__(cfg.vae.latent_channels, len(MOUTH_PARAMS) + emotion_dim,
                         e.channels, e.hidden, e.blocks, cfg.mouth_window)
        self.emotion_dim = emotion_dim

    def _cond(self, mouth: torch.Tensor, emotion: torch.Tensor | None) -> torch.Tensor:
        """mouth (..., 3), emotion (..., E) or None -> the U-Net's condition (..., cond_dim)."""
        if not self.emotion_dim:    # an editor without mouth_edit.emotion ignores the weights
            return mouth
        if emotion is None or emotion.shape != (*mouth.shape[:-1], self.emotion_dim):
            got = None if emotion is None else tuple(emotion.shape)
            raise ValueError(f"mouth editor (mouth_edit.emotion): emotion weights "
                             f"(N, {self.emotion_dim}) needed, got {got}")
        return torch.cat([mouth, emotion.to(mouth.dtype)], dim=-1)

    def forward(self, z: torch.Tensor, mouth: torch.Tensor,
                emotion: torch.Tensor | None = None) -> torch.Tensor:
        n_mouth = len(MOUTH_PARAMS)
        if z.ndim != 4 or mouth.shape != (z.shape[0], n_mouth):
            raise ValueError(f"mouth editor: z (N, c, h, w) and mouth (N, {n_mouth}), got "
                             f"{tuple(z.shape)} and {tuple(mouth.shape)}")
        return self.edit(z, self._cond(mouth, emotion))

    def frames(self, z: torch.Tensor, mouth: torch.Tensor, emotion: torch.Tensor | None = None,
               gate: torch.Tensor | None = None) -> torch.Tensor:
        """Chunks: z (B, F, c, h, w), mouth (B, F, 3), emotion (B, F, E) or None, gate (B, F)
        in [0, 1] or None (edit every frame) -> z + gate * (edit(z) - z), (B, F, c, h, w).
        Frames with gate 0 are returned as they came and cost nothing."""
        if mouth.shape != (*z.shape[:2], len(MOUTH_PARAMS)):
            raise ValueError(f"mouth editor: mouth (B, F, {len(MOUTH_PARAMS)}) for z "
                             f"{tuple(z.shape)}, got {tuple(mouth.shape)}")
        return self.gated(z, self._cond(mouth, emotion), gate)


def speech_gate(cfg: ModelConfig, windows: torch.Tensor) -> torch.Tensor:
    """SPEAK chunk windows (B, n_chunks, Sw) -> each chunk frame's edit weight (B, n_chunks * C)
    in {0, 0.5, 1}: the number of frames within `mouth_edit.gate_frames` of it whose audio RMS
    exceeds `mouth_edit.gate_rms`, halved and capped at 1. Reads only the window (the stream's
    history and lookahead), so the gate is as causal as the audio tokens."""
    a, c, e = cfg.audio, cfg.stream.chunk_frames, cfg.mouth_edit
    spf = cfg.samples_per_frame
    b, n, s = windows.shape
    if s != audio_window_samples(cfg):
        raise ValueError(f"speech gate: windows of {audio_window_samples(cfg)} samples needed, "
                         f"got {s}")
    slots = a.history_frames + c + a.lookahead_frames
    # The window opens with the first mel frame's lead-in (audio_span); then a frame per slot.
    pcm = windows[..., s - slots * spf:].reshape(b, n, slots, spf)
    loud = (pcm.float().square().mean(-1).sqrt() > e.gate_rms).float()     # (B, n, slots)
    k = e.gate_frames
    # Frame f of the chunk is slot history + f; its span is slots history + f - k .. + k.
    span = loud.unfold(2, 2 * k + 1, 1)[:, :, a.history_frames - k:a.history_frames - k + c]
    return (span.sum(-1) / 2).clamp(max=1.0).reshape(b, n * c)
