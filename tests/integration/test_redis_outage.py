"""A Redis outage under a real ``bentoml serve``: degraded answers in budget, never a 5xx.

The served tiny shop is materialized into a real redis-server, the service runs against it
with its production worker count, and /recommend requests flow without pause while Redis
stalls (SIGSTOP: it accepts connections and never answers) and resumes, then is stopped
(``SHUTDOWN SAVE``, as an operator's restart) and started again on the same port and
directory (it reloads its dump). Normal answers when Redis is up; segment-popularity answers
with ``degraded: true`` within the budget while it is not; normal again soon after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from shoprank.features import store
from shoprank.serving.bench import free_port

pytestmark = pytest.mark.slow

#: Longest a request may take while Redis is stalled or down (client side, HTTP included).
#: The store's part is bounded by ``online_timeout_ms`` (50 ms); the rest is the fallback.
BUDGET_S = 1.0
#: Longest the service may keep answering degraded once Redis answers again.
RECOVERY_S = 5.0
#: How long each phase runs while requests flow, and the fewest answers it must see.
PHASE_S = 4.0
MIN_PER_PHASE = 10
#: The client's own limit (BentoML's is 10 s): a request hanging past it is a failure.
REQUEST_TIMEOUT_S = 15.0


class RedisServer:
    """A redis-server on 127.0.0.1 that can be stopped and started again with its data."""

    def __init__(self, binary: str, workdir: Path):
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, retry=None)

    def start(self, timeout_s: float = 15.0) -> None:
        """Start (it loads ``dump.rdb`` from its directory) and wait until it answers PING."""
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--dir", str(self.workdir), "--dbfilename", "dump.rdb"]
        cmd += ["--save", "", "--appendonly", "no"]
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                time.sleep(0.05)
        pytest.fail(f"redis-server on port {self.port} not ready within {timeout_s} s")

    def stop(self) -> None:
        """``SHUTDOWN SAVE``: write the dump, close every connection, exit."""
        assert self.process is not None and self.process.poll() is None
        with contextlib.suppress(redis.ConnectionError):  # it closes this connection too
            self.client().shutdown(save=True)
        self.process.wait(timeout=15)

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing answers (a stalled Redis)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT (nothing when it is not running)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Stop whatever still runs (fixture teardown)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture(scope="module")
def redis_served(served_copy, served_cutoff, tmp_path_factory):
    """The served shop with its online store in a real redis-server; yields (settings, server)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (CI installs it: apt-get install redis-server)")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis_outage"))
    server.start()
    try:
        settings = served_copy(
            "redis_served", online=False, online_store="redis", redis_url=server.url
        )
        store.apply(settings)
        store.materialize(settings, end=served_cutoff, fresh=True)
        yield settings, server
    finally:
        server.kill()


@dataclass
class Reply:
    """One request the driver sent: in which phase it left and came back, and what it got."""

    sent_in: str
    done_in: str
    sent: float
    done: float
    status: int | None  # None: no HTTP answer at all
    degraded: bool | None
    body: dict
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


class Driver:
    """Sends /recommend requests back to back from a thread, tagging each with the phase.

    Every request opens its own connection (as distinct shoppers do), so the kernel spreads
    them over all the service's workers.
    """

    def __init__(self, base_url: str, bodies: list[dict]):
        self.url = f"{base_url}/recommend"
        self.bodies = bodies
        self.phase = "warmup"
        self.answers: list[Reply] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REQUEST_TIMEOUT_S + 5)
        assert not self._thread.is_alive(), "the request driver did not stop"

    def in_phase(self, phase: str) -> list[Reply]:
        """Answers sent and received within ``phase``."""
        return [a for a in self.answers if a.sent_in == a.done_in == phase]

    def wait_for(self, phase: str, seconds: float, at_least: int = MIN_PER_PHASE) -> None:
        """Let requests flow in ``phase`` for ``seconds`` and until ``at_least`` answers."""
        deadline = time.monotonic() + seconds
        hard = deadline + 30
        while time.monotonic() < hard and (
            time.monotonic() < deadline or len(self.in_phase(phase)) < at_least
        ):
            assert self._thread.is_alive(), "the request driver died"
            time.sleep(0.05)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            body = self.bodies[turn % len(self.bodies)]
            turn += 1
            phase, sent = self.phase, time.monotonic()
            try:
                response = httpx.post(self.url, json=body, timeout=REQUEST_TIMEOUT_S)
                status = response.status_code
                degraded = response.json().get("degraded") if status == 200 else None
                error = None if status == 200 else response.text[:300]
            except (httpx.HTTPError, ValueError) as exc:
                status, degraded, error = None, None, f"{type(exc).__name__}: {exc}"
            done = time.monotonic()
            self.answers.append(Reply(phase, self.phase, sent, done, status, degraded, body, error))


def degraded_total(base_url: str, endpoint: str = "recommend") -> float:
    """``shoprank_degraded_total`` for ``endpoint`` from /metrics (summed over workers)."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("shoprank_degraded_total{") and f'endpoint="{endpoint}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def post_event(base_url: str, body: dict) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = httpx.post(f"{base_url}/events", json=body, timeout=REQUEST_TIMEOUT_S)
    answer = response.json() if response.status_code == 200 else {"error": response.text}
    return response.status_code, answer, time.monotonic() - started


def summary(answers: list[Reply]) -> str:
    """Counts and the slowest of ``answers``, for messages and the test's output."""
    statuses: dict[object, int] = {}
    for a in answers:
        statuses[a.status] = statuses.get(a.status, 0) + 1
    degraded = sum(a.degraded is True for a in answers)
    slowest = max((a.seconds for a in answers), default=0.0)
    return (
        f"{len(answers)} answers, statuses {statuses}, degraded {degraded}, "
        f"normal {sum(a.degraded is False for a in answers)}, max {slowest * 1000:.0f} ms"
    )


