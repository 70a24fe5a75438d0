"""Content embeddings of products and the vector index used for cold start.

* :mod:`shoprank.embeddings.encoder`: all-MiniLM-L6-v2 text embeddings with an incremental
  Parquet cache (:func:`embed_catalog`).
* :mod:`shoprank.embeddings.index`: the :class:`VectorIndex` interface and its backends
  (qdrant-edge by default, qdrant-client local or server, exact numpy).
* :mod:`shoprank.embeddings.bench`: latency / recall benchmark of the backends.

Importing this package loads no model and touches no files.
"""

from shoprank.embeddings.encoder import (
    EMBEDDING_DIM,
    MODEL_NAME,
    EmbeddingResult,
    EmbeddingStore,
    content_hash,
    embed_catalog,
    load_encoder,
    product_text,
)
from shoprank.embeddings.index import (
    EdgeIndex,
    LocalClientIndex,
    NumpyIndex,
    SearchFilter,
    ServerIndex,
    VectorIndex,
    open_index,
)

__all__ = [
    "EMBEDDING_DIM",
    "MODEL_NAME",
    "EdgeIndex",
    "EmbeddingResult",
    "EmbeddingStore",
    "LocalClientIndex",
    "NumpyIndex",
    "SearchFilter",
    "ServerIndex",
    "VectorIndex",
    "content_hash",
    "embed_catalog",
    "load_encoder",
    "open_index",
    "product_text",
]
