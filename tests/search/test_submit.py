"""search.submit and search.predict: retrain, export, TTA, submission, and every bad input.

One tiny real study (two one-epoch trials on 80 synthetic patches) is searched once per module
and submitted once; the other tests reuse it or fail before any training.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import FrozenTrial

from pcam.data import Subset, TrainingData
from pcam.errors import ConfigError, DataError, StorageError
from pcam.layouts import Layout
from pcam.metrics import roc_auc
from pcam.model import ModelParams, build
from pcam.synth import generate
from pcam.train import predict
from pcam.tta import TransformedFeed, predict_tta, transforms_for
from search import refits as refits_module
from search import submission as submit_module
from search.config import SearchConfig
from search.exported import export, load_exported, read_labels
from search.predict import main as predict_main
from search.refits import kept_refit, refit_key
from search.runner import run_search
from search.space import params_from_values, seed_baseline_values
from search.submission import (
    SubmitConfig,
    choose_trials,
    fit_subset,
    load_study_data,
    submit,
)
from search.submit import summary
from tests.helpers import checkout_commit

REPO = Path(__file__).resolve().parents[2]
TINY = ModelParams(blocks=1, filters=(4,), dense_units=4, crop=32)


@dataclass(frozen=True)
class TinyStudy:
    root: Path
    data: Path
    storage: str
    name: str

    def config(self, out: Path, **changes) -> SubmitConfig:
        return SubmitConfig(
            study=self.name, storage=self.storage, out=str(out), progress=False, **changes
        )

    def study(self) -> optuna.Study:
        return optuna.load_study(study_name=self.name, storage=self.storage)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> None:
    """Each test decodes into its own cache and writes nothing outside ``tmp_path``."""
    monkeypatch.setenv("PCAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory) -> TinyStudy:
    root = tmp_path_factory.mktemp("submit")
    storage = f"sqlite:///{root}/s.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PCAM_CACHE_DIR", str(root / "cache"))
        patch.chdir(root)
        data = generate(root / "data", n_train=80, n_test=16, seed=0, workers=1, progress=False)
        config = SearchConfig(
            study="tiny",
            storage=storage,
            data=str(data),
            trials=2,
            max_epochs=1,
            limit=None,
            progress=False,
        )
        run_search(config)
    return TinyStudy(root=root, data=data, storage=storage, name="tiny")


@pytest.fixture(scope="module")
def submitted(tiny_study):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PCAM_CACHE_DIR", str(tiny_study.root / "cache"))
        patch.chdir(tiny_study.root)  # studies/artifacts is relative: not into the checkout
        return submit(tiny_study.config(tiny_study.root / "out"))


def read_submission(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str})


def copy_of(data: Path, tmp_path: Path) -> Path:
    """A copy with the same fingerprint (names, sizes and modification times are kept)."""
    return Path(shutil.copytree(data, tmp_path / "copy"))


def random_subset(count: int, seed: int = 0) -> Subset:
    images = np.random.default_rng(seed).integers(0, 256, size=(count, 96, 96, 3), dtype=np.uint8)
    return Subset(
        images=images,
        labels=np.arange(count) % 2,
        indices=np.arange(count),
        ids=np.array([f"p{i}" for i in range(count)]),
    )


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.slow
def test_submit_writes_a_valid_submission_in_sample_order(submitted, tiny_study):
    table = read_submission(submitted.submission)
    sample = read_submission(tiny_study.data / "sample_submission.csv")
    assert list(table.columns) == ["id", "label"]
    assert table["id"].tolist() == sample["id"].tolist()
    assert sample["id"].tolist() != sorted(sample["id"]), "sample order is not file-name order"
    assert table["id"].is_unique
    assert table["label"].notna().all()
    assert ((table["label"] > 0) & (table["label"] < 1)).all(), "probabilities, never hard 0/1"
    assert table["label"].nunique() > 1
    leftovers = sorted(p.name for p in submitted.submission.parent.iterdir())
    assert leftovers == ["best", "submission.csv"]


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
def test_the_summary_gives_the_kaggle_line_that_submits_the_file(submitted):
    line = next(x for x in summary(submitted).splitlines() if x.startswith("on Kaggle:"))
    command = shlex.split(line.removeprefix("on Kaggle:"))
    assert command[:5] == [
        "kaggle",
        "competitions",
        "submit",
        "-c",
        "histopathologic-cancer-detection",
    ]
    assert command[command.index("-f") + 1] == str(submitted.submission)
    message = command[command.index("-m") + 1]
    trial = submitted.metadata["trial"]
    assert f"trial {trial} (val AUC {submitted.metadata['val_auc']:.4f})" in message


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
def test_model_json_records_the_trial_data_and_provenance(submitted, tiny_study):
    study = tiny_study.study()
    best = study.best_trial
    metadata = json.loads((submitted.model_dir / "model.json").read_text())
    assert metadata["trial"] == best.number
    assert metadata["val_auc"] == pytest.approx(best.value)
    assert metadata["params"] == params_from_values(best.params, max_epochs=1).to_dict()
    assert metadata["epochs_trained"] == best.user_attrs["best_epoch"]
    assert metadata["members"][0]["seed"] == best.user_attrs["training_seed"]
    assert metadata["data_fingerprint"] == study.user_attrs["data_fingerprint"]
    assert metadata["split_seed"] == 0
    assert metadata["trained_on"] == "train+val"
    assert metadata["train_patches"] == 80, "retrained on training and validation patches"
    assert metadata["tta"] == "d8"
    assert "keras" in metadata["package_versions"]
    assert metadata["git_commit"] == checkout_commit()


def test_the_retrain_uses_the_seed_the_trial_recorded():
    """KerasTuner numbers its trials apart from Optuna's, so seed + number is not always the
    seed a trial trained with; a study from before the seed was recorded has only that."""
    from search.submission import training_seed

    settings = {"seed": 3}
    recorded = SimpleNamespace(number=5, user_attrs={"training_seed": 41})
    assert training_seed(recorded, settings) == 41
    assert training_seed(SimpleNamespace(number=5, user_attrs={}), settings) == 8


@pytest.mark.slow
def test_a_trial_trained_again_with_its_seed_repeats_its_curve(tiny_study):
    """On a CPU in float32, training repeats exactly: the same params, data, split and
    recorded seed give the validation AUC the trial reported, epoch by epoch."""
    from pcam.runtime import resolve
    from pcam.train import train
    from search.submission import training_seed

    study = tiny_study.study()
    trial = study.best_trial
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PCAM_CACHE_DIR", str(tiny_study.root / "cache"))
        data = load_study_data(study, progress=False)
    params = params_from_values(trial.params, max_epochs=1)
    seed = training_seed(trial, study.user_attrs["config"])
    again = train(params, data.train, data.val, seed=seed, runtime=resolve())
    recorded = [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)]
    assert again.val_auc == pytest.approx(recorded, abs=1e-6)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_export_reloads_to_identical_predictions(tmp_path):
    model = build(TINY)
    subset = random_subset(6)
    before = predict(model, subset)
    export(model, {"trial": 0}, tmp_path / "best")
    loaded, metadata = load_exported(tmp_path / "best")
    assert metadata == {"trial": 0}
    np.testing.assert_array_equal(predict(loaded, subset), before)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("id,label\na,1\nb,2\n", "1 row(s) have a label other than 0 or 1 (values 2; ids b)"),
        ("id,label\na,1\na,0\nb,0\n", "1 id(s) appear more than once: a"),
        ("id,tumour\na,1\nb,0\n", "missing column(s) label; found id, tumour"),
        ("id,label\na,1\n", "1 of the 2 predicted id(s) have no label: b"),
    ],
)
def test_a_bad_labels_file_is_refused_naming_the_file_and_the_fault(tmp_path, rows, message):
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text(rows)
    with pytest.raises(DataError) as refused:
        read_labels(labels_csv, np.array(["a", "b"]))
    assert str(refused.value).startswith(str(labels_csv)) and message in str(refused.value)
    with pytest.raises(DataError, match=r"--labels .*missing\.csv: file missing"):
        read_labels(tmp_path / "missing.csv", np.array(["a"]))
    labels_csv.write_text("id,label\nb,0\na,1\nc,1\n")
    assert read_labels(labels_csv, np.array(["a", "b"])).tolist() == [1, 0]


@pytest.mark.slow
def test_predict_reproduces_the_submission_and_scores_it(submitted, tiny_study, tmp_path, capsys):
    """search.predict reloads the exported file: same probabilities as submission.csv."""
    labels_csv = tiny_study.data / "test_labels.csv"
    argv = [str(submitted.model_dir), str(tiny_study.data), "--labels", str(labels_csv)]
    assert predict_main([*argv, "--out", str(tmp_path / "again.csv")]) == 0
    printed = capsys.readouterr().out
    written = read_submission(submitted.submission)
    again = read_submission(tmp_path / "again.csv")
    assert again["id"].tolist() == written["id"].tolist()
    np.testing.assert_allclose(again["label"], written["label"], rtol=1e-8)
    auc = roc_auc(read_submission(labels_csv)["label"], written["label"])
    assert f"ROC AUC   {auc:.4f}" in printed
    assert "accuracy" in printed and "actual 1" in printed


@pytest.mark.slow
def test_ensemble_averages_the_top_two_trials(tiny_study, tmp_path):
    """Retrained with --seed 100: another draw of each design, the seeds recorded."""
    outcome = submit(tiny_study.config(tmp_path / "out", ensemble=2, tta="none", seed=100))
    ranked = sorted(tiny_study.study().trials, key=lambda t: t.value, reverse=True)
    members = outcome.metadata["members"]
    assert [m["trial"] for m in members] == [t.number for t in ranked]
    assert [m["seed"] for m in members] == [100, 101]
    assert outcome.metadata["ensemble"] == 2
    table = read_submission(outcome.submission)
    assert len(table) == 16 and table["label"].between(0, 1).all()

    model, _ = load_exported(outcome.model_dir)
    images = random_subset(4).images
    each = [model.get_layer(f"trial_{m['trial']}").predict(images, verbose=0) for m in members]
    np.testing.assert_allclose(model.predict(images, verbose=0), np.mean(each, axis=0), rtol=1e-6)


@pytest.mark.slow
def test_draws_retrain_the_best_trial_with_other_seeds_and_average_them(tiny_study, tmp_path):
    """--draws 2: the best trial trained twice, with its own seed and DRAW_SEED_STEP more,
    each kept as a layer of its own, the two different and the model their mean; the summary
    and the Kaggle message name the trial once."""
    from search.submission import DRAW_SEED_STEP
    from search.submit import kaggle_command
    from search.submit import summary as submit_summary

    outcome = submit(tiny_study.config(tmp_path / "out", ensemble=1, tta="none", draws=2))
    best = tiny_study.study().best_trial
    members = outcome.metadata["members"]
    own = best.user_attrs["training_seed"]
    assert [(m["trial"], m["seed"], m["draw"]) for m in members] == [
        (best.number, own, 0),
        (best.number, own + DRAW_SEED_STEP, 1),
    ]
    assert outcome.metadata["ensemble"] == 2 and outcome.metadata["draws"] == 2

    model, _ = load_exported(outcome.model_dir)
    images = random_subset(4).images
    layers = [f"trial_{best.number}", f"trial_{best.number}_draw_1"]
    each = [model.get_layer(name).predict(images, verbose=0) for name in layers]
    assert not np.allclose(each[0], each[1]), "another seed is another draw"
    np.testing.assert_allclose(model.predict(images, verbose=0), np.mean(each, axis=0), rtol=1e-6)
    assert f"trial {best.number} ({best.value:.4f}) ×2 draws, retrained" in submit_summary(outcome)
    assert f"trial {best.number} (val AUC" in kaggle_command(outcome)


@pytest.mark.slow
def test_a_stopped_submit_takes_up_the_members_it_had_retrained(tiny_study, tmp_path, monkeypatch):
    """Ctrl-C while the second member trains: the first is kept whole, no submission is
    written; the same command run again trains only the second, its ensemble holds the kept
    first member exactly, and the kept members go once the submission is written."""
    out = tmp_path / "out"
    config = tiny_study.config(out, ensemble=2, tta="none")
    real_retrain = submit_module.retrain
    trained = []

    def retrain_and_count(trial, *args, **kwargs):
        trained.append(trial.number)
        return real_retrain(trial, *args, **kwargs)

    def stopped_at_the_second(trial, *args, **kwargs):
        if trained:
            raise KeyboardInterrupt
        return retrain_and_count(trial, *args, **kwargs)

    monkeypatch.setattr(submit_module, "retrain", stopped_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        submit(config)
    assert not (out / "submission.csv").exists() and not (out / "best").exists()
    (kept,) = (out / ".refits").iterdir()
    first, _ = load_exported(kept)

    monkeypatch.setattr(submit_module, "retrain", retrain_and_count)
    outcome = submit(config)
    members = [m["trial"] for m in outcome.metadata["members"]]
    assert trained == members  # each member trained once over the two runs
    model, _ = load_exported(outcome.model_dir)
    for ours, theirs in zip(
        model.get_layer(f"trial_{members[0]}").get_weights(), first.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    assert not (out / ".refits").exists()


def _trial(number: int = 0, *, blocks: int = 2, best_epoch: int = 3) -> FrozenTrial:
    """A complete trial of the seed design's values (``blocks`` changed)."""
    values = {**seed_baseline_values(), "blocks": blocks}
    one_value = optuna.distributions.CategoricalDistribution
    trial = optuna.trial.create_trial(
        params=values,
        distributions={name: one_value([value]) for name, value in values.items()},
        value=0.9,
        user_attrs={"best_epoch": best_epoch},
    )
    trial.number = number
    return trial