@dataclass(frozen=True)
class Phase:
    """What Redis does from the phase's start (``action``), and what answers should be."""

    name: str
    action: str | None  # a RedisServer method
    degraded: bool  # while it lasts (after RECOVERY_S, for a phase that recovers)
    recovers: bool = False
    events: int = 1


PHASES = (
    Phase("normal", None, degraded=False),
    Phase("stalled", "pause", degraded=True, events=2),
    Phase("resumed", "resume", degraded=False, recovers=True),
    Phase("down", "stop", degraded=True, events=3),
    Phase("up", "start", degraded=False, recovers=True),
)


def test_a_redis_outage_degrades_answers_and_never_fails_them(redis_served, serve, served_cutoff):
    from shoprank.candidates.data import load_catalog
    from shoprank.ranking.examples import load_users

    settings, redis_server = redis_served
    users = [int(u) for u in load_users(settings).index[:12]]
    products = iter(int(p) for p in load_catalog(settings.warehouse_path).frame.index[:20])
    # the driver's users, half of them in a session; the first at a fixed moment, so that its
    # answers before and after can be compared
    moment = (served_cutoff + timedelta(hours=10)).astimezone(UTC).isoformat()
    fixed = {"user_id": users[0], "context": {"timestamp": moment}}
    bodies = [fixed] + [
        {"user_id": u, "session_id": f"outage-{u}"} if i % 2 else {"user_id": u}
        for i, u in enumerate(users[1:10])
    ]
    shopper = {"user_id": users[11], "session_id": "outage-shopper", "event_type": "view"}
    events: dict[str, list[tuple[int, dict, float]]] = {}
    started: dict[str, float] = {}

    with serve(settings) as server:
        first = httpx.post(f"{server.base_url}/recommend", json=fixed, timeout=10).json()
        degraded_before = degraded_total(server.base_url)
        driver = Driver(server.base_url, bodies)
        driver.start()
        try:
            for phase in PHASES:
                driver.phase = f"to {phase.name}"  # answers in flight now are not judged
                if phase.action == "stop":
                    keys_before = redis_server.client().dbsize()
                if phase.action:
                    getattr(redis_server, phase.action)()
                if phase.action == "start":
                    keys_after = redis_server.client().dbsize()
                started[phase.name] = time.monotonic()
                driver.phase = phase.name
                seconds = PHASE_S + (RECOVERY_S if phase.recovers else 0.0)
                driver.wait_for(phase.name, seconds)
                events[phase.name] = [
                    post_event(server.base_url, {**shopper, "product_id": next(products)})
                    for _ in range(phase.events)
                ]
        finally:
            driver.phase = "end"
            driver.stop()
            redis_server.resume()
        last = httpx.post(f"{server.base_url}/recommend", json=fixed, timeout=10).json()
        degraded_after = degraded_total(server.base_url)

    answers = driver.answers
    print(f"\nall {summary(answers)}")
    for phase in PHASES:
        posted = [(status, a.get("pushed"), round(t * 1000)) for status, a, t in events[phase.name]]
        print(f"{phase.name}: {summary(driver.in_phase(phase.name))}; events {posted}")
        if phase.recovers:
            normal = [a for a in driver.in_phase(phase.name) if a.degraded is False]
            wait = normal[0].done - started[phase.name] if normal else float("nan")
            print(f"  first normal answer {wait * 1000:.0f} ms after Redis answered again")
    between = [a for a in answers if a.sent_in != a.done_in or a.sent_in.startswith("to ")]
    print(f"in flight at a change: {summary(between)}")

    failures = [a for a in answers if a.status != 200]
    assert not failures, f"{len(failures)} requests failed: {failures[:3]}"

    for phase in PHASES:
        replies = driver.in_phase(phase.name)
        assert len(replies) >= MIN_PER_PHASE, (phase.name, summary(replies))
        if phase.recovers:
            # Redis answers again: the service uses it again within RECOVERY_S, then always
            recovered = [a for a in replies if a.degraded is False]
            assert recovered, f"{phase.name}: no normal answer: {summary(replies)}"
            assert recovered[0].done - started[phase.name] < RECOVERY_S, phase.name
            replies = [a for a in replies if a.sent > started[phase.name] + RECOVERY_S]
            assert len(replies) >= MIN_PER_PHASE, (phase.name, summary(replies))
        wrong = [a for a in replies if a.degraded is not phase.degraded]
        assert not wrong, f"{phase.name}: {len(wrong)} answers with degraded={not phase.degraded}"
        if phase.degraded:
            slowest = max(a.seconds for a in replies)
            assert slowest < BUDGET_S, f"{phase.name}: an answer took {slowest * 1000:.0f} ms"

    # Redis came back with its data; the same request gets the same list as before
    assert keys_after == keys_before > 0
    assert first["degraded"] is False and last["degraded"] is False
    assert [i["product_id"] for i in last["items"]] == [i["product_id"] for i in first["items"]]

    # every fallback answer was counted (the counter sums over the workers)
    seen = sum(a.degraded is True for a in answers)
    assert degraded_after - degraded_before == seen > 0

    # events: always logged; pushed when Redis is up, degraded (never failed) when it is not
    for phase in PHASES:
        for status, answer, seconds in events[phase.name]:
            assert status == 200, (phase.name, answer)
            assert answer["logged"] is True, (phase.name, answer)
            assert answer["pushed"] is not phase.degraded, (phase.name, answer)
            assert answer["degraded"] is phase.degraded, (phase.name, answer)
            assert seconds < BUDGET_S, (phase.name, seconds)
    logged = settings.event_log_path.read_text().splitlines()
    assert len(logged) == sum(len(e) for e in events.values())
