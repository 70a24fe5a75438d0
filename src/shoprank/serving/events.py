"""Live events: the append-only log on disk and what the service keeps of it in memory.

Every event posted to the service is appended to a JSON-lines file first (the record the
next refit and the monitoring jobs read); every worker follows the file into
:class:`LiveEvents`, the in-memory view its next request reads: each user's and each
anonymous session's events since the served model was fit. A worker that starts reads the
whole file, so nothing posted is forgotten and every worker sees every event.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from shoprank.candidates.data import EVENT_WEIGHTS

EVENT_TYPES = tuple(EVENT_WEIGHTS)
#: Live events a query carries (``Queries.live_items``), as in the evaluation.
LIVE_LENGTH = 20


@dataclass(frozen=True)
class LiveEvent:
    """One event posted to the service (``at`` aware UTC)."""

    user_id: int | None
    session_id: str
    product_id: int
    event_type: str
    at: datetime

    def to_json(self) -> str:
        """One line of the event log."""
        record = asdict(self)
        record["at"] = self.at.isoformat()
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> LiveEvent:
        """Parse one line of the event log."""
        record = json.loads(line)
        record["at"] = datetime.fromisoformat(record["at"])
        return cls(**record)


class EventLog:
    """An append-only JSON-lines file shared by every worker of the service.

    Each append is one whole line, written under an exclusive file lock and synced to disk
    before returning. Every worker :meth:`follow`-s the file, so an event posted to one
    worker is seen by all of them at their next request.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._offset = 0

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the log for a read-append-push step (across threads and processes)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock

    def append(self, event: LiveEvent) -> None:
        """Write one event (whole line or nothing). Call inside :meth:`exclusive`."""
        line = event.to_json() + "\n"
        with self.path.open("a+b") as out:
            if out.tell() > 0:  # a line torn by a crash is ended, not continued
                out.seek(out.tell() - 1)
                if out.read(1) != b"\n":
                    line = "\n" + line
            out.write(line.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())

    def follow(self) -> list[LiveEvent]:
        """Events appended since the last call (all of them the first time).

        Only whole lines are read; a line being written is read next time, and a torn line
        left by a crash is skipped.
        """
        with self._read_lock:
            try:
                size = os.stat(self.path).st_size
            except FileNotFoundError:
                return []
            if size <= self._offset:
                return []
            with self.path.open("rb") as source:
                source.seek(self._offset)
                data = source.read(size - self._offset)
            end = data.rfind(b"\n") + 1
            self._offset += end
        return _parsed(data[:end].decode("utf-8").splitlines())


def _parsed(lines: list[str]) -> list[LiveEvent]:
    events = []
    for line in lines:
        try:
            events.append(LiveEvent.from_json(line))
        except (ValueError, TypeError, KeyError):
            continue
    return events


class LiveEvents:
    """Events since the model's fit, by user and by anonymous session, in arrival order."""

    def __init__(self, since: datetime):
        self.since = since
        self._lock = threading.Lock()
        self._by_user: dict[int, list[LiveEvent]] = defaultdict(list)
        self._by_session: dict[str, list[LiveEvent]] = defaultdict(list)

    def add(self, event: LiveEvent) -> None:
        """Remember ``event`` (events before the fit are already in the model)."""
        if event.at < self.since:
            return
        with self._lock:
            if event.user_id is not None:
                self._by_user[event.user_id].append(event)
            else:
                self._by_session[event.session_id].append(event)

    def of(self, user_id: int | None, session_id: str | None, until: datetime) -> list[LiveEvent]:
        """The user's (or, anonymous, the session's) events at or before ``until``, oldest first."""
        with self._lock:
            if user_id is not None:
                events = list(self._by_user.get(user_id, ()))
            else:
                events = list(self._by_session.get(session_id or "", ()))
        return sorted((e for e in events if e.at <= until), key=lambda e: e.at)

    def count(self) -> int:
        """Events held."""
        with self._lock:
            users = sum(map(len, self._by_user.values()))
            return users + sum(map(len, self._by_session.values()))


def live_arrays(
    events: list[LiveEvent], length: int = LIVE_LENGTH
) -> tuple[np.ndarray, np.ndarray]:
    """(1, length) live items and weights, most recent first (``Queries.live_items``)."""
    items = np.full((1, length), -1, dtype=np.int64)
    weights = np.zeros((1, length), dtype=np.float32)
    latest = list(reversed(events))[:length]
    for position, event in enumerate(latest):
        items[0, position] = event.product_id
        weights[0, position] = EVENT_WEIGHTS[event.event_type]
    return items, weights


def merged_recent(events: list[LiveEvent], before: np.ndarray, length: int) -> np.ndarray:
    """(1, length) last distinct products: live ones (newest first), then those of the fit."""
    out = np.full((1, length), -1, dtype=np.int64)
    seen: list[int] = []
    for product in [e.product_id for e in reversed(events)] + [int(p) for p in before if p >= 0]:
        if product not in seen:
            seen.append(product)
        if len(seen) == length:
            break
    out[0, : len(seen)] = seen
    return out


def touched(events: list[LiveEvent]) -> np.ndarray:
    """Distinct products of the live events (never recommended back in the session)."""
    return np.unique(np.asarray([e.product_id for e in events], dtype=np.int64))
