"""The request guard of the xlwings Server add-in, installed at startup by ``server/lifespan.py``.

xlwings-server 1.20, as shipped, serves files outside its static folders (its
``OverridableStaticFiles`` joins the user folder and the URL path unchecked), parses request
bodies of any size before authenticating, looks up any name a request gives it on the project's
``custom_scripts`` / ``custom_functions`` packages (dunders included) and answers bad calls with
500s whose dev bodies show exception reprs with server paths. :func:`install` hardens a running
app in place, however it was started (``xl-factorlasso serve``, plain uvicorn, gunicorn): at
lifespan time the FastAPI app's routes exist and its middleware stack is built, so

* every static mount gets a :class:`ContainedStaticFiles` (nothing outside its folders);
* the middleware stack is wrapped in a :class:`RequestGuard`: suspicious paths 404, bodies over
  the limit 413 before anything reads them, only the whitelisted script and function names
  reach xlwings-server (404 otherwise) and only well-formed calls (422 naming the field or
  argument otherwise), and no response carries a server path or a traceback;
* xlwings-server's CORS middleware and socket.io server get the add-in's allow-list.

Whatever it cannot find raises ServerSetupError, so the server does not start unguarded. This
module needs starlette (the ``server`` extra) but never imports xlwings-server: it finds
xlwings-server's objects in ``sys.modules``, where its ``main`` module has put them.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import stat
import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from .server import (
    CORS_WILDCARD_WARNING,
    FUNCTIONS,
    MAX_BODY_ENV,
    PROJECT_DIR,
    SCRIPTS,
    ServerSetupError,
    allowed_origins,
    max_body_bytes,
    served_origins,
)

__all__ = ["ContainedStaticFiles", "RequestGuard", "Signature", "check_function_call",
           "check_script_call", "install", "unsafe_path"]

logger = logging.getLogger("xl_factorlasso.server")

#: Headers a cross-origin caller may send (what the xlwings clients send).
CORS_HEADERS = ("Authorization", "Auth-Provider", "Content-Type")
INTERNAL_ERROR = "internal server error; the details are in the server log"
FAILED_REQUEST = "the request failed; the details are in the server log"
_REDACTED = b"<server path>"
_TRACEBACK = b"Traceback (most recent call last)"
_HEX = frozenset("0123456789abcdefABCDEF")

Problem = tuple[int, str]  # (HTTP status, message) of a refused request


# --------------------------------------------------------------------------- static files
class ContainedStaticFiles(StaticFiles):
    """Static files from one or more folders (the first one holding the file wins).

    A URL path is served only when it names a regular file whose real path (symlinks
    resolved) lies inside the real path of the folder it was found in; ``..`` or ``.``
    segments, hidden names (a segment starting with ``.``), absolute paths, backslashes and NUL
    bytes are refused outright. Everything refused is a 404, like a missing file.
    """

    def __init__(self, directories: Iterable[str | os.PathLike]) -> None:
        super().__init__(directory=None, check_dir=False)
        self.all_directories = [os.path.realpath(d) for d in directories if os.path.isdir(d)]

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if not _plain_relative(path):
            return "", None
        for root in self.all_directories:
            full = os.path.realpath(os.path.join(root, path))
            if os.path.commonpath([full, root]) != root:
                continue  # a symlink (or anything else) leading out of the folder
            try:
                found = os.stat(full)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(found.st_mode):
                return full, found
        return "", None


def _plain_relative(path: str) -> bool:
    """True for ``js/ribbon.js``; False for anything that could leave or probe the folder."""
    if not path or "\x00" in path or "\\" in path or os.path.isabs(path):
        return False
    parts = path.replace(os.sep, "/").split("/")
    return all(part and not part.startswith(".") for part in parts)


def unsafe_path(path: str, raw_path: bytes | None = None) -> bool:
    """Whether a request path must be refused before routing (404), whatever it is for.

    ``path`` is the decoded path (what routing sees), ``raw_path`` the bytes on the wire. No
    route of the add-in has a use for: ``.``/``..`` segments (``%2e%2e`` decodes to them),
    empty segments (``//``), backslashes, control characters and NUL, encoded slashes or
    backslashes, or a ``%xx`` left after decoding (double encoding, ``%252e``).
    """
    if any(ord(c) < 0x20 or c in "\x7f\\" for c in path):
        return True
    segments = path.split("/")[1:]
    if any(s in (".", "..") for s in segments) or any(s == "" for s in segments[:-1]):
        return True
    if any(c == "%" and len(path[i + 1:i + 3]) == 2 and set(path[i + 1:i + 3]) <= _HEX
           for i, c in enumerate(path)):
        return True
    raw = (raw_path or b"").lower()
    return any(code in raw for code in (b"%2f", b"%5c", b"%00"))


def _contain_static_mounts(app, static_url_path: str) -> tuple[str, ...]:
    """Give every static-files mount of ``app`` a ContainedStaticFiles; their path prefixes."""
    prefixes = []
    for route in app.router.routes:
        if not isinstance(route, Mount):
            continue
        target = getattr(route, "_base_app", route.app)
        if not isinstance(target, StaticFiles):
            continue
        if route.app is not target:
            raise ServerSetupError(f"the static mount {route.path} has middleware of its own; "
                                   "the add-in cannot contain its files")
        if not isinstance(target, ContainedStaticFiles):
            # xlwings-server's OverridableStaticFiles: the project folder first, then its own
            folders = [getattr(target, "user_dir", None), *target.all_directories]
            route.app = ContainedStaticFiles(f for f in folders if f is not None)
            if hasattr(route, "_base_app"):
                route._base_app = route.app
        prefixes.append(route.path)
    if static_url_path.rstrip("/") not in prefixes:
        raise ServerSetupError(f"found no static-files mount at {static_url_path} to contain; "
                               "this xlwings-server version is not supported")
    return tuple(prefixes)


# --------------------------------------------------------------------------- call checks
@dataclass(frozen=True)
class Signature:
    """The arguments of a worksheet function as Office.js sends them (``args``, in order)."""

    name: str
    params: tuple[str, ...]
    required: int  # the first ``required`` params have no default
    vararg: bool = False  # the last param takes any number of values (each a JSON array)

    @property
    def usage(self) -> str:
        shown = [p if i < self.required else f"[{p}]" for i, p in enumerate(self.params)]
        if self.vararg and shown:
            shown[-1] += ", ..."
        return f"{self.name}({', '.join(shown)})"

    @classmethod
    def of(cls, func) -> Signature:
        """From the ``__xlfunc__`` metadata xlwings' ``@func``/``@arg`` attach."""
        meta = func.__xlfunc__
        args = meta["args"]
        required = sum(1 for a in args if "optional" not in a and not a.get("vararg"))
        return cls(meta["name"], tuple(a["name"] for a in args), required,
                   any(a.get("vararg") for a in args))


def _shown(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:57] + "...")


