"""What optuna-dashboard shows of a study beyond its trials: the objective's name, a study
note (Markdown) with the best trial against the seed baseline, the data and the commit,
rewritten at the end of every search, and the files a study produced (report, exported
model, ``model.json``, submission) as study artifacts under ``studies/artifacts``, which
``optuna-dashboard URL --artifact-dir studies/artifacts`` lists and serves."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.config import STUDIES_DIR, SearchConfig
from search.priors import seed_baseline
from search.ranking import top_trials, validation_interval
from search.study import validation_caveat

logger = logging.getLogger(__name__)

METRIC_NAMES = ["val_auc"]
ARTIFACTS_DIR = STUDIES_DIR / "artifacts"  # one store for every study, beside the databases


def name_metric(study: optuna.Study) -> None:
    """Call the objective ``val_auc`` (the dashboard says "Objective 0" otherwise)."""
    if study.metric_names != METRIC_NAMES:
        study.set_metric_names(METRIC_NAMES)


def study_note(study: optuna.Study, config: SearchConfig) -> str:
    """The study's note: where its values come from, the best trial, the seed baseline."""
    attrs = study.user_attrs
    counts = {state: 0 for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    for trial in study.get_trials(deepcopy=False, states=tuple(counts)):
        counts[trial.state] += 1
    lines = [
        f"## pcam-search study `{study.study_name}`",
        "",
        f"- data: `{attrs.get('data_source', '?')}` ({attrs.get('data_layout', '?')} layout), "
        f"{attrs.get('train_patches', '?')} training / {attrs.get('val_patches', '?')} "
        f"validation patches, fingerprint `{attrs.get('data_fingerprint', '?')}`",
        f"- value: {attrs.get('metric', 'validation ROC AUC')}",
        f"- validation: {attrs.get('validation_note', 'a random split of the data')}",
        *([f"- **note**: {caveat}"] if (caveat := validation_caveat(attrs)) else []),
        f"- trials: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed",
    ]
    best = next(iter(top_trials(study, 1)), None)
    if best is not None:
        bounds = validation_interval(study, best)
        shown = "" if bounds is None else f" (95% {bounds[0]:.3f}–{bounds[1]:.3f})"
        lines.append(f"- best: trial {best.number}, validation AUC **{best.value:.4f}**{shown}")
    baseline = seed_baseline(study)
    if baseline is not None and best is not None:
        lines.append(
            f"- seed baseline: trial {baseline.number}, {baseline.value:.4f}; the search gained "
            f"{best.value - baseline.value:+.4f}"
        )
    lines += [
        f"- commit: `{attrs.get('git_commit', 'unknown')}`; note updated "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}",
        "",
        f"Next: `python -m search.submit --study {study.study_name}`"
        + (f" `--storage {config.shown_storage}`" if config.storage else ""),
    ]
    return "\n".join(lines)


def write_note(study: optuna.Study, config: SearchConfig) -> None:
    """Replace the study's note in optuna-dashboard with ``study_note``."""
    from optuna_dashboard import save_note

    save_note(study, study_note(study, config))


def upload_outputs(study: optuna.Study, files: list[Path], store: Path = ARTIFACTS_DIR) -> None:
    """Add ``files`` to ``study``'s artifacts (each upload is kept: the dashboard lists them
    by time); a store that cannot be written is said, and the files stay where they are."""
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    try:
        store.mkdir(parents=True, exist_ok=True)
        artifacts = FileSystemArtifactStore(str(store))
        for file in files:
            upload_artifact(artifact_store=artifacts, file_path=str(file), study_or_trial=study)
    except OSError as error:
        logger.warning(f"artifacts not stored in {store} ({error})")


def dashboard_command(storage: str) -> str:
    """The command that shows a study, its note and its artifacts."""
    return f"optuna-dashboard {storage} --artifact-dir {ARTIFACTS_DIR}"
