"""XLSX in tablib without openpyxl at start-up: loaded the first time a file is read or written.

django-import-export (the admin's translation import and export, cfg/admin.py) decides at
import which tablib formats exist by loading each one (base_formats.DEFAULT_FORMATS), and
tablib's XLSX format imports openpyxl: some 60 ms of every `manage.py` start, migrate's
included, though only an import or export of a spreadsheet uses it. tablib has already
checked that openpyxl is installed (it registers XLSX only then), so this registers XLSX
again, through tablib's registry, as a stand-in that knows its name and extension and
loads the real format on first use of anything else.
"""

import sys
from importlib import import_module
from importlib.util import find_spec
from typing import Any

from tablib.formats import registry

XLSX_FORMAT = "tablib.formats._xlsx.XLSXFormat"


class DeferredFormat:
    """A tablib format class that imports the real one when first used."""

    def __init__(self, dotted_path: str, title: str, extensions: tuple[str, ...]) -> None:
        self._path = dotted_path
        self.title = title
        self.extensions = extensions

    def __getattr__(self, name: str) -> Any:
        module, _, cls = self._path.rpartition(".")
        return getattr(getattr(import_module(module), cls), name)


def defer_xlsx() -> None:
    """Register XLSX as a DeferredFormat, as tablib does when openpyxl is installed."""
    module = XLSX_FORMAT.rpartition(".")[0]
    if module not in sys.modules and find_spec("openpyxl"):
        registry.register("xlsx", DeferredFormat(XLSX_FORMAT, "xlsx", ("xlsx",)))
