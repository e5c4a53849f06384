"""Migration file names: a sequence, then a descriptive snake_case name, never a date."""

import pytest
from django.core import checks

from hzm.deploy import checks as deploy_checks
from hzm.deploy.naming import migration_files, migration_name_problem

PROJECT_APPS = {"hzm", "cfg", "ops", "core", "generic_data"}


@pytest.mark.parametrize(
    "filename",
    ["0001_initial_schema.py", "0004_add_generic_data.py", "0012_add_rbac_v2.py"],
)
def test_good_names(filename):
    assert migration_name_problem(filename) == ""


@pytest.mark.parametrize(
    ("filename", "why"),
    [
        ("add_users.py", "sequence"),
        ("002-add-orgs.py", "sequence"),
        ("2_add_orgs.py", "sequence"),
        ("002_add_orgs.py", "sequence"),
        ("0002_Add_Orgs.py", "snake_case"),
        ("0002_.py", "snake_case"),
        ("0002_2026_11_27_add_users.py", "snake_case"),
        ("0002_auto_20261127_0456.py", "auto-generated"),
        ("0002_auto.py", "auto-generated"),
        ("0002_add_users_20261127.py", "no dates"),
        ("0002_users_2026_11_27.py", "no dates"),
        ("0002_snapshot_12345678.py", "no dates"),
    ],
)
def test_bad_names_say_why(filename, why):
    problem = migration_name_problem(filename)
    assert problem.startswith(filename)
    assert why in problem


def test_every_project_migration_follows_the_rule():
    directories = deploy_checks.project_migration_directories()
    assert PROJECT_APPS <= set(directories), "the project's apps were not all found"
    assert "admin" not in directories, "Django's own apps are not the project's"
    problems = [
        f"{label}/{problem}"
        for label, directory in directories.items()
        for problem in map(migration_name_problem, migration_files(directory))
        if problem
    ]
    assert problems == []


def test_the_system_check_is_registered_and_reports(tmp_path, monkeypatch):
    assert deploy_checks.check_migration_names in checks.registry.registry.get_checks()
    assert deploy_checks.check_migration_names() == []
    for name in ("__init__.py", "0001_initial_schema.py", "0002_auto_20261127_0456.py"):
        (tmp_path / name).write_text("")
    monkeypatch.setattr(deploy_checks, "project_migration_directories", lambda: {"x": tmp_path})
    [error] = deploy_checks.check_migration_names()
    assert error.id == "hzm_deploy.E001"
    assert "x/0002_auto_20261127_0456.py" in error.msg
