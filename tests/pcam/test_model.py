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
