"""The request guard (``xl_factorlasso._server_guard``) and the startup policy, in-process.

The same behaviour over real HTTP against live servers is in ``test_hardening.py``; here each
piece is checked on its own: the path screen, the contained static files (with real symlinks
in a temporary folder), the call checks and their messages, the body limit and the response
scrubbing of the ASGI middleware (driven with hand-made ASGI messages), the startup policy, and
that the running app really has the guard installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

from xl_factorlasso import _server_guard as guard
from xl_factorlasso.server import (
    DEFAULT_MAX_BODY_MB,
    FUNCTIONS,
    MAX_BODY_ENV,
    PROJECT_DIR,
    SCRIPTS,
    ServerSetupError,
    allowed_origins,
    deployment_problems,
    max_body_bytes,
    normalise_origin,
)

GUID = "0b17fe4c-c241-40a4-818b-982893871d8c"
SCRIPT_LIST = "backtest, clear_outputs, optimise_portfolio, refit, refit_cv"


# --------------------------------------------------------------------------- path screen
@pytest.mark.parametrize(("path", "raw", "refused"), [
    ("/static/js/ribbon.js", None, False),
    ("/", None, False),
    ("/static/js/", None, False),
    ("/xlwings/custom-scripts-call/refit", None, False),
    ("/static/../.env", b"/static/%2e%2e/.env", True),  # %2e%2e decodes to ..
    ("/static/./js/ribbon.js", None, True),
    ("/static/js/..", None, True),
    ("/static//etc/passwd", None, True),
    ("/static/%2e%2e/.env", b"/static/%252e%252e/.env", True),  # double encoding
    ("/static/%2E%2e/.env", None, True),
    ("/static/..\\.env", None, True),
    ("/static/js\\ribbon.js", None, True),
    ("/static/js/ribbon.js\x00.png", b"/static/js/ribbon.js%00.png", True),
    ("/static/js/\x1bribbon.js", None, True),
    ("/static/etc/passwd", b"/static/etc%2Fpasswd", True),  # an encoded slash
    ("/static/etc\\passwd", b"/static/etc%5cpasswd", True),
    ("/static/100%", None, False),  # a % without two hex digits is no encoding
])
def test_unsafe_path(path, raw, refused):
    assert guard.unsafe_path(path, raw) is refused


# --------------------------------------------------------------------------- static files
@pytest.fixture
def static_folders(tmp_path):
    """A project folder over a package folder, with symlinks out of and within them."""
    user, package, outside = tmp_path / "user", tmp_path / "package", tmp_path / "secret"
    for folder in (user / "js", package / "js", package / "css", outside):
        folder.mkdir(parents=True)
    (user / "js" / "ribbon.js").write_text("user ribbon")
    (package / "js" / "ribbon.js").write_text("package ribbon")
    (package / "css" / "core.css").write_text("package css")
    (user / ".env").write_text("SECRET=1")
    (outside / "key.txt").write_text("secret")
    (user / "js" / "link-out.js").symlink_to(outside / "key.txt")
    (user / "linked-dir").symlink_to(outside, target_is_directory=True)
    (user / "js" / "link-in.js").symlink_to(user / "js" / "ribbon.js")
    return user, package, outside


@pytest.mark.parametrize(("path", "served"), [
    ("js/ribbon.js", "user/js/ribbon.js"),  # the project's file overrides the package's
    ("css/core.css", "package/css/core.css"),  # falls back to the package
    ("js/link-in.js", "user/js/ribbon.js"),  # a symlink within the folder is fine
    ("js/link-out.js", None),  # a symlink out of it is not
    ("linked-dir/key.txt", None),
    ("../secret/key.txt", None),
    ("js/../../secret/key.txt", None),
    (".env", None),  # hidden files
    ("js", None),  # folders
    ("missing.js", None),
    ("js/ribbon.js\x00", None),
])
def test_contained_static_files_lookup(static_folders, tmp_path, path, served):
    user, package, _ = static_folders
    files = guard.ContainedStaticFiles([user, package])
    full, found = files.lookup_path(path)
    if served is None:
        assert (full, found) == ("", None)
    else:
        assert Path(full) == (tmp_path / served).resolve() and found is not None


def test_contained_static_files_refuse_absolute_paths(static_folders):
    user, package, outside = static_folders
    files = guard.ContainedStaticFiles([user, package])
    assert files.lookup_path(str(outside / "key.txt")) == ("", None)
    assert files.lookup_path("/etc/passwd") == ("", None)


def test_contained_static_files_over_http(static_folders):
    """Through Starlette's routing: 200 for a file, 404 (not the file) for a link out."""
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    user, package, _ = static_folders
    app = Starlette(routes=[Mount("/static", guard.ContainedStaticFiles([user, package]))])
    with TestClient(app) as http:
        assert http.get("/static/js/ribbon.js").text == "user ribbon"
        r = http.get("/static/js/link-out.js")
        assert r.status_code == 404 and "secret" not in r.text


