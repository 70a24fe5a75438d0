"""Log faults injected into the raw event file, at documented rates.

Corruptions are applied in place to clean (non-bot) rows, at most one per row: missing price,
invalid price, unknown product, unknown user and future timestamp (clock skew). Exact duplicate
rows are then added, and finally a share of rows is displaced (late-arriving rows), so the file
is not sorted by time. Every injected fault is listed in a truth table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from shoprank.data.oracle import US_PER_DAY, US_PER_SECOND

FAULT_KINDS: tuple[str, ...] = (
    "missing_price",
    "invalid_price",
    "unknown_product",
    "unknown_user",
    "future_timestamp",
    "duplicate",
    "out_of_order",
)


@dataclass(frozen=True)
class FaultRates:
    """Fault rates (fractions); see each field for its denominator."""

    duplicate: float = 0.01  # extra exact copies, as a share of all rows in the file
    missing_price: float = 0.02  # null price, share of (clean) cart and purchase events
    invalid_price: float = 0.005  # price <= 0 or > 50x catalog, share of clean events
    unknown_product: float = 0.003  # product_id not in the catalog, share of clean events
    unknown_user: float = 0.001  # user_id not in users, share of clean events
    future_timestamp: float = 0.0005  # timestamp after the data end, share of clean events
    out_of_order: float = 0.03  # rows displaced later in the file, share of all rows

    def to_dict(self) -> dict[str, float]:
        """Return the rates as a plain dict."""
        return asdict(self)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value < 0.5:
                raise ValueError(f"fault rate {f.name} must be in [0, 0.5), got {value}")


@dataclass(frozen=True)
class EventColumns:
    """Event rows as numpy columns (ids numeric; strings are made when writing)."""

    event_num: np.ndarray  # int64, unique per logical event
    t_us: np.ndarray  # int64 microseconds since epoch
    user_id: np.ndarray  # int64
    product_id: np.ndarray  # int64
    session_num: np.ndarray  # int64
    event_type: np.ndarray  # int8: 0 view, 1 cart, 2 purchase
    price: np.ndarray  # float64, NaN = missing
    quantity: np.ndarray  # int32
    device: np.ndarray  # int8 index into DEVICES

    def __len__(self) -> int:
        return int(self.event_num.size)

    def take(self, index: np.ndarray) -> EventColumns:
        """Return the rows at ``index`` (a new object)."""
        return EventColumns(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


@dataclass(frozen=True)
class FaultContext:
    """What the injector needs to know about the world."""

    n_users: int
    n_products: int
    end_us: int
    catalog_price: np.ndarray  # per event row: the product's catalog price
    eligible: np.ndarray  # per event row: may be corrupted (not a bot row)


@dataclass(frozen=True)
class FaultLog:
    """Injected faults: final row positions and fault kind indices into FAULT_KINDS."""

    rows: np.ndarray
    kinds: np.ndarray

    def counts(self) -> dict[str, int]:
        """Number of injected faults by kind."""
        tally = np.bincount(self.kinds, minlength=len(FAULT_KINDS))
        return {kind: int(tally[i]) for i, kind in enumerate(FAULT_KINDS)}


def n_duplicates(n_rows: int, rates: FaultRates) -> int:
    """Duplicate rows the final file of ``n_rows`` rows will hold."""
    return round(rates.duplicate * n_rows)


def _pick_corruptions(
    rng: np.random.Generator, events: EventColumns, ctx: FaultContext, rates: FaultRates
) -> np.ndarray:
    """Assign at most one corruption kind per eligible row; -1 = clean."""
    kind = np.full(len(events), -1, dtype=np.int64)
    basket = np.flatnonzero(ctx.eligible & (events.event_type > 0))
    n_missing = round(rates.missing_price * basket.size)
    kind[rng.choice(basket, size=n_missing, replace=False)] = 0
    free = np.flatnonzero(ctx.eligible & (kind < 0))
    n_clean = int(ctx.eligible.sum())
    wanted = [
        round(rate * n_clean)
        for rate in (
            rates.invalid_price,
            rates.unknown_product,
            rates.unknown_user,
            rates.future_timestamp,
        )
    ]
    chosen = rng.choice(free, size=min(sum(wanted), free.size), replace=False)
    labels = np.repeat(np.arange(1, 5), wanted)[: chosen.size]
    kind[chosen] = labels
    return kind


def _corrupt(
    rng: np.random.Generator, events: EventColumns, ctx: FaultContext, kind: np.ndarray
) -> EventColumns:
    """Apply the chosen corruptions to copies of the affected columns."""
    price = events.price.copy()
    price[kind == 0] = np.nan
    bad = np.flatnonzero(kind == 1)
    high = rng.random(bad.size) < 0.5
    base = ctx.catalog_price[bad]
    price[bad] = np.where(
        high,
        np.round(base * rng.uniform(60.0, 500.0, bad.size), 2),
        np.where(rng.random(bad.size) < 0.5, 0.0, -np.round(base, 2)),
    )
    product = events.product_id.copy()
    rows = np.flatnonzero(kind == 2)
    product[rows] = ctx.n_products + rng.integers(1, ctx.n_products + 1, rows.size)
    user = events.user_id.copy()
    rows = np.flatnonzero(kind == 3)
    user[rows] = ctx.n_users + rng.integers(1, ctx.n_users + 1, rows.size)
    t_us = events.t_us.copy()
    rows = np.flatnonzero(kind == 4)
    skew = rng.integers(60 * US_PER_SECOND, 400 * US_PER_DAY, rows.size)
    t_us[rows] = ctx.end_us + skew
    return replace(events, price=price, product_id=product, user_id=user, t_us=t_us)


def _order_keys(
    rng: np.random.Generator, n_base: int, dup_source: np.ndarray, rates: FaultRates
) -> tuple[np.ndarray, np.ndarray]:
    """File-position keys for base rows then duplicates, and which rows are displaced."""
    n_rows = n_base + dup_source.size
    keys = np.concatenate(
        [np.arange(n_base, dtype=np.float64), dup_source + rng.uniform(0.01, 20.0, dup_source.size)]
    )
    n_late = round(rates.out_of_order * n_rows)
    late = rng.choice(n_rows, size=n_late, replace=False)
    keys[late] += rng.uniform(5.0, max(10.0, 0.01 * n_rows), n_late)
    return keys, late


def inject_faults(
    rng: np.random.Generator,
    events: EventColumns,
    ctx: FaultContext,
    rates: FaultRates,
    n_rows: int,
) -> tuple[EventColumns, FaultLog]:
    """Corrupt, duplicate and displace rows of a time-sorted clean event log.

    Args:
        rng: Random generator.
        events: Clean events sorted by time.
        ctx: World facts (id ranges, end of data, catalog prices, eligible rows).
        rates: Fault rates.
        n_rows: Rows of the final file; the ``n_rows - len(events)`` missing rows are
            exact duplicates (use :func:`n_duplicates` to size ``events``).

    Returns:
        The final rows in file order and the log of injected faults (final positions).

    """
    n_base = len(events)
    n_dup = n_rows - n_base
    if n_dup < 0:
        raise ValueError(f"n_rows ({n_rows}) must be >= the number of events ({n_base})")
    kind = _pick_corruptions(rng, events, ctx, rates)
    events = _corrupt(rng, events, ctx, kind)
    dup_source = np.sort(rng.choice(n_base, size=n_dup, replace=n_dup > n_base))
    keys, late = _order_keys(rng, n_base, dup_source, rates)
    order = np.argsort(keys, kind="stable")
    final = events.take(np.concatenate([np.arange(n_base), dup_source])[order])
    position = np.empty(order.size, dtype=np.int64)
    position[order] = np.arange(order.size)
    corrupted = np.flatnonzero(kind >= 0)
    rows = np.concatenate([position[corrupted], position[n_base:], position[late]])
    kinds = np.concatenate(
        [kind[corrupted], np.full(n_dup, 5, dtype=np.int64), np.full(late.size, 6, dtype=np.int64)]
    )
    return final, FaultLog(rows=rows, kinds=kinds)
