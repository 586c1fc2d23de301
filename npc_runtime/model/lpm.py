"""The LPM: VAE + audio encoder + DiT, and the three ways its attention is wired.

`LPM(cfg, causal=False)` is the Base LPM (bidirectional over a clip); `LPM(cfg, causal=True)` is
the Online LPM (block-causal over chunks with a window of W past chunks). They share every
module and weight; only the mask of `velocity` differs, and the stream replaces the mask by the
paged KV cache (`CachedAttend`), which is equivalent by construction and by test.
"""

from __future__ import annotations

import torch
from torch import nn

from npc_runtime.config import ModelConfig
from npc_runtime.model.attention import (block_causal_chunk_mask, dense_attention,
                                         expand_chunk_mask, paged_attention)
from npc_runtime.model.audio import AudioEncoder, MouthTrack
from npc_runtime.model.blink import BlinkEditor
from npc_runtime.model.dispatch import write_pages_impl
from npc_runtime.model.dit import LISTEN, SPEAK, ChunkContext, LPMDiT
from npc_runtime.model.kv_cache import CacheView, PagePool
from npc_runtime.model.expression_edit import ExpressionEditor
from npc_runtime.model.mouth_edit import MouthEditor, speech_gate
from npc_runtime.model.nod import NodEditor, NodTrack
from npc_runtime.model.steady import PitchReader
from npc_runtime.model.vae import VAE


class SinkRecorder:
    """Attend for identity references: they attend among themselves; their K/V are kept.

    The rotary dims of sink keys are zeroed: references are timeless, so a frame's score
    against them must not depend on the frame's (rotated) position."""

    def __init__(self, rope_dims: int) -> None:
        self.rope_dims = rope_dims
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}

    def __call__(self, layer, q, k, v):
        k = torch.cat([torch.zeros_like(k[..., :self.rope_dims]), k[..., self.rope_dims:]], -1)
        self.k[layer], self.v[layer] = k, v
        return None if q is None else dense_attention(q, k, v)

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """-> k, v (L, B, S, H, D)."""
        layers = sorted(self.k)
        return (torch.stack([self.k[i] for i in layers]), torch.stack([self.v[i] for i in layers]))


class DenseAttend:
    """Frames attend to [sink | frames] under a token mask (None = bidirectional)."""

    def __init__(self, sink_k: torch.Tensor, sink_v: torch.Tensor,
                 mask: torch.Tensor | None) -> None:
        self.sink_k, self.sink_v, self.mask = sink_k, sink_v, mask

    def __call__(self, layer, q, k, v):
        if q is None:
            return None
        return dense_attention(q, torch.cat([self.sink_k[layer], k], 1),
                               torch.cat([self.sink_v[layer], v], 1), self.mask)


class CachedAttend:
    """The stream: the current chunk attends to its session's paged cache (sink + window) and
    itself; with commit=True its K/V are appended to the cache slots of the view."""

    def __init__(self, pool: PagePool, view: CacheView, commit: bool) -> None:
        self.pool, self.view, self.commit = pool, view, commit
        self._write = write_pages_impl(pool.k.device)

    def __call__(self, layer, q, k, v):
        out = None
        if q is not None:
            out = paged_attention(q, k, v, self.pool.k[layer], self.pool.v[layer],
                                  self.view.page_table, self.view.cache_lens)
        if self.commit:
            self._write(self.pool.k[layer], self.view.append_slots, k)
            self._write(self.pool.v[layer], self.view.append_slots, v)
        return out


