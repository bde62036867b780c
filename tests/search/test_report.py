"""The study report: real SQLite studies with fake training, one real search, a real browser."""

from __future__ import annotations

import datetime
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import plotly.offline
import pytest
from optuna.trial import FrozenTrial, TrialState
from PIL import Image

from pcam import publish
from pcam.errors import ConfigError
from search import report
from search.report import figures, pruning_savings, write_report
from search.space import seed_baseline_values, suggest

MAX_EPOCHS = 4
PLOT_TITLES = {
    "Optimization history",
    "Learning curves",
    "What a better model costs",
    "Hyperparameter importances",
    "Parallel coordinates",
    "Slice plots",
    "Timeline",
}
START = datetime.datetime.now().replace(microsecond=0) - datetime.timedelta(hours=2)


def new_study(folder: Path, name: str = "fake") -> optuna.Study:
    """An empty study in ``folder/<name>.db``, with the study attrs the report reads."""
    folder.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=name, storage=f"sqlite:///{folder / f'{name}.db'}", direction="maximize"
    )
    study.set_user_attr("study_defining", {"max_epochs": MAX_EPOCHS})
    study.set_user_attr("metric", "validation ROC AUC (exact), best epoch")
    return study


def sampled_params(seed: int, values: dict | None = None) -> tuple[dict, dict]:
    """Params and distributions drawn through ``search.space.suggest``, as a search draws them."""
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    if values:
        scratch.enqueue_trial(values)
    trial = scratch.ask()
    suggest(trial, max_epochs=MAX_EPOCHS)
    return trial.params, trial.distributions


def add_trial(
    study: optuna.Study,
    *,
    seed: int,
    curve: list[float],
    state: TrialState = TrialState.COMPLETE,
    start: datetime.datetime = START,
    seconds_per_epoch: float = 30.0,
    worker: str = "node-a:101",
    values: dict | None = None,
    draw: tuple[dict, dict] | None = None,
    **user_attrs,
) -> FrozenTrial:
    """One trial as the harness records it: curve per 0-based epoch, the user attrs it sets."""
    params, distributions = draw or sampled_params(seed, values)
    attrs = {"worker": worker, "params_count": 100_000 + 7_919 * seed} | user_attrs
    if curve and state != TrialState.FAIL:  # set by the harness once training returns
        attrs |= {
            "epochs_run": len(curve),
            "best_epoch": int(np.argmax(curve)) + 1,
            "seconds_per_epoch": seconds_per_epoch,
            "train_seconds": round(seconds_per_epoch * len(curve) * 0.9, 2),
        }
    if state == TrialState.PRUNED:
        attrs.setdefault("prune_reason", f"pruned after epoch {len(curve)}")
    value = None
    if state == TrialState.COMPLETE:
        value = max(curve)
    elif state == TrialState.PRUNED and curve:
        value = curve[-1]  # what Optuna stores for a pruned trial: its last reported value
    trial = optuna.trial.create_trial(
        state=state,
        value=value,
        params=params,
        distributions=distributions,
        user_attrs=attrs,
        intermediate_values=dict(enumerate(curve)),
    )
    trial.datetime_start = start
    trial.datetime_complete = start + datetime.timedelta(
        seconds=seconds_per_epoch * max(len(curve), 0.1)
    )
    study.add_trial(trial)
    return study.trials[-1]


