"""Claims of the README checked against the repository: what it cites, lists and promises."""

import re

from hzm.configuration import EXIT_CONFIGURATION
from hzm.management.commands.localdb import NOT_RUNNING
from tests.support import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
NUMBERS = {"three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}


def section(heading: str) -> str:
    start = README.index(f"\n{heading}\n")
    level = heading.split(" ")[0]
    following = re.compile(rf"^#{{1,{len(level)}}} ", re.MULTILINE)
    end = following.search(README, start + len(heading) + 2)
    return README[start : end.start() if end else len(README)]


def test_the_design_guide_it_cites_is_in_the_repository():
    guide = REPO_ROOT / "docs" / "hzm-migrations-guide.md"
    assert "001_initial_schema" in guide.read_text()
    assert "004_add_generic_data" in guide.read_text()
    # Every mention names the file where it is.
    assert re.findall(r"[\w/.-]*hzm-migrations-guide\.md", README) and all(
        mention == "docs/hzm-migrations-guide.md"
        for mention in re.findall(r"[\w/.-]*hzm-migrations-guide\.md", README)
    )


def test_the_reference_fixtures_it_lists_are_counted_right_and_the_ones_dev_loads():
    text = section("### Reference data")
    listed = re.findall(r"^\| `(\d{3}_\w+)` \|", text, re.MULTILINE)
    count = re.search(r"(\w+) fixtures hold the platform's reference data", text)
    assert NUMBERS[count[1].lower()] == len(listed), (count[0], listed)
    for name in listed:
        assert list(REPO_ROOT.glob(f"*/fixtures/{name}.json")), f"no fixture {name}"
    dev = (REPO_ROOT / "dev").read_text()
    loaded = re.search(r"^REFERENCE_FIXTURES=\((.*)\)$", dev, re.MULTILINE)[1].split()
    assert loaded == listed


def test_the_exit_codes_it_documents_are_the_code_s():
    table = section("### Progress and exit codes")
    codes = dict(re.findall(r"^\| (\d) \| (.*) \|$", table, re.MULTILINE))
    assert "configuration error" in codes[str(EXIT_CONFIGURATION)]
    assert "localdb status" in codes[str(NOT_RUNNING)]
    assert "exits 0 when it runs, 3 when it" in README and NOT_RUNNING == 3


def test_the_dev_up_flag_it_documents_exists():
    dev = (REPO_ROOT / "dev").read_text()
    assert "./dev up --reload-reference-data" in README
    assert "--reload-reference-data)" in dev
    assert "loaddata --missing-only" in dev and "`loaddata --missing-only`" in README
