"""Open-loop HTTP load: requests on a fixed schedule, latency from the scheduled send time.

A closed-loop client (send, wait for the answer, send the next) slows down whenever the
server does, so during a stall it simply stops sending and the requests that real users
would have sent meanwhile never record their wait (coordinated omission). Here every
request gets its send time before the run starts, ``1 / rate`` apart; it is sent then,
whatever the earlier requests are doing, and its latency runs from that scheduled time to
the last byte of its answer. Waiting for a free in-flight slot, or behind a scheduler that
fell behind, therefore counts as latency, and ``send_lag_ms`` says how late the generator
itself was so that a saturated generator is not mistaken for a slow server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

JsonBody = Mapping[str, Any]
BodySpec = JsonBody | Callable[[random.Random], JsonBody] | None

EVENT_TYPES = ("view", "cart", "purchase")
EVENT_WEIGHTS = (0.8, 0.15, 0.05)
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "known_user": 0.6,
    "unknown_user": 0.15,
    "in_session": 0.15,
    "event": 0.1,
}
_LEAD_S = 0.05  # the first request is scheduled this long after the run starts
_JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class RequestTemplate:
    """One kind of request in a mix, drawn with probability proportional to ``weight``.

    ``body`` is a fixed JSON body, a function of a seeded ``random.Random`` returning one
    (so each request can differ while the run stays reproducible), or None for no body.
    """

    kind: str
    method: str
    path: str
    weight: float = 1.0
    body: BodySpec = None


@dataclass(frozen=True)
class PlannedRequest:
    """One request of a schedule: when it is due (seconds after the start) and what it is."""

    offset_s: float
    kind: str
    method: str
    path: str
    payload: bytes | None


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned request; times are from its scheduled send time."""

    kind: str
    offset_s: float
    latency_ms: float
    send_lag_ms: float
    status: int | None
    error: str | None
    degraded: bool = False

    @property
    def ok(self) -> bool:
        """Whether a 2xx answer arrived within the timeout."""
        return self.error is None


@dataclass(frozen=True)
class LoadSettings:
    """How hard and how long to push: one fixed rate for a bounded duration."""

    rate: float
    duration_s: float
    timeout_s: float = 2.0
    max_in_flight: int = 256
    seed: int = 0
    count_degraded: bool = True


@dataclass(frozen=True)
class LoadResult:
    """A finished run: every outcome plus what the run itself cost the generator."""

    settings: LoadSettings
    started_monotonic: float
    elapsed_s: float
    cpu_seconds: float
    outcomes: list[Outcome]


# Mixes and schedules


def _known_user_body(rng: random.Random, users: Sequence[int], k: int) -> JsonBody:
    return {"user_id": rng.choice(users), "session_id": None, "k": k}


def _unknown_user_body(rng: random.Random, first_unknown: int, k: int) -> JsonBody:
    return {"user_id": first_unknown + rng.randrange(1_000_000), "session_id": None, "k": k}


def _session_id(user_id: int) -> str:
    return f"bench-{user_id}"


def _in_session_body(rng: random.Random, users: Sequence[int], k: int) -> JsonBody:
    user = rng.choice(users)
    return {"user_id": user, "session_id": _session_id(user), "k": k}


def _event_body(rng: random.Random, users: Sequence[int], products: Sequence[int]) -> JsonBody:
    user = rng.choice(users)
    return {
        "user_id": user,
        "session_id": _session_id(user),
        "product_id": rng.choice(products),
        "event_type": rng.choices(EVENT_TYPES, weights=EVENT_WEIGHTS)[0],
    }


