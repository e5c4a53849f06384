"""The embedded PostgreSQL cluster used when DATABASE_URL is unset.

Each checkout gets its own cluster in the git-ignored folder `.localdb/` (data in
`data/`, the Unix socket in `run/`, the server log in `postgresql.log`), owned by the
superuser `postgres` with trust authentication. The server listens on its Unix socket
only, never on a network address, and the socket directory is private to the OS user
running the server, so no other local user can reach it.

PostgreSQL refuses to run as root. Under root, the binaries run as an unprivileged OS
user (`postgres`, or a system user `hzmpg` created on first use), and when that user
cannot traverse the checkout the cluster lives in `/var/tmp/hzm-localdb-<hash>`.

Only the standard library here: settings.py imports this module before Django is set
up, and `.ci/run` loads it by file path before the virtualenv exists.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

MIN_MAJOR_VERSION = 15
# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
FALLBACK_OS_USER = "hzmpg"
# Where distributions install the server binaries, besides PATH and pg_config.
BINDIR_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
INSTALL_HINT = (
    "Install the PostgreSQL server (Debian/Ubuntu: `sudo apt-get install postgresql`; "
    "Fedora: `sudo dnf install postgresql-server`; macOS: `brew install postgresql@16`), "
    "or set DATABASE_URL to use an existing server."
)

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class LocalDatabaseError(RuntimeError):
    """A failure of the embedded cluster; the message says what is wrong and what to do."""


# --- Finding the server binaries -----------------------------------------------------


def server_version(bindir: Path) -> tuple[int, int] | None:
    """Return (major, minor) of the `postgres` in `bindir`, or None if it does not answer."""
    try:
        result = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION.search(result.stdout)
    if result.returncode != 0 or not match:
        return None
    return int(match[1]), int(match[2] or 0)


def candidate_bindirs() -> list[Path]:
    """Directories that may hold the server programs: PATH, `pg_config --bindir`, BINDIR_GLOBS."""
    found: list[Path] = []
    for directory in os.get_exec_path():
        initdb = Path(directory) / "initdb"
        try:
            if initdb.is_file():
                # Follow symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin.
                found.append(initdb.resolve().parent)
        except OSError:
            continue  # A PATH entry we may not read (e.g. under /root): not ours to search.
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            if result.returncode == 0 and result.stdout.strip():
                found.append(Path(result.stdout.strip()))
        except (OSError, subprocess.TimeoutExpired):
            pass
    for pattern in BINDIR_GLOBS:
        found.extend(Path(path) for path in sorted(glob.glob(pattern)))
    unique: list[Path] = []
    for path in found:
        path = path.resolve()
        if path not in unique:
            unique.append(path)
    return unique


def find_postgres_bindir(
    major: int | None = None, candidates: Iterable[Path] | None = None
) -> Path:
    """Return the bindir of the newest PostgreSQL >= 15 (or of exactly `major`, if given)."""
    best: tuple[tuple[int, int], Path] | None = None
    seen: list[str] = []
    for bindir in candidate_bindirs() if candidates is None else candidates:
        bindir = Path(bindir)
        if not all(os.access(bindir / name, os.X_OK) for name in SERVER_PROGRAMS):
            continue
        version = server_version(bindir)
        if version is None:
            continue
        seen.append(f"PostgreSQL {version[0]} in {bindir}")
        wanted = version[0] == major if major is not None else version[0] >= MIN_MAJOR_VERSION
        if wanted and (best is None or version > best[0]):
            best = (version, bindir)
    if best is not None:
        return best[1]
    found = f" Found only: {'; '.join(seen)}." if seen else ""
    if major is not None:
        raise LocalDatabaseError(
            f"The embedded cluster was created by PostgreSQL {major}, whose server binaries "
            f"(initdb, pg_ctl, postgres) are not installed.{found} Install PostgreSQL {major} "
            f"(Debian/Ubuntu: `sudo apt-get install postgresql-{major}`), or delete the "
            "cluster folder to recreate it empty (its data is lost), or set DATABASE_URL."
        )
    raise LocalDatabaseError(
        f"No PostgreSQL server {MIN_MAJOR_VERSION} or newer found: looked for initdb, pg_ctl "
        f"and postgres on PATH, in `pg_config --bindir` and in {', '.join(BINDIR_GLOBS)}."
        f"{found} {INSTALL_HINT}"
    )


# --- Where the cluster lives (pure: os.stat only, no writes, no subprocess) -------------


def path_digest(base_dir: Path) -> str:
    """A short stable digest of a checkout path, for per-checkout names outside it."""
    return hashlib.sha256(os.fsencode(base_dir)).hexdigest()[:12]


def traversable_by_others(path: Path) -> bool:
    """True if every directory from / down to `path` has the search bit for others."""
    try:
        return all(os.stat(p).st_mode & stat.S_IXOTH for p in (path, *path.parents))
    except OSError:
        return False


def cluster_root(base_dir: Path, euid: int) -> Path:
    """The cluster folder of the checkout `base_dir` for a process with effective uid `euid`."""
    if euid == 0 and not traversable_by_others(base_dir):
        # The unprivileged server user could not reach <base_dir>/.localdb
        # (e.g. a checkout under /root, mode 700).
        return Path(f"/var/tmp/hzm-localdb-{path_digest(base_dir)}")
    return base_dir / ".localdb"


def socket_directory(preferred: Path, base_dir: Path, port: int) -> Path:
    """`preferred`, or a short directory under /tmp when the socket path would be too long."""
    if len(os.fsencode(preferred / f".s.PGSQL.{port}")) <= MAX_SOCKET_PATH_BYTES:
        return preferred
    return Path(f"/tmp/hzm-localdb-{path_digest(base_dir)}")


def _conf_string(value: str) -> str:
    """Quote a string for postgresql.conf."""
    if "\n" in value or "\0" in value:
        raise LocalDatabaseError(f"path {value!r} cannot be written to postgresql.conf")
    return "'" + value.replace("'", "''") + "'"


def _pid_is_postgres(pid: int) -> bool:
    """True if process `pid` is alive and (where /proc tells) is a postgres server."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # It exists, owned by the server user.
    try:
        # "pid (comm) state ...": a recycled pid runs another program, and an exited
        # postmaster that nobody reaped (PID 1 of some containers) is a zombie, 'Z'.
        proc_stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        # Without /proc (macOS) the signal test is all we have; with it, the pid is gone.
        return not Path("/proc/self").exists()
    except OSError:
        return True
    name = proc_stat[proc_stat.find("(") + 1 : proc_stat.rfind(")")]
    state = proc_stat[proc_stat.rfind(")") + 2 :][:1]
    return name in ("postgres", "postmaster") and state not in ("Z", "X")


