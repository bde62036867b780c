"""Every layout is recognised and every kind of bad input is refused with a clear message."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pcam.data import load_split
from pcam.errors import DataError
from pcam.layouts import detect, open_split
from tests.helpers import patch, write_folders, write_hdf5, write_kaggle


def test_kaggle_layout_lists_train_and_test(tmp_path):
    root = write_kaggle(tmp_path / "k")
    layout = detect(root)
    assert (layout.kind, layout.split_names) == ("kaggle", ("train", "test"))
    train = open_split(layout, "train")
    assert len(train) == 12 and train.labelled and set(train.labels) == {0, 1}
    test = open_split(layout, "test")
    assert list(test.ids) == [f"x{i:03d}" for i in range(4)] and not test.labelled


def test_hdf5_layout_reads_each_split(tmp_path):
    root = write_hdf5(tmp_path / "h", sizes={"train": 6, "valid": 4, "test": 2})
    layout = detect(root)
    assert (layout.kind, layout.split_names) == ("hdf5", ("train", "valid", "test"))
    _, valid = load_split(root, "valid", progress=False)
    assert valid.images.shape == (4, 96, 96, 3)
    assert np.array_equal(valid.images[3], patch(3))
    assert list(valid.labels) == [0, 1, 0, 1]


def test_class_folders_layout(tmp_path):
    root = write_folders(tmp_path / "f", per_class=3)
    layout = detect(root)
    assert layout.kind == "folders"
    _, train = load_split(root, "train", progress=False)
    assert list(train.labels) == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(train.images[0], patch(0))


def test_real_kaggle_sample(kaggle_sample):
    layout = detect(kaggle_sample)
    train = open_split(layout, "train")
    test = open_split(layout, "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert int(train.labels.sum()) == 1654


def _expect(message_part: str, root, split: str = "train") -> str:
    with pytest.raises(DataError) as caught:
        load_split(root, split, progress=False)
    assert message_part in str(caught.value), str(caught.value)
    return str(caught.value)


def test_missing_folder(tmp_path):
    _expect("no such file or folder", tmp_path / "nowhere")


def test_missing_csv(tmp_path):
    root = write_kaggle(tmp_path / "k")
    (root / "train_labels.csv").unlink()
    _expect("train_labels.csv (columns id,label) is missing", root)


def test_csv_without_label_column(tmp_path):
    root = write_kaggle(tmp_path / "k")
    (root / "train_labels.csv").write_text("id,tumour\nt000,1\n")
    _expect("missing column(s) label", root)


def test_labels_other_than_0_1(tmp_path):
    root = write_kaggle(tmp_path / "k")
    csv = root / "train_labels.csv"
    csv.write_text(csv.read_text().replace("t003,1", "t003,2").replace("t005,1", "t005,yes"))
    message = _expect("2 row(s) have a label other than 0 or 1", root)
    assert "t003" in message and "t005" in message


def test_labels_without_images_are_refused(tmp_path):
    root = write_kaggle(tmp_path / "k")
    for i in range(7):
        (root / "train" / f"t{i:03d}.tif").unlink()
    message = _expect("7 labelled id(s) have no image", root)
    assert "t000, t001, t002, t003, t004 (and 2 more)" in message


def test_images_without_labels_are_left_out_with_a_note(tmp_path, capsys, command_lines):
    root = write_kaggle(tmp_path / "k")
    Image.fromarray(patch(99)).save(root / "train" / "stray.tif")
    _, train = load_split(root, "train", progress=False)
    assert len(train) == 12 and "stray" not in set(train.ids)
    assert "1 image(s)" in capsys.readouterr().err


def test_duplicate_ids(tmp_path):
    root = write_kaggle(tmp_path / "k")
    csv = root / "train_labels.csv"
    csv.write_text(csv.read_text() + "t001,1\n")
    _expect("1 id(s) appear more than once: t001", root)


def test_truncated_image(tmp_path):
    root = write_kaggle(tmp_path / "k")
    path = root / "train" / "t004.tif"
    path.write_bytes(path.read_bytes()[:500])
    message = _expect("could not be used", root)
    assert "t004.tif" in message and "truncated" in message


def test_not_an_image(tmp_path):
    root = write_kaggle(tmp_path / "k")
    (root / "train" / "t002.tif").write_text("hello")
    _expect("t002.tif: cannot decode", root)


def test_wrong_size(tmp_path):
    root = write_kaggle(tmp_path / "k")
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(root / "train" / "t003.tif")
    _expect("t003.tif: image is 80×64 px, expected 96×96", root)


def test_greyscale_is_converted_cmyk_is_refused(tmp_path):
    root = write_kaggle(tmp_path / "k")
    Image.fromarray(np.full((96, 96), 77, np.uint8), mode="L").save(root / "train" / "t001.tif")
    _, train = load_split(root, "train", progress=False)
    assert (train.images[list(train.ids).index("t001")] == 77).all()
    Image.new("CMYK", (96, 96)).save(root / "train" / "t002.tif")
    _expect("image mode 'CMYK' is not supported", root)


def test_empty_test_folder(tmp_path):
    root = write_kaggle(tmp_path / "k", n_test=0)
    (root / "sample_submission.csv").unlink()
    _expect("the test folder holds no images", root, split="test")


def test_test_csv_and_images_disagree(tmp_path):
    root = write_kaggle(tmp_path / "k")
    (root / "test" / "x001.tif").unlink()
    _expect("1 id(s) listed without an image: x001", root, split="test")


def test_hdf5_x_and_y_of_different_lengths(tmp_path):
    root = write_hdf5(tmp_path / "h", sizes={"train": 5}, y_sizes={"train": 4})
    _expect("holds 5 patches but camelyonpatch_level_2_split_train_y.h5 holds 4 labels", root)


def test_bad_input_from_the_command_line_exits_2_without_traceback(tmp_path):
    root = write_kaggle(tmp_path / "k")
    (root / "train_labels.csv").write_text("id,label\nt000,3\n")
    done = subprocess.run(
        [sys.executable, "-m", "pcam.prepare", str(root)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "label other than 0 or 1" in done.stderr