def _json_object(body: bytes | None) -> tuple[dict | None, Problem | None]:
    if not body:
        return None, (422, "the request body is empty; expected a JSON object")
    try:
        data = json.loads(body)
    except ValueError:  # UnicodeDecodeError is one too
        return None, (422, "the request body is not valid JSON")
    except RecursionError:
        return None, (422, "the request body is nested too deeply")
    if not isinstance(data, dict):
        return None, (422, "the request body must be a JSON object")
    return data, None


def _check_fields(data: dict, required: Mapping[str, type], optional: Iterable[str],
                  context: str) -> Problem | None:
    kinds = {str: "a string", dict: "a JSON object", list: "a JSON array", int: "an integer",
             bool: "true or false"}
    for key, kind in required.items():
        if key not in data:
            return 422, f"{key}: missing; {context}"
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return 422, f"{key} must be {kinds[kind]}"
    for key in optional:
        if data.get(key) is not None and not isinstance(data[key], str):
            return 422, f"{key} must be a string or null"
    return None


def check_function_call(body: bytes | None,
                        functions: Mapping[str, Signature]) -> Problem | None:
    """Why a ``custom-functions-call`` body must not reach xlwings-server (None: it may).

    404 for a name that is not one of ``functions`` (nothing else is ever looked up), 422 for
    a missing or malformed field, or ``args`` that do not fit the function's arguments.
    """
    data, problem = _json_object(body)
    if problem:
        return problem
    name = data.get("func_name")
    if name is None:
        return 422, "func_name: missing; expected the name of a worksheet function"
    if not isinstance(name, str):
        return 422, "func_name must be a string"
    sig = functions.get(name)
    if sig is None:
        return 404, (f"no worksheet function named {_shown(name)}; the functions are "
                     f"{', '.join(sorted(functions))}")
    problem = _check_fields(data, {"client": str, "version": str, "runtime": str},
                            ("caller_address", "session_id", "culture_info_name", "date_format"),
                            "every worksheet-function call sends client, version and runtime")
    if problem:
        return problem
    args = data.get("args")
    if not isinstance(args, list):
        what = "is missing" if args is None else "must be a JSON array"
        return 422, f"{name}: args {what}; expected one entry per argument of {sig.usage}"
    if len(args) < sig.required:
        return 422, (f"{name}: argument {sig.params[len(args)]!r} is missing; {sig.usage} "
                     f"needs at least {sig.required} arguments, got {len(args)}")
    if len(args) > len(sig.params) and not sig.vararg:
        most = f"at most {len(sig.params)} arguments" if sig.params else "no arguments"
        return 422, f"{name}: too many arguments; {sig.usage} takes {most}, got {len(args)}"
    for i, value in enumerate(args):
        param = sig.params[min(i, len(sig.params) - 1)]
        if sig.vararg and i >= len(sig.params) - 1:
            # a repeating argument: xlwings reads each entry as a JSON array of ranges
            if not isinstance(value, list):
                return 422, f"{name}: argument {param!r} must be a JSON array of ranges"
            ranges = value
        else:
            ranges = [value]
        problem = next(filter(None, map(_range_problem, ranges)), None)
        if problem:
            return 422, f"{name}: argument {param!r}: {problem}"
    return None


