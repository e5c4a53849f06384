"""Tests of hzm.db.localdb on a real, throwaway cluster; no Django test database."""

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest

from hzm.db import localdb
from hzm.db.localdb import (
    FALLBACK_OS_USER,
    MAX_SOCKET_PATH_BYTES,
    SERVER_PROGRAMS,
    LocalCluster,
    LocalDatabaseError,
    candidate_bindirs,
    cluster_root,
    find_postgres_bindir,
    path_digest,
    socket_directory,
    traversable_by_others,
)


def _forbid_subprocesses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any subprocess start fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess: {args!r}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def _remove_cluster(cluster: LocalCluster) -> None:
    """Stop the server and delete every folder the cluster made."""
    try:
        cluster.stop()
    finally:
        for path in (cluster.root, cluster.socket_dir):
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A cluster for a fresh checkout; as root, pytest's private tmp dir forces the fallback."""
    cluster = LocalCluster(tmp_path_factory.mktemp("checkout"))
    yield cluster
    _remove_cluster(cluster)


@pytest.fixture
def running(cluster: LocalCluster) -> LocalCluster:
    cluster.ensure_running()
    return cluster


# --- The real cluster -------------------------------------------------------------------


def test_lifecycle_absent_running_stopped(cluster: LocalCluster):
    assert cluster.status() == "absent"

    # Two callers at once, as two processes starting together: the lock serialises them.
    errors: list[BaseException] = []

    def start() -> None:
        try:
            LocalCluster(cluster.base_dir).ensure_running()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cluster.status() == "running"

    cluster.stop()
    assert cluster.status() == "stopped"
    assert not cluster.socket_file.exists()
    cluster.stop()  # Stopping a stopped cluster is a no-op.

    cluster.ensure_running()
    assert cluster.status() == "running"


def test_location_and_ownership(running: LocalCluster):
    if os.geteuid() == 0:
        # The server runs as an unprivileged user, who must reach the data directory.
        assert os.stat(running.data_dir).st_uid != 0
        if not traversable_by_others(running.base_dir):
            assert running.root == Path(f"/var/tmp/hzm-localdb-{path_digest(running.base_dir)}")
    else:
        assert running.root == running.base_dir / ".localdb"
    assert stat.S_IMODE(os.stat(running.socket_dir).st_mode) == 0o700
    assert running.log_file.is_file()


def test_second_ensure_running_starts_no_subprocess(
    running: LocalCluster, monkeypatch: pytest.MonkeyPatch
):
    _forbid_subprocesses(monkeypatch)
    running.ensure_running()
    LocalCluster(running.base_dir).ensure_running()  # A new process's first call.


def test_url_connects(running: LocalCluster):
    with psycopg.connect(running.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database(), current_user").fetchone() == (
            "hzm",
            "postgres",
        )


def test_django_settings_connect(running: LocalCluster):
    settings = running.django_settings()
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"],
        port=settings["PORT"],
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_listens_on_the_unix_socket_only(running: LocalCluster):
    with psycopg.connect(running.url()) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        rules = conn.execute("SELECT DISTINCT type FROM pg_hba_file_rules").fetchall()
        assert rules == [("local",)]
        assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)
        assert conn.execute("SHOW max_connections").fetchone() == ("100",)


def test_url_parses_with_django_environ(cluster: LocalCluster):
    environ = pytest.importorskip("environ")
    config = environ.Env.db_url_config(cluster.url())
    assert (config["NAME"], config["USER"]) == ("hzm", "postgres")
    # django-environ leaves a query-string host in OPTIONS, which Django hands to psycopg.
    assert (config["HOST"] or config["OPTIONS"]["host"]) == str(cluster.socket_dir)


# --- Pure parts ---------------------------------------------------------------------------


def test_django_settings_is_pure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _forbid_subprocesses(monkeypatch)
    cluster = LocalCluster(tmp_path)
    assert cluster.django_settings() == {
        "NAME": "hzm",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(cluster.socket_dir),
        "PORT": "5432",
    }
    assert cluster.url() == (f"postgresql://postgres@/hzm?host={cluster.socket_dir}&port=5432")
    assert list(tmp_path.iterdir()) == []
    assert not cluster.root.exists()


def test_socket_dir_falls_back_to_a_short_path():
    base = Path("/checkouts") / ("very-long-directory-name-" * 4)
    preferred = base / ".localdb" / "run"
    assert len(os.fsencode(preferred / ".s.PGSQL.5432")) > MAX_SOCKET_PATH_BYTES
    short = socket_directory(preferred, base, 5432)
    assert short == Path(f"/tmp/hzm-localdb-{path_digest(base)}")
    assert socket_directory(preferred, base, 5432) == short  # Deterministic.
    assert socket_directory(Path("/srv/app/.localdb/run"), base, 5432) == Path(
        "/srv/app/.localdb/run"
    )
    cluster = LocalCluster(base)
    assert len(os.fsencode(cluster.socket_file)) <= MAX_SOCKET_PATH_BYTES


