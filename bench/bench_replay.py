"""Search strategies replayed on recorded learning curves: a tabular benchmark.

A real 2-hour search costs a session; comparing samplers and pruners that way costs one per
strategy and seed. Instead, the full validation curves and per-epoch costs of many trials are
recorded once on the sample, with pruning off (``bench/record_curves.sh``, resumable,
run in the background across sessions), exported to ``bench/data/curves.json`` (committed), and
every strategy is replayed against them, in the spirit of LCBench and HPOBench:

- Optuna's real sampler asks for values over ``search.space.SPACE``; the recorded trial
  nearest to them (``Table.nearest``: L1 over values scaled to [0, 1], log ranges on the log
  scale, a different choice counting 1) stands in for the model it would have trained: a
  1-nearest-neighbour surrogate, scored on held-out recorded trials with every replay.
- A local phase (a share of sampled trials spent perturbing the incumbent) takes the table's
  recorded perturbations of that incumbent first, each once (``bench/record_local.py``
  records them by the same rule), which the table answers exactly; then new ones.
- The search's own rules (``search.objective``) run on a simulated clock: the seed design
  and the priors first (in ``search.priors``' order, or the order before issue 26) and never
  pruned, the per-trial cap (half the budget; not for the seed design) on the recorded
  projection of the first batches and again after two epochs, no sampled trial
  started whose first judged epoch would fall after the budget's end, the real pruner
  (``search.pruning.make_pruner``) asked after every epoch of a sampled trial, which counts
  when cut by the budget once past its first judged epoch.

Per strategy and seed it reports the best validation AUC the search holds at the budget's end,
the simulated minutes until it first holds the priors' best value, and the share of minutes
spent on trials whose recorded curve ends below the seed design's. ``python
bench/bench_replay.py`` runs in seconds; the same ``--seeds`` give the same table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from bench_pruning import plain_hyperband
from common import format_table, machine_info

from search.priors import PRIOR_ROLE, SEED_BASELINE_ROLE, prior_values
from search.pruning import first_judged_epoch, make_pruner
from search.space import SPACE, Dimension, suggest
from search.study import make_sampler

DATA = Path(__file__).resolve().parent / "data" / "curves.json"
REPEAT_ROLE = "repeat"  # a seed design or prior of a table's later study: another draw of it
LOCAL_ROLE = "local"  # a perturbation of the best prior (bench/record_local.py): a sampled trial
SPEED_CHECK_SHARE = 6  # batches the real speed check times before it stops a too-slow trial
PRIOR_ORDER = tuple(name for name, _ in prior_values())  # the order a study runs them in
# ... and the order they ran in before issue 26 moved the strongest to the front
PRIOR_ORDER_BEFORE_26 = ("hand_recipe", "recipe_cosine", "recipe_96_one_cycle")


@dataclass(frozen=True)
class Recorded:
    """One recorded trial: what it searched, its whole validation curve and what each part
    cost (seconds on the machine that recorded it)."""

    number: int
    role: str  # seed_baseline, prior, sampled, local (``LOCAL_ROLE``) or repeat (``REPEAT_ROLE``)
    values: dict[str, Any]
    curve: tuple[float, ...]  # the validation AUC after each epoch; empty if it was too slow
    start_seconds: float  # building the model, before its first epoch
    # each epoch, validation included; a too-slow trial's first two if it ran them
    epoch_seconds: tuple[float, ...]
    projected_seconds: float  # the whole run, as the speed check projected it
    steps_per_epoch: int
    epochs: int  # the run's epoch budget, which ``projected_seconds`` covers
    source: str = ""  # study#trial it was recorded as
    perturbs: str = ""  # a local trial's origin: the source of the trial it perturbs

    @property
    def best(self) -> float:
        return max(self.curve) if self.curve else math.nan

    @property
    def total_seconds(self) -> float:
        return (
            self.start_seconds + sum(self.epoch_seconds) if self.curve else self.projected_seconds
        )

    @property
    def speed_check_seconds(self) -> float:
        """What the speed check costs before it stops the run: its first few batches."""
        first = self.epoch_seconds[0] if self.curve else self.projected_seconds / self.epochs
        return self.start_seconds + first * min(1.0, SPEED_CHECK_SHARE / self.steps_per_epoch)


@dataclass(frozen=True)
class Table:
    trials: tuple[Recorded, ...]
    max_epochs: int
    val_patches: int
    val_positives: int
    source: dict[str, Any]

    @property
    def complete(self) -> tuple[Recorded, ...]:
        return tuple(t for t in self.trials if t.curve)

    def role(self, role: str) -> list[Recorded]:
        return [t for t in self.trials if t.role == role]

    @property
    def seed_value(self) -> float:
        return self.role(SEED_BASELINE_ROLE)[0].best

    @property
    def priors_best(self) -> float:
        return max(t.best for t in self.role(SEED_BASELINE_ROLE) + self.role(PRIOR_ROLE))

    def priors_in(self, order: tuple[str, ...]) -> list[Recorded]:
        """The recorded priors in ``order`` (names of ``search.priors``), each known by its
        values; one that matches no name keeps its place after those that do."""
        named = dict(prior_values())

        def place(trial: Recorded) -> int:
            matches = (i for i, name in enumerate(order) if name in named
                       and distance(named[name], trial.values) < 1e-9)  # fmt: skip
            return next(matches, len(order))

        return sorted(self.role(PRIOR_ROLE), key=place)

    def nearest(self, values: dict[str, Any], *, among: tuple[Recorded, ...] | None = None):
        """The recorded trial whose values lie nearest ``values`` (ties: the lowest number)."""
        return min(among or self.trials, key=lambda t: (distance(values, t.values), t.number))


def distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """L1 over ``SPACE``: ranges scaled to [0, 1] (log ranges on the log scale), a different
    choice counting 1; a value one side lacks counts 1."""
    total = 0.0
    for dim in SPACE:
        x, y = a.get(dim.name), b.get(dim.name)
        if x is None or y is None:
            total += 1.0
        elif dim.choices is not None:
            total += float(x != y)
        elif dim.log:
            total += abs(math.log(x) - math.log(y)) / math.log(dim.high / dim.low)
        else:
            total += abs(x - y) / (dim.high - dim.low)
    return total


def _recorded(raw: dict[str, Any]) -> Recorded:
    return Recorded(
        **{**raw, "curve": tuple(raw["curve"]), "epoch_seconds": tuple(raw["epoch_seconds"])}
    )


def load(path: Path = DATA) -> Table:
    if not path.is_file():
        raise SystemExit(
            f"--table {path}: no recorded curves there; record them with bench/record_curves.sh "
            "and export them with --export STORAGE STUDY"
        )
    raw = json.loads(path.read_text())
    trials = tuple(_recorded(t) for t in raw["trials"])
    return Table(trials, raw["max_epochs"], raw["val_patches"], raw["val_positives"], raw["source"])


def recorded_trial(
    trial: optuna.trial.FrozenTrial, *, number: int, max_epochs: int, train_patches: int, study: str
) -> Recorded | None:
    """A study's trial as the table's trial ``number``; None for one that tells nothing whole
    (pruned by a pruner, cut by a budget, failed, still queued or running)."""
    if trial.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
        return None
    attrs = trial.user_attrs
    role = attrs.get("role", "sampled")
    steps = math.ceil(train_patches / trial.params["batch_size"])
    common = {
        "number": number,
        "source": f"{study}#{trial.number}",
        "role": role if role in (SEED_BASELINE_ROLE, PRIOR_ROLE, LOCAL_ROLE) else "sampled",
        "values": dict(trial.params),
        "steps_per_epoch": steps,
        "epochs": max_epochs,
        "projected_seconds": float(attrs.get("projected_seconds", math.nan)),
        "perturbs": attrs.get("perturbs", "") if role == LOCAL_ROLE else "",
    }
    if trial.state == optuna.trial.TrialState.PRUNED and "too slow" in attrs.get(
        "prune_reason", ""
    ):
        # Stopped at its first batches, or after two epochs (then timed): no curve either
        # way, since two epochs say little of where it would have ended.
        if "first two epochs" not in attrs["prune_reason"]:
            return Recorded(**common, curve=(), start_seconds=0.0, epoch_seconds=())
        first = attrs["first_epoch_seconds"]  # training only; the second holds two validations
        second = 2 * attrs["seconds_per_epoch"] - first
        return Recorded(
            **common,
            curve=(),
            start_seconds=attrs.get("build_seconds", 0.0),
            epoch_seconds=(round(first, 2), round(second, 2)),
        )
    curve = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    if trial.state != optuna.trial.TrialState.COMPLETE or len(curve) != max_epochs:
        return None
    wall = attrs["seconds_per_epoch"] * max_epochs
    first = attrs["first_epoch_seconds"]
    steady = (wall - first) / (max_epochs - 1)
    return Recorded(
        **common,
        curve=tuple(round(v, 6) for v in curve),
        start_seconds=attrs.get("build_seconds", 0.0),
        epoch_seconds=(round(first, 2),) + (round(steady, 2),) * (max_epochs - 1),
    )


def export(sources: list[tuple[str, str]], out: Path, *, add: bool = False) -> Table:
    """Every whole recorded trial of the given (storage, study) pairs, as ``out``'s table;
    with ``add``, added to the trials ``out`` already holds (a study exported again replaces
    its old trials), so that curves recorded on several machines, one session each, make one
    table. The studies must share the data split, the validation set and the epoch budget.

    The table's first study is its reference: its seed design and priors are the ones a
    replay queues (a later study's are kept as repeats, more draws of the same designs), and
    costs are in seconds of its machine: another study's are scaled by how long its seed
    design's epochs took against the reference's (machines of one kind can differ 5x)."""
    kept: list[dict[str, Any]] = []
    source: dict[str, Any] = {"studies": [], "seed_epoch_seconds": {}}
    shared = None
    if add and out.exists():
        before = json.loads(out.read_text())
        source = before["source"]
        shared = (
            source["data_content"],
            before["max_epochs"],
            before["val_patches"],
            before["val_positives"],
        )
        again = {name for _, name in sources} - {source["studies"][0]}
        kept = [t for t in before["trials"] if t["source"].split("#")[0] not in again]
        source["studies"] = [name for name in source["studies"] if name not in again]
    trials = [_recorded(t) for t in kept]
    for storage, name in sources:
        study = optuna.load_study(study_name=name, storage=storage)
        attrs = study.user_attrs
        key = (
            attrs["data_content"],
            attrs["study_defining"]["max_epochs"],
            attrs["val_patches"],
            attrs["val_positives"],
        )
        if shared not in (None, key):
            raise SystemExit(f"study {name!r}: another split or epoch budget than {out}'s")
        shared = key
        found = [
            recorded_trial(
                trial,
                number=0,
                max_epochs=key[1],
                train_patches=int(attrs["train_patches"]),
                study=name,
            )
            for trial in study.trials
        ]
        found = [t for t in found if t is not None]
        seed = [t for t in found if t.role == SEED_BASELINE_ROLE and t.curve]
        if not seed:
            raise SystemExit(f"study {name!r}: no whole seed-design trial to time its machine by")
        if name in source["studies"]:  # the reference, exported again
            trials = [t for t in trials if t.source.split("#")[0] != name]
        else:
            source["studies"].append(name)
        # The least disturbed of its seed-design runs: something else on the machine only slows
        source["seed_epoch_seconds"][name] = min(
            statistics.median(t.epoch_seconds[1:] or t.epoch_seconds) for t in seed
        )
        reference = source["studies"][0]
        scale = source["seed_epoch_seconds"][reference] / source["seed_epoch_seconds"][name]
        added = [
            dataclasses.replace(
                t,
                role=t.role
                if name == reference or t.role in ("sampled", LOCAL_ROLE)
                else REPEAT_ROLE,
                start_seconds=round(t.start_seconds * scale, 2),
                epoch_seconds=tuple(round(e * scale, 2) for e in t.epoch_seconds),
                projected_seconds=t.projected_seconds * scale,
            )
            for t in found
        ]
        trials = added + trials if name == reference else trials + added
    raw = {
        "source": {
            **source,
            "data_content": shared[0],
            "recorded_with": "bench/record_curves.sh (--sampler random --pruner none) and "
            "the whole trials of bench_quality.py's search arms",
            "exported_on": machine_info(with_keras=False),
        },
        "max_epochs": shared[1],
        "val_patches": shared[2],
        "val_positives": shared[3],
        "trials": [
            dataclasses.asdict(dataclasses.replace(t, number=n)) for n, t in enumerate(trials)
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(raw, indent=1) + "\n")
    return load(out)


@dataclass(frozen=True)
class Strategy:
    """How a search picks and stops trials: a sampler, a pruner, the priors and their order,
    and the share of sampled trials spent on perturbations of the incumbent (a local phase)."""

    name: str
    sampler: str
    pruner: Callable[[int], optuna.pruners.BasePruner]
    priors: bool = True
    local: float = 0.0
    prior_order: tuple[str, ...] = PRIOR_ORDER


def _hyperband(max_epochs: int) -> optuna.pruners.BasePruner:
    return make_pruner("hyperband", max_epochs)


STRATEGIES = (
    Strategy(
        "TPE, Hyperband (before issue 26)",
        "tpe",
        plain_hyperband,
        prior_order=PRIOR_ORDER_BEFORE_26,
    ),
    Strategy("TPE, Hyperband + far-below (default)", "tpe", _hyperband),
    Strategy(
        "the default, priors in the order before issue 26",
        "tpe",
        _hyperband,
        prior_order=PRIOR_ORDER_BEFORE_26,
    ),
    Strategy("TPE + local half, Hyperband + far-below", "tpe", _hyperband, local=0.5),
    Strategy("random, Hyperband + far-below", "random", _hyperband),
    Strategy("TPE, no pruning", "tpe", lambda max_epochs: make_pruner("none", max_epochs)),
)


@dataclass(frozen=True)
class Span:
    """One simulated trial: when it ran, what stood in for it, how it ended."""

    start: float
    seconds: float
    recorded: Recorded
    counted: float | None  # the value the search holds for it; None: pruned or cut uncounted


def perturb(values: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """The incumbent's values with one to three of them moved: a choice to another, a range
    by a normal step of 15% of its width (on the log scale for log ranges), reflected at its
    ends. Drawn again until some value differs (a step can round back to where it started)."""
    dims = [dim for dim in SPACE if dim.choices is None or len(dim.choices) > 1]
    moved = dict(values)
    while moved == values:
        moved = dict(values)
        for index in rng.choice(len(dims), size=int(rng.integers(1, 4)), replace=False):
            moved[dims[index].name] = _moved(dims[index], moved[dims[index].name], rng)
    return moved


def _moved(dim: Dimension, value: Any, rng: np.random.Generator) -> Any:
    if dim.choices is not None:
        others = [c for c in dim.choices if c != value]
        return others[int(rng.integers(len(others)))]
    scale = (math.log, math.exp) if dim.log else (float, float)
    low, high = scale[0](dim.low), scale[0](dim.high)
    x = scale[0](value) + rng.normal(0, 0.15 * (high - low))
    x = low + abs(x - low) if x < low else high - abs(high - x) if x > high else x
    x = scale[1](min(max(x, low), high))
    return round(x) if dim.integer else x


def local_move(incumbent: Recorded, pool: list[Recorded], rng: np.random.Generator) -> dict:
    """A local phase's next point: a recorded perturbation of the incumbent while the table
    has one left (``pool``, in a seeded order, each used once: the table answers it exactly),
    else a new perturbation, which the nearest recorded trial answers."""
    for index, recorded in enumerate(pool):
        if recorded.perturbs and recorded.perturbs == incumbent.source:
            return dict(pool.pop(index).values)
    return perturb(incumbent.values, rng)


def run_trial(
    trial: optuna.Trial,
    recorded: Recorded,
    *,
    left: float,
    cap: float | None,
    judged: bool,
    max_epochs: int,
) -> tuple[float, float | None]:
    """The search's rules (``search.objective``) for one trial with ``left`` seconds of
    budget: (seconds spent, the value it counts with, or None). A trial that is not
    ``judged`` (the seed design, a prior) is never pruned and may start late."""
    first = first_judged_epoch(max_epochs)
    limits = [cap, left * max_epochs / first if judged else None]
    limit = min((c for c in limits if c is not None), default=math.inf)
    first_batches = recorded.projected_seconds  # what the speed check saw
    if not math.isfinite(first_batches):
        first_batches = recorded.total_seconds
    if not recorded.epoch_seconds or first_batches > limit:
        return min(max(recorded.speed_check_seconds, 1.0), left), None  # too slow: at once
    # The first batches can under-read a trial (they leave validation out, and a heavy
    # model's later batches run slower): the speed check's second look, after two epochs and
    # against the per-trial cap, stops it then (judged here on the recorded whole cost rather
    # than those epochs' own projection), unless the budget's end or the pruner came first.
    # A trial recorded as stopped there has its two epochs and no curve.
    rechecked = not recorded.curve or (
        cap is not None
        and recorded.total_seconds > cap
        and max_epochs > 2
        and recorded.steps_per_epoch > 1
    )
    spent = recorded.start_seconds
    for epoch, seconds in enumerate(recorded.epoch_seconds):
        if spent + seconds > left:  # the budget ends within this epoch
            counts = bool(recorded.curve) and epoch >= (first if judged else 1)
            return left, (max(recorded.curve[:epoch]) if counts else None)
        spent += seconds
        if recorded.curve:
            trial.report(recorded.curve[epoch], epoch)
            if judged and epoch + 1 < len(recorded.curve) and trial.should_prune():
                return spent, None
        if epoch == 1 and rechecked:
            return spent, None
    return spent, recorded.best


def simulate(table: Table, strategy: Strategy, *, budget: float, seed: int) -> list[Span]:
    """One search of ``budget`` simulated seconds over the recorded trials."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(
        study_name=f"replay-{seed}",
        direction="maximize",
        sampler=make_sampler(strategy.sampler, seed),
        pruner=strategy.pruner(table.max_epochs),
    )
    study.set_user_attr("val_positives", table.val_positives)
    study.set_user_attr("val_patches", table.val_patches)
    priors = table.priors_in(strategy.prior_order) if strategy.priors else []
    queued = table.role(SEED_BASELINE_ROLE) + priors
    for recorded in queued:
        study.enqueue_trial(recorded.values, user_attrs={"role": recorded.role})
    local = table.role(LOCAL_ROLE)
    pool = [local[i] for i in rng.permutation(len(local))]  # the recorded ones, each used once
    clock, spans = 0.0, []
    while clock < budget:
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if not waiting and rng.random() < strategy.local:  # once the seed and priors have run
            counted = [s for s in spans if s.counted is not None]
            if counted:
                incumbent = max(counted, key=lambda s: s.counted).recorded
                study.enqueue_trial(local_move(incumbent, pool, rng))
        trial = study.ask()
        suggest(trial, max_epochs=table.max_epochs)
        recorded = table.nearest(trial.params)
        role = trial.user_attrs.get("role")
        seconds, counted = run_trial(
            trial,
            recorded,
            left=budget - clock,
            cap=None if role == SEED_BASELINE_ROLE else budget / 2,
            judged=role is None,
            max_epochs=table.max_epochs,
        )
        if counted is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, counted)
        spans.append(Span(clock, seconds, recorded, counted))
        clock += seconds
    return spans


