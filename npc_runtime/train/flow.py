"""Flow-matching pieces shared by the Base and Online stages.

Convention (as `npc_runtime.sampler`): x_t = (1 - t) x0 + t noise, v = noise - x0, t = 1 is
noise. `ConditionedVelocity` is the LPM's velocity as one module call (identity sink + audio +
emotion + mask), which is what DistributedDataParallel wraps. Condition dropout zeroes the
audio *tokens* (a null condition distinct from silence, which is a real input) and the emotion
weights (distinct from one-hot neutral); `guided` applies classifier-free guidance with the
same nulls.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from npc_runtime.checkpoint import load_weights, read_meta
from npc_runtime.config import ModelConfig
from npc_runtime.model.dit import ChunkContext
from npc_runtime.model.lpm import LPM
from npc_runtime.model.vae import VAE
from npc_runtime.train.data import Clip, to_unit


def sample_t(gen: torch.Generator, n: int, mean: float, std: float) -> torch.Tensor:
    """Logit-normal flow times (SD3): (n,) in (0, 1), concentrated mid-way."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=gen))


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t for per-frame times t (B, F) and latents (B, F, c, h, w)."""
    t = t[..., None, None, None]
    return (1 - t) * x0 + t * noise


@torch.no_grad()
def encode_latents(vae: VAE, frames: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """(B, F, 3, H, W) in [-1, 1] -> scaled VAE latent means (B, F, c, h, w)."""
    flat = frames.flatten(0, 1)
    z = torch.cat([vae.encode(flat[i:i + batch]) for i in range(0, len(flat), batch)])
    return z.view(*frames.shape[:2], *z.shape[1:])


def drop_audio(ctx: ChunkContext, keep: torch.Tensor | None) -> ChunkContext:
    """Null the audio tokens of the samples where keep (B,) is False."""
    if keep is None:
        return ctx
    k = keep.to(ctx.speak.dtype)[:, None, None, None]
    # The mouth track is read from the SPEAK audio: dropped with it.
    mouth = None if ctx.mouth is None else ctx.mouth * k[:, :, 0]
    return replace(ctx, speak=ctx.speak * k, listen=ctx.listen * k, mouth=mouth)


def slice_context(ctx: ChunkContext, first_chunk: int, last_chunk: int, c: int) -> ChunkContext:
    """Chunks [first, last) of a clip's context."""
    return ChunkContext(emotion=ctx.emotion[:, first_chunk * c:last_chunk * c],
                        speak=ctx.speak[:, first_chunk:last_chunk],
                        listen=ctx.listen[:, first_chunk:last_chunk],
                        positions=ctx.positions[:, first_chunk * c:last_chunk * c],
                        mouth=None if ctx.mouth is None
                        else ctx.mouth[:, first_chunk * c:last_chunk * c])


def cat_context(a: ChunkContext, b: ChunkContext) -> ChunkContext:
    """Two contexts laid side by side (the [clean | noisy] teacher-forcing layout)."""
    return ChunkContext(emotion=torch.cat([a.emotion, b.emotion], 1),
                        speak=torch.cat([a.speak, b.speak], 1),
                        listen=torch.cat([a.listen, b.listen], 1),
                        positions=torch.cat([a.positions, b.positions], 1),
                        mouth=None if a.mouth is None else torch.cat([a.mouth, b.mouth], 1))


class Conditioning:
    """Identity sink + chunk context of a clip for one LPM, with optional dropout."""

    def __init__(self, lpm: LPM, clip: Clip, keep_audio: torch.Tensor | None = None,
                 keep_emotion: torch.Tensor | None = None) -> None:
        emotion = clip.emotion if keep_emotion is None else \
            clip.emotion * keep_emotion.to(clip.emotion.dtype)[:, None, None]
        self.sink = lpm.encode_identity(clip.references)
        self.ctx = drop_audio(lpm.context(clip.speak, clip.listen, emotion, clip.positions),
                              keep_audio)

    def null(self, lpm: LPM, clip: Clip) -> "Conditioning":
        """The same clip with audio and emotion dropped (the CFG unconditional branch)."""
        out = object.__new__(Conditioning)
        out.sink = self.sink
        b = clip.frames.shape[0]
        zero = torch.zeros(b, dtype=torch.bool, device=clip.frames.device)
        out.ctx = drop_audio(lpm.context(clip.speak, clip.listen, clip.emotion * 0,
                                         clip.positions), zero)
        return out


