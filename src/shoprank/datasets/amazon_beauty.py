"""Amazon Beauty 5-core (the S3-Rec / ICLRec file): loader and adapter to the raw contract.

The data set is user sequences without timestamps or prices (see docs/datasets.md). This module
reads it (:func:`load_beauty`) and writes it as shoprank raw files (:func:`to_raw`). Positions
become synthetic days laid out so that dbt's temporal split (train < validation_start <=
validation < test_start <= test < end) selects exactly the leave-one-out split of the benchmark.
The adapter also writes that split as ``protocol/leave_one_out.parquet``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shoprank.data.schema import raw_schemas, validate_raw_dir
from shoprank.io import publish, staging_dir

#: Price written for every product and purchase: the data has no prices, the contract needs > 0.
UNKNOWN_PRICE = 1.0
#: Region written for every user: not in the data; ``stg_users.region`` must not be null.
UNKNOWN_REGION = "unknown"
#: Brand, category or title placeholder when the data has none.
UNKNOWN = "unknown"
#: Time of day of every synthetic event (the data has day order only).
EVENT_HOUR = 12
#: Minimum number of items for a user to get validation and test targets (as in SASRec).
MIN_ITEMS_FOR_TARGETS = 3


@dataclass(frozen=True)
class BeautyData:
    """The Amazon Beauty file in memory.

    Attributes:
        user_ids: User ids from ``sequences.txt``, one per row (int64, file order).
        indptr: CSR offsets: row ``r``'s items are ``item_ids[indptr[r]:indptr[r + 1]]``.
        item_ids: All item ids, user after user, chronological within a user (int64).
        items: ``items.csv``: item_id, asin, title (empty titles as ``""``), n_attributes.
        attributes: ``{item_id: [attribute_id, ...]}`` in the file's order.
        n_items: Largest item id (ids run 1..n_items; 0 is never used).
    """

    user_ids: np.ndarray
    indptr: np.ndarray
    item_ids: np.ndarray
    items: pd.DataFrame
    attributes: dict[int, list[int]]
    n_items: int

    @property
    def n_users(self) -> int:
        """Number of users (rows)."""
        return int(self.user_ids.size)

    @property
    def n_interactions(self) -> int:
        """Number of (user, item) interactions."""
        return int(self.item_ids.size)

    def lengths(self) -> np.ndarray:
        """Sequence length per user row (int64)."""
        return np.diff(self.indptr)

    def sequences(self) -> list[np.ndarray]:
        """Item-id arrays per user row, chronological (views into ``item_ids``)."""
        return np.split(self.item_ids, self.indptr[1:-1])


def read_sequences(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``sequences.txt`` (``user_id item_id item_id ...`` per line).

    Returns:
        ``(user_ids, indptr, item_ids)`` as int64 arrays (CSR layout, file order).

    Raises:
        ValueError: on a line without items or a repeated user id.
    """
    user_ids: list[int] = []
    lengths: list[int] = []
    flat: list[int] = []
    with path.open() as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise ValueError(f"{path}:{number}: user {fields[0]} has no items")
            user_ids.append(int(fields[0]))
            lengths.append(len(fields) - 1)
            flat.extend(int(x) for x in fields[1:])
    users = np.asarray(user_ids, dtype=np.int64)
    if np.unique(users).size != users.size:
        raise ValueError(f"{path}: a user id appears on more than one line")
    indptr = np.zeros(users.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return users, indptr, np.asarray(flat, dtype=np.int64)


def read_items(path: Path) -> pd.DataFrame:
    """Read ``items.csv``; missing titles become ``""``."""
    items = pd.read_csv(path, dtype={"item_id": "int64", "asin": "string", "title": "string"})
    items["title"] = items["title"].fillna("")
    return items.sort_values("item_id", ignore_index=True)


def read_attributes(path: Path) -> dict[int, list[int]]:
    """Read ``item_attributes.json`` as ``{item_id: [attribute_id, ...]}`` with int keys."""
    raw = json.loads(path.read_text())
    return {int(item): [int(a) for a in attrs] for item, attrs in raw.items()}


def load_beauty(path: Path) -> BeautyData:
    """Load the Amazon Beauty folder (``sequences.txt``, ``items.csv``, ``item_attributes.json``).

    Args:
        path: The data set folder, e.g. ``Settings.beauty_dir``.

    Returns:
        The sequences in CSR layout plus the item table and attributes.
    """
    user_ids, indptr, item_ids = read_sequences(path / "sequences.txt")
    items = read_items(path / "items.csv")
    n_items = int(max(item_ids.max(initial=0), items["item_id"].max()))
    return BeautyData(
        user_ids=user_ids,
        indptr=indptr,
        item_ids=item_ids,
        items=items,
        attributes=read_attributes(path / "item_attributes.json"),
        n_items=n_items,
    )


def category_roots(attributes: dict[int, list[int]]) -> set[int]:
    """Attribute ids that are top-level categories (the first category of an item).

    S3-Rec lists an item's brand first (when it has one) and then its category path(s) without
    the top "Beauty" level. Ids seen only at position 0 are therefore brands, and the id that
    follows such an id is the first level of a category path: a root.
    """
    later = {a for attrs in attributes.values() for a in attrs[1:]}
    only_first = {attrs[0] for attrs in attributes.values() if attrs} - later
    return {attrs[1] for attrs in attributes.values() if len(attrs) > 1 and attrs[0] in only_first}


def split_attributes(attributes: dict[int, list[int]]) -> pd.DataFrame:
    """Best-effort brand and two category levels per item from unnamed attribute ids.

    Rule: an item's first attribute is its brand unless it is a category root (see
    :func:`category_roots`); the categories are the rest, the first being the root (L1) and
    the next its child (L2). Names are synthetic: ``brand_<id>``, ``cat_<id>`` and
    ``cat_<root>/cat_<child>`` (L2 keyed by its parent, so names are unique across the tree;
    ``cat_<root>/other`` when the path stops at the root). Missing parts are ``"unknown"``.

    Returns:
        One row per item: item_id, brand, category_l1, category_l2.
    """
    roots = category_roots(attributes)
    rows = []
    for item_id, attrs in sorted(attributes.items()):
        has_brand = bool(attrs) and attrs[0] not in roots
        brand = f"brand_{attrs[0]}" if has_brand else UNKNOWN
        cats = attrs[1:] if has_brand else attrs
        l1 = f"cat_{cats[0]}" if cats else UNKNOWN
        l2 = f"{l1}/cat_{cats[1]}" if len(cats) > 1 else f"{l1}/other"
        rows.append((item_id, brand, l1, l2))
    return pd.DataFrame(rows, columns=["item_id", "brand", "category_l1", "category_l2"])


def products_table(data: BeautyData, launched_at: datetime) -> pa.Table:
    """Raw ``products`` rows: one per item id 1..n_items.

    Title from items.csv (``"Amazon item <asin>"`` when empty or missing), description = title,
    brand/categories from :func:`split_attributes`, price :data:`UNKNOWN_PRICE`, colour and
    material null, in stock, launched at ``launched_at`` (no launch dates in the data).
    """
    ids = pd.DataFrame({"item_id": np.arange(1, data.n_items + 1, dtype=np.int64)})
    frame = ids.merge(data.items, on="item_id", how="left")
    frame = frame.merge(split_attributes(data.attributes), on="item_id", how="left")
    asin = frame["asin"].fillna("").astype(str)
    title = frame["title"].fillna("").astype(str).str.strip()
    title = title.where(
        title != "", "Amazon item " + asin.where(asin != "", frame["item_id"].astype(str))
    )
    n = len(frame)
    columns = {
        "product_id": frame["item_id"].to_numpy(),
        "title": title.to_numpy(dtype=object),
        "description": title.to_numpy(dtype=object),
        "category_l1": frame["category_l1"].fillna(UNKNOWN).to_numpy(dtype=object),
        "category_l2": frame["category_l2"].fillna(f"{UNKNOWN}/other").to_numpy(dtype=object),
        "brand": frame["brand"].fillna(UNKNOWN).to_numpy(dtype=object),
        "color": [None] * n,
        "material": [None] * n,
        "price": np.full(n, UNKNOWN_PRICE),
        "in_stock": np.ones(n, dtype=bool),
        "launched_at": np.full(n, _us(launched_at), dtype="datetime64[us]"),
    }
    return pa.Table.from_pydict(columns, schema=raw_schemas()["products"])


def _us(moment: datetime) -> np.datetime64:
    """A datetime as numpy ``datetime64[us]`` in UTC (naive datetimes are taken as UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "us")


def holdout_roles(lengths: np.ndarray) -> np.ndarray:
    """Role of every interaction: 0 training, 1 validation target, 2 test target.

    The last item of a user with at least :data:`MIN_ITEMS_FOR_TARGETS` items is the test target
    and the one before it the validation target; shorter users are training only.
    """
    rows = np.repeat(np.arange(lengths.size), lengths)
    ends = np.cumsum(lengths)[rows]
    from_end = ends - np.arange(rows.size)  # 1 for the last item of a user
    eligible = lengths[rows] >= MIN_ITEMS_FOR_TARGETS
    role = np.zeros(rows.size, dtype=np.int8)
    role[eligible & (from_end == 2)] = 1
    role[eligible & (from_end == 1)] = 2
    return role


def event_times(
    data: BeautyData, validation_start: datetime, test_start: datetime, spread_days: int
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic timestamps that keep each user's order and encode leave-one-out as time.

    With ``d = user_id % spread_days`` (a per-user day offset that spreads users over the
    month), every event is at ``EVENT_HOUR``:00 UTC on day

    - test target: ``test_start + d``;
    - validation target: ``validation_start + d``;
    - training item ``j`` of ``m`` (0-based): ``validation_start + d - spread_days - (m - 1 - j)``,
      i.e. one item a day, the last one ``spread_days`` days before the validation target.

    Returns:
        ``(times, roles)``: ``datetime64[us]`` per interaction and :func:`holdout_roles`.
    """
    lengths = data.lengths()
    role = holdout_roles(lengths)
    rows = np.repeat(np.arange(lengths.size), lengths)
    position = np.arange(rows.size) - data.indptr[rows]
    n_train = np.where(lengths >= MIN_ITEMS_FOR_TARGETS, lengths - 2, lengths)[rows]
    offset = (data.user_ids % spread_days)[rows]
    days = np.where(role == 0, offset - spread_days - (n_train - 1 - position), offset)
    base = np.where(role == 2, _us(test_start), _us(validation_start))
    hour = np.timedelta64(EVENT_HOUR, "h").astype("timedelta64[us]")
    return base + days.astype("timedelta64[D]") + hour, role


def events_table(data: BeautyData, times: np.ndarray) -> pa.Table:
    """Raw ``events``: one ``purchase`` per interaction, its own session, price 1.0, quantity 1.

    Event ``k`` (0-based, user after user in file order) has id ``ev_<k:012d>`` and session
    ``se_<k:010d>``. ``device`` is null (unknown).
    """
    n = data.n_interactions
    k = np.arange(n)
    columns = {
        "event_id": np.char.add("ev_", np.char.zfill(k.astype(str), 12)).astype(object),
        "event_timestamp": times,
        "user_id": np.repeat(data.user_ids, data.lengths()),
        "product_id": data.item_ids,
        "session_id": _session_ids(n),
        "event_type": np.full(n, "purchase", dtype=object),
        "price": np.full(n, UNKNOWN_PRICE),
        "quantity": np.ones(n, dtype=np.int32),
        "device": [None] * n,
    }
    return pa.Table.from_pydict(columns, schema=raw_schemas()["events"])


def _session_ids(n: int) -> np.ndarray:
    """Session ids ``se_<k:010d>`` for k = 0..n-1."""
    return np.char.add("se_", np.char.zfill(np.arange(n).astype(str), 10)).astype(object)


def sessions_table(data: BeautyData, times: np.ndarray) -> pa.Table:
    """Raw ``sessions``: one per interaction-day (one event each), zero length, sorted by start.

    ``device`` and ``traffic_source`` are null (unknown).
    """
    n = data.n_interactions
    order = np.argsort(times, kind="stable")
    columns = {
        "session_id": _session_ids(n)[order],
        "user_id": np.repeat(data.user_ids, data.lengths())[order],
        "started_at": times[order],
        "ended_at": times[order],
        "device": [None] * n,
        "traffic_source": [None] * n,
    }
    return pa.Table.from_pydict(columns, schema=raw_schemas()["sessions"])


def users_table(data: BeautyData, times: np.ndarray) -> pa.Table:
    """Raw ``users``: sign-up at the first event; age band and device preference null.

    The profile columns are not in the data. Null passes dbt's ``accepted_values`` tests on
    ``age_band`` and ``device_preference`` and says "unknown" honestly; ``region`` has a
    ``not_null`` test, so it is the string :data:`UNKNOWN_REGION`.
    """
    n = data.n_users
    columns = {
        "user_id": data.user_ids,
        "signup_at": times[data.indptr[:-1]],
        "age_band": [None] * n,
        "region": np.full(n, UNKNOWN_REGION, dtype=object),
        "device_preference": [None] * n,
    }
    table = pa.Table.from_pydict(columns, schema=raw_schemas()["users"])
    return table.sort_by("user_id")


def protocol_table(data: BeautyData, times: np.ndarray, roles: np.ndarray) -> pa.Table:
    """The leave-one-out split per user: training length, validation and test targets.

    Users without targets (fewer than :data:`MIN_ITEMS_FOR_TARGETS` items) have null targets.
    """
    rows = np.repeat(np.arange(data.n_users), data.lengths())
    frame = pd.DataFrame({"user_id": data.user_ids})
    frame["n_train"] = np.bincount(rows[roles == 0], minlength=data.n_users)
    for role, stage in ((1, "validation"), (2, "test")):
        picked = np.flatnonzero(roles == role)
        item = pd.Series(pd.NA, index=frame.index, dtype="Int64")
        item.iloc[rows[picked]] = data.item_ids[picked]
        at = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us]")
        at.iloc[rows[picked]] = times[picked]
        frame[f"{stage}_product_id"] = item
        frame[f"{stage}_at"] = at.dt.tz_localize(UTC)
    return pa.Table.from_pandas(frame, preserve_index=False)


