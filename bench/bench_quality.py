"""What the search is for: ROC AUC on patches no search saw, against the designs it must beat.

``python bench/bench_quality.py --arm all --budget 30m`` locks away a stratified, seeded
1,000 of the real sample's 4,000 labelled patches as a test set, and lays the other 3,000 out
as a Kaggle-layout folder (links to the sample's files, never copies) whose ``test/`` holds
the locked patches without labels. On those 3,000 it runs:

- (a) ``seed``: the seed design, trained once through ``pcam.train`` for its 10 epochs
  (2,400 / 600 stratified split), best-validation weights;
- (b) ``recipe``: the hand-written recipe (``search.priors.HAND_RECIPE``), trained once the
  same way for its 20 epochs;
- (c) ``search``: ``python -m search.run --data FOLDER --budget B`` with its real-data
  defaults, then ``python -m search.submit`` with its defaults; the submission it writes for
  ``test/`` is scored against the locked labels.

For each: test ROC AUC with a 95% bootstrap interval (1,000 resamples within each class),
the wall time, and the machine. (a) and (b) are also scored with 8-view test-time
augmentation, which (c)'s submission uses by default, so the table separates what the
search found from what TTA adds.

Every arm is also scored on ``../shared/pcam-unseen-slides`` (``--unseen``): labelled patches
of PCam's validation split, from slides that none of the sample's patches come from, as
Kaggle's test set is. The locked test above shares slides with the training patches; this
one is the leaderboard's kind of data. No arm searches or chooses on it. The table shows both,
the gap between each arm's validation AUC and its unseen-slide AUC, and each arm's
unseen-slide difference from the recipe arm, paired over the same patches.

``--arm NAME`` with a prior's name (``search.priors``, e.g. ``recipe_96_one_cycle``) trains
that design as (b) is trained: what one of the designs every search starts from scores alone.
``--change KEY=VALUE`` (repeatable) trains (a), (b) or a prior with those ``ModelParams`` fields
changed (``--arm recipe --change hed_jitter=0.1``), saved apart (``recipe-hed_jitter-0.1``):
how a training change moves the unseen-slide figure, against the plain recipe of the same
split. ``--train-seed N`` trains one of them again with another seed for the weights, dropout
and augmentation (same split), saved apart (``recipe-train_seed-1``): how far one training
draw lies from the next, which the intervals over patches do not show. ``--train-seed 0,1,2``
trains each seed so (a saved result is taken as it is) and scores their average, each patch's
probability the mean of the seeds' (``recipe-train_seeds-0+1+2``): what ``search.submit
--draws 3`` does to a design, measured on the design alone.

Each arm saves its result to ``bench/results/quality/<arm>[-<budget>].json`` with the split's
id and the commit, so arms can run one at a time (``--arm seed``, ``--arm recipe``,
``--arm search --budget 2h``, e.g. the long one in the background early in a session), and
``--arm table`` assembles the table from the saved results of the same split. A search arm is
saved under its epoch budget and its ``--search-args``, study folder included
(``search-2h-max-epochs-20``: defaults, or ``--max-epochs 20`` given), so that no arm replaces
another's; ``--reuse-search`` and ``--score-only`` find it by the same arguments.
``search-2h.json`` is the 2-hour arm of the days when 12 epochs were the default.

``--reuse-search`` runs only (c)'s ``search.submit``, on the study a saved search arm of the
same split and budget left behind, so another submission choice (``--submit-args``) is measured
on the very same trials without spending the search's hours again. The result records the
search's commit and times from the saved arm, and is saved apart
(``search-<budget>-<submit args>.json``), beside the arm it reused. ``--score-only`` scores
what a search arm's own run left in its folder, for a run whose scoring step stopped.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import argparse
import dataclasses
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import (
    DEFAULT_SAMPLE,
    DEFAULT_UNSEEN,
    RESULTS,
    CpuWindow,
    describe_machine,
    format_table,
    machine_info,
    write_results,
)

from pcam.errors import run_cli
from pcam.model import SEED_BASELINE
from search.options import default_epochs, parse_budget
from search.priors import HAND_RECIPE, PRIORS

QUALITY = RESULTS / "quality"
TEST_PATCHES = 1000
ARMS = ("seed", "recipe", "search")
# What (a), (b) and each prior's arm train (``--arm recipe_96_one_cycle``: one of the designs
# every search starts from, trained alone the way (b) is). ``hand_recipe`` is (b) with the
# priors' stain jitter, as ``--arm recipe --change hed_jitter=0.1`` (saved under that name).
DESIGNS = {"seed": SEED_BASELINE, "recipe": HAND_RECIPE} | {
    name: params for name, params, _ in PRIORS
}
PRIOR_ARMS = tuple(name for name, _, _ in PRIORS)


def lock_split(sample: Path, folder: Path, *, seed: int, test_size: int) -> dict[str, Any]:
    """Lay out the search's data set (Kaggle layout, links) with the locked patches as test/.

    Returns the split's record: its id (a hash of the locked ids), sizes and the labels file.
    """
    labels = pd.read_csv(sample / "train_labels.csv", dtype={"id": str})
    labels = labels.sort_values("id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    locked_rows = []
    for label in (0, 1):
        rows = np.flatnonzero(labels["label"].to_numpy() == label)
        share = round(test_size * len(rows) / len(labels))
        locked_rows.append(rng.choice(rows, size=share, replace=False))
    locked = labels.iloc[np.sort(np.concatenate(locked_rows))]
    searched = labels.drop(index=locked.index)
    split_id = hashlib.sha256(",".join(locked["id"]).encode()).hexdigest()[:12]
    root = folder / f"split-{split_id}"
    data = root / "data"
    if not (data / "sample_submission.csv").is_file():
        for part, frame in (("train", searched), ("test", locked)):
            (data / part).mkdir(parents=True, exist_ok=True)
            for patch_id in frame["id"]:
                link = data / part / f"{patch_id}.tif"
                if not link.exists():
                    link.symlink_to((sample / "train" / f"{patch_id}.tif").resolve())
        searched.to_csv(data / "train_labels.csv", index=False)
        locked.to_csv(root / "locked_labels.csv", index=False)
        locked.assign(label=0).to_csv(data / "sample_submission.csv", index=False)
    return {
        "split_id": split_id,
        "split_seed": seed,
        "data": str(data),
        "locked_labels": str(root / "locked_labels.csv"),
        "searched_patches": len(searched),
        "locked_patches": len(locked),
        "locked_positives": int(locked["label"].sum()),
    }


def test_scores(
    labels: np.ndarray, probabilities: np.ndarray, *, keep: bool = False
) -> dict[str, Any]:
    """AUC and its interval; ``keep``: every label and probability too (to average arms)."""
    from pcam.metrics import bootstrap_auc_interval, roc_auc

    low, high = bootstrap_auc_interval(labels, probabilities)
    scores = {"auc": roc_auc(labels, probabilities), "low": low, "high": high}
    if keep:
        scores["labels"] = np.asarray(labels).astype(int).tolist()
        scores["probabilities"] = [round(float(p), 6) for p in probabilities]
    return scores


def unseen_scores(model, unseen: Path, *, tta: str) -> dict[str, Any]:
    """The model on the unseen slides: AUC and interval, mean probability, every probability
    (in the cached split's order, whose ids' hash is kept, for paired comparisons)."""
    from pcam.data import load_split
    from pcam.tta import predict_tta
    from search.exported import whole_split

    _, patches = load_split(unseen, "train", progress=False)
    probabilities = predict_tta(model, whole_split(patches), mode=tta)
    return {
        "path": str(unseen),
        "tta": tta,
        "patches": len(patches),
        "positives": int(patches.labels.sum()),
        "ids_sha256": hashlib.sha256(",".join(patches.ids).encode()).hexdigest(),
        **test_scores(patches.labels, probabilities, keep=True),
        "mean_probability": float(probabilities.mean()),
    }


def parse_changes(changes: list[str]) -> dict[str, Any]:
    """``['hed_jitter=0.1', 'd8=true']`` → ``{'hed_jitter': 0.1, 'd8': True}``."""
    parsed = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep:
            raise SystemExit(f"--change {change!r}: write KEY=VALUE, e.g. hed_jitter=0.1")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def train_once(
    split: dict[str, Any],
    which: str,
    *,
    unseen: Path,
    changes: dict[str, Any],
    train_seed: int = 0,
) -> dict[str, Any]:
    """Arms (a), (b) and a prior's design: one ``pcam.train`` run with best-validation weights,
    then the tests. ``train_seed`` seeds the weights, dropout and augmentation; the split stays
    the same."""
    from pcam.data import load_split, load_training_data
    from pcam.model import count_params
    from pcam.train import train
    from pcam.tta import predict_tta
    from search.exported import read_labels, whole_split

    params = DESIGNS[which]
    params = dataclasses.replace(params, **changes)
    with CpuWindow() as window:
        started = time.perf_counter()
        data = load_training_data(split["data"], seed=0, val_fraction=0.2, progress=False)
        result = train(params, data.train, data.val, seed=train_seed, restore_best=True, verbose=2)
        _, test = load_split(split["data"], "test", progress=False)
        labels = read_labels(split["locked_labels"], test.ids)
        plain = predict_tta(result.model, whole_split(test), mode="none")
        d8 = predict_tta(result.model, whole_split(test), mode="d8")
        wall = time.perf_counter() - started
        unseen_d8 = unseen_scores(result.model, unseen, tta="d8")
    return {
        "arm": which,
        "changes": changes,
        "train_seed": train_seed,
        "params": params.to_dict(),
        "weights": count_params(params),
        "val_auc": result.best_val_auc,
        "val_auc_curve": result.val_auc,
        "best_epoch": result.best_epoch,
        "test": test_scores(labels, plain, keep=True),
        "test_tta_d8": test_scores(labels, d8, keep=True),
        "unseen": unseen_d8,
        "wall_seconds": round(wall, 1),
        "busy_elsewhere_cores": round(window.other_cores, 2),
    }


def averaged_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One design's training seeds as one model: each patch's probability the mean of theirs,
    as ``search.submit --draws`` averages its draws, scored as an arm is. The locked test is
    scored where every seed kept its probabilities (results saved before they were kept did
    not); no validation AUC, which an average of the seeds' own would not be."""
    first = results[0]
    scores: dict[str, Any] = {}
    for key in ("test", "test_tta_d8", "unseen"):
        kept = [r[key] for r in results if "probabilities" in r[key]]
        if len(kept) < len(results):
            continue
        same = ("labels", "ids_sha256", "tta", "path")
        if len({json.dumps([k.get(field) for field in same]) for k in kept}) != 1:
            raise SystemExit(f"the training seeds' {key} scores are not of the same patches")
        labels = np.asarray(kept[0]["labels"])
        mean = np.mean([k["probabilities"] for k in kept], axis=0)
        scores[key] = test_scores(labels, mean, keep=True)
    if "unseen" not in scores:
        raise SystemExit("the training seeds kept no unseen-slide probabilities to average")
    scores["unseen"] = {
        **{k: first["unseen"][k] for k in ("path", "tta", "patches", "positives", "ids_sha256")},
        **scores["unseen"],
        "mean_probability": float(np.mean(scores["unseen"]["probabilities"])),
    }
    return {
        "arm": first["arm"],
        "changes": first["changes"],
        "train_seed": [r["train_seed"] for r in results],
        "params": first["params"],
        "weights": first["weights"],
        "val_auc": None,
        "best_epoch": [r["best_epoch"] for r in results],
        "test": scores.get("test"),
        "test_tta_d8": scores.get("test_tta_d8"),
        "unseen": scores["unseen"],
        "wall_seconds": sum(r["wall_seconds"] for r in results),
        "busy_elsewhere_cores": max(r["busy_elsewhere_cores"] for r in results),
    }