def summarise(table: Table, spans: list[Span]) -> dict[str, float | None]:
    """What one simulated search reached and where its minutes went."""
    used = sum(s.seconds for s in spans)
    reached = [s for s in spans if s.counted is not None]
    target = table.priors_best - 1e-9
    hit = next((s for s in reached if s.counted >= target), None)
    below = [s for s in spans if s.recorded.curve and s.recorded.best < table.seed_value]
    losers = sum(s.seconds for s in below)
    return {
        "best": max((s.counted for s in reached), default=math.nan),
        "minutes_to_priors_best": None if hit is None else (hit.start + hit.seconds) / 60,
        "below_seed_share": losers / used,
        "counted": len(reached),
        "trials": len(spans),
    }


def surrogate_quality(table: Table) -> dict[str, float]:
    """Each whole recorded trial's best AUC predicted by its nearest other one (leave one
    out), against predicting the mean of the others: mean absolute error and rank agreement."""
    whole = table.complete
    if len(whole) < 4:
        return {"trials": len(whole)}
    truth, nearest, mean = [], [], []
    for trial in whole:
        others = tuple(t for t in whole if t is not trial)
        truth.append(trial.best)
        nearest.append(table.nearest(trial.values, among=others).best)
        mean.append(statistics.fmean(t.best for t in others))
    truth_arr = np.asarray(truth)
    ranks = [np.argsort(np.argsort(x)) for x in (truth_arr, np.asarray(nearest))]
    return {
        "trials": len(whole),
        "nearest_mae": float(np.abs(truth_arr - nearest).mean()),
        "mean_mae": float(np.abs(truth_arr - mean).mean()),
        "nearest_spearman": float(np.corrcoef(*ranks)[0, 1]),
    }


