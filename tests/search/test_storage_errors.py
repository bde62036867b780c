"""Opening a storage: the URL's, the driver's or the server's fault is one clear line; a bug
in the code keeps its traceback."""

from __future__ import annotations

import optuna
import pytest

from pcam.errors import DataError
from search import report, study, submit
from search.config import SearchConfig


def _open_by_run(url: str):
    return study.connect(SearchConfig(storage=url))


def _open_by_submit(url: str):
    return submit.open_existing_study(submit.SubmitConfig(storage=url))


def _open_by_report(url: str):
    return report.load_study("pcam", url)


OPENERS = [_open_by_run, _open_by_submit, _open_by_report]


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("not a url", "cannot open it"),
        ("nosuchdialect://h/db", "cannot open it"),
        ("mysql://ann:s3cret@127.0.0.1/db", "cannot open it"),  # no MySQL driver installed
    ],
)
def test_a_bad_url_or_missing_driver_is_one_clear_line(opener, url, said):
    with pytest.raises(DataError) as raised:
        opener(url)
    message = str(raised.value)
    assert said in message and "s3cret" not in message


@pytest.mark.parametrize("opener", OPENERS)
def test_a_bug_is_not_turned_into_cannot_open_it(opener, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'pcam.db'}"
    optuna.create_study(study_name="pcam", storage=url)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(optuna, "get_all_study_names", broken)
    with pytest.raises(ZeroDivisionError):
        opener(url)
