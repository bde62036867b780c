"""A password in ``--storage`` never leaves the command line: it is in none of the study's
tables, the report, ``model.json``, the submission folder, or anything the commands print."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy

from pcam.errors import run_cli
from search.config import SearchConfig, redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://ann:s3cret@db.example:5432/pcam", "postgresql://ann:***@db.example:5432/pcam"),
        ("postgresql+psycopg://ann:p%40ss@h/db?sslmode=require", "postgresql+psycopg://ann:***@h/db?sslmode=require"),
        ("postgresql://ann@h/db", "postgresql://ann@h/db"),
        ("sqlite:///studies/pcam.db", "sqlite:///studies/pcam.db"),
        ("not-a-url://ann:s3cret@h/db", "not-a-url://ann:***@h/db"),
    ],
)  # fmt: skip
def test_redacted_hides_the_password_and_nothing_else(url, shown):
    assert redacted(url) == shown


def test_the_stored_settings_hold_no_password():
    config = SearchConfig(
        storage="postgresql://ann:s3cret@h/db",
        warm_start="w",
        warm_start_storage="mysql://b:pw@h/w",
    )
    stored = config.to_dict()
    assert stored["storage"] == "postgresql://ann:***@h/db"
    assert stored["warm_start_storage"] == "mysql://b:***@h/w"
    assert config.storage_url == "postgresql://ann:s3cret@h/db"  # what connects keeps it


@pytest.fixture
def password_url(postgres_url) -> tuple[str, str]:
    """A database owned by a new role that logs in with a password; (URL, password)."""
    role = f"pcam_user_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    database = postgres_url.rsplit("/", 1)[1]
    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        connection.execute(sqlalchemy.text(f"ALTER DATABASE {database} OWNER TO {role}"))
    engine.dispose()
    host = postgres_url.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://{role}:{password}@{host}/{database}", password


def _run(command, capfd, *args: str) -> tuple[int, str]:
    """A command's ``main`` as ``python -m`` runs it (``run_cli``), in this process: its exit
    status, and everything written to stdout and stderr, the C++ libraries' lines included."""
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_status:
        run_cli(lambda: command.main(list(args)))
    out, err = capfd.readouterr()
    return exit_status.value.code, out + err


def _database_text(url: str) -> str:
    """Every row of every table of the database, as text."""
    engine = sqlalchemy.create_engine(url)
    rows = []
    with engine.connect() as connection:
        tables = connection.execute(
            sqlalchemy.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ).scalars()
        for table in list(tables):
            query = sqlalchemy.text(f'SELECT CAST(t AS text) FROM "{table}" t')
            rows += connection.execute(query).scalars().all()
    engine.dispose()
    return "\n".join(rows)


@pytest.mark.slow
def test_a_password_in_the_storage_url_is_stored_and_printed_nowhere(
    tmp_path, tiny_synthetic, password_url, capfd, monkeypatch
):
    from search import run, submit

    url, password = password_url
    shown = redacted(url)
    monkeypatch.chdir(tmp_path)
    # The server really checks it: a wrong password is refused, and not echoed either.
    status, wrong = _run(
        submit, capfd, "--study", "leak", "--storage", url.replace(password, "wrong-pw")
    )
    assert status == 2 and "password authentication failed" in wrong
    assert "wrong-pw" not in wrong

    status, searched = _run(
        run, capfd, "--study", "leak", "--storage", url, "--data", str(tiny_synthetic),
        "--trials", "2", "--max-epochs", "1", "--limit", "40", "--no-progress",
    )  # fmt: skip
    assert status == 0, searched[-3000:]
    # the URL can come from the environment instead of the command line
    monkeypatch.setenv("PCAM_STORAGE", url)
    status, submitted = _run(submit, capfd, "--study", "leak", "--tta", "none")
    assert status == 0, submitted[-3000:]
    printed = searched + submitted
    assert shown in printed  # the URL is printed, masked: this test sees what users see
    assert password not in printed
    stored = _database_text(url)
    assert shown in stored and "leak" in stored
    assert password not in stored
    written = sorted(p for p in (tmp_path / "studies").rglob("*") if p.is_file())
    names = {p.name for p in written}
    assert {"report.html", "model.json", "submission.csv"} <= names, names
    for path in written:
        assert password.encode() not in path.read_bytes(), path