def search_arm(
    split: dict[str, Any],
    budget: str,
    *,
    extra: list[str],
    submit_extra: list[str],
    unseen: Path,
    reused: dict[str, Any] | None = None,
    score_only: bool = False,
) -> dict[str, Any]:
    """Arm (c): ``search.run --budget`` then ``search.submit``, as a user would type them.

    With ``reused`` (the saved record of an earlier search arm of this split and budget) only
    ``search.submit`` runs, on that arm's study, into a folder of its own. With ``score_only``
    neither runs: the submission and model that the arm's own run left in its folder are
    scored (a run whose scoring step stopped), its times read from the study and the model.
    """
    from search.exported import load_exported, read_labels

    study = search_study(split["split_id"], search_name(budget, extra))
    work = QUALITY / study
    storage = f"sqlite:///{work / 'study.db'}"
    out = work / f"submit-{slug(submit_extra)}" if reused else work
    common = ["--study", study, "--storage", storage, "--no-progress"]
    run = [*common, "--data", split["data"], "--budget", budget, "--no-report", *extra]
    submit = [*common, "--out", str(out), *submit_extra]
    steps = [("submit", [sys.executable, "-m", "search.submit", *submit])]
    times = {}
    if score_only:
        if not (out / "submission.csv").is_file() or not (out / "best").is_dir():
            raise SystemExit(
                f"--score-only: {out} holds no submission.csv and best/ model; run the arm "
                "without --score-only"
            )
        steps = []
    elif reused:
        times["search"] = reused["result"]["search_seconds"]
        extra = reused["result"]["extra_args"]
    else:
        work.mkdir(parents=True, exist_ok=True)
        (work / "study.db").unlink(missing_ok=True)
        steps.insert(0, ("search", [sys.executable, "-m", "search.run", *run]))
    out.mkdir(parents=True, exist_ok=True)
    with CpuWindow() as window:
        for name, command in steps:
            started = time.perf_counter()
            print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
            subprocess.run(command, check=True, cwd=out)
            times[name] = round(time.perf_counter() - started, 1)
    submission = pd.read_csv(out / "submission.csv", dtype={"id": str})
    labels = read_labels(split["locked_labels"], submission["id"].to_numpy())
    import optuna

    loaded = optuna.load_study(study_name=study, storage=storage)
    model, model_record = load_exported(out / "best")
    if score_only:  # the search's wall time, and the members' training (not the prediction)
        times["search"] = round(sum(r["wall_seconds"] for r in loaded.user_attrs["budget_runs"]), 1)
        times["submit"] = round(sum(m["train_seconds"] for m in model_record["members"]), 1)
    return {
        "arm": "search",
        "budget": budget,
        "extra_args": extra,
        "submit_args": submit_extra,
        # the commit the reused search ran at (its record's machine may have only scored it)
        "search_reused_from": loaded.user_attrs.get("git_commit", reused["machine"]["commit"])
        if reused
        else None,
        "scored_later": score_only,
        "submitted_at_commit": model_record.get("git_commit"),
        "val_auc": model_record["val_auc"],
        "test": test_scores(labels, submission["label"].to_numpy()),
        "unseen": unseen_scores(model, unseen, tta=model_record["tta"]),
        "search_seconds": times["search"],
        "submit_seconds": times["submit"],
        "wall_seconds": round(times["search"] + times["submit"], 1),
        "busy_elsewhere_cores": round(window.other_cores, 2),
        "budget_runs": loaded.user_attrs.get("budget_runs"),
        "trials": [
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "role": t.user_attrs.get("role"),
                "prior": t.user_attrs.get("prior"),
                "curve": [t.intermediate_values[k] for k in sorted(t.intermediate_values)],
                "params": t.params,
                "reason": t.user_attrs.get("prune_reason") or t.user_attrs.get("fail_reason"),
            }
            for t in loaded.trials
        ],
        "submitted": {
            "members": [m["trial"] for m in model_record["members"]],
            "tta": model_record["tta"],
            "trained_on": model_record["trained_on"],
        },
    }


