"""Open or resume an Optuna study: sampler, pruner, starting points, and the record of
provenance (its storage: search.storage)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from pcam.data import OWN_SPLIT, SAME_SLIDES, TrainingData
from pcam.errors import ConfigError, SetupError, preview
from search.config import SPACE_VERSION, SearchConfig, default_storage_url, redacted
from search.priors import (
    PRIOR_ROLE,
    SEED_BASELINE_ROLE,
    WARM_START_ROLE,
    prior_values,
    warm_start_values,
)
from search.provenance import git_commit, package_versions
from search.pruning import make_pruner
from search.record import INTERRUPTED, RUN_ATTRS
from search.space import outside, seed_baseline_values, space_changes
from search.storage import OPENING_ERRORS, cannot_open, make_storage, sqlite_file

logger = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES models the numeric dimensions; categorical ones fall back to random.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "gp":
        try:
            import scipy  # noqa: F401
            import torch  # noqa: F401
        except ImportError:
            raise SetupError(
                "--sampler gp needs torch and scipy: pip install torch==2.13.0 scipy"
            ) from None
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


def load_existing_study(
    name: str, url: str, *, flag: str = "--study", storage_flag: str = "--storage"
) -> optuna.Study:
    """A study that ``search.run`` made, for reading or resuming: never creates one (nor an
    empty SQLite file); a clear error naming the studies the storage does hold.

    ``flag`` and ``storage_flag`` are the options that named the study and its storage, so the
    error speaks of what the user typed (``--warm-start`` for an earlier study, say).
    """
    database = sqlite_file(url)
    if database is not None and not database.is_file():
        raise ConfigError(
            f"{flag} {name}: no study database at {database} ({storage_flag} "
            f"{redacted(url)}: no such file); run python -m search.run --study {name} "
            f"first, or pass the {storage_flag} the study was made with"
        )
    try:
        names = optuna.get_all_study_names(storage=url)
    except OPENING_ERRORS as error:
        raise cannot_open(storage_flag, url, error) from None
    if name not in names:
        held = f"it holds {preview(sorted(names))}" if names else "it holds no study"
        raise ConfigError(f"no study {name!r} in {redacted(url)}; {held}")
    return optuna.load_study(study_name=name, storage=url)


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def connect(config: SearchConfig) -> tuple[optuna.storages.RDBStorage, bool]:
    """The study's storage (with heartbeats), and whether the study exists in it yet."""
    url = config.storage_url
    try:
        storage = make_storage(url, heartbeat=config.heartbeat)
        existing = config.study in optuna.get_all_study_names(storage=storage)
    except OPENING_ERRORS as error:
        raise cannot_open("--storage", url, error) from None
    return storage, existing


def with_recorded_settings(config: SearchConfig) -> SearchConfig:
    """``config`` with each study-defining setting the command line left unset (``unset``)
    taken from the study it resumes: a resume with another --budget keeps the epoch budget the
    study was made with, one without --limit its patches. A new study keeps the defaults (and
    a SQLite file that does not exist yet is not made here)."""
    if not config.unset or _no_database_yet(config.storage_url):
        return config
    storage, existing = connect(config)
    if not existing:
        return config
    recorded = optuna.load_study(study_name=config.study, storage=storage).user_attrs.get(
        "study_defining", {}
    )
    taken = {
        name: recorded[name]
        for name in config.unset
        if name in recorded and recorded[name] != getattr(config, name)
    }
    if taken:
        shown = ", ".join(f"--{name.replace('_', '-')} {value}" for name, value in taken.items())
        logger.info(f"resuming study {config.study!r} with the settings it was made with: {shown}")
    return dataclasses.replace(config, **taken, unset=())


def _no_database_yet(url: str) -> bool:
    """True for a SQLite database with nothing in it to read: no file yet, or in memory."""
    if not url.startswith("sqlite"):
        return False
    path = sqlite_file(url)
    return path is None or not path.exists()


def open_study(config: SearchConfig, data: TrainingData) -> tuple[optuna.Study, bool]:
    """Create the study (trial 0 = the seed baseline) or resume it; True when resumed.

    A resumed study must have been made with the same data and study-defining settings:
    mixing trials scored on different data would make its best value meaningless.
    """
    storage, existing = connect(config)
    if existing:
        study = optuna.load_study(study_name=config.study, storage=storage)
        check_resume(study, config, data)
        if config.worker_index == 0:  # one process queues, so that no design is queued twice
            queue_interrupted_again(study)
    # Read before the study exists: a bad --warm-start must not leave a half-made study behind.
    baseline = [] if existing else seed_baseline_point(config)
    points = [] if existing else starting_points(config)[: config.trials - len(baseline)]
    # Resumed runs re-seed the sampler with the trial count, so they do not replay the
    # random draws of the first run; each worker of a parallel search has its own stream.
    seed = config.seed + 1000 * config.worker_index + (finished_trials(study) if existing else 0)
    sampler = make_sampler(config.sampler, seed)
    pruner = make_pruner(config.pruner, config.max_epochs)
    # Tried on a resume too: the try takes the write lock, so that a database another program
    # holds is found here, at once, not after the first trial's retries.
    made = _made_here(config.study, storage, sampler, pruner)
    if made is None:
        study = optuna.load_study(
            study_name=config.study, storage=storage, sampler=sampler, pruner=pruner
        )
    else:
        study = made
        for key, value in study_provenance(config, data).items():
            study.set_user_attr(key, value)
        for values, attrs in baseline + points:
            study.enqueue_trial(values, user_attrs=attrs)
    return study, existing


