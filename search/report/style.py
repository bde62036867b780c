"""One look for every figure of the report: the plotly template, the palette, the layout."""

from __future__ import annotations

import plotly.graph_objects as go
from optuna.trial import TrialState

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


def style_figure(
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
