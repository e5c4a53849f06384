"""The README's "First tenant in five minutes", run as a new user would paste it.

The ```bash block whose first line is `# first tenant:` runs in bash (-e, -u, pipefail)
from the checkout, after what `./dev up` does: the migrated test database, the reference
data loaded as `./dev up` loads it (loaddata --missing-only), and the web server on
loopback, both logged in as `./dev up`'s are (the database's superuser; the production
logins are tests/deploy/test_onboarding.py's). Only two things of the text are
replaced: `./dev manage` by this virtualenv's `python manage.py` (what `./dev manage`
runs, without its install step), and `http://127.0.0.1:8000` by the address of the
server, which is gunicorn in the README's production environment (DEBUG off), as
tests/production/servers.py starts it. What the walkthrough commits is removed after
(committed_rows).

The curl lines run with the real curl when it is installed (it is on CI); without one,
`tests/first_tenant_curl.py` (the options the block uses, replayed with urllib) stands
in for it on PATH, and the test prints which one ran. The stand-in's requests are
checked here too, against what the server answers another client, so that a checkout
without curl does not rely on an untested replay.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from tests import support
from tests.production.servers import HttpSession, gunicorn_server, production_environment
from tests.security.conftest import committed_rows  # noqa: F401  (a fixture)

README = support.REPO_ROOT / "README.md"
MARKER = "# first tenant:"
DEV_URL = "http://127.0.0.1:8000"
STAND_IN = Path(__file__).with_name("first_tenant_curl.py")
# What `./dev up` loads (dev: REFERENCE_FIXTURES).
REFERENCE_FIXTURES = re.search(
    r"REFERENCE_FIXTURES=\(([^)]*)\)", (support.REPO_ROOT / "dev").read_text()
)


def walkthrough() -> str:
    """The README's block that starts with the marker (exactly one)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    found = [block for block in blocks if block.startswith(MARKER)]
    assert len(found) == 1, f"README.md: no single ```bash block starting with {MARKER!r}"
    return found[0]


def as_run_here(script: str, base_url: str) -> str:
    assert "./dev manage " in script and DEV_URL in script
    return script.replace("./dev manage ", '"$HZM_PYTHON" manage.py ').replace(DEV_URL, base_url)


def outputs(stdout: str) -> list[Any]:
    """The JSON documents the curl lines printed, one a line (-w '\\n')."""
    return [
        json.loads(line, parse_float=Decimal)
        for line in stdout.splitlines()
        if line.startswith("{")
    ]


@pytest.fixture
def fresh_install(committed_rows) -> str:  # noqa: F811
    """The test database as `./dev up` leaves one: migrated, reference data loaded."""
    assert REFERENCE_FIXTURES is not None
    call_command("loaddata", "--missing-only", *REFERENCE_FIXTURES[1].split(), verbosity=0)
    return connection.settings_dict["NAME"]


def bash(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=support.REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def command_environment(database: str, path: str | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PG", "DATABASE_URL", "MIGRATION_DATABASE_URL"))
    }
    env.update(
        DATABASE_URL=support.database_url(database),
        HZM_APP_ROLE=settings.HZM_APP_ROLE,
        HZM_PYTHON=sys.executable,
    )
    if path is not None:
        env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
    return env


def stand_in_directory(tmp_path: Path) -> Path:
    """A directory whose `curl` is the urllib stand-in."""
    directory = tmp_path / "bin"
    directory.mkdir()
    curl = directory / "curl"
    curl.write_text(f"#!{sys.executable}\n" + STAND_IN.read_text())
    curl.chmod(0o755)
    return directory


def test_the_readme_walkthrough_from_a_fresh_install_to_a_row_read_back(fresh_install, tmp_path):
    real_curl = shutil.which("curl")
    path = None if real_curl else str(stand_in_directory(tmp_path))
    print("curl:", real_curl or f"not installed: the urllib stand-in ({STAND_IN.name})")
    env = production_environment(support.database_url(fresh_install))
    with gunicorn_server(env) as base_url:
        result = bash(
            as_run_here(walkthrough(), base_url), command_environment(fresh_install, path)
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{base_url.output()}"
    table, row, page = outputs(result.stdout)
    assert table["name"] == "products"
    assert [field["name"] for field in table["fields"]] == ["title", "price"]
    assert row["data"] == {"title": "Green tea", "price": Decimal("4.50")}
    assert [found["data"] for found in page["rows"]] == [row["data"]]
    assert page["rows"][0]["id"] == row["id"]
    # What the commands said went to stderr, and the key was shown nowhere but stdout.
    assert "Created tenant 'Acme Corp'" in result.stderr
    assert "It is shown this once." in result.stderr
    assert "hzm_" not in result.stderr.replace("(hzm_", "")


def test_the_stand_in_sends_what_curl_would(fresh_install, tmp_path):
    """The stand-in's requests and output, against what the server answers another client."""
    tables = '"$URL/api/v1/projects/1/tables/"'
    script = "\n".join(
        [
            f"curl -s -w '\\n' -X POST {tables} -H 'Authorization: Bearer hzm_000000000000_x' \\",
            '     -H \'Content-Type: application/json\' -d \'{"name": "t", "fields": []}\'',
            f"curl -s -w '%{{http_code}}\\n' {tables} -H 'Authorization: Bearer no'",
        ]
    )
    env = production_environment(support.database_url(fresh_install))
    with gunicorn_server(env) as base_url:
        path = str(stand_in_directory(tmp_path))
        result = bash(script, {**command_environment(fresh_install, path), "URL": base_url})
        client = HttpSession(base_url)
        posted = client.post(
            "/api/v1/projects/1/tables/",
            json={"name": "t", "fields": []},
            headers={"Authorization": "Bearer hzm_000000000000_x"},
        )
        listed = client.get("/api/v1/projects/1/tables/", headers={"Authorization": "Bearer no"})
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert (posted.status, listed.status) == (401, 401)
    assert json.loads(first) == posted.json()
    assert second == listed.text + "401"
