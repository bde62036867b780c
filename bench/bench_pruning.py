"""Would the pruner throw the winning model away? Recorded learning curves, replayed.

``python bench/bench_pruning.py`` takes the validation curves that ``bench_quality.py`` saved
for the seed design (arm a) and the hand-written recipe (arm b), and trains the same recipe
for ``--old-bn-epochs`` epochs once more with Keras' default batch-norm momentum (0.99, what
every model had before the momentum followed the epoch), on the same split and seed. Then it
replays the curves through Optuna's own pruners, old and new settings, for a 12-epoch budget:
six trials that follow the seed design's curve (plus N(0, 0.01) noise, one draw per replay)
finish first, then the recipe reports epoch by epoch and the pruner is asked after each.
Each replay shifts the recipe's trial number so that Hyperband puts it in each of its
brackets. The question is whether the recipe — the better model by epoch 4 and by far at the
end — is pruned before it gets there.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
from common import RESULTS, describe_machine, format_table, machine_info, write_results
from optuna.trial import FrozenTrial, TrialState

from pcam.errors import run_cli
from pcam.metrics import auc_interval
from search.pruning import (
    FarBelowIncumbent,
    best_up_to,
    beyond_noise,
    first_judged_epoch,
    make_pruner,
)

BUDGET = 12
REPLAYS = 30
QUALITY = RESULTS / "quality"


def old_bn_curve(epochs: int) -> list[float]:
    """The recipe's validation curve with Keras' default momentum, on bench_quality's split."""
    import pcam.model
    from pcam.data import load_training_data
    from pcam.train import train
    from search.priors import HAND_RECIPE

    split = json.loads((QUALITY / "recipe.json").read_text())["split"]
    data = load_training_data(split["data"], seed=0, val_fraction=0.2, progress=False)
    pcam.model.bn_momentum = lambda steps_per_epoch: 0.99  # the code before the change
    result = train(HAND_RECIPE, data.train, data.val, seed=0, epochs=epochs, verbose=2)
    return result.val_auc


def replay(pruner: Callable[[], optuna.pruners.BasePruner], seed_curve, recipe) -> list[int | None]:
    """The epoch at which each replay pruned the recipe (None: it ran to the end)."""
    pruned_at = []
    for replay_number in range(REPLAYS):
        rng = np.random.default_rng(replay_number)
        study = optuna.create_study(direction="maximize", pruner=pruner())
        for _ in range(6):
            trial = study.ask()
            curve = np.asarray(seed_curve) + rng.normal(0, 0.01, len(seed_curve))
            for epoch, value in enumerate(curve):
                trial.report(float(value), epoch)
                trial.should_prune()  # rung-based pruners record each trial's rungs here
            study.tell(trial, float(curve.max()))
        for _ in range(replay_number % 5):  # another trial number: another Hyperband bracket
            study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
        trial = study.ask()
        at = None
        for epoch, value in enumerate(recipe):
            trial.report(float(value), epoch)
            if epoch + 1 < len(recipe) and trial.should_prune():
                at = epoch + 1
                break
        if at is None:
            study.tell(trial, max(recipe))
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        pruned_at.append(at)
    return pruned_at


ARMS = ("seed", "recipe", "recipe-hed_jitter-0.1", "recipe-input_norm-per_patch")
VAL_PATCHES, VAL_POSITIVES = 600, 246  # bench_quality's validation split


def recorded_curves() -> dict[str, list[float]]:
    """bench_quality's saved validation curves, each cut (or held at its end) to ``BUDGET``."""
    curves = {}
    for arm in ARMS:
        path = QUALITY / f"{arm}.json"
        if path.is_file():
            result = json.loads(path.read_text())["result"]
            curve = result.get("val_auc_curve") or result["val_auc"]  # older files: the curve
            curves[arm] = (curve + [curve[-1]] * BUDGET)[:BUDGET]
    return curves


def incumbent_replay(
    pruner: Callable[[], optuna.pruners.BasePruner], incumbent: list[float], candidate: list[float]
) -> list[int | None]:
    """The epoch at which ``pruner`` stopped ``candidate`` after ``incumbent`` completed, over
    ``REPLAYS`` draws of N(0, 0.01) noise on both (None: it ran on)."""
    pruned_at = []
    for replay_number in range(REPLAYS):
        rng = np.random.default_rng(1000 + replay_number)
        # Hyperband puts a trial in a bracket by a hash of the study's name and the trial's
        # number: a named study replays the same brackets under every pruner compared.
        study = optuna.create_study(
            study_name=f"replay-{replay_number}", direction="maximize", pruner=pruner()
        )
        study.set_user_attr("val_positives", VAL_POSITIVES)
        study.set_user_attr("val_patches", VAL_PATCHES)
        for curve, last in ((incumbent, False), (candidate, True)):
            noisy = np.clip(np.asarray(curve) + rng.normal(0, 0.01, len(curve)), 0, 1)
            trial = study.ask()
            at = None
            for epoch, value in enumerate(noisy):
                trial.report(float(value), epoch)
                if trial.should_prune() and last and epoch + 1 < len(noisy):
                    at = epoch + 1
                    break
            study.tell(trial, float(noisy.max()) if at is None else None,
                       state=None if at is None else optuna.trial.TrialState.PRUNED)  # fmt: skip
        pruned_at.append(at)
    return pruned_at


