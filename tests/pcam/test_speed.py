"""The speed check (``pcam.speed.SpeedCheck``) on a clock the test moves: when it decides
from the first batches, and its second look after two epochs."""

from __future__ import annotations

import types

import numpy as np
import pytest

import pcam.speed
from pcam.speed import SPEED_CHECK_BATCHES, SpeedCheck


@pytest.mark.parametrize(
    "seconds_per_batch, stops_after", [(1.0, 2), (0.35, 6), (0.05, None)], ids=str
)
def test_the_speed_check_stops_a_far_slower_run_at_its_first_timed_batch(
    monkeypatch, seconds_per_batch, stops_after
):
    """Cap 40 s, 100 steps, 10 s of compiling in the first batch: 1 s a batch projects 109 s,
    over twice the cap, at once; 0.35 s projects 10 + 34.65 = 44.65 s, over the cap only, so
    the check waits for its five timed batches; 0.05 s fits."""
    clock = [0.0]
    monkeypatch.setattr(pcam.speed.time, "perf_counter", lambda: clock[0])
    check = SpeedCheck(steps_per_epoch=10, epochs=10, already=0.0, cap=40.0)
    check.set_model(types.SimpleNamespace(stop_training=False))
    check.on_train_begin()
    clock[0] += 10.0  # the first batch compiles
    check.on_train_batch_end(0)
    stopped_at = None
    for batch in range(1, 20):
        clock[0] += seconds_per_batch
        check.on_train_batch_end(batch)
        if check.model.stop_training and stopped_at is None:
            stopped_at = batch + 1
    assert stopped_at == stops_after and check.too_slow == (stops_after is not None)
    assert stops_after != SPEED_CHECK_BATCHES + 1 or 40 < check.projected < 80


@pytest.mark.parametrize("second_epoch_batch, stopped", [(0.5, True), (0.1, False), (None, False)])
def test_the_speed_check_looks_again_after_the_second_epoch(
    monkeypatch, second_epoch_batch, stopped
):
    """Cap 40 s, 10 epochs of 10 batches: a compiling first batch (1 s) and nine of 0.1 s
    project 10.9 s and pass; the first epoch's validation compiles (5 s), which scaled by the
    ten epochs would read 69 s, but the second epoch is steady: at 0.1 s a batch and 0.2 s of
    validation the run projects 8.1 + 8 * 1.2 = 17.7 s and goes on; at 0.5 s a batch it
    projects 12.1 + 8 * 5.2 = 53.7 s and stops there. A run already stopping for another reason
    (None: pruned at that epoch) is left alone, and no later epoch is looked at."""
    clock = [0.0]
    monkeypatch.setattr(pcam.speed.time, "perf_counter", lambda: clock[0])
    check = SpeedCheck(steps_per_epoch=10, epochs=10, already=0.0, cap=40.0, recheck_cap=40.0)
    check.set_model(types.SimpleNamespace(stop_training=False))
    check.on_train_begin()
    batch_seconds = [1.0] + [0.1] * 9 + [second_epoch_batch or 0.5] * 10
    for batch, seconds in enumerate(batch_seconds):
        clock[0] += seconds
        check.on_train_batch_end(batch % 10)
        if batch % 10 == 9:  # the epoch's last batch: validation, then the epoch's end
            clock[0] += 5.0 if batch == 9 else 0.2
            if batch == 19 and second_epoch_batch is None:
                check.model.stop_training = True  # the pruner stopped it at this epoch
            check.on_epoch_end(batch // 10)
            assert check.projected == pytest.approx(10.9) and check.too_slow == (
                stopped and batch == 19
            )
    assert check.model.stop_training == (stopped or second_epoch_batch is None)
    if stopped:
        assert check.rechecked == pytest.approx(53.7)
    else:
        assert np.isnan(check.rechecked)
    check.model.stop_training = False
    clock[0] += 1000.0  # a third epoch far slower still: not looked at
    check.on_epoch_end(2)
    assert check.too_slow == stopped and not check.model.stop_training


@pytest.mark.parametrize("per_epoch, decided_after", [(3, 3), (1, SPEED_CHECK_BATCHES + 1)])
def test_the_first_look_decides_within_the_first_epoch_when_it_has_batches_to_time(
    monkeypatch, per_epoch, decided_after
):
    """Three batches an epoch: decided at the first epoch's last batch, before that epoch is
    scored, so a run stopped there has no scored epoch; one batch an epoch has nothing to time
    within it, and the look waits for its five timed batches across epochs."""
    clock = [0.0]
    monkeypatch.setattr(pcam.speed.time, "perf_counter", lambda: clock[0])
    check = SpeedCheck(steps_per_epoch=per_epoch, epochs=10, already=0.0, cap=40.0)
    check.set_model(types.SimpleNamespace(stop_training=False))
    check.on_train_begin()
    decided = None
    for batch in range(10 * per_epoch):
        clock[0] += 1.0 if batch == 0 else 0.1
        check.on_train_batch_end(batch % per_epoch)
        if decided is None and not np.isnan(check.projected):
            decided = batch + 1
    assert decided == decided_after and not check.too_slow
