"""shoprank's recommendation service: one BentoML service class, logic in shoprank.serving.

Run it from the project root: ``SHOPRANK_MODEL_TAG=shoprank_ranker:<version> make serve``
(or ``bentoml serve bentos/recommender/service.py:Recommender``). Settings come from
``SHOPRANK_*`` variables (``shoprank.settings``); the model tag is pinned, never ``latest``.
"""

from http import HTTPStatus

import bentoml
from bentoml.exceptions import BentoMLException

from shoprank.serving.http import RequestLimits
from shoprank.serving.runtime import limit_threads
from shoprank.serving.schemas import (
    BatchRequest,
    BatchResponse,
    EventRequest,
    EventResponse,
    RecommendRequest,
    RecommendResponse,
    SimilarRequest,
)
from shoprank.settings import load_settings

# BentoML reads its service options when the class is defined.
SETTINGS = load_settings()


@bentoml.service(
    workers=SETTINGS.serving_workers,
    traffic={"timeout": 10, "max_concurrency": SETTINGS.serving_max_concurrency},
)
class Recommender:
    """Two-stage recommendations on Feast's online features, with live session events."""

    def __init__(self) -> None:
        from shoprank.serving.app import ServingApp

        limit_threads()
        self.app = ServingApp.load(SETTINGS)
        self._stop_refreshing = self.app.start_refreshing(SETTINGS.serving_refresh_s)

    def __is_ready__(self) -> bool:
        """``/readyz``: model, item features and vector index loaded."""
        return self.app.ready()

    @bentoml.api(route="/recommend")
    def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Recommendations for a user (or an anonymous visitor) in their session."""
        return self.app.recommend(request)

    @bentoml.api(route="/recommend/batch")
    def recommend_batch(self, request: BatchRequest, /) -> BatchResponse:
        """Many users at once, for pre-computation (each answered as by /recommend)."""
        return BatchResponse(responses=[self.app.recommend(r) for r in request.requests])

    @bentoml.api(route="/similar-items")
    def similar_items(self, request: SimilarRequest, /) -> RecommendResponse:
        """Products like one product, for its page (also one launched today)."""
        return self._known_product(self.app.similar, request)

    @bentoml.api(route="/events")
    def events(self, request: EventRequest, /) -> EventResponse:
        """A view, cart or purchase: logged, and seen by the next /recommend."""
        return self._known_product(self.app.record, request)

    def _known_product(self, handler, request):
        from shoprank.serving.app import UnknownProductError

        try:
            return handler(request)
        except UnknownProductError as exc:
            raise BentoMLException(str(exc), error_code=HTTPStatus.UNPROCESSABLE_ENTITY) from exc


Recommender.add_asgi_middleware(RequestLimits, max_bytes=SETTINGS.max_request_bytes)
