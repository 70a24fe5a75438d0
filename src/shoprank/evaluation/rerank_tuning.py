"""``shoprank tune rerank``: what post-ranking costs in NDCG@10 for how much diversity.

Protocol (the validation month only; the test month is never read):

1. The ranker is trained as ``shoprank train`` trains it (or loaded by exact tag).
2. At the validation period's rolling cutoffs (``validation.step_days``) a fresh sample of
   users is queried, with every candidate (no sampled negatives), and ranked, as the
   evaluation ranks the test month (:class:`~shoprank.evaluation.offline.CutoffLists`).
3. The scores go through the post-ranking stage once per setting of a grid (MMR lambda x
   per-leaf cap x new-arrival slot; :func:`~shoprank.evaluation.offline.reranked_lists`,
   the evaluation's ``ranker_served`` path, rules included).
4. Each setting's ten shown positions are scored by NDCG@10 and intra-list diversity@10
   (share of item pairs in different leaf categories, the evaluation report's diversity),
   and by its paired NDCG@10 difference from the plain ranker's lists on the same queries.
5. The default is the most diverse setting costing at most ``budget`` (3%) of the plain
   ranker's NDCG@10 (:func:`choose`), among settings with the configured slot when one
   meets the budget, else among all; when none does, the cheapest (:func:`pick`; the
   report says which). The business rules alone are a setting of the grid (score order,
   no cap, no slot), so the report also gives every cost beyond them, and the choice the
   same budget would make counted from them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from shoprank.candidates.data import Catalog, as_datetime64, load_catalog, load_log
from shoprank.evaluation.metrics import Relevance, bootstrap_ci, intra_list_diversity, ndcg_at_k
from shoprank.evaluation.offline import (
    REFERENCE,
    CutoffLists,
    merge_cutoffs,
    query_table,
    reranked_lists,
)
from shoprank.ranking.config import RankerConfig
from shoprank.ranking.model import QUERY, RankerModel
from shoprank.ranking.rerank import RerankConfig
from shoprank.settings import Settings
from shoprank.training.generators import content_index, generator_factory, load_item_vectors
from shoprank.training.rankers import Progress

#: Largest share of the plain ranker's NDCG@10 the shown lists may give up.
BUDGET = 0.03
LAMBDAS = (1.0, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.5)
CAPS: tuple[int | None, ...] = (None, 8, 7, 6, 5, 4, 3)
#: Sampling seed of the tuning queries (early stopping samples the validation users with 99).
SEED = 199
CUT = 10
#: The RerankConfig keys the grid varies.
TUNED = ("mmr_lambda", "max_per_category", "new_arrival_positions")


@dataclass(frozen=True)
class Point:
    """One way of making the shown lists and what they scored on the validation queries.

    Attributes:
        label: Short name, e.g. ``mmr 0.90 / cap 4 / slot 4``.
        ndcg: Mean NDCG@10 of the shown ten.
        diversity: Mean intra-list diversity@10 (share of pairs in different leaves).
        new_arrivals: Share of lists showing at least one new arrival in the ten.
        setting: The post-ranking setting; None for the plain ranker's own lists.
        paired: Plain ranker minus this, per query: (mean, 95% low, 95% high).
    """

    label: str
    ndcg: float
    diversity: float
    new_arrivals: float = float("nan")
    setting: RerankConfig | None = None
    paired: tuple[float, float, float] | None = None

    def cost(self, reference: float) -> float:
        """Share of ``reference`` NDCG@10 this point gives up (0.03 = 3%)."""
        return 1.0 - self.ndcg / reference if reference > 0 else float("nan")

    def to_dict(self, reference: float, rules: float | None = None) -> dict:
        """JSON-ready: the tuned keys, the figures and the cost against ``reference``.

        ``rules`` is the NDCG@10 of the rules alone (no diversity, no slot); the cost beyond
        it is what diversity and the slot add.
        """
        out = {"label": self.label}
        if self.setting is not None:
            out |= {key: asdict(self.setting)[key] for key in TUNED}
        out |= {
            "ndcg@10": self.ndcg,
            "diversity@10": self.diversity,
            "new_arrival_lists": self.new_arrivals,
            "ndcg_cost": self.cost(reference),
        }
        if rules is not None:
            out["ndcg_cost_beyond_rules"] = self.cost(rules)
        if self.paired is not None:
            keys = ("value", "ci_low", "ci_high")
            out["ndcg_difference"] = dict(zip(keys, self.paired, strict=True))
        return out


def label_of(setting: RerankConfig) -> str:
    """``mmr 0.90 / cap 4 / slot 4`` (``cap none``, ``no slot``)."""
    cap = "none" if setting.max_per_category is None else setting.max_per_category
    positions = setting.new_arrival_positions
    slot = f"slot {','.join(map(str, positions))}" if positions else "no slot"
    return f"mmr {setting.mmr_lambda:.2f} / cap {cap} / {slot}"


def rules_only(setting: RerankConfig | None) -> bool:
    """Whether ``setting`` applies the business rules only (score order, no cap, no slot)."""
    return (
        setting is not None
        and setting.mmr_lambda == 1.0
        and setting.max_per_category is None
        and not setting.new_arrival_positions
    )


def setting_grid(
    base: RerankConfig,
    lambdas: Iterable[float] = LAMBDAS,
    caps: Iterable[int | None] = CAPS,
    slots: Iterable[tuple[int, ...]] = ((4,), ()),
) -> list[RerankConfig]:
    """Every (slot, cap, lambda) combination on top of ``base``'s other keys, deduplicated."""
    return [
        replace(base, mmr_lambda=float(lam), max_per_category=cap, new_arrival_positions=slot)
        for slot in dict.fromkeys(tuple(s) for s in slots)
        for cap in dict.fromkeys(caps)
        for lam in dict.fromkeys(lambdas)
    ]


