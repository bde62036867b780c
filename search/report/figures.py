"""The report's sections, each a plotly figure or an HTML table built from ``StudyFacts``;
one that has nothing to show says why instead."""

from __future__ import annotations

import datetime
import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from search.config import spoken_duration
from search.console import trial_seconds
from search.ranking import validation_interval
from search.report.facts import (
    METRIC,
    StudyFacts,
    epochs_run,
    importance_evaluator,
    importances,
    is_baseline,
    no_complete_note,
)

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
        return Section(title, note=no_complete_note(facts))
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
        if t.value is not None and trial_seconds(t) is not None
    ]
    if not finished:
        return Section(title, note=no_complete_note(facts))
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
                x=[trial_seconds(t) / 60 for t in trials],
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


def importance_section(facts: StudyFacts, found: dict[str, float], why_not: str) -> Section:
    title = IMPORTANCES
    if not found:
        return Section(title, note=why_not)
    fig = optuna.visualization.plot_param_importances(
        facts.study,
        evaluator=importance_evaluator(),
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
        return Section(title, note=no_complete_note(facts))
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
        wall = trial_seconds(trial)
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