def slug(args: list[str]) -> str:
    """``['--ensemble', '1']`` → ``ensemble-1``; no arguments → ``defaults``."""
    return "-".join(arg.lstrip("-").replace("=", "-") for arg in args) or "defaults"


def result_path(
    arm: str,
    budget: str | None,
    *,
    submit_args: list[str] | None = None,
    changes: list[str] | None = None,
    train_seed: int | list[int] = 0,
) -> Path:
    """``seed.json``, ``search-2h.json`` (``search-2h-max-epochs-20.json`` for a search given
    more arguments), ``search-2h-ensemble-1.json`` for a reused search,
    ``recipe-hed_jitter-0.1.json`` for a changed recipe, ``recipe-train_seed-1.json`` for
    another training seed, ``recipe-train_seeds-0+1+2.json`` for three averaged."""
    name = f"{arm}-{budget}" if budget else arm
    if submit_args is not None:
        name += f"-{slug(submit_args)}"
    if changes:
        name += f"-{slug(changes)}"
    if isinstance(train_seed, list):
        name += "-train_seeds-" + "+".join(map(str, train_seed))
    elif train_seed:
        name += f"-train_seed-{train_seed}"
    return QUALITY / f"{name}.json"


def search_name(budget: str, search_args: list[str]) -> str:
    """``2h-max-epochs-20`` for a 2-hour search with defaults (the epoch budget ``search.run``
    gives real data and that budget, named: the default has changed, and ``2h`` is the arm of
    its 12-epoch days), ``2h-max-epochs-20-seed-1`` for one given ``--seed 1``: each setting
    has a study folder and a result of its own, so that no arm deletes another's study."""
    if "--max-epochs" not in search_args:
        epochs = default_epochs(argparse.Namespace(data=True, budget=parse_budget(budget)))
        search_args = ["--max-epochs", str(epochs), *search_args]
    return f"{budget}-{slug(search_args)}"


