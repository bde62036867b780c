"""Precision, compiled steps and validation batch size are honoured, and CPU defaults are sane."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pcam.data import load_training_data
from pcam.model import ModelParams
from pcam.runtime import Runtime, resolve
from pcam.train import train

SMALL = ModelParams(blocks=2, filters=(8, 16), dense_units=16, batch_size=16, epochs=1, crop=32)


@pytest.fixture(autouse=True)
def restore_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


def test_cpu_defaults():
    runtime = resolve()
    assert (runtime.device, runtime.precision, runtime.jit_compile) == ("CPU", "float32", False)
    assert runtime.val_batch_size == 256
    assert "precision float32" in runtime.describe()


def test_explicit_choices_win():
    runtime = resolve(precision="mixed_bfloat16", jit_compile="on", val_batch_size=64)
    assert (runtime.precision, runtime.jit_compile, runtime.val_batch_size) == (
        "mixed_bfloat16",
        True,
        64,
    )
    with pytest.raises(ValueError, match="precision 'half'"):
        resolve(precision="half")


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_training_honours_precision_and_compiled_steps(tiny_synthetic, precision):
    data = load_training_data(tiny_synthetic, limit=40, progress=False)
    runtime = Runtime(
        "auto", "CPU", precision, jit_compile=precision != "float32", val_batch_size=7
    )
    result = train(SMALL, data.train, data.val, seed=0, runtime=runtime)
    conv = result.model.get_layer("block1_conv1")
    expected = "bfloat16" if precision == "mixed_bfloat16" else "float32"
    assert conv.compute_dtype == expected and conv.variable_dtype == "float32"
    assert result.model.get_layer("tumour").compute_dtype == "float32"
    assert bool(result.model.jit_compile) == runtime.jit_compile
    assert np.isfinite(result.best_val_auc)