def plain_hyperband(max_epochs: int = BUDGET) -> optuna.pruners.BasePruner:
    """The default pruner without the far-below-the-incumbent rule (as before issue 26)."""
    first = first_judged_epoch(max_epochs)
    return optuna.pruners.HyperbandPruner(
        min_resource=first, max_resource=max_epochs, reduction_factor=3
    )


def incumbent_table(curves: dict[str, list[float]]) -> tuple[list[list[str]], dict]:
    """Every recorded curve as the candidate after every other as the incumbent."""
    rows, record = [], {}
    for incumbent, first in curves.items():
        low, _ = auc_interval(max(first), VAL_POSITIVES, VAL_PATCHES - VAL_POSITIVES)
        for candidate, second in curves.items():
            if candidate == incumbent:
                continue
            alone = incumbent_replay(plain_hyperband, first, second)
            joined = incumbent_replay(lambda: make_pruner("hyperband", BUDGET), first, second)
            verdict = "far below" if max(second) < low else "inside or above"
            shown = f"{max(second):.3f} ({verdict})"
            rows.append([incumbent, candidate, shown, describe(alone), describe(joined)])
            record[f"{candidate} after {incumbent}"] = {"hyperband": alone, "with_rule": joined}
    return rows, record


class RuleAlone(FarBelowIncumbent, optuna.pruners.NopPruner):
    """The far-below-the-incumbent rule as every pruner carries it, without the pruner."""

    def __init__(self, first_step: int) -> None:
        self.first_step = first_step


class BelowEveryCurve(optuna.pruners.BasePruner):
    """The stricter variant: a trial is judged against the best value *any* complete trial
    had reached by the same epoch (the upper envelope of their curves), not only the best
    trial's curve — a fast starter that ended lower then sets the early bar."""

    def __init__(self, first_step: int) -> None:
        self.first_step = first_step

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.first_step:
            return False
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        reached = [value for t in done if (value := best_up_to(t, step)) is not None]
        return bool(reached) and beyond_noise(study, best_up_to(trial, step), max(reached))