def _median_range(values: list[float]) -> str:
    if not values:
        return "never"
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def replay_table(table: Table, *, budget: float, seeds: int) -> tuple[list[list[str]], dict]:
    """Every strategy over ``seeds`` seeds: median (min–max) of what each search reached."""
    rows, record = [], {}
    for strategy in STRATEGIES:
        runs = [summarise(table, simulate(table, strategy, budget=budget, seed=s))
                for s in range(seeds)]  # fmt: skip
        record[strategy.name] = runs
        reached = [r["minutes_to_priors_best"] for r in runs if r["minutes_to_priors_best"]]
        rows.append([
            strategy.name,
            _median_range([r["best"] for r in runs]),
            f"{len(reached)}/{seeds}, median {statistics.median(reached):.0f} min"
            if reached else f"0/{seeds}",
            f"{100 * statistics.median(r['below_seed_share'] for r in runs):.0f}%",
            f"{statistics.median(r['counted'] for r in runs):.0f} / "
            f"{statistics.median(r['trials'] for r in runs):.0f}",
        ])  # fmt: skip
    return rows, record


HEADER = (
    "strategy",
    "best validation AUC at the budget's end, median (min–max)",
    "held the priors' best",
    "minutes on trials ending below the seed design (median)",
    "trials counted / run (median)",
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=DATA, help="recorded curves (JSON)")
    parser.add_argument("--budget", type=float, default=120, help="simulated minutes")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--export",
        nargs=2,
        action="append",
        metavar=("STORAGE", "STUDY"),
        help="write --table from these studies' whole trials (repeatable)",
    )
    parser.add_argument(
        "--add",
        action="store_true",
        help="with --export: add the studies' trials to those --table holds (curves recorded "
        "on another machine), instead of writing it anew",
    )
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = export(args.export, args.table, add=args.add) if args.export else load(args.table)
    started = time.perf_counter()
    rows, record = replay_table(table, budget=args.budget * 60, seeds=args.seeds)
    quality = surrogate_quality(table)
    print(
        f"{len(table.trials)} recorded trials ({len(table.complete)} whole curves) from "
        f"{', '.join(table.source['studies'])}; seed design {table.seed_value:.4f}, priors' "
        f"best {table.priors_best:.4f}; {args.budget:g} simulated minutes, {args.seeds} seeds"
    )
    print(f"surrogate (nearest recorded trial), leave one out: {json.dumps(quality)}")
    print(format_table(HEADER, rows))
    machine = machine_info(with_keras=False)
    seconds = time.perf_counter() - started
    print(f"replayed in {seconds:.1f} s on {machine['cpu']}, {machine['cores']} cores")
    out = Path(__file__).resolve().parent / "results" / "bench_replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"budget_minutes": args.budget, "seeds": args.seeds,
                               "surrogate": quality, "runs": record}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