def _check_window(
    start: datetime, validation_start: datetime, test_start: datetime, end: datetime
) -> int:
    """Validate the split boundaries and return the per-user spread in days.

    Raises:
        ValueError: when the boundaries are out of order or a holdout window is under a day.
    """
    if not _us(start) < _us(validation_start) < _us(test_start) < _us(end):
        raise ValueError("need start < validation_start < test_start < end")
    spread = min(
        (_us(test_start) - _us(validation_start)).astype("timedelta64[D]").astype(int),
        (_us(end) - _us(test_start)).astype("timedelta64[D]").astype(int),
    )
    if spread < 1:
        raise ValueError("validation and test windows must each be at least one day long")
    return int(spread)


def to_raw(
    data: BeautyData,
    out_dir: Path,
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    *,
    validation_start: datetime = datetime(2025, 11, 1, tzinfo=UTC),
    test_start: datetime = datetime(2025, 12, 1, tzinfo=UTC),
    end: datetime = datetime(2026, 1, 1, tzinfo=UTC),
) -> dict[str, object]:
    """Write the data set as shoprank raw files plus its leave-one-out split.

    Writes ``out_dir/raw/{events,users,products,sessions}.parquet`` (the raw contract, checked
    with :func:`~shoprank.data.schema.validate_raw_dir`) and
    ``out_dir/protocol/leave_one_out.parquet``. Both folders are built in a staging folder and
    renamed into place, so a failure leaves earlier output untouched. Pass the dbt split vars
    (``shoprank.settings.Settings.splits``) as the boundaries; the defaults are the project's.

    Args:
        data: From :func:`load_beauty`.
        out_dir: Output root.
        start: Data window start: catalog launch time and earliest allowed event.
        validation_start: First instant of dbt's validation window.
        test_start: First instant of dbt's test window.
        end: End of the data window (exclusive).

    Returns:
        Row counts, the time range and the split boundaries.

    Raises:
        ValueError: when the boundaries are out of order or a sequence is too long to fit.
    """
    spread = _check_window(start, validation_start, test_start, end)
    times, roles = event_times(data, validation_start, test_start, spread)
    if times.min(initial=_us(end)) < _us(start) or times.max(initial=_us(start)) >= _us(end):
        raise ValueError("a sequence is too long for the window: move start earlier")
    tables = {
        "events": events_table(data, times),
        "users": users_table(data, times),
        "products": products_table(data, start),
        "sessions": sessions_table(data, times),
    }
    with staging_dir(out_dir, prefix=".amazon-beauty-") as staging:
        (staging / "raw").mkdir()
        (staging / "protocol").mkdir()
        for name, table in tables.items():
            pq.write_table(table, staging / "raw" / f"{name}.parquet", compression="zstd")
        protocol = protocol_table(data, times, roles)
        pq.write_table(protocol, staging / "protocol" / "leave_one_out.parquet")
        validate_raw_dir(staging / "raw")
        publish(staging, out_dir, ("protocol", "raw"))
    return _summary(tables, roles, times)


def _summary(
    tables: dict[str, pa.Table], roles: np.ndarray, times: np.ndarray
) -> dict[str, object]:
    """Row counts per file, holdout counts and the event time range (ISO strings)."""
    first, last = times.min(), times.max()
    return {
        "rows": {name: table.num_rows for name, table in tables.items()},
        "n_validation_targets": int((roles == 1).sum()),
        "n_test_targets": int((roles == 2).sum()),
        "first_event_at": f"{np.datetime_as_string(first, unit='s')}Z",
        "last_event_at": f"{np.datetime_as_string(last, unit='s')}Z",
    }