_SCALARS = (str, int, float, bool, type(None))


def _cell_problem(value) -> str | None:
    if isinstance(value, dict):  # a rich value (error, data type): xlwings reads these keys
        if isinstance(value.get("type"), str) and "basicValue" in value:
            return None
        return "a rich cell value (JSON object) needs a string type and a basicValue"
    if not isinstance(value, _SCALARS):
        return "a cell must be a number, string, boolean, null or rich value"
    return None


def _range_problem(value) -> str | None:
    """Why ``value`` is not an argument as Office.js sends one: null or one cell, or a range (a
    JSON array of equally long, non-empty rows of cells)."""
    if not isinstance(value, list):
        return _cell_problem(value)
    if not value or not all(isinstance(row, list) and row for row in value):
        return "a range must be a JSON array of non-empty rows (arrays)"
    if any(len(row) != len(value[0]) for row in value):
        return "the rows of a range must have the same length"
    return next(filter(None, (_cell_problem(c) for row in value for c in row)), None)


def check_script_call(name: str, body: bytes | None, scripts: Iterable[str]) -> Problem | None:
    """Why a ``custom-scripts-call/<name>`` request must not reach xlwings-server (None: it may).

    404 for a name that is not one of ``scripts``; 422 for a body that is not the workbook
    payload the Office.js client sends (``client``, ``version``, ``book``, ``sheets`` with
    ``name`` and ``values``, ``names``) or for ``args`` (the add-in's scripts take none).
    """
    scripts = sorted(scripts)
    if name not in scripts:
        return 404, f"no script named {_shown(name)}; the scripts are {', '.join(scripts)}"
    data, problem = _json_object(body)
    if problem:
        return problem
    problem = _check_fields(
        data, {"client": str, "version": str, "book": dict, "sheets": list, "names": list}, (),
        "the workbook payload has client, version, book, sheets and names")
    if problem:
        return problem
    problem = _check_fields(data["book"], {"name": str, "active_sheet_index": int}, (),
                            "book has name and active_sheet_index")
    if problem:
        return 422, f"book.{problem[1]}"
    if not 0 <= data["book"]["active_sheet_index"] < max(len(data["sheets"]), 1):
        return 422, "book.active_sheet_index must index into sheets"
    for i, sheet in enumerate(data["sheets"]):
        if not isinstance(sheet, dict) or not isinstance(sheet.get("name"), str):
            return 422, f"sheets[{i}] must be a JSON object with a string name"
        values = sheet.get("values")
        if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
            return 422, f"sheets[{i}].values must be a JSON array of rows (arrays)"
    for i, entry in enumerate(data["names"]):
        if not isinstance(entry, dict):
            return 422, f"names[{i}] must be a JSON object"
        problem = _check_fields(
            entry, {"name": str, "sheet_index": int, "address": str, "book_scope": bool}, (),
            "a defined name has name, sheet_index, address and book_scope")
        if problem:
            return 422, f"names[{i}].{problem[1]}"
        if not 0 <= entry["sheet_index"] < len(data["sheets"]):
            return 422, f"names[{i}].sheet_index must index into sheets"
    args = data.get("args")
    if args is not None and args != []:
        return 422, f"{name} takes no arguments; args must be [] or left out"
    return None