def full_study(folder: Path, name: str = "fake") -> optuna.Study:
    """24 trials on two workers: the seed baseline, complete, pruned, size-pruned and failed."""
    rng = np.random.default_rng(0)
    study = new_study(folder, name)
    clocks = {"node-a:101": START, "node-b:202": START + datetime.timedelta(seconds=40)}
    for number in range(24):
        worker = min(clocks, key=clocks.get)
        extra: dict = {}
        values = None
        if number == 0:
            extra = {"role": "seed_baseline"}
            values = seed_baseline_values()
        draw = sampled_params(number, values)
        quality = 0.80 + 0.12 * rng.random() + (0.0 if number == 0 else 0.002 * number)
        epochs = int(rng.integers(1, MAX_EPOCHS + 1))
        state = TrialState.COMPLETE
        if number % 3 == 2:
            state, epochs = TrialState.PRUNED, int(rng.integers(1, max(epochs, 2)))
        curve = [
            min(0.5 + (quality - 0.5) * (1 - 0.45 ** (e + 1)) + rng.normal(0, 0.006), 0.999)
            for e in range(epochs)
        ]
        if number == 7:
            state, curve = TrialState.FAIL, curve[:1]
            extra["fail_reason"] = "diverged: loss became nan in epoch 2"
        if number == 11:
            state, curve = TrialState.PRUNED, []
            extra |= {
                "params_count": 25_000_000,
                "prune_reason": "model has 25,000,000 weights, over --max-params 20,000,000",
            }
        seconds_per_epoch = float(rng.uniform(20, 60))
        trial = add_trial(
            study,
            seed=number,
            curve=curve,
            state=state,
            start=clocks[worker],
            seconds_per_epoch=seconds_per_epoch,
            worker=worker,
            draw=draw,
            **extra,
        )
        clocks[worker] = trial.datetime_complete + datetime.timedelta(seconds=2)
    return study


@pytest.fixture(scope="module")
def full_db(tmp_path_factory) -> Path:
    """The SQLite file of ``full_study``, built once; tests copy it before changing it."""
    folder = tmp_path_factory.mktemp("full")
    full_study(folder)
    return folder / "fake.db"


def copy_of(full_db: Path, folder: Path) -> optuna.Study:
    """A private copy of the full study, for a test that adds trials to it."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(full_db, folder / "fake.db")
    return optuna.load_study(study_name="fake", storage=f"sqlite:///{folder / 'fake.db'}")


@pytest.fixture(scope="module")
def full_report(full_db, tmp_path_factory) -> tuple[optuna.Study, Path, str]:
    study = optuna.load_study(study_name="fake", storage=f"sqlite:///{full_db}")
    return study, *render(study, tmp_path_factory.mktemp("full-report"))


def figures_of(page: str) -> dict:
    """The page's plotly figures by section title."""
    found = re.search(r'<script type="application/json" id="report-figures">(.*?)</script>', page)
    assert found, "no figures block"
    by_id = json.loads(found.group(1))
    titles = dict(re.findall(r"<div class='plot' id='([\w-]+)' data-title='([^']+)'>", page))
    assert set(titles) == set(by_id)
    return {titles[plot_id]: figure for plot_id, figure in by_id.items()}


def render(study: optuna.Study, tmp_path: Path) -> tuple[Path, str]:
    """Write the report; return its path and its text without the (huge) plotly.js bundle."""
    path = write_report(study, tmp_path / "out" / "report.html")
    page = path.read_text(encoding="utf-8")
    bundle = plotly.offline.get_plotlyjs()
    assert page.count(bundle) == 1
    return path, page.replace(bundle, "/* plotly.js */")


@pytest.mark.slow
def test_full_report_has_every_section_and_embeds_plotly_once(full_report):
    study, path, page = full_report
    assert path.name == "report.html" and path.parent.name == "out"
    assert page.count("<script>/* plotly.js */</script>") == 1  # embedded once, and inline
    assert "<script src" not in page and "http" not in page
    for title in (*PLOT_TITLES, "Top 10 trials", "Failed trials (1)"):
        assert f"<h2>{title}</h2>" in page
    assert "class='note'" not in page  # nothing is missing
    figures = figures_of(page)
    assert len(figures) == len(PLOT_TITLES)
    best = study.best_trial
    assert f"<b>{best.value:.4f}</b> (trial {best.number})" in page
    baseline = study.trials[0]
    gain = best.value - baseline.value
    assert f"{baseline.value:.4f} (trial 0); search: {gain:+.4f} AUC" in page
    assert "15 complete, 8 pruned, 1 failed" in page
    assert "<th class='baseline'>#0 seed baseline</th>" in page  # its column, top trials
    assert "diverged: loss became nan in epoch 2" in page
    assert "Not counted: 1 trial(s) pruned before their first epoch" in page


