"""The watchdog (hzm/watchdog.py), run as the README runs it, against the attacks it is for.

The attacker holds what SQL injected into a request holds: a session of the web process's
authenticator (hzm_web) switched to the runtime role. It lifts its own timeouts and holds
a lock: ACCESS EXCLUSIVE on core.users while it sleeps (every sign-in waits), or migrate's
advisory key at session level on a connection that lives on after the request (every
deploy waits). The
README's watchdog command ends those backends and nothing else: not the web login's
ordinary sessions, not the owner's long transaction. The command runs exactly as the
README writes it but for its two durations, scaled from minutes to seconds.
"""

import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from hzm.db.operations import runtime_role
from hzm.deploy.connection import MIGRATE_LOCK_KEY
from tests import support
from tests.production.deployment import README, Deployment

MAX_TRANSACTION = "3s"
EVERY = "1s"
WAIT_SECONDS = 30  # for the watchdog to act; it should within MAX_TRANSACTION + EVERY


def readme_watchdog_arguments(**durations: str) -> list[str]:
    """The README's watchdog command's manage.py arguments, with `durations` swapped in."""
    section = README.read_text().split("**The watchdog.**")[1]
    line = re.search(r"```sh\n(DATABASE_URL=postgresql://hzm_watchdog:\S+ python .*)\n```", section)
    words = shlex.split(line[1])
    arguments = words[words.index("manage.py") + 1 :]
    for option, value in durations.items():
        flag = "--" + option.replace("_", "-")
        assert flag in arguments, (flag, arguments)
        arguments[arguments.index(flag) + 1] = value
    return arguments


def with_deployed_logins(deployment: Deployment, arguments: list[str]) -> list[str]:
    """The README's login names in `arguments` as this deployment names them."""
    return [deployment.login(word) if word == "hzm_web" else word for word in arguments]


