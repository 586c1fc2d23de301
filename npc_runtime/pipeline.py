"""PerformanceModel: the Online LPM streaming loop behind the batched interface the sidecar calls.

Per NPC, once: `encode_identity` (references -> sink K/V), `open_session` (cache pages + sink).
Per chunk, for a batch of sessions, in the order of the algorithm (Self-Forcing / CausVid):

    encode_context  SPEAK/LISTEN audio windows, emotion, frame positions -> ChunkContext
    denoise_chunk   few-step flow sampling from per-session noise, attending to the cache
    decode          VAE latents -> RGB uint8 frames
    commit          one pass at t = 0 on the clean latents writes their K/V to the cache

Everything here is inference; the weights are whatever the checkpoint holds, and an
uninitialised (seeded random) model says `trained: False` in `describe()`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from npc_runtime.checkpoint import load_weights, read_meta
from npc_runtime.config import ModelConfig, config_to_dict, preset
from npc_runtime.model.audio import audio_span, audio_window_samples
from npc_runtime.model.blink import (BlinkState, blink_closures, blink_frame_states,
                                     blink_state)
from npc_runtime.model.dit import ChunkContext
from npc_runtime.model.kv_cache import CacheView, KVCacheManager, KVCacheSpec, PagePool
from npc_runtime.model.lpm import LPM, CachedAttend
from npc_runtime.model.mouth_edit import speech_gate
from npc_runtime.model.nod import NodState, nod_offsets
from npc_runtime.model.steady import SteadyState, steady_offsets
from npc_runtime.sampler import flow_timesteps, sample_euler

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = "weights/tiny"   # inside the package


@dataclass
class ChunkRequest:
    """One session's inputs for its next chunk."""
    session_id: int
    speak: np.ndarray              # float32 16 kHz, exactly audio_span(chunk) samples
    listen: np.ndarray             # same length, the partner's (player's) voice
    emotion: np.ndarray            # (C, emotion_dim) float32 per-frame weights


def stacked(requests: list["ChunkRequest"], name: str) -> torch.Tensor:
    """One field of every request (speak, listen or emotion), stacked: (B, ...) float32 on the
    CPU; the caller moves it where it is needed."""
    return torch.from_numpy(np.stack([np.asarray(getattr(r, name), np.float32)
                                      for r in requests]))


