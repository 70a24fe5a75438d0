"""Post-ranking: business rules, diversity, a new-arrivals slot and a reason per item.

The ranker scores one user's candidates; this stage turns those scores into the list the
user sees:

1. **Rules.** Out-of-stock (and unknown) products go. Products the user already bought go,
   unless their leaf category (``category_l2``) is one where buying the same product again is
   normal, which is learned from the purchase log (:func:`repeat_categories`).
2. **Diversity.** A greedy pass picks the list one item at a time: maximal marginal relevance
   (MMR) over unit item vectors trades the normalised score against the highest cosine to the
   items already picked, and a cap limits products per leaf category. Either or both, as
   :class:`RerankConfig` says.
3. **Exploration.** Configured positions are reserved for the best-scored new arrival
   (launched in the last few days before the request) among the candidates.
4. **Reasons.** Every item says which generators proposed it (best rank first) and which
   features pushed its score up most (XGBoost's per-row SHAP contributions), as phrases.

:func:`rerank` does this for one user and returns :class:`Recommendation` records;
:func:`rerank_lists` does steps 1-3 for many users and returns an id matrix for evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from shoprank.candidates.data import EVENT_WEIGHTS, Catalog, InteractionLog, as_datetime64
from shoprank.ranking.model import RankerModel

#: Candidate generators, in the order ties between their ranks are broken.
GENERATORS = (
    "covisitation",
    "content",
    "category",
    "als",
    "segment",
    "trending",
    "seasonal",
    "popularity",
)
NEW_ARRIVAL = "new_arrival"
#: What each source tells the user.
SOURCE_PHRASES = {
    "covisitation": "shopped together with items you viewed",
    "content": "similar to items you looked at recently",
    "category": "popular in categories you like",
    "als": "liked by customers with similar taste",
    "segment": "popular with shoppers like you",
    "trending": "trending now",
    "seasonal": "popular this season",
    "popularity": "a bestseller",
    NEW_ARRIVAL: "new arrival",
}
#: Columns holding the user's most recent products (Feast ``session_features``).
RECENT_COLUMNS = ("session_features__last_product_id",) + tuple(
    f"session_features__last_product_id_{i}" for i in range(2, 6)
)
FALLBACK_REASON = "recommended for you"
#: Candidate rows as a frame, or as columns of arrays (``rows[name][i]``).
Rows = pd.DataFrame | Mapping[str, Any]


@dataclass(frozen=True)
class RerankConfig:
    """How one user's scored candidates become the list they see.

    Attributes:
        k: List length.
        mmr_lambda: MMR trade-off in [0, 1]: 1.0 is pure score order (no vectors needed),
            lower values push items away from those already picked.
        max_per_category: At most this many products of one leaf category (``category_l2``)
            per list; ``None`` for no cap. The list is shorter when too few leaves remain.
        new_arrival_positions: 1-based positions reserved, one each, for the best-scored new
            arrival among the candidates (empty for no exploration slot).
        new_arrival_days: A product is a new arrival when launched in the last this many days
            before the request.
        repeat_threshold: A leaf is a repeat-purchase category when at least this share of
            its purchases are repeats (see :func:`repeat_categories`).
        repeat_min_purchases: ... and it has at least this many purchases.
        reason_sources: At most this many sources named in a reason's text.
        reason_features: Top contributing features kept per item (and named in its text).
        approximate_contributions: Use XGBoost's approximate (Saabas) contributions instead
            of exact TreeSHAP: about 25x faster, less faithful to the model.
    """

    k: int = 10
    mmr_lambda: float = 0.7
    max_per_category: int | None = 3
    new_arrival_positions: tuple[int, ...] = (4,)
    new_arrival_days: int = 14
    repeat_threshold: float = 0.15
    repeat_min_purchases: int = 50
    reason_sources: int = 2
    reason_features: int = 2
    approximate_contributions: bool = False

    def __post_init__(self) -> None:
        checks = {
            "k": self.k >= 1,
            "mmr_lambda": 0.0 <= self.mmr_lambda <= 1.0,
            "max_per_category": self.max_per_category is None or self.max_per_category >= 1,
            "new_arrival_positions": all(1 <= p <= self.k for p in self.new_arrival_positions)
            and len(set(self.new_arrival_positions)) == len(self.new_arrival_positions),
            "new_arrival_days": self.new_arrival_days >= 0,
            "repeat_threshold": 0.0 <= self.repeat_threshold <= 1.0,
            "repeat_min_purchases": self.repeat_min_purchases >= 1,
            "reason_sources": self.reason_sources >= 0,
            "reason_features": self.reason_features >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"rerank.{name} is out of range: {getattr(self, name)!r}")


@dataclass(frozen=True)
class Recommendation:
    """One item of a user's list, with why it is there.

    Attributes:
        product_id: The product.
        score: The ranker's score (before re-ranking).
        position: 1-based position in the list.
        sources: Generators that proposed it, best rank first (``"new_arrival"`` first when it
            fills an exploration slot).
        top_features: ``(feature, contribution)`` of the features that raised its score most.
        text: A short human-readable reason.
    """

    product_id: int
    score: float
    position: int
    sources: tuple[str, ...]
    top_features: tuple[tuple[str, float], ...]
    text: str


# Rules


def purchased_pairs(log: InteractionLog) -> pd.DataFrame:
    """Distinct (user_id, product_id) pairs with a purchase in ``log``."""
    purchase = log.weight == EVENT_WEIGHTS["purchase"]
    frame = pd.DataFrame({"user_id": log.user_id[purchase], "product_id": log.item_id[purchase]})
    return frame.drop_duplicates(ignore_index=True)


def repeat_categories(
    log: InteractionLog,
    catalog: Catalog,
    threshold: float = RerankConfig.repeat_threshold,
    min_purchases: int = RerankConfig.repeat_min_purchases,
) -> frozenset[str]:
    """Leaf categories where buying the same product again is normal.

    A purchase is a *repeat* when the same user bought the same product in an earlier
    session (several purchase events of one product in one session count once).

    Args:
        log: Events; purchases are those with the purchase weight.
        catalog: Maps products to their leaf (``category_l2``).
        threshold: Minimum share of a leaf's purchases that are repeats.
        min_purchases: Minimum purchases a leaf needs before its share is trusted.

    Returns:
        The leaf names that pass both bars.
    """
    purchase = log.weight == EVENT_WEIGHTS["purchase"]
    frame = pd.DataFrame(
        {
            "user": log.user_id[purchase],
            "item": log.item_id[purchase],
            "session": log.session[purchase],
            "at": log.event_at[purchase],
        }
    ).sort_values("at", kind="stable")
    frame = frame.drop_duplicates(["user", "item", "session"])
    frame["repeat"] = frame.duplicated(["user", "item"])
    frame["leaf"] = catalog.frame["category_l2"].reindex(frame["item"]).to_numpy()
    stats = frame.dropna(subset=["leaf"]).groupby("leaf")["repeat"].agg(["mean", "size"])
    passing = (stats["mean"] >= threshold) & (stats["size"] >= min_purchases)
    return frozenset(str(leaf) for leaf in stats.index[passing])


@dataclass(frozen=True)
class ItemAttributes:
    """Per candidate: in stock, leaf category code (-1 unknown), new arrival."""

    in_stock: np.ndarray
    category: np.ndarray
    new_arrival: np.ndarray

    def take(self, rows: np.ndarray) -> ItemAttributes:
        """The attributes of the candidates at ``rows``."""
        return ItemAttributes(self.in_stock[rows], self.category[rows], self.new_arrival[rows])


def item_attributes(
    catalog: Catalog, product_ids: np.ndarray, now: datetime, new_days: int
) -> ItemAttributes:
    """Per candidate: ``in_stock``, ``category`` (leaf code, -1 if unknown), ``new_arrival``.

    A new arrival was launched in ``(now - new_days, now]``; unknown products are out of
    stock.
    """
    shelf = catalog.shelf
    ids = np.asarray(product_ids, dtype=np.int64)
    inside = (ids >= 0) & (ids < len(shelf.in_stock))
    rows = np.where(inside, ids, 0)
    launched = np.where(inside, shelf.launched[rows], np.datetime64("NaT"))
    at = as_datetime64(now)
    return ItemAttributes(
        in_stock=inside & shelf.in_stock[rows],
        category=np.where(inside, shelf.leaf[rows], -1),
        new_arrival=(launched <= at) & (launched > at - np.timedelta64(new_days, "D")),
    )


def eligible(
    attributes: ItemAttributes,
    already_bought: np.ndarray,
    repeat_cats: Collection[str],
    catalog: Catalog,
) -> np.ndarray:
    """In stock, and not already bought unless its leaf is a repeat-purchase category."""
    leaves = catalog.shelf.leaves
    codes = leaves.get_indexer(list(repeat_cats)) if len(repeat_cats) else np.zeros(0)
    repeatable = np.isin(attributes.category, codes[codes >= 0])
    return attributes.in_stock & ~(already_bought & ~repeatable)


# Diversity


def candidate_vectors(vectors: np.ndarray, product_ids: np.ndarray) -> np.ndarray:
    """Rows of ``vectors`` (indexed by product id) for the candidates; zeros where missing."""
    inside = (product_ids > 0) & (product_ids < len(vectors))
    out = np.zeros((len(product_ids), vectors.shape[1]), dtype=np.float32)
    out[inside] = vectors[product_ids[inside]]
    return out


def normalised(scores: np.ndarray) -> np.ndarray:
    """Scores min-max scaled to [0, 1] (all ones when they are all equal)."""
    low, high = float(scores.min()), float(scores.max())
    if high <= low:
        return np.ones(len(scores))
    return (scores - low) / (high - low)


def diversify(
    scores: np.ndarray,
    categories: np.ndarray,
    k: int,
    mmr_lambda: float = 1.0,
    max_per_category: int | None = None,
    vectors: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy MMR and per-category cap over one user's candidates.

    Each step picks the candidate maximising
    ``mmr_lambda * relevance - (1 - mmr_lambda) * max cosine to the picked items``
    (relevance = min-max normalised score) among those whose category is below the cap.
    Without ``vectors`` or with ``mmr_lambda == 1`` it is score order (under the cap).
    Ties go to the lower index.

    Args:
        scores: Ranker scores, one per candidate.
        categories: Integer category codes, one per candidate.
        k: How many to pick (fewer when the cap or the candidates run out).
        mmr_lambda: MMR trade-off in [0, 1].
        max_per_category: Cap per category code; ``None`` for none.
        vectors: Unit vectors, one row per candidate.

    Returns:
        Indices into the candidates, in list order.
    """
    gain = normalised(np.asarray(scores, dtype=np.float64))
    use_mmr = vectors is not None and mmr_lambda < 1.0
    if use_mmr:
        gain = mmr_lambda * gain
    similar = np.full(len(gain), -1.0)  # max cosine to the picked items so far (MMR)
    available = np.ones(len(gain), dtype=bool)
    counts = np.zeros(int(categories.max(initial=-1)) + 2, dtype=np.int64)
    picked: list[int] = []
    for _ in range(min(k, len(gain))):
        value = gain - (1.0 - mmr_lambda) * similar if use_mmr else gain
        best = int(np.argmax(np.where(available, value, -np.inf)))
        if not available[best]:
            break
        picked.append(best)
        available[best] = False
        counts[categories[best]] += 1
        if max_per_category is not None and counts[categories[best]] >= max_per_category:
            available &= categories != categories[best]
        if use_mmr:
            np.maximum(similar, vectors @ vectors[best], out=similar)
    return np.asarray(picked, dtype=np.int64)


