"""LPM-Bench-mini metrics: pure functions from probe readings and frame statistics to scores.

Each metric is a stand-in a talking-head benchmark author would recognise:
- lip sync ~ SyncNet Sync-C / offset: correlation of the probe's mouth openness with the
  ground-truth viseme track over speech, scanned over audio-visual offsets;
- identity ~ ArcFace CSIM: cosine similarity of probe identity features (z-scored) between each
  frame and the reference image, and rank-1 identification against the suite's references;
- drift: identity similarity and image statistics in the last window versus the first;
- emotion: expression decoded back into the dominant emotion and its intensity (the base
  emotion whose prototype, scaled, fits the reading best), compared with the tagged emotion;
- listening: nod and blink rates while the partner speaks versus silence; mouth stillness when
  the character is not speaking;
- temporal: flicker (second temporal difference) and chunk-boundary discontinuity;
- FPD ~ FVD: Fréchet distance between distributions of probe-read performance (with velocity)
  and of the ground-truth performance.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg
from scipy.signal import find_peaks

from npc_runtime.world.performance import EXPRESSION_BASIS, EXPRESSION_INDEX, P


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation, 0 when either side is constant (a still face correlates with nothing)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def dilate(mask: np.ndarray, k: int) -> np.ndarray:
    return np.convolve(mask.astype(float), np.ones(2 * k + 1), mode="same") > 0


def lip_sync(mouth: np.ndarray, reference: np.ndarray, speaking: np.ndarray, fps: float,
             max_offset: int = 6) -> dict:
    """Correlation of mouth openness with the reference track over speech, per AV offset.

    offset k > 0 means the video lags the audio by k frames. Confidence (Sync-C-like) is the
    best correlation minus the median over offsets: a mouth that merely moves scores low.
    """
    mask = dilate(speaking, int(0.2 * fps))
    idx = np.flatnonzero(mask)
    idx = idx[(idx >= max_offset) & (idx < len(mouth) - max_offset)]
    offsets = np.arange(-max_offset, max_offset + 1)
    corr = np.array([pearson(mouth[idx + k], reference[idx]) if len(idx) else 0.0
                     for k in offsets])
    best = int(np.argmax(corr))
    return {"lip_sync_corr": float(corr[best]), "lip_sync_offset_frames": int(offsets[best]),
            "lip_sync_confidence": float(corr[best] - np.median(corr)),
            "lip_sync_corr_by_offset": corr.round(4).tolist()}


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (T, F) with (F,) or (T, F)."""
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na * nb, 1e-9)


