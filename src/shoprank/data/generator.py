"""Synthetic e-commerce logs with a known latent truth.

:func:`generate` writes ``raw/`` (products, users, sessions, events; the dbt sources) and
``truth/`` (latent user and product state, parameters, injected faults; read only by the
oracle and by tests). Everything derives from one ``np.random.default_rng(seed)`` that is
passed down, so a (scale, seed, start, end) tuple always produces the same bytes.

The world: a category tree with seasonal demand, brands with price tiers, products with
latent vectors, users whose tastes mix a few preferred leaf categories (priors depend on age
band, region and device), heavy-tailed activity and popularity, a seasonal x weekly x daily
traffic intensity, coherent sessions (views drawn without replacement by Gumbel top-k within
an intent category) and a cart/purchase funnel that follows :mod:`shoprank.data.oracle`.
Bots and log faults are added on top; see docs/data.md for every schema and rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from shoprank.data import faults as fl
from shoprank.data import vocab
from shoprank.data.oracle import (
    US_PER_DAY,
    US_PER_SECOND,
    ExposureParams,
    FunnelParams,
    ProductTruth,
    UserTruth,
    black_friday,
    calibrate_intercept,
    holiday_level,
    month_index,
    pair_logits,
    sigmoid,
)
from shoprank.data.schema import TIMESTAMP, raw_schemas
from shoprank.io import publish, staging_dir

HOUR_US = 3_600 * US_PER_SECOND
YEAR_US = 365 * US_PER_DAY
# Traffic multipliers: month of year, weekday (Monday first) and hour of day (UTC)
MONTH_TRAFFIC = (1.0, 0.88, 0.93, 0.91, 0.92, 0.88, 0.90, 0.93, 0.92, 0.98, 1.12, 1.18)
WEEKDAY_TRAFFIC = (0.95, 0.93, 0.95, 0.97, 1.0, 1.12, 1.18)
HOUR_TRAFFIC = (
    0.45,
    0.28,
    0.18,
    0.13,
    0.12,
    0.15,
    0.30,
    0.55,
    0.80,
    0.90,
    0.95,
    1.00,
    1.10,
    1.05,
    0.95,
    0.95,
    1.00,
    1.10,
    1.30,
    1.55,
    1.70,
    1.60,
    1.25,
    0.80,
)
TRAFFIC_SOURCE_SHARES = (0.32, 0.30, 0.12, 0.10, 0.16)
TIER_SHARES = (0.35, 0.45, 0.20)
TIER_PRICE = (0.65, 1.0, 1.7)
TIER_QUALITY = (-0.4, 0.0, 0.45)
# Price sensitivity offsets (logit scale) by age band and region
AGE_SENSITIVITY = (1.0, 0.5, 0.1, -0.1, -0.2, 0.1)
REGION_SENSITIVITY = (0.2, -0.2, 0.0, 0.1, 0.0, -0.5, 0.1, 0.25)
AGE_MOBILE = (0.75, 0.68, 0.60, 0.50, 0.40, 0.32)
AGE_TABLET = (0.05, 0.07, 0.10, 0.14, 0.20, 0.26)
RAW_FILES = ("products", "users", "sessions", "events")


# Public configuration
@dataclass(frozen=True)
class ScaleSpec:
    """Size of a generated data set."""

    n_users: int
    n_products: int
    n_interactions: int

    def __post_init__(self) -> None:
        n_leaves = sum(len(top.leaves) for top in vocab.CATEGORIES)
        if self.n_users < 20:
            raise ValueError(f"n_users must be >= 20, got {self.n_users}")
        if self.n_products < n_leaves:
            raise ValueError(f"n_products must be >= {n_leaves}, got {self.n_products}")
        if self.n_interactions < 1_000:
            raise ValueError(f"n_interactions must be >= 1000, got {self.n_interactions}")


SCALES: dict[str, ScaleSpec] = {
    "tiny": ScaleSpec(n_users=600, n_products=300, n_interactions=12_000),
    "small": ScaleSpec(n_users=10_000, n_products=2_500, n_interactions=100_000),
    "seed": ScaleSpec(n_users=200_000, n_products=50_000, n_interactions=2_000_000),
}


@dataclass(frozen=True)
class GeneratorConfig:
    """All generator knobs besides scale, seed and time window (stored in truth/meta.json)."""

    latent_dim: int = 24  # size of user taste / product latent vectors
    max_brands: int = 500  # brands = min(max_brands, max(30, n_products // 4))
    history_years: float = 3.0  # pre-window launches and sign-ups spread over this many years
    prelaunch_share: float = 0.70  # products launched before start
    in_stock_share: float = 0.92
    presignup_share: float = 0.60  # users signed up before start
    explore_share: float = 0.15  # intent mass on the profile prior instead of preferred leaves
    activity_sigma: float = 1.3  # lognormal sigma of user activity
    active_share: float = 0.45  # users with non-zero activity (the rest are dormant accounts)
    bot_share: float = 0.0001  # bots = max(min_bots, round(bot_share * n_users))
    min_bots: int = 2
    bot_views: tuple[int, int] = (1_000, 3_000)  # views per bot (inclusive range)
    bot_max_event_share: float = 0.15  # bot views are scaled down to at most this share of rows
    mean_session_views: float = 5.6  # geometric session length (before running out of items)
    max_session_views: int = 40
    sibling_view_share: float = 0.08  # views after the first drawn from a sibling leaf
    preferred_device_share: float = 0.78  # sessions on the user's preferred device
    cart_rate: float = 0.10  # calibration target: mean P(cart | view)
    buy_rate: float = 0.44  # calibration target: mean P(purchase | cart)
    discount_share: float = 0.12  # views at a 5-30% discount (+25 points on holidays)
    exposure: ExposureParams = field(default_factory=ExposureParams)
    funnel: FunnelParams = field(default_factory=FunnelParams)
    faults: fl.FaultRates = field(default_factory=fl.FaultRates)


@dataclass
class GenerationSummary:
    """What :func:`generate` wrote, with headline statistics."""

    scale: str
    seed: int
    start: datetime
    end: datetime
    out_dir: Path
    rows: dict[str, int]
    event_types: dict[str, int]
    faults: dict[str, int]
    n_bots: int
    bot_events: int
    cold_start_month: datetime
    cold_start_user_share: float
    cold_start_product_share: float
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        out = asdict(self)
        for key in ("start", "end", "cold_start_month"):
            out[key] = out[key].isoformat()
        out["out_dir"] = str(self.out_dir)
        return out


# Argument checks
def _resolve_scale(scale: str | ScaleSpec) -> tuple[str, ScaleSpec]:
    """Return (name, spec) for a scale name or an explicit spec."""
    if isinstance(scale, ScaleSpec):
        return "custom", scale
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    return scale, SCALES[scale]


def _as_utc(value: datetime, name: str) -> datetime:
    """Return an aware UTC datetime (naive values are taken as UTC)."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _datetime_us(value: datetime) -> int:
    """Microseconds since the epoch for an aware datetime (exact)."""
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _validate(seed: int, start: datetime, end: datetime, out_dir: Path) -> tuple[int, int]:
    """Check arguments; return the window as microseconds."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    if end - start < timedelta(days=7):
        raise ValueError("end must be at least 7 days after start")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"out_dir {out_dir} exists and is not a directory")
    return _datetime_us(start), _datetime_us(end)


def last_month_start(start: datetime, end: datetime) -> datetime:
    """Start of the last month: ``end`` minus one calendar month, not before ``start``.

    Args:
        start: Data start.
        end: Data end (exclusive).

    Returns:
        The later of start and end - 1 month (day clamped to the month's length).
    """
    year, month = (end.year, end.month - 1) if end.month > 1 else (end.year - 1, 12)
    next_first = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=end.tzinfo)
    last_day = (next_first - timedelta(days=1)).day
    return max(start, end.replace(year=year, month=month, day=min(end.day, last_day)))


# Time: traffic calendar
@dataclass(frozen=True)
class Calendar:
    """Hourly traffic intensity over [start, end) as a piecewise-linear CDF."""

    start_us: int
    end_us: int
    bin_start: np.ndarray
    bin_len: np.ndarray
    cdf: np.ndarray

    def cdf_at(self, t_us: np.ndarray) -> np.ndarray:
        """Traffic mass before each time (0 before start, 1 at end)."""
        t = np.clip(t_us, self.start_us, self.end_us)
        b = np.clip((t - self.start_us) // HOUR_US, 0, self.bin_len.size - 1)
        frac = (t - self.bin_start[b]) / self.bin_len[b]
        return np.minimum(self.cdf[b] + frac * (self.cdf[b + 1] - self.cdf[b]), 1.0)

    def sample(self, rng: np.random.Generator, lower: np.ndarray) -> np.ndarray:
        """Draw one time per entry of ``lower`` from the intensity, after mass ``lower``."""
        u = lower + rng.random(lower.size) * (1.0 - lower)
        b = np.clip(np.searchsorted(self.cdf, u, side="right") - 1, 0, self.bin_len.size - 1)
        width = np.maximum(self.cdf[b + 1] - self.cdf[b], 1e-300)
        frac = np.clip((u - self.cdf[b]) / width, 0.0, 1.0)
        t = self.bin_start[b] + np.floor(frac * self.bin_len[b]).astype(np.int64)
        return np.minimum(t, self.end_us - 1)


def _special_days(days: np.ndarray) -> np.ndarray:
    """Traffic multipliers for Black Friday week, Christmas and New Year's Day."""
    day64 = days.astype("datetime64[D]")
    years = day64.astype("datetime64[Y]").view(np.int64) + 1970
    rel = days - black_friday(years)
    mult = np.ones(days.shape)
    for offset, value in (
        (-4, 1.2),
        (-3, 1.2),
        (-2, 1.25),
        (-1, 1.3),
        (0, 2.6),
        (1, 1.7),
        (2, 1.5),
        (3, 2.0),
    ):
        mult[rel == offset] = value
    md = (day64 - day64.astype("datetime64[Y]")).view(np.int64)
    leap = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    md = md - leap * (md >= 59)  # day of year as in a non-leap year
    for doy, value in ((357, 0.8), (358, 0.55), (359, 1.6), (360, 1.2), (0, 0.85)):
        mult[md == doy] = value
    return mult


def traffic_weight(bin_start: np.ndarray, category_mix: np.ndarray) -> np.ndarray:
    """Relative traffic per hour: month x category season x weekday x hour x special day.

    Args:
        bin_start: Hour starts in microseconds.
        category_mix: (12,) demand-weighted mean category season per month.

    Returns:
        Non-negative weights, one per hour.
    """
    days = bin_start // US_PER_DAY
    month = month_index(bin_start)
    weekday = (days + 3) % 7
    hour = (bin_start // HOUR_US) % 24
    return (
        np.asarray(MONTH_TRAFFIC)[month]
        * np.sqrt(category_mix[month])
        * np.asarray(WEEKDAY_TRAFFIC)[weekday]
        * np.asarray(HOUR_TRAFFIC)[hour]
        * _special_days(days)
    )


def build_calendar(start_us: int, end_us: int, category_mix: np.ndarray) -> Calendar:
    """Build the traffic calendar for [start, end).

    Args:
        start_us: Window start (microseconds).
        end_us: Window end (microseconds).
        category_mix: (12,) demand-weighted mean category season per month.

    Returns:
        The calendar.
    """
    bin_start = np.arange(start_us, end_us, HOUR_US, dtype=np.int64)
    bin_len = np.minimum(bin_start + HOUR_US, end_us) - bin_start
    weight = traffic_weight(bin_start, category_mix) * bin_len / HOUR_US
    cdf = np.concatenate([[0.0], np.cumsum(weight)])
    return Calendar(start_us, end_us, bin_start, bin_len, cdf / cdf[-1])


# Catalog
def _unit(x: np.ndarray) -> np.ndarray:
    """Scale rows to unit length."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@dataclass(frozen=True)
class LatentSpace:
    """Latent vectors of leaves, brands, colours and materials."""

    leaf: np.ndarray
    brand: np.ndarray
    color: np.ndarray
    material: np.ndarray


def _latent_space(
    rng: np.random.Generator, taxonomy: vocab.Taxonomy, n_brands: int, dim: int
) -> LatentSpace:
    """Leaf vectors cluster by L1; brands, colours and materials are random directions."""
    l1 = _unit(rng.standard_normal((taxonomy.n_l1, dim)))
    own = _unit(rng.standard_normal((taxonomy.n_leaves, dim)))
    return LatentSpace(
        leaf=_unit(0.75 * l1[taxonomy.leaf_l1] + 0.65 * own),
        brand=_unit(rng.standard_normal((n_brands, dim))),
        color=_unit(rng.standard_normal((len(vocab.COLORS), dim))),
        material=_unit(rng.standard_normal((len(taxonomy.materials), dim))),
    )


@dataclass(frozen=True)
class Brands:
    """Brand table: name, price tier, quality, active L1 categories and size."""

    names: list[str]
    tier: np.ndarray
    quality: np.ndarray
    active: np.ndarray
    weight: np.ndarray


def _brands(rng: np.random.Generator, n_brands: int, n_l1: int) -> Brands:
    """Draw brands, each active in 1-3 top-level categories (every L1 has one)."""
    tier = rng.choice(3, size=n_brands, p=TIER_SHARES)
    quality = np.asarray(TIER_QUALITY)[tier] + rng.normal(0.0, 0.45, n_brands)
    n_active = rng.choice([1, 2, 3], size=n_brands, p=[0.5, 0.35, 0.15])
    ranks = np.argsort(np.argsort(rng.random((n_brands, n_l1)), axis=1), axis=1)
    active = ranks < n_active[:, None]
    for l1 in np.flatnonzero(~active.any(axis=0)):
        active[l1 % n_brands, l1] = True
    weight = rng.lognormal(0.0, 1.0, n_brands)
    return Brands(vocab.brand_names(rng, n_brands), tier, quality, active, weight)


@dataclass(frozen=True)
class Catalog:
    """Products (row = product_id - 1) with raw attributes and latent truth."""

    leaf: np.ndarray
    brand: np.ndarray
    color: np.ndarray
    material: np.ndarray
    price: np.ndarray
    in_stock: np.ndarray
    launched_us: np.ndarray
    quality: np.ndarray
    popularity: np.ndarray
    rel_price: np.ndarray
    latent: np.ndarray
    title: pa.Array
    description: pa.Array

    def truth(self) -> ProductTruth:
        """The oracle's view of the catalog."""
        return ProductTruth(
            latent=self.latent,
            leaf=self.leaf,
            brand=self.brand,
            quality=self.quality,
            popularity=self.popularity,
            rel_price=self.rel_price,
            in_stock=self.in_stock,
            launched_us=self.launched_us,
        )


def _assign_leaves(
    rng: np.random.Generator, n_products: int, leaf_weight: np.ndarray
) -> np.ndarray:
    """One product per leaf, the rest by leaf weight, in random product order."""
    n_leaves = leaf_weight.size
    extra = rng.choice(n_leaves, size=n_products - n_leaves, p=leaf_weight)
    return rng.permutation(np.concatenate([np.arange(n_leaves), extra]))


def _assign_brands(rng: np.random.Generator, product_l1: np.ndarray, brands: Brands) -> np.ndarray:
    """Pick each product's brand among the brands active in its L1, by brand size."""
    brand = np.empty(product_l1.size, dtype=np.int64)
    for l1 in range(brands.active.shape[1]):
        rows = np.flatnonzero(product_l1 == l1)
        candidates = np.flatnonzero(brands.active[:, l1])
        p = brands.weight[candidates] / brands.weight[candidates].sum()
        brand[rows] = rng.choice(candidates, size=rows.size, p=p)
    return brand


def _materials(
    rng: np.random.Generator, product_l1: np.ndarray, taxonomy: vocab.Taxonomy
) -> np.ndarray:
    """Pick a material from each product's L1 material list."""
    sizes = np.array([m.size for m in taxonomy.l1_materials])
    flat = np.concatenate(taxonomy.l1_materials)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    local = np.floor(rng.random(product_l1.size) * sizes[product_l1]).astype(np.int64)
    return flat[offsets[product_l1] + local]


def _prices(
    rng: np.random.Generator, base: np.ndarray, tier: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """List prices (leaf base x tier x lognormal noise, .99 endings) and log price vs base."""
    raw = base * np.asarray(TIER_PRICE)[tier] * rng.lognormal(0.0, 0.3, base.size)
    price = np.where(raw >= 2.0, np.floor(raw) - 0.01, np.round(np.maximum(raw, 0.5), 2))
    return price, np.log(price / base)


def month_edges(start_us: int, end_us: int) -> np.ndarray:
    """Calendar-month boundaries covering [start, end), clipped to the window."""
    first = np.datetime64(start_us, "us").astype("datetime64[M]")
    last = np.datetime64(end_us - 1, "us").astype("datetime64[M]")
    months = np.arange(first, last + 1).astype("datetime64[us]").view(np.int64)
    return np.concatenate([[start_us], months[1:], [end_us]])


def _launches(
    rng: np.random.Generator,
    season: np.ndarray,
    window: tuple[int, int],
    cfg: GeneratorConfig,
) -> np.ndarray:
    """Launch times: a share over the prior years, the rest through the window by leaf season.

    Args:
        rng: Random generator.
        season: (n_products, 12) monthly season multipliers of each product's leaf.
        window: (start, end) in microseconds.
        cfg: Generator configuration.

    Returns:
        Launch times in microseconds.
    """
    n = season.shape[0]
    before = rng.random(n) < cfg.prelaunch_share
    old = window[0] - rng.integers(1, int(cfg.history_years * YEAR_US), n)
    edges = month_edges(*window)
    lengths = np.diff(edges)
    pick = _categorical(rng, season[:, month_index(edges[:-1])] * lengths[None, :])
    new = edges[pick] + np.floor(rng.random(n) * lengths[pick]).astype(np.int64)
    return np.where(before, old, new)


def _product_latent(
    rng: np.random.Generator,
    space: LatentSpace,
    attributes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Product vectors: leaf + brand + colour + material directions + noise, unit length."""
    leaf, brand, color, material = attributes
    dim = space.leaf.shape[1]
    noise = rng.standard_normal((leaf.size, dim)) * (0.5 / np.sqrt(dim))
    mixed = (
        space.leaf[leaf]
        + 0.45 * space.brand[brand]
        + 0.25 * space.color[color]
        + 0.35 * space.material[material]
    )
    return _unit(mixed + noise).astype(np.float32)


def _catalog(
    rng: np.random.Generator,
    taxonomy: vocab.Taxonomy,
    n_products: int,
    window: tuple[int, int],
    cfg: GeneratorConfig,
) -> tuple[Catalog, Brands, LatentSpace, np.ndarray]:
    """Build brands, latent space and products; returns them and the leaf weights."""
    n_brands = min(cfg.max_brands, max(30, n_products // 4))
    brands = _brands(rng, n_brands, taxonomy.n_l1)
    space = _latent_space(rng, taxonomy, n_brands, cfg.latent_dim)
    leaf_weight = rng.gamma(4.0, size=taxonomy.n_leaves)
    leaf_weight /= leaf_weight.sum()
    # Attributes
    leaf = _assign_leaves(rng, n_products, leaf_weight)
    l1 = taxonomy.leaf_l1[leaf]
    brand = _assign_brands(rng, l1, brands)
    color = rng.integers(0, len(vocab.COLORS), n_products)
    material = _materials(rng, l1, taxonomy)
    price, rel_price = _prices(rng, taxonomy.leaf_base_price[leaf], brands.tier[brand])
    # Latent truth
    quality = brands.quality[brand] + rng.normal(0.0, 0.35, n_products)
    log_pop = 0.6 * quality + rng.normal(0.0, 1.0, n_products)
    latent = _product_latent(rng, space, (leaf, brand, color, material))
    items = vocab.TextInputs(leaf, brand, brands.tier[brand], color, material)
    title, description = vocab.build_texts(rng, taxonomy, brands.names, items)
    catalog = Catalog(
        leaf=leaf,
        brand=brand,
        color=color,
        material=material,
        price=price,
        in_stock=rng.random(n_products) < cfg.in_stock_share,
        launched_us=_launches(rng, taxonomy.leaf_season[leaf], window, cfg),
        quality=quality,
        popularity=np.exp(log_pop - log_pop.mean()),
        rel_price=rel_price,
        latent=latent,
        title=title,
        description=description,
    )
    return catalog, brands, space, leaf_weight


# Users
@dataclass(frozen=True)
class Population:
    """Users (row = user_id - 1) with raw profile and latent truth."""

    age: np.ndarray
    region: np.ndarray
    device: np.ndarray
    signup_us: np.ndarray
    affinity: np.ndarray
    pref_leaves: np.ndarray
    pref_weights: np.ndarray
    taste: np.ndarray
    sensitivity: np.ndarray
    fav_brands: np.ndarray
    activity: np.ndarray
    is_bot: np.ndarray

    def truth(self) -> UserTruth:
        """The oracle's view of the users."""
        return UserTruth(
            taste=self.taste,
            price_sensitivity=self.sensitivity,
            fav_brands=self.fav_brands,
            is_bot=self.is_bot,
            activity=self.activity,
        )


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category per row of a (n, k) probability (or weight) matrix."""
    cum = np.cumsum(probs, axis=1)
    draw = rng.random(probs.shape[0]) * cum[:, -1]
    return np.minimum((cum < draw[:, None]).sum(axis=1), probs.shape[1] - 1)


def _profiles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Age band, region and preferred device (device depends on age) per user."""
    age = rng.choice(len(vocab.AGE_BANDS), size=n, p=vocab.AGE_BAND_SHARES)
    region = rng.choice(len(vocab.REGIONS), size=n, p=vocab.REGION_SHARES)
    mobile, tablet = np.asarray(AGE_MOBILE)[age], np.asarray(AGE_TABLET)[age]
    probs = np.stack([mobile, 1.0 - mobile - tablet, tablet], axis=1)
    return age, region, _categorical(rng, probs)


def _leaf_prior(
    taxonomy: vocab.Taxonomy,
    profile: tuple[np.ndarray, np.ndarray, np.ndarray],
    leaf_weight: np.ndarray,
) -> np.ndarray:
    """Per-user prior over leaves: leaf demand x age x region x device tilts of its L1."""
    age, region, device = profile
    cats = vocab.CATEGORIES
    age_tilt = np.array([c.age_tilt for c in cats]).T[:, taxonomy.leaf_l1]
    region_tilt = np.array([c.region_tilt for c in cats]).T[:, taxonomy.leaf_l1]
    device_tilt = np.array([c.device_tilt for c in cats]).T[:, taxonomy.leaf_l1]
    prior = (leaf_weight**0.7)[None, :] * age_tilt[age] * region_tilt[region]
    prior = (prior * device_tilt[device]).astype(np.float32)
    return prior / prior.sum(axis=1, keepdims=True)


def _preferences(rng: np.random.Generator, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2-4 preferred leaves per user (Gumbel top-k on the prior) with Dirichlet weights."""
    n = prior.shape[0]
    keys = np.log(prior) + _gumbel(rng, prior.shape, np.float32)
    top = np.argpartition(-keys, 3, axis=1)[:, :4]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, 1), axis=1), 1)
    k = rng.choice([2, 3, 4], size=n, p=[0.35, 0.40, 0.25])
    used = np.arange(4)[None, :] < k[:, None]
    weights = rng.gamma(1.5, size=(n, 4)) * used
    return np.where(used, top, -1), weights / weights.sum(axis=1, keepdims=True)


def _affinity(
    prior: np.ndarray, leaves: np.ndarray, weights: np.ndarray, explore: float
) -> np.ndarray:
    """Intent distribution over leaves: preferred leaves plus an exploration share of prior."""
    affinity = explore * prior
    rows = np.repeat(np.arange(prior.shape[0]), 4)
    flat_leaves, flat_weights = leaves.ravel(), weights.ravel()
    used = flat_leaves >= 0
    np.add.at(affinity, (rows[used], flat_leaves[used]), (1 - explore) * flat_weights[used])
    return affinity.astype(np.float32)


def _sensitivity(rng: np.random.Generator, age: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Price sensitivity in (0, 1), driven by age band and region."""
    logit = np.asarray(AGE_SENSITIVITY)[age] + np.asarray(REGION_SENSITIVITY)[region]
    return sigmoid(logit - 0.3 + rng.normal(0.0, 0.8, age.size))


def _fav_brands(
    rng: np.random.Generator,
    pref_leaves: np.ndarray,
    sensitivity: np.ndarray,
    leaf_l1: np.ndarray,
    brands: Brands,
) -> np.ndarray:
    """1-3 favourite brands from the users' preferred L1s, tier matched to price sensitivity."""
    n = pref_leaves.shape[0]
    n_prefs = (pref_leaves >= 0).sum(axis=1)
    n_fav = rng.choice([1, 2, 3], size=n, p=[0.4, 0.35, 0.25])
    desired_tier = 2.0 * (1.0 - sensitivity)
    fav = np.full((n, 3), -1, dtype=np.int64)
    for slot in range(3):
        slot_l1 = leaf_l1[pref_leaves[np.arange(n), slot % n_prefs]]
        for l1 in range(brands.active.shape[1]):
            rows = np.flatnonzero((slot_l1 == l1) & (slot < n_fav))
            cand = np.flatnonzero(brands.active[:, l1])
            score = np.log(brands.weight[cand])[None, :] - 1.5 * np.abs(
                brands.tier[cand][None, :] - desired_tier[rows, None]
            )
            score += _gumbel(rng, score.shape)
            fav[rows, slot] = cand[np.argmax(score, axis=1)]
    return fav


def _taste(
    rng: np.random.Generator,
    space: LatentSpace,
    prefs: tuple[np.ndarray, np.ndarray],
    fav: np.ndarray,
) -> np.ndarray:
    """Latent taste: weighted preferred-leaf vectors + favourite-brand vectors + noise."""
    leaves, weights = prefs
    taste = np.einsum("nk,nkd->nd", weights, space.leaf[np.maximum(leaves, 0)])
    brand_vecs = space.brand[np.maximum(fav, 0)] * (fav >= 0)[:, :, None]
    taste += 0.35 * brand_vecs.sum(axis=1) / np.maximum((fav >= 0).sum(axis=1), 1)[:, None]
    dim = taste.shape[1]
    taste += rng.standard_normal(taste.shape) * (0.45 / np.sqrt(dim))
    return _unit(taste).astype(np.float32)


def _population(
    rng: np.random.Generator,
    n_users: int,
    taxonomy: vocab.Taxonomy,
    world: tuple[Brands, LatentSpace, np.ndarray],
    cfg: GeneratorConfig,
) -> tuple[Population, np.ndarray]:
    """Draw users' profiles and latent truth (signups are set later); returns the prior too."""
    brands, space, leaf_weight = world
    profile = _profiles(rng, n_users)
    prior = _leaf_prior(taxonomy, profile, leaf_weight)
    leaves, weights = _preferences(rng, prior)
    sensitivity = _sensitivity(rng, profile[0], profile[1])
    fav = _fav_brands(rng, leaves, sensitivity, taxonomy.leaf_l1, brands)
    active = rng.random(n_users) < cfg.active_share
    activity = rng.lognormal(0.0, cfg.activity_sigma, n_users) * active
    activity *= np.where(profile[2] == 1, 1.1, 1.0)
    population = Population(
        age=profile[0],
        region=profile[1],
        device=profile[2],
        signup_us=np.zeros(n_users, dtype=np.int64),
        affinity=_affinity(prior, leaves, weights, cfg.explore_share),
        pref_leaves=leaves,
        pref_weights=weights,
        taste=_taste(rng, space, (leaves, weights), fav),
        sensitivity=sensitivity,
        fav_brands=fav,
        activity=activity,
        is_bot=np.zeros(n_users, dtype=bool),
    )
    return population, prior


def _signups_and_bots(
    rng: np.random.Generator, users: Population, calendar: Calendar, cfg: GeneratorConfig
) -> Population:
    """Sign-up times (before start or following traffic through the window) and bot flags."""
    n = users.age.size
    before = rng.random(n) < cfg.presignup_share
    history = int(cfg.history_years * YEAR_US)
    old = calendar.start_us - rng.integers(1, history, n)
    new = calendar.sample(rng, np.zeros(n))
    signup = np.where(before, old, new)
    n_bots = max(cfg.min_bots, round(cfg.bot_share * n))
    candidates = np.flatnonzero(before)
    is_bot = np.zeros(n, dtype=bool)
    is_bot[rng.choice(candidates, size=min(n_bots, candidates.size), replace=False)] = True
    return replace(users, signup_us=signup, is_bot=is_bot)


# Sessions and views
@dataclass(frozen=True)
class World:
    """Everything session simulation reads."""

    taxonomy: vocab.Taxonomy
    catalog: Catalog
    users: Population
    calendar: Calendar
    cfg: GeneratorConfig
    leaf_order: np.ndarray
    leaf_bounds: np.ndarray


@dataclass(frozen=True)
class SessionDraw:
    """Sampled sessions of one batch (before views)."""

    user: np.ndarray
    t0_us: np.ndarray
    device: np.ndarray
    source: np.ndarray
    intent: np.ndarray
    sibling: np.ndarray
    n_views: np.ndarray


def _user_weights(world: World) -> np.ndarray:
    """Session probability per user: activity x traffic mass after sign-up (bots excluded)."""
    users = world.users
    remaining = 1.0 - world.calendar.cdf_at(users.signup_us)
    weight = users.activity * remaining * ~users.is_bot
    return weight / weight.sum()


def _intent(
    rng: np.random.Generator, world: World, user: np.ndarray, t0_us: np.ndarray
) -> np.ndarray:
    """Intent leaf per session: the user's leaf affinity x the leaf's season that month."""
    season = world.taxonomy.leaf_season.T.astype(np.float32)
    month = month_index(t0_us)
    intent = np.empty(user.size, dtype=np.int64)
    for lo in range(0, user.size, 65_536):
        sl = slice(lo, lo + 65_536)
        intent[sl] = _categorical(rng, world.users.affinity[user[sl]] * season[month[sl]])
    return intent


def _siblings(rng: np.random.Generator, leaf_l1: np.ndarray, leaf: np.ndarray) -> np.ndarray:
    """A random other leaf in the same L1 (leaf ids are contiguous within an L1)."""
    first = np.searchsorted(leaf_l1, leaf_l1)
    size = np.bincount(leaf_l1)[leaf_l1]
    offset = leaf - first[leaf]
    step = 1 + np.floor(rng.random(leaf.size) * np.maximum(size[leaf] - 1, 1)).astype(np.int64)
    return np.where(size[leaf] > 1, first[leaf] + (offset + step) % size[leaf], leaf)


def _draw_sessions(
    rng: np.random.Generator, world: World, n: int, weights: np.ndarray
) -> SessionDraw:
    """Sample users, start times, devices, traffic sources, intents and lengths."""
    cfg = world.cfg
    user = rng.choice(weights.size, size=n, p=weights)
    signup = world.users.signup_us[user]
    t0 = np.maximum(world.calendar.sample(rng, world.calendar.cdf_at(signup)), signup)
    pref = world.users.device[user]
    switch = rng.random(n) >= cfg.preferred_device_share
    device = np.where(switch, (pref + rng.integers(1, 3, n)) % 3, pref)
    intent = _intent(rng, world, user, t0)
    n_views = np.minimum(rng.geometric(1.0 / cfg.mean_session_views, n), cfg.max_session_views)
    return SessionDraw(
        user=user,
        t0_us=t0,
        device=device,
        source=rng.choice(len(vocab.TRAFFIC_SOURCES), size=n, p=TRAFFIC_SOURCE_SHARES),
        intent=intent,
        sibling=_siblings(rng, world.taxonomy.leaf_l1, intent),
        n_views=n_views,
    )


@dataclass(frozen=True)
class Slots:
    """View slots: session, position in session and leaf to draw from."""

    session: np.ndarray
    position: np.ndarray
    leaf: np.ndarray


def _slots(rng: np.random.Generator, draw: SessionDraw, sibling_share: float) -> Slots:
    """Expand sessions into view slots; later slots may come from the sibling leaf."""
    session = np.repeat(np.arange(draw.n_views.size), draw.n_views)
    starts = np.cumsum(draw.n_views) - draw.n_views
    position = np.arange(session.size) - np.repeat(starts, draw.n_views)
    use_sibling = (position > 0) & (rng.random(session.size) < sibling_share)
    leaf = np.where(use_sibling, draw.sibling[session], draw.intent[session])
    return Slots(session, position, leaf)


@dataclass(frozen=True)
class PartBlock:
    """Session parts (one session's slots in one leaf) scored against one leaf's products."""

    user: np.ndarray
    anchor: np.ndarray
    t_us: np.ndarray


def _exposure_utility(world: World, block: PartBlock, products: np.ndarray) -> np.ndarray:
    """Exposure utility (parts x products); -inf where the product is not yet launched."""
    exp, cat, users = world.cfg.exposure, world.catalog, world.users
    price_coef = (
        -exp.price
        * world.cfg.funnel.price
        * (users.sensitivity[block.user] - world.cfg.funnel.price_pivot)
    )
    left = np.hstack([exp.affinity * block.anchor, price_coef[:, None].astype(np.float32)])
    right = np.hstack([cat.latent[products], cat.rel_price[products, None].astype(np.float32)])
    util = left @ right.T
    static = (
        exp.popularity * np.log(cat.popularity[products])
        - exp.out_of_stock * ~cat.in_stock[products]
    )
    util += static.astype(np.float32)[None, :]
    fav = users.fav_brands[block.user]
    util += exp.fav_brand * (fav[:, :, None] == cat.brand[products][None, None, :]).any(axis=1)
    age_days = (block.t_us[:, None] - cat.launched_us[products][None, :]) / US_PER_DAY
    util += exp.novelty * np.exp(-np.clip(age_days, 0.0, None) / exp.novelty_days)
    util[age_days < 0] = -np.inf
    return util


def _gumbel(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: type = np.float64
) -> np.ndarray:
    """Standard Gumbel noise (as -log of an exponential, kept finite)."""
    draws = rng.standard_exponential(shape, dtype=dtype)
    return -np.log(np.maximum(draws, np.finfo(dtype).tiny))


def _top_k(rng: np.random.Generator, util: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel top-k per row: column indices in draw order and whether each draw is valid."""
    keys = util + _gumbel(rng, util.shape, np.float32)
    k = min(k, util.shape[1])
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    top_keys = np.take_along_axis(keys, top, axis=1)
    order = np.argsort(-top_keys, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    return top, np.isfinite(np.take_along_axis(top_keys, order, axis=1))


def _leaf_views(
    rng: np.random.Generator,
    world: World,
    leaf: int,
    slots: tuple[np.ndarray, np.ndarray],
    sessions: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Draw products for the slots of one leaf (slots sorted by session, position)."""
    slot_session, _ = slots
    user, anchor, t0 = sessions
    products = world.leaf_order[world.leaf_bounds[leaf] : world.leaf_bounds[leaf + 1]]
    starts = np.flatnonzero(np.r_[True, slot_session[1:] != slot_session[:-1]])
    lengths = np.diff(np.r_[starts, slot_session.size])
    part = np.repeat(np.arange(starts.size), lengths)
    rank = np.arange(slot_session.size) - starts[part]
    out = np.full(slot_session.size, -1, dtype=np.int64)
    step = max(1, 4_000_000 // max(products.size, 1))
    for lo in range(0, starts.size, step):
        s = slot_session[starts[lo : lo + step]]
        util = _exposure_utility(world, PartBlock(user[s], anchor[s], t0[s]), products)
        top, valid = _top_k(rng, util, int(lengths[lo : lo + step].max()))
        mine = (part >= lo) & (part < lo + step) & (rank < top.shape[1])
        rows, cols = part[mine] - lo, rank[mine]
        out[np.flatnonzero(mine)] = np.where(valid[rows, cols], products[top[rows, cols]], -1)
    return out


def _draw_views(
    rng: np.random.Generator, world: World, draw: SessionDraw, slots: Slots
) -> np.ndarray:
    """Product row per slot (-1 when the leaf ran out of launched products)."""
    noise = rng.standard_normal((draw.user.size, world.cfg.latent_dim))
    scale = world.cfg.exposure.anchor_noise / np.sqrt(world.cfg.latent_dim)
    anchor = _unit(world.users.taste[draw.user] + scale * noise).astype(np.float32)
    order = np.lexsort((slots.position, slots.session, slots.leaf))
    bounds = np.searchsorted(slots.leaf[order], np.arange(world.taxonomy.n_leaves + 1))
    product = np.full(order.size, -1, dtype=np.int64)
    for leaf in range(world.taxonomy.n_leaves):
        idx = order[bounds[leaf] : bounds[leaf + 1]]
        if idx.size:
            sessions = (draw.user, anchor, draw.t0_us)
            slot_pair = (slots.session[idx], slots.position[idx])
            product[idx] = _leaf_views(rng, world, leaf, slot_pair, sessions)
    return product


@dataclass(frozen=True)
class Views:
    """Realised views of a batch, sorted by (session, time)."""

    session: np.ndarray
    t_us: np.ndarray
    product: np.ndarray
    gap_us: np.ndarray


def _view_times(
    rng: np.random.Generator, draw: SessionDraw, slots: Slots, product: np.ndarray
) -> Views:
    """Drop empty slots; views start seconds after the session start, seconds-minutes apart."""
    keep = product >= 0
    session, position, product = slots.session[keep], slots.position[keep], product[keep]
    order = np.lexsort((position, session))
    session, product = session[order], product[order]
    gap = (rng.lognormal(np.log(35.0), 0.9, session.size) * US_PER_SECOND).astype(np.int64)
    first = np.r_[True, session[1:] != session[:-1]]
    csum = np.cumsum(gap)
    before = csum - gap
    group_base = np.maximum.accumulate(np.where(first, before, 0))
    landing = rng.integers(2 * US_PER_SECOND, 30 * US_PER_SECOND, draw.user.size)
    t_us = draw.t0_us[session] + landing[session] + before - group_base
    return Views(session, t_us, product, gap)


@dataclass(frozen=True)
class Batch:
    """One batch of simulated sessions and their events (event rows sorted by session)."""

    draw: SessionDraw
    session: np.ndarray
    t_us: np.ndarray
    product: np.ndarray
    event_type: np.ndarray
    price: np.ndarray
    quantity: np.ndarray


def _simulate_views(
    rng: np.random.Generator, world: World, n: int, weights: np.ndarray
) -> tuple[SessionDraw, Views]:
    """Sample n sessions and their views."""
    draw = _draw_sessions(rng, world, n, weights)
    slots = _slots(rng, draw, world.cfg.sibling_view_share)
    product = _draw_views(rng, world, draw, slots)
    return draw, _view_times(rng, draw, slots, product)


def calibrate_funnel(world: World, draw: SessionDraw, views: Views) -> FunnelParams:
    """Set the cart and buy intercepts so the batch hits the configured cart and buy rates.

    Args:
        world: The world.
        draw: Sessions of the batch.
        views: Views of the batch.

    Returns:
        Funnel parameters with calibrated intercepts.
    """
    cfg = world.cfg
    zero = replace(cfg.funnel, cart_intercept=0.0, buy_intercept=0.0)
    rows = (draw.user[views.session], views.product, views.t_us)
    cart, buy = pair_logits(
        world.users.truth(), world.catalog.truth(), world.taxonomy.leaf_season, rows, zero
    )
    a_cart = calibrate_intercept(cart, cfg.cart_rate)
    a_buy = calibrate_intercept(buy, cfg.buy_rate, weights=sigmoid(a_cart + cart))
    return replace(cfg.funnel, cart_intercept=a_cart, buy_intercept=a_buy)


def _session_last(session: np.ndarray) -> np.ndarray:
    """Index of the last row of each run of equal (sorted) session numbers."""
    return np.flatnonzero(np.r_[session[1:] != session[:-1], True])


def _funnel(
    rng: np.random.Generator, world: World, draw: SessionDraw, views: Views, params: FunnelParams
) -> Batch:
    """Cart and purchase decisions per view; purchases happen at checkout, after the carts."""
    n, cat = views.product.size, world.catalog
    rows = (draw.user[views.session], views.product, views.t_us)
    cart, buy = pair_logits(
        world.users.truth(), cat.truth(), world.taxonomy.leaf_season, rows, params
    )
    carted = rng.random(n) < sigmoid(cart)
    bought = carted & (rng.random(n) < sigmoid(buy))
    # Price seen (occasional discounts, more around holidays) and quantity
    discount = rng.random(n) < world.cfg.discount_share + 0.25 * holiday_level(views.t_us)
    factor = 1.0 - discount * rng.uniform(0.05, 0.30, n)
    seen = np.maximum(np.round(cat.price[views.product] * factor, 2), 0.01)
    quantity = rng.choice([1, 2, 3], size=n, p=[0.78, 0.16, 0.06]).astype(np.int32)
    # Times: carts before the next view, purchases at checkout after the last view
    cart_t = views.t_us + (rng.uniform(0.15, 0.7, n) * views.gap_us).astype(np.int64)
    last = _session_last(views.session)
    checkout = np.zeros(draw.user.size, dtype=np.int64)
    checkout[views.session[last]] = (
        views.t_us[last] + views.gap_us[last] + rng.integers(20, 240, last.size) * US_PER_SECOND
    )
    rank = np.cumsum(bought) - bought
    rank -= np.maximum.accumulate(
        np.where(np.r_[True, views.session[1:] != views.session[:-1]], rank, 0)
    )
    buy_t = checkout[views.session] + (2 * rank + 1) * US_PER_SECOND
    return _batch_events(world, draw, views, (carted, bought), (cart_t, buy_t), (seen, quantity))


def _batch_events(
    world: World,
    draw: SessionDraw,
    views: Views,
    flags: tuple[np.ndarray, np.ndarray],
    times: tuple[np.ndarray, np.ndarray],
    values: tuple[np.ndarray, np.ndarray],
) -> Batch:
    """Stack views, carts and purchases; drop events at or after the end; sort by session."""
    carted, bought = flags
    seen, quantity = values
    pick = [np.ones(views.product.size, dtype=bool), carted, bought]
    session = np.concatenate([views.session[m] for m in pick])
    t_us = np.concatenate([views.t_us, times[0][carted], times[1][bought]])
    event_type = np.concatenate(
        [np.full(int(m.sum()), k, dtype=np.int8) for k, m in enumerate(pick)]
    )
    ones = np.ones(views.product.size, dtype=np.int32)
    qty = np.concatenate([ones, quantity[carted], quantity[bought]])
    product = np.concatenate([views.product[m] for m in pick])
    price = np.concatenate([seen[m] for m in pick])
    order = np.lexsort((event_type, t_us, session))
    order = order[t_us[order] < world.calendar.end_us]
    return Batch(
        draw,
        session[order],
        t_us[order],
        product[order],
        event_type[order],
        price[order],
        qty[order],
    )


def _concat_batches(batches: list[Batch]) -> Batch:
    """Concatenate batches, offsetting session numbers."""
    offsets = np.cumsum([0] + [b.draw.user.size for b in batches])
    draw = SessionDraw(
        **{
            name: np.concatenate([getattr(b.draw, name) for b in batches])
            for name in SessionDraw.__dataclass_fields__
        }
    )
    return Batch(
        draw=draw,
        session=np.concatenate([b.session + off for b, off in zip(batches, offsets, strict=False)]),
        t_us=np.concatenate([b.t_us for b in batches]),
        product=np.concatenate([b.product for b in batches]),
        event_type=np.concatenate([b.event_type for b in batches]),
        price=np.concatenate([b.price for b in batches]),
        quantity=np.concatenate([b.quantity for b in batches]),
    )


def _trim(batch: Batch, target: int) -> Batch:
    """Keep whole sessions in draw order, then a time prefix of one, to hit ``target`` rows."""
    counts = np.bincount(batch.session, minlength=batch.draw.user.size)
    cum = np.cumsum(counts)
    cut = int(np.searchsorted(cum, target, side="left"))
    room = target - (int(cum[cut - 1]) if cut > 0 else 0)
    first = np.searchsorted(batch.session, batch.session)
    rank = np.arange(batch.session.size) - first
    keep = (batch.session < cut) | ((batch.session == cut) & (rank < room))
    return replace(
        batch,
        session=batch.session[keep],
        t_us=batch.t_us[keep],
        product=batch.product[keep],
        event_type=batch.event_type[keep],
        price=batch.price[keep],
        quantity=batch.quantity[keep],
    )


def simulate_sessions(
    rng: np.random.Generator, world: World, target: int
) -> tuple[Batch, FunnelParams]:
    """Simulate sessions in batches until ``target`` clean events exist, then trim exactly.

    Args:
        rng: Random generator.
        world: The world.
        target: Number of clean (non-bot, pre-fault) events wanted.

    Returns:
        The events (exactly ``target`` rows, sorted by session then time) and the calibrated
        funnel parameters.
    """
    weights = _user_weights(world)
    cfg = world.cfg
    per_session = cfg.mean_session_views * (1.0 + cfg.cart_rate * (1.0 + cfg.buy_rate))
    n = int(np.ceil(target / per_session * 1.05)) + 16
    batches: list[Batch] = []
    params: FunnelParams | None = None
    total = sessions = 0
    for _ in range(100):
        draw, views = _simulate_views(rng, world, n, weights)
        params = params or calibrate_funnel(world, draw, views)
        batches.append(_funnel(rng, world, draw, views, params))
        total, sessions = total + batches[-1].session.size, sessions + n
        if total >= target:
            return _trim(_concat_batches(batches), target), params
        n = int(np.ceil((target - total) / max(total / sessions, 0.5) * 1.1)) + 16
    raise RuntimeError("session simulation did not reach the event target")


# Bots
@dataclass(frozen=True)
class BotLog:
    """Bot sessions (one per bot-day) and their view events."""

    user: np.ndarray
    t0_us: np.ndarray
    session: np.ndarray
    t_us: np.ndarray
    product: np.ndarray


def _bot_day_counts(
    rng: np.random.Generator, n_bots: int, n_days: int, cfg: GeneratorConfig, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """(day index, view count) per bot and active-day slot: hundreds of views on a few days."""
    lo, hi = cfg.bot_views
    views = rng.integers(lo, hi + 1, n_bots)
    if views.sum() > cap:
        views = np.floor(views * cap / views.sum()).astype(np.int64)
    per_day = rng.uniform(350.0, 600.0, n_bots)
    days = np.clip(np.floor(views / per_day).astype(np.int64), 1, min(n_days, 10))
    slots = np.arange(days.max())[None, :] < days[:, None]
    day_idx = np.argsort(rng.random((n_bots, n_days)), axis=1)[:, : days.max()]
    share = rng.gamma(3.0, size=slots.shape) * slots
    counts = rng.multinomial(views, share / share.sum(axis=1, keepdims=True))
    return day_idx, counts


def simulate_bots(rng: np.random.Generator, world: World, n_interactions: int) -> BotLog:
    """Bots view 1,000-3,000 random launched products, hundreds a day, and never buy.

    Args:
        rng: Random generator.
        world: The world.
        n_interactions: Event rows of the whole file (caps bot rows at a configured share).

    Returns:
        The bot sessions and view events.
    """
    cal, cfg = world.calendar, world.cfg
    bots = np.flatnonzero(world.users.is_bot)
    n_days = int((cal.end_us - cal.start_us) // US_PER_DAY)
    cap = int(cfg.bot_max_event_share * n_interactions)
    day_idx, counts = _bot_day_counts(rng, bots.size, n_days, cfg, cap)
    used = counts > 0
    bot_row = np.nonzero(used)[0]
    t0 = (
        cal.start_us
        + day_idx[used] * US_PER_DAY
        + rng.integers(0, 14 * 3600, bot_row.size) * US_PER_SECOND
    )
    sizes = counts[used]
    session = np.repeat(np.arange(sizes.size), sizes)
    gap = (rng.exponential(7.0, session.size) * US_PER_SECOND).astype(np.int64) + US_PER_SECOND
    csum = np.cumsum(gap)
    starts = np.cumsum(sizes) - sizes
    t_us = t0[session] + csum - np.repeat(csum[starts] - gap[starts], sizes)
    launch_order = np.argsort(world.catalog.launched_us, kind="stable")
    n_live = np.searchsorted(world.catalog.launched_us[launch_order], t_us, side="right")
    pick = np.floor(rng.random(t_us.size) * n_live).astype(np.int64)
    return BotLog(bots[bot_row], t0, session, t_us, launch_order[pick])


# Assembly
@dataclass(frozen=True)
class SessionTable:
    """Sessions sorted by start (row = session number)."""

    user: np.ndarray
    started_us: np.ndarray
    ended_us: np.ndarray
    device: np.ndarray
    source: np.ndarray


def _merge_sessions(sim: Batch, bots: BotLog) -> tuple[SessionTable, np.ndarray]:
    """Sessions with events (normal then bot), and each event's index into them."""
    used = np.unique(sim.session)
    remap = np.full(sim.draw.user.size, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    n_bot = bots.user.size
    table = SessionTable(
        user=np.concatenate([sim.draw.user[used], bots.user]),
        started_us=np.concatenate([sim.draw.t0_us[used], bots.t0_us]),
        ended_us=np.zeros(used.size + n_bot, dtype=np.int64),
        device=np.concatenate([sim.draw.device[used], np.full(n_bot, 1)]),
        source=np.concatenate([sim.draw.source[used], np.zeros(n_bot, dtype=np.int64)]),
    )
    return table, np.concatenate([remap[sim.session], bots.session + used.size])


def assemble_events(world: World, sim: Batch, bots: BotLog) -> tuple[fl.EventColumns, SessionTable]:
    """Merge normal and bot events into one time-sorted clean log with its sessions.

    Args:
        world: The world.
        sim: Normal (trimmed) events.
        bots: Bot sessions and views.

    Returns:
        Clean events sorted by time (event_num = row) and sessions sorted by start time.
    """
    raw, event_session = _merge_sessions(sim, bots)
    s_order = np.lexsort((raw.user, raw.started_us))
    s_rank = np.empty_like(s_order)
    s_rank[s_order] = np.arange(s_order.size)
    sessions = SessionTable(*(getattr(raw, f)[s_order] for f in SessionTable.__dataclass_fields__))
    event_session = s_rank[event_session]
    t_us = np.concatenate([sim.t_us, bots.t_us])
    np.maximum.at(sessions.ended_us, event_session, t_us)
    event_type = np.concatenate([sim.event_type, np.zeros(bots.t_us.size, dtype=np.int8)])
    order = np.lexsort((event_type, event_session, t_us))
    product = np.concatenate([sim.product, bots.product])[order]
    price = np.concatenate([sim.price, world.catalog.price[bots.product]])[order]
    quantity = np.concatenate([sim.quantity, np.ones(bots.t_us.size, dtype=np.int32)])
    event_session = event_session[order]
    events = fl.EventColumns(
        event_num=np.arange(order.size, dtype=np.int64),
        t_us=t_us[order],
        user_id=sessions.user[event_session] + 1,
        product_id=product + 1,
        session_num=event_session,
        event_type=event_type[order],
        price=price,
        quantity=quantity[order],
        device=sessions.device[event_session].astype(np.int8),
    )
    return events, sessions


def cold_start_shares(
    sim: Batch, launched_us: np.ndarray, month_start_us: int
) -> tuple[float, float]:
    """Last-month shares of clean interactions by first-time users and on new products.

    Args:
        sim: Clean normal events (no bots, no faults).
        launched_us: Launch time per product row.
        month_start_us: Start of the last month.

    Returns:
        (share by users whose first interaction is in the month, share on products launched
        in the month).
    """
    user = sim.draw.user[sim.session]
    order = np.argsort(sim.t_us, kind="stable")
    first_t = np.full(sim.draw.user.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    uniq, idx = np.unique(user[order], return_index=True)
    first_t[uniq] = sim.t_us[order][idx]
    last = sim.t_us >= month_start_us
    if not last.any():
        return 0.0, 0.0
    new_user = first_t[user[last]] >= month_start_us
    new_product = launched_us[sim.product[last]] >= month_start_us
    return float(new_user.mean()), float(new_product.mean())


# Writing
def _ts(t_us: np.ndarray) -> pa.Array:
    """Microsecond integers as a UTC timestamp array."""
    return pa.array(np.asarray(t_us, dtype=np.int64), type=pa.int64()).cast(TIMESTAMP)


@dataclass(frozen=True)
class IdCodec:
    """Bijective, non-sequential string ids: prefix + zero-padded ((n * mult + offset) % 10^w)."""

    prefix: str
    width: int
    mult: int
    offset: int

    def encode(self, numbers: np.ndarray) -> pa.Array:
        """Encode non-negative integers below 10**width as id strings."""
        coded = (np.asarray(numbers, dtype=np.int64) * self.mult + self.offset) % 10**self.width
        text = pc.utf8_lpad(pc.cast(pa.array(coded), pa.string()), self.width, "0")
        return pc.binary_join_element_wise(self.prefix, text, "")


def _products_table(world: World, brands: Brands) -> pa.Table:
    """raw/products.parquet."""
    cat, tax = world.catalog, world.taxonomy
    n = cat.leaf.size
    columns = [
        pa.array(np.arange(1, n + 1, dtype=np.int64)),
        cat.title,
        cat.description,
        vocab.take_strings(tax.l1_names, tax.leaf_l1[cat.leaf]),
        vocab.take_strings(tax.leaf_names, cat.leaf),
        vocab.take_strings(brands.names, cat.brand),
        vocab.take_strings(vocab.COLORS, cat.color),
        vocab.take_strings(tax.materials, cat.material),
        pa.array(cat.price),
        pa.array(cat.in_stock),
        _ts(cat.launched_us),
    ]
    return pa.Table.from_arrays(columns, schema=raw_schemas()["products"])


def _users_table(users: Population) -> pa.Table:
    """raw/users.parquet."""
    columns = [
        pa.array(np.arange(1, users.age.size + 1, dtype=np.int64)),
        _ts(users.signup_us),
        vocab.take_strings(vocab.AGE_BANDS, users.age),
        vocab.take_strings(vocab.REGIONS, users.region),
        vocab.take_strings(vocab.DEVICES, users.device),
    ]
    return pa.Table.from_arrays(columns, schema=raw_schemas()["users"])


def _sessions_table(sessions: SessionTable, codec: IdCodec) -> pa.Table:
    """raw/sessions.parquet."""
    columns = [
        codec.encode(np.arange(sessions.user.size)),
        pa.array(sessions.user + 1),
        _ts(sessions.started_us),
        _ts(sessions.ended_us),
        vocab.take_strings(vocab.DEVICES, sessions.device),
        vocab.take_strings(vocab.TRAFFIC_SOURCES, sessions.source),
    ]
    return pa.Table.from_arrays(columns, schema=raw_schemas()["sessions"])


def _events_table(events: fl.EventColumns, codecs: tuple[IdCodec, IdCodec]) -> pa.Table:
    """raw/events.parquet (price null where missing)."""
    event_codec, session_codec = codecs
    columns = [
        event_codec.encode(events.event_num),
        _ts(events.t_us),
        pa.array(events.user_id),
        pa.array(events.product_id),
        session_codec.encode(events.session_num),
        vocab.take_strings(vocab.EVENT_TYPES, events.event_type.astype(np.int64)),
        pa.array(events.price, mask=np.isnan(events.price)),
        pa.array(events.quantity, type=pa.int32()),
        vocab.take_strings(vocab.DEVICES, events.device.astype(np.int64)),
    ]
    return pa.Table.from_arrays(columns, schema=raw_schemas()["events"])


def _fixed_list(matrix: np.ndarray, dtype: type) -> pa.Array:
    """A 2-D array as an Arrow fixed-size list column."""
    flat = pa.array(np.ascontiguousarray(matrix, dtype=dtype).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, matrix.shape[1])


def _truth_users(users: Population) -> pa.Table:
    """truth/users.parquet: latent user state."""
    return pa.table(
        {
            "user_id": pa.array(np.arange(1, users.age.size + 1, dtype=np.int64)),
            "is_bot": pa.array(users.is_bot),
            "activity": pa.array(users.activity),
            "price_sensitivity": pa.array(users.sensitivity),
            "taste": _fixed_list(users.taste, np.float32),
            "pref_leaves": _fixed_list(users.pref_leaves, np.int64),
            "pref_weights": _fixed_list(users.pref_weights, np.float64),
            "fav_brands": _fixed_list(users.fav_brands, np.int64),
        }
    )


def _truth_products(world: World, brands: Brands) -> pa.Table:
    """truth/products.parquet: latent product state."""
    cat = world.catalog
    return pa.table(
        {
            "product_id": pa.array(np.arange(1, cat.leaf.size + 1, dtype=np.int64)),
            "leaf_id": pa.array(cat.leaf),
            "l1_id": pa.array(world.taxonomy.leaf_l1[cat.leaf]),
            "brand_id": pa.array(cat.brand),
            "brand_tier": pa.array(brands.tier[cat.brand]),
            "quality": pa.array(cat.quality),
            "popularity": pa.array(cat.popularity),
            "rel_price": pa.array(cat.rel_price),
            "in_stock": pa.array(cat.in_stock),
            "launched_at": _ts(cat.launched_us),
            "latent": _fixed_list(cat.latent, np.float32),
        }
    )


def _faults_table(log: fl.FaultLog, events: fl.EventColumns, codec: IdCodec) -> pa.Table:
    """truth/event_faults.parquet: one row per injected fault (row = position in the file)."""
    order = np.lexsort((log.kinds, log.rows))
    rows, kinds = log.rows[order], log.kinds[order]
    return pa.table(
        {
            "row": pa.array(rows),
            "event_id": codec.encode(events.event_num[rows]),
            "fault": vocab.take_strings(fl.FAULT_KINDS, kinds),
        }
    )


def _write_parquet(table: pa.Table, path: Path) -> None:
    """Write one Parquet file (zstd, deterministic bytes)."""
    pq.write_table(table, path, compression="zstd")


@contextmanager
def _phases(enabled: bool, total: int) -> Iterator[Any]:
    """Yield ``step(label)``: marks the previous phase done and shows the next one."""
    if not enabled:
        yield lambda label: None
        return
    columns = (TextColumn("{task.description:<24}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("generate", total=total)
        started = [False]

        def step(label: str) -> None:
            bar.update(task, advance=1 if started[0] else 0, description=label)
            started[0] = True

        yield step
        bar.update(task, completed=total, description="done")


# Orchestration
def build_world(
    rng: np.random.Generator, spec: ScaleSpec, window: tuple[int, int], cfg: GeneratorConfig
) -> tuple[World, Brands]:
    """Draw catalog, users, traffic calendar, sign-ups and bots.

    Args:
        rng: Random generator.
        spec: Scale.
        window: (start, end) in microseconds.
        cfg: Generator configuration.

    Returns:
        The world and the brand table.
    """
    taxonomy = vocab.build_taxonomy()
    catalog, brands, space, leaf_weight = _catalog(rng, taxonomy, spec.n_products, window, cfg)
    users, _ = _population(rng, spec.n_users, taxonomy, (brands, space, leaf_weight), cfg)
    demand = users.affinity.mean(axis=0, dtype=np.float64)
    category_mix = demand @ taxonomy.leaf_season / demand.sum()
    calendar = build_calendar(window[0], window[1], category_mix)
    users = _signups_and_bots(rng, users, calendar, cfg)
    leaf_order = np.argsort(catalog.leaf, kind="stable")
    bounds = np.searchsorted(catalog.leaf[leaf_order], np.arange(taxonomy.n_leaves + 1))
    world = World(taxonomy, catalog, users, calendar, cfg, leaf_order, bounds)
    return world, brands


def _id_codecs(rng: np.random.Generator) -> tuple[IdCodec, IdCodec]:
    """Event and session id codecs with seed-dependent offsets."""
    return (
        IdCodec("ev_", 12, 7_919_317_421, int(rng.integers(0, 10**12))),
        IdCodec("se_", 10, 2_654_435_761, int(rng.integers(0, 10**10))),
    )


@dataclass(frozen=True)
class RunInfo:
    """Arguments of one generator run."""

    scale: str
    spec: ScaleSpec
    seed: int
    start: datetime
    end: datetime
    cfg: GeneratorConfig


def _meta(
    run: RunInfo, world: World, brands: Brands, params: FunnelParams, summary: GenerationSummary
) -> dict[str, Any]:
    """truth/meta.json: every parameter, the calibrated funnel and headline counts."""
    tax = world.taxonomy
    stats = summary.to_dict()
    for key in ("wall_seconds", "out_dir"):
        stats.pop(key)
    return {
        "scale": run.scale,
        "spec": asdict(run.spec),
        "seed": run.seed,
        "start": run.start.isoformat(),
        "end": run.end.isoformat(),
        "config": asdict(run.cfg),
        "funnel": params.to_dict(),
        "fault_rates": run.cfg.faults.to_dict(),
        "l1_names": list(tax.l1_names),
        "leaf_names": list(tax.leaf_names),
        "leaf_l1": tax.leaf_l1.tolist(),
        "season": {name: tax.leaf_season[i].tolist() for i, name in enumerate(tax.leaf_names)},
        "brands": {"names": brands.names, "tier": brands.tier.tolist()},
        "bot_user_ids": (np.flatnonzero(world.users.is_bot) + 1).tolist(),
        "summary": stats,
    }


def _count_types(events: fl.EventColumns) -> dict[str, int]:
    """Rows per event type."""
    tally = np.bincount(events.event_type.astype(np.int64), minlength=len(vocab.EVENT_TYPES))
    return {name: int(tally[i]) for i, name in enumerate(vocab.EVENT_TYPES)}


def _inject(
    rng: np.random.Generator, world: World, clean: fl.EventColumns, n_rows: int
) -> tuple[fl.EventColumns, fl.FaultLog]:
    """Inject the configured faults into the clean log (bot rows are never corrupted)."""
    ctx = fl.FaultContext(
        n_users=world.users.age.size,
        n_products=world.catalog.leaf.size,
        end_us=world.calendar.end_us,
        catalog_price=world.catalog.price[clean.product_id - 1],
        eligible=~world.users.is_bot[clean.user_id - 1],
    )
    return fl.inject_faults(rng, clean, ctx, world.cfg.faults, n_rows)


def generate(
    scale: str | ScaleSpec = "seed",
    seed: int = 42,
    out_dir: Path = Path("data"),
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    end: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    progress: bool = False,
    config: GeneratorConfig | None = None,
) -> GenerationSummary:
    """Generate raw shop logs and their latent truth into ``out_dir/raw`` and ``out_dir/truth``.

    Args:
        scale: "tiny", "small", "seed" (see :data:`SCALES`) or an explicit :class:`ScaleSpec`.
        seed: Random seed; (scale, seed, start, end) fully determines the output bytes.
        out_dir: Output root; ``raw/`` and ``truth/`` are replaced atomically per folder.
        start: Data start (naive datetimes are UTC).
        end: Data end, exclusive.
        progress: Show a progress bar over the phases.
        config: Generator knobs (defaults: :class:`GeneratorConfig`).

    Returns:
        Row counts, fault counts, bots, cold-start shares and wall time.

    Raises:
        ValueError: On an unknown scale, a bad seed, end <= start or a bad out_dir.
    """
    began = time.perf_counter()
    name, spec = _resolve_scale(scale)
    start, end = _as_utc(start, "start"), _as_utc(end, "end")
    window = _validate(seed, start, end, Path(out_dir))
    run = RunInfo(name, spec, int(seed), start, end, config or GeneratorConfig())
    rng = np.random.default_rng(run.seed)
    with _phases(progress, 5) as step:
        step("catalog and users")
        world, brands = build_world(rng, spec, window, run.cfg)
        step("sessions")
        bots = simulate_bots(rng, world, spec.n_interactions)
        n_clean = spec.n_interactions - fl.n_duplicates(spec.n_interactions, run.cfg.faults)
        sim, params = simulate_sessions(rng, world, n_clean - bots.t_us.size)
        step("faults")
        clean, sessions = assemble_events(world, sim, bots)
        events, log = _inject(rng, world, clean, spec.n_interactions)
        step("write")
        summary = _summarise(run, Path(out_dir), world, (sim, bots, sessions), (events, log))
        _write_all(run, Path(out_dir), world, brands, params, summary, (events, log, sessions, rng))
    summary.wall_seconds = round(time.perf_counter() - began, 3)
    return summary


def _summarise(
    run: RunInfo,
    out_dir: Path,
    world: World,
    parts: tuple[Batch, BotLog, SessionTable],
    final: tuple[fl.EventColumns, fl.FaultLog],
) -> GenerationSummary:
    """Headline numbers of the run."""
    sim, bots, sessions = parts
    events, log = final
    month = last_month_start(run.start, run.end)
    user_share, product_share = cold_start_shares(
        sim, world.catalog.launched_us, _datetime_us(month)
    )
    rows = {
        "products": world.catalog.leaf.size,
        "users": world.users.age.size,
        "sessions": sessions.user.size,
        "events": len(events),
    }
    return GenerationSummary(
        scale=run.scale,
        seed=run.seed,
        start=run.start,
        end=run.end,
        out_dir=out_dir,
        rows=rows,
        event_types=_count_types(events),
        faults=log.counts(),
        n_bots=int(world.users.is_bot.sum()),
        bot_events=int(bots.t_us.size),
        cold_start_month=month,
        cold_start_user_share=round(user_share, 4),
        cold_start_product_share=round(product_share, 4),
    )


def _write_all(
    run: RunInfo,
    out_dir: Path,
    world: World,
    brands: Brands,
    params: FunnelParams,
    summary: GenerationSummary,
    final: tuple[fl.EventColumns, fl.FaultLog, SessionTable, np.random.Generator],
) -> None:
    """Write raw and truth files into a staging folder, then publish them."""
    events, log, sessions, rng = final
    codecs = _id_codecs(rng)
    with staging_dir(out_dir, prefix=".generate-") as staging:
        raw, truth = staging / "raw", staging / "truth"
        raw.mkdir()
        truth.mkdir()
        _write_parquet(_products_table(world, brands), raw / "products.parquet")
        _write_parquet(_users_table(world.users), raw / "users.parquet")
        _write_parquet(_sessions_table(sessions, codecs[1]), raw / "sessions.parquet")
        _write_parquet(_events_table(events, codecs), raw / "events.parquet")
        _write_parquet(_truth_users(world.users), truth / "users.parquet")
        _write_parquet(_truth_products(world, brands), truth / "products.parquet")
        _write_parquet(_faults_table(log, events, codecs[0]), truth / "event_faults.parquet")
        np.save(truth / "user_leaf_affinity.npy", world.users.affinity)
        meta = _meta(run, world, brands, params, summary)
        (truth / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        publish(staging, out_dir, ("truth", "raw"))