# Exploration


def place_new_arrivals(
    order: np.ndarray,
    scores: np.ndarray,
    is_new: np.ndarray,
    categories: np.ndarray,
    config: RerankConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Put the best-scored new arrival at each reserved position.

    For each position (in increasing order) the best-scored new arrival not already placed
    above it moves there (from lower in the list, or from outside it); the rest shift down
    and the list is cut to ``config.k``. A new arrival whose leaf would break the category
    cap is passed over. Positions beyond a short list become its end.

    Returns:
        The new order and a boolean per list item: it fills an exploration slot.
    """
    order = list(order)
    slots: set[int] = set()
    by_score = np.argsort(-scores, kind="stable")
    for position in sorted(config.new_arrival_positions):
        head = order[: position - 1]
        for index in by_score[is_new[by_score]]:
            index = int(index)
            rest = [i for i in order if i != index]
            if index in head or not _fits_cap(index, rest[: config.k - 1], categories, config):
                continue
            order = head + [index] + rest[len(head) :]
            slots.add(index)
            break
    order = order[: config.k]
    return np.asarray(order, dtype=np.int64), np.asarray([i in slots for i in order], dtype=bool)


def _fits_cap(index: int, others: list[int], categories: np.ndarray, config: RerankConfig) -> bool:
    """Whether ``index`` can join ``others`` without exceeding the category cap."""
    if config.max_per_category is None:
        return True
    return int(np.sum(categories[others] == categories[index])) < config.max_per_category


def order_one(
    scores: np.ndarray,
    categories: np.ndarray,
    is_new: np.ndarray,
    config: RerankConfig,
    vectors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Diversity, then exploration slots, over one user's eligible candidates.

    Returns:
        Indices into the candidates in list order, and which of them fill a slot.
    """
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    order = diversify(
        scores, categories, config.k, config.mmr_lambda, config.max_per_category, vectors
    )
    return place_new_arrivals(order, scores, is_new, categories, config)


# Reasons


def sources_of(rows: Rows) -> list[tuple[str, ...]]:
    """Per row, the generators that proposed it (a finite ``<name>_rank``), best rank first."""
    names = [g for g in GENERATORS if f"{g}_rank" in rows]
    ranks = (
        np.column_stack([np.asarray(rows[f"{g}_rank"], dtype=np.float64) for g in names])
        if names
        else None
    )
    out = []
    for row in range(len(rows["product_id"])):
        if ranks is None:
            out.append(())
            continue
        finite = np.flatnonzero(np.isfinite(ranks[row]))
        best_first = finite[np.argsort(ranks[row, finite], kind="stable")]
        out.append(tuple(names[i] for i in best_first))
    return out


def contributions(
    model: RankerModel, frame: pd.DataFrame, approximate: bool = False
) -> pd.DataFrame:
    """Per-row contributions of every model column to the score (bias left out).

    Exact TreeSHAP, or Saabas' approximation with ``approximate``. Uses the same trees as
    ``model.predict`` (up to the early-stopping best iteration), so a row's contributions plus
    the bias sum to its score.
    """
    values = contribution_matrix(model, model.encode(frame), approximate)
    return pd.DataFrame(values, index=frame.index, columns=model.columns)


def contribution_matrix(
    model: RankerModel, matrix: np.ndarray, approximate: bool = False
) -> np.ndarray:
    """:func:`contributions` for an encoded matrix (:meth:`RankerModel.encode`)."""
    core = model.booster.get_booster()
    # One thread for a user's handful of rows: thread start-up costs more than it saves.
    threads = 1 if len(matrix) <= 1_000 else -1
    names, types = model.feature_info
    data = xgb.DMatrix(
        matrix,
        feature_names=names,
        feature_types=types,
        enable_categorical=True,
        nthread=threads,
    )
    values = core.predict(
        data,
        pred_contribs=True,
        approx_contribs=approximate,
        iteration_range=model.rounds,
        validate_features=False,  # the DMatrix was built with the booster's own names
    )
    return values[:, :-1]


def top_features(values: np.ndarray, names: Sequence[str], n: int) -> tuple[tuple[str, float], ...]:
    """The ``n`` features with the largest positive contributions, largest first.

    ``values`` is one row of contributions over ``names``; ties keep the column order.
    """
    positive = np.flatnonzero(values > 0)
    best = positive[np.argsort(-values[positive], kind="stable")][:n]
    return tuple((str(names[i]), float(values[i])) for i in best)


def feature_phrase(name: str, value: float, source_phrases: dict[str, str]) -> str | None:
    """A phrase for a feature that raised a score, given its value; None if none is honest.

    Generator columns (``<name>_score``, ``<name>_rank``) read as their source; known
    features have a phrase that holds only for some values (``in_top_category`` only when 1);
    other features fall back to their name.
    """
    generator = name.rsplit("_", 1)[0]
    if name.endswith(("_score", "_rank")) and generator in SOURCE_PHRASES:
        return source_phrases.get(generator, SOURCE_PHRASES[generator])
    if name == "price_vs_usual":
        return _price_phrase(value)
    for prefix, holds, phrase in _FEATURE_PHRASES:
        if name.startswith(prefix):
            return phrase if holds(value) else None
    return f"based on {name.split('__')[-1].replace('_', ' ')}"


def _is_one(value: float) -> bool:
    return value == 1


def _positive(value: float) -> bool:
    return value > 0


def _always(value: float) -> bool:
    return True


#: (feature name prefix, when the phrase is true of the value, phrase); first match wins.
_FEATURE_PHRASES: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("in_top_category", _is_one, "matches your favourite category"),
    ("in_top_brand", _is_one, "from your favourite brand"),
    ("same_leaf_as_last", _is_one, "similar to what you just viewed"),
    ("n_sources", lambda v: v >= 2, "suggested by several of our recommenders"),
    ("user_category_affinity__category_rank", lambda v: v <= 3, "from a category you shop often"),
    ("user_category_affinity__", _positive, "from a category you shop often"),
    ("user_brand_affinity__brand_rank", lambda v: v <= 3, "from a brand you like"),
    ("user_brand_affinity__", _positive, "from a brand you like"),
    ("product_features__days_since_launch", lambda v: v <= 30, "recently launched"),
    ("product_features__price_rel_category", lambda v: v < 1, "good value for its category"),
    ("product_features__views_7d_share", lambda v: v > 0.35, "getting more attention this week"),
    ("product_features__view_to", _positive, "often bought once viewed"),
    ("product_features__cart_to", _positive, "often bought once in a basket"),
    ("product_features__views", _positive, "popular in the shop lately"),
    ("product_features__carts", _positive, "popular in the shop lately"),
    ("product_features__purchases", _positive, "a popular buy lately"),
    ("product_features__revenue", _positive, "a popular buy lately"),
    ("session_features__", _always, "fits what you are browsing now"),
    ("calendar_features__", _always, "fits the time of year"),
    ("user_features__", _always, "fits your shopping history"),
)


