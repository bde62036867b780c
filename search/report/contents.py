"""The report's sections in page order: the plots of ``figures`` and the tables of ``tables``."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from search.report import figures, tables
from search.report.facts import StudyFacts, importances
from search.report.section import Section


def sections(facts: StudyFacts, now: datetime.datetime) -> list[Section]:
    """Every section in page order; one that fails to draw becomes a note, not a lost report."""
    found, why_not = importances(facts)
    builders: list[tuple[str, Callable[[], Section | None]]] = [
        (figures.HISTORY, lambda: figures.history_section(facts)),
        (figures.CURVES, lambda: figures.learning_curves_section(facts)),
        (tables.TOP, lambda: tables.top_trials_section(facts)),
        (figures.COST, lambda: figures.cost_section(facts)),
        (figures.IMPORTANCES, lambda: figures.importance_section(facts, found, why_not)),
        (figures.PARALLEL, lambda: figures.parallel_section(facts, found, why_not)),
        (figures.SLICES, lambda: figures.slice_section(facts, found, why_not)),
        (figures.TIMELINE, lambda: figures.timeline_section(facts, now)),
        (tables.FAILED, lambda: tables.failed_section(facts)),
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
