"""Admission control from measurement: a cost model of the chunk step and the capacity it implies.

`CostModel` predicts how long one batched model step takes for B sessions at S sampling steps.
Per S it fits ``t = a + b * B`` (fixed cost + per-session cost) by least squares over the most
recent observations, so the prediction follows the machine as its load changes. Observations
come from a short calibration at startup (`calibrate`: batch sizes 1 and `calibration_batch`,
at the full and the degraded step count) and from every step the engine runs afterwards.

`Admission` turns the prediction into a capacity: the largest N whose single batched step at
full quality fits in `target_utilisation` of a chunk period (with tick alignment all streams
fall due together, so one batch per period is the steady state). Capacity is also capped by the
configured `limits.max_sessions` and by the KV-cache pool. A stream beyond capacity is refused
with RESOURCE_EXHAUSTED naming the capacity and where it came from.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from npc_runtime.server.config import AdmissionConfig
from npc_runtime.server.errors import exhausted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LinearFit:
    """step seconds = fixed_s + per_session_s * batch."""
    fixed_s: float
    per_session_s: float
    observations: int

    def predict(self, batch: int) -> float:
        return self.fixed_s + self.per_session_s * batch


class CostModel:
    """Measured step time vs batch size, per sampling-step count (thread-safe).

    The prediction is a *shape* (fixed vs per-session cost, fitted whenever the recent window
    spans several batch sizes and the fit is sane) times a *level* (the median ratio of
    recent measured to shape-predicted times). A steady load that only ever runs one batch
    size, or a machine that got slower, moves the level and keeps the calibrated shape."""

    def __init__(self, window: int = 64) -> None:
        self._obs: dict[int, deque[tuple[int, float]]] = {}
        self._shapes: dict[int, LinearFit] = {}
        self._fits: dict[int, LinearFit] = {}
        self._window = window
        self._lock = threading.Lock()

    def observe(self, batch: int, steps: int, seconds: float) -> None:
        if batch < 1 or seconds <= 0:
            return
        with self._lock:
            obs = self._obs.setdefault(steps, deque(maxlen=self._window))
            obs.append((batch, seconds))
            b = np.array([o[0] for o in obs], np.float64)
            t = np.array([o[1] for o in obs], np.float64)
            shape = _linear(b, t) or self._shapes.get(steps)
            if shape is None:
                # One batch size seen so far: the split between fixed and per-session cost is
                # unknown; assume it all scales with the batch (pessimistic for admission).
                shape = LinearFit(0.0, float(np.median(t / b)), len(obs))
            self._shapes[steps] = shape
            level = float(np.median(t / (shape.fixed_s + shape.per_session_s * b)))
            self._fits[steps] = LinearFit(shape.fixed_s * level, shape.per_session_s * level,
                                          len(obs))

    def fit(self, steps: int) -> LinearFit | None:
        with self._lock:
            return self._fits.get(steps)

    def predict(self, batch: int, steps: int) -> float | None:
        """Seconds for one step of `batch` sessions at `steps`; None before any measurement.

        A step count never measured is scaled from the nearest measured one in proportion to
        steps + 1 (the +1 is the commit pass and decode, which do not shrink with fewer steps)."""
        if batch <= 0:
            return 0.0
        with self._lock:
            if steps in self._fits:
                return self._fits[steps].predict(batch)
            if not self._fits:
                return None
            near = min(self._fits, key=lambda s: abs(s - steps))
            return self._fits[near].predict(batch) * (steps + 1) / (near + 1)

    def summary(self) -> dict[int, LinearFit]:
        with self._lock:
            return dict(self._fits)


def _linear(b: np.ndarray, t: np.ndarray) -> LinearFit | None:
    """Least-squares fixed + per-session cost, or None when the data cannot tell them apart
    (one batch size) or the fit is not physical (noise on a busy machine)."""
    if np.ptp(b) == 0:
        return None
    slope, intercept = np.polyfit(b, t, 1)
    if slope <= 0 or intercept < 0:
        return None
    return LinearFit(float(intercept), float(slope), len(b))


def calibrate(model, cost: CostModel, steps: tuple[int, ...], batch: int, repeats: int) -> None:
    """Time real chunk steps of throwaway sessions (engine thread only: it drives the model).

    Runs at batch sizes 1 and `batch` for every step count in `steps`; the first step of each
    configuration is a warm-up and is not recorded."""
    from npc_runtime.pipeline import ChunkRequest
    import time

    s = model.frame_size
    refs = np.full((1, s, s, 3), 128, np.uint8)
    identity = model.encode_identity(refs)
    sizes = sorted({1, max(1, min(batch, getattr(model, "max_sessions", batch)))})
    sids = [model.open_session(identity, seed=i) for i in range(sizes[-1])]
    original = model.steps, model.timesteps
    try:
        for n_steps in steps:
            set_sampling_steps(model, n_steps)
            for b in sizes:
                for rep in range(repeats + 1):
                    reqs = []
                    for sid in sids[:b]:
                        start, end = model.audio_span(model.chunk_index(sid))
                        quiet = np.zeros(end - start, np.float32)
                        emotion = np.zeros((model.chunk_frames, model.emotion_dim), np.float32)
                        emotion[:, 0] = 1.0
                        reqs.append(ChunkRequest(sid, quiet, quiet, emotion))
                    t0 = time.perf_counter()
                    model.step(reqs)
                    if rep:
                        cost.observe(b, n_steps, time.perf_counter() - t0)
    finally:
        model.steps, model.timesteps = original
        for sid in sids:
            model.close_session(sid)
    for n_steps, f in cost.summary().items():
        log.info("calibrated: %d step(s): %.1f ms + %.1f ms/session", n_steps,
                 f.fixed_s * 1e3, f.per_session_s * 1e3)


def set_sampling_steps(model, steps: int) -> None:
    """Point the model's sampler at `steps` steps (engine thread only, between model steps).

    PerformanceModel samples on `model.timesteps`, built from `steps` at construction; the
    engine swaps the schedule per batch so heroes keep full quality while others degrade."""
    if steps == model.steps:
        return
    from npc_runtime.sampler import flow_timesteps
    model.steps = steps
    model.timesteps = flow_timesteps(steps, model.cfg.stream.timestep_shift)


class Admission:
    """Decides whether one more stream fits; capacity follows the cost model."""

    def __init__(self, cfg: AdmissionConfig, cost: CostModel, chunk_s: float, full_steps: int,
                 configured_limit: int) -> None:
        self.cfg, self.cost = cfg, cost
        self.chunk_s, self.full_steps = chunk_s, full_steps
        self.configured_limit = configured_limit
        self.refused = 0

    def measured_capacity(self) -> int | None:
        """Largest N with predicted step(N, full steps) <= utilisation * chunk period."""
        budget = self.cfg.target_utilisation * self.chunk_s
        fit = self.cost.fit(self.full_steps)
        if fit is None:
            t1 = self.cost.predict(1, self.full_steps)
            if t1 is None:
                return None
            fit = LinearFit(0.0, t1, 0)
        if fit.per_session_s <= 0:
            return self.configured_limit
        return max(0, int((budget - fit.fixed_s) // fit.per_session_s))

    def capacity(self) -> int:
        if not self.cfg.measured:
            return self.configured_limit
        measured = self.measured_capacity()
        if measured is None:       # nothing measured yet (calibration off): trust the config
            return self.configured_limit
        return min(self.configured_limit, max(measured, self.cfg.min_capacity))

    def explain(self) -> str:
        measured = self.measured_capacity()
        fit = self.cost.fit(self.full_steps)
        if measured is None or fit is None:
            return f"configured limit {self.configured_limit}"
        if not self.cfg.measured:
            return (f"fixed limit {self.configured_limit} (admission.measured is off; "
                    f"measurement says {measured})")
        return (f"measured {fit.fixed_s * 1e3:.0f} ms + {fit.per_session_s * 1e3:.0f} ms per "
                f"stream per {self.chunk_s * 1e3:.0f} ms chunk at {self.full_steps} step(s) "
                f"-> {measured} at {self.cfg.target_utilisation:.0%} load; configured limit "
                f"{self.configured_limit}")

    def check(self, live: int) -> None:
        """Raise RESOURCE_EXHAUSTED when `live` streams already fill the capacity."""
        cap = self.capacity()
        if live >= cap:
            self.refused += 1
            raise exhausted(f"{live} streams are live; the current capacity is {cap} "
                            f"({self.explain()}); retry later or use another replica")