def test_a_kept_member_is_taken_only_for_the_same_trial_seed_data_and_precision():
    same = {
        "fit_data": random_subset(4),
        "content": "c",
        "max_epochs": 12,
        "seed": 1,
        "precision": "float32",
    }
    key = refit_key("s", _trial(), **same)
    assert refit_key("s", _trial(), **same) == key
    assert refit_key("another study", _trial(), **same) != key
    for trial in (_trial(1), _trial(blocks=3), _trial(best_epoch=4)):
        assert refit_key("s", trial, **same) != key
    for change in (
        {"seed": 2},
        {"fit_data": replace(random_subset(4), ids=np.array(["a", "b", "c", "d"]))},
        {"content": "d"},
        {"max_epochs": 20},
        {"precision": "mixed_bfloat16"},
    ):
        assert refit_key("s", _trial(), **{**same, **change}) != key, change


def test_a_damaged_kept_member_is_trained_again_not_trusted(tmp_path):
    folder = tmp_path / ".refits" / "trial-0-abc"
    folder.mkdir(parents=True)
    (folder / "model.json").write_text('{"trial": 0}\n')
    (folder / "model.keras").write_bytes(b"PK\x03\x04 cut short by a lost machine")
    assert kept_refit(tmp_path, "trial-0-abc") is None
    assert not folder.exists()
    assert kept_refit(tmp_path, "trial-1-def") is None


