"""What one request's online-store read costs, three ways (for ``shoprank bench serving``).

The service reads the user's rows per request. Feast offers ``get_online_features`` (the
SDK call that builds a response per call), the online store's ``online_read`` (through the
provider), and on SQLite this project reads the same table with cheaper keys
(:class:`~shoprank.features.sqlite_rows.SqliteRows`). Measured in process, one thread, on
two workloads of a real request: the user's own rows (profile and live session), and the
user's brand affinities for the distinct brands of a candidate list.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from shoprank.features.online import OnlineFeatures, entity_key


def _median_ms(call: Callable[[], object], repeats: int) -> dict[str, float]:
    call()  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(0.99 * len(times)))], 3),
    }


def online_read_costs(
    online: OnlineFeatures, users: list[int], brands: list[str], repeats: int = 200
) -> dict[str, Any]:
    """Median and p99 ms per call of each way, for each workload (users taken in turn)."""
    store = online.store
    provider = store._get_provider()
    groups = {g.view.name: g for g in online.groups}
    user_views = [groups[name] for name in ("user_features", "session_features") if name in groups]
    brand_view = groups.get("user_brand_affinity")
    turn = iter(range(10**9))

    def user() -> int:
        return users[next(turn) % len(users)]

    def sdk_user() -> object:
        refs = [ref for g in user_views for ref in g.refs]
        return store.get_online_features(features=refs, entity_rows=[{"user_id": user()}])

    def provider_user() -> object:
        uid = user()
        return [
            provider.online_read(
                store.config, g.view, [entity_key(g.keys, (uid,))], list(g.features)
            )
            for g in user_views
        ]

    def service_user() -> object:
        uid = user()
        return [online.values(g, [(uid,)]) for g in user_views]

    out: dict[str, Any] = {
        "store": type(provider.online_store).__name__,
        "direct_sqlite": online._direct is not None,
        "repeats": repeats,
        "user_rows": {
            "views": [g.view.name for g in user_views],
            "get_online_features": _median_ms(sdk_user, repeats),
            "online_read": _median_ms(provider_user, repeats),
            "service": _median_ms(service_user, repeats),
        },
    }
    if brand_view is not None and brands:

        def sdk_brands() -> object:
            uid = user()
            return store.get_online_features(
                features=brand_view.refs, entity_rows=[{"user_id": uid, "brand": b} for b in brands]
            )

        def provider_brands() -> object:
            uid = user()
            protos = [entity_key(brand_view.keys, (uid, b)) for b in brands]
            return provider.online_read(
                store.config, brand_view.view, protos, list(brand_view.features)
            )

        def service_brands() -> object:
            uid = user()
            return online.values(brand_view, [(uid, b) for b in brands])

        out["brand_affinities"] = {
            "keys": len(brands),
            "get_online_features": _median_ms(sdk_brands, max(repeats // 4, 10)),
            "online_read": _median_ms(provider_brands, repeats),
            "service": _median_ms(service_brands, repeats),
        }
    return out