def search_study(split_id: str, name: str) -> str:
    """The study (and folder under bench/results/quality) of the search arm ``name``."""
    return f"quality-{split_id}-{name}"


def saved_search(split_id: str, name: str) -> dict[str, Any]:
    """The saved record of the search arm (``search_name``) whose study ``--reuse-search``
    submits again."""
    path = result_path("search", name)
    study = QUALITY / search_study(split_id, name) / "study.db"
    record = pd.read_json(path, typ="series").to_dict() if path.is_file() else None
    if record is None or record["split"]["split_id"] != split_id or not study.is_file():
        raise SystemExit(
            f"--reuse-search: no saved search arm {name} of split {split_id} ({path} and "
            f"{study} are both needed); run that arm without --reuse-search first"
        )
    if record["result"].get("search_reused_from"):
        raise SystemExit(f"--reuse-search: {path} is itself a reused search; run the arm again")
    return record


def interval(scores: dict[str, Any] | None) -> str:
    if scores is None:
        return "–"
    return f"{scores['auc']:.4f} ({scores['low']:.3f}–{scores['high']:.3f})"


def versus_recipe(unseen: dict[str, Any] | None, recipe: dict[str, Any] | None) -> str:
    """An arm's unseen-slide AUC minus the baseline arm's (the plain recipe unless
    ``--baseline`` names another), paired over the same patches."""
    from pcam.metrics import paired_auc_difference

    if unseen is recipe:
        return "(the baseline)"
    if not unseen or not recipe or unseen["ids_sha256"] != recipe["ids_sha256"]:
        return "–"
    difference, low, high = paired_auc_difference(
        np.asarray(unseen["labels"]),
        np.asarray(unseen["probabilities"]),
        np.asarray(recipe["probabilities"]),
    )
    return f"{difference:+.4f} ({low:+.3f} to {high:+.3f})"