# --- test-time augmentation -------------------------------------------------------------------


def _symmetries_of_the_square(images: np.ndarray) -> list[np.ndarray]:
    """The 8 dihedral views of an N×H×W×C batch, made here: 4 rotations, each also transposed."""
    turns = [np.rot90(images, k, axes=(1, 2)) for k in range(4)]
    return turns + [np.swapaxes(turn, 1, 2) for turn in turns]


def _probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    scores = model(np.ascontiguousarray(images), training=False)
    return keras.ops.convert_to_numpy(scores).astype(np.float64).reshape(-1)


def test_tta_is_the_mean_over_the_symmetries_of_the_square():
    """d8 averages the 8 distinct symmetries, flips the 4 mirrorings, none the patch itself;
    the views are checked as sets, independently of pcam's own transforms and their order."""
    model = build(ModelParams(blocks=1, filters=(4,), dense_units=4))
    subset = random_subset(7)
    views = _symmetries_of_the_square(subset.images)
    assert len({view.tobytes() for view in views}) == 8
    mirrorings = [subset.images, *(np.flip(subset.images, axes) for axes in (1, 2, (1, 2)))]
    by_hand = np.stack([_probabilities(model, view) for view in views])
    assert np.ptp(by_hand, axis=0).max() > 1e-4, "the views differ, so the mean means something"

    expected = {
        "d8": by_hand.mean(axis=0),
        "flips": np.mean([_probabilities(model, view) for view in mirrorings], axis=0),
        "none": by_hand[0],
    }
    for mode, mean in expected.items():
        np.testing.assert_allclose(
            predict_tta(model, subset, mode=mode, batch_size=3), mean, rtol=1e-5, err_msg=mode
        )
    # and the feeds behind it hand the model exactly those views, each once
    for mode, wanted in (("d8", views), ("flips", mirrorings)):
        fed = [
            TransformedFeed(subset, transform=transform, batch_size=len(subset))[0][0]
            for transform in transforms_for(mode)
        ]
        assert sorted(view.tobytes() for view in fed) == sorted(v.tobytes() for v in wanted)


