"""The report's plotly figures, each a section built from ``StudyFacts``; one that has nothing
to show says why instead."""

from __future__ import annotations

import datetime

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from search.config import spoken_duration
from search.console import trial_seconds
from search.ranking import validation_interval
from search.report.facts import (
    METRIC,
    StudyFacts,
    importance_evaluator,
    is_baseline,
    no_complete_note,
    worker_of,
)
from search.report.section import Section
from search.report.style import COLOURS, STATE_COLOURS, STATE_NAMES, style_figure

SLICE_PARAMS = 4
PARALLEL_PARAMS = 8
# Section titles.
HISTORY = "Optimization history"
CURVES = "Learning curves"
COST = "What a better model costs"
IMPORTANCES = "Hyperparameter importances"
PARALLEL = "Parallel coordinates"
SLICES = "Slice plots"
TIMELINE = "Timeline"


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
    _add_pruned_values(fig, facts.pruned)
    baseline = facts.baseline
    if baseline is not None and baseline.value is not None:
        _mark_baseline(fig, baseline)
    style_figure(fig, title="Validation AUC by trial", x="trial number", y=f"{METRIC} (best epoch)")
    if len(facts.trials) <= 20:
        fig.update_xaxes(dtick=1)
    return Section(
        title,
        fig,
        caption="Each complete trial scores its best epoch's validation ROC AUC; the line is "
        "the best so far. Pruned trials sit at the last AUC they reported before being stopped.",
    )


def _add_pruned_values(fig: go.Figure, pruned_trials: list[FrozenTrial]) -> None:
    """An × at the last AUC each pruned trial reported, where it reported one."""
    pruned = [t for t in pruned_trials if t.value is not None]
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


def _mark_baseline(fig: go.Figure, baseline: FrozenTrial) -> None:
    """A star at the seed baseline's value and a dotted line across the plot at it."""
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
        fig.add_trace(_cost_trace(facts, state, trials))
    style_figure(fig, title="Validation AUC against minutes", x="minutes (wall)", y=METRIC)
    return Section(
        title,
        fig,
        caption="Each finished trial at its wall time and its best validation AUC (pruned "
        "trials: the best they reached before being stopped), with its 95% interval "
        "(Hanley–McNeil, from the validation class counts). A model further right cost more "
        "compute; one whose interval overlaps the best's is not shown to be worse.",
    )


def _cost_trace(facts: StudyFacts, state: str, trials: list[FrozenTrial]) -> go.Scatter:
    """The ``state`` trials at their minutes and best AUC, each with its 95% interval."""
    best_seen = [max(t.intermediate_values.values(), default=t.value) for t in trials]
    errors = [validation_interval(facts.study, t) for t in trials]
    return go.Scatter(
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
        group, colour, width, dash = _curvestyle_figure(trial, best)
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
    style_figure(fig, title="Validation AUC per epoch", x="epoch", y=METRIC)
    fig.update_xaxes(dtick=1)
    return Section(
        title,
        fig,
        caption="One line per trial (epoch 1 is Optuna step 0). Dashed lines ending in a red × "
        "were pruned there; the best trial and the seed baseline are drawn thick.",
    )


def _curvestyle_figure(trial: FrozenTrial, best: FrozenTrial | None) -> tuple[str, str, float, str]:
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
    style_figure(
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
    style_figure(
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
    style_figure(
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
    worker_order = _worker_order(started)
    fig = go.Figure()
    for state, colour in STATE_COLOURS.items():
        # The baseline last: a legend entry takes the look of its trace's first bar.
        trials = sorted(
            (t for t in started if t.state == state), key=lambda t: (is_baseline(t), t.number)
        )
        if not trials:
            continue
        fig.add_trace(_timeline_bars(trials, state=state, colour=colour, now=now))
    style_figure(
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


def _worker_order(started: list[FrozenTrial]) -> list[str]:
    """Workers in the order they started their first trial."""
    worker_order = []
    for trial in sorted(started, key=lambda t: t.datetime_start):
        worker = worker_of(trial)
        if worker not in worker_order:
            worker_order.append(worker)
    return worker_order


def _timeline_bars(
    trials: list[FrozenTrial], *, state: TrialState, colour: str, now: datetime.datetime
) -> go.Bar:
    """One bar per trial in ``state``, from its start to its end (or ``now`` while running)."""
    ends = [t.datetime_complete or now for t in trials]
    return go.Bar(
        orientation="h",
        base=[t.datetime_start.isoformat() for t in trials],
        x=[
            max((end - t.datetime_start).total_seconds(), 0.0) * 1000
            for t, end in zip(trials, ends, strict=True)
        ],
        y=[worker_of(t) for t in trials],
        name=STATE_NAMES[state],
        marker={
            "color": colour,
            "line": {
                "color": [COLOURS["baseline"] if is_baseline(t) else "white" for t in trials],
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
