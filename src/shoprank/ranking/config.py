"""The ranker's configuration file (``models/<version>.yaml``), loaded and validated."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from shoprank.ranking.model import RankerParams
from shoprank.ranking.rerank import RerankConfig
from shoprank.settings import Splits


class RankerConfigError(ValueError):
    """The ranker config file is missing, malformed or inconsistent with the split."""


@dataclass(frozen=True)
class RankerConfig:
    """How ranker examples are drawn and how XGBoost is set.

    Attributes:
        feature_service: Feast feature service the model trains and serves on.
        candidates_per_generator: top-k each generator proposes per query: one count for
            every generator, or a count per generator name with ``default`` for the others.
            Each count is at least :data:`MIN_CANDIDATES`, the length of the lists every
            generator is evaluated on alone.
        training_cutoffs: cutoffs in the training window.
        horizon_days: label window after each training cutoff.
        users_per_cutoff: users sampled per training cutoff (None = all who show up).
        negatives_per_query: unlabelled candidates kept per training query (all labelled ones
            are kept).
        session_users_per_cutoff: train the session ranker (``ranker_session``) on this
            many in-session queries per training cutoff: users ranked at a random one of
            their events in the window, with the events since the cutoff as live events, as
            the service ranks inside a session (None = no session ranker). It stops early
            on as many in-session queries per validation cutoff as the ranker has
            validation users there.
        validation_users: users sampled over the validation cutoffs (early stopping).
        validation_step_days: days between rolling validation cutoffs (None = one cutoff
            at the start of the validation period, labelled over all of it).
        evaluation_users: users sampled over the test cutoffs (None = all).
        evaluation_step_days: days between rolling test cutoffs, as for validation.
        evaluation_user_batch: build and rank each test cutoff's candidates for this many
            users at a time (None = the whole cutoff at once): peak memory follows a batch,
            the lists do not change.
        evaluation_all_cold_users: query every cold-start user (no event before the test
            period) on top of the ``evaluation_users`` sample; the cold-user segments then
            measure all of them and every other segment the random sample only.
        evaluation_in_session: also query every cold-start user right after their first
            event, as the service meets them (segment ``cold_users_in_session``).
        profile_ceiling_users: users averaged per profile for the profile-only ceiling
            (``oracle_profile``; None = not computed). It costs about a minute per test
            cutoff at seed scale.
        validation_negatives_per_query: unlabelled candidates kept per validation query
            (None = all). Early stopping evaluates NDCG on the validation rows every
            boosting round, so their number sets most of the fit time.
        params: XGBoost settings.
        rerank: post-ranking rules, diversity, new-arrival slots and reasons.
    """

    feature_service: str
    candidates_per_generator: int | dict[str, int]
    training_cutoffs: tuple[datetime, ...]
    horizon_days: int
    users_per_cutoff: int | None
    negatives_per_query: int
    validation_users: int | None
    evaluation_users: int | None
    params: RankerParams
    validation_step_days: int | None = None
    session_users_per_cutoff: int | None = None
    evaluation_step_days: int | None = None
    evaluation_user_batch: int | None = None
    validation_negatives_per_query: int | None = None
    evaluation_all_cold_users: bool = False
    evaluation_in_session: bool = False
    profile_ceiling_users: int | None = None
    rerank: RerankConfig = field(default_factory=RerankConfig)


def _get(doc: dict, path: str, source: Path):
    node = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise RankerConfigError(f"{source}: {path} is missing")
        node = node[part]
    return node


def _day(value: object, path: str, source: Path) -> datetime:
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    except ValueError as exc:
        raise RankerConfigError(f"{source}: {path} has a bad date {value!r}") from exc


def load_ranker_config(path: Path, splits: Splits) -> RankerConfig:
    """Read and check a ranker config; errors name the file and the key."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RankerConfigError(f"{path}: cannot read: {exc}") from exc
    horizon = int(_get(doc, "training.horizon_days", path))
    cutoffs = tuple(_day(v, "training.cutoffs", path) for v in _get(doc, "training.cutoffs", path))
    for cutoff in cutoffs:
        if cutoff + timedelta(days=horizon) > splits.validation_start:
            raise RankerConfigError(
                f"{path}: training.cutoffs: {cutoff:%Y-%m-%d} + {horizon} days runs into "
                f"validation ({splits.validation_start:%Y-%m-%d})"
            )
    xgb = _get(doc, "xgboost", path)
    known = {f.name for f in fields(RankerParams)}
    unknown = sorted(set(xgb) - known)
    if unknown:
        raise RankerConfigError(f"{path}: xgboost.{unknown[0]} is not a known setting")
    if "monotone" in xgb:
        xgb = {**xgb, "monotone": tuple((str(k), int(v)) for k, v in xgb["monotone"].items())}
    return RankerConfig(
        feature_service=str(_get(doc, "feature_service", path)),
        candidates_per_generator=_candidate_counts(
            _get(doc, "candidates_per_generator", path), path
        ),
        training_cutoffs=cutoffs,
        horizon_days=horizon,
        users_per_cutoff=_get(doc, "training.users_per_cutoff", path),
        negatives_per_query=int(_get(doc, "training.negatives_per_query", path)),
        validation_users=_get(doc, "validation.users", path),
        evaluation_users=_get(doc, "evaluation.users", path),
        params=RankerParams(**xgb),
        validation_step_days=_optional_count(doc, "validation", "step_days", path),
        session_users_per_cutoff=_optional_count(doc, "training", "session_users_per_cutoff", path),
        evaluation_step_days=_optional_count(doc, "evaluation", "step_days", path),
        evaluation_user_batch=_optional_count(doc, "evaluation", "user_batch", path),
        validation_negatives_per_query=_optional_count(
            doc, "validation", "negatives_per_query", path
        ),
        evaluation_all_cold_users=_optional_flag(doc, "evaluation", "all_cold_users", path),
        evaluation_in_session=_optional_flag(doc, "evaluation", "in_session", path),
        profile_ceiling_users=_optional_count(doc, "evaluation", "profile_ceiling_users", path),
        rerank=_rerank(doc.get("rerank") or {}, path),
    )


