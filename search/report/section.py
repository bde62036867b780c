"""One part of the report page, as every section builder returns it."""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go


@dataclass(frozen=True)
class Section:
    """One part of the page: a figure or an HTML body, or a note on why there is none."""

    title: str
    figure: go.Figure | None = None
    body: str = ""  # trusted HTML (built in ``tables``, values escaped)
    note: str = ""  # plain text: why the section is empty
    caption: str = ""  # plain text under the figure