def best_validation(result: dict[str, Any]) -> float | None:
    """An arm's validation AUC at its best epoch (arms saved before that was kept apart from
    the curve stored the whole curve under ``val_auc``)."""
    value = result.get("val_auc")
    return max(value) if isinstance(value, list) else value


def table(split_id: str, *, baseline: str = "recipe") -> str:
    """The Markdown table of every saved result of this split, each arm's unseen-slide AUC
    against the ``baseline`` arm's (a saved result's name)."""
    rows = []
    machines = set()
    records = {}
    for path in sorted(QUALITY.glob("*.json")):
        record = pd.read_json(path, typ="series").to_dict()
        if record.get("split", {}).get("split_id") == split_id:
            records[path.stem] = record
    # An arm's own run ends with this table: a baseline not run yet leaves its column empty.
    missing = baseline not in records
    recipe = None if missing else records[baseline]["result"].get("unseen")
    for record in records.values():
        result = record["result"]
        machines.add(record["machine_line"])
        if result["arm"] == "search":
            name = f"(c) search --budget {result['budget']} + submit"
            tta = "–"
            detail = (
                f"search {result['search_seconds'] / 60:.1f} min + submit "
                f"{result['submit_seconds'] / 60:.1f} min"
                + "".join(
                    f"; {name} {' '.join(result[key])}"
                    for name, key in (("search", "extra_args"), ("submit", "submit_args"))
                    if result.get(key)
                )
                + (
                    f"; the search of {result['search_reused_from'][:7]}, reused"
                    if result.get("search_reused_from")
                    else ""
                )
                + ("; scored after its run" if result.get("scored_later") else "")
            )
        else:
            designs = {"seed": "(a) seed design", "recipe": "(b) hand recipe"}
            design = designs.get(result["arm"], f"(b) prior {result['arm']}")
            name = f"{design}, {result['params']['epochs']} epochs"
            changed = {k: v for k, v in (result.get("changes") or {}).items() if k != "epochs"}
            if changed:
                name += ", " + ", ".join(f"{k}={v}" for k, v in changed.items())
            seeds = result.get("train_seed")
            if isinstance(seeds, list):
                name += f", training seeds {', '.join(map(str, seeds))} averaged"
            elif seeds:
                name += f", training seed {seeds}"
            tta = interval(result["test_tta_d8"])
            epochs = result["best_epoch"]
            detail = (
                f"best epochs {', '.join(map(str, epochs))}"
                if isinstance(epochs, list)
                else f"best epoch {epochs}"
            )
        unseen = result.get("unseen")
        validation = best_validation(result)
        rows.append(
            [
                name,
                interval(result["test"]),
                tta,
                interval(unseen) if unseen else "not measured",
                f"{validation:.4f}" if validation else "–",
                f"{validation - unseen['auc']:+.4f}" if unseen and validation else "–",
                f"{unseen['mean_probability']:.2f}" if unseen else "–",
                versus_recipe(unseen, recipe),
                f"{result['wall_seconds'] / 60:.1f} min",
                detail,
                record["machine"]["commit"][:7],
            ]
        )
    header = [
        "arm",
        "same-slide test AUC (95% CI)",
        "with d8 TTA",
        "unseen-slide AUC, TTA (95% CI)",
        "validation AUC",
        "validation − unseen",
        "unseen mean p",
        f"unseen − {baseline} (paired 95%)",
        "wall",
        "detail",
        "commit",
    ]
    note = (
        [f"(no saved result of split {split_id} is named {baseline}: run that arm)"]
        if missing
        else []
    )
    return "\n".join(
        [format_table(header, rows), *note, "", *(f"machine: {line}" for line in sorted(machines))]
    )


