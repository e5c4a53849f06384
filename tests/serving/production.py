"""The README's production environment and server command, run as an operator would."""

import os
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import connection

from tests import support

README = support.REPO_ROOT / "README.md"
ENVIRONMENT_HEADING = "# production environment"


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)


def environment_block() -> str:
    """The README's one ```sh block that starts with '# production environment'."""
    blocks = _code_blocks(README.read_text(), "sh")
    found = [block for block in blocks if block.startswith(ENVIRONMENT_HEADING + "\n")]
    assert len(found) == 1, (
        f"README.md: {len(found)} ```sh blocks start with {ENVIRONMENT_HEADING!r}"
    )
    return found[0]


def server_command() -> list[str]:
    """The gunicorn command of the README's "Serving in production"."""
    text = README.read_text()
    start = text.index("\n## Serving in production\n")
    section = text[start : text.index("\n## ", start + 1)]
    lines = {
        line.split("#")[0].strip()
        for block in _code_blocks(section, "bash")
        for line in block.splitlines()
    }
    commands = sorted(line for line in lines if line.startswith("gunicorn "))
    assert len(commands) == 1, f"README.md: expected one gunicorn command, found {commands}"
    return shlex.split(commands[0])


def secrets_and_database() -> dict[str, str]:
    """What the block takes from the secret store: fresh secrets, the test database's URL."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "HZM_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        # The key migrate installed into the test database: its tenant contexts verify.
        "HZM_CONTEXT_KEY": settings.HZM_CONTEXT_KEY,
        "DATABASE_URL": support.database_url(connection.settings_dict["NAME"]),
        # The runtime role of the test database (roles belong to the cluster).
        "HZM_APP_ROLE": settings.HZM_APP_ROLE,
    }


def run_in_production_environment(
    command: list[str],
    *,
    overrides: Mapping[str, str] | None = None,
    popen: bool = False,
    **options,
) -> subprocess.CompletedProcess | subprocess.Popen:
    """Run `command` in the repository after `sh` has run the README's block; `overrides`
    are exported after it. Nothing else of this process's environment is passed on."""
    script = environment_block()
    for name, value in (overrides or {}).items():
        script += f"export {name}={shlex.quote(value)}\n"
    script += 'exec "$@"\n'
    bin_dir = str(Path(sys.executable).parent)
    environment = {
        "PATH": os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        **secrets_and_database(),
    }
    argv = ["sh", "-c", script, "sh", *command]
    if popen:
        return subprocess.Popen(argv, cwd=support.REPO_ROOT, env=environment, **options)
    return subprocess.run(
        argv,
        cwd=support.REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        **options,
    )