class LPM(nn.Module):
    def __init__(self, cfg: ModelConfig, causal: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.causal = causal
        self.vae = VAE(cfg.vae)
        self.audio = AudioEncoder(cfg)
        self.mouth = MouthTrack(cfg) if cfg.audio.mouth_track else None
        self.dit = LPMDiT(cfg)
        self.mouth_edit = MouthEditor(cfg) if cfg.mouth_edit.enabled else None
        self.nod_track = NodTrack(cfg) if cfg.nod.enabled else None
        self.nod_edit = NodEditor(cfg) if cfg.nod.enabled else None
        self.pitch_reader = PitchReader(cfg) if cfg.steady.enabled else None
        self.expression_edit = ExpressionEditor(cfg) if cfg.expression_edit.enabled else None
        self.blink_edit = BlinkEditor(cfg) if cfg.blink.enabled else None

    # ------------------------------------------------------------------ conditioning
    def encode_audio(self, windows: torch.Tensor, channel: int) -> torch.Tensor:
        """Per-chunk audio windows (B, n_chunks, Sw) -> tokens (B, n_chunks, A, d_audio)."""
        b, n, s = windows.shape
        tokens = self.audio(windows.reshape(b * n, s))
        return self.dit.audio_tokens(tokens.view(b, n, *tokens.shape[1:]), channel)

    def context(self, speak: torch.Tensor, listen: torch.Tensor, emotion: torch.Tensor,
                positions: torch.Tensor, emotion_gain: float = 1.0) -> ChunkContext:
        """speak/listen (B, n_chunks, Sw) windows, emotion (B, F, E), positions (B, F).

        emotion_gain != 1 extrapolates the DiT's emotion embedding away from neutral's
        (stream.emotion_gain, config.py: why); the editor still gets the tagged weights."""
        b, n, s = speak.shape
        # One encoder call for both channels (shared weights): half the small-matmul overhead.
        tokens = self.audio(torch.cat([speak, listen]).reshape(2 * b * n, s))
        tokens = tokens.view(2, b, n, *tokens.shape[1:])
        mouth = params = gate = None
        if self.mouth is not None:
            params = self.mouth.chunk_frames(speak)
            mouth = self.dit.embed_mouth(params)
        if self.mouth_edit is not None and self.cfg.mouth_edit.gate_rms > 0:
            gate = speech_gate(self.cfg, speak)
        return ChunkContext(emotion=self.embed_emotion(emotion, emotion_gain),
                            speak=self.dit.audio_tokens(tokens[0], SPEAK),
                            listen=self.dit.audio_tokens(tokens[1], LISTEN),
                            positions=positions, mouth=mouth, mouth_params=params,
                            emotion_weights=emotion if self.cfg.mouth_edit.emotion else None,
                            edit_gate=gate)

    def embed_emotion(self, emotion: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """(B, F, E) weights -> (B, F, d) conditioning, `gain` times as far from neutral's."""
        embedded = self.dit.embed_emotion(emotion)
        if gain == 1.0:
            return embedded
        neutral = torch.zeros_like(emotion[..., :1, :])
        neutral[..., 0] = 1.0                       # the vocabulary's neutral is its first tag
        base = self.dit.embed_emotion(neutral)
        # Neutral frames keep their embedding bit for bit (e - e_n is only ~0 in float: the
        # two embeddings come from matmuls of different shapes).
        is_neutral = (emotion == neutral).all(-1, keepdim=True)
        return torch.where(is_neutral, embedded, base + gain * (embedded - base))

    def edit_mouth(self, z: torch.Tensor, ctx: ChunkContext) -> torch.Tensor:
        """Sampled latents (B, F, c, h, w) -> the same with the mouth editor's mouth (the
        track's) where the model has an editor, as much as ctx.edit_gate says (frames where
        the NPC is silent come back as sampled); unchanged otherwise."""
        if self.mouth_edit is None:
            return z
        return self.mouth_edit.frames(z, ctx.mouth_params, ctx.emotion_weights, ctx.edit_gate)

    def encode_identity(self, references: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """References (B, R, 3, H, W) in [-1, 1] -> sink k, v (L, B, R*T, H, D)."""
        b, r = references.shape[:2]
        z = self.vae.encode(references.flatten(0, 1))
        recorder = SinkRecorder(self.cfg.dit.rope_dims)
        self.dit.encode_references(z.view(b, r, *z.shape[1:]), recorder)
        return recorder.stacked()

    # ------------------------------------------------------------------ dense (clip) passes
    def attention_mask(self, n_chunks: int, n_sink: int, device=None) -> torch.Tensor | None:
        """Token mask over [sink | frames]: None (all) for the Base LPM, block-causal with a
        window of W past chunks for the Online LPM."""
        if not self.causal:
            return None
        chunks = block_causal_chunk_mask(n_chunks, self.cfg.stream.window_chunks, device)
        return expand_chunk_mask(chunks, self.cfg.tokens_per_chunk, n_sink)

    def teacher_forcing_mask(self, n_chunks: int, n_sink: int, device=None) -> torch.Tensor:
        """Mask for the Self-Forcing / CausVid training layout [clean chunks | noisy chunks]:
        clean chunk j sees clean j-W..j; noisy chunk i sees clean i-W..i-1 and itself.
        One forward then gives every chunk's velocity given clean context, exactly what the
        stream computes chunk by chunk through the cache."""
        w = self.cfg.stream.window_chunks
        causal = block_causal_chunk_mask(n_chunks, w, device)
        history = block_causal_chunk_mask(n_chunks, w, device) & ~torch.eye(
            n_chunks, dtype=torch.bool, device=device)
        top = torch.cat([causal, torch.zeros_like(causal)], dim=1)
        bottom = torch.cat([history, torch.eye(n_chunks, dtype=torch.bool, device=device)], 1)
        return expand_chunk_mask(torch.cat([top, bottom]), self.cfg.tokens_per_chunk, n_sink)

    def velocity(self, z: torch.Tensor, t: torch.Tensor, ctx: ChunkContext,
                 sink: tuple[torch.Tensor, torch.Tensor],
                 mask: torch.Tensor | None | str = "auto") -> torch.Tensor:
        """Whole-clip velocity: z (B, F, c, h, w), t (B, F); mask 'auto' = this model's own."""
        n_chunks = z.shape[1] // self.cfg.stream.chunk_frames
        if isinstance(mask, str):
            mask = self.attention_mask(n_chunks, sink[0].shape[2], z.device)
        return self.dit(z, t, ctx, DenseAttend(sink[0], sink[1], mask))