def test_history_marks_the_baseline_and_curves_show_pruning(full_report):
    study, _, page = full_report
    figures = figures_of(page)
    history, curves = figures["Optimization history"], figures["Learning curves"]
    star = next(t for t in history["data"] if t["name"] == "seed baseline")
    assert star["x"] == [0] and star["y"] == [pytest.approx(study.trials[0].value)]
    assert any(t["name"] == "best so far" for t in history["data"])
    pruned = [t for t in curves["data"] if t["legendgroup"] == "pruned"]
    assert pruned and all(t["line"]["dash"] == "dash" for t in pruned)
    assert all(t["marker"]["symbol"][-1] == "x" for t in pruned)
    assert all(len(t["x"]) < MAX_EPOCHS for t in pruned)
    assert any(t["legendgroup"] == "seed baseline" for t in curves["data"])


def test_pruning_savings_counts_the_epochs_not_run(tmp_path):
    study = new_study(tmp_path)
    baseline = seed_baseline_values()  # every trial is planned for the budget, MAX_EPOCHS

    add_trial(study, seed=1, curve=[0.7, 0.8, 0.85, 0.86], values=baseline)
    pruned = {"state": TrialState.PRUNED}
    add_trial(study, seed=2, curve=[0.6], values=baseline, seconds_per_epoch=2.5, **pruned)
    add_trial(study, seed=3, curve=[0.6, 0.62], values=baseline, seconds_per_epoch=10, **pruned)
    add_trial(study, seed=4, curve=[], values=baseline, **pruned)  # over --max-params
    saved = pruning_savings(study.trials, max_epochs=MAX_EPOCHS)
    skipped = (MAX_EPOCHS - 1, MAX_EPOCHS - 2)
    assert saved.seconds == pytest.approx(skipped[0] * 2.5 + skipped[1] * 10)
    assert saved.epochs == sum(skipped)
    assert (saved.estimated_trials, saved.unmeasured_trials) == (2, 1)
    page = render(study, tmp_path)[1]
    assert "≈ 28 s: 5 epochs that 2 pruned trials did not run" in page
    assert "Pruning estimate:" in page


def test_empty_study_has_a_note_instead_of_plots(tmp_path):
    page = render(new_study(tmp_path), tmp_path)[1]
    assert figures_of(page) == {}
    assert "This study has no trials yet." in page
    assert "No trial has started yet." in page


def test_the_headline_says_how_validation_was_chosen_and_warns_when_it_shares_slides(tmp_path):
    study = new_study(tmp_path)
    study.set_user_attr("data_fingerprint", "f")
    study.set_user_attr("validation", "split")
    study.set_user_attr("validation_note", "a random 20% of the labelled patches")
    page = render(study, tmp_path)[1]
    assert "<dt>validation</dt><dd>a random 20% of the labelled patches</dd>" in page
    assert "the leaderboard (other slides) will read lower" in page
    apart = new_study(tmp_path, "apart")
    apart.set_user_attr("data_fingerprint", "f")
    apart.set_user_attr("validation", "groups:0123abcd")
    apart.set_user_attr("validation_note", "whole groups of --groups slides.csv")
    page = render(apart, tmp_path)[1]
    assert "whole groups of --groups slides.csv" in page and "will read lower" not in page


def test_study_of_only_failed_trials_lists_them(tmp_path):
    study = new_study(tmp_path)
    for seed in range(2):
        add_trial(
            study,
            seed=seed,
            curve=[0.6] if seed else [],
            state=TrialState.FAIL,
            fail_reason=f"out of memory: trial {seed}",
        )
    page = render(study, tmp_path)[1]
    assert "No trial has completed yet (0 complete, 0 pruned, 2 failed)." in page
    assert "out of memory: trial 1" in page
    assert "Drawn from 2 or more complete trials; this study has 0." in page
    assert set(figures_of(page)) == {"Learning curves", "Timeline"}