def stopped_after(
    pruner: optuna.pruners.BasePruner,
    before: list[FrozenTrial],
    curve: list[float],
    *,
    positives: int,
    patches: int,
) -> int | None:
    """The epoch after which ``pruner`` stops a trial following ``curve``, the trials in
    ``before`` complete, on a validation set of ``patches`` with ``positives`` (None: not
    within the epochs the curve holds)."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    study.set_user_attr("val_positives", positives)
    study.set_user_attr("val_patches", patches)
    study.add_trials(before)
    trial = study.ask()
    for epoch, value in enumerate(curve):
        trial.report(value, epoch)
        if trial.should_prune():
            return epoch + 1
    return None


def in_order(study: optuna.Study) -> list[dict]:
    """Every sampled trial of a real study, replayed through the rule and its stricter
    variant against the trials that had completed when it started."""
    trials = sorted(
        (
            t
            for t in study.trials
            if t.intermediate_values and t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        ),
        key=lambda t: t.datetime_start,
    )
    first_step = first_judged_epoch(study.user_attrs["study_defining"]["max_epochs"]) - 1
    positives, patches = study.user_attrs["val_positives"], study.user_attrs["val_patches"]
    best = study.best_trial
    low, _ = auc_interval(best.value, positives, patches - positives)
    rows = []
    for candidate in trials:
        if candidate.user_attrs.get("role"):  # the seed design and the priors: never pruned
            continue
        before = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE and t.datetime_complete <= candidate.datetime_start
        ]
        curve = [candidate.intermediate_values[s] for s in sorted(candidate.intermediate_values)]
        judged = {"positives": positives, "patches": patches}
        rule = stopped_after(RuleAlone(first_step), before, curve, **judged) if before else None
        strict = stopped_after(BelowEveryCurve(first_step), before, curve, **judged)
        rows.append(
            {
                "study": study.study_name,
                "trial": candidate.number,
                "epochs_run": len(curve),
                "best": max(curve),
                "winner": candidate.number == best.number or max(curve) >= low,
                "seconds_per_epoch": candidate.user_attrs.get("seconds_per_epoch"),
                "rule": rule,
                "every_curve": strict if before else None,
            }
        )
    return rows


def in_order_table(storages: list[Path]) -> tuple[list[list[str]], list[dict]]:
    """``in_order`` over every study of the given SQLite files."""
    replayed = []
    for path in storages:
        url = f"sqlite:///{path}"
        for name in optuna.get_all_study_names(url):
            replayed += in_order(optuna.load_study(study_name=name, storage=url))
    rows = []
    for r in replayed:
        saved = "–"
        if r["every_curve"] and r["seconds_per_epoch"]:
            earlier = (r["rule"] or r["epochs_run"]) - r["every_curve"]
            saved = f"{max(earlier, 0) * r['seconds_per_epoch'] / 60:.1f}"
        rows.append(
            [
                r["study"],
                str(r["trial"]),
                f"{r['best']:.3f}" + (" (**best or tie**)" if r["winner"] else ""),
                str(r["epochs_run"]),
                str(r["rule"] or "–"),
                str(r["every_curve"] or "–"),
                saved,
            ]
        )
    return rows, replayed


def describe(pruned_at: list[int | None]) -> str:
    epochs = sorted({at for at in pruned_at if at is not None})
    count = sum(at is not None for at in pruned_at)
    where = f" (epochs {', '.join(map(str, epochs))})" if count else ""
    return f"{count}/{len(pruned_at)}{where}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old-bn-epochs", type=int, default=6)
    parser.add_argument(
        "--incumbent-only",
        action="store_true",
        help="only replay the far-below-the-incumbent rule on the recorded curves (no training)",
    )
    parser.add_argument(
        "--in-order",
        action="store_true",
        help="no training: replay every sampled trial of bench_quality's search studies and "
        "record_curves' study, in the order they ran, through the rule and a stricter variant",
    )
    args = parser.parse_args(argv)
    if args.in_order:
        return in_order_main()
    if not (QUALITY / "seed.json").is_file() or not (QUALITY / "recipe.json").is_file():
        parser.error("run python bench/bench_quality.py --arm seed and --arm recipe first")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    info = machine_info()
    print(f"machine: {describe_machine(info)}")
    rows, incumbents = incumbent_table(recorded_curves())
    header = ["incumbent", "candidate", "candidate's best", "pruned: Hyperband", "+ the rule"]
    print(format_table(header, rows))
    if args.incumbent_only:
        write_results("bench_pruning_incumbent", {"machine": info, "pruned_at": incumbents})
        return 0
    seed_curve = json.loads((QUALITY / "seed.json").read_text())["result"]["val_auc"]
    recipe_new = json.loads((QUALITY / "recipe.json").read_text())["result"]["val_auc"]
    seed_curve = (seed_curve + [seed_curve[-1]] * BUDGET)[:BUDGET]  # a 10-epoch run, held
    recipe_new = recipe_new[:BUDGET]
    measured = old_bn_curve(args.old_bn_epochs)
    recipe_old = (measured + [max(measured)] * BUDGET)[:BUDGET]  # held at its best after that
    pruners = {
        "Hyperband, min resource 1 (old default)": lambda: optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=BUDGET, reduction_factor=3
        ),
        "Hyperband, min resource 3 (new default)": lambda: make_pruner("hyperband", BUDGET),
        "median, warm-up 1 epoch (old)": lambda: optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=1
        ),
        "median, warm-up 3 epochs (new)": lambda: make_pruner("median", BUDGET),
    }
    rows, record = [], {}
    for name, pruner in pruners.items():
        old, new = replay(pruner, seed_curve, recipe_old), replay(pruner, seed_curve, recipe_new)
        rows.append([name, describe(old), describe(new)])
        record[name] = {"old_bn": old, "new_bn": new}
    print("seed design      ", " ".join(f"{v:.3f}" for v in seed_curve))
    print("recipe, BN 0.99  ", " ".join(f"{v:.3f}" for v in measured), "(measured; then held)")
    print("recipe, BN/epoch ", " ".join(f"{v:.3f}" for v in recipe_new))
    header = ["pruner (12-epoch budget)", "recipe pruned, BN momentum 0.99", "BN per epoch"]
    print(format_table(header, rows))
    write_results(
        "bench_pruning",
        {
            "machine": info,
            "seed_curve": seed_curve,
            "recipe_old_bn_measured": measured,
            "recipe_new_bn": recipe_new,
            "replays": REPLAYS,
            "pruned_at": record,
        },
    )
    return 0


def in_order_main() -> int:
    storages = sorted(QUALITY.glob("quality-*/study.db")) + sorted(
        (RESULTS / "curves").glob("*.db")
    )
    if not storages:
        raise SystemExit(
            f"no study under {QUALITY} or {RESULTS / 'curves'}: run bench_quality.py --arm "
            "search or bench/record_curves.sh first"
        )
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    info = machine_info()
    print(f"machine: {describe_machine(info)}")
    rows, replayed = in_order_table(storages)
    header = [
        "study",
        "trial",
        "its best validation AUC",
        "epochs it ran",
        "the rule stops it after",
        "against every curve",
        "minutes the variant saves",
    ]
    print(format_table(header, rows))
    write_results("bench_pruning_in_order", {"machine": info, "trials": replayed})
    return 0


if __name__ == "__main__":
    run_cli(main)
