"""The framework floor: BentoML with no model, for comparison with the recommender.

Same request fields and route as ``bentos/recommender/service.py:Recommender``'s
``POST /recommend``, answered with a constant-shaped dict built from them. Whatever the
floor costs per request (HTTP parsing, validation, the worker thread hop, JSON encoding)
the real service pays too; the benchmark reports both so the difference is the model's.
``GET /readyz`` and ``GET /healthz`` are BentoML's own endpoints and need no code here.
"""

from __future__ import annotations

import bentoml


@bentoml.service
class Floor:
    """A service whose ``/recommend`` does no work beyond building its answer."""

    @bentoml.api(route="/recommend")
    def recommend(
        self, user_id: int | None = None, session_id: str | None = None, k: int = 10
    ) -> dict:
        """Answer with ``k`` placeholder items, echoing the request.

        Synchronous like a model-backed endpoint, so BentoML runs it in its thread pool
        exactly as it runs the recommender's.

        Args:
            user_id: The user asking, or None for an anonymous visitor.
            session_id: The browsing session, if any.
            k: How many items to return.

        Returns:
            The recommender's response shape with no model behind it.
        """
        items = [{"product_id": rank, "score": 0.0} for rank in range(max(k, 0))]
        return {
            "items": items,
            "degraded": False,
            "user_id": user_id,
            "session_id": session_id,
            "model": "floor",
        }
