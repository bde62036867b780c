"""The parametric CNN: Input → [Conv ×k → MaxPool → Dropout] × blocks → head → sigmoid.

A model is compiled for one training run: its learning rate follows a schedule planned for
the run's whole epoch budget (``ModelParams.epochs``), so a run stopped early (pruned) has
seen the first part of the same schedule as a run that trains to the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pcam.images import PATCH_SHAPE

if TYPE_CHECKING:  # Keras is imported where a model is built: params need no backend
    import keras

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
CROPS = (32, 48, 64, 96)
# How patches are scaled before the first convolution: "none" divides by 255; "per_patch"
# standardises each channel of each patch (mean 0, variance 1 over its pixels), so a patch's
# overall stain intensity and colour cast, which differ between labs and scanners, are gone
# before the network sees it.
INPUT_NORMS = ("none", "per_patch")
SCHEDULES = ("constant", "cosine", "one_cycle")
WARMUP_START = 1 / 25  # warm-ups climb from this share of the peak rate (one-cycle's usual 25)
ONE_CYCLE_RISE = 0.3  # one-cycle: the share of the budget spent climbing to the peak
ONE_CYCLE_FLOOR = 1e-4  # one-cycle: ends at this share of the peak
ADAMW_DEFAULT_DECAY = 0.004  # Keras' AdamW default, kept for ``adamw`` without weight_decay


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
    schedule: str = "constant"
    warmup: float = 0.0  # share of the epoch budget spent warming up
    weight_decay: float = 0.0  # decoupled (AdamW-style), any optimizer
    label_smoothing: float = 0.0
    batch_size: int = 64
    epochs: int = 10  # the budget the schedule is planned for; a search sets it, never samples it
    crop: int = 96
    d8: bool = False
    hed_jitter: float = 0.0
    colour_jitter: float = 0.0  # brightness/contrast/saturation, ``pcam.augment.colour_jitter``
    input_norm: str = "none"  # INPUT_NORMS
    # The model is the mean of its weights at the end of its last ``average_epochs`` epochs
    # (tail weight averaging, as in SWA); 1: the last epoch's weights. ``pcam.train``.
    average_epochs: int = 1

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
        if self.input_norm not in INPUT_NORMS:
            problems.append(f"input_norm {self.input_norm!r} is not one of {INPUT_NORMS}")
        if not (0 <= self.hed_jitter < 1 and 0 <= self.colour_jitter < 1):
            problems.append("hed_jitter and colour_jitter must lie in [0, 1)")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} is not one of {SCHEDULES}")
        if not 0 <= self.warmup < 1:
            problems.append(f"warmup {self.warmup} must lie in [0, 1) (a share of the epochs)")
        if self.weight_decay < 0 or not 0 <= self.label_smoothing < 0.5:
            problems.append("weight_decay must be >= 0 and label_smoothing in [0, 0.5)")
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
                self.average_epochs,
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


def bn_momentum(steps_per_epoch: int | None) -> float:
    """Batch-norm statistics that remember about a quarter of an epoch (10 to 100 steps).

    Keras' default momentum 0.99 averages over ~100 steps. On a small data set (38 steps an
    epoch for 2,400 patches at batch 64) the statistics used at validation then still hold
    68% of their initial values after epoch 1 and 32% after epoch 3, so a BN model scores
    near chance for its first epochs whatever it has learnt: pruning at those epochs would
    throw away exactly the models that win.
    """
    if steps_per_epoch is None:
        return 0.99
    return min(0.99, max(0.9, 1 - 4 / steps_per_epoch))


def learning_rate(
    params: ModelParams, steps_per_epoch: int | None
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The rate of ``params.schedule`` over ``params.epochs`` epochs of ``steps_per_epoch``.

    ``constant`` and ``cosine`` climb linearly over the ``warmup`` share of the budget, then
    hold or follow a cosine to zero; ``one_cycle`` climbs over at least 30% and then falls to
    1e-4 of the peak. Built from Keras' own ``CosineDecay``, so an exported model loads
    anywhere without custom objects. Without ``steps_per_epoch`` the rate is constant.
    """
    import keras

    peak = params.learning_rate
    if steps_per_epoch is None:
        return peak
    total = max(1, params.epochs * steps_per_epoch)
    warmup = params.warmup
    alpha = {"constant": 1.0, "cosine": 0.0, "one_cycle": ONE_CYCLE_FLOOR}[params.schedule]
    if params.schedule == "one_cycle":
        warmup = max(warmup, ONE_CYCLE_RISE)
    if params.schedule == "constant" and warmup == 0:
        return peak
    warmup_steps = min(round(warmup * total), total - 1)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(peak, total, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(
        peak * WARMUP_START,
        total - warmup_steps,
        alpha=alpha,
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def build(
    params: ModelParams,
    *,
    steps_per_epoch: int | None = None,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    """Build and compile the model for ``params``; it takes whole 96×96 uint8 patches.

    ``steps_per_epoch`` (of the run it is built for) plans the learning-rate schedule and
    sets the batch-norm momentum; without it the rate is constant. Layers follow the global
    dtype policy (``pcam.runtime.Runtime.apply``); the output stays float32.
    """
    import keras
    from keras import layers

    momentum = bn_momentum(steps_per_epoch)
    inputs = keras.Input(shape=PATCH_SHAPE, name="patch")
    x = layers.Rescaling(1.0 / 255, name="scale")(inputs)
    if params.input_norm == "per_patch":
        # One group per channel, no learnt scale or shift: instance normalisation of the input.
        x = layers.GroupNormalization(
            groups=PATCH_SHAPE[2], center=False, scale=False, epsilon=1e-3, name="patch_norm"
        )(x)
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
                x = layers.BatchNormalization(momentum=momentum, name=f"block{block}_bn{conv}")(x)
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
        optimizer=_optimizer(params, learning_rate(params, steps_per_epoch)),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=params.label_smoothing),
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


def _optimizer(params: ModelParams, rate) -> keras.optimizers.Optimizer:
    import keras

    decay = params.weight_decay or None  # decoupled: each step shrinks weights by rate × decay
    if params.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=rate, momentum=0.9, nesterov=True, weight_decay=decay
        )
    if params.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=rate, weight_decay=decay)
    if params.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=decay or ADAMW_DEFAULT_DECAY)
    return keras.optimizers.Adam(learning_rate=rate, weight_decay=decay)
