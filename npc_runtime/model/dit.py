"""The LPM diffusion transformer: a pure denoiser over latent frames grouped in chunks.

Block (as in LPM): AdaLN self-attention -> cross-attention to audio -> AdaLN FFN. Even blocks
cross-attend to SPEAK audio tokens, odd blocks to LISTEN tokens. Identity reference images are
patchified with a reference-type embedding and run through the same blocks once, attending only
among themselves; their keys/values at every layer form the *sink* that every frame attends to.

The model never decides *what* a frame attends to beyond its own tokens: the caller passes an
`Attend` object (dense with a mask for the Base LPM and training, or the paged KV cache for the
stream). Base and Online LPM are therefore the same weights and code with a different `Attend`.

Shapes: latents z (B, F, c, h, w) with F = n_chunks * C frames; tokens (B, F, T, d) with T
tokens per frame; audio tokens (B, n_chunks, A, d_audio) per chunk window, of which each frame
cross-attends to the 2r+1 around its own (`frame_audio`; r = audio.frame_radius).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from npc_runtime.config import ModelConfig
from npc_runtime.model.audio import MOUTH_PARAMS
from npc_runtime.model.dispatch import adaln_modulate
from npc_runtime.model.layers import EmotionEmbedder, TemporalRoPE, TimestepEmbedder

SPEAK, LISTEN = 0, 1


class Attend(Protocol):
    """Self-attention for layer `layer`: q, k, v (B, N, H, D) of the frame tokens -> (B, N, H, D).

    Implementations add whatever else the tokens may see (sink, cache, mask) and may record
    k, v (the commit pass writes them to the cache). q is None when only k, v are wanted
    (the last block of a commit pass); the return value is then ignored."""

    def __call__(self, layer: int, q: torch.Tensor | None, k: torch.Tensor,
                 v: torch.Tensor) -> torch.Tensor | None: ...


@dataclass
class ChunkContext:
    """Conditioning that is fixed for a chunk across sampling steps (computed once per chunk)."""
    emotion: torch.Tensor          # (B, F, d) embedded per-frame emotion
    speak: torch.Tensor            # (B, n_chunks, A, d_audio) SPEAK audio tokens
    listen: torch.Tensor           # (B, n_chunks, A, d_audio) LISTEN audio tokens
    positions: torch.Tensor        # (B, F) int64 absolute frame indices (RoPE, mod period)
    mouth: torch.Tensor | None = None  # (B, F, d) embedded mouth track (audio.mouth_track)
    # (B, F, 3) the track's raw mouth values, for the mouth editor (mouth_edit.enabled); the
    # DiT never reads them, and the training helpers that slice contexts drop them.
    mouth_params: torch.Tensor | None = None
    # (B, F, E) the raw per-frame emotion weights, for an editor with mouth_edit.emotion.
    emotion_weights: torch.Tensor | None = None
    # (B, F) in [0, 1]: how much of the editor's edit each frame gets (mouth_edit.gate_rms:
    # speech in the SPEAK window near the frame); None: all of it.
    edit_gate: torch.Tensor | None = None


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        hd = dim // heads
        self.q_norm = nn.RMSNorm(hd) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(hd) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        return self.q_norm(q), self.k_norm(k), v                 # (B, N, H, D) each


class CrossAttention(nn.Module):
    def __init__(self, dim: int, context_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (N, L, d) queries, context (N, A, d_ctx) -> (N, L, d)."""
        n, length, d = x.shape
        h = self.heads
        q = self.q(self.norm(x)).view(n, length, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(n, context.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)            # (N, H, L, D)
        return self.proj(out.transpose(1, 2).reshape(n, length, d))


class LPMBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int) -> None:
        super().__init__()
        d = cfg.dit.dim
        self.index = index
        self.channel = SPEAK if index % 2 == 0 else LISTEN
        self.attn = SelfAttention(d, cfg.dit.heads, cfg.dit.qk_norm)
        self.cross = CrossAttention(d, cfg.audio.dim, cfg.dit.heads)
        hidden = int(d * cfg.dit.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, d))
        self.adaLN = nn.Linear(d, 6 * d)

    def modulation(self, cond: torch.Tensor) -> list[torch.Tensor]:
        """cond (B, F, d) -> six (B, F, 1, d) tensors broadcast over a frame's tokens."""
        return [m.unsqueeze(2) for m in self.adaLN(F.silu(cond)).chunk(6, dim=-1)]

    def qkv(self, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor,
            rope: tuple[TemporalRoPE, torch.Tensor, torch.Tensor] | None):
        b, f, t, d = x.shape
        q, k, v = self.attn.project(adaln_modulate(x, shift, scale).reshape(b, f * t, d))
        if rope is not None:
            r, cos, sin = rope                                   # cos/sin (B, F*T, 1, half)
            q, k = r.rotate(q, cos, sin), r.rotate(k, cos, sin)
        return q, k, v

    def forward(self, x: torch.Tensor, cond: torch.Tensor, audio: torch.Tensor | None,
                attend: Attend, rope: tuple[TemporalRoPE, torch.Tensor, torch.Tensor] | None,
                kv_only: bool = False) -> torch.Tensor:
        """x (B, F, T, d); cond (B, F, d); audio (B, G, A, d_a) or None (references): G groups
        of frames (chunks or single frames), each group's tokens cross-attend to its A tokens."""
        b, f, t, d = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.modulation(cond)
        q, k, v = self.qkv(x, sh1, sc1, rope)
        if kv_only:                        # commit pass of the last block: K/V are all we need
            attend(self.index, None, k, v)
            return x
        out = attend(self.index, q, k, v)
        x = x + g1 * self.attn.proj(out.reshape(b, f, t, d))
        if audio is not None:
            groups = audio.shape[1]
            per_group = x.reshape(b * groups, (f // groups) * t, d)
            x = x + self.cross(per_group, audio.flatten(0, 1)).view(b, f, t, d)
        return x + g2 * self.mlp(adaln_modulate(x, sh2, sc2))


class LPMDiT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p, c = cfg.dit.dim, cfg.dit.patch, cfg.vae.latent_channels
        self.patch_embed = nn.Linear(p * p * c, d)
        self.spatial_pos = nn.Parameter(torch.randn(cfg.tokens_per_frame, d) * 0.02)
        self.ref_embed = nn.Parameter(torch.randn(cfg.dit.max_refs, d) * 0.02)
        self.ref_cond = nn.Parameter(torch.zeros(d))
        self.t_embed = TimestepEmbedder(d)
        self.emotion_embed = EmotionEmbedder(cfg.emotion_dim, d)
        if cfg.audio.mouth_track:
            # Zero output at init: adding the track to a trained DiT leaves it unchanged until
            # training teaches it to use the track.
            self.mouth_embed = nn.Sequential(nn.Linear(len(MOUTH_PARAMS), d), nn.SiLU(),
                                             nn.Linear(d, d))
        self.channel_embed = nn.Parameter(torch.randn(2, cfg.audio.dim) * 0.02)
        radius = cfg.audio.frame_radius
        if radius >= 0:
            # Window index of frame j's audio token: history + j; frame j hears j-r..j+r, and
            # a learned embedding tells it which of those is its own (the chunk window's
            # positional embedding cannot: the frame does not know its index in the chunk).
            chunk = cfg.stream.chunk_frames   # not `c`: that is the latent channel count
            index = (cfg.audio.history_frames + torch.arange(chunk)[:, None]
                     + torch.arange(-radius, radius + 1)[None])
            self.register_buffer("frame_audio_index", index, persistent=False)   # (C, 2r+1)
            self.frame_audio_pos = nn.Parameter(torch.zeros(2 * radius + 1, cfg.audio.dim))
        self.blocks = nn.ModuleList(LPMBlock(cfg, i) for i in range(cfg.dit.depth))
        self.rope = TemporalRoPE(cfg.dit.rope_dims, cfg.dit.rope_period)
        self.final_mod = nn.Linear(d, 2 * d)
        self.final_out = nn.Linear(d, p * p * c)
        self._init_weights()

    def _init_weights(self) -> None:
        # adaLN-Zero (DiT): every residual branch and the output start at zero.
        for block in self.blocks:
            nn.init.zeros_(block.adaLN.weight)
            nn.init.zeros_(block.adaLN.bias)
        zero_out = [self.final_mod, self.final_out]
        if self.cfg.audio.mouth_track:
            zero_out.append(self.mouth_embed[-1])
        for layer in zero_out:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ------------------------------------------------------------------ tokens
    def patchify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, F, c, h, w) -> (B, F, T, p*p*c)."""
        b, f, c, h, w = z.shape
        p = self.cfg.dit.patch
        z = z.view(b, f, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return z.reshape(b, f, (h // p) * (w // p), c * p * p)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T, p*p*c) -> (B, F, c, h, w)."""
        b, f, t, _ = x.shape
        p, c, hs = self.cfg.dit.patch, self.cfg.vae.latent_channels, self.cfg.latent_size
        g = hs // p
        x = x.view(b, f, g, g, c, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, f, c, hs, hs)

    def embed_frames(self, z: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(self.patchify(z)) + self.spatial_pos     # (B, F, T, d)

    def audio_tokens(self, tokens: torch.Tensor, channel: int) -> torch.Tensor:
        return tokens + self.channel_embed[channel]

    def frame_audio(self, tokens: torch.Tensor) -> torch.Tensor:
        """Chunk windows (B, n_chunks, A, d_a) -> what each frame cross-attends to: its own
        2r+1 tokens (B, F, 2r+1, d_a), or the windows unchanged when frame_radius is -1."""
        if self.cfg.audio.frame_radius < 0:
            return tokens
        framed = tokens[:, :, self.frame_audio_index]          # (B, n_chunks, C, 2r+1, d_a)
        return framed.flatten(1, 2) + self.frame_audio_pos

    def embed_emotion(self, emotion: torch.Tensor) -> torch.Tensor:
        return self.emotion_embed(emotion)

    def embed_mouth(self, mouth: torch.Tensor) -> torch.Tensor:
        """Mouth track (B, F, 3) -> per-frame conditioning (B, F, d)."""
        return self.mouth_embed(mouth)

    # ------------------------------------------------------------------ passes
    def encode_references(self, z_ref: torch.Tensor, attend: Attend) -> None:
        """Run reference latents (B, R, c, h, w) through every block; `attend` keeps the K/V.

        References are clean, emotion-free and timeless: they get a learned conditioning
        vector, no audio and no RoPE."""
        r = z_ref.shape[1]
        if not 1 <= r <= self.cfg.dit.max_refs:
            raise ValueError(f"1..{self.cfg.dit.max_refs} reference images, got {r}")
        x = self.embed_frames(z_ref) + self.ref_embed[:r, None, :]      # (B, R, T, d)
        cond = self.ref_cond.expand(x.shape[0], r, -1)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, cond, None, attend, None, kv_only=(i == last))

    def forward(self, z: torch.Tensor, t: torch.Tensor, ctx: ChunkContext, attend: Attend,
                output: bool = True) -> torch.Tensor | None:
        """Velocity prediction for latents z (B, F, c, h, w) at flow times t (B, F).

        With output=False (the commit pass) only the keys/values reach `attend`; the last
        block's tail and the output head are skipped and None is returned."""
        x = self.embed_frames(z)
        cond = self.t_embed(t) + ctx.emotion                              # (B, F, d)
        if ctx.mouth is not None:
            cond = cond + ctx.mouth
        t_tok = x.shape[2]
        cos, sin = self.rope.angles(ctx.positions)                        # (B, F, half)
        # Expanded to tokens once per pass, not once per block.
        rope = (self.rope, cos.repeat_interleave(t_tok, 1)[:, :, None],
                sin.repeat_interleave(t_tok, 1)[:, :, None])              # (B, F*T, 1, half)
        speak, listen = self.frame_audio(ctx.speak), self.frame_audio(ctx.listen)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            audio = speak if block.channel == SPEAK else listen
            x = block(x, cond, audio, attend, rope, kv_only=(not output and i == last))
        if not output:
            return None
        shift, scale = self.final_mod(F.silu(cond)).unsqueeze(2).chunk(2, dim=-1)
        return self.unpatchify(self.final_out(adaln_modulate(x, shift, scale)))