def _announce(message: str) -> None:
    """Tell the developer about a one-time event (initialisation, a new OS user, a start)."""
    print(f"hzm localdb: {message}", file=sys.stderr, flush=True)


# --- The cluster -----------------------------------------------------------------------


class LocalCluster:
    """The embedded PostgreSQL cluster of one checkout."""

    def __init__(
        self,
        base_dir: Path | str,
        *,
        dbname: str = "hzm",
        superuser: str = "postgres",
        port: int = 5432,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.dbname = dbname
        self.superuser = superuser
        self.port = int(port)
        self.root = cluster_root(self.base_dir, os.geteuid())
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgresql.log"
        self.lock_file = self.root / "lock"
        self.socket_dir = socket_directory(self.root / "run", self.base_dir, self.port)
        self.socket_file = self.socket_dir / f".s.PGSQL.{self.port}"
        self._account: pwd.struct_passwd | None = None
        self._bindir_found: Path | None = None

    def __repr__(self) -> str:
        return f"LocalCluster({str(self.base_dir)!r}, root={str(self.root)!r})"

    # Pure descriptions ---------------------------------------------------------------

    def django_settings(self) -> dict:
        """The connection part of a Django DATABASES entry (no subprocess, no writes)."""
        return {
            "NAME": self.dbname,
            "USER": self.superuser,
            "PASSWORD": "",
            "HOST": str(self.socket_dir),
            "PORT": str(self.port),
        }

    def url(self) -> str:
        """A libpq URL of the database, for psql and for DATABASE_URL."""
        host = quote(str(self.socket_dir), safe="/")
        return (
            f"postgresql://{quote(self.superuser, safe='')}@/{quote(self.dbname, safe='')}"
            f"?host={host}&port={self.port}"
        )

    # State ----------------------------------------------------------------------------

    def status(self) -> str:
        """'running', 'stopped' or 'absent' (not initialised)."""
        try:
            initialised = (self.data_dir / "PG_VERSION").is_file()
        except PermissionError as exc:
            raise self._not_ours_error() from exc
        if not initialised:
            return "absent"
        return "running" if self._server_pid() is not None else "stopped"

    def _pid_file_lines(self) -> list[str]:
        """The lines of postmaster.pid, or [] when there is none."""
        try:
            return (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return []
        except PermissionError as exc:
            raise self._not_ours_error() from exc
        except OSError:
            return []

    def _server_pid(self) -> int | None:
        """The pid of the live postmaster of this data directory, if any."""
        lines = self._pid_file_lines()
        try:
            pid = int(lines[0])
        except (IndexError, ValueError):
            return None
        return pid if _pid_is_postgres(pid) else None

    def _ready(self) -> bool:
        """True if the server runs, accepts connections, and on our socket (no subprocess)."""
        lines = self._pid_file_lines()
        # postmaster.pid: pid, data dir, start time, port, socket dir, listen address,
        # shared memory key, status.
        if len(lines) < 8 or lines[7].strip() != "ready":
            return False
        if lines[3].strip() != str(self.port) or lines[4].strip() != str(self.socket_dir):
            return False  # Started elsewhere (e.g. the checkout moved): restart it.
        try:
            if not stat.S_ISSOCK(os.stat(self.socket_file).st_mode):
                return False
            pid = int(lines[0])
        except (OSError, ValueError):
            return False
        return _pid_is_postgres(pid)

    # Actions --------------------------------------------------------------------------

    def ensure_running(self) -> None:
        """Initialise, start and create the database as needed; cheap when already running."""
        if self._ready():
            return
        with self._locked():
            if self.status() == "absent":
                self._initdb()
            if not self._ready():
                if self._server_pid() is not None:
                    self._pg_ctl("stop", "-m", "fast")
                self._start()
            self._create_database()

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.status() != "running":
            return
        with self._locked():
            if self._server_pid() is not None:
                self._pg_ctl("stop", "-m", "fast")

    # Internals ------------------------------------------------------------------------

    def _not_ours_error(self) -> LocalDatabaseError:
        """The error for a cluster folder that another OS user manages."""
        try:
            owner = pwd.getpwuid(os.stat(self.root).st_uid).pw_name
        except (OSError, KeyError):
            owner = "another user"
        return LocalDatabaseError(
            f"The embedded PostgreSQL cluster in {self.root} is managed by {owner}: run this "
            f"command as {owner}, or set DATABASE_URL to use another server."
        )

    def _server_account(self) -> pwd.struct_passwd | None:
        """The OS account that runs the server: None (ourselves) unless we are root."""
        if os.geteuid() != 0:
            return None
        if self._account is None:
            self._account = self._data_dir_owner() or _unprivileged_account()
        return self._account

    def _data_dir_owner(self) -> pwd.struct_passwd | None:
        """The non-root owner of an existing data directory, which must keep running it."""
        try:
            uid = os.stat(self.data_dir).st_uid
        except FileNotFoundError:
            return None
        if uid == 0:
            return None
        try:
            return pwd.getpwuid(uid)
        except KeyError:
            raise LocalDatabaseError(
                f"The data directory {self.data_dir} belongs to uid {uid}, which has no "
                f"account: delete {self.root} to recreate the cluster (its data is lost)."
            ) from None

    def _give(self, path: Path) -> None:
        """Hand `path` to the server account (a no-op when we run the server ourselves)."""
        account = self._server_account()
        if account is not None:
            os.chown(path, account.pw_uid, account.pw_gid)

    def _private_dir(self, path: Path, uid: int) -> None:
        """Create `path` (mode 700) or check that it is a real directory owned by `uid`."""
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        else:
            if uid != os.geteuid():
                os.chown(path, uid, -1)
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
            raise LocalDatabaseError(
                f"{path} exists but is not a directory owned by uid {uid}; it may belong "
                "to someone else: remove it and try again."
            )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the cluster's lock file, so concurrent processes initialise/start it once."""
        account = self._server_account()
        if self.root.parent == Path("/var/tmp"):
            # A shared, world-writable parent: insist on our own real directory.
            self._private_dir(self.root, os.geteuid())
        else:
            try:
                self.root.mkdir(mode=0o700, exist_ok=True)
            except OSError as exc:
                raise LocalDatabaseError(
                    f"Cannot create the embedded cluster folder {self.root}: {exc}. "
                    "Fix the permissions or set DATABASE_URL."
                ) from exc
        if account is not None:
            os.chmod(self.root, 0o755)  # The server account must traverse it.
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except PermissionError as exc:
            raise self._not_ours_error() from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _run(self, args: list[str | Path], what: str, stdin: str | None = None) -> str:
        """Run a PostgreSQL program as the server account; return stdout or raise."""
        command = [str(arg) for arg in args]
        account = self._server_account()
        if account is not None:
            if shutil.which("runuser"):
                command = ["runuser", "-u", account.pw_name, "--", *command]
            elif shutil.which("setpriv"):
                command = [
                    "setpriv",
                    f"--reuid={account.pw_uid}",
                    f"--regid={account.pw_gid}",
                    "--init-groups",
                    "--",
                    *command,
                ]
            else:
                raise LocalDatabaseError(
                    "PostgreSQL cannot run as root and neither runuser nor setpriv "
                    "(util-linux) is installed to switch to the user "
                    f"{account.pw_name!r}: install util-linux, or run as an ordinary user."
                )
        # Our own PG* variables (PGHOST, PGDATABASE, ...) must not redirect these programs.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        try:
            result = subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                env=env,
                cwd=self.root,
                timeout=180,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LocalDatabaseError(f"{what} failed: {exc}") from exc
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise LocalDatabaseError(
                f"{what} failed (exit {result.returncode}): {detail}{self._log_tail()}"
            )
        return result.stdout

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"\nLast lines of {self.log_file}:\n" + "\n".join(tail) if tail else ""

    def _bindir(self) -> Path:
        """The server binaries for this cluster: its own major version once initialised."""
        if self._bindir_found is None:
            try:
                major = int((self.data_dir / "PG_VERSION").read_text().strip())
            except (OSError, ValueError):
                major = None
            self._bindir_found = find_postgres_bindir(major)
        return self._bindir_found

    def _pg_ctl(self, *args: str) -> None:
        self._run(
            [self._bindir() / "pg_ctl", "-D", self.data_dir, "-w", "-t", "60", "-s", *args],
            what=f"pg_ctl {args[0]} of the embedded cluster in {self.data_dir}",
        )

    def _initdb(self) -> None:
        bindir = self._bindir()
        account = self._server_account()
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._give(self.data_dir)
        user = f" as OS user {account.pw_name!r} (PostgreSQL refuses root)" if account else ""
        _announce(f"creating the embedded PostgreSQL cluster in {self.root}{user}")
        locale = "C.UTF-8" if _has_c_utf8_locale() else "C"
        self._run(
            [
                bindir / "initdb",
                "-D",
                self.data_dir,
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                f"--locale={locale}",
                # No fsync: a dev/test cluster is recreated, not recovered (see _configure).
                "--no-sync",
                "--no-instructions",
            ],
            what=f"initdb of the embedded cluster in {self.data_dir}",
        )

    def _configure(self) -> None:
        """Write the server settings and access rules; done on every start, so they heal."""
        hzm_conf = self.data_dir / "hzm.conf"
        # fsync, synchronous_commit and full_page_writes off trade durability for speed.
        # That is acceptable ONLY for this embedded development and test cluster, whose
        # data is disposable: never copy these settings to a real server.
        hzm_conf.write_text(
            f"""\
# Written by hzm.db.localdb before every start: edits here are overwritten.
listen_addresses = ''
port = {self.port}
unix_socket_directories = {_conf_string(str(self.socket_dir))}
max_connections = 100
# Disposable development/test data only: after a crash, delete the cluster folder.
fsync = off
synchronous_commit = off
full_page_writes = off
"""
        )
        self._give(hzm_conf)
        # Only `local` lines: no TCP access even if someone enables listen_addresses.
        (self.data_dir / "pg_hba.conf").write_text(
            "# Written by hzm.db.localdb: Unix socket only, trust (the socket dir is private).\n"
            "local all all trust\n"
        )
        main_conf = self.data_dir / "postgresql.conf"
        include = "include 'hzm.conf'"
        if include not in main_conf.read_text().splitlines():
            with main_conf.open("a") as conf:
                conf.write(f"\n{include}\n")

    def _start(self) -> None:
        self._configure()
        account = self._server_account()
        server_uid = account.pw_uid if account else os.geteuid()
        if self.socket_dir.parent == Path("/tmp"):
            self._private_dir(self.socket_dir, server_uid)
        else:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
            self._give(self.socket_dir)
        self.log_file.touch(mode=0o600, exist_ok=True)
        self._give(self.log_file)
        self._run(
            [
                self._bindir() / "pg_ctl",
                "-D",
                self.data_dir,
                "-l",
                self.log_file,
                "-w",
                "-t",
                "60",
                "-s",
                "start",
            ],
            what=f"starting the embedded PostgreSQL cluster in {self.data_dir}",
        )
        _announce(f"PostgreSQL runs from {self.data_dir}, socket in {self.socket_dir}")

    def _create_database(self) -> None:
        bindir = self._bindir()
        psql = bindir / "psql" if (bindir / "psql").exists() else shutil.which("psql")
        if psql is None:
            raise LocalDatabaseError(f"psql not found in {bindir} or on PATH. {INSTALL_HINT}")
        # Values travel as psql variables; format(%I) quotes the name on the server.
        script = (
            "SELECT format('CREATE DATABASE %I', :'dbname') WHERE NOT EXISTS "
            "(SELECT FROM pg_database WHERE datname = :'dbname') \\gexec\n"
        )
        self._run(
            [
                psql,
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                f"dbname={self.dbname}",
                "-h",
                self.socket_dir,
                "-p",
                str(self.port),
                "-U",
                self.superuser,
                "-d",
                "postgres",
            ],
            what=f"creating the database {self.dbname!r} in the embedded cluster",
            stdin=script,
        )


def _unprivileged_account() -> pwd.struct_passwd:
    """`postgres`, or a system user created for the purpose, to run the server as root."""
    for name in ("postgres", FALLBACK_OS_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise LocalDatabaseError(
            "PostgreSQL cannot run as root, there is no OS user 'postgres', and useradd is "
            f"missing to create {FALLBACK_OS_USER!r}: create an unprivileged user named "
            "'postgres', or run as an ordinary user, or set DATABASE_URL."
        )
    _announce(f"creating the system user {FALLBACK_OS_USER!r} to run PostgreSQL (it refuses root)")
    result = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_OS_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalDatabaseError(
            f"Could not create the system user {FALLBACK_OS_USER!r} to run PostgreSQL: "
            f"{result.stderr.strip()}. Create an unprivileged user 'postgres' and retry."
        )
    return pwd.getpwnam(FALLBACK_OS_USER)


def _has_c_utf8_locale() -> bool:
    """True if the C.UTF-8 locale is installed (glibc calls it C.utf8)."""
    try:
        result = subprocess.run(
            ["locale", "-a"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    names = {line.strip().lower().replace("-", "") for line in result.stdout.splitlines()}
    return "c.utf8" in names
