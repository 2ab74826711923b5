"""The scene report's records: what the statistics decided, carried to the page, report.csv and report.json (which
turn them into dicts). Made by :mod:`models.report.summary`."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.report import stats
from models.report.failures import Failures
from models.report.series import FULL_REFERENCE, JOD_UNITS, MetricInfo
from models.report.stats import Comparison, Estimate


@dataclass(frozen=True)
class Entry:
    """One method on one metric: the headline value, the mean of its units with an interval, its rank (None: not
    ranked, ``unranked_why`` says why), why the value may not be trusted and the units left out."""

    value: float
    estimate: Estimate
    rank: int | None
    flags: tuple[str, ...] = ()
    excluded: dict[str, int] = field(default_factory=dict)
    unranked_why: str = ""


@dataclass(frozen=True)
class MetricSummary:
    info: MetricInfo
    entries: dict[str, Entry]
    pairs: dict[tuple[str, str], Comparison]

    def order(self) -> list[str]:
        """Methods by rank (ties by value, best first), unranked methods last."""
        sign = 1.0 if self.info.higher_is_better else -1.0
        return sorted(self.entries, key=lambda n: (self.entries[n].rank is None, self.entries[n].rank or 0,
                                                   -sign * self.entries[n].value))  # fmt: skip

    def prefer(self, c: Comparison) -> float | None:
        """Share of observers expected to prefer A (JOD-unit metrics, where the comparison weighed the evidence)."""
        if self.info.key not in JOD_UNITS or c.reason in (*stats.UNRANKED, stats.BIASED):
            return None
        return stats.preference(c.delta)


@dataclass(frozen=True)
class Agreement:
    """Two metrics over the methods both have: Kendall tau of their values, and of the pairs both decided, how
    many they order the same way and how many the opposite way."""

    a: str
    b: str
    methods: int
    tau: float | None
    same: int
    opposite: int


@dataclass(frozen=True)
class SceneSummary:
    scene: str
    metrics: list[MetricSummary]
    agreement: list[Agreement]
    failures: dict[str, Failures]
    statements: list[str]  # the top box, in words (plain text)

    def metric(self, key: str) -> MetricSummary | None:
        return next((m for m in self.metrics if m.info.key == key), None)

    def full_reference(self) -> list[MetricSummary]:
        """The metrics made against ground truth."""
        return [m for m in self.metrics if m.info.family == FULL_REFERENCE]
