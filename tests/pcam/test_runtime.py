"""Precision, compiled steps and validation batch size: defaults per device and backend, as the
README states them, and explicit choices reaching the trained model, under any backend."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest

import pcam.runtime
from pcam.data import load_training_data
from pcam.model import ModelParams
from pcam.runtime import Runtime, resolve
from pcam.train import train

SMALL = ModelParams(blocks=2, filters=(8, 16), dense_units=16, batch_size=16, epochs=1, crop=32)
BACKEND = keras.backend.backend()
# The README's table: --precision auto is mixed bfloat16 on a GPU, float32 on a CPU;
# --jit-compile auto is always on with JAX, on with a GPU on TensorFlow, off on PyTorch;
# --val-batch-size auto is 1024 on a GPU, 256 on a CPU.
COMPILED_BY_DEFAULT = {
    ("jax", "CPU"): True,
    ("jax", "GPU"): True,
    ("tensorflow", "CPU"): False,
    ("tensorflow", "GPU"): True,
    ("torch", "CPU"): False,
    ("torch", "GPU"): False,
}


@pytest.fixture(autouse=True)
def restore_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("gpu", [None, "NVIDIA H200"], ids=["CPU", "GPU"])
def test_defaults_follow_the_device_and_the_backend(monkeypatch, gpu):
    """Whatever this machine has: the defaults for a CPU and for a GPU, on this backend."""
    monkeypatch.setattr(pcam.runtime, "accelerator", lambda: gpu)
    runtime = resolve()
    kind = "CPU" if gpu is None else "GPU"
    assert (runtime.backend, runtime.device) == (BACKEND, gpu or "CPU")
    assert runtime.precision == ("float32" if gpu is None else "mixed_bfloat16")
    assert runtime.jit_compile is COMPILED_BY_DEFAULT[(BACKEND, kind)]
    assert runtime.val_batch_size == (256 if gpu is None else 1024)
    assert runtime.feed_threads == (2 if gpu is None else min(8, os.cpu_count() or 1))
    assert f"backend {BACKEND} on {gpu or 'CPU'}; precision {runtime.precision}" in (
        runtime.describe()
    )


def _backend_sees_a_gpu() -> bool:
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if BACKEND == "torch":
        import torch

        return torch.cuda.is_available()
    if BACKEND == "jax":
        import jax

        return any(device.platform == "gpu" for device in jax.devices())
    pytest.skip(f"no way to ask the {BACKEND} backend for its devices")


def test_the_device_is_the_one_the_backend_will_use():
    device = resolve().device
    assert (device != "CPU") == _backend_sees_a_gpu(), device


def test_explicit_choices_win():
    runtime = resolve(precision="mixed_bfloat16", jit_compile="on", val_batch_size=64)
    assert (runtime.precision, runtime.jit_compile, runtime.val_batch_size) == (
        "mixed_bfloat16",
        True,
        64,
    )
    off = resolve(precision="float32", jit_compile="off")
    assert (off.precision, off.jit_compile) == ("float32", False)
    with pytest.raises(ValueError, match="precision 'half'"):
        resolve(precision="half")


@pytest.mark.parametrize(
    ("precision", "jit_compile"),
    [
        ("float32", False),
        ("mixed_bfloat16", False),
        # On PyTorch this is torch.compile: about a minute on a CPU (the auto default is off).
        ("float32", True),
    ],
)
@pytest.mark.slow
def test_training_honours_precision_and_compiled_steps(tiny_synthetic, precision, jit_compile):
    data = load_training_data(tiny_synthetic, limit=40, progress=False)
    runtime = Runtime("auto", "CPU", precision, jit_compile=jit_compile, val_batch_size=7)
    result = train(SMALL, data.train, data.val, seed=0, runtime=runtime)
    conv = result.model.get_layer("block1_conv1")
    expected = "bfloat16" if precision == "mixed_bfloat16" else "float32"
    assert conv.compute_dtype == expected and conv.variable_dtype == "float32"
    assert result.model.get_layer("tumour").compute_dtype == "float32"
    assert bool(result.model.jit_compile) is jit_compile
    assert np.isfinite(result.best_val_auc)
