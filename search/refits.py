"""The members a submission has already retrained, kept until its files are written.

Retraining the members is the long part of ``search.submit``: hours each on the full Kaggle
set. Each member is saved to ``<out>/.refits/<key>/`` the moment its training ends (written
aside, then renamed into place), so a submit that stops before its submission is written —
Ctrl-C, a crash, a lost machine, a full disk — takes the finished members up when it is run
again and trains only the rest. The key is everything a member's weights follow from: the
study and trial, its params and best epoch, the seed, the exact fit patches (ids and decoded
content), the precision and the Keras backend; a run with another ``--seed``, ``--fit-on`` or
data set, or on a GPU after a CPU, trains its own. The folder is deleted once the submission
is written.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial

from pcam.data import Subset
from search.exported import export, load_exported
from search.space import params_from_values

if TYPE_CHECKING:  # Keras loads when a model is trained: --help answers without it
    import keras

logger = logging.getLogger(__name__)

REFITS_DIR = ".refits"


def refit_key(
    study: str,
    trial: FrozenTrial,
    *,
    fit_data: Subset,
    content: str,
    max_epochs: int,
    seed: int,
    precision: str,
) -> str:
    """A short hash of everything the member's retrained weights follow from: the params as
    today's code resolves the trial's values (a changed default changes the key)."""
    import keras

    try:
        params: dict[str, Any] = params_from_values(trial.params, max_epochs=max_epochs).to_dict()
    except (KeyError, ValueError, TypeError):  # retrain refuses it with one line
        params = trial.params
    ids = hashlib.sha256("\n".join(map(str, fit_data.ids)).encode()).hexdigest()
    identity = {
        "study": study,
        "trial": trial.number,
        "params": params,
        "best_epoch": trial.user_attrs.get("best_epoch"),
        "max_epochs": max_epochs,
        "seed": seed,
        "fit_ids": ids,
        "content": content,
        "precision": precision,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return f"trial-{trial.number}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def kept_refit(out: Path, key: str) -> tuple[keras.Model, dict[str, Any]] | None:
    """The member an earlier, unfinished run of this submit retrained, if one is kept."""
    folder = out / REFITS_DIR / key
    if not folder.is_dir():
        return None
    try:
        model, record = load_exported(folder)
    except Exception as error:  # damaged (a lost machine, a bad disk): train the member again
        logger.warning(f"note: {folder} is unreadable ({error}); retraining that member")
        shutil.rmtree(folder, ignore_errors=True)
        return None
    logger.info(
        f"trial {record['trial']}: retrained by an earlier run of this submit that stopped "
        f"before its submission; taken from {folder}"
    )
    return model, record


def keep_refit(out: Path, key: str, model: keras.Model, record: dict[str, Any]) -> None:
    """Save a retrained member under ``key``, whole or not at all."""
    refits = out / REFITS_DIR
    staging = refits / f".partial-{uuid.uuid4().hex[:8]}"
    try:
        export(model, record, staging)
        try:
            staging.rename(refits / key)
        except OSError as error:  # another run of the same submit kept it first: keep theirs
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def drop_refits(out: Path) -> None:
    """Forget the kept members: the submission they were for is written."""
    shutil.rmtree(out / REFITS_DIR, ignore_errors=True)
