"""Where the ranker's features come from: one interface, offline and online.

Training and evaluation join the feature service point-in-time from Feast's offline store
(:class:`HistoricalFeatures`); the service reads the same feature service from Feast's
online store (:class:`shoprank.features.online.OnlineFeatures`). Both take candidate rows
with the entity keys and ``event_timestamp`` (:func:`shoprank.ranking.dataset.entity_columns`)
and return them with one ``<view>__<feature>`` column per feature of the service, so the
ranking code above them cannot tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pandas as pd

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

    from shoprank.settings import Settings


class FeatureSource(Protocol):
    """Joins a feature service's features onto candidate rows."""

    feature_service: str

    def join(self, rows: pd.DataFrame, daily_keys: tuple[str, ...] = ()) -> pd.DataFrame:
        """``rows`` with every feature of the service as ``<view>__<feature>`` columns."""
        ...


@dataclass(frozen=True)
class ViewGroup:
    """One feature view of a feature service: its join keys and the features it serves."""

    view: FeatureView
    keys: tuple[str, ...]
    features: tuple[str, ...]

    @property
    def refs(self) -> list[str]:
        """Feast feature references (``view:feature``)."""
        return [f"{self.view.name}:{name}" for name in self.features]

    @property
    def columns(self) -> list[str]:
        """The full feature names the service returns (``view__feature``)."""
        return [f"{self.view.name}__{name}" for name in self.features]


def service_groups(store: FeatureStore, feature_service: str) -> list[ViewGroup]:
    """The feature service's views, in its order, with their join keys and features."""
    service = store.get_feature_service(feature_service)
    groups = []
    for projection in service.feature_view_projections:
        view = store.get_feature_view(projection.name)
        features = tuple(f.name for f in projection.features)
        groups.append(ViewGroup(view, tuple(view.join_keys), features))
    return groups


class HistoricalFeatures:
    """Point-in-time features from Feast's offline store (training, evaluation).

    Each view is joined on the distinct (join keys, event_timestamp) pairs of the rows only:
    ranking many candidates per user at a few cutoffs repeats the same user and product
    lookups thousands of times, which this avoids. Same values as one
    ``get_historical_features`` over every row.
    """

    def __init__(self, store: FeatureStore, feature_service: str):
        self.store = store
        self.feature_service = feature_service
        self.groups = service_groups(store, feature_service)

    @classmethod
    def open(cls, settings: Settings, feature_service: str | None = None) -> HistoricalFeatures:
        """The offline source of ``feature_service`` (default: the settings')."""
        from shoprank.features.store import open_store

        return cls(open_store(settings), feature_service or settings.feature_service)

    def join(self, rows: pd.DataFrame, daily_keys: tuple[str, ...] = ()) -> pd.DataFrame:
        """Point-in-time join of the service onto ``rows``, one Feast query per view.

        Views keyed by one of ``daily_keys`` (e.g. ``product_id``) are looked up as of the
        start of each row's day instead of its exact moment. That is for rows whose moments
        are all different (queries inside sessions): their daily snapshots are the same all
        day, so it only loses a snapshot written earlier that same day (a launch), which the
        online store, materialised daily, would not have either; and it keeps the join to
        (key, day) pairs instead of one per row.
        """
        parts = [rows]
        moments = rows["event_timestamp"]
        days = pd.to_datetime(moments, utc=True).dt.floor("D")
        for group in self.groups:
            keys = list(group.keys)
            on = [*keys, "event_timestamp"]
            daily = any(key in daily_keys for key in keys)
            lookup = rows[keys].assign(event_timestamp=days if daily else moments)
            entity = lookup.drop_duplicates().reset_index(drop=True)
            joined = self.store.get_historical_features(
                entity_df=entity, features=group.refs, full_feature_names=True
            ).to_df()
            joined["event_timestamp"] = pd.to_datetime(joined["event_timestamp"], utc=True)
            joined = joined.drop_duplicates(on).set_index(on)
            # Aligned by key, then concatenated once: repeated merges copy every column.
            aligned = joined.reindex(pd.MultiIndex.from_frame(lookup[on]))
            parts.append(aligned.reset_index(drop=True).set_axis(rows.index))
        return pd.concat(parts, axis=1)