def _price_phrase(value: float) -> str | None:
    """Relative price against the user's usual (0 = same relative price)."""
    if not np.isfinite(value):
        return None
    if abs(value) <= 0.2:
        return "in your usual price range"
    return "cheaper than you usually buy" if value < 0 else "a step up from your usual price"


def content_anchor(
    row: Mapping[str, object], catalog: Catalog, vectors: np.ndarray | None, product_id: int
) -> str | None:
    """Names the recent product a content match resembles most, or None if none is known.

    Recent products come from the row's ``session_features__last_product_id*`` columns; with
    vectors the closest one by cosine, else the most recent. The phrase reads
    "similar to the <brand> <leaf> you looked at".
    """
    recent = [row.get(c) for c in RECENT_COLUMNS]
    recent = [int(r) for r in recent if pd.notna(r) and int(r) != product_id]
    recent = [r for r in recent if r in catalog.frame.index]
    if not recent:
        return None
    anchor = recent[0]
    if vectors is not None:
        ids = np.asarray(recent, dtype=np.int64)
        own = candidate_vectors(vectors, np.asarray([product_id]))[0]
        anchor = int(ids[np.argmax(candidate_vectors(vectors, ids) @ own)])
    product = catalog.frame.loc[anchor]
    brand = f"{product['brand']} " if pd.notna(product.get("brand")) else ""
    return f"similar to the {brand}{str(product['category_l2']).lower()} you looked at"


