"""``python -m search.submit --study NAME``: retrain the best trial, export it, write a submission.

The command line of ``search.submission``, which says what the retrain does and why."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no start-up chatter

import argparse
import shlex
from collections import Counter
from dataclasses import replace

from pcam.augment import TTA_MODES
from pcam.cli import command_parser
from pcam.errors import run_cli
from search.exported import MODEL_FILE
from search.members import AUTO_ENSEMBLE
from search.options import DATA, PROGRESS, STORAGE, STUDY, Option, option_values
from search.submission import FIT_ON, SubmitConfig, SubmitOutcome, submit

KAGGLE_COMPETITION = "histopathologic-cancer-detection"


EPILOG = """\
outputs (in --out, default studies/<study>):
  best/model.keras, model.json   the exported model and what produced it
  submission.csv                 id,label tumour probabilities of the test split
next:
  python -m search.predict studies/<study>/best PATH --labels CSV   score it
  the "kaggle competitions submit" line it prints                   upload it
"""


OPTIONS: tuple[Option, ...] = (
    replace(STUDY, help="study name (default {default})"),
    replace(
        STORAGE,
        help="SQLAlchemy URL of the study (default: $PCAM_STORAGE, else "
        "sqlite:///studies/<study>.db)",
    ),
    replace(DATA, help="the study's data set (default: where the study read it)"),
    Option(
        "trial", "int | None", None, "",
        "this trial number instead of the best (default: the best and its ties)",
        metavar="N",
    ),
    Option(
        "ensemble", "int | None", None, "",
        "average the top K complete trials, each retrained (default: the best and the "
        f"trials inside its 95%% validation interval, at most {AUTO_ENSEMBLE})",
        metavar="K",
    ),
    Option(
        "all_data", "bool", False, "",
        "retrain on every labelled patch of the data set, not only those a --limit "
        "search saw (search small, retrain big; default: the patches the search saw)",
        flag="--all",
    ),
    Option(
        "tta", "str", "d8", "",
        "test-time augmentation: the 8 symmetries, 4 flips, or none (default {default})",
        choices=tuple(TTA_MODES),
    ),
    Option(
        "fit_on", "str", "train+val", "",
        "data of the final fit (default {default}; PCam HDF5 always uses train)",
        choices=FIT_ON,
    ),
    Option(
        "seed", "int | None", None, "",
        "retrain with seed N (N+1 for the second member...) instead of the seed each trial "
        "trained with in the search (default: its own, which repeats its curve with "
        "--fit-on train); another seed is another draw of the same design",
        metavar="N",
    ),
    Option(
        "draws", "int", 1, "",
        "retrain each member N times, with other seeds, and average them all: less of one "
        "training draw's luck, for N times the retraining (default {default})",
        metavar="N",
    ),
    Option(
        "out", "str | None", None, "", "output folder (default: studies/<study>)",
        metavar="DIR",
    ),
    replace(PROGRESS, help="no progress output"),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m search.submit``."""
    parser = command_parser(
        prog="python -m search.submit",
        description="Retrain a study's best trial and its statistical ties on all labelled\n"
        "data, export them as one averaged model, and write a Kaggle submission\n"
        "(id,label = tumour probability) for the test split.",
        epilog=EPILOG,
    )
    for option in OPTIONS:
        option.add_to(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> SubmitConfig:
    """The command line as a SubmitConfig."""
    parser = build_parser()
    return SubmitConfig(**option_values(parser, OPTIONS, parser.parse_args(argv)))


def summary(outcome: SubmitOutcome) -> str:
    meta = outcome.metadata
    draws = Counter(m["trial"] for m in meta["members"])
    members = ", ".join(
        f"trial {m['trial']} ({m['val_auc']:.4f})"
        + (f" ×{draws[m['trial']]} draws" if draws[m["trial"]] > 1 else "")
        for m in meta["members"]
        if not m.get("draw")
    )
    return "\n".join(
        [
            f"model:      {outcome.model_dir / MODEL_FILE} — {members}, retrained on "
            f"{meta['trained_on']} ({meta['train_patches']} patches)",
            f"submission: {outcome.submission} ({len(outcome.ids)} rows, tta {meta['tta']})",
            f"score it:   python -m search.predict {outcome.model_dir} {meta['data_source']} "
            "--labels CSV",
            f"on Kaggle:  {kaggle_command(outcome)}",
        ]
    )


def kaggle_command(outcome: SubmitOutcome) -> str:
    """The Kaggle CLI line that submits ``submission.csv``, its message naming what it is."""
    meta = outcome.metadata
    members = "+".join(str(m["trial"]) for m in meta["members"] if not m.get("draw"))
    message = (
        f"pcam-search study {meta['study']} trial {members} "
        f"(val AUC {meta['val_auc']:.4f}), tta {meta['tta']}"
    )
    return (
        f"kaggle competitions submit -c {KAGGLE_COMPETITION} "
        f"-f {shlex.quote(str(outcome.submission))} -m {shlex.quote(message)}"
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    print(summary(submit(config)))  # SIGTERM cleans up as Ctrl-C does: run_cli's stop handlers
    return 0


if __name__ == "__main__":
    run_cli(main)
