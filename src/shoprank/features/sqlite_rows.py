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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

_UINT = struct.Struct("<I")
_PAIR = struct.Struct("<II")
_INT64_PAYLOAD = struct.Struct("<q")
_INT64 = 4  # ValueType.INT64 (checked against Feast's enum in SqliteRows.__init__)
_DOUBLE_TAG = 0x29  # ValueProto field 5 (double_val), fixed 64 bits
_INT64_TAG = 0x20  # ValueProto field 4 (int64_val), varint
_INT64_VALUE = struct.Struct("<IIq")  # value type, length (8), value


@dataclass(frozen=True)
class Scan:
    """A whole view's table: keys, their event times (naive UTC), feature -> Python values.

    ``columns[f][i]`` is key ``i``'s value of feature ``f`` as Feast's
    ``feast_value_type_to_python_type`` gives it (None where the key has no such row).
    """

    keys: list[tuple]
    stamps: np.ndarray
    columns: dict[str, np.ndarray]


def decode_values(blobs: tuple[bytes, ...]) -> np.ndarray:
    """Serialized ValueProtos as Python values (an object array), in bulk where possible.

    Doubles (field ``double_val``: tag 0x29 and 8 little-endian bytes) and int64s
    (``int64_val``: tag 0x20 and a varint) are decoded with numpy; anything else (strings,
    nulls, lists) through the proto and Feast's own conversion, one at a time.
    """
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    out = np.empty(len(blobs), dtype=object)
    lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
    tags = np.fromiter((b[0] if b else 0 for b in blobs), np.int64, len(blobs))
    done = np.zeros(len(blobs), dtype=bool)
    doubles = np.flatnonzero((tags == _DOUBLE_TAG) & (lengths == 9))
    if len(doubles):
        raw = np.frombuffer(b"".join([blobs[i] for i in doubles]), np.uint8).reshape(-1, 9)
        out[doubles] = raw[:, 1:].copy().view("<f8").ravel().tolist()
        done[doubles] = True
    for length in range(2, 12):  # int64 varints: 1 to 10 bytes after the tag
        ints = np.flatnonzero((tags == _INT64_TAG) & (lengths == length))
        if not len(ints):
            continue
        raw = np.frombuffer(b"".join([blobs[i] for i in ints]), np.uint8).reshape(-1, length)
        body = raw[:, 1:].astype(np.uint64)
        continued = (body[:, :-1] & 0x80) != 0
        if not continued.all() or (body[:, -1] & 0x80).any():
            continue  # not one whole varint: leave it to the proto
        shifts = (7 * np.arange(length - 1)).astype(np.uint64)
        value = ((body & np.uint64(0x7F)) << shifts).sum(axis=1, dtype=np.uint64)
        out[ints] = value.view(np.int64).tolist()
        done[ints] = True
    for i in np.flatnonzero(~done):
        proto = Value()
        proto.ParseFromString(blobs[i])
        out[i] = feast_value_type_to_python_type(proto)
    return out


class SqliteRows:
    """Reads one project's SQLite online tables (see the module docstring)."""

    def __init__(self, store: FeatureStore):
        from feast.infra.online_stores.sqlite import _quote_id, _table_id
        from feast.protos.feast.types.Value_pb2 import ValueType

        self.config = store.config
        self._online = store._get_provider().online_store
        self._string, self._int64 = int(ValueType.STRING), int(ValueType.INT64)
        assert self._int64 == _INT64
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

    @staticmethod
    def parse_key(blob: bytes) -> dict[str, Any]:
        """An entity key serialized as :meth:`key` writes it, as join key -> value."""
        (count,) = _UINT.unpack_from(blob, 0)
        offset, names = 4, []
        for _ in range(count):
            _, length = _PAIR.unpack_from(blob, offset)
            names.append(blob[offset + 8 : offset + 8 + length].decode("utf8"))
            offset += 8 + length
        values: dict[str, Any] = {}
        for name in names:
            kind, length = _PAIR.unpack_from(blob, offset)
            payload = blob[offset + 8 : offset + 8 + length]
            values[name] = _INT64_PAYLOAD.unpack(payload)[0] if kind == _INT64 else payload.decode()
            offset += 8 + length
        return values

    # Rows

    def scan(self, view: FeatureView, names: tuple[str, ...], features: list[str]) -> Scan | None:
        """Every key of a view's table with its features, decoded in bulk.

        Reads what :meth:`read` would return for every key the table holds, one query per
        feature. Returns None when the table holds something the bulk decoding does not
        cover (event times that are not epoch seconds): read such a view per key instead.
        """
        conn = self._online._get_conn(self.config)
        table = self._table(view)
        odd = conn.execute(
            f"SELECT 1 FROM {table} WHERE typeof(event_ts) != 'integer' LIMIT 1"
        ).fetchone()
        if odd is not None:
            return None
        positions: dict[bytes, int] = {}
        decoded: dict[str, tuple[np.ndarray, np.ndarray | list]] = {}
        seconds: list[tuple[np.ndarray, np.ndarray]] = []
        for feature in features:
            rows = conn.execute(
                f"SELECT entity_key, value, CAST(event_ts AS INTEGER) FROM {table} "
                "WHERE feature_name = ?",
                (feature,),
            ).fetchall()
            if not rows:
                continue
            blobs, values, stamps = zip(*rows, strict=True)
            at = np.fromiter(
                (positions.setdefault(b, len(positions)) for b in blobs), np.int64, len(blobs)
            )
            decoded[feature] = (at, decode_values(values))
            seconds.append((at, np.asarray(stamps, dtype=np.int64)))
        keys = list(positions)
        stamp = np.full(len(keys), np.iinfo(np.int64).min, dtype=np.int64)
        for at, values in seconds:
            np.maximum.at(stamp, at, values)
        columns: dict[str, np.ndarray] = {}
        for feature, (at, values) in decoded.items():
            column = np.full(len(keys), None, dtype=object)
            column[at] = values
            columns[feature] = column
        return Scan(
            self.parse_keys(keys, names),
            stamp.astype("datetime64[s]").astype("datetime64[us]"),
            columns,
        )

    def parse_keys(self, blobs: list[bytes], names: tuple[str, ...]) -> list[tuple]:
        """Entity keys as value tuples in ``names`` order (:meth:`parse_key` for each).

        Keys of a user and one string attribute are cut apart by position (their header is
        the view's; the user id, last in name order, is the final 8 bytes) when every one
        has that shape; any other key is parsed field by field.
        """
        header, order = _layout(names)
        last = names[order[-1]]
        tail = _INT64_VALUE.pack(self._int64, 8, 0)[:8]
        fast = len(names) == 2 and all(b.startswith(header) and b[-16:-8] == tail for b in blobs)
        if not fast:
            parsed = [self.parse_key(blob) for blob in blobs]
            return [tuple(p[n] for n in names) for p in parsed]
        users = np.frombuffer(b"".join([b[-8:] for b in blobs]), "<i8").tolist()
        start = len(header) + 8
        texts = [b[start:-16].decode("utf8") for b in blobs]
        if last == names[1]:
            return list(zip(texts, users, strict=True))
        return list(zip(users, texts, strict=True))

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