def reason_text(phrases: Iterable[str | None]) -> str:
    """Distinct phrases joined, first letter capitalised; a generic one if there are none."""
    distinct = list(dict.fromkeys(p for p in phrases if p))
    text = "; ".join(distinct) or FALLBACK_REASON
    return text[0].upper() + text[1:]


# Entry points


def rerank(
    candidates: pd.DataFrame,
    catalog: Catalog,
    config: RerankConfig | None = None,
    *,
    now: datetime,
    vectors: np.ndarray | None = None,
    bought: Collection[int] = frozenset(),
    repeat_cats: Collection[str] = frozenset(),
    model: RankerModel | None = None,
    score_column: str = "score",
) -> list[Recommendation]:
    """One user's final list with a reason per item.

    Args:
        candidates: One user's candidate rows (product_id, ``score_column``, the generators'
            ``<name>_rank`` columns and, for feature reasons, the model's feature columns).
        catalog: Stock, leaf category, brand and launch time of every product.
        config: Rules, diversity and slots (defaults if None).
        now: Request time (aware or naive UTC); decides what counts as a new arrival.
        vectors: Unit item vectors indexed by product id (row 0 unused), for MMR and for
            naming the product a content match resembles; None skips MMR.
        bought: Products the user already bought.
        repeat_cats: Leaves where buying again is normal (:func:`repeat_categories`).
        model: The ranker; when given, reasons include its top contributing features.
        score_column: Column holding the ranker's score.

    Returns:
        The list, best first; shorter than ``config.k`` when rules or the cap leave fewer.
    """
    config = config or RerankConfig()
    ids = candidates["product_id"].to_numpy(np.int64)
    scores = candidates[score_column].to_numpy(np.float64)
    rows, slots = select(
        ids,
        scores,
        catalog,
        config,
        now=now,
        vectors=vectors,
        bought=bought,
        repeat_cats=repeat_cats,
    )
    return explain(candidates.iloc[rows], slots, catalog, config, vectors, model, score_column)


