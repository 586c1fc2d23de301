"""Session audio: streaming resampling to the model rate and a bounded per-channel track.

Clients send PCM16 mono at any integer rate in the configured range; the model wants float32 at
16 kHz on the session timeline. `Resampler` is a windowed-sinc interpolator evaluated at exact
rational positions (output n sits at input position n * rate_in / rate_out, integer arithmetic,
so nothing drifts over hours), streaming: it keeps the input tail its filter still needs.
`AudioTrack` places resampled runs on the timeline by pts and answers reads of any sample range,
zero-filling what was never sent, so a chunk is always computable (the stream never stalls).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npc_runtime.server.errors import invalid

_HALF_TAPS = 16          # filter half-width, in samples of the lower of the two rates
_CUTOFF = 0.94           # fraction of the lower Nyquist kept; the rest is the transition band
_BLOCK = 4096            # outputs computed per vectorised block (bounds temporary memory)
_MAX_TABLE_PHASES = 8192  # rates with at most this many filter phases use a precomputed table


def _kaiser(x: np.ndarray, beta: float = 8.0) -> np.ndarray:
    inside = np.abs(x) < 1.0
    out = np.zeros_like(x)
    out[inside] = np.i0(beta * np.sqrt(1.0 - x[inside] ** 2)) / np.i0(beta)
    return out


class Resampler:
    """Streaming rate_in -> rate_out conversion of one contiguous run of samples."""

    def __init__(self, rate_in: int, rate_out: int) -> None:
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.identity = self.rate_in == self.rate_out
        ratio = min(1.0, self.rate_out / self.rate_in)
        self.fc = _CUTOFF * ratio                        # cutoff, cycles per input sample * 2
        self.half = int(np.ceil(_HALF_TAPS / ratio))     # half-width in input samples
        self._buf = np.zeros(0, dtype=np.float64)        # input from index self._buf_start
        self._buf_start = 0
        self._n_in = 0                                   # input samples received
        self._n_out = 0                                  # output samples produced
        self._taps = np.arange(-self.half + 1, self.half + 1)
        # Output n's filter phase repeats every rate_out / gcd outputs: tabulate it when that is
        # small (all common rates), which makes resampling a gather and a dot product.
        g = np.gcd(self.rate_in, self.rate_out)
        self._phase_div = self.rate_out // g
        self._table = (self._weights(np.arange(self._phase_div) / self._phase_div)
                       if self._phase_div <= _MAX_TABLE_PHASES and not self.identity else None)

    def _weights(self, frac: np.ndarray) -> np.ndarray:
        dist = self._taps[None, :] - frac[:, None]            # (n, 2*half)
        w = self.fc * np.sinc(self.fc * dist) * _kaiser(dist / self.half)
        return w / w.sum(axis=1, keepdims=True)              # unit DC gain at every phase

    def _produce(self, n_end: int) -> np.ndarray:
        """Outputs [self._n_out, n_end); input outside what was received counts as zero."""
        outs = []
        for lo in range(self._n_out, n_end, _BLOCK):
            n = np.arange(lo, min(n_end, lo + _BLOCK), dtype=np.int64)
            num = n * self.rate_in
            i0 = num // self.rate_out                    # input sample at or before output n
            rem = num % self.rate_out
            if self._table is not None:
                w = self._table[rem * self._phase_div // self.rate_out]
            else:
                w = self._weights(rem / self.rate_out)
            idx = i0[:, None] + self._taps[None, :]      # (n, 2*half)
            local = idx - self._buf_start
            valid = (local >= 0) & (local < len(self._buf))
            if len(self._buf):
                x = self._buf[np.clip(local, 0, len(self._buf) - 1)] * valid
            else:
                x = np.zeros(local.shape)
            outs.append((x * w).sum(axis=1))
        self._n_out = max(self._n_out, n_end)
        return np.concatenate(outs).astype(np.float32) if outs else np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add input; return every output whose filter support is now complete."""
        x = np.asarray(samples, dtype=np.float64)
        self._n_in += len(x)
        if self.identity:
            self._n_out += len(x)
            return x.astype(np.float32)
        self._buf = np.concatenate([self._buf, x])
        # output n needs input up to floor(n * rate_in / rate_out) + half
        last_in = self._n_in - 1 - self.half
        n_end = 0 if last_in < 0 else (last_in * self.rate_out) // self.rate_in + 1
        out = self._produce(n_end) if n_end > self._n_out else np.zeros(0, np.float32)
        keep_from = (self._n_out * self.rate_in) // self.rate_out - self.half
        if keep_from > self._buf_start:                  # drop input no future output needs
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from
        return out

    def flush(self) -> np.ndarray:
        """The remaining outputs up to the end of the input (the future is taken as silence)."""
        if self.identity:
            return np.zeros(0, np.float32)
        n_end = -(-self._n_in * self.rate_out // self.rate_in)   # ceil
        return self._produce(n_end) if n_end > self._n_out else np.zeros(0, np.float32)


@dataclass
class WriteResult:
    late_samples: int        # model-rate samples placed before the frontier (already rendered)
    dropped_samples: int     # samples before the buffer start, discarded


class AudioTrack:
    """One channel (SPEAK or LISTEN) on the session timeline, at the model rate.

    Holds samples from `base` on; the session releases history the model no longer needs, so
    memory is bounded by history + max_audio_ahead (the session enforces the latter).
    """

    def __init__(self, name: str, model_rate: int, min_rate: int, max_rate: int,
                 max_chunk_s: float, max_gap_s: float) -> None:
        self.name = name
        self.model_rate = model_rate
        self.min_rate, self.max_rate = min_rate, max_rate
        self.max_chunk_s, self.max_gap_s = max_chunk_s, max_gap_s
        self.sample_rate: int | None = None    # client rate, fixed by the first chunk
        self._resampler: Resampler | None = None
        self._run_pts_us = 0                   # pts of the current contiguous run's first sample
        self._run_samples = 0                  # client samples in the current run
        self._run_pos = 0                      # model-rate position of the run's first output
        self._run_out = 0                      # outputs of the current run written so far
        self.base = 0
        self._buf = np.zeros(0, dtype=np.float32)
        self.frontier = 0                      # first model sample not yet rendered

    # --- client side -----------------------------------------------------------------------
    @property
    def end_us(self) -> int:
        """Timeline end of the audio received so far (0 before any)."""
        if self.sample_rate is None:
            return 0
        return self._run_pts_us + self._run_samples * 1_000_000 // self.sample_rate

    def check(self, pcm16: bytes, sample_rate: int, pts_us: int | None) -> tuple[np.ndarray, int]:
        """Validate one chunk without changing anything; returns (samples, start pts)."""
        if len(pcm16) % 2:
            raise invalid(f"audio.pcm16 on {self.name}: odd byte count {len(pcm16)} "
                          "(expected 16-bit samples)")
        if not self.min_rate <= sample_rate <= self.max_rate:
            raise invalid(f"audio.sample_rate {sample_rate} Hz on {self.name} is outside "
                          f"{self.min_rate}..{self.max_rate} Hz")
        if self.sample_rate is not None and sample_rate != self.sample_rate:
            raise invalid(f"audio.sample_rate on {self.name} changed from {self.sample_rate} to "
                          f"{sample_rate} Hz mid-stream")
        n = len(pcm16) // 2
        if n > self.max_chunk_s * sample_rate:
            raise invalid(f"audio chunk on {self.name} is {n / sample_rate:.2f} s; the limit is "
                          f"{self.max_chunk_s:g} s per message")
        expected = self.end_us
        start = expected if pts_us is None else int(pts_us)
        if start < 0:
            raise invalid(f"audio.pts_us on {self.name} is negative ({start})")
        tolerance = 1_000_000 // sample_rate + 1   # client rounding of pts to whole microseconds
        if self.sample_rate is not None and start < expected - tolerance:
            raise invalid(f"audio.pts_us on {self.name} goes backwards: {start} < end of the "
                          f"previous chunk {expected}")
        if start - expected > self.max_gap_s * 1_000_000:
            raise invalid(f"audio.pts_us on {self.name} jumps {(start - expected) / 1e6:.1f} s "
                          f"ahead; the limit is {self.max_gap_s:g} s of silence")
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        return samples, start

    def write(self, samples: np.ndarray, sample_rate: int, start_us: int) -> WriteResult:
        """Place a checked chunk on the timeline (contiguous runs continue the resampler)."""
        tolerance = 1_000_000 // sample_rate + 1
        contiguous = self.sample_rate is not None and abs(start_us - self.end_us) <= tolerance
        result = WriteResult(0, 0)
        if not contiguous:
            if self._resampler is not None:
                self._place(self._resampler.flush(), result)
            self.sample_rate = sample_rate
            self._resampler = Resampler(sample_rate, self.model_rate)
            self._run_pts_us, self._run_samples, self._run_out = start_us, 0, 0
            self._run_pos = round(start_us * self.model_rate / 1_000_000)
        self._run_samples += len(samples)
        assert self._resampler is not None
        self._place(self._resampler.push(samples), result)
        return result

    def flush(self) -> None:
        """End of input: emit the resampler's tail (called on stop)."""
        if self._resampler is not None:
            self._place(self._resampler.flush(), WriteResult(0, 0))

    def _place(self, out: np.ndarray, result: WriteResult) -> None:
        start = self._run_pos + self._run_out
        self._run_out += len(out)
        if start < self.base:                    # older than the history we keep
            cut = min(len(out), self.base - start)
            result.dropped_samples += cut
            out, start = out[cut:], start + cut
        result.late_samples += max(0, min(start + len(out), self.frontier) - start)
        if not len(out):
            return
        end = start + len(out)
        if end > self.base + len(self._buf):
            self._buf = np.concatenate(
                [self._buf, np.zeros(end - self.base - len(self._buf), np.float32)])
        self._buf[start - self.base:end - self.base] = out

    # --- engine side -----------------------------------------------------------------------
    def read(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) at the model rate; never-sent samples are silence."""
        out = np.zeros(end - start, dtype=np.float32)
        lo, hi = max(start, self.base), min(end, self.base + len(self._buf))
        if hi > lo:
            out[lo - start:hi - start] = self._buf[lo - self.base:hi - self.base]
        return out

    def release_before(self, sample: int) -> None:
        """Forget samples before `sample` (history the model will not ask for again)."""
        if sample > self.base:
            drop = min(sample - self.base, len(self._buf))
            self._buf = self._buf[drop:]
            self.base = sample

    @property
    def buffered_until(self) -> int:
        return self.base + len(self._buf)
