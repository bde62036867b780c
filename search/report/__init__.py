"""One HTML page per study: what the search found, what it cost and what pruning saved.

``python -m search.report --study NAME`` writes ``studies/<study>/report.html``; a search writes
the same page when it ends (``write_report``). plotly.js is embedded once, so the page opens
offline. Every section copes with an empty, failed-only or still-running study: where a plot
has nothing to show, the page says why instead.

``facts`` sorts a study's trials for the page, ``figures`` draws the plots (in the look of
``style``), ``tables`` builds the HTML tables, ``contents`` puts these ``Section``s in page
order, ``page`` puts them into ``page.html`` and writes it whole, ``cli`` is the command line.
"""

from search.report.cli import build_parser, main
from search.report.facts import pruning_savings
from search.report.page import render_report, write_report

__all__ = ["build_parser", "main", "pruning_savings", "render_report", "write_report"]