@dataclass
class IdentityEncoding:
    """An NPC's identity sink: per-layer K/V of its reference tokens, and where the model's
    expression editor reads one (expression_edit.reference) the first reference's scaled latent
    (its resting face). A cache, never truth."""
    k: torch.Tensor                # (L, S, H, D)
    v: torch.Tensor
    n_refs: int
    fingerprint: str               # of the model that made it; stale encodings are rejected
    anchor: torch.Tensor | None = None   # (c, h, w)

    def to_bytes(self) -> bytes:
        tensors = {"k": self.k.contiguous().cpu(), "v": self.v.contiguous().cpu()}
        if self.anchor is not None:
            tensors["anchor"] = self.anchor.contiguous().cpu()
        return st_save(tensors, metadata={"n_refs": str(self.n_refs),
                                          "fingerprint": self.fingerprint})

    @classmethod
    def from_bytes(cls, model: "PerformanceModel", data: bytes) -> "IdentityEncoding":
        try:
            tensors = st_load(data)
            meta = _safetensors_metadata(data)
            enc = cls(tensors["k"], tensors["v"], int(meta["n_refs"]), meta["fingerprint"],
                      tensors.get("anchor"))
        except Exception as exc:  # noqa: BLE001 - any decoding failure means "rebuild"
            raise ValueError(f"unreadable identity encoding: {exc}") from exc
        if enc.fingerprint != model.fingerprint:
            raise ValueError("identity encoding was made by a different model; re-encode it")
        model.check_anchor(enc)
        return enc


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The free-form metadata of an in-memory safetensors blob (8-byte length + JSON header)."""
    (n,) = struct.unpack("<Q", data[:8])
    return dict(json.loads(data[8:8 + n]).get("__metadata__", {}))


@dataclass
class _Session:
    identity: IdentityEncoding
    generator: torch.Generator
    chunk_index: int = 0
    nod: NodState = field(default_factory=NodState)
    steady: SteadyState = field(default_factory=SteadyState)
    blink: BlinkState = field(default_factory=BlinkState)
    extra: dict[str, Any] = field(default_factory=dict)


class PerformanceModel:
    """The Online LPM serving many sessions through one paged KV cache."""

    def __init__(self, lpm: LPM, trained: bool = False, info: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu", max_sessions: int = 8,
                 steps: int | None = None, emotion_gain: float | None = None) -> None:
        if not lpm.causal:
            raise ValueError("PerformanceModel streams an Online (causal) LPM")
        self.device = torch.device(device)
        self.lpm = lpm.to(self.device).eval()
        self.lpm.vae.decoder.to(memory_format=torch.channels_last)
        self.cfg: ModelConfig = lpm.cfg
        self.trained = trained
        self.info = dict(info or {})
        self.steps = steps or self.cfg.stream.online_steps
        self.timesteps = flow_timesteps(self.steps, self.cfg.stream.timestep_shift)
        # The checkpoint's stream.emotion_gain unless the caller overrides it (sidecar config,
        # bench sweeps); the config validates it.
        self.emotion_gain = (self.cfg if emotion_gain is None else
                             self.cfg.with_emotion_gain(emotion_gain)).stream.emotion_gain
        self.max_sessions = max_sessions
        cfg = self.cfg
        spec = KVCacheSpec(num_layers=cfg.dit.depth, num_heads=cfg.dit.heads,
                           head_dim=cfg.dit.head_dim, page_size=cfg.tokens_per_frame)
        pages = max_sessions * (cfg.dit.max_refs + cfg.stream.window_chunks * cfg.stream.chunk_frames)
        self.cache = KVCacheManager(spec, PagePool(spec, pages, self.device),
                                    cfg.stream.window_chunks, cfg.stream.chunk_frames)
        self._sessions: dict[int, _Session] = {}
        self._next_id = 1
        self._lock = threading.RLock()
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: ModelConfig, seed: int = 0, **kwargs: Any) -> "PerformanceModel":
        """A seeded random initialisation: reported as untrained everywhere."""
        torch.manual_seed(seed)
        return cls(LPM(cfg, causal=True), trained=False,
                   info={"init": f"random (seed {seed})"}, **kwargs)

    @classmethod
    def from_checkpoint(cls, directory: str | Path, **kwargs: Any) -> "PerformanceModel":
        cfg, trained, info = read_meta(directory)
        lpm = LPM(cfg, causal=True)
        load_weights(directory, lpm)
        info.setdefault("checkpoint", str(directory))
        return cls(lpm, trained=trained, info=info, **kwargs)

    @classmethod
    def load_default(cls, device: str = "cpu", **kwargs: Any) -> "PerformanceModel":
        """The checkpoint shipped in the package, or (until one is trained) a seeded random
        `tiny` model that says it is untrained."""
        shipped = Path(str(resources.files("npc_runtime").joinpath(DEFAULT_CHECKPOINT)))
        if (shipped / "model.yaml").is_file():
            model = cls.from_checkpoint(shipped, device=device, **kwargs)
            if not model.trained:
                log.warning("the shipped checkpoint is %s: frames will not look like the NPC",
                            model.status)
            return model
        log.warning("no trained checkpoint shipped in the package: using an UNTRAINED seeded "
                    "random 'tiny' model (frames will be noise-like)")
        return cls.from_config(preset("tiny"), seed=0, device=device, **kwargs)

    # ------------------------------------------------------------------ description
    @property
    def fps(self) -> int:
        return self.cfg.stream.fps

    @property
    def frame_size(self) -> int:
        return self.cfg.frame_size

    @property
    def chunk_frames(self) -> int:
        return self.cfg.stream.chunk_frames

    @property
    def sample_rate(self) -> int:
        return self.cfg.audio.sample_rate

    @property
    def emotion_dim(self) -> int:
        return self.cfg.emotion_dim

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(repr(config_to_dict(self.cfg)).encode())
            for name, tensor in sorted(self.lpm.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint

    @property
    def status(self) -> str:
        """One line for logs and ServerInfo; never calls a partly trained model trained."""
        if self.trained:
            return "trained"
        parts = {k: str(self.info[k]) for k in ("vae", "audio", "dit") if k in self.info}
        trained_parts = [k for k, v in parts.items() if v.startswith("trained")]
        if trained_parts:
            return (f"untrained (only {', '.join(trained_parts)} trained; the rest is a seeded "
                    "random init)")
        return "untrained (seeded random init)"

    def describe(self) -> dict[str, Any]:
        return {
            "name": f"online-lpm-{self.cfg.name}",
            "config": self.cfg.name,
            "trained": self.trained,
            "status": self.status,
            "parameters": sum(p.numel() for p in self.lpm.parameters()),
            "fps": self.fps,
            "frame_size": self.frame_size,
            "chunk_frames": self.chunk_frames,
            "window_chunks": self.cfg.stream.window_chunks,
            "sampling_steps": self.steps,
            "sample_rate": self.sample_rate,
            "max_sessions": self.max_sessions,
            "device": str(self.device),
            # The gain the stream runs with, where it is not the trained condition's 1.
            "info": {**self.info, **({"emotion_gain": self.emotion_gain}
                                     if self.emotion_gain != 1.0 else {})},
        }

    def audio_span(self, chunk_index: int) -> tuple[int, int]:
        return audio_span(self.cfg, chunk_index)

    @property
    def audio_window(self) -> int:
        return audio_window_samples(self.cfg)

    # ------------------------------------------------------------------ identity & sessions
    def references_to_tensor(self, references: np.ndarray) -> torch.Tensor:
        refs = np.asarray(references)
        s = self.frame_size
        if refs.ndim == 3:
            refs = refs[None]
        if refs.ndim != 4 or refs.shape[1:] != (s, s, 3):
            raise ValueError(f"reference images must be (R, {s}, {s}, 3) uint8 RGB, "
                             f"got shape {tuple(np.asarray(references).shape)}")
        if refs.dtype != np.uint8:
            raise ValueError(f"reference images must be uint8, got {refs.dtype}")
        if not 1 <= refs.shape[0] <= self.cfg.dit.max_refs:
            raise ValueError(f"1..{self.cfg.dit.max_refs} reference images, got {refs.shape[0]}")
        x = torch.from_numpy(refs).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return x[None]                                            # (1, R, 3, H, W)

    @torch.inference_mode()
    def encode_identity(self, references: np.ndarray) -> IdentityEncoding:
        x = self.references_to_tensor(references)
        k, v = self.lpm.encode_identity(x)                       # (L, 1, S, H, D)
        anchor = self.lpm.vae.encode(x[0, :1])[0].clone() if self.reads_reference else None
        return IdentityEncoding(k[:, 0].clone(), v[:, 0].clone(), x.shape[1], self.fingerprint,
                                anchor)

    @property
    def reads_reference(self) -> bool:
        """Whether the expression editor reads the first reference's latent (its `anchor`)."""
        x = self.cfg.expression_edit
        return x.enabled and x.reference

    def check_anchor(self, identity: IdentityEncoding) -> None:
        if self.reads_reference and identity.anchor is None:
            raise ValueError("identity encoding has no reference latent for this model's "
                             "expression editor; re-encode it")

    def open_session(self, identity: IdentityEncoding, seed: int = 0) -> int:
        if identity.fingerprint != self.fingerprint:
            raise ValueError("identity encoding was made by a different model; re-encode it")
        self.check_anchor(identity)
        with self._lock:
            sid = self._next_id
            self.cache.add_session(sid, identity.n_refs)          # may raise CacheFullError
            self._next_id += 1
            self.cache.write_sink(sid, identity.k.to(self.device), identity.v.to(self.device))
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            self._sessions[sid] = _Session(identity, gen, blink=blink_state(seed))
            return sid

    def close_session(self, session_id: int) -> None:
        with self._lock:
            self._session(session_id)
            del self._sessions[session_id]
            self.cache.remove_session(session_id)

    def reset_session(self, session_id: int) -> None:
        """Forget the stream's past (window) but keep identity; the chunk clock continues."""
        with self._lock:
            session = self._session(session_id)
            session.nod, session.steady = NodState(), SteadyState()
            # The blink clock keeps its generator (a reset is not a new seed), not its past.
            session.blink = BlinkState(rng=session.blink.rng)
            self.cache.reset(session_id)

    def chunk_index(self, session_id: int) -> int:
        return self._session(session_id).chunk_index

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def _session(self, session_id: int) -> _Session:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise KeyError(f"unknown session {session_id}") from None

    # ------------------------------------------------------------------ the chunk step
    def step(self, requests: list[ChunkRequest]) -> list[np.ndarray]:
        """Generate the next chunk for each requested session: list of (C, H, W, 3) uint8."""
        if not requests:
            return []
        with self._lock, torch.inference_mode():
            z = self.step_latents(requests)
            # Only an expression decoder reads the requested weights: nothing to build otherwise.
            emotion = stacked(requests, "emotion").to(self.device) \
                if self.cfg.vae.emotion_dim else None
            return list(self.decode(z, emotion))

    def step_latents(self, requests: list[ChunkRequest]) -> torch.Tensor:
        """The chunk step without the VAE decode: -> clean latents (B, C, c, h, w)."""
        with self._lock, torch.inference_mode():
            self._validate(requests)
            ids = [r.session_id for r in requests]
            view = self.cache.view(ids)
            ctx = self.encode_context(requests)
            sampled = self.denoise_chunk(self.initial_noise(ids), ctx, view)
            z = self.lpm.edit_mouth(sampled, ctx)
            # The window the next chunks attend to holds the DiT's own sample unless the
            # config asks for the edited one (mouth_edit.commit_edited, config.py: why).
            self.commit(z if self.cfg.mouth_edit.commit_edited else sampled, ctx, view)
            z = self.nod(z, requests)
            z = self.express(z, requests)
            z = self.blink(z, requests)
            for sid in ids:
                self._sessions[sid].chunk_index += 1
            return z

    def _validate(self, requests: list[ChunkRequest]) -> None:
        ids = [r.session_id for r in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("a session may appear only once per step")
        n, c, e = self.audio_window, self.chunk_frames, self.emotion_dim
        for r in requests:
            self._session(r.session_id)
            for name in ("speak", "listen"):
                a = np.asarray(getattr(r, name))
                if a.ndim != 1 or a.shape[0] != n:
                    raise ValueError(f"session {r.session_id}: {name} audio must be {n} samples "
                                     f"of 16 kHz mono (audio_span), got shape {a.shape}")
                if not np.all(np.isfinite(a)):
                    raise ValueError(f"session {r.session_id}: {name} audio has NaN/inf")
            em = np.asarray(r.emotion)
            if em.shape != (c, e):
                raise ValueError(f"session {r.session_id}: emotion must be ({c}, {e}) per-frame "
                                 f"weights, got {em.shape}")
            if not np.all(np.isfinite(em)) or em.min() < 0 or em.max() > 1:
                raise ValueError(f"session {r.session_id}: emotion weights must be in [0, 1]")

    def encode_context(self, requests: list[ChunkRequest]) -> ChunkContext:
        dev, c = self.device, self.chunk_frames
        speak, listen = stacked(requests, "speak"), stacked(requests, "listen")
        emotion = stacked(requests, "emotion")
        first = torch.tensor([self._sessions[r.session_id].chunk_index * c for r in requests])
        positions = first[:, None] + torch.arange(c)                        # (B, C)
        return self.lpm.context(speak[:, None].to(dev), listen[:, None].to(dev),
                                emotion.to(dev), positions.to(dev), self.emotion_gain)

    def initial_noise(self, session_ids: list[int]) -> torch.Tensor:
        """Per-session generators: a session's frames do not depend on who shares its batch."""
        cfg = self.cfg
        shape = (cfg.stream.chunk_frames, cfg.vae.latent_channels, cfg.latent_size,
                 cfg.latent_size)
        noise = [torch.randn(shape, generator=self._sessions[s].generator) for s in session_ids]
        return torch.stack(noise).to(self.device)                          # (B, C, c, h, w)

    def denoise_chunk(self, noise: torch.Tensor, ctx: ChunkContext, view: CacheView
                      ) -> torch.Tensor:
        attend = CachedAttend(self.cache.pool, view, commit=False)
        b, c = noise.shape[:2]

        def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
            return self.lpm.dit(x, torch.full((b, c), t, device=x.device), ctx, attend)

        return sample_euler(velocity, noise, self.timesteps)

    def nod(self, z: torch.Tensor, requests: list[ChunkRequest]) -> torch.Tensor:
        """Listening nods (model/nod.py), where the model has a nod track: advance each
        session's track on its LISTEN window and tilt the frames of any nod it runs; where it
        has a pitch reader (model/steady.py), also pull the head's bobs back while the NPC is
        quiet. One nod-editor pass on the frames with any offset."""
        track = self.lpm.nod_track
        if track is None:
            return z
        sessions = [self._sessions[r.session_id] for r in requests]
        states = [s.nod for s in sessions]
        listen = stacked(requests, "listen")
        hidden = self.cfg.nod.hidden
        h = torch.stack([torch.zeros(hidden) if s.h is None else s.h for s in states])[None]
        logits, h = track.chunk(listen.to(self.device), h.to(self.device))
        offsets = nod_offsets(self.cfg, torch.sigmoid(logits).cpu(), states)
        for b, state in enumerate(states):
            state.h = h[0, b].cpu()
        if self.lpm.pitch_reader is not None:
            speak = stacked(requests, "speak")
            quiet = speech_gate(self.cfg, speak[:, None]) == 0                 # (B, C)
            pitch = self.lpm.pitch_reader(z.flatten(0, 1)).view(z.shape[:2]).cpu()
            emotion = stacked(requests, "emotion")
            offsets = offsets + steady_offsets(self.cfg, pitch, quiet,
                                               [s.steady for s in sessions], emotion)
        return self.lpm.nod_edit.frames(z, offsets.to(self.device))

    def express(self, z: torch.Tensor, requests: list[ChunkRequest]) -> torch.Tensor:
        """The expression editor (model/expression_edit.py), where the model has one: the frames
        tagged with any non-neutral weight get the expression their weights ask for."""
        editor = self.lpm.expression_edit
        if editor is None:
            return z
        reference = None
        if self.reads_reference:
            reference = torch.stack([self._sessions[r.session_id].identity.anchor
                                     for r in requests]).to(z.device, z.dtype)
        return editor.frames(z, stacked(requests, "emotion").to(z.device), reference)

    def blink(self, z: torch.Tensor, requests: list[ChunkRequest]) -> torch.Tensor:
        """Blinks (model/blink.py), where the model has a blink editor: advance each session's
        blink clock on who is speaking and close the eyes of the frames of any blink it runs.
        Last, so the eyelids are the clock's whatever expression the frame was given."""
        editor = self.lpm.blink_edit
        if editor is None:
            return z
        states = [self._sessions[r.session_id].blink for r in requests]
        speak = speech_gate(self.cfg, stacked(requests, "speak")[:, None])
        listen = speech_gate(self.cfg, stacked(requests, "listen")[:, None])
        closure = blink_closures(self.cfg, blink_frame_states(speak, listen), states)
        return editor.frames(z, closure.to(z.device))

    def decode(self, z: torch.Tensor, emotion: torch.Tensor | None = None) -> np.ndarray:
        """Latents (B, C, c, h, w) -> (B, C, H, W, 3) uint8; `emotion` (B, C, E): the frames'
        weights as requested (not the DiT's gained ones), read by an expression decoder."""
        b, c = z.shape[:2]
        e = None if emotion is None else emotion.flatten(0, 1)
        img = self.lpm.vae.decode(z.flatten(0, 1), e).clamp(-1, 1)         # (B*C, 3, H, W)
        img = ((img + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
        return img.reshape(b, c, *img.shape[1:]).cpu().numpy()             # (B, C, H, W, 3)

    def commit(self, z: torch.Tensor, ctx: ChunkContext, view: CacheView) -> None:
        b, c = z.shape[:2]
        attend = CachedAttend(self.cache.pool, view, commit=True)
        self.lpm.dit(z, torch.zeros(b, c, device=z.device), ctx, attend, output=False)
        self.cache.append(list(view.session_ids))

    # ------------------------------------------------------------------ offline convenience
    def perform(self, references: np.ndarray, speak: np.ndarray, listen: np.ndarray | None = None,
                emotion: np.ndarray | None = None, sample_rate: int = 16_000, seed: int = 0,
                n_frames: int | None = None) -> np.ndarray:
        """Stream a whole clip through a fresh session: -> (F, H, W, 3) uint8.

        speak/listen: mono float audio at `sample_rate` (must be 16 kHz: resample first);
        emotion: (F, E) per-frame weights or None for neutral."""
        if sample_rate != self.sample_rate:
            raise ValueError(f"audio must be {self.sample_rate} Hz mono, got {sample_rate} Hz; "
                             "resample it first")
        speak = np.asarray(speak, np.float32)
        listen = np.zeros_like(speak) if listen is None else np.asarray(listen, np.float32)
        spf = self.cfg.samples_per_frame
        n_frames = n_frames or -(-max(len(speak), len(listen)) // spf)
        c = self.chunk_frames
        n_chunks = -(-n_frames // c)
        if emotion is None:
            emotion = np.zeros((n_chunks * c, self.emotion_dim), np.float32)
            emotion[:, 0] = 1.0
        emotion = np.asarray(emotion, np.float32)
        if emotion.ndim != 2 or emotion.shape[1] != self.emotion_dim or len(emotion) < n_frames:
            raise ValueError(f"emotion must be (frames >= {n_frames}, {self.emotion_dim})")
        emotion = np.concatenate([emotion, np.repeat(emotion[-1:], n_chunks * c, 0)])
        sid = self.open_session(self.encode_identity(references), seed)
        try:
            out = []
            for k in range(n_chunks):
                start, end = self.audio_span(k)
                req = ChunkRequest(sid, slice_audio(speak, start, end),
                                   slice_audio(listen, start, end), emotion[k * c:(k + 1) * c])
                out.append(self.step([req])[0])
            return np.concatenate(out)[:n_frames]
        finally:
            self.close_session(sid)


def slice_audio(track: np.ndarray, start: int, end: int) -> np.ndarray:
    """track[start:end] with zeros wherever the range falls outside the track."""
    out = np.zeros(end - start, np.float32)
    lo, hi = max(start, 0), min(end, len(track))
    if hi > lo:
        out[lo - start:hi - start] = track[lo:hi]
    return out
