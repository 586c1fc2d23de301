"""The scheduler: which sessions the engine steps on each tick, together, and at what quality.

Interface (vLLM-style; the engine thread is the only caller):

* ``add_session(source, priority)`` — a stream joins; it is considered from its next due chunk.
* ``finish(source)`` — a stream leaves; a chunk in flight is delivered first (sessions join and
  leave at chunk boundaries, never mid-step).
* ``schedule(now) -> SchedulerOutput`` — every session whose next chunk is due, grouped into
  batches (one model step each, with a sampling-step count) plus the sessions whose chunk is
  held (repeated instead of rendered), and when to wake next if nothing is due.
* ``update_from_output(output, durations, finished_at)`` — the measured duration of each batch;
  feeds the cost model and the overload state.

`DeadlineScheduler` is the policy. Every due session is batched (up to `max_batch` per step),
heroes first, then by earliest deadline (the pacing time of the chunk's first frame). It picks a
degradation level per tick, the lowest whose predicted cost (from the measured `CostModel`) fits
before the earliest deadline, and never lower than the level recent overruns forced:

    0  full quality: one batch at the model's sampling steps
    1  heroes at full steps; everyone else at `degraded_steps` (a second, cheaper batch)
    2  as 1, and BACKGROUND streams render every other chunk (the other is held: its frames
       repeat the last rendered frame, so they show 12.5 of 25 fps but never stall)

Heroes are never degraded. A tick that still overruns raises the floor one level; the floor
drops one level after `recover_ticks` consecutive on-time ticks. Past level 2 every stream
lags together and the session's own skip-ahead (FRAMES_DROPPED after `max_lag_s`) bounds
latency; admission control keeps steady state below that.
"""

from __future__ import annotations

import enum
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

from npc_runtime.server.admission import CostModel
from npc_runtime.server.config import SchedulerConfig

log = logging.getLogger(__name__)

MAX_LEVEL = 2


class Priority(enum.IntEnum):
    BACKGROUND = 0
    NORMAL = 1
    HERO = 2

    @classmethod
    def parse(cls, text: str) -> "Priority":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"priority must be hero, normal or background, got {text!r}") \
                from None


class ChunkSource(Protocol):
    """What the scheduler and engine need from a session (server.session.Session)."""
    session_id: str
    texture_format: Any
    bottom_up: bool
    lead_s: float
    metrics: Any

    def due_time(self) -> float | None: ...
    def make_request(self, now: float) -> Any: ...
    def deliver(self, payloads: list[bytes]) -> None: ...
    def can_hold(self) -> bool: ...
    def hold(self, now: float) -> int: ...
    def fail(self, error) -> None: ...


@dataclass
class Batch:
    """One model step: these sessions' next chunks at `steps` sampling steps."""
    steps: int
    sources: list[ChunkSource]
    degraded: bool = False


@dataclass
class SchedulerOutput:
    batches: list[Batch] = field(default_factory=list)
    held: list[ChunkSource] = field(default_factory=list)
    level: int = 0
    deadline: float | None = None      # earliest first-frame time among the scheduled chunks
    next_due: float | None = None      # when something falls due (nothing scheduled now)

    @property
    def empty(self) -> bool:
        return not self.batches and not self.held


class Scheduler(ABC):
    """Decides, tick by tick, which sessions are stepped together and how."""

    @abstractmethod
    def add_session(self, source: ChunkSource, priority: Priority) -> None:
        """Start considering `source`; its first chunk is scheduled when it falls due."""

    @abstractmethod
    def finish(self, source: ChunkSource) -> None:
        """Stop considering `source` (idempotent)."""

    @abstractmethod
    def schedule(self, now: float) -> SchedulerOutput:
        """The work of this tick: batches to step and chunks to hold."""

    @abstractmethod
    def update_from_output(self, output: SchedulerOutput, durations: list[float],
                           finished_at: float) -> None:
        """Measured seconds per batch of `output`, and when the tick's work ended."""

    @property
    @abstractmethod
    def num_sessions(self) -> int:
        """Sessions currently considered."""


@dataclass
class _Entry:
    source: ChunkSource
    priority: Priority
    held_last: bool = False


