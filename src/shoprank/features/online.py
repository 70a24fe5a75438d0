"""The feature service read from Feast's online store, for one request at a time.

:class:`OnlineFeatures` is the online twin of
:class:`~shoprank.features.sources.HistoricalFeatures`: same rows in, same columns out.
It reads through Feast's own online-store class (``provider.online_read``: Redis in
production), so it sees exactly what ``materialize`` wrote and what the push source pushed,
but skips ``get_online_features``' per-call response building. On SQLite (the default) it
sends ``online_read``'s own query to Feast's table with keys serialized once per value
(:class:`~shoprank.features.sqlite_rows.SqliteRows`, checked against Feast's serializer when
the store opens): the same rows for a quarter of the cost.

- Views keyed by the user (profile, the live session) are read per request.
- Views keyed by anything else (products, the calendar) change once a day: they are read in
  bulk once (:meth:`OnlineFeatures.preload`) and kept in process; a refresh reloads them.
- Views keyed by the user and a product attribute (user x brand, user x category) are only
  materialized, never pushed: on SQLite they are scanned into process too (a request would
  read ~150 of their keys); on other stores they are read per request.

Point-in-time semantics are kept where the offline join has them: a value stamped after the
row's moment, or older than its view's TTL, is missing (Feast's online reads ignore TTL).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shoprank.features.sources import ViewGroup, service_groups
from shoprank.features.sqlite_rows import SqliteRows

if TYPE_CHECKING:
    from feast import FeatureStore

#: Join keys whose views are read per request; every other view lives in process.
PER_REQUEST_KEYS = ("user_id",)
#: Entity keys per online read (SQLite's variable limit is 32,766).
READ_CHUNK = 5_000


class OnlineStoreError(RuntimeError):
    """The online store could not be read (down, timed out, or misconfigured)."""


def _value_proto(value: Any):
    """A Feast ValueProto for an entity key value (int64 or string)."""
    if isinstance(value, int | np.integer):
        return _int_value(int(value))
    return _string_value(str(value))


def _int_value(value: int):
    from feast.protos.feast.types.Value_pb2 import Value

    return Value(int64_val=value)


@functools.lru_cache(maxsize=65_536)
def _string_value(value: str):
    """String keys repeat (categories, brands): their protos are built once."""
    from feast.protos.feast.types.Value_pb2 import Value

    return Value(string_val=value)


def entity_key(keys: tuple[str, ...], values: tuple) -> Any:
    """A Feast EntityKeyProto for ``values`` of the join ``keys``."""
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    return EntityKey(join_keys=list(keys), entity_values=[_value_proto(v) for v in values])


class OnlineFeatures:
    """Features of one feature service from Feast's online store.

    Args:
        store: An open Feast store (its online store is what is read).
        feature_service: The feature service the ranker was trained on.
    """

    def __init__(self, store: FeatureStore, feature_service: str):
        self.store = store
        self.feature_service = feature_service
        self.groups = service_groups(store, feature_service)
        self._provider = store._get_provider()
        self._lock = threading.Lock()
        self._tables: dict[str, pd.DataFrame] = {}
        samples = [
            (g.keys, tuple(7 if k.endswith("_id") else "Skin & Care é" for k in g.keys))
            for g in self.groups
        ]
        self._direct = SqliteRows.open(store, samples)

    # Reading

    def values(
        self, group: ViewGroup, keys: list[tuple]
    ) -> list[tuple[datetime, dict[str, Any]] | None]:
        """Raw online records of one view: per key, (event time, feature -> value) or None.

        Values are Python values (Feast's own conversion); the event time is aware UTC.

        Raises:
            OnlineStoreError: When the online store cannot be read.
        """
        from feast.type_map import feast_value_type_to_python_type

        out: list[tuple[datetime, dict[str, Any]] | None] = []
        for start in range(0, len(keys), READ_CHUNK):
            chunk = keys[start : start + READ_CHUNK]
            try:
                with self._lock:
                    if self._direct is not None:
                        found = self._direct.read(
                            group.view, group.keys, chunk, list(group.features)
                        )
                    else:
                        protos = [entity_key(group.keys, k) for k in chunk]
                        found = self._provider.online_read(
                            self.store.config, group.view, protos, list(group.features)
                        )
            except Exception as exc:  # a store that is down raises its own client errors
                raise OnlineStoreError(f"online read of {group.view.name} failed: {exc}") from exc
            for record in found:
                stamp, values = record if record is not None else (None, None)
                if values is None:
                    out.append(None)
                    continue
                record = {
                    name: feast_value_type_to_python_type(values[name])
                    for name in group.features
                    if name in values
                }
                out.append((_aware(stamp), record))
        return out

    def read(self, group: ViewGroup, keys: Iterable[tuple]) -> pd.DataFrame:
        """Online rows of one view for entity ``keys``: one row per key found.

        Returns a frame indexed by the key tuple(s) with the view's full feature names and
        ``_feature_ts`` (aware UTC).

        Raises:
            OnlineStoreError: When the online store cannot be read.
        """
        keys = list(dict.fromkeys(keys))
        found = [
            (key, record)
            for key, record in zip(keys, self.values(group, keys), strict=True)
            if record is not None
        ]
        return _frame(group, found)

    def scan(self, group: ViewGroup) -> pd.DataFrame | None:
        """Every row of one view (as :meth:`read` returns them), decoded in bulk.

        None when the store is not SQLite read directly or its table cannot be decoded in
        bulk (:meth:`~shoprank.features.sqlite_rows.SqliteRows.scan`).

        Raises:
            OnlineStoreError: When the store fails.
        """
        if self._direct is None:
            return None
        try:
            with self._lock:
                found = self._direct.scan(group.view, group.keys, list(group.features))
        except Exception as exc:
            raise OnlineStoreError(f"online scan of {group.view.name} failed: {exc}") from exc
        if found is None:
            return None
        frame = pd.DataFrame(
            {f"{group.view.name}__{n}": found.columns.get(n) for n in group.features},
            columns=group.columns,
        )
        frame["_feature_ts"] = pd.to_datetime(found.stamps).tz_localize("UTC")
        frame.index = _key_index(found.keys, group.keys)
        return _typed(frame, group)

    def table(self, view: str) -> pd.DataFrame:
        """A preloaded view's rows (as :meth:`read` returns them)."""
        return self._tables[view]

    def preload(self, values: dict[str, Iterable]) -> None:
        """Read the in-process views in bulk: ``values`` maps a join key to every value.

        E.g. ``{"product_id": catalog ids, "calendar_date": days}``. Views keyed by the user
        alone, or fed by a push source (the live session), are never preloaded; views keyed
        by the user and a product attribute (:func:`user_attribute`) are scanned whole when
        the store is SQLite read directly (elsewhere they are read per request).
        """
        tables = {}
        for group in self.groups:
            if user_attribute(group):
                scanned = self.scan(group)
                if scanned is not None:
                    tables[group.view.name] = scanned
                continue
            if per_request(group) or len(group.keys) != 1 or group.keys[0] not in values:
                continue
            keys = [(v,) for v in values[group.keys[0]]]
            tables[group.view.name] = self.read(group, keys)
        self._tables = tables

    @property
    def preloaded_views(self) -> list[str]:
        """The views held in process."""
        return list(self._tables)

    @property
    def preloaded(self) -> dict[str, int]:
        """Rows held in process, by view."""
        return {name: len(table) for name, table in self._tables.items()}

    # Joining

    def join(self, rows: pd.DataFrame, daily_keys: tuple[str, ...] = ()) -> pd.DataFrame:
        """``rows`` with the service's features, as :meth:`HistoricalFeatures.join` gives.

        Raises:
            OnlineStoreError: When a per-request view cannot be read.
        """
        parts = [rows]
        moments = pd.to_datetime(rows["event_timestamp"], utc=True)
        days = moments.dt.floor("D")
        for group in self.groups:
            keys = list(group.keys)
            daily = any(key in daily_keys for key in keys)
            lookup = rows[keys]
            wanted = list(lookup.drop_duplicates().itertuples(index=False, name=None))
            table = self._tables.get(group.view.name)
            if table is None:
                table = self.read(group, wanted)
            aligned = table.reindex(
                _key_index(list(lookup.itertuples(index=False, name=None)), group.keys)
            )
            aligned = aligned.reset_index(drop=True).set_axis(rows.index)
            valid = _in_window(aligned.pop("_feature_ts"), days if daily else moments, group)
            aligned.loc[~valid.to_numpy()] = np.nan  # what the offline join has there
            parts.append(aligned)
        return pd.concat(parts, axis=1)


def materialized_through(store: FeatureStore, views: Iterable[str]) -> dict[str, datetime | None]:
    """The end of each view's latest materialization, read from the registry (not a cache)."""
    out: dict[str, datetime | None] = {}
    for name in views:
        view = store.registry.get_feature_view(name, store.project, allow_cache=False)
        ends = [end for _, end in view.materialization_intervals]
        out[name] = max(ends) if ends else None
    return out


def _aware(stamp: datetime) -> datetime:
    """An event time as aware UTC (stores return naive UTC or aware times)."""
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def user_attribute(group: ViewGroup) -> bool:
    """Whether a view is keyed by the user and a product attribute, and only materialized.

    One request reads such a view (user x brand, user x category) once per distinct
    attribute of its candidates (~150 keys); the whole of it is small (seed scale: 607,200
    user x brand keys, 7 MB as arrays) and changes only when it is materialized, which a
    refresh notices.
    """
    return (
        len(group.keys) == 2
        and PER_REQUEST_KEYS[0] in group.keys
        and getattr(group.view, "stream_source", None) is None
    )


def _frame(
    group: ViewGroup, found: list[tuple[tuple, tuple[datetime, dict[str, Any]]]]
) -> pd.DataFrame:
    """Records (key, (event time, feature -> value)) as :meth:`OnlineFeatures.read` rows."""
    records, index = [], []
    for key, (stamp, values) in found:
        row = {f"{group.view.name}__{name}": values.get(name) for name in group.features}
        row["_feature_ts"] = pd.Timestamp(stamp)
        records.append(row)
        index.append(key)
    frame = pd.DataFrame.from_records(records, columns=[*group.columns, "_feature_ts"])
    frame.index = _key_index(index, group.keys)
    return _typed(frame, group)


def per_request(group: ViewGroup) -> bool:
    """Whether the view is read per request (keyed by the user), not held in process."""
    return any(key in PER_REQUEST_KEYS for key in group.keys)


def _key_index(keys: list[tuple], names: tuple[str, ...]) -> pd.Index:
    """An index over key tuples (a MultiIndex for composite keys)."""
    if len(names) == 1:
        return pd.Index([k[0] for k in keys], name=names[0])
    if not keys:
        return pd.MultiIndex.from_tuples([], names=list(names))
    return pd.MultiIndex.from_tuples(keys, names=list(names))


def _in_window(stamps: pd.Series, moments: pd.Series, group: ViewGroup) -> pd.Series:
    """Whether each value is visible at its row's moment: stamped at or before it, within TTL."""
    stamps = pd.to_datetime(stamps, utc=True)
    ok = stamps.notna() & (stamps <= moments)
    ttl = group.view.ttl
    if ttl and ttl > timedelta(0):
        ok &= stamps >= moments - ttl
    return ok


def _typed(frame: pd.DataFrame, group: ViewGroup) -> pd.DataFrame:
    """Columns as the offline join types them: numbers as floats (NaN missing), text as objects."""
    from feast.types import Bool, String

    dtypes = {f.name: f.dtype for f in group.view.features}
    for name in group.features:
        column = f"{group.view.name}__{name}"
        dtype = dtypes.get(name)
        if dtype == String:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        elif dtype == Bool:
            frame[column] = frame[column].astype(object)
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame
