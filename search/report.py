"""One HTML page per study: what the search found, what it cost and what pruning saved.

``python -m search.report --study NAME`` writes ``studies/<study>/report.html``; a search writes
the same page when it ends (``write_report``). plotly.js is embedded once, so the page opens
offline. Every section copes with an empty, failed-only or still-running study: where a plot
has nothing to show, the page says why instead.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import math
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
import plotly.offline
from optuna.trial import FrozenTrial, TrialState

from pcam.cli import command_parser
from pcam.errors import DataError, preview, run_cli
from search.config import STORAGE_ENV, SearchConfig, redacted, spoken_duration
from search.priors import SEED_BASELINE_ROLE
from search.ranking import validation_interval
from search.study import OPENING_ERRORS

METRIC = "validation AUC"
BASELINE_ROLE = SEED_BASELINE_ROLE
TOP_TRIALS = 10
SLICE_PARAMS = 4
PARALLEL_PARAMS = 8
TEMPLATE = "plotly_white"
COLOURS = {
    "complete": "#4c78a8",
    "best": "#2ca02c",
    "baseline": "#f58518",
    "pruned": "#9d9da1",
    "pruned_end": "#d62728",
    "running": "#9467bd",
    "failed": "#54585a",
}
PRUNING_EXPLAINED = (
    "<p class='explain'>Pruning estimate: for every pruned trial, the epochs it was set to run "
    "(the study's epoch budget) minus the epochs it ran, times its own measured seconds "
    "per epoch (training and validation). It assumes the skipped epochs would have cost what the "
    "run ones did, and ignores that the search spent the time saved on other trials.</p>"
)
# Section titles, in page order.
HISTORY = "Optimization history"
CURVES = "Learning curves"
TOP = f"Top {TOP_TRIALS} trials"
COST = "What a better model costs"
IMPORTANCES = "Hyperparameter importances"
PARALLEL = "Parallel coordinates"
SLICES = "Slice plots"
TIMELINE = "Timeline"
FAILED = "Failed trials"
STATE_NAMES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
}
STATE_COLOURS = {
    TrialState.COMPLETE: COLOURS["complete"],
    TrialState.PRUNED: COLOURS["pruned"],
    TrialState.FAIL: COLOURS["pruned_end"],
    TrialState.RUNNING: COLOURS["running"],
}


@dataclass(frozen=True)
class Section:
    """One part of the page: a figure or an HTML body, or a note on why there is none."""

    title: str
    figure: go.Figure | None = None
    body: str = ""  # trusted HTML (built here, values escaped)
    note: str = ""  # plain text: why the section is empty
    caption: str = ""  # plain text under the figure


@dataclass(frozen=True)
class Pruning:
    """The estimate of what pruning saved (see ``pruning_savings``)."""

    seconds: float
    epochs: int
    estimated_trials: int
    unmeasured_trials: int


@dataclass
class StudyFacts:
    """A study's trials, sorted into what every section needs."""

    study: optuna.Study
    trials: list[FrozenTrial]
    complete: list[FrozenTrial] = field(init=False)  # best first
    pruned: list[FrozenTrial] = field(init=False)
    failed: list[FrozenTrial] = field(init=False)
    running: list[FrozenTrial] = field(init=False)
    baseline: FrozenTrial | None = field(init=False)

    def __post_init__(self) -> None:
        by_state = {state: [t for t in self.trials if t.state == state] for state in TrialState}
        self.complete = sorted(
            by_state[TrialState.COMPLETE], key=lambda t: t.value, reverse=self.maximize
        )
        self.pruned = by_state[TrialState.PRUNED]
        self.failed = by_state[TrialState.FAIL]
        self.running = by_state[TrialState.RUNNING]
        self.baseline = next((t for t in self.trials if is_baseline(t)), None)

    @property
    def maximize(self) -> bool:
        return self.study.direction == optuna.study.StudyDirection.MAXIMIZE

    @property
    def best(self) -> FrozenTrial | None:
        return self.complete[0] if self.complete else None

    @property
    def max_epochs(self) -> int | None:
        return self.study.user_attrs.get("study_defining", {}).get("max_epochs")


def is_baseline(trial: FrozenTrial) -> bool:
    return trial.user_attrs.get("role") == BASELINE_ROLE


def duration_seconds(trial: FrozenTrial) -> float | None:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return None
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def epochs_run(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get("epochs_run", len(trial.intermediate_values)))


def pruning_savings(trials: list[FrozenTrial], *, max_epochs: int | None) -> Pruning:
    """Σ over pruned trials of (epochs the trial was to run − epochs it ran) × its s/epoch.

    A trial pruned before its first epoch (a model over ``--max-params``) measured no epoch
    time: it is counted in ``unmeasured_trials``, not in the estimate.
    """
    seconds, epochs, estimated, unmeasured = 0.0, 0, 0, 0
    for trial in trials:
        if trial.state != TrialState.PRUNED:
            continue
        planned = trial.params.get("epochs", max_epochs)
        per_epoch = trial.user_attrs.get("seconds_per_epoch")
        if planned is None or per_epoch is None or epochs_run(trial) == 0:
            unmeasured += 1
            continue
        if max_epochs is not None:
            planned = min(int(planned), max_epochs)
        skipped = max(int(planned) - epochs_run(trial), 0)
        seconds += skipped * float(per_epoch)
        epochs += skipped
        estimated += 1
    return Pruning(seconds, epochs, estimated, unmeasured)


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _format_weights(count: Any) -> str:
    if not isinstance(count, int | float):
        return "–"
    return f"{count / 1e6:.2f} M" if count >= 1e6 else f"{count / 1e3:.0f} k"


def _style(
    fig: go.Figure, *, title: str, x: str | None, y: str | None, height: int = 420
) -> go.Figure:
    """One look for every figure; ``None`` keeps the axis titles the figure has."""
    fig.update_layout(
        template=TEMPLATE,
        title={
            "text": title,
            "x": 0.01,
            "xanchor": "left",
            "y": 0.98,
            "yanchor": "top",
            "yref": "container",
        },
        height=height,
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
    )
    if x is not None:
        fig.update_xaxes(title_text=x)
    if y is not None:
        fig.update_yaxes(title_text=y)
    return fig


def history_section(facts: StudyFacts) -> Section:
    """Every finished trial's value in order, the best so far, the seed baseline marked."""
    title = HISTORY
    if not facts.complete:
        return Section(title, note=_no_complete_note(facts))
    fig = optuna.visualization.plot_optimization_history(facts.study, target_name=METRIC)
    fig.update_traces(
        selector={"name": METRIC},
        name="complete trial",
        marker={"color": COLOURS["complete"], "size": 7},
    )
    fig.update_traces(
        selector={"name": "Best Value"},
        name="best so far",
        line={"color": COLOURS["best"], "width": 2.5},
    )
    pruned = [t for t in facts.pruned if t.value is not None]
    if pruned:
        fig.add_trace(
            go.Scatter(
                x=[t.number for t in pruned],
                y=[t.value for t in pruned],
                mode="markers",
                name="pruned (last reported AUC)",
                marker={"symbol": "x", "color": COLOURS["pruned_end"], "size": 7, "opacity": 0.6},
                hovertemplate="trial %{x} pruned<br>last AUC %{y:.4f}<extra></extra>",
            )
        )
    baseline = facts.baseline
    if baseline is not None and baseline.value is not None:
        fig.add_trace(
            go.Scatter(
                x=[baseline.number],
                y=[baseline.value],
                mode="markers",
                name="seed baseline",
                marker={
                    "symbol": "star",
                    "size": 16,
                    "color": COLOURS["baseline"],
                    "line": {"color": "black", "width": 1},
                },
                hovertemplate="seed baseline (trial %{x})<br>AUC %{y:.4f}<extra></extra>",
            )
        )
        fig.add_hline(
            y=baseline.value,
            line={"dash": "dot", "color": COLOURS["baseline"]},
            annotation_text=f"seed baseline {baseline.value:.4f}",
            annotation_position="bottom right",
        )
    _style(fig, title="Validation AUC by trial", x="trial number", y=f"{METRIC} (best epoch)")
    if len(facts.trials) <= 20:
        fig.update_xaxes(dtick=1)
    return Section(
        title,
        fig,
        caption="Each complete trial scores its best epoch's validation ROC AUC; the line is "
        "the best so far. Pruned trials sit at the last AUC they reported before being stopped.",
    )


def _trial_label(trial: FrozenTrial) -> str:
    return f"trial {trial.number}" + (" (seed baseline)" if is_baseline(trial) else "")


def cost_section(facts: StudyFacts) -> Section:
    """Best validation AUC of every finished trial against the seconds it trained."""
    title = COST
    finished = [
        t
        for t in (*facts.complete, *facts.pruned)
        if t.value is not None and duration_seconds(t) is not None
    ]
    if not finished:
        return Section(title, note=_no_complete_note(facts))
    fig = go.Figure()
    for state, trials in (
        ("complete", [t for t in finished if t.state == TrialState.COMPLETE]),
        ("pruned", [t for t in finished if t.state == TrialState.PRUNED]),
    ):
        if not trials:
            continue
        best_seen = [max(t.intermediate_values.values(), default=t.value) for t in trials]
        errors = [validation_interval(facts.study, t) for t in trials]
        fig.add_trace(
            go.Scatter(
                x=[duration_seconds(t) / 60 for t in trials],
                y=best_seen,
                error_y=None
                if None in errors
                else {
                    "type": "data",
                    "symmetric": False,
                    "array": [high - v for (_, high), v in zip(errors, best_seen, strict=True)],
                    "arrayminus": [v - low for (low, _), v in zip(errors, best_seen, strict=True)],
                    "thickness": 1,
                    "width": 0,
                },
                mode="markers",
                name=f"{state} trial",
                text=[_trial_label(t) for t in trials],
                marker={
                    "color": COLOURS[state],
                    "size": [14 if is_baseline(t) else 8 for t in trials],
                    "symbol": ["star" if is_baseline(t) else "circle" for t in trials],
                },
                hovertemplate="%{text}<br>%{x:.1f} min<br>best AUC %{y:.4f}<extra></extra>",
            )
        )
    _style(fig, title="Validation AUC against minutes", x="minutes (wall)", y=METRIC)
    return Section(
        title,
        fig,
        caption="Each finished trial at its wall time and its best validation AUC (pruned "
        "trials: the best they reached before being stopped), with its 95% interval "
        "(Hanley–McNeil, from the validation class counts). A model further right cost more "
        "compute; one whose interval overlaps the best's is not shown to be worse.",
    )


def learning_curves_section(facts: StudyFacts) -> Section:
    """Validation AUC per epoch of every trial; pruned trials dashed and ending in an ×."""
    title = CURVES
    curves = [t for t in facts.trials if t.intermediate_values]
    if not curves:
        return Section(title, note="No trial has reported a validation AUC for an epoch yet.")
    best = facts.best
    fig = go.Figure()
    shown: set[str] = set()
    on_top = {t.number for t in (best, facts.baseline) if t is not None}
    for trial in sorted(curves, key=lambda t: (t.number in on_top, t.number)):
        steps = sorted(trial.intermediate_values)
        epochs = [step + 1 for step in steps]
        values = [trial.intermediate_values[step] for step in steps]
        group, colour, width, dash = _curve_style(trial, best)
        end_symbol, end_colour = "circle", colour
        if trial.state == TrialState.PRUNED:
            end_symbol, end_colour = "x", COLOURS["pruned_end"]
        elif trial.state == TrialState.RUNNING:
            end_symbol = "circle-open"
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=values,
                mode="lines+markers",
                name=group,
                legendgroup=group,
                showlegend=group not in shown,
                line={"color": colour, "width": width, "dash": dash},
                opacity=1.0 if width > 2 else 0.7,
                marker={
                    "symbol": ["circle"] * (len(values) - 1) + [end_symbol],
                    "size": [4] * (len(values) - 1) + [9 if end_symbol == "x" else 6],
                    "color": [colour] * (len(values) - 1) + [end_colour],
                },
                hovertemplate=f"trial {trial.number} ({STATE_NAMES.get(trial.state, '?')})"
                "<br>epoch %{x}: AUC %{y:.4f}<extra></extra>",
            )
        )
        shown.add(group)
    _style(fig, title="Validation AUC per epoch", x="epoch", y=METRIC)
    fig.update_xaxes(dtick=1)
    return Section(
        title,
        fig,
        caption="One line per trial (epoch 1 is Optuna step 0). Dashed lines ending in a red × "
        "were pruned there; the best trial and the seed baseline are drawn thick.",
    )


def _curve_style(trial: FrozenTrial, best: FrozenTrial | None) -> tuple[str, str, float, str]:
    """Legend group, colour, width and dash of one trial's learning curve."""
    if best is not None and trial.number == best.number:
        return f"best (trial {trial.number})", COLOURS["best"], 3.5, "solid"
    if is_baseline(trial):
        return "seed baseline", COLOURS["baseline"], 3.0, "solid"
    if trial.state == TrialState.PRUNED:
        return "pruned", COLOURS["pruned"], 1.2, "dash"
    if trial.state == TrialState.RUNNING:
        return "running", COLOURS["running"], 1.5, "dot"
    if trial.state == TrialState.FAIL:
        return "failed", COLOURS["failed"], 1.2, "dot"
    return "complete", COLOURS["complete"], 1.5, "solid"


def _evaluator() -> optuna.importance.BaseImportanceEvaluator:
    """PED-ANOVA: ships with Optuna (fANOVA needs scikit-learn) and is deterministic."""
    return optuna.importance.PedAnovaImportanceEvaluator()


def importances(facts: StudyFacts) -> tuple[dict[str, float], str]:
    """Importances over complete trials, or ({}, why there are none)."""
    if len(facts.complete) < 2:
        return {}, (f"Drawn from 2 or more complete trials; this study has {len(facts.complete)}.")
    if len({t.value for t in facts.complete}) < 2:
        return {}, "Every complete trial scored the same: no parameter can be ranked."
    try:
        found = optuna.importance.get_param_importances(facts.study, evaluator=_evaluator())
    except (RuntimeError, ValueError) as error:
        return {}, f"Optuna could not compute importances: {error}"
    if not found or not any(math.isfinite(v) and v > 0 for v in found.values()):
        return {}, "The complete trials do not vary their parameters enough to rank them."
    return found, ""


def importance_section(facts: StudyFacts, found: dict[str, float], why_not: str) -> Section:
    title = IMPORTANCES
    if not found:
        return Section(title, note=why_not)
    fig = optuna.visualization.plot_param_importances(
        facts.study,
        evaluator=_evaluator(),
        target_name=METRIC,
    )
    fig.update_traces(marker_color=COLOURS["complete"])
    _style(
        fig,
        title=f"Hyperparameter importances (PED-ANOVA, {len(facts.complete)} complete trials)",
        x="importance for reaching the top 10% of validation AUC (sums to 1)",
        y="hyperparameter",
        height=max(320, 26 * len(found) + 120),
    )
    return Section(
        title,
        fig,
        caption="How differently each parameter is distributed among the best 10% of complete "
        "trials than among all of them (Optuna's PED-ANOVA). Pruned trials are not included; "
        "with few trials the ranking is noisy.",
    )


def parallel_section(facts: StudyFacts, found: dict[str, float], why_not: str) -> Section:
    title = PARALLEL
    if not found:
        return Section(title, note=why_not)
    params = list(found)[:PARALLEL_PARAMS]
    fig = optuna.visualization.plot_parallel_coordinate(
        facts.study, params=params, target_name=METRIC
    )
    _style(
        fig,
        title=f"Validation AUC and the {len(params)} most important parameters",
        x=None,
        y=None,
        height=440,
    )
    fig.update_layout(margin={"l": 80, "r": 80, "t": 70, "b": 40})
    return Section(
        title,
        fig,
        caption="One line per complete trial, coloured by validation AUC; drag along an axis "
        "to select a range.",
    )


def slice_section(facts: StudyFacts, found: dict[str, float], why_not: str) -> Section:
    title = SLICES
    if not found:
        return Section(title, note=why_not)
    params = list(found)[:SLICE_PARAMS]
    fig = optuna.visualization.plot_slice(facts.study, params=params, target_name=METRIC)
    _style(
        fig,
        title="Validation AUC against the most important parameters",
        x=None,
        y=None,
        height=400,
    )
    fig.update_layout(width=None)  # Optuna fixes 300 px per parameter; fit the page instead
    fig.update_yaxes(title_text=METRIC, selector={"anchor": "x"})
    return Section(
        title,
        fig,
        caption="Each dot is a complete trial, coloured by trial number (later trials darker).",
    )


def timeline_section(facts: StudyFacts, now: datetime.datetime) -> Section:
    """What ran when, and in which worker process."""
    title = TIMELINE
    started = [t for t in facts.trials if t.datetime_start is not None]
    if not started:
        return Section(title, note="No trial has started yet.")
    worker_order = []
    for trial in sorted(started, key=lambda t: t.datetime_start):
        worker = _worker(trial)
        if worker not in worker_order:
            worker_order.append(worker)
    fig = go.Figure()
    for state, colour in STATE_COLOURS.items():
        # The baseline last: a legend entry takes the look of its trace's first bar.
        trials = sorted(
            (t for t in started if t.state == state), key=lambda t: (is_baseline(t), t.number)
        )
        if not trials:
            continue
        ends = [t.datetime_complete or now for t in trials]
        fig.add_trace(
            go.Bar(
                orientation="h",
                base=[t.datetime_start.isoformat() for t in trials],
                x=[
                    max((end - t.datetime_start).total_seconds(), 0.0) * 1000
                    for t, end in zip(trials, ends, strict=True)
                ],
                y=[_worker(t) for t in trials],
                name=STATE_NAMES[state],
                marker={
                    "color": colour,
                    "line": {
                        "color": [
                            COLOURS["baseline"] if is_baseline(t) else "white" for t in trials
                        ],
                        "width": [3 if is_baseline(t) else 1 for t in trials],
                    },
                },
                text=[f"#{t.number}" for t in trials],
                textposition="inside",
                textangle=0,
                insidetextanchor="middle",
                customdata=[
                    [t.number, spoken_duration((end - t.datetime_start).total_seconds())]
                    for t, end in zip(trials, ends, strict=True)
                ],
                hovertemplate="trial %{customdata[0]}: %{customdata[1]}<br>%{y}<extra>"
                + STATE_NAMES[state]
                + "</extra>",
            )
        )
    _style(
        fig,
        title="Trials over time, by worker",
        x="wall-clock time (local)",
        y="worker (host:pid)",
        height=max(260, 70 * len(worker_order) + 160),
    )
    fig.update_xaxes(type="date")
    fig.update_yaxes(categoryorder="array", categoryarray=worker_order[::-1])
    fig.update_layout(barmode="overlay", bargap=0.35, uniformtext={"minsize": 9, "mode": "hide"})
    return Section(
        title,
        fig,
        caption="Each bar is one trial from start to end (running trials: until this page was "
        "written); the seed baseline has an orange outline.",
    )


def _worker(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get("worker", "unknown worker"))