class ConditionedVelocity(nn.Module):
    """One call = identity encoding + context + masked velocity (what DDP wraps).

    With a `head` (a training-only module reading the last DiT block's tokens, see
    train/auxiliary.py) the call returns (velocity, head output): both inside one forward, so
    DDP synchronises the head's gradients with the LPM's."""

    def __init__(self, lpm: LPM, head: nn.Module | None = None) -> None:
        super().__init__()
        self.lpm, self.head = lpm, head
        self._tokens: torch.Tensor | None = None
        if head is not None:
            lpm.dit.blocks[-1].register_forward_hook(self._keep_tokens)

    def _keep_tokens(self, module, args, output) -> None:
        self._tokens = output

    def forward(self, clip: Clip, z: torch.Tensor, t: torch.Tensor,
                keep_audio: torch.Tensor | None = None,
                keep_emotion: torch.Tensor | None = None):
        cond = Conditioning(self.lpm, clip, keep_audio, keep_emotion)
        self._tokens = None          # the reference pass also runs the blocks: keep only ours
        v = self.lpm.velocity(z, t, cond.ctx, cond.sink)
        if self.head is None:
            return v
        tokens, self._tokens = self._tokens, None
        return v, self.head(tokens)


class LatentCache:
    """Frozen-VAE latents of whole sessions, by session seed (LRU).

    A session serves hundreds of clips while it is in the sampler's pool; encoding it once
    instead of every clip's frames at every step roughly halves a CPU Base step. Sessions are
    always encoded whole in the same batches, so the latents (and a resumed run) are exact."""

    def __init__(self, vae: VAE, size: int) -> None:
        self.vae, self.size = vae, size
        self._cache: dict[int, torch.Tensor] = {}

    def session(self, seed: int, frames_uint8, device) -> torch.Tensor:
        if seed in self._cache:
            self._cache[seed] = self._cache.pop(seed)          # most recently used last
            return self._cache[seed]
        z = encode_latents(self.vae, to_unit(frames_uint8)[None].to(device))[0]
        self._cache[seed] = z
        while len(self._cache) > self.size:
            self._cache.pop(next(iter(self._cache)))
        return z

    def clip(self, clip: Clip, sessions, n_frames: int) -> torch.Tensor:
        """Latents (B, F, c, h, w) of a batch cut by `Sampler.clips_and_sessions`."""
        device = next(self.vae.parameters()).device
        return torch.stack([self.session(s.seed, s.frames, device)[first:first + n_frames]
                            for s, first in zip(sessions, clip.start_frames)])


def guided(lpm: LPM, cond: Conditioning, null: Conditioning | None, scale: float):
    """-> velocity(z, t (B, F)) with classifier-free guidance (scale 1 or no null: plain)."""
    def velocity(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        v = lpm.velocity(z, t, cond.ctx, cond.sink)
        if null is None or scale == 1.0:
            return v
        v_u = lpm.velocity(z, t, null.ctx, null.sink)
        return v_u + scale * (v - v_u)
    return velocity


@torch.no_grad()
def sample_clip(velocity, noise: torch.Tensor, timesteps: list[float],
                keep_at: list[float] | None = None
                ) -> tuple[torch.Tensor, dict[float, torch.Tensor]]:
    """Euler ODE over a whole clip (one t for every frame); also returns x at `keep_at` times."""
    x, kept = noise, {}
    b, f = noise.shape[:2]
    keep_at = keep_at or []
    for t, t_next in zip(timesteps[:-1], timesteps[1:]):
        if any(abs(t - k) < 1e-9 for k in keep_at):
            kept[t] = x
        x = x + (t_next - t) * velocity(x, torch.full((b, f), t, device=x.device))
    if any(abs(k) < 1e-9 for k in keep_at):
        kept[0.0] = x
    return x, kept


def load_lpm(directory: str | Path, causal: bool) -> tuple[LPM, dict]:
    """An LPM from a checkpoint directory (model.yaml + model.safetensors)."""
    directory = Path(directory)
    if (directory / "export" / "model.yaml").is_file():
        directory = directory / "export"          # a run directory: take its export
    cfg, _, info = read_meta(directory)
    lpm = LPM(cfg, causal=causal)
    load_weights(directory, lpm)
    return lpm, info


def extend_lpm(donor: LPM, cfg: ModelConfig, new: tuple[str, ...]) -> LPM:
    """An LPM of `cfg` (the donor's config with an add-on switched on) holding every weight of
    the donor; only weights under the `new` prefixes (the add-on's, as initialised) may be
    missing from it, anything else is an error."""
    lpm = LPM(cfg, causal=donor.causal)
    missing = lpm.load_state_dict(donor.state_dict(), strict=False).missing_keys
    if any(not k.startswith(new) for k in missing):
        raise ValueError(f"unexpected missing weights: {missing}")
    return lpm


def freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
