"""Running the bench: stream a performer's frames through the probes and score them.

Frames are consumed chunk by chunk: each chunk is read by the probe and reduced to per-frame
statistics (colour mean/std, sharpness, temporal differences), and only the first seconds are
kept for the side-by-side video, so a 10-minute stream costs probe time, not memory.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from npc_runtime.bench import metrics as M
from npc_runtime.bench.cases import BenchCase
from npc_runtime.bench.performers import Performer
from npc_runtime.bench.probes import Probe
from npc_runtime.world.performance import EXPRESSION_INDEX, NUM_PERF, P

log = logging.getLogger(__name__)
VIDEO_SECONDS = 8.0


@dataclass
class Observation:
    """What the judge saw of one performer on one case."""

    case: BenchCase
    perf_hat: np.ndarray  # (T, NUM_PERF) probe readings
    id_hat: np.ndarray  # (T, F) probe identity features, z-scored
    id_ref: np.ndarray  # (F,) the reference image's identity features, z-scored
    perf_ref: np.ndarray  # (NUM_PERF,) probe reading of the (neutral, frontal) reference
    frame_mean: np.ndarray  # (T, 3)
    frame_std: np.ndarray  # (T,)
    sharpness: np.ndarray  # (T,)
    d1: np.ndarray  # (T-1,)
    d2: np.ndarray  # (T-2,)
    seconds: float
    first_frame_s: float
    video: np.ndarray  # (V, H, W, 3) the first VIDEO_SECONDS
    metrics: dict = field(default_factory=dict)


def _chunks(frames) -> Iterable[np.ndarray]:
    """A whole-array answer is split into chunks so both kinds stream the same way."""
    if isinstance(frames, np.ndarray):
        return (frames[i:i + 100] for i in range(0, len(frames), 100))
    return frames


def _sharpness(x: np.ndarray) -> np.ndarray:
    """Mean |Laplacian| per frame (blur lowers it)."""
    g = x.mean(-1)
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return np.abs(lap).mean((1, 2))


def observe(performer: Performer, case: BenchCase, probe: Probe) -> Observation:
    """Run `performer` on `case`, reading every frame with the probe."""
    z_mean, z_std = probe.net.mean.numpy()[NUM_PERF:], probe.net.std.numpy()[NUM_PERF:]
    ref_perf, ref_id = probe.read(case.references[:1])
    perfs, ids, means, stds, sharp, d1, d2 = [], [], [], [], [], [], []
    video, n_video = [], int(VIDEO_SECONDS * case.fps)
    prev: np.ndarray | None = None  # the last two frames of the previous chunk
    t0 = time.perf_counter()
    first_frame_s, busy = None, 0.0
    count = 0
    it = iter(_chunks(performer.perform(case)))
    while True:
        t_ask = time.perf_counter()
        try:
            chunk = next(it)
        except StopIteration:
            break
        busy += time.perf_counter() - t_ask  # time spent inside the performer only
        if first_frame_s is None:
            first_frame_s = time.perf_counter() - t0
        chunk = np.asarray(chunk)
        if chunk.ndim != 4 or chunk.shape[-1] != 3 or chunk.dtype != np.uint8:
            raise ValueError(f"{performer.name}: frames must be (T, H, W, 3) uint8, got "
                             f"{chunk.shape} {chunk.dtype}")
        perf, ident = probe.read(chunk)
        perfs.append(perf)
        ids.append((ident - z_mean) / z_std)
        x = chunk.astype(np.float32) / 255.0
        means.append(x.mean((1, 2)))
        stds.append(x.std((1, 2, 3)))
        sharp.append(_sharpness(x))
        ctx = x if prev is None else np.concatenate([prev, x])
        if len(ctx) >= 2:
            diff = np.diff(ctx, axis=0)
            step = np.abs(diff).mean((1, 2, 3))
            accel = np.abs(np.diff(diff, axis=0)).mean((1, 2, 3)) if len(ctx) >= 3 else []
            # Skip the differences already counted with the previous chunk.
            d1.append(step if prev is None else step[len(prev) - 1:])
            accel = np.asarray(accel)
            d2.append(accel if prev is None else accel[max(0, len(prev) - 2):])
        prev = x[-2:]
        if count < n_video:
            video.append(chunk[: n_video - count])
        count += len(chunk)
    if count != case.num_frames:
        raise ValueError(f"{performer.name} gave {count} frames for case {case.name!r}, "
                         f"expected {case.num_frames}")
    return Observation(
        case=case, perf_hat=np.concatenate(perfs), id_hat=np.concatenate(ids),
        id_ref=((ref_id[0] - z_mean) / z_std), perf_ref=ref_perf[0],
        frame_mean=np.concatenate(means),
        frame_std=np.concatenate(stds), sharpness=np.concatenate(sharp),
        d1=np.concatenate(d1), d2=np.concatenate(d2) if d2 else np.zeros(0),
        seconds=busy, first_frame_s=first_frame_s or 0.0, video=np.concatenate(video))


def lip_reference(case: BenchCase) -> np.ndarray:
    """Ground-truth jaw track when known, else the SPEAK audio's per-frame energy envelope."""
    if case.gt_perf is not None:
        return case.gt_perf[:, P["jaw_open"]]
    hop = len(case.speak_audio) // case.num_frames
    a = case.speak_audio[: hop * case.num_frames].reshape(case.num_frames, hop)
    return np.sqrt((a ** 2).mean(1))


