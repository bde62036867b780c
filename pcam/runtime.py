"""How a run uses the device: backend, precision, compiled steps, validation batch size.

Defaults are picked per device and always said: on a GPU, ``mixed_bfloat16`` (compute in
bfloat16, weights and the output in float32) and compiled steps; on a CPU, ``float32``, where
bfloat16 is slower and TensorFlow's XLA-compiled steps run slower than its own kernels, every
epoch, not only the first (``bench/bench_cpu_compile.py``). JAX always compiles its steps:
without ``jax.jit`` Keras runs them op by op, many times slower.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Keras is imported where it is used: a command's --help must not wait for the backend.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclass(frozen=True)
class Runtime:
    """Resolved device settings; ``describe()`` is printed at the start of a search."""

    backend: str
    device: str
    precision: str
    jit_compile: bool
    val_batch_size: int
    feed_threads: int = 2

    def describe(self) -> str:
        return (
            f"backend {self.backend} on {self.device}; precision {self.precision}; "
            f"compiled steps {'on' if self.jit_compile else 'off'}; "
            f"validation batch {self.val_batch_size}"
        )

    def apply(self) -> None:
        """Set the global dtype policy; call before building each model."""
        import keras

        keras.mixed_precision.set_dtype_policy(self.precision)


def accelerator() -> str | None:
    """The name of the GPU the current backend will use, or None on a CPU."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            gpus = [d for d in jax.devices() if d.platform == "gpu"]
            return gpus[0].device_kind if gpus else None
        if backend == "torch":
            import torch

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return gpus[0].name if gpus else None
    except (ImportError, RuntimeError):
        return None
    return None


def resolve(
    *,
    precision: str = "auto",
    jit_compile: str = "auto",
    val_batch_size: int | None = None,
) -> Runtime:
    """Turn ``auto`` choices into concrete settings for this machine."""
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"precision {precision!r}: choose auto or one of {PRECISIONS}")
    if jit_compile not in ("auto", "on", "off"):
        raise ValueError(f"jit_compile {jit_compile!r}: choose auto, on or off")
    import keras

    gpu = accelerator()
    backend = keras.backend.backend()
    # torch.compile takes longer to compile than short trials train: off unless asked for.
    auto_jit = backend == "jax" or (backend == "tensorflow" and gpu is not None)
    return Runtime(
        backend=backend,
        device=gpu or "CPU",
        precision=("mixed_bfloat16" if gpu else "float32") if precision == "auto" else precision,
        jit_compile=auto_jit if jit_compile == "auto" else jit_compile == "on",
        val_batch_size=val_batch_size or (1024 if gpu else 256),
        # Threads that gather and augment the next batches while the device trains.
        feed_threads=min(8, os.cpu_count() or 1) if gpu else 2,
    )


def __getattr__(name: str) -> Runtime:
    """``CPU_DEFAULT``, the settings of a run that resolved nothing, is made on first use:
    whether its steps are compiled depends on the Keras backend, which this module does not
    load on import."""
    if name != "CPU_DEFAULT":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import keras

    default = Runtime(
        backend="auto",
        device="CPU",
        precision="float32",
        jit_compile=keras.backend.backend() == "jax",
        val_batch_size=256,
    )
    globals()["CPU_DEFAULT"] = default
    return default