def queue_interrupted_again(study: optuna.Study) -> None:
    """Queue again every enqueued trial (the seed design, a prior, a warm start) that a stop
    signal ended, with its values and starting attributes plus ``queued_again_from``, so that
    the resumed search still runs it, with a line each. A sampler's draw is not queued:
    the sampler draws anew. Done here, when a search resumes, not in the stopping process,
    where a second signal could land in the middle of the write."""
    trials = study.get_trials(deepcopy=False)
    # copies made already: ours, and the heartbeat's re-run of a worker that died stopping
    copied = {t.user_attrs.get("queued_again_from") for t in trials} | {
        t.system_attrs.get("failed_trial") for t in trials
    }
    for trial in trials:
        values = trial.system_attrs.get("fixed_params")
        reason = str(trial.user_attrs.get("fail_reason", ""))
        if (
            trial.state != TrialState.FAIL
            or values is None
            or not reason.startswith(INTERRUPTED)
            or trial.number in copied
        ):
            continue
        attrs = {k: v for k, v in trial.user_attrs.items() if k not in RUN_ATTRS}
        study.enqueue_trial(values, user_attrs=attrs | {"queued_again_from": trial.number})
        what = trial.user_attrs.get("prior") or trial.user_attrs.get("role", "queued trial")
        logger.info(f"trial {trial.number} ({what}), {reason}, is queued to run again")


