"""The ground-truth purchase model shared by the generator and the oracle.

The generator decides every cart and purchase with :func:`pair_logits`; :class:`Oracle` loads
the latent truth written next to the raw logs and evaluates the very same model, so
``Oracle.propensity`` is the true probability that a user buys a product if shown it at a given
time. Nothing in features or models may read the truth: the oracle is the ceiling no model can
pass, and a user simulator for later work.

The model, per (user u, product p, time t)::

    cart  = sigmoid(a_c + w_aff * taste_u . latent_p + w_brand * [brand_p in fav_u]
                    + price_fit + w_q * quality_p + w_pop * log(popularity_p)
                    + w_season * log(season[leaf_p, month(t)]) + holiday(t)
                    - w_oos * [not in_stock_p])
    buy   = sigmoid(a_b + w_bq * quality_p + w_bp * price_fit + buy_holiday(t))
    price_fit = -w_price * (sensitivity_u - pivot) * log(price_p / leaf median price)
    propensity = cart * buy, and 0 before launch or for bot users.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND


# Calendar helpers
def to_us(times: np.ndarray | Any) -> np.ndarray:
    """Convert times to int64 microseconds since the epoch (UTC).

    Args:
        times: datetime64 values (any unit; naive = UTC), integer microseconds, or strings /
            datetime objects / pandas Timestamps (timezone-aware ones are converted to UTC).

    Returns:
        An int64 array of microseconds since 1970-01-01 UTC, with the input's shape.

    Raises:
        ValueError: If the values are not times.
    """
    arr = np.asarray(times)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[us]").view(np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind in "OU":
        try:
            stamps = pd.to_datetime(arr.ravel(), utc=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"times must be datetimes: {exc}") from exc
        return stamps.as_unit("us").asi8.reshape(arr.shape)
    raise ValueError(f"times must be datetime64 (or int64 microseconds), got dtype {arr.dtype}")


def month_index(t_us: np.ndarray) -> np.ndarray:
    """Return the month of year (0 = January) of microsecond timestamps."""
    months = t_us.astype("datetime64[us]").astype("datetime64[M]").view(np.int64)
    return months % 12


def black_friday(years: np.ndarray) -> np.ndarray:
    """Return Black Friday (day after the fourth Thursday of November) as days since epoch."""
    nov1 = ((years - 1970) * 12 + 10).astype("datetime64[M]").astype("datetime64[D]")
    nov1_days = nov1.view(np.int64)
    weekday = (nov1_days + 3) % 7  # Monday = 0; 1970-01-01 was a Thursday
    first_thursday = nov1_days + (3 - weekday) % 7
    return first_thursday + 22


def holiday_level(t_us: np.ndarray) -> np.ndarray:
    """Shopping-holiday level: 1 from Black Friday to Cyber Monday, 0.5 in December sales.

    Args:
        t_us: Microsecond timestamps.

    Returns:
        Float array in [0, 1]: 1.0 for Black Friday..Cyber Monday, 0.5 for 1-23 December and
        the Boxing Day sales (26 December - 7 January), else 0.

    """
    days = t_us // US_PER_DAY
    day64 = days.astype("datetime64[D]")
    years = day64.astype("datetime64[Y]").view(np.int64) + 1970
    month = month_index(t_us)
    dom = (days - day64.astype("datetime64[M]").astype("datetime64[D]").view(np.int64)) + 1
    level = np.zeros(t_us.shape, dtype=np.float64)
    december = (month == 11) & ((dom <= 23) | (dom >= 26))
    level[december | ((month == 0) & (dom <= 7))] = 0.5
    rel = days - black_friday(years)
    level[(rel >= 0) & (rel <= 3)] = 1.0
    return level


# The purchase model
@dataclass(frozen=True)
class FunnelParams:
    """Coefficients of the cart and purchase model (intercepts are calibrated per data set)."""

    cart_intercept: float = -3.0
    buy_intercept: float = -0.2
    affinity: float = 2.5
    fav_brand: float = 0.8
    quality: float = 0.5
    popularity: float = 0.15
    price: float = 1.5
    price_pivot: float = 0.35
    season: float = 0.6
    out_of_stock: float = 3.0
    holiday: float = 0.35
    buy_quality: float = 0.35
    buy_price: float = 0.8
    buy_holiday: float = 0.5

    def to_dict(self) -> dict[str, float]:
        """Return the coefficients as a plain dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FunnelParams:
        """Build from a dict, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in values.items() if k in names})


@dataclass(frozen=True)
class UserTruth:
    """Latent user state, indexed by row (user_id - 1)."""

    taste: np.ndarray
    price_sensitivity: np.ndarray
    fav_brands: np.ndarray
    is_bot: np.ndarray
    activity: np.ndarray


@dataclass(frozen=True)
class ProductTruth:
    """Latent product state, indexed by row (product_id - 1)."""

    latent: np.ndarray
    leaf: np.ndarray
    brand: np.ndarray
    quality: np.ndarray
    popularity: np.ndarray
    rel_price: np.ndarray
    in_stock: np.ndarray
    launched_us: np.ndarray


def rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot products of matching rows of two (n, d) arrays, in float64."""
    return np.einsum("ij,ij->i", a, b, dtype=np.float64)


