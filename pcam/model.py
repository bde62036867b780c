"""The parametric CNN: Input → [Conv ×k → MaxPool → Dropout] × blocks → head → sigmoid."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import keras
from keras import layers

from pcam.images import PATCH_SHAPE

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
CROPS = (32, 48, 64, 96)


@dataclass(frozen=True)
class ModelParams:
    """Everything that defines one trial's model and its training; the search's only output."""

    blocks: int = 3
    filters: tuple[int, ...] = (32, 64, 128)
    convs_per_block: int = 1
    kernel_size: int = 3
    block_dropout: float = 0.25
    dense_units: int = 256
    dense_dropout: float = 0.5
    batch_norm: bool = False
    head: Literal["flatten", "global_avg"] = "flatten"
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    epochs: int = 10
    crop: int = 96
    d8: bool = False
    hed_jitter: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if len(self.filters) != self.blocks:
            problems.append(
                f"filters {self.filters} has {len(self.filters)} entries for {self.blocks} blocks"
            )
        if self.crop not in CROPS:
            problems.append(f"crop {self.crop} is not one of {CROPS}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.head not in ("flatten", "global_avg"):
            problems.append(f"head {self.head!r} is not 'flatten' or 'global_avg'")
        if not (0 <= self.block_dropout < 1 and 0 <= self.dense_dropout < 1):
            problems.append("dropout rates must lie in [0, 1)")
        if (
            min(
                self.blocks,
                self.convs_per_block,
                self.kernel_size,
                self.dense_units,
                self.batch_size,
                self.epochs,
            )
            < 1
            or self.learning_rate <= 0
        ):
            problems.append("sizes, epochs and learning rate must be positive")
        if problems:
            raise ValueError("invalid ModelParams: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["filters"] = list(self.filters)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ModelParams field(s): {', '.join(unknown)}")
        values = dict(values)
        if "filters" in values:
            values["filters"] = tuple(int(f) for f in values["filters"])
        return cls(**values)


# The design this project starts from (AUC 0.85 on Kaggle, never tuned): every study's trial 0.
SEED_BASELINE = ModelParams()


def build(params: ModelParams, *, jit_compile: bool | str = "auto") -> keras.Model:
    """Build and compile the model for ``params``; it takes whole 96×96 uint8 patches.

    Layers follow the global dtype policy (``pcam.runtime.Runtime.apply``); the output stays
    float32.
    """
    inputs = keras.Input(shape=PATCH_SHAPE, name="patch")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    if params.crop < PATCH_SHAPE[0]:
        x = layers.CenterCrop(params.crop, params.crop, name="centre_crop")(x)
    for block, filters in enumerate(params.filters, start=1):
        for conv in range(1, params.convs_per_block + 1):
            x = layers.Conv2D(
                filters,
                params.kernel_size,
                padding="same",
                use_bias=not params.batch_norm,
                name=f"block{block}_conv{conv}",
            )(x)
            if params.batch_norm:
                x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = layers.Activation("relu", name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(padding="same", name=f"block{block}_pool")(x)
        x = layers.Dropout(params.block_dropout, name=f"block{block}_dropout")(x)
    if params.head == "flatten":
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="global_avg")(x)
    x = layers.Dense(params.dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(params.dense_dropout, name="dense_dropout")(x)
    # float32 output keeps the loss and the probabilities exact under mixed precision.
    outputs = layers.Dense(1, activation="sigmoid", dtype="float32", name="tumour")(x)
    model = keras.Model(inputs, outputs, name="pcam_cnn")
    model.compile(
        optimizer=_optimizer(params),
        loss="binary_crossentropy",
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    return model


def count_params(params: ModelParams) -> int:
    """Trainable + non-trainable weights of the model, without building it on a device."""
    side = params.crop
    channels = PATCH_SHAPE[2]
    total = 0
    for filters in params.filters:
        for _ in range(params.convs_per_block):
            total += params.kernel_size**2 * channels * filters
            total += 4 * filters if params.batch_norm else filters
            channels = filters
        side = -(-side // 2)
    features = side * side * channels if params.head == "flatten" else channels
    total += features * params.dense_units + params.dense_units
    return total + params.dense_units + 1


def _optimizer(params: ModelParams) -> keras.optimizers.Optimizer:
    rate = params.learning_rate
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True)
    if params.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=rate)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate)
    return keras.optimizers.Adam(learning_rate=rate)