def default_mix(
    known_user_ids: Sequence[int],
    product_ids: Sequence[int],
    *,
    k: int = 10,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    sessions: int = 100,
) -> list[RequestTemplate]:
    """The recommender's traffic: known users, unknown users, in-session users, events.

    In-session requests and event posts share the sessions of the first ``sessions`` known
    users, so the sessions being asked about are the ones receiving events.

    Args:
        known_user_ids: Users the service has features for.
        product_ids: Products that events may name.
        k: Items asked for per recommendation.
        weights: Relative frequency of each kind (keys of ``DEFAULT_WEIGHTS``).
        sessions: How many known users have a live session.

    Returns:
        One template per kind with a positive weight.
    """
    users, products = tuple(known_user_ids), tuple(product_ids)
    if not users or not products:
        raise ValueError("default_mix needs at least one known user and one product")
    in_session = users[: max(sessions, 1)]
    bodies: dict[str, tuple[str, BodySpec]] = {
        "known_user": ("/recommend", functools.partial(_known_user_body, users=users, k=k)),
        "unknown_user": (
            "/recommend",
            functools.partial(_unknown_user_body, first_unknown=max(users) + 1, k=k),
        ),
        "in_session": ("/recommend", functools.partial(_in_session_body, users=in_session, k=k)),
        "event": ("/events", functools.partial(_event_body, users=in_session, products=products)),
    }
    return [
        RequestTemplate(kind=kind, method="POST", path=path, weight=weights[kind], body=body)
        for kind, (path, body) in bodies.items()
        if weights.get(kind, 0) > 0
    ]


def _payload(body: BodySpec, rng: random.Random) -> bytes | None:
    """The JSON bytes of one request, drawing from ``rng`` when the body is a function."""
    if body is None:
        return None
    value = body(rng) if callable(body) else body
    return json.dumps(value).encode()


def build_schedule(
    mix: Sequence[RequestTemplate], rate: float, duration_s: float, seed: int = 0
) -> list[PlannedRequest]:
    """Requests due every ``1 / rate`` seconds for ``duration_s``, kinds drawn by weight.

    Bodies are rendered here, before the run, so the run spends no time on them and the
    same seed always gives the same requests.

    Args:
        mix: The request templates to draw from.
        rate: Requests per second.
        duration_s: Length of the schedule in seconds.
        seed: Seed of the draws.

    Returns:
        ``floor(rate * duration_s)`` requests in send order.
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration must be positive, got {rate=} {duration_s=}")
    if not mix or any(t.weight < 0 for t in mix) or sum(t.weight for t in mix) <= 0:
        raise ValueError("the mix needs at least one template and positive weights")
    rng = random.Random(seed)
    count = math.floor(rate * duration_s + 1e-9)
    picks = rng.choices(mix, weights=[t.weight for t in mix], k=count)
    return [
        PlannedRequest(i / rate, t.kind, t.method, t.path, _payload(t.body, rng))
        for i, t in enumerate(picks)
    ]


# Sending


def _error_kind(exc: BaseException) -> str:
    """Classify a failed request: ``timeout``, ``connection`` or ``other``."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return "connection"
    return "other"


def _is_degraded(body: bytes) -> bool:
    """Whether a JSON answer says ``"degraded": true``."""
    try:
        value = json.loads(body)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("degraded") is True


async def _send(
    session: aiohttp.ClientSession,
    request: PlannedRequest,
    start: float,
    settings: LoadSettings,
    slots: asyncio.Semaphore,
) -> Outcome:
    """Send one request and time it from its scheduled send time."""
    loop = asyncio.get_running_loop()
    scheduled = start + request.offset_s
    send_lag_ms = (loop.time() - scheduled) * 1000
    status, error, degraded = None, None, False
    headers = _JSON_HEADERS if request.payload is not None else None
    try:
        async with (
            asyncio.timeout_at(scheduled + settings.timeout_s),
            slots,
            session.request(
                request.method, request.path, data=request.payload, headers=headers
            ) as response,
        ):
            status = response.status
            body = await response.read()
        if not 200 <= status < 300:
            error = f"http_{status}"
        elif settings.count_degraded:
            degraded = _is_degraded(body)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        error = _error_kind(exc)
    latency_ms = (loop.time() - scheduled) * 1000
    return Outcome(request.kind, request.offset_s, latency_ms, send_lag_ms, status, error, degraded)


