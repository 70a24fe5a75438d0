"""Feast's SQLite online tables read directly: the rows ``online_read`` returns, cheaper.

``SqliteOnlineStore.online_read`` builds an ``EntityKeyProto`` per key and serializes it in
Python; for the ~200 (user, brand) keys of one request that is most of the read's 4 ms.
:class:`SqliteRows` sends the same query to the same table, with the entity keys serialized
once per distinct value (brand names repeat across requests) and joined, in Feast's own
format (``serialize_entity_key``, version 3). It is only used after checking, against
Feast's function, that its keys are byte for byte Feast's (:meth:`SqliteRows.open`); tests
compare its rows with ``online_read``'s.
"""

from __future__ import annotations

import functools
import itertools
import struct
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

_UINT = struct.Struct("<I")
_INT64_VALUE = struct.Struct("<IIq")  # value type, length (8), value


class SqliteRows:
    """Reads one project's SQLite online tables (see the module docstring)."""

    def __init__(self, store: FeatureStore):
        from feast.infra.online_stores.sqlite import _quote_id, _table_id
        from feast.protos.feast.types.Value_pb2 import ValueType

        self.config = store.config
        self._online = store._get_provider().online_store
        self._string, self._int64 = int(ValueType.STRING), int(ValueType.INT64)
        versioned = bool(
            getattr(self.config.registry, "enable_online_feature_view_versioning", False)
        )
        self._table = functools.cache(
            lambda view: _quote_id(_table_id(self.config.project, view, versioned))
        )

    @classmethod
    def open(
        cls, store: FeatureStore, samples: list[tuple[tuple[str, ...], tuple]]
    ) -> SqliteRows | None:
        """A reader for ``store``, or None when it is not SQLite or its keys would differ.

        Args:
            store: The Feast store.
            samples: (join keys, values) pairs whose serialization is checked against Feast.
        """
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.sqlite import SqliteOnlineStore

        from shoprank.features.online import entity_key

        if not isinstance(store._get_provider().online_store, SqliteOnlineStore):
            return None
        if store.config.entity_key_serialization_version != 3:
            return None
        reader = cls(store)
        for names, values in samples:
            feast = serialize_entity_key(
                entity_key(names, values), entity_key_serialization_version=3
            )
            if reader.key(names, values) != feast:
                return None
        return reader

    # Keys

    def key(self, names: tuple[str, ...], values: tuple) -> bytes:
        """The serialized entity key, as ``serialize_entity_key`` (version 3) writes it."""
        if len(names) == 1:
            return _header(names) + self._value(values[0])
        header, order = _layout(names)
        return header + b"".join([self._value(values[i]) for i in order])

    def _value(self, value: Any) -> bytes:
        if isinstance(value, str):
            return _string_value(value, self._string)
        return _INT64_VALUE.pack(self._int64, 8, int(value))

    # Rows

    def read(
        self, view: FeatureView, names: tuple[str, ...], keys: list[tuple], features: list[str]
    ) -> list[tuple[datetime, dict[str, Any]] | None]:
        """Per key, (event time, aware UTC; feature -> ValueProto) or None, as ``online_read``."""
        from feast.protos.feast.types.Value_pb2 import Value

        serialized = [self.key(names, k) for k in keys]
        conn = self._online._get_conn(self.config)
        rows = conn.execute(
            f"SELECT entity_key, feature_name, value, event_ts FROM {self._table(view)} "
            f"WHERE entity_key IN ({','.join('?' * len(serialized))}) ORDER BY entity_key",
            serialized,
        ).fetchall()
        wanted = set(features)
        found = {k: list(group) for k, group in itertools.groupby(rows, key=lambda r: r[0])}
        out: list[tuple[datetime, dict[str, Any]] | None] = []
        for key in serialized:
            record, stamp = {}, None
            for _, name, blob, ts in found.get(key, ()):
                if name not in wanted:
                    continue
                value = Value()
                value.ParseFromString(blob)
                record[name] = value
                stamp = ts.astimezone(UTC) if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
            out.append((stamp, record) if record else None)
        return out


@functools.lru_cache(maxsize=256)
def _layout(names: tuple[str, ...]) -> tuple[bytes, tuple[int, ...]]:
    """The header of a multi-key entity key and the order its values are written in."""
    order = tuple(sorted(range(len(names)), key=names.__getitem__))
    return _header(tuple(names[i] for i in order)), order


@functools.lru_cache(maxsize=256)
def _header(names: tuple[str, ...]) -> bytes:
    from feast.protos.feast.types.Value_pb2 import ValueType

    parts = [_UINT.pack(len(names))]
    for name in names:
        encoded = name.encode("utf8")
        parts += [_UINT.pack(int(ValueType.STRING)), _UINT.pack(len(encoded)), encoded]
    return b"".join(parts)


@functools.lru_cache(maxsize=65_536)
def _string_value(value: str, value_type: int) -> bytes:
    encoded = value.encode("utf8")
    return _UINT.pack(value_type) + _UINT.pack(len(encoded)) + encoded
