"""Startup check run by xlwings-server however it is started (``xl-factorlasso serve``,
``uvicorn xlwings_server.main:main_app``, gunicorn, Docker): outside ``XLWINGS_ENVIRONMENT=dev``
the server refuses to start without authentication (see ``deployment_problems``).

xlwings-server loads this file by its path from the project directory (``lifespan.py``).
"""

from contextlib import asynccontextmanager

from xlwings_server.config import settings

from xl_factorlasso.server import check_settings


@asynccontextmanager
async def lifespan(app):
    check_settings(settings)
    yield
