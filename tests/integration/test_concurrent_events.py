"""Events and recommendations for one user at once, under a real ``bentoml serve``: none lost.

Many /events for the same user and session are posted at the same time, interleaved with
/recommend calls for that user, each on its own connection (as a shopper's tabs and the
page's beacons are). Afterwards every event is in the log on disk, the session's features
pushed to the online store count every one of them, and no /recommend, whichever worker
answers it, recommends back a product the session has viewed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.slow

#: Events posted at once (with a /recommend after every other one).
EVENTS = 40
THREADS = 16
#: /recommend calls afterwards: enough fresh connections to reach every worker.
CHECKS = 12
TIMEOUT_S = 30.0


def session_row(settings, user: int) -> dict:
    """The user's session_features row in the online store (as the service reads it)."""
    from shoprank.features.online import OnlineFeatures
    from shoprank.features.store import open_store

    online = OnlineFeatures(open_store(settings), settings.feature_service)
    group = next(g for g in online.groups if g.view.name == "session_features")
    row = online.read(group, [(user,)])
    assert len(row) == 1, f"no session_features row for user {user}"
    return {k.removeprefix("session_features__"): v for k, v in row.iloc[0].items()}


@pytest.mark.parametrize("workers", [1, None], ids=["1-worker", "configured-workers"])
def test_concurrent_events_and_recommendations_lose_no_event(served_copy, serve, workers):
    from shoprank.ranking.examples import load_users
    from shoprank.serving.events import LiveEvent

    settings = served_copy("concurrent")
    count = workers or settings.serving_workers
    user, session = int(load_users(settings).index[0]), f"concurrent-{count}"
    recommend = {"user_id": user, "session_id": session, "k": EVENTS}

    with serve(settings, workers=workers) as server:

        def post(path: str, body: dict) -> httpx.Response:
            # a connection of its own: the kernel hands it to any worker
            return httpx.post(f"{server.base_url}{path}", json=body, timeout=TIMEOUT_S)

        shown = post("/recommend", recommend).json()["items"]
        products = [item["product_id"] for item in shown]  # what the user would see
        assert len(products) == EVENTS
        events = [
            {"user_id": user, "session_id": session, "product_id": p, "event_type": "view"}
            for p in products
        ]
        calls = []
        for i, body in enumerate(events):  # a /recommend after every other event
            calls += [("/events", body)] + [("/recommend", recommend)] * (i % 2)
        with ThreadPoolExecutor(THREADS) as pool:
            responses = list(pool.map(lambda call: post(*call), calls))
        after = [post("/recommend", recommend) for _ in range(CHECKS)]

    statuses = [r.status_code for r in responses + after]
    assert statuses.count(200) == len(statuses), statuses
    answers = [r.json() for r, (path, _) in zip(responses, calls, strict=True) if path == "/events"]
    logged = [
        LiveEvent.from_json(line) for line in settings.event_log_path.read_text().splitlines()
    ]
    row = session_row(settings, user)
    viewed = set(products)
    shown_again = [len(viewed & {i["product_id"] for i in r.json()["items"]}) for r in after]
    print(
        f"\n{count} worker(s): pushed {sum(a['pushed'] for a in answers)}/{EVENTS}, "
        f"degraded events {sum(a['degraded'] for a in answers)}, logged {len(logged)}, "
        f"session_event_count {row['session_event_count']}, "
        f"viewed products recommended again per check {shown_again}"
    )

    # the log on disk holds every event, once
    assert sorted(e.product_id for e in logged if e.session_id == session) == sorted(products)
    # every event was pushed, and the pushed row counts them all
    assert all(a["logged"] and a["pushed"] and not a["degraded"] for a in answers), answers
    assert int(row["session_event_count"]) == EVENTS
    assert int(row["last_product_id"]) in viewed
    # and no answer, from whichever worker, recommends a viewed product back in the session
    assert shown_again == [0] * CHECKS
