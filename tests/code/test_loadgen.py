"""The open-loop load generator against a tiny in-process HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shoprank.serving.bench import BenchSettings, next_search_rate, recommend_only, step_search
from shoprank.serving.loadgen import (
    LoadSettings,
    RequestTemplate,
    build_schedule,
    default_mix,
    percentile,
    run_load,
    summarize,
)

RECOMMEND = RequestTemplate("recommend", "POST", "/recommend", body={"user_id": 1, "k": 5})


class TinyServer:
    """HTTP/1.1 keep-alive server in its own thread and event loop.

    Answers at once, except: ``/fail`` is a 500, ``/slow`` takes one second, and when
    request number ``stall_at`` arrives the whole server freezes for ``stall_s`` (every
    request arriving meanwhile waits until the freeze ends, like a GC pause).
    """

    def __init__(self, stall_at: int | None = None, stall_s: float = 0.2) -> None:
        self.stall_at, self.stall_s = stall_at, stall_s
        self.count = 0
        self.stall_window: tuple[float, float] | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def start(self) -> str:
        self.thread.start()
        coro = asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _shutdown(self) -> None:
        self.server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _wait_for_stall(self) -> None:
        self.count += 1
        now = time.monotonic()
        if self.count == self.stall_at:
            self.stall_window = (now, now + self.stall_s)
        if self.stall_window and now < self.stall_window[1]:
            await asyncio.sleep(self.stall_window[1] - now)

    async def _answer(self, path: str, body: bytes) -> tuple[int, bytes]:
        await self._wait_for_stall()
        if path == "/fail":
            return 500, b'{"error": "boom"}'
        if path == "/slow":
            await asyncio.sleep(1.0)
        request = json.loads(body or b"{}")
        answer = {"items": [], "degraded": request.get("user_id") is None}
        return 200, json.dumps(answer).encode()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                path = head[0].split(" ")[1]
                headers = dict(line.lower().split(":", 1) for line in head[1:] if ":" in line)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload = await self._answer(path, body)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def make_server() -> Iterator:
    servers: list[TinyServer] = []

    def make(**kwargs) -> tuple[TinyServer, str]:
        server = TinyServer(**kwargs)
        servers.append(server)
        return server, server.start()

    yield make
    for server in servers:
        server.stop()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_schedule_is_fixed_rate_and_deterministic():
    mix = default_mix(range(1, 51), range(100, 200))
    first = build_schedule(mix, rate=100, duration_s=2, seed=3)
    assert len(first) == 200
    assert [r.offset_s for r in first[:3]] == [0.0, 0.01, 0.02]
    assert first == build_schedule(mix, rate=100, duration_s=2, seed=3)
    assert first != build_schedule(mix, rate=100, duration_s=2, seed=4)
    assert {r.kind for r in first} == {"known_user", "unknown_user", "in_session", "event"}


def test_default_mix_bodies_follow_the_service_contract():
    mix = {t.kind: t for t in default_mix([5, 6, 7], [42], k=4, sessions=2)}
    schedule = build_schedule(list(mix.values()), rate=200, duration_s=1, seed=0)
    bodies = {r.kind: json.loads(r.payload) for r in schedule}
    assert bodies["known_user"] == {
        "user_id": bodies["known_user"]["user_id"],
        "session_id": None,
        "k": 4,
    }
    assert bodies["unknown_user"]["user_id"] > 7
    assert bodies["in_session"]["user_id"] in (5, 6)
    assert bodies["in_session"]["session_id"] == f"bench-{bodies['in_session']['user_id']}"
    assert bodies["event"]["product_id"] == 42
    assert bodies["event"]["event_type"] in ("view", "cart", "purchase")
    assert mix["event"].path == "/events" and mix["known_user"].path == "/recommend"
    assert {t.kind for t in recommend_only(list(mix.values()))} == {
        "known_user",
        "unknown_user",
        "in_session",
    }


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 99) is None


def test_achieved_rate_is_close_to_target(make_server):
    _, url = make_server()
    started = time.monotonic()
    result = run_load(url, [RECOMMEND], LoadSettings(rate=200, duration_s=2))
    summary = summarize(result)
    assert time.monotonic() - started < 4
    assert summary["sent"] == summary["ok"] == 400
    assert summary["errors"]["total"] == 0
    assert 170 <= summary["achieved_rps"] <= 205
    assert summary["latency_ms"]["p50"] < 20
    assert summary["loadgen"]["cpu_seconds"] > 0


def test_stall_delays_every_request_scheduled_during_it(make_server):
    server, url = make_server(stall_at=100, stall_s=0.2)
    result = run_load(url, [RECOMMEND], LoadSettings(rate=200, duration_s=1.5))
    assert server.stall_window is not None
    stall_start, stall_end = server.stall_window
    during = [
        o
        for o in result.outcomes
        if stall_start <= result.started_monotonic + o.offset_s < stall_end - 0.02
    ]
    # ~36 requests were due during the freeze; each waited until it ended, so its latency
    # from the scheduled time covers the rest of the freeze. A closed loop would have sent
    # none of them and recorded a single slow request.
    assert len(during) >= 25
    for outcome in during:
        due = result.started_monotonic + outcome.offset_s
        assert outcome.ok
        assert outcome.latency_ms >= (stall_end - due) * 1000 - 5
    slow = [o for o in result.outcomes if o.latency_ms >= 100]
    assert len(slow) >= 15
    summary = summarize(result)
    assert 180 <= summary["latency_ms"]["max"] <= 600
    assert summary["latency_ms"]["p50"] < 50


def test_http_errors_and_degraded_answers_are_counted(make_server):
    _, url = make_server()
    mix = [
        RequestTemplate("ok", "POST", "/recommend", body={"user_id": 1}),
        RequestTemplate("anonymous", "POST", "/recommend", body={"user_id": None}),
        RequestTemplate("fail", "POST", "/fail", body={}),
    ]
    summary = summarize(run_load(url, mix, LoadSettings(rate=150, duration_s=1)))
    assert summary["sent"] == 150
    assert summary["errors"]["by_kind"] == {"http_500": summary["by_kind"]["fail"]}
    assert summary["degraded"] == summary["by_kind"]["anonymous"]
    assert summary["ok"] == summary["by_kind"]["ok"] + summary["by_kind"]["anonymous"]
    assert summary["answered"] == 150


def test_refused_connections_are_counted_and_the_run_is_bounded():
    url = f"http://127.0.0.1:{_unused_port()}"
    started = time.monotonic()
    summary = summarize(run_load(url, [RECOMMEND], LoadSettings(rate=50, duration_s=0.5)))
    assert time.monotonic() - started < 2.5
    assert summary["errors"]["by_kind"] == {"connection": 25}
    assert summary["ok"] == 0 and summary["answered"] == 0
    assert summary["latency_ms"]["p99"] is None


def test_timeouts_are_counted_and_bound_the_run(make_server):
    _, url = make_server()
    slow = RequestTemplate("slow", "POST", "/slow", body={"user_id": 1})
    settings = LoadSettings(rate=40, duration_s=0.5, timeout_s=0.2)
    started = time.monotonic()
    summary = summarize(run_load(url, [slow], settings))
    assert time.monotonic() - started < 0.5 + 0.2 + 1.0
    assert summary["errors"]["by_kind"] == {"timeout": 20}


def test_in_flight_cap_queues_requests_and_the_wait_counts(make_server):
    _, url = make_server()
    slow = RequestTemplate("slow", "POST", "/slow", body={"user_id": 1})
    settings = LoadSettings(rate=20, duration_s=0.5, timeout_s=1.6, max_in_flight=2)
    summary = summarize(run_load(url, [slow], settings))
    # Two slots, one second per answer: the first two succeed, the rest wait for a slot
    # and run out of time counted from their scheduled send.
    assert summary["ok"] == 2
    assert summary["errors"]["by_kind"] == {"timeout": 8}


def test_step_search_brackets_the_highest_passing_rate():
    settings = BenchSettings(search_steps=5, search_resolution_rps=20)
    capacity = 260.0

    def measure(rate: float) -> dict:
        return {"target_rps": rate, "meets_slo": rate <= capacity}

    fixed = [measure(rate) for rate in (100.0, 200.0, 300.0)]
    found = step_search(measure, fixed, settings)
    assert [s["target_rps"] for s in found["steps"]] == [250.0, 275.0, 262.0]
    assert found["max_rate_rps"] == 250.0 and found["first_failing_rps"] == 262.0
    assert next_search_rate(300.0, None, settings) == 450.0
    assert next_search_rate(None, 100.0, settings) == 50.0