def test_cluster_root_for_root_depends_on_traversal(tmp_path: Path):
    private = tmp_path / "private"
    checkout = private / "checkout"
    checkout.mkdir(parents=True)
    private.chmod(0o700)
    fallback = Path(f"/var/tmp/hzm-localdb-{path_digest(checkout)}")
    assert cluster_root(checkout, euid=0) == fallback
    assert cluster_root(checkout, euid=1000) == checkout / ".localdb"

    with tempfile.TemporaryDirectory(dir="/tmp") as open_dir:
        checkout = Path(open_dir) / "checkout"
        checkout.mkdir()
        Path(open_dir).chmod(0o755)
        if traversable_by_others(Path("/tmp")):
            assert cluster_root(checkout, euid=0) == checkout / ".localdb"


def test_root_creates_a_system_user_when_postgres_is_missing(monkeypatch: pytest.MonkeyPatch):
    created: list[list[str]] = []
    account = pwd.struct_passwd(("hzmpg", "x", 999, 999, "", "/nonexistent", "/usr/sbin/nologin"))

    def getpwnam(name: str) -> pwd.struct_passwd:
        if name == FALLBACK_OS_USER and created:
            return account
        raise KeyError(name)

    def run(command, **kwargs):
        created.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(localdb.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(localdb.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(localdb.subprocess, "run", run)
    assert localdb._unprivileged_account() == account
    assert created == [
        [
            "/usr/sbin/useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "hzmpg",
        ]
    ]


# --- Finding the binaries -----------------------------------------------------------------


def _fake_bindir(parent: Path, name: str, version: str) -> Path:
    """A directory of server programs that only answer --version."""
    bindir = parent / name / "bin"
    bindir.mkdir(parents=True)
    for program in SERVER_PROGRAMS:
        script = bindir / program
        script.write_text(f'#!/bin/sh\necho "{program} (PostgreSQL) {version}"\n')
        script.chmod(0o755)
    return bindir


def test_find_postgres_bindir_picks_the_newest_supported(tmp_path: Path):
    v14 = _fake_bindir(tmp_path, "14", "14.9")
    v15_4 = _fake_bindir(tmp_path, "15.4", "15.4")
    v16 = _fake_bindir(tmp_path, "16", "16.1 (Debian 16.1-1)")
    v15_10 = _fake_bindir(tmp_path, "15.10", "15.10")
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    candidates = [incomplete, v14, v15_4, v16, v15_10]
    assert find_postgres_bindir(candidates=candidates) == v16
    assert find_postgres_bindir(major=15, candidates=candidates) == v15_10
    with pytest.raises(LocalDatabaseError, match="created by PostgreSQL 13"):
        find_postgres_bindir(major=13, candidates=candidates)


def test_find_postgres_bindir_explains_how_to_install(tmp_path: Path):
    v14 = _fake_bindir(tmp_path, "14", "14.9")
    with pytest.raises(LocalDatabaseError) as error:
        find_postgres_bindir(candidates=[v14])
    message = str(error.value)
    assert "15 or newer" in message
    assert f"PostgreSQL 14 in {v14}" in message
    assert "apt-get install postgresql" in message
    assert "DATABASE_URL" in message
    with pytest.raises(LocalDatabaseError, match="apt-get install postgresql"):
        find_postgres_bindir(candidates=[])


def test_candidate_bindirs_follow_symlinks_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = _fake_bindir(tmp_path, "17", "17.0")
    on_path = tmp_path / "path"
    on_path.mkdir()
    for program in SERVER_PROGRAMS:
        (on_path / program).symlink_to(real / program)
    monkeypatch.setenv("PATH", f"{on_path}{os.pathsep}{os.environ['PATH']}")
    assert candidate_bindirs()[0] == real.resolve()


# --- The management command -----------------------------------------------------------------


def _django_configured() -> bool:
    try:
        from django.conf import settings

        return settings.configured and hasattr(settings, "BASE_DIR")
    except Exception:
        return False


@pytest.mark.skipif(not _django_configured(), reason="Django settings are not configured")
def test_localdb_command_prints_url_and_maps_errors(monkeypatch: pytest.MonkeyPatch, capsys):
    from django.conf import settings
    from django.core.management import CommandError, call_command

    call_command("localdb", "url")
    assert capsys.readouterr().out.strip() == LocalCluster(settings.BASE_DIR).url()

    def fail(self):
        raise LocalDatabaseError("the cluster is broken: delete it")

    monkeypatch.setattr(LocalCluster, "status", fail)
    with pytest.raises(CommandError, match="the cluster is broken: delete it"):
        call_command("localdb", "status")


@pytest.mark.parametrize(("state", "code"), [("running", 0), ("stopped", 3), ("absent", 3)])
def test_localdb_status_exits_non_zero_unless_the_cluster_runs(
    monkeypatch: pytest.MonkeyPatch, capsys, state: str, code: int
):
    from django.core.management import call_command

    monkeypatch.setattr(LocalCluster, "status", lambda self: state)
    with pytest.raises(SystemExit) if code else contextlib.nullcontext() as exited:
        call_command("localdb", "status")
    assert capsys.readouterr().out.splitlines()[0] == state
    if code:
        assert exited.value.code == code


def test_localdb_status_exit_code_follows_the_state_it_prints():
    """As a script runs it: 0 for running, 3 for stopped or absent, whichever this machine has."""
    result = subprocess.run(
        [sys.executable, "manage.py", "localdb", "status"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    state = result.stdout.splitlines()[0]
    assert state in ("running", "stopped", "absent"), result
    assert result.returncode == (0 if state == "running" else 3), result
