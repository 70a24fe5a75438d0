"""Prometheus metrics of the service (exposed by BentoML at ``/metrics``).

BentoML's own ``bentoml_service_request_duration_seconds`` times every endpoint as the
framework sees it; these add what only the service knows: the time inside it per endpoint
and stage, candidates ranked, answers from the fallback, events and their pushes.
"""

from __future__ import annotations

import bentoml

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0)

REQUEST_SECONDS = bentoml.metrics.Histogram(
    name="shoprank_request_seconds",
    documentation="Time inside the service per endpoint.",
    labelnames=["endpoint"],
    buckets=_LATENCY_BUCKETS,
)
STAGE_SECONDS = bentoml.metrics.Histogram(
    name="shoprank_stage_seconds",
    documentation="Time per stage of /recommend (candidates, features, predict, rules).",
    labelnames=["stage"],
    buckets=_LATENCY_BUCKETS,
)
CANDIDATES = bentoml.metrics.Histogram(
    name="shoprank_candidates",
    documentation="Candidates ranked per answer.",
    buckets=(0, 50, 100, 200, 300, 400, 500, 600, 800, 1000, 1500),
)
DEGRADED = bentoml.metrics.Counter(
    name="shoprank_degraded_total",
    documentation="Answers from a fallback because a dependency failed, per endpoint.",
    labelnames=["endpoint"],
)
EVENTS = bentoml.metrics.Counter(
    name="shoprank_events_total",
    documentation="Events posted, by type and whether their session features were pushed.",
    labelnames=["event_type", "pushed"],
)
CACHE = bentoml.metrics.Counter(
    name="shoprank_cache_lookups_total",
    documentation=(
        "Lookups of the day's query-independent candidates (global and segment popularity), "
        "by result (hit, miss); the hit rate is hit / (hit + miss)."
    ),
    labelnames=["result"],
)

REFRESHES = bentoml.metrics.Counter(
    name="shoprank_item_refreshes_total",
    documentation="Reloads of the in-process item features after a new materialization, "
    "by outcome (ok, failed).",
    labelnames=["outcome"],
)


def record_refresh(failed: bool = False) -> None:
    """One reload of the item views (or a failed check)."""
    REFRESHES.labels(outcome="failed" if failed else "ok").inc()


def record_recommend(answer, seconds: float, endpoint: str = "recommend") -> None:
    """One /recommend answer."""
    REQUEST_SECONDS.labels(endpoint=endpoint).observe(seconds)
    CANDIDATES.observe(answer.candidates)
    for result, count in answer.cache.items():
        if count:
            CACHE.labels(result=result).inc(count)
    for stage, ms in answer.timings.items():
        STAGE_SECONDS.labels(stage=stage.removesuffix("_ms")).observe(ms / 1000)
    if answer.degraded:
        DEGRADED.labels(endpoint=endpoint).inc()


def record_similar(seconds: float, degraded: bool) -> None:
    """One /similar-items answer."""
    REQUEST_SECONDS.labels(endpoint="similar_items").observe(seconds)
    if degraded:
        DEGRADED.labels(endpoint="similar_items").inc()


def record_event(event_type: str, pushed: bool) -> None:
    """One /events post."""
    EVENTS.labels(event_type=event_type, pushed=str(pushed).lower()).inc()