def _made_here(
    name: str,
    storage: optuna.storages.BaseStorage,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study | None:
    """The new study ``name``, or None where it exists (resumed, or made a moment ago by another
    machine): a study's name is unique in its storage, so of searches starting one at once
    exactly one makes it, and that one alone queues its seed design and priors."""
    try:
        return optuna.create_study(
            study_name=name, storage=storage, direction="maximize", sampler=sampler, pruner=pruner
        )
    except optuna.exceptions.DuplicatedStudyError:
        return None


def open_mirror_study(
    config: SearchConfig,
    data: TrainingData,
    *,
    check: Callable[[optuna.Study], None] | None = None,
) -> tuple[optuna.Study, bool]:
    """Create or resume a study that another engine's trials are copied into (KerasTuner's):
    no sampler, pruner or enqueued trials, the same provenance and resume checks as
    ``open_study``, and ``check`` of an existing one first; True when resumed."""
    storage, existing = connect(config)
    if existing:
        study = optuna.load_study(study_name=config.study, storage=storage)
        check_resume(study, config, data)
        if check is not None:
            check(study)
    study = optuna.create_study(
        study_name=config.study, storage=storage, direction="maximize", load_if_exists=True
    )
    if "data_fingerprint" not in study.user_attrs:
        for key, value in study_provenance(config, data).items():
            study.set_user_attr(key, value)
    return study, existing


def seed_baseline_point(config: SearchConfig) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """Trial 0 of a new study, the untuned seed design, if the search space holds it.

    A ``--space`` that excludes it (say ``crop = 64``) gets no baseline, with a note: Optuna
    would run an enqueued range value outside the space as it is, and fail the trial on a
    choice outside it, and a seed design moved into the space would no longer be the seed
    design that the baseline stands for.
    """
    values = seed_baseline_values()
    if not fits(values, config, "the seed baseline (trial 0)"):
        return []
    return [(values, {"role": SEED_BASELINE_ROLE})]


def fits(values: dict[str, Any], config: SearchConfig, what: str) -> bool:
    """Whether ``values`` lie in the search space; if not, a note says that ``what`` is not
    enqueued, and why."""
    misfits = outside(values, config.search_space)
    if misfits:
        logger.warning(
            f"--space {config.space}: {what} is not enqueued, outside the search space: "
            f"{'; '.join(misfits)}"
        )
    return not misfits


def starting_points(config: SearchConfig) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """What a new study runs after the seed baseline, in order: the best of ``--warm-start``
    (learnt on this kind of problem), then the documented priors; values with user attrs.

    A study of ``--trials N`` takes the first N - 1 of them, so that none is left waiting.
    Those outside the search space (``--space``) are left out, priors with a note.
    """
    points: list[tuple[dict[str, Any], dict[str, str]]] = []
    if config.warm_start is not None:
        carried = warm_start_values(
            open_warm_start(config), config.warm_start_top, space=config.search_space
        )
        logger.info(
            f"warm start: {len(carried)} trial(s) of study {config.warm_start!r} enqueued "
            f"(its top {config.warm_start_top} complete ones that fit today's search space)"
        )
        for number, values in carried:
            origin = f"{config.warm_start}#{number}"
            points.append((values, {"role": WARM_START_ROLE, "warm_start": origin}))
    if not config.priors:
        return points
    points += [
        (values, {"role": PRIOR_ROLE, "prior": name})
        for name, values in prior_values()
        if fits(values, config, f"prior {name!r}")
    ]
    return points


def open_warm_start(config: SearchConfig) -> optuna.Study:
    """The earlier study ``--warm-start`` names, with a clear error if it is missing."""
    url = config.warm_start_storage or default_storage_url(config.warm_start)
    return load_existing_study(
        config.warm_start, url, flag="--warm-start", storage_flag="--warm-start-storage"
    )


def study_provenance(config: SearchConfig, data: TrainingData) -> dict[str, Any]:
    """What produced the study's results: config, data, split, versions, commit."""
    return {
        "config": config.to_dict(),
        "study_defining": config.study_defining(),
        "data_source": str(data.layout.root),
        "data_layout": data.layout.kind,
        "data_fingerprint": data.fingerprint,
        "data_content": data.content,
        "validation": data.validation,
        "validation_note": data.validation_note,
        "split_seed": data.split_seed,
        "train_patches": len(data.train),
        "val_patches": len(data.val),
        "val_positives": int(data.val.y.sum()),
        "metric": "validation ROC AUC (exact), best epoch",
        "package_versions": package_versions(),
        "git_commit": git_commit(),
    }


def data_changed(attrs: dict[str, Any], data: TrainingData) -> str | None:
    """How ``data`` differs from the data set a study recorded in ``attrs``; None if it is that
    data set. A copy whose files have new modification times (another machine, a restored
    backup) has another fingerprint but the same decoded content, and is the same data set.
    Validation chosen otherwise (``--groups``, ``--val-data``) is another data set too."""
    if "data_fingerprint" in attrs and validation_then(attrs) != data.validation:
        return (
            f"validation: {attrs.get('validation_note') or 'a random split of --data'} then, "
            f"{data.validation_note} now (--groups, --val-data)"
        )
    if attrs.get("data_fingerprint") in (None, data.fingerprint):
        return None
    if attrs.get("data_content") == data.content:
        return None
    why = (
        f"fingerprint {attrs['data_fingerprint']} then, {data.fingerprint} now; "
        f"source then: {attrs.get('data_source')}"
    )
    if "data_content" not in attrs:  # recorded before studies kept the content's hash
        why += (
            "; this study records only the files' names, sizes and modification times, so a "
            "copy that did not keep the times (keep them: cp -p, rsync -t) is refused too"
        )
    return why


def validation_then(attrs: dict[str, Any]) -> str:
    """How a study chose its validation patches (``TrainingData.validation``); one made before
    that was recorded split its data at random, or used PCam HDF5's own validation split."""
    if "validation" in attrs:
        return attrs["validation"]
    return OWN_SPLIT if attrs.get("data_layout") == "hdf5" else SAME_SLIDES


def validation_caveat(attrs: dict[str, Any]) -> str | None:
    """What a user must know when validation patches share slides with the training ones:
    Kaggle's test set (and any new hospital's) holds other slides, and scores lower."""
    if "data_fingerprint" not in attrs or validation_then(attrs) != SAME_SLIDES:
        return None
    return (
        "validation patches come from the same slides as the training patches, so the "
        "leaderboard (other slides) will read lower than these figures; --groups CSV or "
        "--val-data PATH gives validation from other slides"
    )


def check_resume(study: optuna.Study, config: SearchConfig, data: TrainingData) -> None:
    """Refuse to resume ``study`` with other data or settings; say that it resumes."""
    _check_settings(study, config, data)
    if "data_content" not in study.user_attrs and "data_fingerprint" in study.user_attrs:
        study.set_user_attr("data_content", data.content)  # made before it was recorded
    if config.worker_index:
        return
    logger.info(
        f"resuming study {config.study!r}: {finished_trials(study)} finished trial(s) so far"
    )


def _check_settings(study: optuna.Study, config: SearchConfig, data: TrainingData) -> None:
    attrs = study.user_attrs
    differences = []
    if changed := data_changed(attrs, data):
        differences.append(f"data ({changed})")
    recorded = attrs.get("study_defining", {})
    if "study_defining" in attrs and recorded.get("space", 1) != SPACE_VERSION:
        raise ConfigError(
            f"study {config.study!r} in {config.shown_storage} was made by an older pcam-search "
            f"(search space {recorded.get('space', 1)}: epochs were a searched value, no "
            f"learning-rate schedules); its trials cannot be mixed with today's. Score or submit "
            f"it with python -m search.submit --study {config.study}, and start a new --study "
            "to search on"
        )
    for key, now in config.study_defining().items():
        then = recorded.get(key, now)
        if then != now and key == "search_space":
            differences.append(f"search space, --space ({space_changes(then, now)})")
        elif then != now:
            differences.append(f"{key} ({then} then, {now} now)")
    if differences:
        raise ConfigError(
            f"study {config.study!r} in {config.shown_storage} was made with different settings: "
            f"{'; '.join(differences)}. Run with the original settings to resume it, or pick a "
            "new --study name"
        )