def price_fit(sensitivity: np.ndarray, rel_price: np.ndarray, params: FunnelParams) -> np.ndarray:
    """Utility of a price: sensitive users dislike prices above their leaf's median."""
    return -params.price * (sensitivity - params.price_pivot) * rel_price


def pair_logits(
    users: UserTruth,
    products: ProductTruth,
    season: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    params: FunnelParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Cart and purchase-given-cart logits for (user row, product row, time) triples.

    Args:
        users: User truth.
        products: Product truth.
        season: (n_leaves, 12) monthly season multipliers.
        rows: User rows, product rows and int64 microsecond times (same shape).
        params: Model coefficients.

    Returns:
        (cart logit, buy logit) as float64 arrays.

    """
    u, p, t_us = rows
    fav = (users.fav_brands[u] == products.brand[p][:, None]).any(axis=1)
    fit = price_fit(users.price_sensitivity[u], products.rel_price[p], params)
    holiday = holiday_level(t_us)
    cart = (
        params.cart_intercept
        + params.affinity * rowwise_dot(users.taste[u], products.latent[p])
        + params.fav_brand * fav
        + fit
        + params.quality * products.quality[p]
        + params.popularity * np.log(products.popularity[p])
        + params.season * np.log(season[products.leaf[p], month_index(t_us)])
        + params.holiday * holiday
        - params.out_of_stock * ~products.in_stock[p]
    )
    buy = (
        params.buy_intercept
        + params.buy_quality * products.quality[p]
        + params.buy_price * fit
        + params.buy_holiday * holiday
    )
    return cart, buy


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def pair_propensity(
    users: UserTruth,
    products: ProductTruth,
    season: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray, np.ndarray],
    params: FunnelParams,
) -> np.ndarray:
    """True purchase probability if shown: P(cart) * P(buy | cart), 0 before launch or for bots.

    Args:
        users: User truth.
        products: Product truth.
        season: (n_leaves, 12) monthly season multipliers.
        rows: User rows, product rows and int64 microsecond times (same shape).
        params: Model coefficients.

    Returns:
        Probabilities in [0, 1].

    """
    u, p, t_us = rows
    cart, buy = pair_logits(users, products, season, rows, params)
    live = (t_us >= products.launched_us[p]) & ~users.is_bot[u]
    return np.where(live, sigmoid(cart) * sigmoid(buy), 0.0)


def calibrate_intercept(
    rest: np.ndarray, target: float, weights: np.ndarray | None = None
) -> float:
    """Find the intercept a with weighted mean sigmoid(a + rest) == target (Newton's method).

    Args:
        rest: Logits without intercept.
        target: Desired mean probability in (0, 1).
        weights: Optional non-negative weights.

    Returns:
        The intercept.

    """
    w = np.ones_like(rest) if weights is None else weights
    total = float(w.sum())
    a = float(np.log(target / (1 - target)) - np.average(rest, weights=w))
    for _ in range(50):
        prob = sigmoid(a + rest)
        gap = float((w * prob).sum()) / total - target
        slope = float((w * prob * (1 - prob)).sum()) / total
        a -= gap / max(slope, 1e-12)
        if abs(gap) < 1e-9:
            break
    return a


# Reading the truth files
def _matrix(table: pa.Table, column: str) -> np.ndarray:
    """Decode a fixed-size-list column into a 2-D numpy array."""
    col = table.column(column).combine_chunks()
    width = col.type.list_size
    return np.asarray(col.flatten()).reshape(len(col), width)


def _load_users(path: Path) -> UserTruth:
    """Read truth/users.parquet into a :class:`UserTruth` (sorted by user_id)."""
    table = pq.read_table(path).sort_by("user_id")
    return UserTruth(
        taste=_matrix(table, "taste").astype(np.float32),
        price_sensitivity=table.column("price_sensitivity").to_numpy(),
        fav_brands=_matrix(table, "fav_brands").astype(np.int64),
        is_bot=table.column("is_bot").to_numpy(zero_copy_only=False).astype(bool),
        activity=table.column("activity").to_numpy(),
    )


def _load_products(path: Path) -> ProductTruth:
    """Read truth/products.parquet into a :class:`ProductTruth` (sorted by product_id)."""
    table = pq.read_table(path).sort_by("product_id")
    launched = table.column("launched_at").cast(pa.int64()).to_numpy()
    return ProductTruth(
        latent=_matrix(table, "latent").astype(np.float32),
        leaf=table.column("leaf_id").to_numpy().astype(np.int64),
        brand=table.column("brand_id").to_numpy().astype(np.int64),
        quality=table.column("quality").to_numpy(),
        popularity=table.column("popularity").to_numpy(),
        rel_price=table.column("rel_price").to_numpy(),
        in_stock=table.column("in_stock").to_numpy(zero_copy_only=False).astype(bool),
        launched_us=launched,
    )


@dataclass(frozen=True)
class Oracle:
    """The generator's true purchase model, loaded from a ``truth/`` directory."""

    users: UserTruth
    products: ProductTruth
    season: np.ndarray
    params: FunnelParams

    @classmethod
    def load(cls, truth_dir: Path) -> Oracle:
        """Load the oracle from the generator's truth directory.

        Args:
            truth_dir: Directory holding meta.json, users.parquet and products.parquet.

        Returns:
            The oracle.

        Raises:
            ValueError: If a truth file is missing.

        """
        truth_dir = Path(truth_dir)
        for name in ("meta.json", "users.parquet", "products.parquet"):
            if not (truth_dir / name).is_file():
                raise ValueError(f"truth_dir {truth_dir} has no {name}; run the generator")
        meta = json.loads((truth_dir / "meta.json").read_text())
        season = np.array([meta["season"][name] for name in meta["leaf_names"]], dtype=float)
        return cls(
            users=_load_users(truth_dir / "users.parquet"),
            products=_load_products(truth_dir / "products.parquet"),
            season=season,
            params=FunnelParams.from_dict(meta["funnel"]),
        )

    @property
    def n_users(self) -> int:
        """Number of users (ids 1..n_users)."""
        return int(self.users.taste.shape[0])

    @property
    def n_products(self) -> int:
        """Number of products (ids 1..n_products)."""
        return int(self.products.latent.shape[0])

    def _rows(self, ids: np.ndarray, n: int, name: str) -> np.ndarray:
        """Map 1-based ids to 0-based rows, rejecting unknown ids."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 1 or ids.max() > n):
            raise ValueError(f"{name} must be in 1..{n}")
        return ids - 1

    def propensity(
        self, user_ids: np.ndarray, product_ids: np.ndarray, times: np.ndarray
    ) -> np.ndarray:
        """True probability that each user buys each product if shown it at that time.

        Args:
            user_ids: User ids (broadcast against the other arguments).
            product_ids: Product ids.
            times: datetime64 times (naive values are UTC).

        Returns:
            Float64 probabilities with the broadcast shape; 0 before launch and for bots.

        """
        u, p, t = np.broadcast_arrays(
            self._rows(user_ids, self.n_users, "user_ids"),
            self._rows(product_ids, self.n_products, "product_ids"),
            to_us(times),
        )
        shape = u.shape
        rows = (u.ravel(), p.ravel(), t.ravel())
        prob = pair_propensity(self.users, self.products, self.season, rows, self.params)
        return prob.reshape(shape)

    def top_k(
        self,
        user_id: int,
        time: np.datetime64 | Any,
        k: int,
        product_ids: np.ndarray | None = None,
    ) -> np.ndarray:
        """Rank products by true propensity for one user at one time.

        Args:
            user_id: The user.
            time: A datetime64 (or anything numpy converts to one).
            k: How many products to return.
            product_ids: Candidate ids (default: the whole catalog).

        Returns:
            Up to k product ids, best first; products with zero propensity (not yet launched)
            are never returned. Ties break by ascending product id.

        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if product_ids is None:
            candidates = np.arange(1, self.n_products + 1, dtype=np.int64)
        else:
            candidates = np.asarray(product_ids, dtype=np.int64)
        when = to_us(time)
        prob = self.propensity(np.full(candidates.shape, user_id), candidates, when)
        order = np.lexsort((candidates, -prob))
        order = order[prob[order] > 0][:k]
        return candidates[order]


# Expected graded gain: the exposure model behind views, times the funnel
@dataclass(frozen=True)
class ExposureParams:
    """Utility of a product being viewed in a session (what gets shown, not what is bought)."""

    affinity: float = 5.0
    popularity: float = 0.9
    fav_brand: float = 1.0
    price: float = 1.0
    out_of_stock: float = 1.5
    novelty: float = 2.0
    novelty_days: float = 30.0
    anchor_noise: float = 0.35

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExposureParams:
        """Build from a dict (meta.json's config ``exposure`` block); unknown keys ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in values.items() if k in names})


@dataclass(frozen=True)
class ExposureOracle:
    """The generator's whole behaviour model: which products a user views, carts and buys.

    A session's intent leaf is drawn from the user's leaf affinity x the leaf's season that
    month (later views sometimes move to a sibling leaf); within a leaf, products are drawn
    by exposure utility (taste x latent, price fit, popularity, favourite brand, novelty, stock).
    :meth:`expected_gain` is P(view) x (1 + P(cart | view) x (1 + P(buy | cart))), the expected
    relevance grade (view 1, cart 2, purchase 3) of one session's draw: the ceiling for graded
    ranking metrics, where :class:`Oracle` (purchase propensity only) is the ceiling for
    purchase metrics.
    """

    oracle: Oracle
    affinity: np.ndarray
    leaf_l1: np.ndarray
    exposure: ExposureParams
    sibling_share: float = 0.08

    @classmethod
    def load(cls, truth_dir: Path) -> ExposureOracle:
        """Load from the generator's truth directory (needs user_leaf_affinity.npy too)."""
        truth_dir = Path(truth_dir)
        if not (truth_dir / "user_leaf_affinity.npy").is_file():
            raise ValueError(f"truth_dir {truth_dir} has no user_leaf_affinity.npy")
        meta = json.loads((truth_dir / "meta.json").read_text())
        config = meta.get("config", {})
        return cls(
            oracle=Oracle.load(truth_dir),
            affinity=np.load(truth_dir / "user_leaf_affinity.npy").astype(np.float64),
            leaf_l1=np.asarray(meta["leaf_l1"], dtype=np.int64),
            exposure=ExposureParams.from_dict(config.get("exposure", {})),
            sibling_share=float(config.get("sibling_view_share", 0.08)),
        )

    def _leaf_probability(self, u: np.ndarray, t_us: int) -> np.ndarray:
        """P(a view slot is in each leaf) per user row: intent, with sibling moves."""
        season = self.oracle.season[:, month_index(np.array([t_us]))[0]]
        intent = self.affinity[u] * season[None, :]
        intent /= intent.sum(axis=1, keepdims=True)
        l1 = self.leaf_l1
        same_l1 = (l1[:, None] == l1[None, :]) & ~np.eye(l1.size, dtype=bool)
        sizes = np.maximum(same_l1.sum(axis=1), 1)
        sibling = intent @ (same_l1 / sizes[:, None])
        share = self.sibling_share
        return (1 - share) * intent + share * np.where(sizes[None, :] > 0, sibling, intent)

    def expected_gain(self, user_ids: np.ndarray, time: Any) -> np.ndarray:
        """Expected relevance grade of every product for each user at ``time``.

        Args:
            user_ids: User ids (1-based).
            time: One datetime64 (naive = UTC) for all users.

        Returns:
            (n_users, n_products + 1) float64; column = product id, column 0 and unlaunched
            products are 0, bots score 0 everywhere.
        """
        o, exp, funnel = self.oracle, self.exposure, self.oracle.params
        users, products = o.users, o.products
        u = o._rows(np.asarray(user_ids), o.n_users, "user_ids")
        t_us = int(to_us(np.asarray(time)).ravel()[0])
        # Terms shared by the exposure and the cart model
        taste = (users.taste[u] @ products.latent.T).astype(np.float64)
        fav = (users.fav_brands[u][:, :, None] == products.brand[None, None, :]).any(axis=1)
        sensitivity = (users.price_sensitivity[u] - funnel.price_pivot)[:, None]
        rel_price = products.rel_price[None, :]
        log_pop = np.log(products.popularity)[None, :]
        stock_out = ~products.in_stock[None, :]
        age_days = (t_us - products.launched_us) / US_PER_DAY
        # Views: intent leaf x within-leaf choice by exposure utility
        util = exp.affinity * taste - exp.price * funnel.price * sensitivity * rel_price
        util += exp.popularity * log_pop - exp.out_of_stock * stock_out + exp.fav_brand * fav
        util += exp.novelty * np.exp(-np.clip(age_days, 0.0, None) / exp.novelty_days)[None, :]
        util[:, age_days < 0] = -np.inf
        util -= util.max(axis=1, keepdims=True)
        weight = np.exp(util)
        leaf = products.leaf
        totals = weight @ np.eye(self.leaf_l1.size)[leaf]
        view = (
            self._leaf_probability(u, t_us)[:, leaf] * weight / np.maximum(totals[:, leaf], 1e-300)
        )
        # Funnel: cart given view, buy given cart (as pair_logits, in matrix form)
        fit = -funnel.price * sensitivity * rel_price
        holiday = float(holiday_level(np.array([t_us]))[0])
        month = int(month_index(np.array([t_us]))[0])
        cart = (
            funnel.cart_intercept
            + funnel.affinity * taste
            + funnel.fav_brand * fav
            + fit
            + (funnel.quality * products.quality)[None, :]
            + funnel.popularity * log_pop
            + (funnel.season * np.log(o.season[leaf, month]))[None, :]
            + funnel.holiday * holiday
            - funnel.out_of_stock * stock_out
        )
        buy = (
            funnel.buy_intercept
            + (funnel.buy_quality * products.quality)[None, :]
            + funnel.buy_price * fit
            + funnel.buy_holiday * holiday
        )
        gain = view * (1.0 + sigmoid(cart) * (1.0 + sigmoid(buy)))
        gain[users.is_bot[u]] = 0.0
        return np.hstack([np.zeros((u.size, 1)), gain])