def test_tta_of_a_patch_does_not_depend_on_its_orientation():
    """Turning or mirroring the input permutes the 8 views: the d8 mean stays the same. A
    quarter turn and a mirroring generate all 8 symmetries, so those two are enough."""
    model = build(ModelParams(blocks=1, filters=(4,), dense_units=4))
    subset = random_subset(5)
    reference = predict_tta(model, subset)
    quarter_turn = np.rot90(subset.images, 1, axes=(1, 2))
    mirrored = np.flip(subset.images, 2)
    for view in (quarter_turn, mirrored):
        turned = replace(subset, images=np.ascontiguousarray(view))
        np.testing.assert_allclose(predict_tta(model, turned), reference, rtol=1e-5)


# --- which trials, which data -----------------------------------------------------------------


def _study_with(values: list[float | None]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for value in values:
        state = optuna.trial.TrialState.COMPLETE if value is not None else None
        trial = optuna.trial.create_trial(
            value=value, state=state or optuna.trial.TrialState.PRUNED
        )
        study.add_trial(trial)
    return study


def test_choose_trials_ranks_complete_trials_best_first():
    study = _study_with([0.7, None, 0.9, 0.8])
    assert [t.number for t in choose_trials(study)] == [2]
    assert [t.number for t in choose_trials(study, ensemble=3)] == [2, 3, 0]
    assert [t.number for t in choose_trials(study, trial=0)] == [0]
    with pytest.raises(ConfigError, match=r"trial 1 .* is PRUNED"):
        choose_trials(study, trial=1)
    with pytest.raises(ConfigError, match="only 3 complete"):
        choose_trials(study, ensemble=4)


def test_fit_subset_joins_train_and_validation_when_they_share_images():
    shared = random_subset(10)
    train = Subset(shared.images, shared.labels, np.arange(7), shared.ids[:7])
    val = Subset(shared.images, shared.labels, np.arange(7, 10), shared.ids[7:])
    data = TrainingData(Layout("kaggle", Path("."), ("train",)), train, val, "f", "c", 0, 0.3, None)
    joined, name = fit_subset(data, fit_on="train+val")
    assert name == "train+val"
    assert sorted(joined.indices.tolist()) == list(range(10))
    assert joined.ids.tolist() == [*train.ids, *val.ids]
    assert fit_subset(data, fit_on="train")[0] is train

    separate_val = random_subset(3, seed=1)
    hdf5 = TrainingData(
        Layout("hdf5", Path("."), ("train",)), train, separate_val, "f", "c", 0, 0.3, None
    )
    assert fit_subset(hdf5, fit_on="train+val") == (train, "train")


# --- bad input: a clear message, exit status 2, nothing half-written --------------------------


@pytest.mark.slow
def test_cli_unknown_study_exits_2_without_traceback(tiny_study, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PCAM_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "search.submit", "--study", "nope", "--storage", tiny_study.storage,
         "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "error: no study 'nope'" in run.stderr and "tiny" in run.stderr
    assert not (out / "submission.csv").exists()


def test_missing_database_is_refused_and_not_created(tmp_path):
    with pytest.raises(ConfigError, match="no study database"):
        submit(SubmitConfig(study="absent", out=str(tmp_path / "out"), progress=False))
    assert not (tmp_path / "studies").exists()


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
def test_unknown_trial_number(tiny_study, tmp_path):
    with pytest.raises(ConfigError, match="has no trial 99"):
        submit(tiny_study.config(tmp_path / "out", trial=99))


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
def test_study_without_a_complete_trial(tiny_study, tmp_path):
    storage = f"sqlite:///{tmp_path}/empty.db"
    study = optuna.create_study(study_name="empty", storage=storage, direction="maximize")
    for key, value in tiny_study.study().user_attrs.items():
        study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED))
    config = SubmitConfig(study="empty", storage=storage, out=str(tmp_path / "out"))
    with pytest.raises(ConfigError, match="no complete trial"):
        submit(config)
    assert not (tmp_path / "out").exists()


