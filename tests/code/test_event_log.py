"""The event log every worker of the service shares: appends are whole, followers see all."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shoprank.serving.events import EventLog, LiveEvent

START = datetime(2025, 12, 20, 12, tzinfo=UTC)


def _event(i: int, user: int = 7) -> LiveEvent:
    return LiveEvent(user, f"s{user}", 100 + i, "view", START + timedelta(seconds=i))


def test_a_follower_sees_what_another_worker_appended(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    writer, reader = EventLog(path), EventLog(path)
    assert reader.follow() == []
    with writer.exclusive():
        writer.append(_event(0))
        writer.append(_event(1))
    assert reader.follow() == [_event(0), _event(1)]
    assert reader.follow() == []  # each event once
    with writer.exclusive():
        writer.append(_event(2))
    assert reader.follow() == [_event(2)]
    assert EventLog(path).follow() == [_event(0), _event(1), _event(2)]  # a new worker: all


def test_a_line_being_written_is_read_only_when_whole(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    whole = _event(0).to_json() + "\n"
    half = _event(1).to_json()
    path.write_text(whole + half[:20], encoding="utf-8")
    assert log.follow() == [_event(0)]
    with path.open("a", encoding="utf-8") as out:
        out.write(half[20:] + "\n")
    assert log.follow() == [_event(1)]


def test_an_event_after_a_line_torn_by_a_crash_is_not_lost(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(_event(0).to_json() + "\n" + _event(1).to_json()[:25], encoding="utf-8")
    log = EventLog(path)
    with log.exclusive():
        log.append(_event(2))
    assert EventLog(path).follow() == [_event(0), _event(2)]  # the torn one is skipped


def _append_many(path: str, user: int, n: int) -> None:
    log = EventLog(Path(path))
    for i in range(n):
        with log.exclusive():
            log.append(_event(i, user))


def test_workers_appending_at_once_lose_and_tear_nothing(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(path), u, 200)) for u in (1, 2)]
    threads = [threading.Thread(target=_append_many, args=(str(path), u, 200)) for u in (3, 4)]
    for runner in workers + threads:
        runner.start()
    for runner in workers + threads:
        runner.join(timeout=60)
    assert all(w.exitcode == 0 for w in workers)
    events = EventLog(path).follow()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 800
    for user in (1, 2, 3, 4):
        mine = [e for e in events if e.user_id == user]
        assert mine == [_event(i, user) for i in range(200)]  # all, in each writer's order