# --------------------------------------------------------------------------- call checks
FIT = guard.Signature("FIT", ("returns", "factors", "reg_lambda"), 2)
SUM = guard.Signature("SUM", ("first", "more"), 1, vararg=True)
CALL = {"client": "Office.js", "version": "0.37.8", "runtime": "1.4"}


def _call(**fields) -> bytes:
    return json.dumps({**CALL, **fields}).encode()


@pytest.mark.parametrize(("body", "status", "message"), [
    (_call(func_name="FIT", args=[[[1]], [[2]]]), None, None),
    (_call(func_name="FIT", args=[[[1]], [[2]], None]), None, None),
    (_call(func_name="SUM", args=[[[1]], [[[2]], 3, None]]), None, None),
    (_call(func_name="FIT", args=[{"type": "Error", "basicValue": "#N/A"}, "x"]), None, None),
    (b"", 422, "the request body is empty; expected a JSON object"),
    (b"{", 422, "the request body is not valid JSON"),
    (b"\xff\xfe\x00", 422, "the request body is not valid JSON"),
    (b"[" * 100_000, 422, "the request body is nested too deeply"),
    (b"[1]", 422, "the request body must be a JSON object"),
    (_call(args=[]), 422, "func_name: missing; expected the name of a worksheet function"),
    (_call(func_name=1, args=[]), 422, "func_name must be a string"),
    (_call(func_name="__class__", args=[]), 404,
     "no worksheet function named '__class__'; the functions are FIT, SUM"),
    (_call(func_name="x" * 100, args=[]), 404,
     f"no worksheet function named '{'x' * 57}...'; the functions are FIT, SUM"),
    (json.dumps({"func_name": "FIT", "client": "Office.js", "version": "1", "args": []}).encode(),
     422, "runtime: missing; every worksheet-function call sends client, version and runtime"),
    (_call(func_name="FIT", runtime=1.4, args=[]), 422, "runtime must be a string"),
    (_call(func_name="FIT", caller_address=5, args=[[[1]], [[2]]]), 422,
     "caller_address must be a string or null"),
    (_call(func_name="FIT"), 422, "FIT: args is missing; expected one entry per argument of "
                                  "FIT(returns, factors, [reg_lambda])"),
    (_call(func_name="FIT", args="x"), 422, "FIT: args must be a JSON array; expected one entry "
                                            "per argument of FIT(returns, factors, [reg_lambda])"),
    (_call(func_name="FIT", args=[]), 422, "FIT: argument 'returns' is missing; FIT(returns, "
                                           "factors, [reg_lambda]) needs at least 2 arguments, "
                                           "got 0"),
    (_call(func_name="FIT", args=[[[1]]]), 422, "FIT: argument 'factors' is missing; "
                                                "FIT(returns, factors, [reg_lambda]) needs at "
                                                "least 2 arguments, got 1"),
    (_call(func_name="FIT", args=[[[1]]] * 4), 422, "FIT: too many arguments; FIT(returns, "
                                                    "factors, [reg_lambda]) takes at most 3 "
                                                    "arguments, got 4"),
    (_call(func_name="FIT", args=[[[1, 2], [3]], [[1]]]), 422,
     "FIT: argument 'returns': the rows of a range must have the same length"),
    (_call(func_name="FIT", args=[[[1]], [1, 2]]), 422,
     "FIT: argument 'factors': a range must be a JSON array of non-empty rows (arrays)"),
    (_call(func_name="FIT", args=[[[1]], [[]]]), 422,
     "FIT: argument 'factors': a range must be a JSON array of non-empty rows (arrays)"),
    (_call(func_name="FIT", args=[[[1]], [[2]], {"type": "Double"}]), 422,
     "FIT: argument 'reg_lambda': a rich cell value (JSON object) needs a string type and a "
     "basicValue"),
    (_call(func_name="FIT", args=[[[[1]]], [[2]]]), 422,
     "FIT: argument 'returns': a cell must be a number, string, boolean, null or rich value"),
    (_call(func_name="SUM", args=[[[1]], 5]), 422,
     "SUM: argument 'more' must be a JSON array of ranges"),
    (_call(func_name="SUM", args=[[[1]], [[1, 2]]]), 422,
     "SUM: argument 'more': a range must be a JSON array of non-empty rows (arrays)"),
])
def test_check_function_call(body, status, message):
    problem = guard.check_function_call(body, {"FIT": FIT, "SUM": SUM})
    assert problem == (None if status is None else (status, message))


