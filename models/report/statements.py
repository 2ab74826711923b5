"""The top box of a scene, in words: which family of metrics the ranking rests on, the best methods by it, which
NVS-SQA scores are flagged (and so neither compared nor ranked), how many JOD comparisons its blind spots
withheld, and whether NVS-SQA agrees with the full-reference metrics (from the pairs both decided and Kendall tau).
Every statement is made from the decisions, never from a point value alone."""

from __future__ import annotations

from collections.abc import Sequence

from models.report import stats
from models.report.records import Agreement, MetricSummary
from models.report.series import CROSSSCORE, FULL_REFERENCE, JOD

FLAG = "⚠"


def basis(metrics: Sequence[MetricSummary]) -> tuple[str, list[MetricSummary]]:
    """The sentence naming the family the ranking rests on, and its metrics."""
    full = [m for m in metrics if m.info.family == FULL_REFERENCE]
    if full:
        beside = ("; NVS-SQA (no reference) is shown beside them — where they disagree, trust the full-reference "
                  "metrics" if any(m.info.key == JOD for m in metrics) else "")
        return (f"With ground truth, the ranking rests on the full-reference metrics "
                f"({', '.join(m.info.key for m in full)}){beside}.", full)  # fmt: skip
    jod = [m for m in metrics if m.info.key in (JOD, CROSSSCORE)]
    if any(m.info.key == CROSSSCORE for m in jod):
        return "No ground truth: the ranking rests on NVS-SQA (no reference) and CrossScore (reference photos).", jod
    return ("No ground truth: the ranking rests on NVS-SQA alone (no reference). It scores noise higher the "
            f"stronger it is and does not see JPEG artefacts: scores it flags are marked {FLAG} and neither "
            "compared nor ranked.", jod)  # fmt: skip


def best(metrics: Sequence[MetricSummary]) -> str:
    """The methods ranked first on each metric of the basis (a shared first rank is a tie, said so)."""
    parts = []
    for m in metrics:
        top = [n for n in m.order() if m.entries[n].rank == 1]
        if not top:
            continue
        ranked = sum(e.rank is not None for e in m.entries.values())
        if len(top) == ranked:
            parts.append(f"{m.info.key}: no method is decisively better than another")
        else:
            parts.append(f"{m.info.key}: {', '.join(top)}" + (" (tied)" if len(top) > 1 else ""))
    return "Best — " + "; ".join(parts) + "." if parts else ""


def flagged(metrics: Sequence[MetricSummary]) -> list[str]:
    """One statement per flagged NVS-SQA score, and one for the comparisons its blind spots withheld."""
    jod = next((m for m in metrics if m.info.key == JOD), None)
    if jod is None:
        return []
    out = [f"{FLAG} {name}: NVS-SQA score not to be trusted — {'; '.join(e.flags)}. Not compared, not ranked on JOD."
           for name, e in jod.entries.items() if e.flags]
    withheld = sorted({tuple(sorted((a, b))) for (a, b), c in jod.pairs.items() if c.reason == stats.BIASED})
    if withheld:
        pairs = ", ".join(f"{a} vs {b}" for a, b in withheld)
        out.append(f"{len(withheld)} NVS-SQA comparison(s) not decided because of its blind spots ({pairs}): the "
                   "difference could come from noise or JPEG artefacts the model rewards or does not see.")
    return out


def agreement_sentence(agreement: Sequence[Agreement], metrics: Sequence[MetricSummary]) -> str:
    """Does NVS-SQA agree with the full-reference metrics? In words, from the pairs both decided and tau."""
    full = {m.info.key for m in metrics if m.info.family == FULL_REFERENCE}
    rows = [a for a in agreement if {a.a, a.b} & full and JOD in (a.a, a.b)]
    if not rows:
        return ""
    same, opposite = sum(a.same for a in rows), sum(a.opposite for a in rows)
    taus = [a.tau for a in rows if a.tau is not None]
    tau = f" (Kendall τ {min(taus):.2f} to {max(taus):.2f})" if taus else ""
    if same + opposite == 0:
        return (f"NVS-SQA and the full-reference metrics decide no pair in common: nothing to agree or disagree "
                f"on{tau}.")
    if opposite == 0:
        return f"NVS-SQA agrees with the full-reference metrics: every pair both decide is ordered the same way " \
               f"({same} decision(s)){tau}."
    if same == 0:
        return f"NVS-SQA contradicts the full-reference metrics: it orders every pair both decide the other way " \
               f"({opposite} decision(s)){tau}."
    return (f"NVS-SQA partly agrees with the full-reference metrics: of the decisions both make, {same} order a pair "
            f"the same way and {opposite} the opposite way{tau}.")


def statements(metrics: Sequence[MetricSummary], agreement: Sequence[Agreement]) -> list[str]:
    """The top box of one scene, one statement per line."""
    text, base = basis(metrics)
    out = [text, best(base), *flagged(metrics), agreement_sentence(agreement, metrics)]
    cs = next((m for m in metrics if m.info.key == CROSSSCORE), None)
    if cs is not None:
        out += sorted({f"{FLAG} CrossScore: {f}" for e in cs.entries.values() for f in e.flags})
    return [s for s in out if s]
