"""The candidate generators of ranker v1 and the catalog vectors the content one reads."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprank.candidates.affinity import CategoryAffinity
from shoprank.candidates.als import ALS
from shoprank.candidates.base import CandidateGenerator, GeneratorFactory
from shoprank.candidates.content import ContentSimilarity, catalog_vectors
from shoprank.candidates.covisitation import CoVisitation
from shoprank.candidates.data import Catalog
from shoprank.candidates.popularity import Popularity, SeasonalPopularity, SegmentPopularity
from shoprank.embeddings.content_index import ContentIndex
from shoprank.settings import Settings


def default_generators(
    users: pd.DataFrame,
    item_vectors: np.ndarray | None = None,
    index: ContentIndex | None = None,
) -> dict[str, CandidateGenerator]:
    """The candidate generators of ranker v1, by name (content only when vectors are given).

    The names are :data:`shoprank.ranking.config.GENERATORS`, in that order. ``index``
    (over the same vectors) is what the content generator searches; without it, it scans.
    """
    generators: dict[str, CandidateGenerator] = {
        "popularity": Popularity(),
        "trending": Popularity(half_life_days=7.0, name="trending"),
        "seasonal": SeasonalPopularity(),
        "segment": SegmentPopularity(users),
        "covisitation": CoVisitation(),
        "als": ALS(),
        "category": CategoryAffinity(users),
    }
    if item_vectors is not None:
        generators["content"] = ContentSimilarity(item_vectors, index=index)
    return generators


def generator_factory(
    item_vectors: np.ndarray | None, index: ContentIndex | None = None
) -> GeneratorFactory:
    """A fresh set of generators per cutoff, sharing the (read-only) content vectors and index."""
    return lambda users: default_generators(users, item_vectors, index)


def content_index(settings: Settings, item_vectors: np.ndarray, catalog: Catalog) -> ContentIndex:
    """The HNSW index the content generator searches: one per set of vectors, built once.

    Under ``<data>/index/content-<digest>``; training, evaluation and every model saved from
    them search the same graph (see :mod:`shoprank.embeddings.content_index`).
    """
    unit = ContentSimilarity(item_vectors).vectors
    return ContentIndex.build(unit, catalog, settings.data_path / "index")


def catalog_generators(settings: Settings, catalog: Catalog) -> tuple[GeneratorFactory, np.ndarray]:
    """The generator factory of ranker v1 on this catalog, and the catalog vectors."""
    vectors = load_item_vectors(settings, catalog)
    return generator_factory(vectors, content_index(settings, vectors, catalog)), vectors


def load_item_vectors(settings: Settings, catalog: Catalog) -> np.ndarray:
    """MiniLM vectors of every product's title and description, cached by content hash."""
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        products = con.execute(
            "select product_id, title, description from stg_products order by product_id"
        ).df()
    cache = settings.data_path / "embeddings" / "products.parquet"
    return catalog_vectors(products, cache, catalog.n_items)