# --------------------------------------------------------------------------- the ASGI guard
async def _reply(send, status: int, detail: str, extra: Iterable[tuple[bytes, bytes]] = ()):
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"), *extra]})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive, limit: int) -> bytes:
    """The whole request body, counted as it arrives; _TooLarge as soon as it passes ``limit``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that hands the app the body already read, then the client's own events."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed():
        return pending.pop() if pending else await receive()

    return replayed


class RequestGuard:
    """ASGI middleware in front of xlwings-server's app (see the module docstring).

    ``markers``: byte strings (server folders) no response may contain; responses of the
    ``static_prefixes`` mounts (files served as they are) are not inspected.
    """

    def __init__(self, app, *, max_body: int, api_prefix: str, static_prefixes: Iterable[str],
                 functions: Mapping[str, Signature], scripts: Iterable[str],
                 markers: Iterable[bytes]) -> None:
        self.app = app
        self.max_body = max_body
        self.functions_call = f"{api_prefix}/custom-functions-call"
        self.scripts_call = f"{api_prefix}/custom-scripts-call/"
        self.static_prefixes = tuple(p.rstrip("/") + "/" for p in static_prefixes)
        self.functions = dict(functions)
        self.scripts = tuple(scripts)
        self.markers = tuple(sorted(set(markers), key=len, reverse=True))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if unsafe_path(scope.get("path", ""), scope.get("raw_path")):
            await _reply(send, 404, "Not Found")
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and not length.isdigit():
            await _reply(send, 400, "invalid Content-Length header")
            return
        if length is not None and int(length) > self.max_body:
            await self._too_large(send)
            return
        body = None
        if (length is not None and int(length) > 0) or b"transfer-encoding" in headers:
            try:
                body = await _read_body(receive, self.max_body)
            except _TooLarge:
                await self._too_large(send)
                return
            except _Disconnected:
                return
            receive = _replay(body, receive)
        problem = self._check(scope, body)
        if problem:
            await _reply(send, *problem)
            return
        await self.app(scope, receive, self._scrubbing(scope, send))

    async def _too_large(self, send) -> None:
        # Connection: close, so the server drops the rest of the body instead of reading it
        await _reply(send, 413, f"the request body is larger than the server's limit of "
                                f"{self.max_body / 2**20:g} MB ({MAX_BODY_ENV})",
                     [(b"connection", b"close")])

    def _check(self, scope, body: bytes | None) -> Problem | None:
        path, method = scope["path"], scope["method"]
        if path.startswith(self.scripts_call):
            name = path[len(self.scripts_call):]
            if name not in self.scripts or method == "POST":
                return check_script_call(name, body, self.scripts)
            return None
        if path == self.functions_call and method == "POST":
            return check_function_call(body, self.functions)
        return None

    def _scrubbing(self, scope, send):
        """``send`` for the app's response: buffered, then cleaned by :meth:`_clean`; a file
        served from a static mount (status below 400) passes as it is, unbuffered."""
        if scope["method"] == "HEAD":
            return send
        static = scope["path"].startswith(self.static_prefixes)
        head, chunks, passing = None, [], False

        async def scrubbing_send(message) -> None:
            nonlocal head, passing
            if message["type"] == "http.response.start":
                passing = static and message["status"] < 400
                if passing:
                    await send(message)
                else:
                    head = message
                return
            if passing or message["type"] != "http.response.body" or head is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status, body, replaced = self._clean(scope, head["status"], b"".join(chunks))
            headers = [(k, v) for k, v in head.get("headers", [])
                       if k.lower() != b"content-length"
                       and not (replaced and k.lower() == b"content-type")]
            headers.append((b"content-length", str(len(body)).encode()))
            if replaced:
                headers.append((b"content-type", b"application/json"))
            await send({**head, "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return scrubbing_send

    def _clean(self, scope, status: int, body: bytes) -> tuple[int, bytes, bool]:
        """(status, body, whether the body was replaced): 5xx bodies always are (they only say
        what went wrong inside); 4xx bodies when they hold a server path or a traceback; in
        other bodies a server path is redacted."""
        leaks = [m for m in self.markers if m in body]
        if status < 500 and not leaks and (status < 400 or _TRACEBACK not in body):
            return status, body, False
        if status >= 400:
            if status < 500:
                logger.warning("%s %s -> %d: body with a server path or traceback replaced: %r",
                               scope["method"], scope["path"], status, body[:2000])
            detail = INTERNAL_ERROR if status >= 500 else FAILED_REQUEST
            return status, json.dumps({"detail": detail}).encode(), True
        for marker in leaks:
            body = body.replace(marker, _REDACTED)
        logger.warning("%s %s: server path redacted from the response", scope["method"],
                       scope["path"])
        return status, body, False


# --------------------------------------------------------------------------- installation
def path_markers() -> tuple[bytes, ...]:
    """Server folders no response may name: the package's, the project's, the interpreter's
    (prefix, stdlib, site-packages), the home and working directories; as written and as
    escaped in JSON. Folders fewer than two levels deep (``/``, ``/usr``, ``/root``) are left
    out: they also occur in ordinary text."""
    folders = {Path(__file__).resolve().parent.parent, PROJECT_DIR, Path(sys.prefix),
               Path(sys.base_prefix), Path(sys.exec_prefix), Path.home(), Path.cwd(),
               *(Path(p) for p in sysconfig.get_paths().values())}
    folders |= {f.resolve() for f in folders}
    markers = set()
    for folder in folders:
        if len(folder.parts) >= 3:
            text = str(folder)
            markers |= {text.encode(), json.dumps(text)[1:-1].encode()}
    return tuple(sorted(markers, key=len, reverse=True))


def _router_module():
    module = sys.modules.get("xlwings_server.routers.xlwings")
    if module is None:
        raise ServerSetupError("xlwings-server's router (xlwings_server.routers.xlwings) is not "
                               "loaded; the request guard cannot be installed")
    return module


def _function_signatures(module) -> dict[str, Signature]:
    signatures = {}
    for name in FUNCTIONS:
        func = getattr(module, name, None)
        if not hasattr(func, "__xlfunc__"):
            raise ServerSetupError(f"{name} is not a worksheet function of the project's "
                                   "custom_functions package")
        signatures[name] = Signature.of(func)
    return signatures


def _check_scripts(module) -> None:
    """Every whitelisted script exists, is a ``@script`` and takes nothing but the book (what
    :func:`check_script_call` assumes)."""
    for name in SCRIPTS:
        func = getattr(module, name, None)
        if getattr(func, "__xlscript__", None) is None:
            raise ServerSetupError(f"{name} is not a script of the project's custom_scripts "
                                   "package")
        if len(inspect.signature(func).parameters) != 1:
            raise ServerSetupError(f"the script {name} takes arguments besides the book; the "
                                   "request guard of xl_factorlasso._server_guard refuses args")


class _OriginCheck:
    """socket.io's origin test: the listed origins, and the page's own origin (the ``Origin``
    header naming the host the request was sent to, as browsers do for same-origin pages)."""

    def __init__(self, origins: Iterable[str]) -> None:
        self.origins = frozenset(origins)

    def __call__(self, origin, environ=None) -> bool:
        if origin in self.origins:
            return True
        scheme, _, host = str(origin).partition("://")
        return scheme in ("http", "https") and host == (environ or {}).get("HTTP_HOST")


def _whitelisted(handler: Callable, names: frozenset[str]) -> Callable:
    async def guarded(sid, data, *rest):
        name = data.get("func_name") if isinstance(data, dict) else None
        if name not in names:
            logger.warning("socket.io: refused a call of %s (not a worksheet function)",
                           _shown(str(name)))
            return None
        return await handler(sid, data, *rest)

    guarded.xl_factorlasso_guarded = True
    return guarded


def _configure_cors(app, origins: list[str], functions: Iterable[str]) -> None:
    """Give xlwings-server's CORS middleware and socket.io server the allow-list ``origins``."""
    main = sys.modules.get("xlwings_server.main")
    cors = getattr(main, "cors_app", None)
    if not isinstance(cors, CORSMiddleware) or cors.app is not app:
        raise ServerSetupError("could not find xlwings-server's CORS middleware "
                               "(xlwings_server.main.cors_app) to restrict it")
    # its own constructor again: the allow-list is copied into several attributes there
    CORSMiddleware.__init__(cors, app, allow_origins=origins, allow_methods=["POST"],
                            allow_headers=list(CORS_HEADERS), allow_credentials=False)
    sio = getattr(sys.modules.get("xlwings_server.routers.socketio"), "sio", None)
    handlers = getattr(sio, "handlers", {}).get("/", {})
    if getattr(sio, "eio", None) is None or "xlwings:function-call" not in handlers:
        raise ServerSetupError("could not find xlwings-server's socket.io server "
                               "(xlwings_server.routers.socketio.sio) to restrict it")
    sio.eio.cors_allowed_origins = "*" if origins == ["*"] else _OriginCheck(origins)
    handler = handlers["xlwings:function-call"]
    if not getattr(handler, "xl_factorlasso_guarded", False):
        handlers["xlwings:function-call"] = _whitelisted(handler, frozenset(functions))