def test_signature_from_xlwings_metadata():
    class Decorated:  # what @func/@arg attach (xlwings.pro.udfs_officejs)
        __xlfunc__ = {"name": "F", "args": [
            {"name": "a", "vararg": False}, {"name": "b", "vararg": False, "optional": None},
            {"name": "rest", "vararg": True}]}

    sig = guard.Signature.of(Decorated)
    assert sig == guard.Signature("F", ("a", "b", "rest"), 1, vararg=True)
    assert sig.usage == "F(a, [b], [rest], ...)"


def _book(**changes) -> dict:
    payload = {"client": "Office.js", "version": "0.37.8",
               "book": {"name": "b.xlsx", "active_sheet_index": 0, "selection": None},
               "sheets": [{"name": "S", "values": [[1, ""]], "pictures": [], "tables": []}],
               "names": [{"name": "FL_X", "sheet_index": 0, "address": "A1", "book_scope": True,
                          "scope_sheet_name": None, "scope_sheet_index": None}]}
    payload.update(changes)
    return payload


@pytest.mark.parametrize(("name", "payload", "status", "message"), [
    ("refit", _book(), None, None),
    ("refit", _book(args=[]), None, None),
    ("refit", _book(args=None), None, None),
    ("__class__", _book(), 404, f"no script named '__class__'; the scripts are {SCRIPT_LIST}"),
    ("run_book_job", _book(), 404, f"no script named 'run_book_job'; the scripts are "
                                   f"{SCRIPT_LIST}"),
    ("", _book(), 404, f"no script named ''; the scripts are {SCRIPT_LIST}"),
    ("refit", None, 422, "the request body is empty; expected a JSON object"),
    ("refit", {k: v for k, v in _book().items() if k != "sheets"}, 422,
     "sheets: missing; the workbook payload has client, version, book, sheets and names"),
    ("refit", _book(book=[]), 422, "book must be a JSON object"),
    ("refit", _book(book={"name": "b"}), 422,
     "book.active_sheet_index: missing; book has name and active_sheet_index"),
    ("refit", _book(book={"name": "b", "active_sheet_index": True}), 422,
     "book.active_sheet_index must be an integer"),
    ("refit", _book(book={"name": "b", "active_sheet_index": 1}), 422,
     "book.active_sheet_index must index into sheets"),
    ("refit", _book(sheets=[{"values": []}]), 422,
     "sheets[0] must be a JSON object with a string name"),
    ("refit", _book(sheets=[{"name": "S", "values": [1]}]), 422,
     "sheets[0].values must be a JSON array of rows (arrays)"),
    ("refit", _book(names=[{}]), 422,
     "names[0].name: missing; a defined name has name, sheet_index, address and book_scope"),
    ("refit", _book(names=[{"name": "N", "sheet_index": 3, "address": "A1",
                            "book_scope": True}]), 422,
     "names[0].sheet_index must index into sheets"),
    ("refit", _book(names=[{"name": "N", "sheet_index": 0, "address": "A1",
                            "book_scope": 1}]), 422,
     "names[0].book_scope must be true or false"),
    ("refit", _book(args=["x"]), 422, "refit takes no arguments; args must be [] or left out"),
    ("refit", _book(args="x"), 422, "refit takes no arguments; args must be [] or left out"),
])
def test_check_script_call(name, payload, status, message):
    body = None if payload is None else json.dumps(payload).encode()
    problem = guard.check_script_call(name, body, SCRIPTS)
    assert problem == (None if status is None else (status, message))