def train_seeds(text: str) -> int | list[int]:
    """``--train-seed``: ``1``, or ``0,1,2`` (several, averaged)."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a seed, or seeds joined by commas") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: a seed repeats")
    return seeds if len(seeds) > 1 else seeds[0]


def seeds_arm(
    split: dict[str, Any],
    arm: str,
    *,
    seeds: list[int],
    unseen: Path,
    change: list[str],
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Each of ``seeds`` as its own arm (a saved result of this split taken as it is: one
    saved before the locked test's probabilities were kept adds to the unseen-slide average
    only), then their average (``averaged_seeds``)."""
    results = []
    for seed in seeds:
        path = result_path(arm, None, changes=change, train_seed=seed)
        saved = pd.read_json(path, typ="series").to_dict() if path.is_file() else None
        if saved and saved["split"]["split_id"] == split["split_id"]:
            print(f"arm {arm}, training seed {seed}: taken from {path}", file=sys.stderr)
            results.append(saved["result"])
            continue
        info = machine_info()
        result = train_once(split, arm, unseen=unseen, changes=changes, train_seed=seed)
        record = {"split": split, "machine": info, "machine_line": describe_machine(info)}
        write_results(arm, {**record, "result": result}, path=path)
        results.append(result)
    return averaged_seeds(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--arm",
        choices=(*ARMS, *PRIOR_ARMS, "all", "table"),
        default="all",
        help="an arm, or a prior's design trained as (b) is (default all: seed, recipe, search)",
    )
    parser.add_argument("--budget", default="30m", help="the search arm's --budget (default 30m)")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument(
        "--unseen",
        type=Path,
        default=DEFAULT_UNSEEN,
        help="labelled patches from slides the sample never saw, scored for every arm "
        f"(default {DEFAULT_UNSEEN})",
    )
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--change",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="(a), (b) or a prior: train with this ModelParams field changed, e.g. hed_jitter=0.1; "
        "repeatable; saved apart from the plain arm",
    )
    parser.add_argument(
        "--train-seed",
        type=train_seeds,
        default=0,
        metavar="N[,N...]",
        help="(a), (b) or a prior: the training seed (weights, dropout, augmentation; the split "
        "stays), saved apart from seed 0; several (0,1,2): each trained (or its saved result "
        "taken), then their probabilities averaged and saved as one more result",
    )
    parser.add_argument(
        "--baseline",
        default="recipe",
        help="the saved arm every unseen-slide AUC is paired against in the table, by its "
        "result's name, e.g. recipe-hed_jitter-0.1 (default recipe)",
    )
    parser.add_argument(
        "--search-args",
        default="",
        help="more arguments for search.run in the search arm, e.g. '--pruner none'",
    )
    parser.add_argument(
        "--submit-args",
        default="",
        help="more arguments for search.submit in the search arm, e.g. '--ensemble 1'",
    )
    parser.add_argument(
        "--reuse-search",
        action="store_true",
        help="(c) only: run search.submit (with --submit-args) on the saved search arm's study "
        "of this split and budget instead of searching again",
    )
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="(c) only: score the submission and model that the arm's run already left in its "
        "folder (one whose scoring step stopped), without searching or submitting again",
    )
    args = parser.parse_args(argv)
    if (args.reuse_search or args.score_only) and args.arm != "search":
        parser.error("--reuse-search and --score-only go with --arm search")
    if args.reuse_search and args.score_only:
        parser.error("--score-only scores the arm's own run; it does not go with --reuse-search")
    if (args.change or args.train_seed) and args.arm in ("search", "all", "table"):
        parser.error("--change and --train-seed go with --arm seed, recipe or a prior's name")
    if not args.unseen.is_dir():
        parser.error(f"--unseen {args.unseen}: no such folder; pass the unseen-slide patches")
    changes = parse_changes(args.change)
    if not (args.sample / "train_labels.csv").is_file():
        parser.error(f"--sample {args.sample}: no train_labels.csv; pass the real PCam sample")
    split = lock_split(args.sample, QUALITY, seed=args.split_seed, test_size=TEST_PATCHES)
    print(
        f"split {split['split_id']}: {split['searched_patches']} patches to search on, "
        f"{split['locked_patches']} locked away ({split['locked_positives']} positive)",
        file=sys.stderr,
    )
    arms = ARMS if args.arm == "all" else (() if args.arm == "table" else (args.arm,))
    for arm in arms:
        info = machine_info()
        print(f"arm {arm}: {describe_machine(info)}", file=sys.stderr, flush=True)
        searched = search_name(args.budget, args.search_args.split())
        path = result_path(
            arm,
            searched if arm == "search" else None,
            changes=args.change,
            train_seed=args.train_seed,
        )
        if arm == "search":
            reused = saved_search(split["split_id"], searched) if args.reuse_search else None
            result = search_arm(
                split,
                args.budget,
                extra=args.search_args.split(),
                submit_extra=args.submit_args.split(),
                unseen=args.unseen,
                reused=reused,
                score_only=args.score_only,
            )
            if reused:
                path = result_path(arm, searched, submit_args=result["submit_args"])
        elif isinstance(args.train_seed, list):
            result = seeds_arm(
                split,
                arm,
                seeds=args.train_seed,
                unseen=args.unseen,
                change=args.change,
                changes=changes,
            )
        else:
            result = train_once(
                split, arm, unseen=args.unseen, changes=changes, train_seed=args.train_seed
            )
        write_results(
            arm,
            {
                "split": split,
                "machine": info,
                "machine_line": describe_machine(info),
                "result": result,
            },
            path=path,
        )
        print(
            f"arm {arm}: same-slide test AUC {interval(result['test'])}, unseen slides "
            f"{interval(result['unseen'])}",
            file=sys.stderr,
            flush=True,
        )
    print(table(split["split_id"], baseline=args.baseline))
    return 0


if __name__ == "__main__":
    run_cli(main)
