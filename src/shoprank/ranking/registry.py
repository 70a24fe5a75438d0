"""Save and load the trained ranker in BentoML's model store.

A saved ranker is a ``bentoml.xgboost`` model (the fitted ``XGBRanker``) plus, as custom
objects, the exact feature columns and category vocabularies needed to rebuild
:class:`~shoprank.ranking.model.RankerModel`. Serving pins an exact tag (``name:version``);
:func:`load_ranker` refuses floating tags and :func:`latest_tag` resolves one explicitly.

Every function takes ``home``: a BentoML home directory (models live in ``home/models``, as
under ``$BENTOML_HOME``). ``None`` means BentoML's configured store (``$BENTOML_HOME``, default
``~/bentoml``), which BentoML resolves once per process.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprank.ranking.model import RankerModel

if TYPE_CHECKING:
    from bentoml import Model
    from bentoml._internal.models import ModelStore

#: Serialises our use of BentoML's process-wide default store (see :func:`_default_store`).
_STORE_LOCK = threading.RLock()


def _model_store(home: Path | None) -> ModelStore | None:
    """The model store under ``home`` (``None``: BentoML's configured default store)."""
    if home is None:
        return None
    from bentoml._internal.models import ModelStore

    return ModelStore(Path(home) / "models")


def _store_kwargs(home: Path | None) -> dict[str, Any]:
    """Keyword arguments that point a ``bentoml.models`` function at ``home``'s store.

    ``bentoml.models.get`` and ``list`` accept ``_model_store`` (the same injection point
    BentoML uses itself); without it they use the default store, so callers hold
    ``_STORE_LOCK`` to avoid reading it while a save has it patched.
    """
    store = _model_store(home)
    return {} if store is None else {"_model_store": store}


@contextmanager
def _default_store(home: Path | None) -> Iterator[None]:
    """Make ``home``'s store BentoML's default model store for the duration of the block.

    Why an internal: ``bentoml.xgboost.save_model`` has no store argument. It saves into
    whatever ``BentoMLContainer.model_store`` provides, and that provider is a singleton
    resolved from ``BENTOML_HOME`` the first time it is used, so changing the environment
    later has no effect. ``Provider.patch`` (simple_di) is the supported override; it is
    process-wide, so a lock keeps our own saves and loads apart, and ``__exit__`` is called
    in ``finally`` because ``patch`` itself restores nothing when the block raises.

    Args:
        home: BentoML home directory, or ``None`` to leave the default store alone.

    Yields:
        Nothing; BentoML calls without an explicit store use ``home``'s inside the block.
    """
    with _STORE_LOCK:
        store = _model_store(home)
        if store is None:
            yield
            return
        from bentoml._internal.configuration.containers import BentoMLContainer

        patch = BentoMLContainer.model_store.patch(store)
        patch.__enter__()
        try:
            yield
        finally:
            patch.__exit__(None, None, None)


def _plain(value: Any) -> Any:
    """``value`` as YAML/JSON-friendly metadata (non-finite floats and objects as strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _best_iteration(model: RankerModel) -> int | None:
    """The early-stopping best iteration, or ``None`` when training did not stop early."""
    try:
        return int(model.booster.best_iteration)
    except AttributeError:
        return None


def _exact_tag(tag: str) -> str:
    """``tag`` normalised to ``name:version``; ValueError if it floats.

    Args:
        tag: A BentoML tag string.

    Returns:
        The normalised tag string.

    Raises:
        ValueError: If ``tag`` has no version or the version is ``latest``.
    """
    from bentoml import Tag

    parsed = Tag.from_taglike(tag)
    if parsed.version is None or parsed.version == "latest":
        raise ValueError(
            f"refusing floating model tag {tag!r}: serving pins an exact tag "
            f"('{parsed.name}:<version>') so a new save can never change what is served; "
            "resolve one explicitly with latest_tag() or list_rankers()"
        )
    return str(parsed)


def save_ranker(
    model: RankerModel,
    *,
    name: str = "shoprank_ranker",
    model_version: str = "ranker_v1",
    feature_service: str = "ranker_v1",
    training_window: dict[str, str],
    data_version: str,
    metrics: dict[str, float],
    home: Path | None = None,
    extra_objects: dict[str, Any] | None = None,
) -> str:
    """Save a fitted ranker as a new version in BentoML's model store.

    Args:
        model: The fitted ranker.
        name: BentoML model name.
        model_version: Ranker configuration (label ``model_version``).
        feature_service: Feast feature service the ranker reads (label ``feature_service``).
        training_window: The data intervals it was trained on, e.g. ``Splits.as_dict()``.
        data_version: Identifier of the training data (hash, snapshot date, ...).
        metrics: Evaluation metrics, e.g. ``{"ndcg@10": 0.14}``.
        home: BentoML home directory; ``None`` for BentoML's configured store.
        extra_objects: More picklable objects saved with it (what was fitted with the
            ranker, see :mod:`shoprank.training.bundle`), read back by :func:`load_objects`.

    Returns:
        The exact tag ``name:version`` of the saved model (never ``latest``).
    """
    import bentoml

    labels = {"model_version": model_version, "feature_service": feature_service}
    metadata = {
        "training_window": dict(training_window),
        "data_version": data_version,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "n_features": len(model.columns),
        "xgboost_params": _plain(model.booster.get_params()),
    }
    best_iteration = _best_iteration(model)
    if best_iteration is not None:  # BentoML metadata cannot hold None
        metadata["best_iteration"] = best_iteration
    custom_objects = {
        "columns": list(model.columns),
        "categories": {column: list(vocab) for column, vocab in model.categories.items()},
        **(extra_objects or {}),
    }
    with _default_store(home):
        saved = bentoml.xgboost.save_model(
            name,
            model.booster,
            signatures={"predict": {"batchable": False}},
            labels=labels,
            metadata=metadata,
            custom_objects=custom_objects,
        )
    return str(saved.tag)


def _get(tag: str, home: Path | None) -> Model:
    """The stored model with exactly ``tag`` (BentoML also resolves version prefixes)."""
    import bentoml

    with _STORE_LOCK:
        stored = bentoml.models.get(tag, **_store_kwargs(home))
    if str(stored.tag) != tag:
        raise ValueError(f"{tag!r} is not an exact tag (it matched {stored.tag})")
    return stored


def load_ranker(tag: str, home: Path | None = None) -> RankerModel:
    """Rebuild the ranker saved under an exact tag.

    Args:
        tag: The exact ``name:version`` returned by :func:`save_ranker`.
        home: BentoML home directory; ``None`` for BentoML's configured store.

    Returns:
        A ranker whose ``predict`` gives the same scores as the saved one.

    Raises:
        ValueError: If ``tag`` floats (``name`` or ``name:latest``) or is a version prefix.
        bentoml.exceptions.NotFound: If no model has that tag.
    """
    import bentoml

    stored = _get(_exact_tag(tag), home)
    booster = bentoml.xgboost.load_model(stored)
    objects = stored.custom_objects
    return RankerModel(
        booster=booster,  # type: ignore[arg-type]
        columns=list(objects["columns"]),
        categories={column: list(vocab) for column, vocab in objects["categories"].items()},
    )


def load_objects(tag: str, home: Path | None = None) -> dict[str, Any]:
    """The custom objects saved with the model under the exact ``tag``."""
    return dict(_get(_exact_tag(tag), home).custom_objects)


def latest_tag(name: str = "shoprank_ranker", home: Path | None = None) -> str:
    """Resolve ``name``'s newest version to an exact tag, for tooling that wants it explicitly.

    Args:
        name: BentoML model name.
        home: BentoML home directory; ``None`` for BentoML's configured store.

    Returns:
        The exact tag ``name:version`` of the most recently created version.

    Raises:
        bentoml.exceptions.NotFound: If no version of ``name`` exists.
    """
    import bentoml

    with _STORE_LOCK:
        return str(bentoml.models.get(f"{name}:latest", **_store_kwargs(home)).tag)


def list_rankers(name: str = "shoprank_ranker", home: Path | None = None) -> list[dict[str, Any]]:
    """Every saved version of ``name``, newest first.

    Args:
        name: BentoML model name.
        home: BentoML home directory; ``None`` for BentoML's configured store.

    Returns:
        One dict per version with ``tag``, ``creation_time`` (aware UTC datetime), ``labels``
        and ``metrics``; empty if nothing is saved under ``name``.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        with _STORE_LOCK:
            stored = bentoml.models.list(name, **_store_kwargs(home))
    except NotFound:
        return []
    stored.sort(key=lambda m: (m.creation_time, str(m.tag)), reverse=True)
    return [
        {
            "tag": str(m.tag),
            "creation_time": m.creation_time,
            "labels": dict(m.info.labels),
            "metrics": dict(m.info.metadata.get("metrics", {})),
        }
        for m in stored
    ]
