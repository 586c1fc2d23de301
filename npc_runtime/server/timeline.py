"""Per-frame tracks built from timed cues: the emotion track and dialogue line markers.

Emotion cues apply at a pts and blend linearly from whatever the track holds at that moment to
the cue's target over the cue's transition time. A cue whose pts was already rendered starts at
the first frame not yet rendered (the past cannot change); cues must not go backwards in pts.
Both tracks keep only what can still matter (the segment in force and the pending ones).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from npc_runtime.server.errors import exhausted, invalid


@dataclass(frozen=True)
class _Segment:
    start_us: int
    src: np.ndarray         # weights when the transition starts
    dst: np.ndarray         # weights when it ends
    transition_us: int

    def at(self, t_us: float) -> np.ndarray:
        if self.transition_us <= 0 or t_us >= self.start_us + self.transition_us:
            return self.dst
        a = max(0.0, (t_us - self.start_us) / self.transition_us)
        return (1.0 - a) * self.src + a * self.dst


class EmotionTrack:
    def __init__(self, initial: np.ndarray, max_pending: int) -> None:
        w = np.asarray(initial, dtype=np.float32)
        self._segments = [_Segment(0, w, w, 0)]
        self._last_cue_us = 0
        self.max_pending = max_pending

    def value_at(self, t_us: float) -> np.ndarray:
        starts = [s.start_us for s in self._segments]
        i = max(0, bisect_right(starts, t_us) - 1)
        return self._segments[i].at(t_us).astype(np.float32)

    def check_cue(self, pts_us: int | None, transition_s: float, max_transition_s: float) -> None:
        if not (0.0 <= transition_s <= max_transition_s):
            raise invalid(f"emotion.transition_s must be in 0..{max_transition_s:g}, "
                          f"got {transition_s!r}")
        if pts_us is not None and pts_us < self._last_cue_us:
            raise invalid(f"emotion.pts_us goes backwards: {pts_us} < previous cue at "
                          f"{self._last_cue_us}")
        if len(self._segments) > self.max_pending:
            raise exhausted(f"more than {self.max_pending} emotion cues pending")

    def add_cue(self, target: np.ndarray, pts_us: int | None, transition_s: float,
                frontier_us: int) -> int:
        """Add a checked cue; returns the pts where it takes effect."""
        start = frontier_us if pts_us is None else max(int(pts_us), frontier_us)
        start = max(start, self._last_cue_us)
        src = self.value_at(start)
        # A cue at the same time as pending later ones replaces them: time order is kept.
        self._segments = [s for s in self._segments if s.start_us < start] or self._segments[:1]
        self._segments.append(_Segment(start, src, np.asarray(target, np.float32),
                                       int(round(transition_s * 1e6))))
        self._last_cue_us = start
        return start

    def frames(self, pts_us: list[int]) -> np.ndarray:
        return np.stack([self.value_at(t) for t in pts_us])           # (C, emotion_dim)

    def release_before(self, t_us: int) -> None:
        """Drop segments entirely superseded before t_us."""
        while len(self._segments) > 1 and self._segments[1].start_us <= t_us:
            self._segments.pop(0)


@dataclass(frozen=True)
class LineMarker:
    line_id: str
    start_us: int
    end_us: int | None
    text: str


class LineTrack:
    """Dialogue line markers; a line lasts to its end pts or the next line's start."""

    MAX_ID_CHARS = 128
    MAX_TEXT_CHARS = 4096

    def __init__(self, max_pending: int) -> None:
        self._lines: list[LineMarker] = []
        self.max_pending = max_pending

    def check(self, line_id: str, start_us: int, end_us: int | None, text: str) -> None:
        if not line_id or len(line_id) > self.MAX_ID_CHARS:
            raise invalid(f"line.line_id must be 1..{self.MAX_ID_CHARS} characters")
        if len(text) > self.MAX_TEXT_CHARS:
            raise invalid(f"line.text is longer than {self.MAX_TEXT_CHARS} characters")
        if start_us < 0:
            raise invalid(f"line.start_pts_us is negative ({start_us})")
        if end_us is not None and end_us <= start_us:
            raise invalid(f"line.end_pts_us {end_us} is not after start_pts_us {start_us}")
        if self._lines and start_us < self._lines[-1].start_us:
            raise invalid(f"line.start_pts_us goes backwards: {start_us} < previous line at "
                          f"{self._lines[-1].start_us}")
        if len(self._lines) >= self.max_pending:
            raise exhausted(f"more than {self.max_pending} line markers pending")

    def add(self, marker: LineMarker) -> None:
        self._lines.append(marker)

    def _end(self, i: int) -> int | None:
        line = self._lines[i]
        nxt = self._lines[i + 1].start_us if i + 1 < len(self._lines) else None
        if line.end_us is None:
            return nxt
        return line.end_us if nxt is None else min(line.end_us, nxt)

    def line_at(self, t_us: int) -> LineMarker | None:
        for i in range(len(self._lines) - 1, -1, -1):
            line = self._lines[i]
            if line.start_us <= t_us:
                end = self._end(i)
                return line if end is None or t_us < end else None
        return None

    def release_before(self, t_us: int) -> None:
        """Drop lines that ended before t_us (keeps the one in force)."""
        while self._lines:
            end = self._end(0)
            if end is not None and end <= t_us:
                self._lines.pop(0)
            else:
                break