class DeadlineScheduler(Scheduler):
    def __init__(self, cfg: SchedulerConfig, cost: CostModel, full_steps: int) -> None:
        self.cfg, self.cost = cfg, cost
        self.full_steps = full_steps
        self.degraded_steps = min(cfg.degraded_steps, full_steps)
        self.level = 0                 # level used by the last tick
        self._floor = 0                # lowest level allowed, raised by overruns
        self._on_time = 0
        self._entries: dict[int, _Entry] = {}

    # --- membership ------------------------------------------------------------------------
    def add_session(self, source: ChunkSource, priority: Priority) -> None:
        self._entries[id(source)] = _Entry(source, priority)

    def finish(self, source: ChunkSource) -> None:
        self._entries.pop(id(source), None)

    @property
    def num_sessions(self) -> int:
        return len(self._entries)

    def priority_of(self, source: ChunkSource) -> Priority | None:
        e = self._entries.get(id(source))
        return e.priority if e else None

    # --- the tick --------------------------------------------------------------------------
    def schedule(self, now: float) -> SchedulerOutput:
        due: list[tuple[_Entry, float]] = []
        next_due = None
        for e in list(self._entries.values()):
            t = e.source.due_time()
            if t is None:
                continue
            if t <= now:
                due.append((e, t + e.source.lead_s))
            elif next_due is None or t < next_due:
                next_due = t
        if not due:
            return SchedulerOutput(next_due=next_due, level=self.level)
        # Heroes first, then the most urgent: when batches are split, they go in the first.
        due.sort(key=lambda d: (-d[0].priority, d[1]))
        deadline = min(d for _, d in due)
        entries = [e for e, _ in due]
        slack = deadline - now
        level = (max(self._floor, self._predicted_level(entries, slack))
                 if self.cfg.degrade else 0)
        out = self._plan(entries, level)
        out.deadline, out.level = deadline, level
        self.level = level
        return out

    def _predicted_level(self, entries: list[_Entry], slack: float) -> int:
        for level in range(MAX_LEVEL + 1):
            cost = self._cost(self._plan(entries, level))
            if cost is None or cost <= slack:
                return level
        return MAX_LEVEL

    def _cost(self, out: SchedulerOutput) -> float | None:
        total = 0.0
        for b in out.batches:
            t = self.cost.predict(len(b.sources), b.steps)
            if t is None:
                return None
            total += t
        return total

    def _plan(self, entries: list[_Entry], level: int) -> SchedulerOutput:
        out = SchedulerOutput()
        full, cheap = [], []
        for e in entries:
            if level >= 2 and e.priority == Priority.BACKGROUND and not e.held_last \
                    and e.source.can_hold():
                out.held.append(e.source)
            elif level >= 1 and e.priority != Priority.HERO:
                cheap.append(e.source)
            else:
                full.append(e.source)
        if self.degraded_steps == self.full_steps:     # nothing to gain from a second batch
            full, cheap = full + cheap, []
        for group, steps in ((full, self.full_steps), (cheap, self.degraded_steps)):
            for i in range(0, len(group), self.cfg.max_batch):
                out.batches.append(Batch(steps, group[i:i + self.cfg.max_batch],
                                         degraded=steps < self.full_steps))
        return out

    def update_from_output(self, output: SchedulerOutput, durations: list[float],
                           finished_at: float) -> None:
        for b, seconds in zip(output.batches, durations):
            self.cost.observe(len(b.sources), b.steps, seconds)
        held = {id(s) for s in output.held}
        for b in output.batches:
            for s in b.sources:
                if (e := self._entries.get(id(s))) is not None:
                    e.held_last = False
        for key in held:
            if (e := self._entries.get(key)) is not None:
                e.held_last = True
        if output.deadline is None:
            return
        if finished_at > output.deadline:
            self._on_time = 0
            if self._floor < MAX_LEVEL:
                self._floor = min(MAX_LEVEL, output.level + 1)
                log.warning("tick overran its deadline by %.0f ms: degradation level >= %d",
                            (finished_at - output.deadline) * 1e3, self._floor)
        else:
            self._on_time += 1
            if self._floor and self._on_time >= self.cfg.recover_ticks:
                self._floor -= 1
                self._on_time = 0
                log.info("on time for %d ticks: degradation floor back to %d",
                         self.cfg.recover_ticks, self._floor)