def test_running_study_is_a_snapshot_with_the_running_trial(tmp_path):
    study = new_study(tmp_path)
    add_trial(study, seed=0, curve=[0.7, 0.75], values=seed_baseline_values())
    running = study.ask()
    suggest(running, max_epochs=MAX_EPOCHS)
    running.set_user_attr("worker", "node-c:7")
    running.report(0.66, step=0)
    page = render(study, tmp_path)[1]
    assert "1 trial(s) still running" in page and "1 running" in page
    assert "Drawn from 2 or more complete trials; this study has 1." in page
    figures = figures_of(page)
    curves = figures["Learning curves"]["data"]
    assert any(t["legendgroup"] == "running" and t["y"] == [0.66] for t in curves)
    timeline = figures["Timeline"]["data"]
    assert any(t["name"] == "running" and t["y"] == ["node-c:7"] for t in timeline)


def test_equal_values_do_not_crash_importances(tmp_path):
    study = new_study(tmp_path)
    for seed in range(3):
        add_trial(study, seed=seed, curve=[0.75])
    page = render(study, tmp_path)[1]
    assert "Every complete trial scored the same" in page
    assert "Pruning estimate:" not in page  # explained only where something was pruned


def test_a_section_that_fails_to_draw_becomes_a_note(tmp_path, monkeypatch):
    study = new_study(tmp_path)
    for seed in range(3):
        add_trial(study, seed=seed, curve=[0.6 + 0.1 * seed])

    def broken(*args, **kwargs):
        raise RuntimeError("an Optuna corner case")

    monkeypatch.setattr(figures, "slice_section", broken)
    page = render(study, tmp_path)[1]
    assert "Not drawn: RuntimeError: an Optuna corner case" in page
    assert set(figures_of(page)) == PLOT_TITLES - {"Slice plots"}


def test_write_report_replaces_atomically_and_keeps_the_old_page_on_error(tmp_path, monkeypatch):
    study = new_study(tmp_path)
    add_trial(study, seed=0, curve=[0.7, 0.8])
    out = tmp_path / "out" / "report.html"
    write_report(study, out)
    write_report(study, out)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]
    before = out.read_text(encoding="utf-8")

    def interrupted(source, target) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(publish.os, "replace", interrupted)
    with pytest.raises(OSError, match="disk full"):
        write_report(new_study(tmp_path, "other"), out)
    assert out.read_text(encoding="utf-8") == before
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


