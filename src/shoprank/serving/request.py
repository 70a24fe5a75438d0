"""One request's ranker input, built in numpy: the online twin of ``with_features``.

The evaluation joins features onto millions of candidate rows with pandas
(:func:`~shoprank.ranking.examples.with_features`); for one request that costs ~100 ms of
frame building. :class:`RequestFeatures` produces the same matrix the ranker reads
(:meth:`~shoprank.ranking.model.RankerModel.encode`: float32, categoricals as vocabulary
codes) directly:

- item and calendar views are turned into arrays once, from the rows Feast's online store
  holds (:meth:`~shoprank.features.online.OnlineFeatures.preload`), and masked per day the
  way the offline point-in-time join masks them;
- views keyed by the user (profile, affinities, the live session) are read per request from
  the online store (:meth:`~shoprank.features.online.OnlineFeatures.values`) and broadcast;
- the crosses come from the same definitions as offline
  (:data:`~shoprank.ranking.features.CROSSES`).

``tests/integration/test_serving_skew.py`` proves the result equals the offline path's
matrix for warm, cold and in-session users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from shoprank.candidates.data import Catalog, as_datetime64
from shoprank.features.online import OnlineFeatures, per_request, user_attribute
from shoprank.features.sources import ViewGroup
from shoprank.ranking.dataset import CandidateUnion
from shoprank.ranking.examples import SESSION_DAILY_KEYS
from shoprank.ranking.features import CROSSES
from shoprank.ranking.model import RankerModel

#: Raw per-request values kept with the rows: the session (its id, and its recent products,
#: which the reasons name).
CONTEXT_COLUMNS = (
    "session_features__session_id",
    "session_features__last_product_id",
    *(f"session_features__last_product_id_{i}" for i in range(2, 6)),
)


def _number(value: object) -> float:
    """A feature value as the ranker reads it (``to_matrix``): a float, NaN when missing."""
    if value is None:
        return np.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


@dataclass(frozen=True)
class ViewLayout:
    """Where one view's features go in the model's matrix, and how they are encoded.

    Attributes:
        group: The view and its served features.
        slots: Per feature, its model column index (-1 when the model does not use it).
        vocabularies: Per feature, value -> code for categorical model columns, else None.
        ttl: Values older than this at the row's moment are missing (None: no limit).
        daily: Looked up as of the start of the request's day (``SESSION_DAILY_KEYS``).
    """

    group: ViewGroup
    slots: np.ndarray
    vocabularies: tuple[dict | None, ...]
    ttl: np.timedelta64 | None
    daily: bool

    @property
    def columns(self) -> list[str]:
        """The view's full feature names (``view__feature``)."""
        return self.group.columns

    def encode(self, values: dict[str, object]) -> np.ndarray:
        """One row of the view as float32 (codes for categoricals, NaN for missing)."""
        out = np.empty(len(self.group.features), dtype=np.float32)
        for i, name in enumerate(self.group.features):
            value = values.get(name)
            vocabulary = self.vocabularies[i]
            if vocabulary is not None:
                out[i] = np.nan if _missing(value) else vocabulary.get(value, np.nan)
            else:
                out[i] = _number(value)
        return out

    def visible(self, stamps: np.ndarray, moment: np.datetime64) -> np.ndarray:
        """Whether values stamped ``stamps`` are visible at ``moment`` (both naive UTC)."""
        ok = ~np.isnat(stamps) & (stamps <= moment)
        if self.ttl is not None:
            ok &= stamps >= moment - self.ttl
        return ok


def layout(model: RankerModel, group: ViewGroup) -> ViewLayout:
    """The :class:`ViewLayout` of ``group`` for ``model``'s columns."""
    position = {c: j for j, c in enumerate(model.columns)}
    slots = np.asarray([position.get(c, -1) for c in group.columns], dtype=np.int64)
    vocabularies = tuple(
        {v: float(code) for code, v in enumerate(model.categories[c])}
        if c in model.categories
        else None
        for c in group.columns
    )
    ttl = group.view.ttl
    limit = np.timedelta64(int(ttl.total_seconds() * 1e6), "us") if ttl else None
    daily = any(key in SESSION_DAILY_KEYS for key in group.keys)
    return ViewLayout(group, slots, vocabularies, limit, daily)


