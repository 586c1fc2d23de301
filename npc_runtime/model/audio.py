"""Audio front end: 16 kHz PCM -> log-mel (80 bins, 10 ms hop) -> tokens aligned to video frames.

Each chunk of video sees a fixed window of audio: `history_frames` before it, its own
`chunk_frames`, and `lookahead_frames` after it (at most one chunk). The encoder looks only at
that window, so a chunk's audio tokens are a pure function of the samples in
`audio_span(chunk)`; this is what makes the Online LPM causal with bounded lookahead and lets
the Base LPM (training) and the stream (serving) compute identical tokens.

Mel frame j of a window covers samples [j*hop - (win - hop), (j+1)*hop) relative to the window's
first video frame: it ends where its hop ends, so no mel frame peeks past the window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from npc_runtime.config import AudioConfig, ModelConfig


def audio_span(cfg: ModelConfig, chunk_index: int) -> tuple[int, int]:
    """[start, end) samples (16 kHz, session timeline) that chunk `chunk_index` needs.

    The start may be negative (before the stream began): callers zero-fill there.
    """
    spf, a, c = cfg.samples_per_frame, cfg.audio, cfg.stream.chunk_frames
    first = chunk_index * c - a.history_frames
    last = (chunk_index + 1) * c + a.lookahead_frames
    return first * spf - (a.win - a.hop), last * spf


def audio_window_samples(cfg: ModelConfig) -> int:
    start, end = audio_span(cfg, 0)
    return end - start


def chunk_windows(cfg: ModelConfig, audio: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """Slice a whole track (B, S) starting at sample 0 into per-chunk windows (B, n_chunks, Sw).

    Samples outside [0, S) are zeros, exactly as the streaming session fills them.
    """
    b, s = audio.shape
    start0, end0 = audio_span(cfg, 0)
    step = cfg.stream.chunk_frames * cfg.samples_per_frame
    last_end = end0 + (n_chunks - 1) * step
    pad_left, pad_right = -start0, max(0, last_end - s)
    padded = F.pad(audio, (pad_left, pad_right))
    return padded.unfold(1, end0 - start0, step)[:, :n_chunks]  # (B, n_chunks, Sw)


def mel_filterbank(cfg: AudioConfig) -> torch.Tensor:
    """HTK-style triangular mel filters, (n_fft // 2 + 1, n_mels)."""
    def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
        return 2595.0 * torch.log10(1.0 + f / 700.0)

    def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    n_freqs = cfg.n_fft // 2 + 1
    freqs = torch.linspace(0, cfg.sample_rate / 2, n_freqs, dtype=torch.float64)
    mel_pts = torch.linspace(hz_to_mel(torch.tensor(0.0, dtype=torch.float64)),
                             hz_to_mel(torch.tensor(cfg.sample_rate / 2, dtype=torch.float64)),
                             cfg.n_mels + 2, dtype=torch.float64)
    hz = mel_to_hz(mel_pts)
    lower, center, upper = hz[:-2], hz[1:-1], hz[2:]
    up = (freqs[:, None] - lower) / (center - lower)
    down = (upper - freqs[:, None]) / (upper - center)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


class LogMel(nn.Module):
    """(N, samples) -> (N, frames, n_mels) natural-log mel energies."""

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.win), persistent=False)
        self.register_buffer("fbank", mel_filterbank(cfg), persistent=False)

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        spec = torch.stft(pcm, n_fft=cfg.n_fft, hop_length=cfg.hop, win_length=cfg.win,
                          window=self.window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()        # (N, F, frames)
        mel = power.transpose(1, 2) @ self.fbank               # (N, frames, n_mels)
        return torch.log(mel + 1e-6)


class AudioEncoder(nn.Module):
    """Per-chunk audio window (N, Sw) -> one token per video frame (N, window_frames, dim)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        a = cfg.audio
        self.cfg = cfg
        self.logmel = LogMel(a)
        self.in_norm = nn.LayerNorm(a.n_mels)
        self.conv = nn.Conv1d(a.n_mels, a.dim, 3, padding=1)
        # Groups the mel frames of one video frame into one token.
        self.pool = nn.Conv1d(a.dim, a.dim, cfg.mels_per_frame, stride=cfg.mels_per_frame)
        self.pos = nn.Parameter(torch.randn(cfg.audio_window_frames, a.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(a.dim, a.heads, 4 * a.dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, a.layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(a.dim)

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        mel = self.in_norm(self.logmel(pcm))                   # (N, M, n_mels)
        h = F.gelu(self.conv(mel.transpose(1, 2)))             # (N, dim, M)
        h = self.pool(h).transpose(1, 2) + self.pos            # (N, Fw, dim)
        return self.out_norm(self.layers(h))



# What the mouth track reads, in this order (names of the world's performance parameters).
MOUTH_PARAMS: tuple[str, ...] = ("jaw_open", "lip_width", "lip_round")


class MouthTrack(AudioEncoder):
    """Per-chunk SPEAK window (N, Sw) -> the mouth of each of the chunk's own frames (N, C, 3).

    An audio-to-mouth regressor (jaw open, lip width, lip rounding; `MOUTH_PARAMS`), as
    audio-driven face models predict visemes or blendshapes before rendering: the DiT then gets
    the mouth as a per-frame control, like the emotion, instead of having to learn phonemes
    through cross-attention from a faint pixel loss. Same architecture as the audio encoder,
    separate weights: training it (`npc-runtime train mouth`, audio only) leaves the tokens the
    DiT cross-attends to untouched. Frame j's mouth is read from the tokens of frames
    j-r..j+r (r = audio.frame_radius, at least 1), all inside the chunk's window, so the track
    keeps the stream's causality and lookahead."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        a, c = cfg.audio, cfg.stream.chunk_frames
        r = max(1, a.frame_radius)
        if r > min(a.history_frames, a.lookahead_frames):
            raise ValueError("the mouth track reads +-1 frame at least: audio history and "
                             "lookahead must be >= 1 frame")
        index = a.history_frames + torch.arange(c)[:, None] + torch.arange(-r, r + 1)[None]
        self.register_buffer("frame_index", index.flatten(), persistent=False)   # (C (2r+1),)
        self.head = nn.Linear((2 * r + 1) * a.dim, len(MOUTH_PARAMS))

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        tokens = super().forward(pcm)[:, self.frame_index]              # (N, C (2r+1), dim)
        c = self.cfg.stream.chunk_frames
        return self.head(tokens.reshape(len(pcm), c, -1))

    def chunk_frames(self, windows: torch.Tensor) -> torch.Tensor:
        """Chunk windows (B, n_chunks, Sw) -> every frame's mouth (B, n_chunks * C, 3)."""
        b, n, s = windows.shape
        return self(windows.reshape(b * n, s)).reshape(b, n * self.cfg.stream.chunk_frames, -1)
