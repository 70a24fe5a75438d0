"""The BentoML service over HTTP (in-process ASGI): contract, errors, events, fallbacks."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

pytestmark = pytest.mark.slow

SERVICE = Path(__file__).resolve().parents[2] / "bentos" / "recommender" / "service.py"


def load_service(settings, monkeypatch, **extra):
    """Import bentos/recommender/service.py with ``settings`` in the environment."""
    env = {
        "SHOPRANK_DATA_DIR": str(settings.data_path),
        "SHOPRANK_BENTOML_HOME": str(settings.bentoml_home),
        "SHOPRANK_MODEL_TAG": settings.model_tag,
        **{f"SHOPRANK_{k.upper()}": str(v) for k, v in extra.items()},
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("recommender_service_under_test", SERVICE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.Recommender


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    log = tmp_path_factory.mktemp("events") / "events.jsonl"
    service = load_service(served, monkeypatch, event_log=log, max_request_bytes=4096)
    with TestClient(service.to_asgi()) as test_client:
        test_client.event_log = log
        yield test_client
    monkeypatch.undo()


def warm_user(served) -> int:
    from shoprank.ranking.examples import load_users

    return int(load_users(served).index[0])


def test_probes(client):
    # /metrics is checked on a real `bentoml serve` (test_packaging): in one test process
    # Prometheus' value storage is fixed by whichever module imported it first
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_recommend_answers_the_contract(client, served):
    response = client.post("/recommend", json={"user_id": warm_user(served), "k": 7})
    assert response.status_code == 200
    body = response.json()
    assert len(body["items"]) == 7
    assert body["model_version"] == served.model_tag
    assert body["degraded"] is False and body["request_id"] and body["candidates"] > 7
    assert {"candidates_ms", "features_ms", "predict_ms", "rules_ms", "total_ms"} <= set(
        body["timing_ms"]
    )
    ids = [item["product_id"] for item in body["items"]]
    assert len(set(ids)) == 7
    for item in body["items"]:
        assert item["reason"] and item["reason"][0].isupper()
        assert item["source"] == item["sources"][0]


def test_unknown_and_anonymous_visitors_get_the_cold_start_path(client):
    for body in ({"user_id": 10**9}, {"session_id": "anonymous-1"}, {}):
        response = client.post("/recommend", json=body)
        assert response.status_code == 200, body
        assert len(response.json()["items"]) == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_id": 1, "k": 0}, "k"),
        ({"user_id": 1, "k": 101}, "k"),
        ({"user_id": "someone"}, "user_id"),
        ({"user_id": 1, "filters": {"max_price": -3}}, "filters.max_price"),
        ({"user_id": 1, "context": {"timestamp": "2025-12-20T10:00:00"}}, "context.timestamp"),
        ({"user_id": 1, "kk": 3}, "kk"),
    ],
)
def test_invalid_requests_are_422_naming_the_field(client, body, field):
    response = client.post("/recommend", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert field in answer["fields"] and field in answer["error"]
    assert "Traceback" not in response.text


def test_oversized_bodies_are_413(client):
    response = client.post("/recommend", json={"user_id": 1, "exclude": list(range(2000))})
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


def test_an_unknown_product_in_an_event_is_refused_and_nothing_is_written(client):
    before = client.event_log.read_text() if client.event_log.exists() else ""
    body = {"user_id": 1, "session_id": "s", "product_id": 10**8, "event_type": "view"}
    response = client.post("/events", json=body)
    assert response.status_code == 422
    assert "product_id 100000000" in response.json()["error"]
    after = client.event_log.read_text() if client.event_log.exists() else ""
    assert after == before


def test_an_event_is_logged_and_seen_by_the_next_recommendation(client, served):
    user = warm_user(served)
    first = client.post("/recommend", json={"user_id": user, "session_id": "live-a"}).json()
    shown = first["items"][0]["product_id"]
    event = {"user_id": user, "session_id": "live-a", "product_id": shown, "event_type": "cart"}
    answer = client.post("/events", json=event).json()
    assert answer["logged"] and answer["pushed"] and not answer["degraded"]
    logged = [json.loads(line) for line in client.event_log.read_text().splitlines()]
    assert logged[-1]["product_id"] == shown and logged[-1]["event_type"] == "cart"
    second = client.post("/recommend", json={"user_id": user, "session_id": "live-a"}).json()
    # what the user just carted is not recommended back inside the session
    assert shown not in [item["product_id"] for item in second["items"]]


def test_similar_items_for_a_product_page(client, served):
    from shoprank.candidates.data import load_catalog

    catalog = load_catalog(served.warehouse_path).frame
    newest = int(catalog["launched_at"].idxmax())  # no interactions yet when launched last
    for product in (int(catalog.index[0]), newest):
        response = client.post("/similar-items", json={"product_id": product, "k": 5})
        assert response.status_code == 200
        items = response.json()["items"]
        assert len(items) == 5 and product not in [i["product_id"] for i in items]
        assert "content" in items[0]["sources"]
    assert client.post("/similar-items", json={"product_id": 10**8}).status_code == 422


def test_batch_answers_each_request_in_order(client):
    body = {"requests": [{"user_id": 1, "k": 3}, {"user_id": 2, "k": 4}]}
    response = client.post("/recommend/batch", json=body)
    assert response.status_code == 200
    assert [len(r["items"]) for r in response.json()["responses"]] == [3, 4]


def test_concurrent_events_and_recommendations_lose_no_event(client, served):
    user, session, n = warm_user(served) + 1, "concurrent-1", 40
    from shoprank.candidates.data import load_catalog

    products = load_catalog(served.warehouse_path).frame.index[:n].astype(int).tolist()
    statuses: list[int] = []

    def post_events():
        for product in products:
            body = {"user_id": user, "session_id": session, "product_id": product}
            statuses.append(client.post("/events", json={**body, "event_type": "view"}).status_code)

    def recommend():
        for _ in range(n):
            statuses.append(
                client.post("/recommend", json={"user_id": user, "session_id": session}).status_code
            )

    threads = [threading.Thread(target=post_events), threading.Thread(target=recommend)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses.count(200) == 2 * n
    logged = [json.loads(line) for line in client.event_log.read_text().splitlines()]
    assert sum(1 for e in logged if e["session_id"] == session) == n
    # the pushed session features count every event of the session
    from shoprank.features.online import OnlineFeatures
    from shoprank.features.store import open_store

    online = OnlineFeatures(open_store(served), "ranker_v1")
    group = next(g for g in online.groups if g.view.name == "session_features")
    row = online.read(group, [(user,)])
    assert int(row["session_features__session_event_count"].iloc[0]) == n
