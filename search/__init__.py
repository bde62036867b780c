"""Hyperparameter search over the PCam CNN: studies, trials, pruning, submission, reports.

The names below are the package's public surface, loaded on first use (``import search``
loads neither Optuna's samplers nor Keras). The commands are ``python -m search.run``,
``search.submit``, ``search.predict`` and ``search.report``.
"""

from __future__ import annotations

from pcam.exports import lazy_exports

# name -> the module that defines it
_PUBLIC = {
    "SearchConfig": "search.config",
    "run_search": "search.runner",
    "summary": "search.runner",
    "SPACE": "search.space",
    "suggest": "search.space",
    "params_from_values": "search.space",
    "HAND_RECIPE": "search.priors",
    "PRIORS": "search.priors",
    "open_study": "search.study",
    "load_existing_study": "search.study",
    "SubmitConfig": "search.submission",
    "submit": "search.submission",
    "load_exported": "search.exported",
    "write_report": "search.report",
}

__all__, __getattr__ = lazy_exports(__name__, _PUBLIC)
