"""Every worker of the service sees every event, whichever worker it was posted to.

``bentoml serve`` runs several worker processes, each with its own memory. Two
:class:`~shoprank.serving.app.ServingApp` instances over one event log stand for two workers:
an event posted to one must shape the next answer of the other, and session rows pushed by
either must build on the events the other took.
"""

from __future__ import annotations

import threading

import pytest

from shoprank.features.online import OnlineFeatures
from shoprank.features.store import open_store
from shoprank.ranking.examples import load_users
from shoprank.serving.app import ServingApp
from shoprank.serving.schemas import EventRequest, RecommendRequest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workers(served, tmp_path_factory):
    log = tmp_path_factory.mktemp("shared-events") / "events.jsonl"
    settings = served.model_copy(update={"event_log": log})
    return ServingApp.load(settings), ServingApp.load(settings)


def _session_count(served, user: int) -> int:
    online = OnlineFeatures(open_store(served), "ranker_v1")
    group = next(g for g in online.groups if g.view.name == "session_features")
    row = online.read(group, [(user,)])
    return int(row["session_features__session_event_count"].iloc[0])


def _listed(app: ServingApp, user: int, session: str) -> list[int]:
    answer = app.recommend(RecommendRequest(user_id=user, session_id=session, k=20))
    assert not answer.degraded
    return [item.product_id for item in answer.items]


def test_an_event_posted_to_one_worker_shapes_the_other_workers_answers(workers, served):
    first, second = workers
    user = int(load_users(served).index.max()) + 5_000  # nobody else's session rows
    session = "two-workers"
    shown = _listed(second, user, session)
    first.record(
        EventRequest(user_id=user, session_id=session, product_id=shown[0], event_type="view")
    )
    assert shown[0] not in _listed(second, user, session)  # the other worker knows
    second.record(
        EventRequest(user_id=user, session_id=session, product_id=shown[1], event_type="cart")
    )
    assert not {shown[0], shown[1]} & set(_listed(first, user, session))
    # the second worker's pushed row counted the first worker's event too
    assert _session_count(served, user) == 2


def test_events_racing_to_both_workers_are_all_counted(workers, served):
    user = int(load_users(served).index.max()) + 6_000
    session, n = "racing", 30
    products = workers[0].state.catalog.frame.index[:n].astype(int).tolist()
    failures: list[BaseException] = []

    def post(app: ServingApp, mine: list[int]) -> None:
        try:
            for product in mine:
                request = EventRequest(
                    user_id=user, session_id=session, product_id=product, event_type="view"
                )
                assert app.record(request).pushed
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [
        threading.Thread(target=post, args=(workers[0], products[0::2])),
        threading.Thread(target=post, args=(workers[1], products[1::2])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert _session_count(served, user) == n
    for app in workers:
        assert not set(products) & set(_listed(app, user, session))