def slot_variants(configured: tuple[int, ...], extra: Iterable[int] = ()) -> list[tuple[int, ...]]:
    """The configured slot positions, :class:`RerankConfig`'s, one at each ``extra`` and none.

    The default positions stay in the grid when the config turns the slot off, so a rerun
    still measures what the slot costs.
    """
    default = RerankConfig().new_arrival_positions
    variants = [tuple(configured), default, *((int(p),) for p in extra), ()]
    return list(dict.fromkeys(variants))


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both NDCG@10 and diversity, by diversity.

    A point is dominated when another is at least as good on both and better on one;
    of exact duplicates only the first is kept.
    """
    front = []
    for i, p in enumerate(points):
        dominated = any(
            q.ndcg >= p.ndcg
            and q.diversity >= p.diversity
            and (q.ndcg > p.ndcg or q.diversity > p.diversity or j < i)
            for j, q in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p.diversity, -p.ndcg))


def choose(points: Sequence[Point], reference: float, budget: float = BUDGET) -> Point | None:
    """The most diverse point costing at most ``budget`` of ``reference`` NDCG@10.

    Ties on diversity go to the higher NDCG@10, so the choice is on the Pareto front.
    None when no point is within the budget.
    """
    within = [p for p in points if p.ndcg >= (1.0 - budget) * reference]
    return max(within, key=lambda p: (p.diversity, p.ndcg), default=None)


@dataclass(frozen=True)
class Choice:
    """The chosen setting and how it was reached (see :func:`pick`).

    Attributes:
        point: The chosen point.
        slot_kept: It has the configured new-arrival slot.
        within_budget: It costs at most the budget; False when no setting does and this is
            the cheapest one instead.
    """

    point: Point
    slot_kept: bool
    within_budget: bool

    def to_dict(self, reference: float, rules: float | None = None) -> dict:
        """JSON-ready: the point, and the two flags."""
        flags = {"slot_kept": self.slot_kept, "within_budget": self.within_budget}
        return self.point.to_dict(reference, rules) | flags


def pick(
    points: Sequence[Point], reference: float, slot: tuple[int, ...], budget: float = BUDGET
) -> Choice | None:
    """:func:`choose` among the points with the ``slot`` positions, else among all points.

    When no point is within the budget, the cheapest one (highest NDCG@10) is returned,
    flagged ``within_budget=False``; None only for no points at all.
    """

    def has_slot(point: Point) -> bool:
        return bool(slot) and point.setting.new_arrival_positions == slot

    if slot:
        chosen = choose([p for p in points if has_slot(p)], reference, budget)
        if chosen is not None:
            return Choice(chosen, True, True)
    chosen = choose(points, reference, budget)
    if chosen is not None:
        return Choice(chosen, has_slot(chosen), True)
    cheapest = max(points, key=lambda p: (p.ndcg, p.diversity), default=None)
    return Choice(cheapest, has_slot(cheapest), False) if cheapest else None


@dataclass
class ValidationQueries:
    """The validation queries, ranked: what every setting of the grid re-ranks.

    ``parts`` hold each cutoff's labels (their examples were dropped once scored),
    ``scored`` the ranker's score of every candidate per cutoff, ``plain`` the ranker's
    own lists, ``relevance`` what the users did and ``cutoffs`` each query's cutoff,
    rows in :func:`~shoprank.evaluation.offline.query_table` order.
    """

    parts: list
    scored: list[pd.DataFrame]
    plain: np.ndarray
    relevance: Relevance
    cutoffs: np.ndarray


def rank_validation(
    settings: Settings,
    config: RankerConfig,
    catalog: Catalog,
    model: RankerModel,
    vectors: np.ndarray,
    users: int,
    log: Progress = None,
) -> ValidationQueries:
    """Query ``users`` users over the validation cutoffs with every candidate and rank them."""
    from shoprank.ranking.examples import rolling_examples

    splits = settings.splits
    period = (splits.validation_start, splits.test_start, config.validation_step_days, users)
    scorer = CutoffLists({REFERENCE: model}, kept_queries=0, log=log)
    parts = rolling_examples(
        settings,
        config.candidates_per_generator,
        catalog,
        generator_factory(vectors, content_index(settings, vectors, catalog)),
        period,
        SEED,
        each=scorer,
        user_batch=config.evaluation_user_batch,
    )
    table = query_table(parts)
    labels = merge_cutoffs(parts).labels
    relevance = Relevance.from_frame(
        labels.drop(columns="user_id").rename(
            columns={QUERY: "user_id", "product_id": "item_id", "label": "grade"}
        ),
        table[QUERY].to_numpy(),
    )
    cutoffs = np.asarray([as_datetime64(at) for at in table["cutoff"]], dtype="datetime64[us]")
    plain = scorer.merged()[REFERENCE]
    return ValidationQueries(parts, scorer.ranker_scores, plain, relevance, cutoffs)


@dataclass(frozen=True)
class ListScorer:
    """Scores shown lists of the validation queries against the plain ranker's.

    Attributes:
        relevance: What each query's user did in its window.
        categories: Leaf (``category_l2``) code per item id, for diversity.
        launched: Launch time per item id (NaT for unknown ids).
        cutoffs: Each query's cutoff.
        new_days: A product launched in ``(cutoff - new_days, cutoff]`` is a new arrival.
        plain: The plain ranker's NDCG@10 per query.
    """

    relevance: Relevance
    categories: np.ndarray
    launched: np.ndarray
    cutoffs: np.ndarray
    new_days: int
    plain: np.ndarray

    @classmethod
    def build(cls, queries: ValidationQueries, catalog: Catalog, new_days: int) -> ListScorer:
        """From the ranked validation queries and the catalog."""
        launched = np.full(catalog.n_items + 1, np.datetime64("NaT"), dtype="datetime64[us]")
        frame = catalog.frame["launched_at"]
        launched[frame.index.to_numpy()] = frame.to_numpy(dtype="datetime64[us]")
        plain = ndcg_at_k(queries.plain, queries.relevance, CUT)
        categories = catalog.codes("category_l2")
        return cls(queries.relevance, categories, launched, queries.cutoffs, new_days, plain)

    def point(
        self, shown: np.ndarray, label: str, setting: RerankConfig | None, n_boot: int = 1000
    ) -> Point:
        """NDCG@10, diversity@10 and new arrivals of ``shown``, paired with the plain lists."""
        top = shown[:, :CUT]
        mine = ndcg_at_k(top, self.relevance, CUT)
        diversity = intra_list_diversity(top, k=CUT, item_categories=self.categories)
        paired = bootstrap_ci(self.plain - mine, n_boot) if setting is not None else None
        return Point(
            label, float(mine.mean()), float(diversity.mean()), self.new(top), setting, paired
        )

    def new(self, top: np.ndarray) -> float:
        """Share of lists with at least one new arrival among their items."""
        at = self.launched[np.maximum(top, 0)]
        since = (self.cutoffs - np.timedelta64(self.new_days, "D"))[:, None]
        fresh = (top >= 0) & (at > since) & (at <= self.cutoffs[:, None])
        return float(fresh.any(axis=1).mean())


@dataclass
class TuningReport:
    """What ``shoprank tune rerank`` found (see the module docstring for the protocol)."""

    reference: Point
    points: list[Point]
    chosen: Choice | None
    budget: float
    protocol: dict
    configured: RerankConfig
    seconds: dict[str, float] = field(default_factory=dict)
    #: The same rule with the budget counted from the rules-only lists instead.
    beyond_rules: Choice | None = None

    @property
    def front(self) -> list[Point]:
        """The Pareto front of the grid (:func:`pareto_front`)."""
        return pareto_front(self.points)

    def front_with(self, slot: tuple[int, ...]) -> list[Point]:
        """The Pareto front of the grid's settings with the ``slot`` positions."""
        return pareto_front([p for p in self.points if p.setting.new_arrival_positions == slot])

    @property
    def rules(self) -> Point | None:
        """The grid's rules-only point (score order after the business rules)."""
        return next((p for p in self.points if rules_only(p.setting)), None)

    def to_dict(self) -> dict:
        """JSON-ready: protocol, the plain ranker, every point, the front and the choice."""
        ref = self.reference.ndcg
        rules = self.rules.ndcg if self.rules else None
        return {
            "protocol": self.protocol,
            "budget": self.budget,
            "reference": self.reference.to_dict(ref, rules),
            "rules_only": self.rules.to_dict(ref, rules) if self.rules else None,
            "configured": label_of(self.configured),
            "chosen": self.chosen.to_dict(ref, rules) if self.chosen else None,
            "chosen_with_budget_beyond_rules": (
                self.beyond_rules.to_dict(ref, rules) if self.beyond_rules else None
            ),
            "front": [p.label for p in self.front],
            "front_with_configured_slot": [
                p.label for p in self.front_with(self.configured.new_arrival_positions)
            ],
            "points": [p.to_dict(ref, rules) for p in self.points],
            "seconds": self.seconds,
        }