@pytest.mark.slow
def test_cli_writes_the_default_path_and_rejects_an_unknown_study(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = new_study(tmp_path / "studies", "demo")  # where search.run puts study "demo"
    add_trial(study, seed=0, curve=[0.7, 0.8])
    assert report.main(["--study", "demo"]) == 0
    assert (tmp_path / "studies" / "demo" / "report.html").is_file()
    assert report.main(["--study", "demo", "--out", "elsewhere/r.html"]) == 0
    assert (tmp_path / "elsewhere" / "r.html").is_file()
    with pytest.raises(ConfigError, match=r"sqlite:///studies/nope.db: no such file"):
        report.main(["--study", "nope"])
    assert not (tmp_path / "studies" / "nope.db").exists()  # looking created nothing
    command = ["-m", "search.report", "--study", "nope", "--storage", "sqlite:///studies/demo.db"]
    wrong = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines()[-1] == (
        "error: no study 'nope' in sqlite:///studies/demo.db; it holds demo"
    )


# --- a study written by the real search ---------------------------------------------------


def tiny_search_root(base: Path) -> Path:
    """Where ``tiny_search_study`` runs (its ``studies/`` folder is under it)."""
    return base / "tiny-search"


def tiny_search_study(base: Path) -> tuple[str, str]:
    """(storage URL, study name) of a real 3-trial, 1-epoch search; built once per session.

    Kept under the session's base temp folder so the dashboard test reuses it.
    """
    from pcam.synth import generate
    from search.config import SearchConfig
    from search.runner import run_search

    root = tiny_search_root(base)
    storage = f"sqlite:///{root / 's.db'}"
    if (root / "done").is_file():
        return storage, "tiny"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    data = generate(root / "data", n_train=60, n_test=8, seed=0, progress=False)
    config = SearchConfig(
        study="tiny", storage=storage, data=str(data), trials=3, max_epochs=1, progress=False
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PCAM_CACHE_DIR", str(root / "cache"))
        patch.chdir(root)  # studies/ is relative
        run_search(config)
    (root / "done").write_text("ok\n")
    return storage, "tiny"


@pytest.fixture(scope="session")
def tiny_search(tmp_path_factory) -> tuple[str, str]:
    return tiny_search_study(tmp_path_factory.getbasetemp())


@pytest.mark.slow
def test_report_of_a_real_search(tiny_search, tmp_path):
    storage, name = tiny_search
    study = optuna.load_study(study_name=name, storage=storage)
    page = render(study, tmp_path)[1]
    figures = figures_of(page)
    assert set(figures) == PLOT_TITLES
    counts = re.search(r"(\d+) complete, (\d+) pruned, (\d+) failed", page)
    assert counts and int(counts[1]) + int(counts[2]) == 3 and counts[3] == "0"
    assert "(trial 0); search:" in page
    history = figures["Optimization history"]
    assert any(t["name"] == "seed baseline" for t in history["data"])
    curves = figures["Learning curves"]["data"]
    assert sum(len(t["x"]) for t in curves) == 3  # one epoch each
    timeline = figures["Timeline"]["data"]
    worker = study.trials[0].user_attrs["worker"]
    assert sum(len(t["y"]) for t in timeline) == 3 and timeline[0]["y"][0] == worker


# --- a real browser ----------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def open_in_chromium(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        *extra,
        page.resolve().as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


@pytest.mark.slow
def test_report_renders_in_a_browser(full_db, tmp_path):
    study = copy_of(full_db, tmp_path / "db")
    running = study.ask()  # a running trial as well: the page must still draw
    suggest(running, max_epochs=MAX_EPOCHS)
    running.report(0.7, step=0)
    path, _ = render(study, tmp_path)
    screenshot = tmp_path / "report.png"
    dom = open_in_chromium(
        path,
        tmp_path,
        "--dump-dom",
        f"--screenshot={screenshot}",
        "--window-size=1200,2000",
        "--hide-scrollbars",
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body, f"no page from chromium: {dom[:500]}"
    attributes = {
        key: html.unescape(value) for key, value in re.findall(r'([\w-]+)="([^"]*)"', body[1])
    }
    assert "data-js-errors" not in attributes, attributes.get("data-js-errors")
    points = json.loads(attributes["data-plots"])
    assert set(points) == PLOT_TITLES
    assert all(count > 0 for count in points.values()), points
    assert points["Timeline"] == len(study.trials)

    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1200, 2000)
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) one colour"
    assert not math.isclose(np.asarray(image).std(), 0.0)


def test_top_trials_carry_their_interval_and_the_cost_plot_their_minutes(tmp_path):
    study = new_study(tmp_path)
    study.set_user_attr("val_positives", 240)
    study.set_user_attr("val_patches", 600)
    add_trial(
        study, seed=0, curve=[0.80, 0.90], values=seed_baseline_values(), role="seed_baseline"
    )
    add_trial(study, seed=1, curve=[0.85, 0.93], seconds_per_epoch=90.0)
    add_trial(study, seed=2, curve=[0.70], state=TrialState.PRUNED, seconds_per_epoch=60.0)
    page = render(study, tmp_path)[1]
    assert "95% interval" in page and "0.907–0.953" in page  # 0.93 on 240 + 360 patches
    cost = figures_of(page)["What a better model costs"]["data"]
    points = {trace["name"]: trace for trace in cost}
    assert points["complete trial"]["x"] == pytest.approx([3.0, 1.0])  # minutes, best first
    assert points["complete trial"]["y"] == pytest.approx([0.93, 0.90])
    assert points["pruned trial"]["y"] == pytest.approx([0.70])
    errors = points["complete trial"]["error_y"]
    assert errors["array"][0] == pytest.approx(0.0234, abs=0.001)
