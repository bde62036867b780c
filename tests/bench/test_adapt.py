"""bench/bench_adapt.py's AdaBN: after adaptation, each batch-norm layer of a real Keras model
holds the statistics of its inputs on the patches it was adapted on, as the layers before it
now compute them, and centres those patches in inference mode."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from bench_adapt import adapt_batch_norm


def test_adapted_batch_norm_layers_standardise_the_patches_they_were_adapted_on():
    import keras

    from pcam.model import SEED_BASELINE, build

    params = dataclasses.replace(SEED_BASELINE, batch_norm=True, filters=(4, 8), blocks=2, crop=32)
    model = build(params)
    rng = np.random.default_rng(0)
    # Brighter than anything the fresh layers' statistics (mean 0, variance 1) describe.
    images = rng.integers(150, 256, size=(300, 96, 96, 3), dtype=np.uint8)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 2

    def per_channel(tensor) -> np.ndarray:
        out = keras.Model(model.input, tensor).predict(images, verbose=0)
        return out.reshape(-1, out.shape[-1]).astype(np.float64)

    assert np.abs(per_channel(norms[-1].output).mean(axis=0)).max() > 0.1  # off before
    assert adapt_batch_norm(model, images) == 2
    for layer in norms:
        inputs = per_channel(layer.input)  # through the layers before it, adapted
        np.testing.assert_allclose(
            layer.moving_mean.numpy(), inputs.mean(axis=0), rtol=1e-3, atol=1e-5
        )
        np.testing.assert_allclose(layer.moving_variance.numpy(), inputs.var(axis=0), rtol=1e-3)
        np.testing.assert_allclose(per_channel(layer.output).mean(axis=0), 0, atol=1e-3)


def test_every_member_of_an_ensemble_is_adapted():
    import keras

    from pcam.model import SEED_BASELINE, build
    from search.exported import combine

    params = dataclasses.replace(SEED_BASELINE, batch_norm=True, filters=(4,), blocks=1, crop=32)
    keras.utils.set_random_seed(0)
    ensemble = combine([build(params), build(params)], [{"trial": 3}, {"trial": 7}])
    images = np.random.default_rng(1).integers(150, 256, size=(64, 96, 96, 3), dtype=np.uint8)
    assert adapt_batch_norm(ensemble, images) == 2
    for member in (ensemble.get_layer("trial_3"), ensemble.get_layer("trial_7")):
        (norm,) = [
            layer for layer in member.layers if isinstance(layer, keras.layers.BatchNormalization)
        ]
        inputs = keras.Model(member.input, norm.input).predict(images, verbose=0)
        inputs = inputs.reshape(-1, inputs.shape[-1])
        np.testing.assert_allclose(
            norm.moving_mean.numpy(), inputs.mean(axis=0), rtol=1e-3, atol=1e-5
        )