def select(
    ids: np.ndarray,
    scores: np.ndarray,
    catalog: Catalog,
    config: RerankConfig,
    *,
    now: datetime,
    vectors: np.ndarray | None = None,
    bought: Collection[int] = frozenset(),
    repeat_cats: Collection[str] = frozenset(),
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-3 of :func:`rerank` for one user: which candidates make the list, in order.

    Returns:
        Positions into ``ids`` in list order, and whether each fills an exploration slot.
    """
    already = np.isin(ids, np.fromiter(bought, np.int64))
    rows, attributes = _pool(ids, scores, already, catalog, config, now, repeat_cats)
    order, slots = order_one(
        scores[rows],
        attributes.category,
        attributes.new_arrival,
        config,
        # MMR is the only reader of the vectors: without it (lambda 1) they are not gathered
        candidate_vectors(vectors, ids[rows])
        if vectors is not None and config.mmr_lambda < 1.0
        else None,
    )
    return rows[order], slots


def _pool(
    ids: np.ndarray,
    scores: np.ndarray,
    already: np.ndarray,
    catalog: Catalog,
    config: RerankConfig,
    now: datetime,
    repeat_cats: Collection[str],
    users: np.ndarray | None = None,
) -> tuple[np.ndarray, ItemAttributes]:
    """Rows that pass the rules, by user, best score first (ties: lower product id).

    Returns:
        Positions of those rows in the inputs, and their :func:`item_attributes`.
    """
    attributes = item_attributes(catalog, ids, now, config.new_arrival_days)
    passing = eligible(attributes, already, repeat_cats, catalog)
    rows = np.flatnonzero(np.isfinite(scores) & passing)
    keys = [ids[rows], -scores[rows]] + ([users[rows]] if users is not None else [])
    rows = rows[np.lexsort(keys)]
    return rows, attributes.take(rows)


def explain(
    chosen: Rows,
    slots: np.ndarray,
    catalog: Catalog,
    config: RerankConfig,
    vectors: np.ndarray | None = None,
    model: RankerModel | None = None,
    score_column: str = "score",
    contribs: pd.DataFrame | None = None,
) -> list[Recommendation]:
    """Recommendations for the chosen rows (in list order), with sources and reasons.

    ``chosen`` is a frame, or columns as arrays (what the service passes). ``contribs``
    (one row per chosen row, model columns) are computed from ``model`` when not given
    (``chosen`` must then be a frame).
    """
    columns = {name: np.asarray(chosen[name]) for name in chosen}
    found = sources_of(columns)
    if contribs is None and model is not None and len(columns["product_id"]):
        contribs = contributions(model, chosen, config.approximate_contributions)  # type: ignore[arg-type]
    if contribs is not None:
        contrib_values, contrib_names = contribs.to_numpy(np.float64), list(contribs.columns)
    recent = [c for c in RECENT_COLUMNS if c in columns]
    out = []
    for position, product in enumerate(columns["product_id"]):
        product_id = int(product)
        sources = ((NEW_ARRIVAL,) if slots[position] else ()) + found[position]
        phrases = dict(SOURCE_PHRASES)
        if "content" in sources:
            row = {c: columns[c][position] for c in recent}
            anchor = content_anchor(row, catalog, vectors, product_id)
            phrases["content"] = anchor or phrases["content"]
        features = (
            top_features(contrib_values[position], contrib_names, config.reason_features)
            if contribs is not None
            else ()
        )
        feature_phrases = [
            feature_phrase(
                name, _number(columns[name][position] if name in columns else None), phrases
            )
            for name, _ in features
        ]
        text = reason_text([phrases[s] for s in sources[: config.reason_sources]] + feature_phrases)
        score = float(columns[score_column][position])
        out.append(Recommendation(product_id, score, position + 1, sources, features, text))
    return out


def _number(value: object) -> float:
    """A feature value as a float (NaN for missing or non-numeric values)."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def rerank_lists(
    scored: pd.DataFrame,
    users: np.ndarray,
    catalog: Catalog,
    config: RerankConfig | None = None,
    *,
    now: datetime,
    vectors: np.ndarray | None = None,
    bought: pd.DataFrame | None = None,
    repeat_cats: Collection[str] = frozenset(),
    score_column: str = "score",
) -> np.ndarray:
    """Re-ranked lists for many users, as an id matrix (no reasons), for offline evaluation.

    Args:
        scored: Candidate rows of many users (user_id, product_id, ``score_column``).
        users: Row order of the output.
        catalog: As for :func:`rerank`.
        config: As for :func:`rerank`; ``config.k`` is the output width.
        now: Request time.
        vectors: As for :func:`rerank`.
        bought: (user_id, product_id) pairs already bought (:func:`purchased_pairs`).
        repeat_cats: As for :func:`rerank`.
        score_column: Column holding the ranker's score.

    Returns:
        (len(users), config.k) int64 product ids, best first, -1 padded, like
        ``lists_from_column`` in ``shoprank.evaluation.offline``.
    """
    config = config or RerankConfig()
    user_ids = scored["user_id"].to_numpy(np.int64)
    ids = scored["product_id"].to_numpy(np.int64)
    scores = scored[score_column].to_numpy(np.float64)
    already = _bought_mask(user_ids, ids, bought)
    rows, attributes = _pool(ids, scores, already, catalog, config, now, repeat_cats, user_ids)
    user_ids, ids, scores = user_ids[rows], ids[rows], scores[rows]
    categories = attributes.category
    is_new = attributes.new_arrival
    out = np.full((len(users), config.k), -1, dtype=np.int64)
    if len(rows) == 0:
        return out
    row_of = {int(u): r for r, u in enumerate(users)}
    starts = np.flatnonzero(np.r_[True, user_ids[1:] != user_ids[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(rows)], strict=True):
        if (row := row_of.get(int(user_ids[start]))) is None:
            continue
        local = candidate_vectors(vectors, ids[start:end]) if vectors is not None else None
        order, _ = order_one(
            scores[start:end], categories[start:end], is_new[start:end], config, local
        )
        out[row, : len(order)] = ids[start:end][order]
    return out


def _bought_mask(user_ids: np.ndarray, ids: np.ndarray, bought: pd.DataFrame | None) -> np.ndarray:
    """Whether each (user, product) row is among the ``bought`` pairs."""
    if bought is None or len(bought) == 0:
        return np.zeros(len(ids), dtype=bool)
    pairs = pd.MultiIndex.from_frame(bought[["user_id", "product_id"]].astype(np.int64))
    return pd.MultiIndex.from_arrays([user_ids, ids]).isin(pairs)