@dataclass
class ItemTable:
    """A preloaded view (products or calendar days) as arrays, row ``i`` = key ``keys[i]``."""

    keys: pd.Index
    values: np.ndarray  # (rows, features) float32, encoded
    raw: dict[str, np.ndarray]  # column -> raw values (object), for the crosses
    stamps: np.ndarray  # datetime64[us] naive UTC, NaT where the store has no row


@dataclass
class UserAttributeTable:
    """A preloaded user x attribute view as arrays, grouped by user.

    The rows of user ``u`` are ``start[u]:start[u + 1]``, sorted by attribute code
    (the codes of :func:`_codes` over the catalog's values of that attribute).
    """

    start: np.ndarray  # (max user id + 2,) int64
    codes: np.ndarray  # (rows,) int64
    values: np.ndarray  # (rows, features) float32, encoded
    stamps: np.ndarray  # (rows,) datetime64[us] naive UTC

    def of(self, user_id: int) -> slice:
        """The user's rows (empty for users the table does not hold)."""
        if not 0 <= user_id < len(self.start) - 1:
            return slice(0, 0)
        return slice(int(self.start[user_id]), int(self.start[user_id + 1]))


@dataclass
class RequestRows:
    """One request's candidates and the ranker's input for them.

    Attributes:
        union: The candidates (one query).
        matrix: (candidates, model columns) float32, what the ranker reads.
        context: Raw values the reasons use (the session's recent products).
    """

    union: CandidateUnion
    matrix: np.ndarray
    context: dict[str, object] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        """The candidates' product ids."""
        return self.union.items


