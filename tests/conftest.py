"""Shared fixtures: a private cache folder per test, fixed seeds, small real data sets."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# A command a test runs dumps every thread's stack when it is aborted (SIGABRT): a test that
# kills one that hangs shows where it stood (``tests.helpers.stderr_after_stop``).
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def checkout_untouched() -> Iterator[None]:
    """No test writes into the checkout's studies/ (databases, reports, artifacts: each test
    works in its own temporary folder)."""
    studies = REPO / "studies"
    before = set(studies.rglob("*"))  # a user's own studies, folders included, are left be
    yield
    new = sorted(str(p.relative_to(REPO)) for p in studies.rglob("*") if p not in before)
    assert new == [], f"tests wrote into the checkout: {new[:5]}"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test decodes into its own cache folder, never the user's."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("PCAM_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def command_lines() -> Iterator[None]:
    """The library's log lines on stderr as a command shows them, for capsys to read."""
    from pcam.logs import command_logging

    with command_logging():
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def fixed_seeds() -> None:
    import keras

    keras.utils.set_random_seed(1234)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory) -> Path:
    """A real synthetic data set in the Kaggle layout: 120 training and 16 test TIFFs."""
    from pcam.synth import generate

    return generate(
        tmp_path_factory.mktemp("synthetic") / "tiny",
        n_train=120,
        n_test=16,
        seed=7,
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="session")
def kaggle_sample() -> Path:
    """The real 4,000/1,000 PCam sample in ../shared (always present on CI)."""
    path = Path(os.environ.get("PCAM_SHARED_SAMPLE", REPO.parent / "shared" / "pcam-kaggle-sample"))
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"the real PCam sample is missing at {path}")
        pytest.skip(f"the real PCam sample is not at {path}")
    return path


@pytest.fixture
def postgres_url() -> str:
    """A new database on the throwaway server that .ci/run starts."""
    base = os.environ.get("PCAM_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("CI"):
            pytest.fail("PCAM_TEST_POSTGRES_URL is not set; .ci/run starts PostgreSQL")
        pytest.skip("no PostgreSQL server (set PCAM_TEST_POSTGRES_URL)")
    return new_postgres_database(base)


def new_postgres_database(server: str) -> str:
    """The URL of a new, empty database on the server of ``server`` (any of its URLs)."""
    name = f"pcam_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return server.rsplit("/", 1)[0] + f"/{name}"