def top_trials_section(facts: StudyFacts) -> Section:
    """The best complete trials side by side (one column each), the seed baseline among them."""
    title = TOP
    if not facts.complete:
        return Section(title, note=_no_complete_note(facts))
    columns = facts.complete[:TOP_TRIALS]
    if facts.baseline in facts.complete and facts.baseline not in columns:
        columns = [*columns, facts.baseline]
    baseline_value = facts.baseline.value if facts.baseline in facts.complete else None

    def gain(trial: FrozenTrial) -> str:
        if baseline_value is None or is_baseline(trial):
            return "–"
        return f"{trial.value - baseline_value:+.4f}"

    def interval(trial: FrozenTrial) -> str:
        bounds = validation_interval(facts.study, trial)
        return "–" if bounds is None else f"{bounds[0]:.3f}–{bounds[1]:.3f}"

    def seconds(trial: FrozenTrial) -> str:
        wall = duration_seconds(trial)
        return f"{wall:.1f}" if wall is not None else "–"

    results: list[tuple[str, Callable[[FrozenTrial], str]]] = [
        ("rank", lambda t: str(facts.complete.index(t) + 1)),
        (METRIC, lambda t: f"{t.value:.4f}"),
        ("95% interval", interval),
        ("vs seed baseline", gain),
        ("epochs run", lambda t: str(epochs_run(t))),
        ("best epoch", lambda t: str(t.user_attrs.get("best_epoch", "–"))),
        ("seconds (wall)", seconds),
        ("size (weights)", lambda t: _format_weights(t.user_attrs.get("params_count"))),
    ]
    param_names = list(dict.fromkeys(name for t in columns for name in t.params))

    def cell(tag: str, text: str, trial: FrozenTrial | None = None) -> str:
        css = " class='baseline'" if trial is not None and is_baseline(trial) else ""
        return f"<{tag}{css}>{html.escape(text)}</{tag}>"

    def row(name: str, value_of: Callable[[FrozenTrial], str]) -> str:
        return "<tr>" + cell("th", name) + "".join(cell("td", value_of(t), t) for t in columns)

    header = (
        "<tr>"
        + cell("th", "trial")
        + "".join(
            cell("th", f"#{t.number}" + (" seed baseline" if is_baseline(t) else ""), t)
            for t in columns
        )
    )
    body = [row(name, value_of) for name, value_of in results]
    body.append(f"<tr class='group'><th colspan='{len(columns) + 1}'>parameters</th>")
    body += [
        row(name, lambda t, name=name: _format_value(t.params.get(name, "–")))
        for name in param_names
    ]
    table = (
        "<div class='table-wrap'><table class='top'><thead>"
        + header
        + "</thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )
    return Section(
        title,
        body=table,
        caption="Complete trials ranked by validation AUC at their best epoch (epochs count "
        "from 1); seconds (wall) is the trial's duration, training and validation together.",
    )


def failed_section(facts: StudyFacts) -> Section | None:
    if not facts.failed:
        return None
    rows = "".join(
        f"<tr><td>{t.number}</td><td class='text'>{html.escape(_worker(t))}</td>"
        "<td class='text'>"
        f"{html.escape(str(t.user_attrs.get('fail_reason', 'see the search log')))}</td></tr>"
        for t in facts.failed
    )
    table = (
        "<div class='table-wrap'><table><thead><tr><th>trial</th><th class='text'>worker</th>"
        f"<th class='text'>reason</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
    return Section(f"{FAILED} ({len(facts.failed)})", body=table)


def _no_complete_note(facts: StudyFacts) -> str:
    if not facts.trials:
        return "This study has no trials yet."
    counts = _state_counts(facts)
    return f"No trial has completed yet ({counts})."


def _state_counts(facts: StudyFacts) -> str:
    parts = [
        f"{len(facts.complete)} complete",
        f"{len(facts.pruned)} pruned",
        f"{len(facts.failed)} failed",
    ]
    if facts.running:
        parts.append(f"{len(facts.running)} running")
    waiting = sum(t.state == TrialState.WAITING for t in facts.trials)
    if waiting:
        parts.append(f"{waiting} waiting")
    return ", ".join(parts)


def headline(facts: StudyFacts, now: datetime.datetime) -> str:
    """The summary at the top: best against baseline, trial counts, compute and savings."""
    items = []
    best, baseline = facts.best, facts.baseline
    if best is None:
        items.append((f"best {METRIC}", "none yet: no trial has completed"))
    else:
        items.append((f"best {METRIC}", f"<b>{best.value:.4f}</b> (trial {best.number})"))
    if baseline is not None and baseline.state == TrialState.COMPLETE:
        gain = f"{best.value - baseline.value:+.4f} AUC" if best is not None else ""
        items.append(
            ("seed baseline", f"{baseline.value:.4f} (trial {baseline.number}); search: {gain}")
        )
    elif baseline is not None:
        items.append(("seed baseline", f"trial {baseline.number}, {baseline.state.name.lower()}"))
    else:
        items.append(("seed baseline", "not in this study"))
    items.append(("trials", html.escape(_state_counts(facts))))
    durations = [d for d in map(duration_seconds, facts.trials) if d is not None]
    spent = sum(durations)
    spent_text = f"{spoken_duration(spent)} (sum of {len(durations)} finished trials' durations)"
    if facts.running:
        spent_text += f", plus {len(facts.running)} running"
    items.append(("compute spent", spent_text))
    saved = pruning_savings(facts.trials, max_epochs=facts.max_epochs)
    if not facts.pruned:
        saved_text = "no trial was pruned"
    else:
        unpruned = spent + saved.seconds
        share = saved.seconds / unpruned if unpruned > 0 else 0.0
        saved_text = (
            f"≈ {spoken_duration(saved.seconds)}: {saved.epochs} epochs that "
            f"{saved.estimated_trials} pruned trials did not run, {share:.0%} of the "
            f"{spoken_duration(unpruned)} the search would have needed without pruning"
        )
        if saved.unmeasured_trials:
            saved_text += (
                f". Not counted: {saved.unmeasured_trials} trial(s) pruned before their first "
                "epoch (no epoch time measured)"
            )
    items.append(("pruning saved", saved_text))
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in items)
    explain = PRUNING_EXPLAINED if facts.pruned else ""
    notes = ""
    if facts.running:
        notes = (
            f"<p class='note'>{len(facts.running)} trial(s) still running (or left running by a "
            f"stopped worker): this page is a snapshot taken {now:%Y-%m-%d %H:%M:%S}. Run "
            "<code>python -m search.report</code> again for a newer one.</p>"
        )
    return f"<dl class='headline'>{rows}</dl>{explain}{notes}"


def about(study: optuna.Study) -> str:
    """Where the study's values come from: data, metric, commit, and every study attribute."""
    attrs = study.user_attrs
    facts = [
        ("metric", attrs.get("metric")),
        ("data", attrs.get("data_source")),
        (
            "patches",
            f"{attrs['train_patches']} train / {attrs['val_patches']} validation"
            if "train_patches" in attrs and "val_patches" in attrs
            else None,
        ),
        ("commit", attrs.get("git_commit")),
    ]
    shown = " · ".join(f"{name}: {html.escape(str(v))}" for name, v in facts if v is not None)
    stored = json.dumps(without_passwords(attrs), indent=2, sort_keys=True, default=str)
    detail = html.escape(stored)
    return (
        f"<p class='about'>{shown}</p>"
        f"<details><summary>study attributes</summary><pre>{detail}</pre></details>"
    )


def without_passwords(attrs: dict[str, Any]) -> dict[str, Any]:
    """The study's attributes with any stored storage URL's password hidden (studies made
    before URLs were stored that way still hold it)."""
    config = attrs.get("config")
    if not isinstance(config, dict):
        return attrs
    hidden = {key: redacted(config.get(key)) for key in ("storage", "warm_start_storage")}
    return {**attrs, "config": {**config, **hidden}}


def sections(facts: StudyFacts, now: datetime.datetime) -> list[Section]:
    """Every section in page order; one that fails to draw becomes a note, not a lost report."""
    found, why_not = importances(facts)
    builders: list[tuple[str, Callable[[], Section | None]]] = [
        (HISTORY, lambda: history_section(facts)),
        (CURVES, lambda: learning_curves_section(facts)),
        (TOP, lambda: top_trials_section(facts)),
        (COST, lambda: cost_section(facts)),
        (IMPORTANCES, lambda: importance_section(facts, found, why_not)),
        (PARALLEL, lambda: parallel_section(facts, found, why_not)),
        (SLICES, lambda: slice_section(facts, found, why_not)),
        (TIMELINE, lambda: timeline_section(facts, now)),
        (FAILED, lambda: failed_section(facts)),
    ]
    drawn = []
    for title, build in builders:
        try:
            section = build()
        except Exception as error:  # a corner case of Optuna or plotly must not cost the page
            section = Section(title, note=f"Not drawn: {type(error).__name__}: {error}")
        if section is not None:
            drawn.append(section)
    return drawn


def plot_id_of(title: str) -> str:
    """``Learning curves`` → ``plot-learning-curves``: the id of a section's plot."""
    return "plot-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render_report(study: optuna.Study, *, now: datetime.datetime | None = None) -> str:
    """The whole page as one HTML string (plotly.js included)."""
    if len(study.directions) != 1:
        raise DataError(f"study {study.study_name!r} has several objectives; the report needs one")
    now = now or datetime.datetime.now()
    facts = StudyFacts(study, study.get_trials(deepcopy=False))
    figures: dict[str, Any] = {}
    parts = []
    for section in sections(facts, now):
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        if section.note:
            parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
        if section.figure is not None:
            plot_id = plot_id_of(section.title)
            figures[plot_id] = json.loads(section.figure.to_json())
            parts.append(
                f"<div class='plot' id='{plot_id}' data-title='{html.escape(section.title)}'></div>"
            )
        parts.append(section.body)
        if section.caption:
            parts.append(f"<p class='caption'>{html.escape(section.caption)}</p>")
        parts.append("</section>")
    figures_json = json.dumps(figures, separators=(",", ":")).replace("</", "<\\/")
    name = html.escape(study.study_name)
    return PAGE.format(
        title=f"Study {name}: search report",
        name=name,
        generated=f"{now:%Y-%m-%d %H:%M:%S}",
        direction=study.direction.name.lower(),
        about=about(study),
        headline=headline(facts, now),
        sections="\n".join(parts),
        plotly_js=plotly.offline.get_plotlyjs(),
        figures=figures_json,
        render_js=RENDER_JS,
    )


def write_report(study: optuna.Study, path: Path) -> Path:
    """Write the report of ``study`` to ``path`` atomically (a reader never sees half a page)."""
    path = Path(path)
    page = render_report(study)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as out:
            out.write(page)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_study(name: str, storage: str) -> optuna.Study:
    """An existing study, or a DataError naming the studies the storage does hold."""
    if storage.startswith("sqlite:///"):
        file = Path(storage.removeprefix("sqlite:///"))
        if str(file) != ":memory:" and not file.is_file():
            raise DataError(f"--storage {storage}: no such file {file} (run search.run first?)")
    try:
        names = optuna.get_all_study_names(storage=storage)
    except OPENING_ERRORS as error:
        raise DataError(f"--storage {redacted(storage)}: cannot open it ({error})") from None
    if name not in names:
        holds = f"it holds {preview(sorted(names))}" if names else "it holds no study"
        raise DataError(f"no study {name!r} in {redacted(storage)}; {holds}")
    return optuna.load_study(study_name=name, storage=storage)


EPILOG = """\
outputs:
  studies/<study>/report.html   (or --out) one page that opens offline
next:
  open it in a browser; python -m search.submit --study NAME   retrain the best
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m search.report``."""
    parser = command_parser(
        prog="python -m search.report",
        description="Write a study's report: one HTML page that opens offline.",
        epilog=EPILOG,
    )
    add = parser.add_argument
    add("--study", required=True, metavar="NAME", help="study name (required)")
    add(
        "--storage",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL (default: $PCAM_STORAGE, else sqlite:///studies/<study>.db)",
    )
    add(
        "--out",
        type=Path,
        default=None,
        metavar="PATH",
        help="HTML file (default: studies/<study>/report.html)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    storage = args.storage or os.environ.get(STORAGE_ENV) or None
    config = SearchConfig(study=args.study, storage=storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(config.study, config.storage_url)
    path = write_report(study, args.out or config.output_dir / "report.html")
    print(path)
    return 0


RENDER_JS = """
(function () {
  function pointCount(trace) {
    if (typeof trace._length === "number") return trace._length;
    var most = 0;
    ["x", "y", "values"].forEach(function (key) {
      var column = trace[key];
      if (column && column.length !== undefined) {
        var count = 0;
        for (var i = 0; i < column.length; i++) {
          if (column[i] !== null && column[i] !== undefined) count++;
        }
        most = Math.max(most, count);
      }
    });
    return most;
  }
  var figures = JSON.parse(document.getElementById("report-figures").textContent);
  var counts = {};
  Object.keys(figures).forEach(function (id) {
    var figure = figures[id];
    var element = document.getElementById(id);
    try {
      Plotly.newPlot(element, figure.data, figure.layout, {responsive: true, displaylogo: false});
      counts[element.dataset.title] = element._fullData
        .map(pointCount)
        .reduce(function (a, b) { return a + b; }, 0);
    } catch (error) {
      window.reportError(error && error.stack ? error.stack : String(error));
    }
  });
  document.body.dataset.plots = JSON.stringify(counts);
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
         color: #222; background: #fff; }}
  main {{ max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }}
  h1 {{ font-size: 1.6em; margin: 0.4em 0 0.1em; }}
  h2 {{ font-size: 1.2em; margin: 1.6em 0 0.4em; border-bottom: 1px solid #ddd;
        padding-bottom: 4px; }}
  .sub, .about, .caption, .explain {{ color: #555; font-size: 0.9em; }}
  .note {{ background: #fff6e0; border-left: 4px solid #f0a020; padding: 8px 12px; }}
  dl.headline {{ display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px;
                 background: #f5f7fa; padding: 14px 18px; border-radius: 6px; }}
  dl.headline dt {{ font-weight: 600; }}
  dl.headline dd {{ margin: 0; }}
  .table-wrap {{ overflow-x: auto; }}
  table {{ border-collapse: collapse; font-size: 0.8em; white-space: nowrap; }}
  th, td {{ border-bottom: 1px solid #e3e3e3; padding: 4px 8px; text-align: right; }}
  th {{ background: #f0f2f5; }}
  .text {{ text-align: left; }}
  table.top tbody th {{ text-align: left; font-weight: 600; }}
  table.top tr.group th {{ text-align: left; background: #fff; color: #777; padding-top: 10px; }}
  table.top thead th {{ white-space: normal; min-width: 60px; }}
  .baseline {{ background: #fff1e0 !important; }}
  pre {{ font-size: 0.8em; background: #f7f7f7; padding: 8px; overflow-x: auto; }}
</style>
</head>
<body>
<script>
  window.reportError = function (message) {{
    var errors = JSON.parse(document.body.dataset.jsErrors || "[]");
    errors.push(String(message));
    document.body.dataset.jsErrors = JSON.stringify(errors);
  }};
  window.addEventListener("error", function (event) {{ window.reportError(event.message); }});
  window.addEventListener("unhandledrejection", function (event) {{
    window.reportError("unhandled rejection: " + event.reason);
  }});
</script>
<main>
<h1>Study <code>{name}</code></h1>
<p class="sub">Search report written {generated} · direction: {direction} · every value is
the validation ROC AUC of a trial's best epoch.</p>
{about}
{headline}
{sections}
</main>
<script>{plotly_js}</script>
<script type="application/json" id="report-figures">{figures}</script>
<script>{render_js}</script>
</body>
</html>
"""


if __name__ == "__main__":
    run_cli(main)
