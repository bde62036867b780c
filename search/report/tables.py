"""The report's HTML tables: the best trials side by side, and the failed trials with why."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from optuna.trial import FrozenTrial

from search.console import trial_seconds
from search.ranking import validation_interval
from search.report.facts import (
    METRIC,
    StudyFacts,
    epochs_run,
    is_baseline,
    no_complete_note,
    worker_of,
)
from search.report.section import Section

TOP_TRIALS = 10
# Section titles.
TOP = f"Top {TOP_TRIALS} trials"
FAILED = "Failed trials"

ValueOf = Callable[[FrozenTrial], str]


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _format_weights(count: Any) -> str:
    if not isinstance(count, int | float):
        return "–"
    return f"{count / 1e6:.2f} M" if count >= 1e6 else f"{count / 1e3:.0f} k"


def top_trials_section(facts: StudyFacts) -> Section:
    """The best complete trials side by side (one column each), the seed baseline among them."""
    title = TOP
    if not facts.complete:
        return Section(title, note=no_complete_note(facts))
    columns = facts.complete[:TOP_TRIALS]
    if facts.baseline in facts.complete and facts.baseline not in columns:
        columns = [*columns, facts.baseline]
    return Section(
        title,
        body=_top_table(columns, _result_rows(facts)),
        caption="Complete trials ranked by validation AUC at their best epoch (epochs count "
        "from 1); seconds (wall) is the trial's duration, training and validation together.",
    )


def _result_rows(facts: StudyFacts) -> list[tuple[str, ValueOf]]:
    """The rows above the parameters: each a name and how to read it off one trial."""
    baseline_value = facts.baseline.value if facts.baseline in facts.complete else None

    def gain(trial: FrozenTrial) -> str:
        if baseline_value is None or is_baseline(trial):
            return "–"
        return f"{trial.value - baseline_value:+.4f}"

    def interval(trial: FrozenTrial) -> str:
        bounds = validation_interval(facts.study, trial)
        return "–" if bounds is None else f"{bounds[0]:.3f}–{bounds[1]:.3f}"

    def seconds(trial: FrozenTrial) -> str:
        wall = trial_seconds(trial)
        return f"{wall:.1f}" if wall is not None else "–"

    return [
        ("rank", lambda t: str(facts.complete.index(t) + 1)),
        (METRIC, lambda t: f"{t.value:.4f}"),
        ("95% interval", interval),
        ("vs seed baseline", gain),
        ("epochs run", lambda t: str(epochs_run(t))),
        ("best epoch", lambda t: str(t.user_attrs.get("best_epoch", "–"))),
        ("seconds (wall)", seconds),
        ("size (weights)", lambda t: _format_weights(t.user_attrs.get("params_count"))),
    ]


def _top_table(columns: list[FrozenTrial], results: list[tuple[str, ValueOf]]) -> str:
    """One column per trial: the result rows, then a row per parameter any of them has."""
    param_names = list(dict.fromkeys(name for t in columns for name in t.params))
    header = (
        "<tr>"
        + _cell("th", "trial")
        + "".join(
            _cell("th", f"#{t.number}" + (" seed baseline" if is_baseline(t) else ""), t)
            for t in columns
        )
    )
    body = [_row(name, value_of, columns) for name, value_of in results]
    body.append(f"<tr class='group'><th colspan='{len(columns) + 1}'>parameters</th>")
    body += [
        _row(name, lambda t, name=name: _format_value(t.params.get(name, "–")), columns)
        for name in param_names
    ]
    return (
        "<div class='table-wrap'><table class='top'><thead>"
        + header
        + "</thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def _cell(tag: str, text: str, trial: FrozenTrial | None = None) -> str:
    css = " class='baseline'" if trial is not None and is_baseline(trial) else ""
    return f"<{tag}{css}>{html.escape(text)}</{tag}>"


def _row(name: str, value_of: ValueOf, columns: list[FrozenTrial]) -> str:
    return "<tr>" + _cell("th", name) + "".join(_cell("td", value_of(t), t) for t in columns)


def failed_section(facts: StudyFacts) -> Section | None:
    if not facts.failed:
        return None
    rows = "".join(
        f"<tr><td>{t.number}</td><td class='text'>{html.escape(worker_of(t))}</td>"
        "<td class='text'>"
        f"{html.escape(str(t.user_attrs.get('fail_reason', 'see the search log')))}</td></tr>"
        for t in facts.failed
    )
    table = (
        "<div class='table-wrap'><table><thead><tr><th>trial</th><th class='text'>worker</th>"
        f"<th class='text'>reason</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
    return Section(f"{FAILED} ({len(facts.failed)})", body=table)
