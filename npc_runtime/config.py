"""Typed model configuration with named presets, loadable from and savable to YAML.

One `ModelConfig` describes a whole LPM: VAE, audio encoder, DiT and the streaming geometry.
Presets (``tiny`` ... ``lpm-17b``) live in `PRESETS`; YAML is read into the dataclasses at the
edge (`load_config`) and unknown or missing keys are errors, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from npc_runtime.emotions import DEFAULT_VOCABULARY


@dataclass(frozen=True)
class VAEConfig:
    image_channels: int = 3
    latent_channels: int = 4
    # Channels per resolution level; len(channels) downsamplings of 2x -> 2**len spatial factor.
    channels: tuple[int, ...] = (24, 48, 96)
    blocks_per_level: int = 1
    # > 0: the decoder also reads each frame's emotion weights (this many: the model's
    # emotion_dim) through zero-initialised FiLM layers (model/vae.py, docs/model.md "The
    # expression decoder"). 0: the plain decoder of the paper's VAE.
    emotion_dim: int = 0

    @property
    def downsample(self) -> int:
        return 2 ** len(self.channels)


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16_000
    n_mels: int = 80
    hop: int = 160            # 10 ms
    win: int = 400            # 25 ms analysis window
    n_fft: int = 400           # = win: a frame spans exactly its 25 ms window
    dim: int = 128            # audio token width
    layers: int = 2           # transformer layers over the per-chunk audio window
    heads: int = 4
    history_frames: int = 4   # video frames of past audio a chunk sees
    lookahead_frames: int = 4  # video frames of future audio (at most one chunk)
    # Each video frame cross-attends to the audio tokens of the frames within this radius of
    # its own (2r + 1 tokens); -1: every frame sees the chunk's whole window, which leaves a
    # frame no way to tell which audio is *its* audio (lip sync blurs over the chunk).
    frame_radius: int = -1
    # The mouth track (`model/audio.py`, `MouthTrack`): a second small encoder over the same
    # SPEAK window that reads the frame's mouth (jaw, lip width, lip rounding) from the audio and
    # hands it to the DiT as per-frame conditioning, beside the emotion. Off in checkpoints that
    # predate it; `npc-runtime train mouth` adds it to an Online LPM.
    mouth_track: bool = False


@dataclass(frozen=True)
class DiTConfig:
    dim: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    patch: int = 2
    # Head dims rotated by the temporal RoPE; the rest see only the learned spatial embedding.
    rope_dims: int = 32
    # Temporal RoPE period in frames. Frequencies are integer multiples of 2*pi/period, so
    # positions are taken modulo the period exactly: a stream of any length stays in range.
    rope_period: int = 4096
    max_refs: int = 4
    qk_norm: bool = True

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True)
class StreamConfig:
    fps: int = 25
    chunk_frames: int = 4       # C: frames per chunk (160 ms at 25 fps)
    window_chunks: int = 2      # W: past chunks kept in the KV cache beside the identity sink
    online_steps: int = 2       # sampling steps of the distilled Online LPM (<= 4)
    base_steps: int = 24        # sampling steps of the bidirectional Base LPM
    timestep_shift: float = 1.0  # flow schedule shift (t' = s t / (1 + (s - 1) t))
    # Streaming only (training always uses 1): the emotion condition is moved `emotion_gain`
    # times as far from the neutral one in the DiT's embedding space, e = e_n + g (e(w) - e_n).
    # A free stand-in for guidance on the emotion: the student draws tagged expressions weaker
    # than the renderer (its VAE's latents carry little of brows and sneer), and a second,
    # neutral-emotion pass per step would halve its speed. 1: the condition as trained.
    emotion_gain: float = 1.0


@dataclass(frozen=True)
class MouthEditConfig:
    # The mouth editor (`model/mouth_edit.py`): after each chunk is sampled, a small U-Net sets
    # every frame's mouth in latent space to the mouth track's values (needs
    # audio.mouth_track). Off in checkpoints that predate it; `npc-runtime train editor` adds it.
    enabled: bool = False
    channels: int = 32        # width at the latent resolution
    hidden: int = 64          # width at half resolution and of the mouth embedding
    blocks: int = 3           # FiLM residual blocks at half resolution
    # The part of the frame it works in, (top, bottom, left, right) as fractions of the frame;
    # the rest passes through untouched. Where the world's mouth lies at every head pose: 99.8 %
    # of the latent change a mouth makes falls inside (measured over 40 sessions' counterfactual
    # renders, train and eval identities). A quarter of the frame: a quarter of the editor's
    # cost, and the head, eyes and pose the DiT sampled are out of its reach. (0, 1, 0, 1): all.
    window: tuple[float, float, float, float] = (0.4375, 0.9375, 0.25, 0.75)
    # Condition the edit on the frame's emotion weights too (the designer's tags, which the
    # stream has per frame). Smile and sneer live in the window: an editor that knows only the
    # mouth must guess them from a noisy latent and regresses to the mean expression
    # (session 14: smile r 0.785, sneer 0.716 on held-out renders; emotion 73.6 % -> 67.3 %).
    emotion: bool = False
    # Commit the edited chunk to the KV cache (True) or the DiT's own sample (False). The DiT
    # was trained on its own latents; fed edited mouths its later head motion drifted
    # (session 14: nods in silence 0.0 -> 2.5 a minute). With False the DiT runs exactly as
    # without an editor and only the shown frames change.
    commit_edited: bool = False
    # Edit only while the NPC speaks. A frame is edited when the SPEAK audio of the frames within
    # `gate_frames` of it is louder than `gate_rms` (RMS of each frame's 640 samples, full scale
    # 1.0): fully from two such frames, half from one (a two-frame fade at each end of a line).
    # Elsewhere the shown frame is the DiT's own: the editor is a lip-sync corrector, and a
    # listening or silent face is the DiT's to draw (session 15: edits of a closed mouth in
    # silence read as head nods). 0: edit every frame.
    gate_rms: float = 0.003
    gate_frames: int = 3


@dataclass(frozen=True)
class NodConfig:
    # Listening nods (`model/nod.py`): a nod track reads the partner's (LISTEN) voice and
    # starts a nod where a listener would (the partner's pauses and line ends); a nod editor,
    # the mouth editor's U-Net conditioned on a head-pitch offset instead of a mouth, tilts the
    # sampled face by the nod's curve. Off in checkpoints that predate it; `npc-runtime train
    # nod` adds it. Why not the DiT: distilled to 2 steps it averages the partner-timed nods of
    # its teacher away (3.7 a minute against the truth's 17.6; docs/training.md, session 19).
    enabled: bool = False
    hidden: int = 32            # the track's GRU width
    lookahead_frames: int = 4   # the track decides frame t having heard up to t + this (<= audio's)
    threshold: float = 0.5      # onset probability at which a nod starts
    amplitude: float = 0.6      # head pitch at the nod's peak (world units; its nods: 0.45-0.8)
    duration_frames: int = 12   # length of the nod's sin^2 bump (the world's: 0.5 s)
    refractory_frames: int = 8  # after a nod ends, no new one for this long
    channels: int = 32          # the editor's U-Net, as mouth_edit's
    hidden_edit: int = 64
    blocks: int = 3
    # Where a head-pitch change moves the latent (99.4 % of it over 40 sessions' counterfactual
    # renders, pitch +0.7 / -0.3, train and eval identities): rows 0-30, columns 4-28 of 32.
    window: tuple[float, float, float, float] = (0.0, 0.9375, 0.125, 0.875)


@dataclass(frozen=True)
class SteadyConfig:
    # A steady head while the NPC is not speaking (`model/steady.py`): a pitch reader reads the
    # head pitch the DiT drew in each frame's latent, and the nod editor pulls any fast
    # excursion from its slow baseline back to within `band`. Why: the 2-step DiT bobs its head
    # where nothing calls for it (bumps of 0.14-0.24 in pitch, where the world's silent head has
    # none above 0.1): the nod check's false nods in silence (docs/training.md, session 19).
    # While the NPC speaks (mouth_edit's speech gate) the head is the DiT's: the world dips it
    # on stressed syllables. Needs nod.enabled (it steers through the nod editor); off in
    # checkpoints that predate it; `npc-runtime train steady` adds it.
    enabled: bool = False
    width: int = 32                     # the pitch reader's CNN
    time_constant_frames: float = 25.0  # the baseline's EMA: 1 s (the world's idle drift: 3 s)
    band: float = 0.08                  # pitch excursions beyond this are cut back to it
    # After the tagged emotion changes, leave the head to the DiT for this many frames, the
    # baseline following it: an emotion tilts the head (sad +0.3 in the world), and a lagging
    # baseline would hold the tilt back (session 20: one sad window read neutral). 0: off,
    # as the shipped checkpoint was benchmarked.
    emotion_hold_frames: int = 0


@dataclass(frozen=True)
class ExpressionEditConfig:
    # An expression editor (`model/expression_edit.py`): after the mouth and the nods, a small
    # latent U-Net redraws the face's expression (eyes, brows, mouth corners, sneer) of every
    # frame tagged with a non-neutral emotion as the tag asks, conditioned on the frame's
    # weights. Why: the 2-step student draws the tagged emotions weaker or as another one
    # (angry as happy, fearful as surprised), and a gain on the emotion's conditioning pulls
    # the likeness down with it (docs/training.md, sessions 18 and 21); the editor reaches only
    # the expression. Shown, never committed: the DiT streams as without it. Off in checkpoints
    # that predate it; `npc-runtime train express` adds it.
    enabled: bool = False
    channels: int = 32          # the U-Net, as mouth_edit's
    hidden: int = 64
    blocks: int = 3
    # Where an emotion's expression changes the frame: 99.6 % of the changed pixels (> 12 of
    # 255) over six sessions' counterfactual renders of every base emotion at full intensity,
    # train and eval identities, lie in rows 38-85 and columns 41-86 of 128; grown by a few
    # latent pixels for head motion and the decoder's reach.
    window: tuple[float, float, float, float] = (0.1875, 0.75, 0.25, 0.75)
    # The editor also sees the same window of the NPC's first reference (its resting face,
    # front on), latent beside latent. Why: the student draws each identity's resting eyes and
    # brows a little off (narrower eyes on every identity measured, session 23), so an angry
    # face's wide eyes read as happy's squint; what the identity's resting face looks like is
    # in its reference, not in the frame.
    reference: bool = False


@dataclass(frozen=True)
class BlinkConfig:
    # Blinks (`model/blink.py`): a blink clock decides when the eyes close, a blink editor (the
    # mouth editor's U-Net conditioned on eyelid closure) closes them in the sampled face. Why
    # not the DiT: distilled to 2 steps it blinks 1-2 times a minute in any state, where the
    # world blinks 12-24 times and most while its partner speaks (docs/training.md, session 26).
    # Off in checkpoints that predate it; `npc-runtime train blink` adds it.
    enabled: bool = False
    # Blinks start at random, at a rate per minute for each state the stream hears: (idle,
    # speaking, listening), where speaking and listening are the speech gate (mouth_edit.gate_rms
    # and gate_frames) open on the SPEAK or the LISTEN audio. `train blink` fits them (maximum
    # likelihood) to the world's blinks, with the states read exactly as the stream reads them;
    # zero blinks until it has.
    rates_per_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    amplitude: float = 1.0          # eyelid closure at the blink's peak (1: shut)
    duration_frames: int = 5        # the sin^2 bump's length (the world's blink: 0.2 s)
    refractory_frames: int = 10     # onset to onset at least (the world's: 0.4 s)
    channels: int = 32              # the editor's U-Net, as mouth_edit's
    hidden_edit: int = 64
    blocks: int = 3
    # Where a blink changes the frame: every changed pixel (> 12 of 255) over six sessions'
    # counterfactual renders (blink 0 vs 1, train and eval identities, all head poses) lies in
    # rows 45-58 and columns 41-85 of 128; grown by a latent pixel or more for the decoder's
    # reach: 8 x 16 latent pixels.
    window: tuple[float, float, float, float] = (0.28125, 0.53125, 0.25, 0.75)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    frame_size: int = 128
    emotion_dim: int = DEFAULT_VOCABULARY.size
    vae: VAEConfig = field(default_factory=VAEConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    mouth_edit: MouthEditConfig = field(default_factory=MouthEditConfig)
    nod: NodConfig = field(default_factory=NodConfig)
    steady: SteadyConfig = field(default_factory=SteadyConfig)
    expression_edit: ExpressionEditConfig = field(default_factory=ExpressionEditConfig)
    blink: BlinkConfig = field(default_factory=BlinkConfig)

    def __post_init__(self) -> None:
        if self.vae.emotion_dim not in (0, self.emotion_dim):
            raise ValueError(f"vae.emotion_dim must be 0 (plain decoder) or the model's "
                             f"emotion_dim {self.emotion_dim}, got {self.vae.emotion_dim}")
        down = self.vae.downsample
        if self.frame_size % (down * self.dit.patch):
            raise ValueError(f"frame_size {self.frame_size} must be a multiple of "
                             f"{down * self.dit.patch} (VAE x{down}, patch {self.dit.patch})")
        if self.dit.dim % self.dit.heads:
            raise ValueError(f"dit.dim {self.dit.dim} not divisible by heads {self.dit.heads}")
        if self.dit.rope_dims % 2 or self.dit.rope_dims > self.dit.head_dim:
            raise ValueError(f"rope_dims must be even and <= head_dim ({self.dit.head_dim})")
        if self.audio.lookahead_frames > self.stream.chunk_frames:
            raise ValueError("audio lookahead may not exceed one chunk")
        a = self.audio
        if not -1 <= a.frame_radius <= min(a.history_frames, a.lookahead_frames):
            raise ValueError(f"audio.frame_radius must be -1 (whole window) or 0.."
                             f"{min(a.history_frames, a.lookahead_frames)} (history and "
                             f"lookahead frames), got {a.frame_radius}")
        if not 1 <= self.stream.online_steps <= 4:
            raise ValueError("the Online LPM samples in 1..4 steps")
        if not 0 < self.stream.emotion_gain <= 4:
            raise ValueError(f"stream.emotion_gain must be in (0, 4], got "
                             f"{self.stream.emotion_gain}")
        if self.audio.sample_rate % self.stream.fps:
            raise ValueError("sample_rate must be a multiple of fps")
        e = self.mouth_edit
        if e.enabled and not self.audio.mouth_track:
            raise ValueError("mouth_edit.enabled needs audio.mouth_track (the editor applies "
                             "the track's mouth)")
        if min(e.channels, e.hidden) < 8 or e.channels % 8 or e.hidden % 8 or e.blocks < 1:
            raise ValueError("mouth_edit: channels and hidden must be multiples of 8 (group "
                             "norm), blocks >= 1")
        _check_window("mouth_edit.window", e.window)
        if e.enabled and (e.gate_rms < 0 or not
                          1 <= e.gate_frames <= min(a.history_frames, a.lookahead_frames)):
            # gate_frames 0 would leave a frame one loud frame (half an edit) at most.
            raise ValueError(f"mouth_edit: gate_rms >= 0 and gate_frames in 1.."
                             f"{min(a.history_frames, a.lookahead_frames)} (the audio window's "
                             f"history and lookahead), got {e.gate_rms}, {e.gate_frames}")

        n = self.nod
        if not 0 <= n.lookahead_frames <= a.lookahead_frames:
            raise ValueError(f"nod.lookahead_frames must be in 0..{a.lookahead_frames} (the "
                             f"audio window's lookahead), got {n.lookahead_frames}")
        if not 0 < n.threshold < 1 or not 0 < n.amplitude <= 2 or n.duration_frames < 2 \
                or n.refractory_frames < 0 or n.hidden < 1:
            raise ValueError(f"nod: threshold in (0, 1), amplitude in (0, 2], duration_frames "
                             f">= 2, refractory_frames >= 0, hidden >= 1, got {n}")
        if min(n.channels, n.hidden_edit) < 8 or n.channels % 8 or n.hidden_edit % 8 \
                or n.blocks < 1:
            raise ValueError("nod: channels and hidden_edit must be multiples of 8 (group "
                             "norm), blocks >= 1")
        _check_window("nod.window", n.window)
        st = self.steady
        if st.enabled and not n.enabled:
            raise ValueError("steady.enabled needs nod.enabled (it steers through the nod editor)")
        if st.width < 1 or st.time_constant_frames < 1 or not 0 <= st.band <= 1 \
                or st.emotion_hold_frames < 0:
            raise ValueError(f"steady: width >= 1, time_constant_frames >= 1, band in [0, 1], "
                             f"emotion_hold_frames >= 0, got {st}")
        x = self.expression_edit
        if min(x.channels, x.hidden) < 8 or x.channels % 8 or x.hidden % 8 or x.blocks < 1:
            raise ValueError("expression_edit: channels and hidden must be multiples of 8 "
                             "(group norm), blocks >= 1")
        _check_window("expression_edit.window", x.window)
        bl = self.blink
        if bl.enabled and not e.enabled:
            raise ValueError("blink.enabled needs mouth_edit.enabled (its speech gate reads "
                             "who speaks)")
        if len(bl.rates_per_min) != 3 or min(bl.rates_per_min) < 0 \
                or max(bl.rates_per_min) > 60 * self.stream.fps or not 0 < bl.amplitude <= 1 or bl.duration_frames < 1 \
                or bl.refractory_frames < bl.duration_frames:
            raise ValueError(f"blink: three rates_per_min in [0, 60 * fps], amplitude in (0, 1], "
                             f"duration_frames >= 1, refractory_frames >= duration_frames, "
                             f"got {bl}")
        if min(bl.channels, bl.hidden_edit) < 8 or bl.channels % 8 or bl.hidden_edit % 8 \
                or bl.blocks < 1:
            raise ValueError("blink: channels and hidden_edit must be multiples of 8 (group "
                             "norm), blocks >= 1")
        _check_window("blink.window", bl.window)

    # Derived sizes (gpt-fast style: computed, never stored).
    @property
    def latent_size(self) -> int:
        return self.frame_size // self.vae.downsample

    @property
    def mouth_window(self) -> tuple[slice, slice]:
        """mouth_edit.window in latent pixels (rows, cols): the fractions rounded outward, each
        side grown to an even length (the editor halves it) and at least 2."""
        return self.latent_window(self.mouth_edit.window, "mouth_edit.window")

    @property
    def nod_window(self) -> tuple[slice, slice]:
        """nod.window in latent pixels (rows, cols), as mouth_window."""
        return self.latent_window(self.nod.window, "nod.window")

    @property
    def blink_window(self) -> tuple[slice, slice]:
        """blink.window in latent pixels (rows, cols), as mouth_window."""
        return self.latent_window(self.blink.window, "blink.window")

    @property
    def expression_window(self) -> tuple[slice, slice]:
        """expression_edit.window in latent pixels (rows, cols), as mouth_window."""
        return self.latent_window(self.expression_edit.window, "expression_edit.window")

    def latent_window(self, window: tuple[float, float, float, float], name: str
                      ) -> tuple[slice, slice]:
        n = self.latent_size

        def side(a: float, b: float) -> slice:
            lo, hi = math.floor(a * n), math.ceil(b * n)    # a < b (validated): hi > lo
            if (hi - lo) % 2:
                hi, lo = (hi + 1, lo) if hi < n else (hi, lo - 1)
            if lo < 0:
                raise ValueError(f"{name} {window} has no even-sided region in a {n}x{n} "
                                 f"latent")
            return slice(lo, hi)

        top, bottom, left, right = window
        return side(top, bottom), side(left, right)

    @property
    def tokens_per_frame(self) -> int:
        return (self.latent_size // self.dit.patch) ** 2

    @property
    def tokens_per_chunk(self) -> int:
        return self.tokens_per_frame * self.stream.chunk_frames

    @property
    def samples_per_frame(self) -> int:
        return self.audio.sample_rate // self.stream.fps

    @property
    def mels_per_frame(self) -> int:
        return self.samples_per_frame // self.audio.hop

    @property
    def audio_window_frames(self) -> int:
        return self.audio.history_frames + self.stream.chunk_frames + self.audio.lookahead_frames

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def with_emotion_gain(self, gain: float) -> "ModelConfig":
        """The same model streaming at stream.emotion_gain `gain` (validated)."""
        return self.replace(stream=dataclasses.replace(self.stream, emotion_gain=gain))


def _tiny() -> ModelConfig:
    # 4x VAE (32x32x4 latents) patched 4x4: 64 tokens a frame, as the 8x VAE patched 2x2 of
    # sessions 1-3, but eyes and brows survive the round trip (docs/training.md, session 4).
    # Frame-aligned audio (radius 2, session 6): each frame hears its own +-80 ms.
    return ModelConfig(vae=VAEConfig(channels=(32, 64)), audio=AudioConfig(frame_radius=2),
                       dit=DiTConfig(patch=4))


def _small() -> ModelConfig:
    return ModelConfig(
        name="small", frame_size=128,
        vae=VAEConfig(channels=(48, 96, 128), blocks_per_level=1),
        audio=AudioConfig(dim=192, layers=2, frame_radius=2),
        dit=DiTConfig(dim=384, depth=8, heads=6, rope_dims=32),
        stream=StreamConfig(window_chunks=3, online_steps=3),
    )


def _base() -> ModelConfig:
    return ModelConfig(
        name="base", frame_size=256,
        vae=VAEConfig(latent_channels=8, channels=(64, 128, 256), blocks_per_level=2),
        audio=AudioConfig(dim=384, layers=4, heads=6, frame_radius=2),
        dit=DiTConfig(dim=768, depth=12, heads=12, rope_dims=32),
        stream=StreamConfig(window_chunks=4, online_steps=4, base_steps=32),
    )


def _lpm_17b() -> ModelConfig:
    # The paper's Base LPM scale (~17B parameters): a 5120-wide, 30-block DiT.
    return ModelConfig(
        name="lpm-17b", frame_size=512,
        vae=VAEConfig(latent_channels=16, channels=(128, 256, 512), blocks_per_level=2),
        audio=AudioConfig(dim=1280, layers=8, heads=20, frame_radius=2),
        dit=DiTConfig(dim=5120, depth=30, heads=40, rope_dims=64),
        stream=StreamConfig(window_chunks=6, online_steps=4, base_steps=50),
    )


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "tiny": _tiny,
    "small": _small,
    "base": _base,
    "lpm-17b": _lpm_17b,
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}") from None


# ---------------------------------------------------------------------------------- YAML edge
def dataclass_to_dict(value: Any) -> Any:
    """Nested (frozen) dataclasses -> plain dicts/lists for YAML; shared by every typed config."""
    if dataclasses.is_dataclass(value):
        return {f.name: dataclass_to_dict(getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [dataclass_to_dict(v) for v in value]
    return value


def _check_window(name: str, w: tuple[float, ...]) -> None:
    if len(w) != 4 or not (0 <= w[0] < w[1] <= 1 and 0 <= w[2] < w[3] <= 1):
        raise ValueError(f"{name} is (top, bottom, left, right), fractions of the frame with "
                         f"top < bottom and left < right, got {w}")


def config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    return dataclass_to_dict(cfg)


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        default = getattr(cls(), name) if name in fields else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f"{where}.{name}")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{where}.{name}: expected a boolean, got {value!r}")
            kwargs[name] = value
        elif isinstance(default, (int, float)) and not isinstance(value, (int, float)):
            raise ValueError(f"{where}.{name}: expected a number, got {value!r}")
        else:
            kwargs[name] = type(default)(value) if isinstance(default, (int, float, str)) else value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    return _from_dict(ModelConfig, data, "model config")


def save_config(cfg: ModelConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_config(path: str | Path) -> ModelConfig:
    return config_from_dict(yaml.safe_load(Path(path).read_text()))