def run_tuning(
    settings: Settings,
    config: RankerConfig,
    users: int,
    tag: str | None = None,
    budget: float = BUDGET,
    extra_slots: Iterable[int] = (),
    log: Progress = None,
) -> TuningReport:
    """Rank the validation month once and score every post-ranking setting of the grid.

    The ranker is the one saved under the exact ``tag`` in the settings' model store, or
    (None) trained as ``shoprank train`` trains it. ``extra_slots`` adds a grid with one
    new-arrival slot at each of those positions.
    """
    say = log or (lambda _: None)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    catalog = load_catalog(settings.warehouse_path)
    say("embedding the catalog (cached by content hash)")
    vectors = load_item_vectors(settings, catalog)
    model = _ranker(settings, config, catalog, vectors, tag, say)
    seconds["ranker"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    say(f"validation queries with every candidate ({users:,} users)")
    queries = rank_validation(settings, config, catalog, model, vectors, users, say)
    seconds["validation_examples"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    splits = settings.splits
    events = load_log(settings.warehouse_path, splits.data_start, splits.test_start)
    scorer = ListScorer.build(queries, catalog, config.rerank.new_arrival_days)
    reference = scorer.point(queries.plain, "ranker (plain)", None)
    slots = slot_variants(config.rerank.new_arrival_positions, extra_slots)
    grid = setting_grid(config.rerank, slots=slots)
    points = []
    for i, setting in enumerate(grid, start=1):
        # Without MMR the vectors are not read: the same lists, faster.
        mine = vectors if setting.mmr_lambda < 1.0 else None
        tail = queries.plain[:, :CUT]
        shown = reranked_lists(queries.parts, queries.scored, catalog, setting, mine, events, tail)
        points.append(scorer.point(shown, label_of(setting), setting))
        say(_progress_line(i, len(grid), points[-1], reference.ndcg))
    seconds["grid"] = round(time.perf_counter() - started, 1)
    slot = config.rerank.new_arrival_positions
    ranker = f"loaded {tag}" if tag else "trained as `shoprank train` trains it"
    protocol = _protocol(settings, config, queries, ranker, users, len(grid))
    report = TuningReport(
        reference,
        points,
        pick(points, reference.ndcg, slot, budget),
        budget,
        protocol,
        config.rerank,
        seconds,
    )
    if report.rules is not None:
        report.beyond_rules = pick(points, report.rules.ndcg, slot, budget)
    return report


def _ranker(
    settings: Settings,
    config: RankerConfig,
    catalog: Catalog,
    vectors: np.ndarray,
    tag: str | None,
    say,
) -> RankerModel:
    """The saved ranker ``tag``, or one trained on the config's training cutoffs."""
    if tag:
        from shoprank.ranking.registry import load_ranker

        say(f"loading {tag}")
        return load_ranker(tag, settings.bentoml_home)
    from shoprank.training.rankers import train_rankers

    lean = replace(config, session_users_per_cutoff=None)  # the session ranker is not tuned
    trained = train_rankers(
        settings,
        lean,
        catalog,
        generator_factory(vectors, content_index(settings, vectors, catalog)),
        say,
    )
    return trained.models[REFERENCE]


def summary_lines(report: TuningReport) -> list[str]:
    """The front, the plain ranker and the choices, one line each, for the terminal."""
    ref = report.reference

    def figures(point: Point) -> str:
        change = -100 * point.cost(ref.ndcg)
        return f"NDCG@10 {point.ndcg:.4f} ({change:+.1f}%), diversity {point.diversity:.3f}"

    lines = [f"front: {p.label}: {figures(p)}" for p in report.front]
    lines.append(f"plain ranker: NDCG@10 {ref.ndcg:.4f}, diversity {ref.diversity:.3f}")
    choices = {"chosen": report.chosen, "budget counted from the rules": report.beyond_rules}
    for name, choice in choices.items():
        if choice is None:
            continue
        notes = [
            "with the configured slot" if choice.slot_kept else "without the configured slot",
            "within budget" if choice.within_budget else "none within budget: the cheapest",
        ]
        lines.append(f"{name}: {choice.point.label} ({', '.join(notes)}): {figures(choice.point)}")
    return lines


def _progress_line(i: int, n: int, point: Point, reference: float) -> str:
    return (
        f"[{i}/{n}] {point.label}: NDCG@10 {point.ndcg:.4f} "
        f"({-100 * point.cost(reference):+.1f}%), diversity {point.diversity:.3f}"
    )


def _protocol(
    settings: Settings,
    config: RankerConfig,
    queries: ValidationQueries,
    ranker: str,
    users: int,
    n_settings: int,
) -> dict:
    """How the figures were made, for the JSON report."""
    splits = settings.splits
    return {
        "period": f"[{splits.validation_start:%Y-%m-%d}, {splits.test_start:%Y-%m-%d})",
        "cutoffs": [f"{p.cutoff.at:%Y-%m-%d} +{p.cutoff.horizon_days}d" for p in queries.parts],
        "users_requested": users,
        "queries": int(queries.relevance.n_users),
        "sampling_seed": SEED,
        "candidates": "every candidate of the union (no sampled negatives)",
        "metrics": "NDCG@10 (graded) and intra-list diversity@10 over leaf categories "
        "(category_l2) of the ten shown positions; paired = plain ranker minus setting "
        "per query, 95% bootstrap interval (1,000 resamples)",
        "rule": "highest diversity@10 (ties: higher NDCG@10) with NDCG@10 >= (1 - budget) x "
        "the plain ranker's, among settings with the configured new-arrival slot if any "
        "qualifies, else among all settings; if none qualifies, the highest NDCG@10 "
        "(within_budget: false)",
        "settings": n_settings,
        "fixed": {k: v for k, v in asdict(config.rerank).items() if k not in TUNED},
        "ranker": ranker,
    }


def plot_pareto(report: TuningReport, path: Path | str) -> Path:
    """NDCG@10 against diversity@10: every setting, the front, the plain ranker and the choice.

    Uses the Agg canvas directly (no pyplot, no global backend switch).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _plot_grid(ax, report)
    _plot_marks(ax, report)
    ax.set_xlabel("intra-list diversity@10 (share of item pairs in different leaf categories)")
    ax.set_ylabel("NDCG@10 of the ten shown positions")
    ax.set_title(
        f"Post-ranking on the validation month ({report.protocol['queries']:,} queries): "
        f"the most diverse within {report.budget:.0%} of the plain ranker's NDCG@10"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower left")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def _plot_grid(ax, report: TuningReport) -> None:
    """Every grid point and the front of each slot variant; the overall front labelled."""
    slots = dict.fromkeys(p.setting.new_arrival_positions for p in report.points)
    for slot, (marker, color) in zip(slots, MARKERS, strict=False):
        mine = [p for p in report.points if p.setting.new_arrival_positions == slot]
        name = f"slot at {','.join(map(str, slot))}" if slot else "no slot"
        xs, ys = [p.diversity for p in mine], [p.ndcg for p in mine]
        ax.scatter(xs, ys, marker=marker, color=color, s=24, alpha=0.45, label=f"grid, {name}")
        front = report.front_with(slot)
        xs, ys = [p.diversity for p in front], [p.ndcg for p in front]
        ax.plot(xs, ys, "-", color=color, linewidth=1.2, label=f"Pareto front, {name}")
    front = report.front
    xs, ys = [p.diversity for p in front], [p.ndcg for p in front]
    ax.plot(xs, ys, "o", color="#c44e52", markersize=5, label="Pareto front, all settings")
    for p in _spread(front):
        offset = {"xytext": (4, 3), "textcoords": "offset points"}
        ax.annotate(p.label, (p.diversity, p.ndcg), fontsize=6.5, **offset)


def _spread(points: Sequence[Point], gap: float = 0.045) -> list[Point]:
    """The points to label: each at least ``gap`` (in shares of the axes) from the others."""
    if not points:
        return []
    xs = np.array([p.diversity for p in points])
    ys = np.array([p.ndcg for p in points])
    scale = np.array([np.ptp(xs) or 1.0, np.ptp(ys) or 1.0])
    kept: list[int] = []
    for i in range(len(points)):
        here = np.array([xs[i], ys[i]]) / scale
        if all(np.hypot(*(here - np.array([xs[j], ys[j]]) / scale)) >= gap for j in kept):
            kept.append(i)
    return [points[i] for i in kept]


#: (marker, colour) per slot variant in the plot.
MARKERS = (("o", "#4c72b0"), ("s", "#dd8452"), ("^", "#55a868"), ("D", "#8c8c8c"))


def _plot_marks(ax, report: TuningReport) -> None:
    """The plain ranker, the budget line, the configured setting and the chosen one."""
    ref = report.reference
    ax.scatter([ref.diversity], [ref.ndcg], marker="*", s=240, color="black", label=ref.label)
    floor = (1 - report.budget) * ref.ndcg
    budget = f"budget: {1 - report.budget:.0%} of the plain ranker's NDCG@10"
    ax.axhline(floor, color="grey", linestyle="--", linewidth=1, label=budget)
    configured = next((p for p in report.points if p.setting == report.configured), None)
    if configured is not None:
        ax.scatter(
            [configured.diversity],
            [configured.ndcg],
            marker="X",
            s=130,
            color="#8172b2",
            label=f"configured when run ({configured.label})",
        )
    if report.beyond_rules is not None and report.beyond_rules != report.chosen:
        other = report.beyond_rules.point
        ax.scatter(
            [other.diversity],
            [other.ndcg],
            marker="D",
            s=200,
            facecolors="none",
            edgecolors="#937860",
            linewidths=2,
            zorder=5,
            label=f"same budget counted from the rules alone ({other.label})",
        )
    if report.chosen is not None:
        chosen = report.chosen.point
        ax.scatter(
            [chosen.diversity],
            [chosen.ndcg],
            s=320,
            facecolors="none",
            zorder=5,
            edgecolors="#2ca02c",
            linewidths=2.5,
            label=f"chosen ({chosen.label})"
            + ("" if report.chosen.within_budget else ": none within budget, the cheapest"),
        )