async def _drive(
    base_url: str, schedule: Sequence[PlannedRequest], settings: LoadSettings
) -> tuple[float, float, list[Outcome]]:
    """Fire every request at its due time; return (start, elapsed seconds, outcomes)."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(settings.max_in_flight)
    connector = aiohttp.TCPConnector(limit=settings.max_in_flight, keepalive_timeout=30)
    async with aiohttp.ClientSession(
        base_url=base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=None)
    ) as session:
        start = loop.time() + _LEAD_S
        tasks = []
        for request in schedule:
            delay = start + request.offset_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(session, request, start, settings, slots)))
        outcomes = await asyncio.gather(*tasks)
        return start, loop.time() - start, list(outcomes)


def run_schedule(
    base_url: str, schedule: Sequence[PlannedRequest], settings: LoadSettings
) -> LoadResult:
    """Run a prepared schedule against ``base_url`` (blocking), measuring the run's CPU.

    The run is bounded: the last request is due at the schedule's end and every request
    gives up ``settings.timeout_s`` after its scheduled time.

    Args:
        base_url: Server root, e.g. ``http://127.0.0.1:3000``.
        schedule: Requests from ``build_schedule``.
        settings: Timeout, in-flight cap and degraded counting (rate and duration are
            only recorded: the schedule already embodies them).

    Returns:
        The outcomes and the CPU seconds this process used during the run.
    """
    cpu_before = time.process_time()
    start, elapsed, outcomes = asyncio.run(_drive(base_url, schedule, settings))
    return LoadResult(settings, start, elapsed, time.process_time() - cpu_before, outcomes)


def run_load(base_url: str, mix: Sequence[RequestTemplate], settings: LoadSettings) -> LoadResult:
    """Schedule ``mix`` at ``settings.rate`` for ``settings.duration_s`` and run it.

    Args:
        base_url: Server root, e.g. ``http://127.0.0.1:3000``.
        mix: Request templates drawn by weight.
        settings: Rate, duration, timeout, in-flight cap, seed.

    Returns:
        Every request's outcome and the generator's own CPU seconds.
    """
    schedule = build_schedule(mix, settings.rate, settings.duration_s, settings.seed)
    return run_schedule(base_url, schedule, settings)


# Summaries


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99, max and mean of latencies in milliseconds (None when empty)."""
    mean = sum(latencies_ms) / len(latencies_ms) if latencies_ms else None
    summary = {f"p{q}": _rounded(percentile(latencies_ms, q)) for q in (50, 95, 99)}
    summary["max"] = _rounded(max(latencies_ms, default=None))
    summary["mean"] = _rounded(mean)
    return summary


def summarize(result: LoadResult) -> dict[str, Any]:
    """The JSON-ready figures of one run.

    Latency percentiles are over successful requests; failures are counted by kind
    (``http_<status>``, ``timeout``, ``connection``, ``other``). ``achieved_rps`` is
    successes per second over the schedule or until the last success, whichever is longer.

    Args:
        result: A finished run.

    Returns:
        Rates, latency, errors, degraded answers, counts per kind and generator CPU.
    """
    outcomes, settings = result.outcomes, result.settings
    ok = [o for o in outcomes if o.ok]
    errors = Counter(o.error for o in outcomes if o.error is not None)
    last_ok_s = max((o.offset_s + o.latency_ms / 1000 for o in ok), default=0.0)
    window_s = max(settings.duration_s, last_ok_s)
    elapsed = max(result.elapsed_s, 1e-9)
    return {
        "target_rps": settings.rate,
        "duration_s": settings.duration_s,
        "elapsed_s": round(result.elapsed_s, 3),
        "sent": len(outcomes),
        "ok": len(ok),
        "answered": sum(o.status is not None for o in outcomes),
        "achieved_rps": round(len(ok) / window_s, 2),
        "latency_ms": latency_summary([o.latency_ms for o in ok]),
        "errors": {"total": sum(errors.values()), "by_kind": dict(sorted(errors.items()))},
        "error_rate": round(sum(errors.values()) / max(len(outcomes), 1), 5),
        "degraded": sum(o.degraded for o in outcomes),
        "by_kind": dict(sorted(Counter(o.kind for o in outcomes).items())),
        "send_lag_ms": {
            "p99": _rounded(percentile([o.send_lag_ms for o in outcomes], 99)),
            "max": _rounded(max((o.send_lag_ms for o in outcomes), default=None)),
        },
        "loadgen": {
            "cpu_seconds": round(result.cpu_seconds, 3),
            "cpu_cores": round(result.cpu_seconds / elapsed, 3),
        },
    }
