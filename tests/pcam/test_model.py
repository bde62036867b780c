"""The parametric CNN: the seed design, the size formula, the crop, bad params."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pcam.model import SEED_BASELINE, ModelParams, build, count_params

VARIANTS = [
    SEED_BASELINE,
    ModelParams(blocks=2, filters=(16, 32), convs_per_block=2, batch_norm=True, crop=48),
    ModelParams(blocks=4, filters=(64, 128, 256, 256), kernel_size=5, head="global_avg", crop=32),
]


def test_seed_baseline_is_the_kaggle_design():
    model = build(SEED_BASELINE)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 128]
    assert model.get_layer("dense").units == 256
    assert model.get_layer("dense_dropout").rate == 0.5
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert SEED_BASELINE.batch_size == 64


@pytest.mark.parametrize("params", VARIANTS)
def test_count_params_matches_keras(params):
    assert count_params(params) == build(params).count_params()


def test_model_takes_whole_patches_and_crops_inside():
    model = build(ModelParams(blocks=2, filters=(8, 16), dense_units=8, crop=32))
    assert model.input_shape == (None, 96, 96, 3)
    patches = np.zeros((2, 96, 96, 3), np.uint8)
    patches[:, 32:64, 32:64] = 200
    outside_changed = patches.copy()
    outside_changed[:, :20] = 255
    assert np.allclose(model.predict(patches, verbose=0), model.predict(outside_changed, verbose=0))


def test_invalid_params_are_refused():
    with pytest.raises(ValueError, match="3 entries for 2 blocks"):
        ModelParams(blocks=2)
    with pytest.raises(ValueError, match="crop 50"):
        ModelParams(crop=50)


def test_params_round_trip_through_dict():
    params = VARIANTS[1]
    assert ModelParams.from_dict(params.to_dict()) == params


def _rate(model: keras.Model, step: int) -> float:
    rate = model.optimizer._learning_rate  # the schedule itself (the property reads step 0)
    return float(rate(step)) if callable(rate) else float(rate)


@pytest.mark.parametrize(
    ("schedule", "warmup", "expected"),
    [
        # 10 epochs × 10 steps; peak 1e-3; (step, rate) pairs
        ("constant", 0.0, [(0, 1e-3), (50, 1e-3), (99, 1e-3)]),
        ("constant", 0.1, [(0, 4e-5), (10, 1e-3), (90, 1e-3)]),
        ("cosine", 0.0, [(0, 1e-3), (50, 5e-4), (100, 0.0)]),
        ("cosine", 0.2, [(0, 4e-5), (20, 1e-3), (60, 5e-4), (100, 0.0)]),
        ("one_cycle", 0.0, [(0, 4e-5), (30, 1e-3), (100, 1e-7)]),
    ],
)
def test_the_schedule_is_planned_for_the_whole_budget(schedule, warmup, expected):
    params = ModelParams(
        blocks=1, filters=(4,), dense_units=4, crop=32, epochs=10, schedule=schedule, warmup=warmup
    )
    model = build(params, steps_per_epoch=10)
    for step, rate in expected:
        assert _rate(model, step) == pytest.approx(rate, rel=1e-3, abs=1e-9), (step, rate)


def test_batch_norm_remembers_a_quarter_epoch_and_decay_and_smoothing_are_applied():
    params = ModelParams(
        blocks=1, filters=(4,), batch_norm=True, dense_units=4, crop=32,
        weight_decay=1e-2, label_smoothing=0.1,
    )  # fmt: skip
    small = build(params, steps_per_epoch=38)  # 2,400 patches at batch 64
    large = build(params, steps_per_epoch=3438)  # 220,025
    assert small.get_layer("block1_bn1").momentum == pytest.approx(0.9)
    assert large.get_layer("block1_bn1").momentum == pytest.approx(0.99)
    assert build(params).get_layer("block1_bn1").momentum == 0.99  # not built for a run
    assert small.optimizer.weight_decay == pytest.approx(1e-2)
    assert small.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    assert build(SEED_BASELINE).optimizer.weight_decay is None


def test_a_scheduled_model_saves_and_loads_without_custom_objects(tmp_path):
    params = ModelParams(blocks=1, filters=(4,), dense_units=4, crop=32, schedule="one_cycle")
    model = build(params, steps_per_epoch=5)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    patches = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
    assert np.allclose(loaded.predict(patches, verbose=0), model.predict(patches, verbose=0))
    assert _rate(loaded, 30) == pytest.approx(_rate(model, 30))


def test_per_patch_normalisation_ignores_a_patch_s_stain_intensity(tmp_path):
    """A patch scanned darker or with a colour cast (each channel scaled and shifted) reaches
    the first convolution of a per-patch-normalised model unchanged (up to uint8 rounding),
    also after export; a plain model sees the cast."""
    patches = np.random.default_rng(0).integers(40, 200, (4, 96, 96, 3)).astype(np.uint8)
    cast = (patches * np.array([0.8, 0.9, 0.7]) + np.array([30, 10, 40])).round().astype(np.uint8)
    seen = {}
    for input_norm, layer in (("none", "scale"), ("per_patch", "patch_norm")):
        params = ModelParams(blocks=1, filters=(4,), dense_units=4, crop=32, input_norm=input_norm)
        model = build(params)
        model.save(tmp_path / f"{input_norm}.keras")
        loaded = keras.models.load_model(tmp_path / f"{input_norm}.keras")
        assert np.allclose(loaded.predict(cast, verbose=0), model.predict(cast, verbose=0))
        first = keras.Model(loaded.input, loaded.get_layer(layer).output)
        before, after = (np.asarray(first.predict(x, verbose=0)) for x in (patches, cast))
        seen[input_norm] = np.abs(before - after).mean() / np.abs(before).mean()
    assert seen["per_patch"] < 0.02 and seen["none"] > 0.05, seen


def test_bad_schedule_values_are_refused():
    with pytest.raises(ValueError, match="schedule 'step'"):
        ModelParams(schedule="step")
    with pytest.raises(ValueError, match=r"warmup 1\.5"):
        ModelParams(warmup=1.5)
    with pytest.raises(ValueError, match="input_norm 'stain'"):
        ModelParams(input_norm="stain")
    with pytest.raises(ValueError, match="colour_jitter must lie in"):
        ModelParams(colour_jitter=1.5)
    with pytest.raises(ValueError, match="sizes, epochs and learning rate must be positive"):
        ModelParams(average_epochs=0)