# --------------------------------------------------------------------------- the ASGI guard
class FakeApp:
    """Downstream app: records the body it read and answers with a fixed response."""

    def __init__(self, status=200, body=b'{"ok": true}', content_type=b"application/json"):
        self.status, self.body, self.content_type = status, body, content_type
        self.received = None

    async def __call__(self, scope, receive, send):
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        self.received = b"".join(chunks)
        await send({"type": "http.response.start", "status": self.status, "headers": [
            (b"content-type", self.content_type),
            (b"content-length", str(len(self.body)).encode())]})
        await send({"type": "http.response.body", "body": self.body[:3], "more_body": True})
        await send({"type": "http.response.body", "body": self.body[3:]})


def _guard(app, limit=100) -> guard.RequestGuard:
    return guard.RequestGuard(app, max_body=limit, api_prefix="/xlwings",
                              static_prefixes=["/static"], functions={"FIT": FIT},
                              scripts=SCRIPTS, markers=[b"/srv/app", b"/opt/py/lib"])


def _run(asgi, path="/x", method="POST", chunks=(), headers=()):
    """Drive ``asgi`` with one request; (status, headers, body, number of receive() calls)."""
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
               for i, c in enumerate(chunks)] or [{"type": "http.request", "body": b""}]
    calls, sent = [], []

    async def receive():
        calls.append(1)
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "headers": [(k.encode(), v.encode()) for k, v in headers], "query_string": b""}
    asyncio.run(asgi(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body, len(calls)


def test_body_over_the_limit_by_content_length_is_never_read():
    app = FakeApp()
    status, headers, body, reads = _run(_guard(app), chunks=[b"x" * 101],
                                        headers=[("content-length", "101")])
    assert (status, reads, app.received) == (413, 0, None)
    assert json.loads(body) == {"detail": "the request body is larger than the server's limit "
                                          f"of {100 / 2**20:g} MB ({MAX_BODY_ENV})"}
    assert headers[b"connection"] == b"close"


def test_invalid_content_length_is_refused():
    app = FakeApp()
    status, _, body, reads = _run(_guard(app), headers=[("content-length", "-1")])
    assert (status, json.loads(body), reads, app.received) == (
        400, {"detail": "invalid Content-Length header"}, 0, None)


def test_streamed_body_is_counted_as_it_arrives():
    app = FakeApp()
    status, _, _, reads = _run(_guard(app), chunks=[b"x" * 40] * 5,
                               headers=[("transfer-encoding", "chunked")])
    assert (status, reads, app.received) == (413, 3, None)  # 40, 80, 120 > 100: stop reading


def test_body_within_the_limit_reaches_the_app_intact():
    app = FakeApp()
    status, _, body, _ = _run(_guard(app), chunks=[b"a" * 40, b"b" * 40, b"c" * 20],
                              headers=[("transfer-encoding", "chunked")])
    assert (status, body) == (200, b'{"ok": true}')
    assert app.received == b"a" * 40 + b"b" * 40 + b"c" * 20  # exactly the limit is allowed


def test_refused_calls_never_reach_the_app():
    app = FakeApp()
    status, _, body, _ = _run(_guard(app), path="/xlwings/custom-scripts-call/__init__")
    assert status == 404 and app.received is None
    assert json.loads(body) == {"detail": f"no script named '__init__'; the scripts are "
                                          f"{SCRIPT_LIST}"}
    status, _, body, _ = _run(_guard(app), path="/xlwings/custom-functions-call",
                              chunks=[_call(func_name="FIT", args=[])])
    assert status == 422 and app.received is None
    status, _, _, _ = _run(_guard(app), path="/static/..", method="GET")
    assert status == 404 and app.received is None


@pytest.mark.parametrize(("status", "body", "expected"), [
    (500, b"Traceback (most recent call last):\n  File \"/srv/app/x.py\"", guard.INTERNAL_ERROR),
    (500, b"An error occurred.", guard.INTERNAL_ERROR),  # 5xx bodies never pass
    (503, b"cache down", guard.INTERNAL_ERROR),
    (404, b"module 'custom_scripts' from '/srv/app/custom_scripts/__init__.py'",
     guard.FAILED_REQUEST),
    (400, b"Traceback (most recent call last): ...", guard.FAILED_REQUEST),
    (400, b'{"detail": "C:\\\\srv"}', None),  # nothing of the server's: unchanged
])
def test_error_bodies_with_paths_or_tracebacks_are_replaced(status, body, expected):
    sent_status, headers, sent, _ = _run(_guard(FakeApp(status, body, b"text/plain")))
    assert sent_status == status
    if expected is None:
        assert sent == body and headers[b"content-type"] == b"text/plain"
    else:
        assert json.loads(sent) == {"detail": expected}
        assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(sent)).encode()


def test_paths_are_redacted_from_successful_bodies_but_not_from_static_files():
    body = b'{"result": [["#FLASSO! internal error (OSError: /srv/app/data.bin)"]]}'
    status, headers, sent, _ = _run(_guard(FakeApp(200, body)))
    assert sent == b'{"result": [["#FLASSO! internal error (OSError: <server path>/data.bin)"]]}'
    assert headers[b"content-length"] == str(len(sent)).encode()
    _, _, sent, _ = _run(_guard(FakeApp(200, b"see /srv/app")), path="/static/js/a.js",
                         method="GET")
    assert sent == b"see /srv/app"  # files are served as they are
    status, _, sent, _ = _run(_guard(FakeApp(500, b"PermissionError('/srv/app/static/x')")),
                              path="/static/x", method="GET")
    assert (status, json.loads(sent)) == (500, {"detail": guard.INTERNAL_ERROR})  # errors aren't


def test_path_markers_name_the_server_folders():
    markers = guard.path_markers()
    root = str(Path(guard.__file__).resolve().parents[1]).encode()
    assert root in markers and str(PROJECT_DIR).encode() in markers
    site = next(p for p in sys.path if p.endswith("site-packages"))
    assert str(Path(site).resolve()).encode() in markers
    assert all(len(Path(m.decode()).parts) >= 3 for m in markers if b"\\" not in m)
    assert b"/usr" not in markers and b"/" not in markers


# --------------------------------------------------------------------------- startup policy
@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"auth_providers": [""]}, "XLWINGS_AUTH_PROVIDERS lists '', which is not an auth provider"),
    ({"auth_providers": ["nobody"]}, "lists 'nobody', which is not an auth provider: every call "
                                     'would fail. The known providers are "custom" (access '
                                     'tokens, XL_FACTORLASSO_TOKEN_SHA256); "entraid"'),
    ({"auth_providers": ["Custom"]}, "lists 'Custom', which is not an auth provider"),
    ({"auth_providers": ["entraid"], "entraid_tenant_id": GUID},
     "XLWINGS_AUTH_ENTRAID_CLIENT_ID is not set: it must be the application (client) id"),
    ({"auth_providers": ["entraid"], "entraid_client_id": GUID},
     "XLWINGS_AUTH_ENTRAID_TENANT_ID is not set: it must be the directory (tenant) id, a GUID"),
    ({"auth_providers": ["entraid"], "entraid_client_id": "my-app", "entraid_tenant_id": GUID},
     "XLWINGS_AUTH_ENTRAID_CLIENT_ID is 'my-app'"),
    ({"auth_providers": ["entraid"], "entraid_client_id": GUID, "entraid_tenant_id": "common"},
     "XLWINGS_AUTH_ENTRAID_TENANT_ID is 'common': it must be the directory (tenant) id"),
    ({"auth_providers": ["custom"], "digests": ["ab" * 32], "required_roles": ["User"]},
     "whose token users have no roles: every call would be refused (403)"),
    ({"auth_providers": ["custom"], "digests": ["ab" * 32], "cors_allow_origins": ["*"]},
     'XLWINGS_CORS_ALLOW_ORIGINS is ["*"] outside "dev"'),
    ({"environment": "dev", "cors_allow_origins": ["*"], "host": "0.0.0.0"},
     'XLWINGS_CORS_ALLOW_ORIGINS is ["*"] on 0.0.0.0, which is not a loopback interface'),
    ({"environment": "dev", "cors_allow_origins": ["null"]}, "lists 'null', which is not an "
                                                             "origin"),
    ({"environment": "dev", "cors_allow_origins": ["https://a.example/path"]},
     "lists 'https://a.example/path', which is not an origin"),
    ({"environment": "dev", "enable_wasm": True}, "XLWINGS_ENABLE_WASM is on"),
])
def test_settings_under_which_every_call_fails_are_refused(kwargs, fragment):
    kwargs = {"environment": "prod", "digests": [], **kwargs}
    problems = deployment_problems(kwargs.pop("environment"), kwargs.pop("auth_providers", []),
                                   kwargs.pop("digests"), **kwargs)
    assert len(problems) == 1 and fragment in problems[0], problems


