"""Augmentation never moves the centre 32×32 region out of the patch, and jitter is colour-only."""

from __future__ import annotations

import numpy as np

from pcam.augment import Augment, colour_jitter, dihedral, dihedral_one, hed_jitter

CENTRE = slice(32, 64)


def test_the_8_symmetries_are_distinct_and_keep_the_centre(rng):
    batch = rng.integers(0, 256, size=(1, 96, 96, 3), dtype=np.uint8)
    outputs = [dihedral_one(batch, t) for t in range(8)]
    assert len({o.tobytes() for o in outputs}) == 8
    centre = np.sort(batch[0, CENTRE, CENTRE].reshape(-1, 3), axis=0)
    ring = np.sort(batch[0].reshape(-1, 3), axis=0)
    for out in outputs:
        assert np.array_equal(np.sort(out[0, CENTRE, CENTRE].reshape(-1, 3), axis=0), centre)
        assert np.array_equal(np.sort(out[0].reshape(-1, 3), axis=0), ring)


def test_per_image_transforms(rng):
    batch = rng.integers(0, 256, size=(16, 96, 96, 3), dtype=np.uint8)
    transforms = rng.integers(0, 8, size=16)
    out = dihedral(batch, transforms)
    for i, t in enumerate(transforms):
        assert np.array_equal(out[i], dihedral_one(batch[i : i + 1], int(t))[0])


def test_hed_jitter_changes_colour_not_geometry(rng):
    batch = np.zeros((4, 96, 96, 3), np.uint8)
    batch[:, 40:50, 40:50] = (120, 60, 160)  # a purple "nucleus" in the centre
    batch[:, :40] = (240, 180, 210)
    out = hed_jitter(batch, strength=0.1, rng=rng)
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert not np.array_equal(out, batch)
    for image in out:
        # pixels that were equal stay equal: the map is per-colour, so shapes do not move
        assert (image[40:50, 40:50] == image[40, 40]).all()
        assert (image[:40] == image[0, 0]).all()
        assert not np.array_equal(image[40, 40], image[0, 0])
    assert np.abs(out.astype(int) - batch).mean() < 40  # mild


def test_zero_strength_jitter_is_identity(rng):
    batch = rng.integers(0, 256, size=(2, 96, 96, 3), dtype=np.uint8)
    assert np.abs(hed_jitter(batch, strength=0.0, rng=rng).astype(int) - batch).max() <= 1
    assert np.abs(colour_jitter(batch, strength=0.0, rng=rng).astype(int) - batch).max() <= 1


def test_colour_jitter_changes_brightness_contrast_and_saturation_per_patch_not_geometry(rng):
    batch = np.zeros((32, 96, 96, 3), np.uint8)
    batch[:, 40:50, 40:50] = (120, 60, 160)  # a purple "nucleus" in the centre
    batch[:, :40] = (240, 180, 210)
    batch[:, 50:] = (200, 120, 180)
    out = colour_jitter(batch, strength=0.2, rng=rng)
    assert out.shape == batch.shape and out.dtype == np.uint8
    for image in out:  # shapes stay where they were
        assert (image[40:50, 40:50] == image[40, 40]).all()
        assert (image[:40] == image[0, 0]).all()
    brightness = out.reshape(32, -1).mean(axis=1)
    spread = np.ptp(out[:, 45, 45].astype(int), axis=1)  # the nucleus's saturation
    assert brightness.std() > 3 and spread.std() > 3  # each patch drew its own factors
    assert abs(brightness.mean() - batch.mean()) < 15  # centred on the original


def test_augment_applies_colour_jitter_when_asked(rng):
    batch = rng.integers(0, 256, size=(4, 96, 96, 3), dtype=np.uint8)
    assert np.array_equal(Augment(d8=False)(batch, rng), batch)
    assert not np.array_equal(Augment(d8=False, colour_jitter=0.2)(batch, rng), batch)


def test_augment_with_d8_keeps_centre_content(rng):
    batch = rng.integers(0, 256, size=(8, 96, 96, 3), dtype=np.uint8)
    out = Augment(d8=True)(batch, rng)
    for image, original in zip(out, batch, strict=True):
        assert np.array_equal(
            np.sort(image[CENTRE, CENTRE].reshape(-1)),
            np.sort(original[CENTRE, CENTRE].reshape(-1)),
        )