def case_metrics(obs: Observation) -> dict:
    c, fps = obs.case, obs.case.fps
    csim = M.cosine_rows(obs.id_hat, obs.id_ref)
    out = {"frames": c.num_frames, "perform_s": obs.seconds,
           "fps": c.num_frames / max(obs.seconds, 1e-9),
           "time_to_first_frame_s": obs.first_frame_s}
    out.update(M.lip_sync(obs.perf_hat[:, P["jaw_open"]], lip_reference(c), c.speaking, fps))
    out["identity_csim"] = float(csim.mean())
    out["identity_csim_per_s"] = M.per_second(csim, fps).round(4).tolist()
    out.update(M.drift(csim, obs.frame_mean, obs.frame_std, obs.sharpness, fps))
    # Expression is read relative to the neutral reference: the probe's reading of a neutral
    # face of this identity is its bias for this identity, not an expression.
    expr = obs.perf_hat.copy()
    expr[:, EXPRESSION_INDEX] -= obs.perf_ref[EXPRESSION_INDEX]
    out.update(M.emotion_scores(expr, c.emotion, fps))
    out.update(M.listening_counts(obs.perf_hat, c.speaking, c.listening, fps))
    out.update(M.temporal(obs.d1, obs.d2, c.chunk))
    return out


def aggregate(observations: Sequence[Observation]) -> dict:
    """Suite-level scores: means over cases, rates over summed durations, FPD, rank-1 ID."""
    ms = [o.metrics for o in observations]
    mean = lambda k: float(np.mean([m[k] for m in ms]))  # noqa: E731
    total = lambda k: float(np.sum([m[k] for m in ms]))  # noqa: E731
    out = {k: mean(k) for k in ("lip_sync_corr", "lip_sync_confidence", "identity_csim",
                                "drift_identity", "drift_image", "drift_sharpness",
                                "emotion_accuracy", "emotion_intensity_mae", "emotion_corr",
                                "quiet_mouth_open", "quiet_mouth_motion", "flicker",
                                "frame_change", "chunk_boundary_ratio", "time_to_first_frame_s")}
    out["lip_sync_offset_frames"] = int(np.median([m["lip_sync_offset_frames"] for m in ms]))
    out["lip_sync_abs_offset_frames"] = float(
        np.mean([abs(m["lip_sync_offset_frames"]) for m in ms]))
    out["fps"] = total("frames") / max(total("perform_s"), 1e-9)
    out["nod_rate_listen_per_min"] = 60 * total("nods_listen") / max(total("listen_s"), 1e-9)
    out["nod_rate_silence_per_min"] = 60 * total("nods_silence") / max(total("silence_s"), 1e-9)
    out["listen_nod_gain_per_min"] = out["nod_rate_listen_per_min"] - out[
        "nod_rate_silence_per_min"]
    # Contrast in [-1, 1]: a head that jitters all the time (noise) nods "everywhere" and scores
    # ~0 however many pulses it makes; +1 means nods only while the partner speaks.
    out["listen_nod_contrast"] = out["listen_nod_gain_per_min"] / (
        out["nod_rate_listen_per_min"] + out["nod_rate_silence_per_min"] + 1.0)
    out["blink_rate_per_min"] = 60 * total("blinks") / max(total("duration_s"), 1e-9)
    # The world blinks more while its partner speaks (24 vs 12 a minute, world/behaviour.py):
    # the "nod/blink rates while the partner speaks clearly above silence".
    out["blink_rate_listen_per_min"] = 60 * total("blinks_listen") / max(total("listen_s"), 1e-9)
    out["blink_rate_silence_per_min"] = 60 * total("blinks_silence") / max(
        total("silence_s"), 1e-9)
    out["listen_blink_gain_per_min"] = out["blink_rate_listen_per_min"] - out[
        "blink_rate_silence_per_min"]
    # Pooled over windows, not averaged over cases: a case may have few strong windows or none.
    out["emotion_strong_windows"] = int(total("emotion_strong_windows"))
    out["emotion_accuracy_strong"] = total("emotion_strong_correct") / max(
        out["emotion_strong_windows"], 1)
    refs = np.stack([o.id_ref for o in observations])
    ident = M.identification([o.id_hat for o in observations], refs)
    out["identity_rank1"] = float(np.mean(ident))
    out["identity_rank1_min_case"] = float(np.min(ident))
    with_gt = [o for o in observations if o.case.gt_perf is not None]
    if with_gt:
        out["fpd"] = M.fpd([o.perf_hat for o in with_gt], [o.case.gt_perf for o in with_gt])
    return out


def run_performers(performers: Sequence[Performer], cases: Sequence[BenchCase], probe: Probe
                   ) -> dict[str, tuple[dict, list[Observation]]]:
    """Every performer on every case -> {name: (result, observations)}.

    Case by case, each performer in turn: their speeds (frames over time inside the performer)
    are then taken over the same stretch of the run, minutes apart rather than an hour, so a
    host that slows for a while slows them alike and their ratio holds (session 25: the same
    bytes, run performer by performer an hour apart, read 9.6x and 12.1x the Base's speed)."""
    names = [p.name for p in performers]
    if len(set(names)) != len(names):
        raise ValueError(f"performers need distinct names, got {names}")
    observed: dict[str, list[Observation]] = {name: [] for name in names}
    for case in cases:
        for performer in performers:
            log.info("%s: case %s (%d frames)", performer.name, case.name, case.num_frames)
            obs = observe(performer, case, probe)
            obs.metrics = case_metrics(obs)
            observed[performer.name].append(obs)
    return {name: ({"aggregate": aggregate(obs), "cases": {o.case.name: o.metrics for o in obs}},
                   obs) for name, obs in observed.items()}


def run_performer(performer: Performer, cases: Sequence[BenchCase], probe: Probe
                  ) -> tuple[dict, list[Observation]]:
    return run_performers([performer], cases, probe)[performer.name]