def test_model_dir_without_model_json(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(DataError, match=r"no model\.json"):
        load_exported(tmp_path / "model")


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
def test_changed_training_data_is_refused(tiny_study, tmp_path):
    data = copy_of(tiny_study.data, tmp_path)
    labels = data / "train_labels.csv"
    labels.write_text(labels.read_text().replace(",1\n", ",0\n", 1))
    with pytest.raises(DataError, match="not the data study 'tiny' was searched on"):
        submit(tiny_study.config(tmp_path / "out", data=str(data)))
    assert not (tmp_path / "out" / "submission.csv").exists()


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
def test_a_copy_with_new_file_times_is_the_study_data_set(tiny_study, tmp_path):
    """Another machine's copy (files written anew, so new times and another fingerprint) is
    recognised by its content; a study recorded before content hashes asks for kept times."""
    data = Path(shutil.copytree(tiny_study.data, tmp_path / "copy", copy_function=shutil.copy))
    later = time.time_ns() + 10**9
    for path in data.rglob("*"):
        os.utime(path, ns=(later, later))
    study = tiny_study.study()
    copied = load_study_data(study, data=str(data), progress=False)
    assert copied.fingerprint != study.user_attrs["data_fingerprint"]
    assert copied.content == study.user_attrs["data_content"]

    recorded = {k: v for k, v in study.user_attrs.items() if k != "data_content"}
    older = SimpleNamespace(study_name="tiny", user_attrs=recorded)
    with pytest.raises(DataError, match=r"not the data .*\(keep them: cp -p, rsync -t\)"):
        load_study_data(older, data=str(data), progress=False)


@pytest.mark.parametrize(
    ("damage", "message"), [("empty", "holds no images"), ("one_missing", "disagree")]
)
@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
def test_bad_test_folder_fails_before_training(tiny_study, tmp_path, monkeypatch, damage, message):
    data = copy_of(tiny_study.data, tmp_path)
    images = sorted((data / "test").iterdir())
    for image in images if damage == "empty" else images[:1]:
        image.unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a bad test folder must be refused before any training")

    monkeypatch.setattr(submit_module, "retrain", no_training)
    with pytest.raises(DataError, match=message):
        submit(tiny_study.config(tmp_path / "out", data=str(data)))
    assert not (tmp_path / "out" / "submission.csv").exists()


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_failure_after_training_leaves_the_previous_submission(tiny_study, tmp_path, monkeypatch):
    """A model that predicts NaN: nothing is written, the earlier pair stays, no temp files
    (the retrained member is kept, whole, for the same command run again)."""
    out = tmp_path / "out"
    (out / "best").mkdir(parents=True)
    (out / "submission.csv").write_text("id,label\nold,0.5\n")

    def nan_model(trial, fit_data, *, max_epochs, seed, runtime, progress):
        model = build(TINY)
        model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
        record = {"trial": trial.number, "val_auc": trial.value, "params": {}, "epochs_trained": 1}
        return model, record

    monkeypatch.setattr(submit_module, "retrain", nan_model)
    with pytest.raises(DataError, match="no valid probability"):
        submit(tiny_study.config(out, tta="none"))
    assert (out / "submission.csv").read_text() == "id,label\nold,0.5\n"
    assert sorted(p.name for p in out.iterdir()) == [".refits", "best", "submission.csv"]
    assert not any((out / "best").iterdir())


def _tiny_retrain(trial, fit_data, *, max_epochs, seed, runtime, progress):
    record = {"trial": trial.number, "val_auc": trial.value, "params": {}, "epochs_trained": 1}
    return build(TINY), record


@pytest.mark.slow  # the module's one searched and submitted study: the full suite's
@pytest.mark.parametrize("where", ["a kept member", "the model export", "the submission"])
def test_a_full_disk_during_the_export_leaves_the_previous_model_and_submission(
    tiny_study, tmp_path, monkeypatch, where
):
    """ENOSPC half-way through a write: one clear error, the earlier pair untouched, no
    staging folder or staged CSV left for a later run to trust."""
    out = tmp_path / "out"
    (out / "best").mkdir(parents=True)
    (out / "best" / "model.json").write_text('{"old": true}\n')
    (out / "submission.csv").write_text("id,label\nold,0.5\n")
    monkeypatch.setattr(submit_module, "retrain", _tiny_retrain)
    real_export = submit_module.export

    def export_onto_a_full_disk(model, metadata, folder):
        real_export(model, metadata, folder)  # the files are half there when the disk fills
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "model.keras"))

    if where == "a kept member":
        monkeypatch.setattr(refits_module, "export", export_onto_a_full_disk)
    elif where == "the model export":
        monkeypatch.setattr(submit_module, "export", export_onto_a_full_disk)
    else:
        real_open = Path.open

        def open_onto_a_full_disk(self, mode="r", *args, **kwargs):
            handle = real_open(self, mode, *args, **kwargs)
            if self.name.startswith(".submission.csv.partial"):

                def writelines(lines):  # a first row lands, then the disk is full
                    handle.write("p0,0.1\n")
                    raise OSError(errno.ENOSPC, "No space left on device", str(self))

                handle.writelines = writelines
            return handle

        monkeypatch.setattr(Path, "open", open_onto_a_full_disk)

    with pytest.raises(StorageError, match=r"no space left on the device of .*untouched"):
        submit(tiny_study.config(out, tta="none"))
    assert (out / "submission.csv").read_text() == "id,label\nold,0.5\n"
    assert (out / "best" / "model.json").read_text() == '{"old": true}\n'
    # the retrained member is kept whole for the same command run again (search.refits)
    assert sorted(p.name for p in out.iterdir()) == [".refits", "best", "submission.csv"]
    if where != "a kept member":
        (kept,) = (out / ".refits").iterdir()
        assert kept.name.startswith("trial-")
    else:
        assert not any((out / ".refits").iterdir())  # no half-written member
    assert [p.name for p in (out / "best").iterdir()] == ["model.json"]


