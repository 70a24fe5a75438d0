"""Event-to-recommendation delay: how soon a posted event shows in the user's next list.

One trial: ask ``/recommend`` for a known user in a fresh session, post a ``view`` of the
list's first product, then ask again until that product is gone from the list (a product
touched in the session is never recommended back, see ``Recommender._filtered``: a signal
that does not depend on how the scores moved). The delay runs from sending the event to
receiving the first list without the product. A few more requests afterwards check that it
stays gone: a later list showing it again is a *regression* (a worker that has not seen the
event).

Every request opens its own connection, as requests from different front-end processes
would, so each may be answered by any worker of the service; the live events are kept in
each worker's memory, so with several workers this measures what a user actually sees.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shoprank.serving.loadgen import percentile

SIGNAL = "viewed product excluded from the user's next /recommend list"


@dataclass(frozen=True)
class DelaySettings:
    """How many trials, how long each may wait, and what counts as fast."""

    trials: int = 30
    timeout_s: float = 5.0
    confirm_polls: int = 3
    poll_interval_s: float = 0.02
    request_timeout_s: float = 10.0
    k: int = 10
    within_s: float = 1.0


def post_json(base_url: str, path: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """POST ``body`` on a new connection and return the decoded JSON answer.

    Raises:
        urllib.error.URLError: On an HTTP error status or a failed connection.
    """
    request = urllib.request.Request(
        f"{base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())


def _listed(answer: dict[str, Any]) -> list[int]:
    return [int(item["product_id"]) for item in answer.get("items", [])]


def delay_trial(
    base_url: str, user_id: int, session_id: str, settings: DelaySettings
) -> dict[str, Any]:
    """One trial for one user in one fresh session (see the module docstring).

    Returns:
        The product viewed, the event's answer and latency, the delay in ms (None when the
        product was still listed after ``timeout_s``), polls made and regressions seen;
        or an ``error`` when a request failed.
    """
    ask = {"user_id": user_id, "session_id": session_id, "k": settings.k}
    timeout = settings.request_timeout_s
    trial: dict[str, Any] = {"user_id": user_id, "session_id": session_id}
    try:
        listed = _listed(post_json(base_url, "/recommend", ask, timeout))
        if not listed:
            return trial | {"error": "empty list before the event"}
        product = listed[0]
        event = {**ask, "product_id": product, "event_type": "view"}
        del event["k"]
        sent = time.monotonic()
        answer = post_json(base_url, "/events", event, timeout)
        acked = time.monotonic()
        polls, delay_ms = 0, None
        while True:
            polls += 1
            still = product in _listed(post_json(base_url, "/recommend", ask, timeout))
            now = time.monotonic()
            if not still:
                delay_ms = round((now - sent) * 1000, 1)
                break
            if now - acked >= settings.timeout_s:
                break
            time.sleep(settings.poll_interval_s)
        regressions = 0
        if delay_ms is not None:
            for _ in range(settings.confirm_polls):
                listed = _listed(post_json(base_url, "/recommend", ask, timeout))
                regressions += product in listed
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return trial | {"error": f"{type(exc).__name__}: {exc}"}
    return trial | {
        "product_id": product,
        "event_ms": round((acked - sent) * 1000, 1),
        "pushed": bool(answer.get("pushed")),
        "delay_ms": delay_ms,
        "polls": polls,
        "regressions": regressions,
    }


def _quantile_ms(values: Sequence[float], q: float) -> float | None:
    value = percentile(values, q)
    return None if value is None or math.isinf(value) else round(value, 1)


def summarize_delays(trials: Sequence[dict[str, Any]], settings: DelaySettings) -> dict[str, Any]:
    """Median, p95 and max delay, and how many trials saw the event within ``within_s``.

    A trial whose event never showed counts as slower than every other, so a percentile
    that lands on one is None (longer than ``timeout_s``). ``visible_within_and_stable``
    counts only the trials whose later lists kept the product out too.
    """
    measured = [t for t in trials if "error" not in t]
    seen = [t["delay_ms"] for t in measured if t["delay_ms"] is not None]
    ranked = sorted(seen) + [math.inf] * (len(measured) - len(seen))
    within_ms = settings.within_s * 1000
    return {
        "signal": SIGNAL,
        "trials": len(trials),
        "measured": len(measured),
        "failed": len(trials) - len(measured),
        "visible": len(seen),
        "not_visible": len(measured) - len(seen),
        "visible_within_s": settings.within_s,
        "visible_within": sum(d <= within_ms for d in seen),
        "visible_within_and_stable": sum(
            t["delay_ms"] is not None and t["delay_ms"] <= within_ms and t["regressions"] == 0
            for t in measured
        ),
        "delay_ms": {
            "p50": _quantile_ms(ranked, 50),
            "p95": _quantile_ms(ranked, 95),
            "max": _quantile_ms(ranked, 100),
        },
        "first_poll_visible": sum(t["delay_ms"] is not None and t["polls"] == 1 for t in measured),
        "trials_with_regressions": sum(t["regressions"] > 0 for t in measured),
        "event_post_ms": {
            "p50": _quantile_ms([t["event_ms"] for t in measured], 50),
            "max": _quantile_ms([t["event_ms"] for t in measured], 100),
        },
        "pushed": sum(t["pushed"] for t in measured),
        "settings": asdict(settings),
        "per_trial": list(trials),
    }


def measure_event_delay(
    base_url: str, user_ids: Sequence[int], settings: DelaySettings | None = None
) -> dict[str, Any]:
    """Run ``settings.trials`` trials, one user each (cycling through ``user_ids``).

    Args:
        base_url: The service's root, e.g. ``http://127.0.0.1:3000``.
        user_ids: Known users to use, ideally ones no other traffic touches meanwhile.
        settings: Trials, timeouts and the "fast" threshold.

    Returns:
        The summary of :func:`summarize_delays`, every trial included.
    """
    settings = settings or DelaySettings()
    if not user_ids:
        raise ValueError("measure_event_delay needs at least one user")
    stamp = int(time.time())
    trials = [
        delay_trial(
            base_url, int(user_ids[i % len(user_ids)]), f"bench-delay-{stamp}-{i}", settings
        )
        for i in range(settings.trials)
    ]
    return summarize_delays(trials, settings)
