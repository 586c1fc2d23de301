"""The scheduling policy and admission arithmetic, on sessions whose timing the test controls."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from npc_runtime.model.audio import audio_span
from npc_runtime.server.admission import Admission, CostModel
from npc_runtime.server.config import AdmissionConfig, Limits, SchedulerConfig, StreamConfig
from npc_runtime.server.errors import RpcError
from npc_runtime.server.scheduler import DeadlineScheduler, Priority
from npc_runtime.server.session import ModelTiming, PendingChunk, Session
from tests.perf.micro_model import micro_config

CHUNK_S = 0.16


class TimedSource:
    """A session whose next chunk falls due at `due` (seconds); it can hold after one chunk."""

    def __init__(self, name: str, due: float | None, rendered: bool = True) -> None:
        self.session_id = name
        self.due = due
        self.lead_s = CHUNK_S
        self.rendered = rendered
        self.texture_format, self.bottom_up, self.metrics = None, False, None

    def due_time(self):
        return self.due

    def can_hold(self) -> bool:
        return self.rendered


def cost_model(fixed_full=0.02, per_full=0.05, fixed_cheap=0.01, per_cheap=0.02) -> CostModel:
    """Exact linear step costs at 2 (full) and 1 (degraded) sampling steps."""
    cost = CostModel()
    for b in (1, 2, 4):
        cost.observe(b, 2, fixed_full + per_full * b)
        cost.observe(b, 1, fixed_cheap + per_cheap * b)
    return cost


def scheduler(cost=None, **cfg) -> DeadlineScheduler:
    return DeadlineScheduler(SchedulerConfig(**cfg), cost or cost_model(), full_steps=2)


def test_cost_model_recovers_fixed_and_per_session_cost():
    cost = cost_model()
    fit = cost.fit(2)
    assert fit.fixed_s == pytest.approx(0.02) and fit.per_session_s == pytest.approx(0.05)
    assert cost.predict(6, 2) == pytest.approx(0.32)
    # never measured at 3 steps: scaled from the nearest (2) by (3 + 1) / (2 + 1)
    assert cost.predict(1, 3) == pytest.approx(0.07 * 4 / 3)


def test_cost_model_follows_a_steady_load_keeping_the_calibrated_shape():
    cost = CostModel(window=8)
    for b in (1, 4):                                # calibration: 20 ms + 5 ms per session
        cost.observe(b, 2, 0.02 + 0.005 * b)
    for _ in range(8):                              # then only batches of 3, twice as slow
        cost.observe(3, 2, 2 * (0.02 + 0.005 * 3))
    assert cost.predict(3, 2) == pytest.approx(0.07)        # the level follows the load
    assert cost.predict(1, 2) == pytest.approx(0.05, rel=0.15)   # the shape is kept
    assert cost.fit(2).fixed_s > 0


def test_every_due_session_is_stepped_in_one_batch():
    due = [TimedSource(f"s{i}", 10.0) for i in range(3)]
    later = TimedSource("later", 10.1)
    done = TimedSource("done", None)
    cheap = scheduler(cost_model(per_full=0.01))
    for src in due + [later, done]:
        cheap.add_session(src, Priority.NORMAL)
    out = cheap.schedule(10.0)
    assert [len(b.sources) for b in out.batches] == [3] and out.batches[0].steps == 2
    assert set(out.batches[0].sources) == set(due) and not out.held and out.level == 0
    assert out.deadline == pytest.approx(10.0 + CHUNK_S)
    idle = cheap.schedule(9.0)
    assert idle.empty and idle.next_due == pytest.approx(10.0)


def test_max_batch_splits_with_heroes_and_urgent_sessions_first():
    s = scheduler(cost_model(per_full=0.001), max_batch=2)
    late = TimedSource("late", 9.9)
    hero = TimedSource("hero", 10.0)
    normal = TimedSource("normal", 9.95)
    s.add_session(normal, Priority.NORMAL)
    s.add_session(late, Priority.NORMAL)
    s.add_session(hero, Priority.HERO)
    out = s.schedule(10.0)
    assert [b.sources for b in out.batches] == [[hero, late], [normal]]


def test_predicted_overrun_degrades_everyone_but_the_hero():
    s = scheduler()           # full: 20 ms + 50 ms/session; degraded: 10 ms + 20 ms/session
    hero = TimedSource("hero", 10.0)
    others = [TimedSource(f"n{i}", 10.0) for i in range(3)]
    s.add_session(hero, Priority.HERO)
    for o in others:
        s.add_session(o, Priority.NORMAL)
    out = s.schedule(10.0)    # all at full steps: 220 ms > 160 ms of slack
    assert out.level == 1
    full, cheap = out.batches
    assert full.sources == [hero] and full.steps == 2 and not full.degraded
    assert set(cheap.sources) == set(others) and cheap.steps == 1 and cheap.degraded


def test_level_two_holds_background_every_other_chunk_and_never_a_hero():
    # degraded steps barely cheaper: only holding background chunks brings the tick in time
    s = scheduler(cost_model(per_full=0.05, fixed_cheap=0.02, per_cheap=0.045))
    hero = TimedSource("hero", 10.0)
    bg = [TimedSource(f"bg{i}", 10.0) for i in range(3)]
    s.add_session(hero, Priority.HERO)
    for b in bg:
        s.add_session(b, Priority.BACKGROUND)
    held_rounds = []
    for tick in range(4):
        out = s.schedule(10.0)
        assert out.level == 2
        assert hero in out.batches[0].sources and hero not in out.held
        held_rounds.append(set(out.held))
        took = [s.cost.predict(len(b.sources), b.steps) for b in out.batches]
        s.update_from_output(out, took, finished_at=10.0)
    assert held_rounds[0] == set(bg) and held_rounds[1] == set()   # alternate chunks
    assert held_rounds[2] == set(bg)
    never = TimedSource("fresh", 10.0, rendered=False)   # nothing rendered yet: cannot hold
    s.add_session(never, Priority.BACKGROUND)
    assert never not in s.schedule(10.0).held


def test_overrun_raises_the_floor_until_enough_ticks_are_on_time():
    s = scheduler(cost_model(per_full=0.001), recover_ticks=3)
    a = TimedSource("a", 10.0)
    s.add_session(a, Priority.NORMAL)
    out = s.schedule(10.0)
    assert out.level == 0
    s.update_from_output(out, [0.021], finished_at=10.3)        # deadline was 10.16
    assert s.schedule(10.0).level == 1
    for _ in range(3):
        out = s.schedule(10.0)
        s.update_from_output(out, [0.021], finished_at=10.01)
    assert s.schedule(10.0).level == 0


def test_degradation_off_keeps_full_quality():
    s = scheduler(degrade=False)
    for i in range(4):
        s.add_session(TimedSource(f"n{i}", 10.0), Priority.BACKGROUND)
    out = s.schedule(10.0)
    assert out.level == 0 and len(out.batches) == 1 and out.batches[0].steps == 2


def test_capacity_follows_measurement_and_refusal_names_it():
    cost = cost_model(fixed_full=0.01, per_full=0.025)
    adm = Admission(AdmissionConfig(target_utilisation=0.75), cost, CHUNK_S, 2,
                    configured_limit=16)
    assert adm.capacity() == 4                    # (0.12 - 0.01) / 0.025 = 4.4
    adm.check(3)
    with pytest.raises(RpcError) as e:
        adm.check(4)
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "current capacity is 4" in e.value.message
    for _ in range(64):                           # the machine got slower: capacity follows
        cost.observe(4, 2, 0.01 + 0.05 * 4)
        cost.observe(1, 2, 0.01 + 0.05)
    assert adm.capacity() == 2
    assert Admission(AdmissionConfig(), cost, CHUNK_S, 2, configured_limit=1).capacity() == 1
    fixed = Admission(AdmissionConfig(measured=False), cost, CHUNK_S, 2, configured_limit=9)
    assert fixed.capacity() == 9 and "measurement says 2" in fixed.explain()
    slow = CostModel()
    slow.observe(1, 2, 1.0)                        # one stream alone is not real time
    assert Admission(AdmissionConfig(min_capacity=1), slow, CHUNK_S, 2, 16).capacity() == 1


def test_held_chunk_repeats_the_last_frame_with_exact_pts():
    cfg = micro_config()
    timing = ModelTiming(cfg.stream.fps, cfg.stream.chunk_frames, cfg.audio.sample_rate,
                         cfg.emotion_dim, lambda k: audio_span(cfg, k))
    loop = asyncio.new_event_loop()
    try:
        neutral = np.eye(cfg.emotion_dim, dtype=np.float32)[0]
        s = Session("s", "npc", timing, Limits(), StreamConfig(), neutral, loop, None)
        assert not s.can_hold()
        s.make_request(s.t0)
        s.deliver([bytes([i]) * 8 for i in range(4)])
        assert s.can_hold() and s.due_time() is not None
        assert s.hold(s.t0) == 4
        loop.run_until_complete(asyncio.sleep(0))
        first, held = s.queue.get_nowait(), s.queue.get_nowait()
        assert isinstance(held, PendingChunk) and held.chunk_index == 1
        assert [f.pts_us for f in held.frames] == [160_000, 200_000, 240_000, 280_000]
        assert all(f.payload == first.frames[-1].payload for f in held.frames)
    finally:
        loop.close()