@pytest.mark.slow
def test_the_retrain_reproduces_the_trials_schedule_and_stops_at_its_best_epoch():
    """Planned for the study's budget over the fit set's steps; stopped where the trial peaked."""
    from search.space import SPACE
    from search.submission import retrain

    values = {
        "blocks": 2, "base_filters": 16, "convs_per_block": 1, "kernel_size": 3,
        "block_dropout": 0.0, "dense_units": 64, "dense_dropout": 0.0, "batch_norm": True,
        "head": "global_avg", "learning_rate": 1e-3, "optimizer": "adam", "schedule": "cosine",
        "warmup": 0.1, "weight_decay": 1e-3, "label_smoothing": 0.05, "batch_size": 32,
        "crop": 32, "d8": True, "hed_jitter": 0.0,
    }  # fmt: skip
    scratch = optuna.create_study()
    scratch.enqueue_trial(values)
    sampled = scratch.ask()
    from search.space import suggest

    suggest(sampled, max_epochs=6)
    assert set(sampled.params) == {dim.name for dim in SPACE}
    trial = optuna.trial.create_trial(
        params=sampled.params,
        distributions=sampled.distributions,
        value=0.9,
        user_attrs={"best_epoch": 2},
    )
    fit_data = random_subset(100)  # 4 steps an epoch at batch 32
    model, record = retrain(trial, fit_data, max_epochs=6, seed=0, progress=False)
    assert record["epochs_trained"] == 2 and record["schedule_epochs"] == 6
    assert record["params"]["schedule"] == "cosine" and record["params"]["epochs"] == 6
    assert int(model.optimizer.iterations) == 2 * 4
    schedule = model.optimizer._learning_rate.get_config()
    total = 6 * 4
    warmup = round(0.1 * total)
    assert (schedule["warmup_steps"], schedule["decay_steps"]) == (warmup, total - warmup)
    assert schedule["warmup_target"] == pytest.approx(1e-3)
    assert model.get_layer("block1_bn1").momentum == pytest.approx(0.9)


@pytest.mark.slow
def test_submit_all_retrains_on_every_labelled_patch_not_the_searched_subset(tmp_path):
    """Search small (--limit 40 of 120 patches), retrain big (--all: all 120)."""
    data = generate(tmp_path / "data", n_train=120, n_test=8, seed=5, workers=1, progress=False)
    storage = f"sqlite:///{tmp_path / 'small.db'}"
    run_search(
        SearchConfig(
            study="small",
            storage=storage,
            data=str(data),
            trials=1,
            max_epochs=1,
            limit=40,
            progress=False,
            report=False,
        )
    )
    config = SubmitConfig(study="small", storage=storage, progress=False, tta="none")
    searched = submit(replace(config, out=str(tmp_path / "searched")))
    everything = submit(replace(config, out=str(tmp_path / "all"), all_data=True))
    assert (searched.metadata["train_patches"], searched.metadata["all_data"]) == (40, False)
    assert (everything.metadata["train_patches"], everything.metadata["all_data"]) == (120, True)
    assert everything.metadata["data_fingerprint"] == searched.metadata["data_fingerprint"]