def install(app, settings, *, max_body: int | None = None,
            origins: list[str] | None = None) -> None:
    """Harden xlwings-server's FastAPI ``app`` in place; called from ``lifespan.py``.

    ``settings``: xlwings-server's settings. ``max_body`` (bytes) defaults to
    :func:`~xl_factorlasso.server.max_body_bytes`, ``origins`` to
    :func:`~xl_factorlasso.server.allowed_origins` of the settings and the served origins.
    Installing again (a second lifespan run) replaces the guard, so new settings apply.
    Raises ServerSetupError when a part cannot be installed.
    """
    max_body = max_body_bytes() if max_body is None else max_body
    if origins is None:
        origins = allowed_origins(settings.cors_allow_origins, settings.hostname,
                                  served_origins())
    router = _router_module()
    functions = _function_signatures(getattr(router, "custom_functions", None))
    _check_scripts(getattr(router, "custom_scripts", None))
    static_prefixes = _contain_static_mounts(app, settings.static_url_path)
    stack = app.middleware_stack or app.build_middleware_stack()
    if isinstance(stack, RequestGuard):
        stack = stack.app
    app.middleware_stack = RequestGuard(
        stack, max_body=max_body, api_prefix=f"{settings.app_path}/xlwings",
        static_prefixes=static_prefixes, functions=functions, scripts=SCRIPTS,
        markers=path_markers())
    _configure_cors(app, origins, functions)
    settings.cors_allow_origins = list(origins)
    if origins == ["*"]:
        logger.warning(CORS_WILDCARD_WARNING)