class RequestFeatures:
    """Builds :class:`RequestRows` for one query from Feast's online store.

    Args:
        model: The ranker (its columns and category vocabularies).
        online: The feature service's online store, with its item views preloaded.
        catalog: Maps candidates to the attributes views are keyed by (category, brand).
    """

    feature_service: str

    def __init__(self, model: RankerModel, online: OnlineFeatures, catalog: Catalog):
        self.model = model
        self.online = online
        self.feature_service = online.feature_service
        self.catalog = catalog
        self._columns = {c: j for j, c in enumerate(model.columns)}
        self.layouts = [layout(model, group) for group in online.groups]
        needed = {side for cross in CROSSES for side in (cross.left, cross.right)}
        self._needed_raw = needed | set(CONTEXT_COLUMNS)
        self._tables = {
            lay.group.view.name: self._table(lay)
            for lay in self.layouts
            if not per_request(lay.group)
        }
        self._attributes = {
            key: _codes(catalog.frame[key].reindex(np.arange(catalog.n_items + 1)))
            for lay in self.layouts
            for key in lay.group.keys
            if key in catalog.frame.columns
        }
        self._user_tables = {
            lay.group.view.name: self._user_table(lay)
            for lay in self.layouts
            if user_attribute(lay.group) and lay.group.view.name in online.preloaded_views
        }
        self._daily: dict[tuple[str, np.datetime64], tuple[np.ndarray, dict]] = {}

    def _table(self, lay: ViewLayout) -> ItemTable:
        """A preloaded view as arrays (product views indexed by product id)."""
        frame = self.online.table(lay.group.view.name)
        key = lay.group.keys[0]
        if key == "product_id":
            frame = frame.reindex(pd.RangeIndex(self.catalog.n_items + 1, name=key))
        values = _encoded(lay, frame)
        raw = {
            c: frame[c].to_numpy(object if frame[c].dtype == object else np.float64)
            for c in lay.columns
            if c in self._needed_raw
        }
        stamps = pd.to_datetime(frame["_feature_ts"], utc=True).dt.tz_convert(None)
        return ItemTable(frame.index, values, raw, stamps.to_numpy("datetime64[us]"))

    def _user_table(self, lay: ViewLayout) -> UserAttributeTable:
        """A preloaded user x attribute view as arrays grouped by user."""
        frame = self.online.table(lay.group.view.name)
        user_key, attribute = lay.group.keys
        codes, names = self._attributes[attribute]
        lookup = {name: code for code, name in enumerate(names)}
        users = frame.index.get_level_values(user_key).to_numpy(np.int64)
        attributes = frame.index.get_level_values(attribute).astype(str)
        row_codes = np.fromiter((lookup.get(a, -1) for a in attributes), np.int64, len(frame))
        keep = row_codes >= 0  # attributes no product has: no candidate asks for them
        order = np.lexsort((row_codes[keep], users[keep]))
        frame = frame[keep].iloc[order]
        users, row_codes = users[keep][order], row_codes[keep][order]
        stamps = pd.to_datetime(frame["_feature_ts"], utc=True).dt.tz_convert(None)
        top = int(users.max()) + 1 if len(users) else 0
        start = np.searchsorted(users, np.arange(top + 2)).astype(np.int64)
        return UserAttributeTable(
            start, row_codes, _encoded(lay, frame), stamps.to_numpy("datetime64[us]")
        )

    # One request

    def rows(self, union: CandidateUnion, user_id: int, moment: datetime) -> RequestRows:
        """The ranker's input for one query's candidates at ``moment``.

        Raises:
            OnlineStoreError: When a per-request view cannot be read.
        """
        at = as_datetime64(moment).astype("datetime64[us]")
        day = at.astype("datetime64[D]").astype("datetime64[us]")
        n = len(union)
        matrix = np.full((n, len(self.model.columns)), np.nan, dtype=np.float32)
        self._generator_columns(matrix, union)
        raw: dict[str, object] = {}
        for lay in self.layouts:
            used = lay.slots >= 0
            if not per_request(lay.group):
                values, found = self._preloaded(lay, union.items, at, day)
            else:
                values, found = self._read(lay, union.items, user_id, at)
            if used.any():
                matrix[:, lay.slots[used]] = values[:, used]
            raw.update(found)
        for cross in CROSSES:
            j = self._columns.get(cross.name)
            if j is not None:
                matrix[:, j] = _cross(cross.kind, raw[cross.left], raw[cross.right], n)
        context = {c: raw[c] for c in CONTEXT_COLUMNS if c in raw}
        return RequestRows(union, matrix, context)

    def _generator_columns(self, matrix: np.ndarray, union: CandidateUnion) -> None:
        for g, name in enumerate(union.names):
            for suffix, values in (("rank", union.ranks), ("score", union.scores)):
                j = self._columns.get(f"{name}_{suffix}")
                if j is not None:
                    matrix[:, j] = values[:, g]
        j = self._columns.get("n_sources")
        if j is not None:
            matrix[:, j] = union.n_sources

    def _preloaded(
        self, lay: ViewLayout, items: np.ndarray, at: np.datetime64, day: np.datetime64
    ) -> tuple[np.ndarray, dict[str, object]]:
        """An in-process view's rows for the candidates, masked as the offline join masks."""
        table = self._tables[lay.group.view.name]
        if lay.daily:  # item views: as of the start of the request's day
            values, raw = self._masked_for_day(lay, table, day)
            return values[items], {c: v[items] for c, v in raw.items()}
        # one row for the request (the calendar): keyed by its UTC day
        position = table.keys.get_indexer([str(day.astype("datetime64[D]"))])[0]
        row = np.full(len(lay.group.features), np.nan, dtype=np.float32)
        raw: dict[str, object] = {c: None for c in table.raw}
        if position >= 0 and lay.visible(table.stamps[position : position + 1], at)[0]:
            row = table.values[position]
            raw = {c: v[position] for c, v in table.raw.items()}
        return np.broadcast_to(row, (len(items), len(row))), raw

    def _masked_for_day(
        self, lay: ViewLayout, table: ItemTable, day: np.datetime64
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Item rows as of the start of ``day`` (cached: one day at a time)."""
        key = (lay.group.view.name, day)
        cached = self._daily.get(key)
        if cached is None:
            visible = lay.visible(table.stamps, day)
            values = np.where(visible[:, None], table.values, np.float32(np.nan))
            raw = {
                c: np.where(visible, v, None if v.dtype == object else np.nan)
                for c, v in table.raw.items()
            }
            cached = (values, raw)
            kept = {k: v for k, v in list(self._daily.items()) if k[0] != key[0]}
            self._daily = {**kept, key: cached}  # a new dict: readers never see it change
        return cached

    def _read(
        self, lay: ViewLayout, items: np.ndarray, user_id: int, at: np.datetime64
    ) -> tuple[np.ndarray, dict[str, object]]:
        """A per-request view's rows for the candidates, read from the online store."""
        keys = lay.group.keys
        width = len(lay.group.features)
        wanted_raw = [c for c in lay.columns if c in self._needed_raw]
        if len(keys) == 1:  # the user's own row
            found = self.online.values(lay.group, [(user_id,)])[0]
            row, raw = self._decoded(lay, found, at, wanted_raw)
            return np.broadcast_to(row, (len(items), width)), raw
        # keyed by the user and an attribute of the product (category, brand)
        codes, names = self._attributes[keys[1]]
        item_codes = codes[items]
        table = self._user_tables.get(lay.group.view.name)
        if table is not None:
            return self._user_rows(lay, table, item_codes, user_id, at), {}
        present = item_codes >= 0
        distinct, inverse = np.unique(item_codes[present], return_inverse=True)
        found = self.online.values(lay.group, [(user_id, names[c]) for c in distinct])
        rows = np.full((len(distinct) + 1, width), np.nan, dtype=np.float32)
        for i, record in enumerate(found):
            if record is not None:
                rows[i] = self._decoded(lay, record, at, [])[0]
        index = np.full(len(items), len(distinct))
        index[present] = inverse
        return rows[index], {}

    def _user_rows(
        self,
        lay: ViewLayout,
        table: UserAttributeTable,
        item_codes: np.ndarray,
        user_id: int,
        at: np.datetime64,
    ) -> np.ndarray:
        """The candidates' rows of a preloaded user x attribute view (as :meth:`_read`)."""
        mine = table.of(user_id)
        codes = table.codes[mine]
        rows = np.full((len(codes) + 1, len(lay.group.features)), np.nan, dtype=np.float32)
        visible = lay.visible(table.stamps[mine], at)
        rows[:-1][visible] = table.values[mine][visible]
        position = np.searchsorted(codes, item_codes)
        hit = (item_codes >= 0) & (position < len(codes))
        hit[hit] = codes[position[hit]] == item_codes[hit]
        return rows[np.where(hit, position, len(codes))]

    def _decoded(
        self,
        lay: ViewLayout,
        record: tuple[datetime, dict[str, object]] | None,
        at: np.datetime64,
        wanted_raw: list[str],
    ) -> tuple[np.ndarray, dict[str, object]]:
        """An online record as an encoded row and raw values; all missing if not visible."""
        width = len(lay.group.features)
        if record is not None:
            stamp = as_datetime64(record[0]).astype("datetime64[us]")
            if lay.visible(np.asarray([stamp]), at)[0]:
                values = record[1]
                prefix = f"{lay.group.view.name}__"
                raw = {c: values.get(c.removeprefix(prefix)) for c in wanted_raw}
                return lay.encode(values), raw
        return np.full(width, np.nan, dtype=np.float32), {c: None for c in wanted_raw}


def _encoded(lay: ViewLayout, frame: pd.DataFrame) -> np.ndarray:
    """A view's rows as the ranker reads them (float32; codes for categoricals)."""
    values = np.full((len(frame), len(lay.group.features)), np.nan, dtype=np.float32)
    for i, column in enumerate(lay.columns):
        series = frame[column]
        vocabulary = lay.vocabularies[i]
        if vocabulary is not None:
            codes = series.astype(object).map(vocabulary)
            values[:, i] = pd.to_numeric(codes, errors="coerce").to_numpy(np.float32)
        elif series.dtype == object:
            values[:, i] = np.fromiter((_number(v) for v in series), np.float64, len(series))
        else:
            values[:, i] = pd.to_numeric(series, errors="coerce").to_numpy(np.float32)
    return values


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """An attribute per product id as codes into its distinct values (-1: missing)."""
    present = values.notna().to_numpy()
    names = sorted({str(v) for v in values[present]})
    lookup = {name: code for code, name in enumerate(names)}
    codes = np.full(len(values), -1, dtype=np.int64)
    codes[present] = [lookup[str(v)] for v in values[present]]
    return codes, names


def _cross(kind: str, left: object, right: object, n: int) -> np.ndarray:
    """A cross (see :class:`~shoprank.ranking.features.Cross`) for ``n`` candidates.

    Each side is one value for the request (a user's) or an array over the candidates.
    """
    if kind == "difference":
        return (_numbers(left, n) - _numbers(right, n)).astype(np.float32)
    left_values, left_missing = _objects(left, n)
    right_values, right_missing = _objects(right, n)
    same = (left_values == right_values).astype(np.float32)
    same[left_missing | right_missing] = np.nan
    return same


def _numbers(side: object, n: int) -> np.ndarray:
    if isinstance(side, np.ndarray):
        if side.dtype == object:
            return np.fromiter((_number(v) for v in side), np.float64, len(side))
        return side.astype(np.float64)
    return np.full(n, _number(side), dtype=np.float64)


def _objects(side: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Values as an object array and where they are missing."""
    if isinstance(side, np.ndarray):
        return side, pd.isna(side)
    missing = _missing(side)
    return np.full(n, None if missing else side, dtype=object), np.full(n, missing)