def _rerank(section: dict, source: Path) -> RerankConfig:
    """The optional ``rerank`` section (defaults for absent keys), errors naming the key."""
    known = {f.name for f in fields(RerankConfig)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise RankerConfigError(f"{source}: rerank.{unknown[0]} is not a known setting")
    values = dict(section)
    if "new_arrival_positions" in values:
        values["new_arrival_positions"] = tuple(values["new_arrival_positions"] or ())
    try:
        return RerankConfig(**values)
    except (TypeError, ValueError) as exc:
        raise RankerConfigError(f"{source}: {exc}") from exc


#: The candidate generators of ranker v1 (:func:`shoprank.evaluation.offline.default_generators`).
GENERATORS = (
    "popularity",
    "trending",
    "seasonal",
    "segment",
    "covisitation",
    "als",
    "category",
    "content",
)
#: Fewest candidates a generator may propose: each is also ranked alone on 50-item lists.
MIN_CANDIDATES = 50


def _candidate_counts(value: object, source: Path) -> int | dict[str, int]:
    """``candidates_per_generator``: a count, or {generator or ``default``: count}."""
    key = "candidates_per_generator"
    counts = value if isinstance(value, dict) else {"default": value}
    unknown = sorted(set(counts) - {"default", *GENERATORS})
    if unknown:
        raise RankerConfigError(
            f"{source}: {key}.{unknown[0]} is not a generator (known: {', '.join(GENERATORS)})"
        )
    if "default" not in counts and set(GENERATORS) - set(counts):
        raise RankerConfigError(f"{source}: {key} needs a default for the generators not named")
    for name, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < MIN_CANDIDATES:
            where = key if not isinstance(value, dict) else f"{key}.{name}"
            raise RankerConfigError(f"{source}: {where} must be an integer >= {MIN_CANDIDATES}")
    return value if isinstance(value, int) else {str(k): int(v) for k, v in counts.items()}


def _optional_count(doc: dict, section: str, key: str, source: Path) -> int | None:
    """Optional ``<section>.<key>``: a positive integer, or absent / null."""
    value = (doc.get(section) or {}).get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RankerConfigError(f"{source}: {section}.{key} must be a positive integer")
    return value


def _optional_flag(doc: dict, section: str, key: str, source: Path) -> bool:
    """Optional ``<section>.<key>``: true or false (absent = false)."""
    value = (doc.get(section) or {}).get(key, False)
    if not isinstance(value, bool):
        raise RankerConfigError(f"{source}: {section}.{key} must be true or false")
    return value
