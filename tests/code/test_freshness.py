"""The event-to-recommendation delay probe against a fake service on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shoprank.serving.freshness import DelaySettings, measure_event_delay, summarize_delays


class FakeService(ThreadingHTTPServer):
    """``/recommend`` lists products 1..k minus those viewed at least ``lag_s`` ago.

    With ``forgetful`` every other answer ignores the events (a worker that never saw them).
    """

    def __init__(self, lag_s: float = 0.0, forgetful: bool = False, never: bool = False):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lag_s, self.forgetful, self.never = lag_s, forgetful, never
        self.viewed: dict[int, float] = {}
        self.answers = 0

    def listed(self, k: int) -> list[int]:
        self.answers += 1
        now = time.monotonic()
        hidden = set()
        if not self.never and not (self.forgetful and self.answers % 2 == 0):
            hidden = {p for p, at in self.viewed.items() if now - at >= self.lag_s}
        return [p for p in range(1, k + len(hidden) + 1) if p not in hidden][:k]


class Handler(BaseHTTPRequestHandler):
    server: FakeService

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/events":
            self.server.viewed[body["product_id"]] = time.monotonic()
            answer = {"logged": True, "pushed": True, "degraded": False}
        else:
            items = [{"product_id": p} for p in self.server.listed(body["k"])]
            answer = {"items": items, "degraded": False}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake(request) -> Iterator[tuple[str, FakeService]]:
    server = FakeService(**getattr(request, "param", {}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


FAST = DelaySettings(trials=3, timeout_s=0.5, confirm_polls=2, poll_interval_s=0.01)


def test_an_event_seen_at_once_is_visible_on_the_first_poll(fake):
    url, _ = fake
    summary = measure_event_delay(url, [7, 8], FAST)
    assert summary["trials"] == summary["measured"] == summary["visible"] == 3
    assert summary["first_poll_visible"] == summary["visible_within"] == 3
    assert summary["visible_within_and_stable"] == 3
    assert summary["trials_with_regressions"] == 0 and summary["pushed"] == 3
    assert [t["user_id"] for t in summary["per_trial"]] == [7, 8, 7]
    assert summary["delay_ms"]["max"] < 500


@pytest.mark.parametrize("fake", [{"lag_s": 0.2}], indirect=True)
def test_a_lagging_event_is_timed_from_its_send(fake):
    url, _ = fake
    summary = measure_event_delay(url, [7], FAST)
    assert summary["visible"] == 3 and summary["first_poll_visible"] == 0
    assert all(t["polls"] > 1 for t in summary["per_trial"])
    assert summary["delay_ms"]["p50"] >= 200


@pytest.mark.parametrize("fake", [{"never": True}], indirect=True)
def test_an_event_never_seen_has_no_delay_figures(fake):
    url, _ = fake
    summary = measure_event_delay(url, [7], FAST)
    assert summary["not_visible"] == 3 and summary["visible_within"] == 0
    assert summary["delay_ms"] == {"p50": None, "p95": None, "max": None}


@pytest.mark.parametrize("fake", [{"forgetful": True}], indirect=True)
def test_a_worker_that_missed_the_event_is_a_regression(fake):
    url, _ = fake
    summary = measure_event_delay(url, [7], FAST)
    assert summary["trials_with_regressions"] == 3
    assert summary["visible_within"] == 3 and summary["visible_within_and_stable"] == 0


def test_a_refused_connection_is_a_failed_trial():
    summary = measure_event_delay("http://127.0.0.1:9", [7], FAST)
    assert summary["failed"] == 3 and summary["measured"] == 0
    assert "error" in summary["per_trial"][0]


def test_unseen_trials_rank_last():
    trials = [
        {"delay_ms": d, "polls": 1, "regressions": 0, "event_ms": 1.0, "pushed": True}
        for d in (10.0, 20.0, None, None)
    ]
    summary = summarize_delays(trials, FAST)
    assert summary["delay_ms"]["p50"] == 20.0 and summary["delay_ms"]["p95"] is None
    assert summary["visible"] == 2 and summary["not_visible"] == 2
