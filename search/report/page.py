"""The report page: the headline, the sections and plotly.js put into ``page.html``, and
written whole."""

from __future__ import annotations

import datetime
import html
import json
import re
from pathlib import Path
from typing import Any

import optuna
import plotly.offline
from optuna.trial import TrialState

from pcam.errors import ConfigError
from pcam.publish import write_text
from search.config import redacted, spoken_duration
from search.console import trial_seconds
from search.report.contents import sections
from search.report.facts import METRIC, StudyFacts, pruning_savings, state_counts
from search.study import validation_caveat

HERE = Path(__file__).parent  # page.html (a str.format template) and render.js
PRUNING_EXPLAINED = (
    "<p class='explain'>Pruning estimate: for every pruned trial, the epochs it was set to run "
    "(the study's epoch budget) minus the epochs it ran, times its own measured seconds "
    "per epoch (training and validation). It assumes the skipped epochs would have cost what the "
    "run ones did, and ignores that the search spent the time saved on other trials.</p>"
)


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
    attrs = facts.study.user_attrs
    if note := attrs.get("validation_note"):
        items.append(("validation", html.escape(note)))
    items.append(("trials", html.escape(state_counts(facts))))
    durations = [d for d in map(trial_seconds, facts.trials) if d is not None]
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
    if caveat := validation_caveat(attrs):
        notes += f"<p class='note'>Note: {html.escape(caveat)}.</p>"
    if facts.running:
        notes += (
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


def plot_id_of(title: str) -> str:
    """``Learning curves`` → ``plot-learning-curves``: the id of a section's plot."""
    return "plot-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render_report(study: optuna.Study, *, now: datetime.datetime | None = None) -> str:
    """The whole page as one HTML string (plotly.js included)."""
    if len(study.directions) != 1:
        raise ConfigError(
            f"study {study.study_name!r} has several objectives; the report needs one"
        )
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
    page = (HERE / "page.html").read_text(encoding="utf-8")
    return page.format(
        title=f"Study {name}: search report",
        name=name,
        generated=f"{now:%Y-%m-%d %H:%M:%S}",
        direction=study.direction.name.lower(),
        about=about(study),
        headline=headline(facts, now),
        sections="\n".join(parts),
        plotly_js=plotly.offline.get_plotlyjs(),
        figures=figures_json,
        render_js=(HERE / "render.js").read_text(encoding="utf-8"),
    )


def write_report(study: optuna.Study, path: Path) -> Path:
    """Write the report of ``study`` to ``path`` atomically (a reader never sees half a page)."""
    return write_text(Path(path), render_report(study))