def per_second(x: np.ndarray, fps: float) -> np.ndarray:
    n = int(len(x) // fps)
    if n == 0:
        return np.asarray([float(np.mean(x))]) if len(x) else np.zeros(0)
    return x[: int(n * fps)].reshape(n, int(fps), *x.shape[1:]).mean(1)


def drift(csim: np.ndarray, frame_mean: np.ndarray, frame_std: np.ndarray,
          sharpness: np.ndarray, fps: float, window_s: float = 60.0) -> dict:
    """Last window versus first: identity similarity and image statistics (window <= T/4)."""
    w = max(1, min(int(window_s * fps), len(csim) // 4))
    first, last = slice(0, w), slice(len(csim) - w, len(csim))
    image = (np.abs(frame_mean[last].mean(0) - frame_mean[first].mean(0)).mean()
             + abs(frame_std[last].mean() - frame_std[first].mean()))
    sharp0 = max(float(sharpness[first].mean()), 1e-6)
    return {"drift_window_s": w / fps,
            "identity_first": float(csim[first].mean()), "identity_last": float(csim[last].mean()),
            "drift_identity": float(csim[first].mean() - csim[last].mean()),
            "drift_image": float(image),
            "drift_sharpness": float(abs(sharpness[last].mean() - sharp0) / sharp0)}


def decode_emotion(expr: np.ndarray) -> np.ndarray:
    """(N, 6) expression offsets -> (N, vocab) emotion weights by a single-emotion fit.

    Each base emotion's prototype is scaled (>= 0) to fit the reading alone; the one that
    leaves the smallest residual wins, with its scale as intensity, and neutral takes the rest
    (max(0, 1 - scale)). Why not NNLS on all six prototypes at once (the decoding up to
    session 24): fearful's prototype is nearly a non-negative blend of surprised, sad and
    angry (condition number ~32), so a reading a little off fearful decoded as surprised, and
    the bench read its own ground-truth frames as tagged in only 87 % of strong windows (the
    world's performance track itself in 97.6 %). The single fit reads them at 99.3 % and 100 %
    (docs/bench.md, "Emotion decoding"). It scores the dominant emotion; a blend's minor
    emotion reads as 0.
    """
    e = np.asarray(expr, np.float64).reshape(-1, len(EXPRESSION_INDEX))
    protos = EXPRESSION_BASIS[1:, EXPRESSION_INDEX].astype(np.float64)  # (vocab - 1, 6)
    scale = np.clip(e @ protos.T / (protos ** 2).sum(1), 0.0, None)  # (N, vocab - 1)
    residual = ((e[:, None] - scale[..., None] * protos[None]) ** 2).sum(-1)
    best = residual.argmin(1)
    rows = np.arange(len(e))
    out = np.zeros((len(e), EXPRESSION_BASIS.shape[0]))
    out[rows, best + 1] = scale[rows, best]
    out[:, 0] = np.clip(1.0 - scale[rows, best], 0.0, None)
    return out


def labelled_windows(read: np.ndarray, want: np.ndarray, neutral_below: float = 0.2):
    """Per one-second window with a clear label: (decoded weights, tagged weights, tagged
    index, read index), index 0 = neutral (a tag or a reading under `neutral_below`).
    read (N, 6) expression offsets, want (N, vocab) tagged weights."""
    for d, w in zip(decode_emotion(read), want):
        tag = int(np.argmax(w[1:])) + 1
        if w[tag] < neutral_below:
            tag = 0
        elif w[tag] < 0.3:
            continue  # mid-transition or a weak blend: no clear label
        pred = int(np.argmax(d[1:])) + 1
        yield d, w, tag, (0 if d[pred] < neutral_below else pred)


def emotion_scores(perf_hat: np.ndarray, emotion: np.ndarray, fps: float,
                   neutral_below: float = 0.2, strong_from: float = 0.5) -> dict:
    """Per one-second window: decoded dominant emotion vs tagged, intensity error, correlation.

    `emotion_accuracy` counts every clearly labelled window, neutral ones included (the face
    must also return to rest); `emotion_strong_*` count only windows tagged with a base emotion
    at intensity >= `strong_from` (the training issue's definition: "on the tagged base
    emotions at intensity >= 0.5"), correct when the decoded dominant emotion is that tag.
    """
    read = per_second(perf_hat[:, EXPRESSION_INDEX], fps)
    want = per_second(emotion, fps)
    expected = want @ EXPRESSION_BASIS[:, EXPRESSION_INDEX]
    correct, total, strong, strong_correct, err = 0, 0, 0, 0, []
    for d, w, tag, pred in labelled_windows(read, want, neutral_below):
        hit = tag == pred
        total += 1
        correct += hit
        if tag and w[tag] >= strong_from:
            strong += 1
            strong_correct += hit
        if tag:
            err.append(abs(d[tag] - w[tag]))
    corrs = [pearson(read[:, j], expected[:, j]) for j in range(read.shape[1])
             if expected[:, j].std() > 1e-3]
    return {"emotion_accuracy": correct / max(total, 1), "emotion_windows": total,
            "emotion_strong_windows": strong, "emotion_strong_correct": strong_correct,
            "emotion_intensity_mae": float(np.mean(err)) if err else 1.0,
            "emotion_corr": float(np.mean(corrs)) if corrs else 0.0}


def events(signal: np.ndarray, fps: float, prominence: float, highpass_s: float | None,
           max_width_s: float = 1.0) -> np.ndarray:
    """Frame indices of pulses (nods in head pitch, blinks in eye closure)."""
    x = np.asarray(signal, np.float64)
    if highpass_s:
        k = max(3, int(highpass_s * fps) | 1)
        x = x - np.convolve(np.pad(x, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
    peaks, _ = find_peaks(x, prominence=prominence, distance=max(1, int(0.3 * fps)),
                          width=(1, max_width_s * fps))
    return peaks


def listening_counts(perf_hat: np.ndarray, speaking: np.ndarray, listening: np.ndarray,
                     fps: float) -> dict:
    """Event counts and durations per state (rates are formed over the whole suite)."""
    quiet = ~dilate(speaking, int(0.4 * fps))
    listen = listening & quiet
    silence = quiet & ~dilate(listening, int(1.0 * fps))  # 1 s after the partner stops: nods
    nods = events(perf_hat[:, P["head_pitch"]], fps, prominence=0.2, highpass_s=1.5)
    blinks = events(perf_hat[:, P["blink"]], fps, prominence=0.4, highpass_s=None,
                    max_width_s=0.6)
    jaw = perf_hat[:, P["jaw_open"]]
    return {
        "listen_s": listen.sum() / fps, "silence_s": silence.sum() / fps,
        "nods_listen": int(listen[nods].sum()) if len(nods) else 0,
        "nods_silence": int(silence[nods].sum()) if len(nods) else 0,
        "blinks": int(len(blinks)), "duration_s": len(jaw) / fps,
        "blinks_listen": int(listen[blinks].sum()) if len(blinks) else 0,
        "blinks_silence": int(silence[blinks].sum()) if len(blinks) else 0,
        "quiet_mouth_open": float(jaw[quiet].mean()) if quiet.any() else 0.0,
        "quiet_mouth_motion": float(np.abs(np.diff(jaw))[quiet[1:]].mean())
        if quiet[1:].any() else 0.0,
    }


def temporal(d1: np.ndarray, d2: np.ndarray, chunk: int) -> dict:
    """d1[t] = mean |f[t+1]-f[t]|, d2[t] = mean |f[t+2]-2f[t+1]+f[t]| (frames in [0, 1])."""
    t = np.arange(len(d1)) + 1  # d1[t-1] is the step into frame t
    boundary = (t % chunk) == 0
    inside = d1[~boundary].mean() if (~boundary).any() else 0.0
    at = d1[boundary].mean() if boundary.any() else 0.0
    ratio = float((at + 1e-4) / (inside + 1e-4))
    return {"flicker": float(d2.mean()) if len(d2) else 0.0,
            "frame_change": float(d1.mean()) if len(d1) else 0.0,
            "chunk_boundary_ratio": ratio}


def _with_velocity(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x[1:], np.diff(x, axis=0)], axis=1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of a and b."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca = np.cov(a, rowvar=False) + 1e-6 * np.eye(a.shape[1])
    cb = np.cov(b, rowvar=False) + 1e-6 * np.eye(b.shape[1])
    covmean = linalg.sqrtm(ca @ cb)
    covmean = covmean.real if np.iscomplexobj(covmean) else covmean
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(ca + cb - 2 * covmean))


def fpd(perf_hats: list[np.ndarray], gt_perfs: list[np.ndarray]) -> float:
    """Fréchet performance distance over a suite (position + velocity of every parameter)."""
    a = np.concatenate([_with_velocity(p) for p in perf_hats])
    b = np.concatenate([_with_velocity(g) for g in gt_perfs])
    return frechet_distance(a, b)


def identification(id_frames: list[np.ndarray], id_refs: np.ndarray) -> list[float]:
    """Per case: fraction of frames whose nearest suite reference is the case's own."""
    out = []
    for c, frames in enumerate(id_frames):
        d = ((frames[:, None, :] - id_refs[None, :, :]) ** 2).sum(-1)  # (T, C)
        out.append(float((d.argmin(1) == c).mean()))
    return out
