"""The service's request and response bodies (pydantic; BentoML publishes them at /docs).

Every request model forbids unknown fields, so a typo is a 422 naming it rather than a
silently ignored setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_K = 100
MAX_EXCLUDE = 500
MAX_BATCH = 200


class Strict(BaseModel):
    """A request body: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class Context(Strict):
    """Where and when the request is made."""

    device: Literal["desktop", "mobile", "tablet"] | None = Field(
        default=None, description="The visitor's device."
    )
    page: str | None = Field(
        default=None, max_length=64, description="Page type, e.g. home, product, cart."
    )
    timestamp: AwareDatetime | None = Field(
        default=None,
        description="Moment of the request with its time zone (default: the service's now).",
    )


class Filters(Strict):
    """Restrictions on what may be recommended."""

    category: str | None = Field(
        default=None, max_length=64, description="Only products of this top-level category."
    )
    max_price: float | None = Field(
        default=None, gt=0, description="Only products up to this price."
    )
    in_stock: Literal[True] = Field(
        default=True, description="Out-of-stock products are never recommended (always true)."
    )


class RecommendRequest(Strict):
    """One recommendation request."""

    user_id: int | None = Field(
        default=None, ge=1, description="The shopper; omit for an anonymous visitor."
    )
    session_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The browsing session (an anonymous visitor's events are keyed by it).",
    )
    context: Context = Field(default_factory=Context)
    k: int = Field(default=10, ge=1, le=MAX_K, description="How many products to return.")
    filters: Filters = Field(default_factory=Filters)
    exclude: list[int] = Field(
        default_factory=list, max_length=MAX_EXCLUDE, description="Product ids never to return."
    )


class Item(BaseModel):
    """One recommended product."""

    product_id: int
    score: float = Field(description="The ranker's score (higher is better).")
    reason: str = Field(description="Why it is recommended, in one short sentence.")
    source: str = Field(description="The candidate generator that proposed it first.")
    sources: list[str] = Field(description="Every generator that proposed it, best rank first.")


class RecommendResponse(BaseModel):
    """A ranked list and how it was made."""

    items: list[Item]
    model_version: str = Field(description="The exact model tag that answered.")
    request_id: str
    degraded: bool = Field(description="True when a fallback answered (a dependency failed).")
    candidates: int = Field(description="Candidates ranked for this answer.")
    timing_ms: dict[str, float]


class EventRequest(Strict):
    """Something a shopper did."""

    user_id: int | None = Field(default=None, ge=1, description="The shopper (omit: anonymous).")
    session_id: str = Field(min_length=1, max_length=128)
    product_id: int = Field(ge=1)
    event_type: Literal["view", "cart", "purchase"]
    timestamp: AwareDatetime | None = Field(default=None, description="Default: the service's now.")


class EventResponse(BaseModel):
    """What became of an event."""

    request_id: str
    logged: bool = Field(description="Appended to the event log on disk.")
    pushed: bool = Field(description="The session's features were pushed to the online store.")
    degraded: bool


class SimilarRequest(Strict):
    """Products like one product, for its page."""

    product_id: int = Field(ge=1)
    k: int = Field(default=10, ge=1, le=MAX_K)
    exclude: list[int] = Field(default_factory=list, max_length=MAX_EXCLUDE)


class BatchRequest(Strict):
    """Many recommendation requests at once (pre-computation)."""

    requests: list[RecommendRequest] = Field(min_length=1, max_length=MAX_BATCH)


class BatchResponse(BaseModel):
    """One response per request, in order."""

    responses: list[RecommendResponse]