@pytest.mark.parametrize("kwargs", [
    {"auth_providers": ["entraid"], "entraid_client_id": GUID, "entraid_tenant_id": GUID},
    {"auth_providers": ["entraid"], "entraid_client_id": GUID, "entraid_tenant_id": "common",
     "entraid_multitenant": True},
    {"auth_providers": ["entraid", "custom"], "digests": ["ab" * 32], "entraid_client_id": GUID,
     "entraid_tenant_id": GUID.upper(), "required_roles": ["User"]},
    {"environment": "dev", "cors_allow_origins": ["*"], "host": "127.0.0.1"},
    {"environment": "dev", "cors_allow_origins": ["*"]},  # host unknown (plain uvicorn)
    {"auth_providers": ["custom"], "digests": ["ab" * 32],
     "cors_allow_origins": ["https://Partner.example:443/", "http://[::1]:8000"]},
])
def test_settings_that_work_pass(kwargs):
    kwargs = {"environment": "prod", "digests": [], **kwargs}
    assert deployment_problems(kwargs.pop("environment"), kwargs.pop("auth_providers", []),
                               kwargs.pop("digests"), **kwargs) == []


@pytest.mark.parametrize(("origin", "normal"), [
    ("https://Partner.example:443/", "https://partner.example"),
    ("http://127.0.0.1:80", "http://127.0.0.1"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("https://[::1]:8443", "https://[::1]:8443"),
    ("null", None), ("*", None), ("ftp://a.example", None), ("https://a.example/x", None),
    ("https://user@a.example", None), ("a.example", None),
])
def test_normalise_origin(origin, normal):
    assert normalise_origin(origin) == normal


def test_allowed_origins_own_first_then_configured():
    assert allowed_origins([], None, []) == []
    assert allowed_origins(["https://B.example/", "bad"], "addin.example",
                           ["http://127.0.0.1:8000", "http://localhost:8000"]) == [
        "https://addin.example", "http://127.0.0.1:8000", "http://localhost:8000",
        "https://b.example"]
    assert allowed_origins(["https://b.example", "*"], "addin.example") == ["*"]


@pytest.mark.parametrize(("value", "expected"), [
    (None, int(DEFAULT_MAX_BODY_MB * 2**20)), ("", int(DEFAULT_MAX_BODY_MB * 2**20)),
    ("2", 2 * 2**20), ("0.5", 2**19), (" 16 ", 16 * 2**20),
    ("abc", None), ("0", None), ("-1", None), ("nan", None), ("2000", None),
])
def test_max_body_bytes(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(MAX_BODY_ENV, raising=False)
    else:
        monkeypatch.setenv(MAX_BODY_ENV, value)
    if expected is None:
        with pytest.raises(ServerSetupError) as err:
            max_body_bytes()
        assert str(err.value) == (f"{MAX_BODY_ENV} must be a number of megabytes between 0.01 "
                                  f"and 1024 (default 8), not {value!r}")
    else:
        assert max_body_bytes() == expected


def test_max_body_bytes_from_the_env_file(monkeypatch, tmp_path):
    monkeypatch.delenv(MAX_BODY_ENV, raising=False)
    env = tmp_path / "settings.env"
    env.write_text(f"{MAX_BODY_ENV}=3\n")
    assert max_body_bytes(env) == 3 * 2**20


def test_the_env_template_passes_the_startup_checks(monkeypatch):
    """The template sets nothing a server refuses; its commented examples are valid settings."""
    from dotenv import dotenv_values

    template = PROJECT_DIR / ".env.template"
    values = dotenv_values(template)
    assert "XLWINGS_CORS_ALLOW_ORIGINS" not in values  # the add-in needs no cross-origin access
    assert values["XLWINGS_ENVIRONMENT"] == "prod"
    examples = dict(re.findall(r"^# (XLWINGS_CORS_ALLOW_ORIGINS|XL_FACTORLASSO_MAX_BODY_MB)=(.+)$",
                               template.read_text(), re.M))
    origins = json.loads(examples["XLWINGS_CORS_ALLOW_ORIGINS"])
    assert deployment_problems("dev", [], cors_allow_origins=origins) == []
    monkeypatch.setenv(MAX_BODY_ENV, examples[MAX_BODY_ENV])
    assert max_body_bytes() == DEFAULT_MAX_BODY_MB * 2**20


# --------------------------------------------------------------------------- the running app
def test_the_started_app_has_the_guard_installed(client):
    """``client`` has run lifespan.py; starting again re-installs, never stacks, the guard."""
    from fastapi.testclient import TestClient
    from starlette.routing import Mount
    from xlwings_server.main import app as fastapi_app
    from xlwings_server.main import main_app

    with TestClient(main_app):
        pass
    stack = fastapi_app.middleware_stack
    assert isinstance(stack, guard.RequestGuard) and not isinstance(stack.app, guard.RequestGuard)
    assert sorted(stack.scripts) == sorted(SCRIPTS) and sorted(stack.functions) == sorted(FUNCTIONS)
    assert stack.max_body == max_body_bytes()
    mounts = [r for r in fastapi_app.routes if isinstance(r, Mount)]
    assert mounts and all(isinstance(r.app, guard.ContainedStaticFiles) for r in mounts)
    assert mounts[0].app.all_directories[0] == os.path.realpath(PROJECT_DIR / "static")


def test_socketio_only_calls_worksheet_functions_and_checks_origins(client):
    from xlwings_server.routers.socketio import sio

    handler = sio.handlers["/"]["xlwings:function-call"]
    assert handler.xl_factorlasso_guarded
    assert asyncio.run(handler("sid", {"func_name": "__class__", "task_key": "k"})) is None
    check = sio.eio.cors_allowed_origins
    environ = {"HTTP_HOST": "127.0.0.1:8000"}
    assert check("http://127.0.0.1:8000", environ) and check("https://127.0.0.1:8000", environ)
    assert not check("https://evil.example", environ) and not check("null", environ)


def test_lifespan_refuses_an_unknown_auth_provider(app, monkeypatch, server_settings):
    from fastapi.testclient import TestClient

    monkeypatch.setattr(server_settings, "auth_providers", ["nobody"])
    with pytest.raises(ServerSetupError, match="'nobody', which is not an auth provider"):
        with TestClient(app):
            pass
