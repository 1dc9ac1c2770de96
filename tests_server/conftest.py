"""Tests of the xlwings Server add-in (``xl_factorlasso/server``, optional extra ``server``).

Run in their OWN pytest process (``pytest tests_server``), never together with ``tests/``:
xlwings picks its decorators when it is first imported (``XLWINGS_ON_SERVER``), and
xlwings-server sets that variable when it is imported, so one interpreter cannot hold both the
plain-function behaviour ``tests/`` checks and the Office.js metadata checked here.

Everything the server reads at import time is set below, before anything imports xlwings.
The whole directory is skipped (not failed) when xlwings-server is not installed or the licence
key does not unlock xlwings PRO. The key defaults to ``noncommercial``: this project's own
testing is non-commercial use under PolyForm Noncommercial 1.0.0; CI can supply another key in
``XLWINGS_LICENSE_KEY``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = ROOT / "xl_factorlasso" / "server"

_loaded = sys.modules.get("xlwings")
if _loaded is not None and not getattr(_loaded.func, "__module__", "").startswith("xlwings.pro"):
    raise RuntimeError(
        "tests_server must run in its own pytest process (`python -m pytest tests_server`): "
        "xlwings was already imported without XLWINGS_ON_SERVER (e.g. by tests/), so its "
        "decorators are not the Office.js ones the server needs"
    )

os.environ.setdefault("XLWINGS_LICENSE_KEY", "noncommercial")
os.environ["XLWINGS_ON_SERVER"] = "true"
os.environ["XLWINGS_PROJECT_DIR"] = str(PROJECT_DIR)
os.environ["XLWINGS_ENVIRONMENT"] = "dev"  # exception details in 500 bodies; prod tested apart
os.environ["DOTENV_PATH"] = os.devnull  # no developer .env influences the tests
os.environ.setdefault("MPLBACKEND", "Agg")
for _key in ("XLWINGS_AUTH_PROVIDERS", "XLWINGS_AUTH_REQUIRED_ROLES", "XLWINGS_APP_PATH",
             "XLWINGS_HOSTNAME", "XL_FACTORLASSO_TOKEN_SHA256"):
    os.environ.pop(_key, None)
if str(ROOT) not in sys.path:  # tests.fake_office_client
    sys.path.insert(0, str(ROOT))


def _skip_reason() -> str | None:
    if importlib.util.find_spec("xlwings_server") is None:
        return "xlwings-server is not installed (the extra 'server': pip install \".[server]\")"
    try:
        import xlwings
    except Exception as err:  # noqa: BLE001 - xlwings.LicenseError in server mode
        return f"the xlwings licence key does not unlock xlwings PRO: {err}"
    if not xlwings.__pro__:
        return "the xlwings licence key does not unlock xlwings PRO"
    return None


SKIP_REASON = _skip_reason()


def pytest_configure(config):
    # starlette's TestClient on httpx (what fastapi ships with today) warns about itself
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette")


def pytest_collection_modifyitems(config, items):
    if SKIP_REASON:
        marker = pytest.mark.skip(reason=SKIP_REASON)
        for item in items:
            item.add_marker(marker)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def app():
    from xlwings_server.main import main_app

    return main_app


@pytest.fixture(scope="session")
def server_settings():
    from xlwings_server.config import settings

    return settings


@pytest.fixture(scope="session")
def client(app):
    """In-process client of the started app (``lifespan.py`` has run: the request guard is
    installed, as in a real server); server errors come back as HTTP 500."""
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as started:
        yield started


@pytest.fixture(scope="session")
def xlwings_version():
    import xlwings

    return xlwings.__version__


@pytest.fixture(scope="session")
def demo_xlsx(tmp_path_factory):
    """The demo workbook (every FL_* input filled); copy it before writing to it."""
    from xl_factorlasso.cli import build_demo_workbook

    path = tmp_path_factory.mktemp("demo") / "demo.xlsx"
    build_demo_workbook(str(path))
    return path
