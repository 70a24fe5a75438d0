"""Feast objects generated from dbt's manifest.

Feature logic lives once, in dbt. This module only *declares*: every dbt model tagged
``feast`` becomes a FileSource over the Parquet file dbt wrote and a FeatureView whose schema is
the model's documented columns (``data_type`` in the model's yml), mapped to Feast types with
Feast's own dbt integration (:mod:`feast.dbt`). Each model's ``meta.feast`` block says which
entities key it, its TTL and, for streaming views, the push source that updates it.

The feature repository (``feature_repo/*.py``) re-exports these objects so ``feast apply`` and
``shoprank features apply`` register the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, FileSource, PushSource, ValueType
from feast.dbt.mapper import DbtToFeastMapper
from feast.dbt.parser import DbtManifestParser, DbtModel

from shoprank.settings import Settings

FEAST_TAG = "feast"
TIMESTAMP_FIELD = "event_timestamp"

#: Entities by name: (join key, value type, description).
ENTITY_SPECS: dict[str, tuple[str, ValueType, str]] = {
    "user": ("user_id", ValueType.INT64, "A shopper (raw users.user_id)."),
    "product": ("product_id", ValueType.INT64, "A catalog product (raw products.product_id)."),
    "category": ("category_l1", ValueType.STRING, "A top-level catalog category."),
    "brand": ("brand", ValueType.STRING, "A product brand (raw products.brand)."),
    "day": ("calendar_date", ValueType.STRING, "A calendar day, ISO yyyy-mm-dd (UTC)."),
}

#: Feature services, named per model version: service name -> feature views it serves.
FEATURE_SERVICES: dict[str, tuple[str, ...]] = {
    "ranker_v1": (
        "user_features",
        "product_features",
        "user_category_affinity",
        "user_brand_affinity",
        "calendar_features",
        "session_features",
    ),
}


class ManifestError(ValueError):
    """The dbt manifest is missing or does not describe a model as Feast needs it."""


@dataclass
class FeastDefinitions:
    """Everything the feature repository registers."""

    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, FileSource] = field(default_factory=dict)
    push_sources: dict[str, PushSource] = field(default_factory=dict)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    feature_services: dict[str, FeatureService] = field(default_factory=dict)

    def all_objects(self) -> list:
        """All objects, in the order Feast should apply them."""
        return [
            *self.entities.values(),
            *self.sources.values(),
            *self.push_sources.values(),
            *self.feature_views.values(),
            *self.feature_services.values(),
        ]


def manifest_path(settings: Settings) -> Path:
    """Where dbt writes its manifest for this project."""
    return settings.dbt_project_dir / "target" / "manifest.json"


def load_feast_models(path: Path) -> list[DbtModel]:
    """Parse the manifest and return the models tagged ``feast``, sorted by name.

    Raises:
        ManifestError: when the manifest is missing or a model lacks ``meta.feast``.

    """
    if not path.is_file():
        raise ManifestError(
            f"{path}: dbt manifest not found; run `shoprank dbt build` (or `dbt parse`) first"
        )
    parser = DbtManifestParser(str(path))
    parser.parse()
    models = sorted(parser.get_models(tag_filter=FEAST_TAG), key=lambda m: m.name)
    if not models:
        raise ManifestError(f"{path}: no dbt model is tagged '{FEAST_TAG}'")
    for model in models:
        _check_model(model)
    return models


def _check_model(model: DbtModel) -> None:
    meta = model.meta.get("feast")
    if not isinstance(meta, dict):
        raise ManifestError(f"dbt model {model.name}: meta.feast is missing")
    unknown = [e for e in meta.get("entities", []) if e not in ENTITY_SPECS]
    if unknown:
        raise ManifestError(f"dbt model {model.name}: meta.feast.entities: unknown {unknown}")
    names = {c.name for c in model.columns}
    if TIMESTAMP_FIELD not in names:
        raise ManifestError(f"dbt model {model.name}: column {TIMESTAMP_FIELD} is not documented")
    untyped = [c.name for c in model.columns if not c.data_type or c.data_type == "STRING"]
    if untyped:
        raise ManifestError(f"dbt model {model.name}: columns without data_type: {untyped}")


def build_entities() -> dict[str, Entity]:
    """The entities every feature view is keyed by."""
    return {
        name: Entity(name=name, join_keys=[key], value_type=vtype, description=doc)
        for name, (key, vtype, doc) in ENTITY_SPECS.items()
    }


def build_source(model: DbtModel, marts_dir: Path) -> FileSource:
    """A FileSource over the Parquet file dbt-duckdb wrote for ``model``."""
    return FileSource(
        name=f"{model.name}_source",
        path=str(marts_dir / f"{model.name}.parquet"),
        timestamp_field=TIMESTAMP_FIELD,
        description=model.description,
        tags={"dbt.model": model.name, "dbt.unique_id": model.unique_id},
    )


def build_feature_view(
    model: DbtModel, source: FileSource | PushSource, entities: dict[str, Entity]
) -> FeatureView:
    """A FeatureView whose schema is the dbt model's documented, typed columns."""
    meta = model.meta[FEAST_TAG]
    view_entities = [entities[name] for name in meta.get("entities", [])]
    ttl_days = int(meta.get("ttl_days", 0))
    if not view_entities:
        raise ManifestError(f"dbt model {model.name}: meta.feast.entities is empty")
    mapper = DbtToFeastMapper(data_source_type="file", timestamp_field=TIMESTAMP_FIELD)
    return mapper.create_feature_view(
        model,
        source,
        entity_columns=[e.join_key for e in view_entities],
        entities=view_entities,
        ttl_days=ttl_days,
    )


def build_definitions(settings: Settings, path: Path | None = None) -> FeastDefinitions:
    """Build all Feast objects from the dbt manifest (default: the project's target/)."""
    models = load_feast_models(path or manifest_path(settings))
    defs = FeastDefinitions(entities=build_entities())
    for model in models:
        batch = build_source(model, settings.marts_dir)
        defs.sources[batch.name] = batch
        source: FileSource | PushSource = batch
        push_name = model.meta[FEAST_TAG].get("push_source")
        if push_name:
            source = PushSource(name=push_name, batch_source=batch)
            defs.push_sources[push_name] = source
        defs.feature_views[model.name] = build_feature_view(model, source, defs.entities)
    for service, view_names in FEATURE_SERVICES.items():
        missing = [v for v in view_names if v not in defs.feature_views]
        if missing:
            raise ManifestError(f"feature service {service}: no dbt model for {missing}")
        defs.feature_services[service] = FeatureService(
            name=service,
            features=[defs.feature_views[v] for v in view_names],
            description=f"Features of model version {service}.",
            tags={"model_version": service},
        )
    return defs
