"""Startup of the add-in, run by xlwings-server however it is started (``xl-factorlasso
serve``, ``uvicorn xlwings_server.main:main_app``, gunicorn, Docker):

1. refuse to start with settings under which the server would be unprotected or every call
   would fail (``check_settings``: no authentication outside ``dev``, an unknown auth provider,
   Entra ID without its ids, a wildcard CORS origin outside ``dev``, a bad body limit, ...);
2. install the request guard (``xl_factorlasso._server_guard.install``): contained static
   files, the request-body limit, the script/function whitelist, no server paths or tracebacks
   in responses, the CORS allow-list. If it cannot be installed, the server does not start.

xlwings-server loads this file by its path from the project directory (``lifespan.py``). The
server must run the ASGI lifespan (uvicorn's default; never ``--lifespan off``).
"""

from contextlib import asynccontextmanager

from xlwings_server.config import settings

from xl_factorlasso._server_guard import install
from xl_factorlasso.server import check_settings


@asynccontextmanager
async def lifespan(app):
    check_settings(settings)
    install(app, settings)
    yield