@contextmanager
def running_watchdog(deployment: Deployment) -> Iterator[subprocess.Popen]:
    """The README's `--every` command in the background, as the watchdog's login."""
    arguments = readme_watchdog_arguments(max_transaction=MAX_TRANSACTION, every=EVERY)
    assert arguments[:3] == ["watchdog", "--login", "hzm_web"], arguments
    process = subprocess.Popen(
        [sys.executable, "manage.py", *with_deployed_logins(deployment, arguments)],
        cwd=support.REPO_ROOT,
        env=deployment.environment(DATABASE_URL=deployment.url("hzm_watchdog")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def watchdog_output(process: subprocess.Popen) -> tuple[str, str]:
    """What it wrote; SIGTERM stops it after the round in progress (and its lines)."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, (process.returncode, out, err)
    return out, err


def connect(deployment: Deployment, login: str, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(deployment.url(login), **kwargs)


def lifted_bounds(cursor: Any) -> None:
    """What injected SQL does first: every bound of the request set to nothing."""
    cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(runtime_role())))
    for setting in (
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "client_connection_check_interval",
    ):
        cursor.execute(sql.SQL("SET LOCAL {} = 0").format(sql.Identifier(setting)))


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"still {what} after {WAIT_SECONDS} s"
        time.sleep(0.2)


def users_locked(deployment: Deployment) -> bool:
    """Whether a web session (the runtime role) waits more than 300 ms to read core.users."""
    with connect(deployment, "hzm_web") as victim, victim.cursor() as cursor:
        cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(runtime_role())))
        cursor.execute("SET LOCAL lock_timeout = '300ms'")
        try:
            cursor.execute("SELECT count(*) FROM core.users")
        except psycopg.errors.LockNotAvailable:
            return True
        return False


def test_a_locked_table_and_a_sleep_with_every_timeout_lifted_are_ended(deployment):
    outcome: dict[str, Any] = {}
    locked = threading.Event()

    def attacker() -> None:
        try:
            with connect(deployment, "hzm_web") as conn, conn.cursor() as cursor:
                lifted_bounds(cursor)
                cursor.execute("LOCK TABLE core.users IN ACCESS EXCLUSIVE MODE")
                outcome["pid"] = conn.info.backend_pid
                locked.set()
                cursor.execute("SELECT pg_sleep(600)")
            outcome["finished"] = True
        except psycopg.Error as error:
            outcome["error"] = error
        finally:
            locked.set()

    # What must survive: a web session doing nothing, and the owner's long transaction
    # (another login) holding a transaction-level advisory lock.
    bystander = connect(deployment, "hzm_web", autocommit=True)
    owner = connect(deployment, "hzm_owner")
    owner.execute("SELECT pg_advisory_xact_lock(1, 2)")
    thread = threading.Thread(target=attacker, daemon=True)
    thread.start()
    try:
        assert locked.wait(WAIT_SECONDS) and "pid" in outcome, outcome
        assert users_locked(deployment)  # every sign-in waits
        with running_watchdog(deployment) as process:
            until(lambda: not users_locked(deployment), "locked")
            thread.join(WAIT_SECONDS)
            out, err = watchdog_output(process)
        assert "terminating connection due to administrator command" in str(outcome["error"])
        [line] = out.splitlines() or [err]
        assert line.startswith(
            f"backend {outcome['pid']} of {deployment.login('hzm_web')} ended: "
            "in one transaction for "
        ), (out, err)
        assert "(state active; last statement: SELECT pg_sleep(600))" in line
        # The others carry on.
        assert bystander.execute("SELECT 1").fetchone() == (1,)
        assert owner.execute("SELECT 1").fetchone() == (1,)
    finally:
        bystander.close()
        owner.close()


def migrate_lock_is_free(deployment: Deployment) -> bool:
    with connect(deployment, "hzm_owner", autocommit=True) as owner:
        (taken,) = owner.execute("SELECT pg_try_advisory_lock(%s, %s)", MIGRATE_LOCK_KEY).fetchone()
        if taken:
            owner.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATE_LOCK_KEY)
        return taken


def test_migrates_lock_held_by_an_idle_web_session_is_ended(deployment):
    """A web connection that lives on (CONN_MAX_AGE above 0, or a PgBouncer without the
    README's reset: tests/production/test_pooled_session_state.py) keeps a session-level
    advisory lock after the request's transaction, idle, and every deploy waits for it."""
    attacker = connect(deployment, "hzm_web", autocommit=True)
    try:
        with attacker.transaction():
            lifted_bounds(attacker.cursor())
            attacker.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATE_LOCK_KEY)
        assert not migrate_lock_is_free(deployment)
        with running_watchdog(deployment) as process:
            until(lambda: migrate_lock_is_free(deployment), "held")
            out, err = watchdog_output(process)
        assert out.splitlines() == [
            f"backend {attacker.info.backend_pid} of {deployment.login('hzm_web')} ended: "
            "holding an advisory lock outside any transaction (state idle; last statement: "
            "COMMIT)"
        ], (out, err)
        with pytest.raises(psycopg.OperationalError):
            attacker.execute("SELECT 1")
    finally:
        attacker.close()


# --- Refusals --------------------------------------------------------------------------------


def watchdog_once(
    deployment: Deployment, login: str, *arguments: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "watchdog", *arguments],
        cwd=support.REPO_ROOT,
        env=deployment.environment(DATABASE_URL=deployment.url(login)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("CommandError: "), result.stderr
    return result.stderr


def test_once_it_ends_nothing_when_nothing_runs_away(deployment):
    web = deployment.login("hzm_web")
    result = watchdog_once(deployment, "hzm_watchdog", "--login", web, "-v", "2")
    assert result.returncode == 0, result
    assert result.stdout == ""
    assert "watchdog: 0 backend(s) ended" in result.stderr


def test_without_its_grants_it_refuses_naming_them(deployment):
    web = deployment.login("hzm_web")
    message = refusal(
        watchdog_once(deployment, "hzm_web", "--login", deployment.login("hzm_admin"))
    )
    assert f"the watchdog's login {web} may not see or end other backends" in message
    assert f"GRANT pg_read_all_stats TO {web}; GRANT pg_signal_backend TO {web}; " in message
    assert f"GRANT EXECUTE ON FUNCTION pg_terminate_backend(integer, bigint) TO {web}" in message


def superuser_name() -> str:
    with psycopg.connect(**support.server_params("postgres")) as conn:
        return conn.execute("SELECT current_user").fetchone()[0]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--login", "{superuser}"], "is a superuser, whose backends pg_signal_backend cannot end"),
        (["--login", "hzm_no_such_login"], "--login hzm_no_such_login: no such role"),
        (["--login", "{watchdog}"], "is the watchdog's own login"),
        (["--login", "{runtime}"], "cannot log in (NOLOGIN): name a login role"),
        (["--login", "{web}", "--every", "soon"], "--every = 'soon' is not a duration"),
        (["--login", "{web}", "--max-transaction", "0"], "must be at least one second"),
    ],
)
def test_a_wrong_login_or_duration_is_refused(deployment, arguments, message):
    names = {
        "superuser": superuser_name(),
        "watchdog": deployment.login("hzm_watchdog"),
        "runtime": runtime_role(),
        "web": deployment.login("hzm_web"),
    }
    filled = [argument.format(**names) for argument in arguments]
    assert message in refusal(watchdog_once(deployment, "hzm_watchdog", *filled))
