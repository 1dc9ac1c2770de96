"""The hardened server over real HTTP: two live servers on 127.0.0.1, started once per module.

* ``prod``: ``xl-factorlasso serve`` in ``prod`` with the ``custom`` auth provider (one token)
  and the default body limit;
* ``dev``: plain ``uvicorn xlwings_server.main:main_app`` (``XLWINGS_PROJECT_DIR`` set) in
  ``dev`` without authentication, one extra CORS origin and ``XLWINGS_HOSTNAME``.

Requests are written byte for byte on a socket (``_live.raw_request``): no client normalises the
paths. Each server is stopped by its PID in the fixture's ``finally``; all waits are bounded.
The startup refusals run the command (or uvicorn) and check that it stops with the message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

from tests_server._live import (
    PROJECT_DIR,
    ROOT,
    clean_env,
    free_port,
    raw_request,
    read_response,
    serve_argv,
    start,
    stop,
    uvicorn_argv,
)
from xl_factorlasso.server import DEFAULT_MAX_BODY_MB, MAX_BODY_ENV, TOKEN_ENV

TOKEN = "a-token-for-the-tests"
PARTNER = "https://partner.example"
MAX_BODY = int(DEFAULT_MAX_BODY_MB * 2**20)
SCRIPT_LIST = "backtest, clear_outputs, optimise_portfolio, refit, refit_cv"
FUNCTION_LIST = ("FLASSO_BEST_LAMBDA, FLASSO_BETA_HISTORY, FLASSO_CLUSTERS, FLASSO_COV, "
                 "FLASSO_CV, FLASSO_FIT, "
                 "FLASSO_INTERCEPT, FLASSO_MAXDIV, FLASSO_NOTES, FLASSO_PREDICT, FLASSO_R2, "
                 "FLASSO_RESID_VOL, "
                 "FLASSO_RETURNS, FLASSO_RISK, FLASSO_RISK_ASSETS, FLASSO_VERSION")
NOT_FOUND = {"detail": "Not Found"}


def _licence() -> str:
    return os.environ["XLWINGS_LICENSE_KEY"]


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prod")
    port = free_port()
    env = clean_env(folder, XLWINGS_LICENSE_KEY=_licence(), XLWINGS_ENVIRONMENT="prod",
                    XLWINGS_AUTH_PROVIDERS='["custom"]', DOTENV_PATH=os.devnull,
                    **{TOKEN_ENV: hashlib.sha256(TOKEN.encode()).hexdigest()})
    server = start(serve_argv(port), folder, env, port)
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dev")
    port = free_port()
    env = clean_env(folder, XLWINGS_LICENSE_KEY=_licence(), XLWINGS_ENVIRONMENT="dev",
                    XLWINGS_PROJECT_DIR=str(PROJECT_DIR), DOTENV_PATH=os.devnull,
                    XLWINGS_CORS_ALLOW_ORIGINS=json.dumps([PARTNER]),
                    XLWINGS_HOSTNAME=f"127.0.0.1:{port}")
    server = start(uvicorn_argv(port), folder, env, port)
    try:
        yield server
    finally:
        stop(server.proc)


@pytest.fixture(params=["prod", "dev"])
def server(request):
    """Each test using it runs against both servers (serve and plain uvicorn)."""
    return request.getfixturevalue(request.param)


def _json(response) -> dict:
    assert response.headers["content-type"] == "application/json", response
    return json.loads(response.body)


def _post(server, path: str, payload, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return raw_request(server.port, "POST", path, headers, body)


def _function_call(name: str, args, **extra) -> dict:
    return {"client": "Office.js", "version": "0.37.8", "runtime": "1.4", "func_name": name,
            "args": args, **extra}


# --------------------------------------------------------------------------- static files
TRAVERSALS = [
    "/static/%2e%2e/lifespan.py",
    "/static/%2E%2e/pyproject.toml",
    "/static/%2e%2E/.env.template",
    "/static/js/%2e%2e/%2e%2e/%2e%2e/cli.py",
    "/static/" + "%2e%2e/" * 12 + "etc/passwd",
    "/static/%252e%252e/lifespan.py",
    "/static/%252e%252e%252flifespan.py",
    "/static/..%5clifespan.py",
    "/static/%5c..%5clifespan.py",
    "/static/..\\lifespan.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/%2e%2e%2f%2e%2e%2fcli.py",
    "/static/js/ribbon.js%00.png",
    "/static/%00/../lifespan.py",
    "/static/%2e%2e/config.py",  # xlwings-server's own config.py, next to its static folder
]


def test_the_traversal_targets_exist():
    """The files the traversals aim at are there: a 404 is the guard, not a missing file."""
    for path in ("lifespan.py", "pyproject.toml", ".env.template"):
        assert (PROJECT_DIR / path).is_file()
    assert (ROOT / "xl_factorlasso" / "cli.py").is_file() and Path("/etc/passwd").is_file()


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_file_outside_the_static_folders(server, path):
    r = raw_request(server.port, "GET", path)
    assert (r.status, _json(r)) == (404, NOT_FOUND), path


def test_symlinks_out_of_the_static_folder_are_not_followed(server, tmp_path):
    """Links made inside the project's static/js while the server runs (removed afterwards)."""
    outside = tmp_path / "secret.txt"
    outside.write_text("SECRET")
    tag = f"test-{os.getpid()}-{server.port}"
    links = {PROJECT_DIR / "static" / "js" / f"{tag}-out.js": outside,
             PROJECT_DIR / "static" / f"{tag}-dir": ROOT / "xl_factorlasso",
             PROJECT_DIR / "static" / "js" / f"{tag}-in.js": PROJECT_DIR / "static" / "js"
             / "ribbon.js"}
    try:
        for link, target in links.items():
            link.symlink_to(target)
        r = raw_request(server.port, "GET", f"/static/js/{tag}-out.js")
        assert (r.status, _json(r)) == (404, NOT_FOUND)
        r = raw_request(server.port, "GET", f"/static/{tag}-dir/cli.py")
        assert (r.status, _json(r)) == (404, NOT_FOUND)
        r = raw_request(server.port, "GET", f"/static/js/{tag}-in.js")  # within: served
        assert (r.status, r.body) == (200, (PROJECT_DIR / "static/js/ribbon.js").read_bytes())
    finally:
        for link in links:
            link.unlink(missing_ok=True)


def test_legitimate_files_are_served(server):
    import xlwings_server

    package_static = Path(xlwings_server.__file__).parent / "static"
    for path, file in [("/static/js/ribbon.js", PROJECT_DIR / "static/js/ribbon.js"),
                       ("/static/js/auth.js", PROJECT_DIR / "static/js/auth.js"),
                       ("/static/css/core.css", package_static / "css/core.css"),
                       ("/static/js/custom-scripts/index.js",
                        package_static / "js/custom-scripts/index.js")]:
        r = raw_request(server.port, "GET", path)
        assert (r.status, r.body) == (200, file.read_bytes()), path
    taskpane = raw_request(server.port, "GET", "/taskpane.html")
    assert taskpane.status == 200 and b"Factor LASSO" in taskpane.body
    for path in {p.decode() for p in
                 re.findall(rb'(?:src|href)="(/static/[^"]+)"', taskpane.body)}:
        assert raw_request(server.port, "GET", path).status == 200, path  # what the pane loads
    manifest = raw_request(server.port, "GET", "/manifest")
    assert manifest.status == 200 and b"FactorLassoRefit" in manifest.body


# --------------------------------------------------------------------------- body limit
def _stream_chunked(port: int, total: int) -> tuple[object, int]:
    """POST a chunked body of ``total`` bytes in 1 MB chunks while reading the response in
    parallel (the server answers before the body ends); (response, bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sent = [0]

    def feed():
        chunk = b"[" * 2**20
        try:
            sock.sendall(b"POST /xlwings/custom-functions-call HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            while sent[0] < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent[0] += len(chunk)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed the connection

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        response = read_response(sock)
    finally:
        sock.close()
        feeder.join(timeout=60)
    return response, sent[0]


def test_oversized_bodies_are_refused_before_they_are_read(prod, capsys):
    limit = {"detail": f"the request body is larger than the server's limit of "
                       f"{DEFAULT_MAX_BODY_MB:g} MB ({MAX_BODY_ENV})"}
    before = prod.rss_mb()
    # Content-Length: 128 MB announced, no byte of it sent: the answer comes anyway
    r = raw_request(prod.port, "POST", "/xlwings/custom-functions-call",
                    {"Content-Type": "application/json", "Content-Length": str(128 * 2**20)})
    assert (r.status, _json(r), r.headers["connection"]) == (413, limit, "close")
    r = raw_request(prod.port, "POST", "/xlwings/custom-scripts-call/refit",
                    {"Content-Length": str(MAX_BODY + 1)})
    assert (r.status, _json(r)) == (413, limit)
    # chunked: counted as it arrives; the server stops reading soon after the limit
    r, sent = _stream_chunked(prod.port, 128 * 2**20)
    assert (r.status, _json(r)) == (413, limit)
    assert sent < 64 * 2**20
    after = prod.rss_mb()
    with capsys.disabled():
        print(f"\n  server RSS {before:.0f} MB -> {after:.0f} MB after 3 oversized requests "
              f"(chunked: {sent / 2**20:.0f} MB sent before the 413)")
    assert after - before < 50
    # the server is still up and answers a normal call
    r = _post(prod, "/xlwings/custom-functions-call", _function_call("FLASSO_VERSION", []),
              TOKEN)
    assert r.status == 200 and len(_json(r)["result"]) == 1


def test_a_body_of_exactly_the_limit_is_accepted(prod):
    call = json.dumps(_function_call("FLASSO_VERSION", [], pad="")).encode()
    body = call.replace(b'"pad": ""', b'"pad": "' + b"x" * (MAX_BODY - len(call)) + b'"')
    assert len(body) == MAX_BODY
    r = _post(prod, "/xlwings/custom-functions-call", body, TOKEN)
    assert r.status == 200, r.body[:300]


# --------------------------------------------------------------------------- names and args
NOT_SCRIPTS = ["__class__", "__init__", "__dict__", "_private", "run_book_job", "refit_caller",
               "ribbon", "custom_scripts", "xw", "os"]


@pytest.mark.parametrize("name", NOT_SCRIPTS)
def test_only_the_ribbon_scripts_are_looked_up(server, name, demo_xlsx, xlwings_version):
    from tests.fake_office_client import book_payload

    r = _post(server, f"/xlwings/custom-scripts-call/{name}",
              book_payload(demo_xlsx, xlwings_version), TOKEN)
    assert (r.status, _json(r)) == (404, {"detail": f"no script named {name!r}; the scripts are "
                                                    f"{SCRIPT_LIST}"})


@pytest.mark.parametrize("name", ["__class__", "__init__", "__getattr__", "_CACHE", "udfs",
                                  "custom_functions", "cache_clear", "flasso_fit"])
def test_only_the_ten_functions_are_looked_up(server, name):
    r = _post(server, "/xlwings/custom-functions-call", _function_call(name, []), TOKEN)
    assert (r.status, _json(r)) == (404, {"detail": f"no worksheet function named {name!r}; "
                                                    f"the functions are {FUNCTION_LIST}"})


FIT_USAGE = ("FLASSO_FIT(returns, factors, [reg_lambda], [model_type], [signs], [prior], "
             "[settings], [groups])")
BAD_CALLS = [
    (_function_call("FLASSO_FIT", []),
     f"FLASSO_FIT: argument 'returns' is missing; {FIT_USAGE} needs at least 2 arguments, got 0"),
    (_function_call("FLASSO_FIT", [[["date", "A"]]]),
     f"FLASSO_FIT: argument 'factors' is missing; {FIT_USAGE} needs at least 2 arguments, got 1"),
    ({k: v for k, v in _function_call("FLASSO_FIT", []).items() if k != "args"},
     f"FLASSO_FIT: args is missing; expected one entry per argument of {FIT_USAGE}"),
    (_function_call("FLASSO_FIT", "x"),
     f"FLASSO_FIT: args must be a JSON array; expected one entry per argument of {FIT_USAGE}"),
    (_function_call("FLASSO_VERSION", [1, 2]),
     "FLASSO_VERSION: too many arguments; FLASSO_VERSION() takes no arguments, got 2"),
    (_function_call("FLASSO_FIT", [[[1]], [[1]], [[1], 2]]),
     "FLASSO_FIT: argument 'reg_lambda': a range must be a JSON array of non-empty rows "
     "(arrays)"),
    ({k: v for k, v in _function_call("FLASSO_VERSION", []).items() if k != "runtime"},
     "runtime: missing; every worksheet-function call sends client, version and runtime"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_CALLS)
def test_malformed_calls_get_422_naming_the_argument(server, payload, message):
    r = _post(server, "/xlwings/custom-functions-call", payload, TOKEN)
    assert (r.status, _json(r)) == (422, {"detail": message})


def test_well_formed_calls_still_work(server):
    import xl_factorlasso

    r = _post(server, "/xlwings/custom-functions-call", _function_call("FLASSO_VERSION", []),
              TOKEN)
    assert (r.status, _json(r)) == (200, {"result": [[xl_factorlasso.__version__]]})
    fit = _function_call("FLASSO_FIT", [[["date", "A"]], [["date", "F"]]] + [None] * 5)
    r = _post(server, "/xlwings/custom-functions-call", fit, TOKEN)
    assert r.status == 200 and _json(r)["result"][0][0].startswith("#FLASSO! returns:")


def test_prod_still_requires_the_token(prod):
    r = _post(prod, "/xlwings/custom-functions-call", _function_call("FLASSO_VERSION", []))
    assert r.status == 401


def _server_folders() -> list[bytes]:
    folders = {ROOT, PROJECT_DIR, Path(sys.prefix), Path(sysconfig.get_paths()["purelib"])}
    return [str(f).encode() for f in folders] + [str(f.resolve()).encode() for f in folders]


def test_no_body_names_a_server_path_or_shows_a_traceback(server, demo_xlsx, xlwings_version):
    """Every kind of bad request, each server: nothing of the server's file system comes back."""
    from tests.fake_office_client import book_payload

    book = book_payload(demo_xlsx, xlwings_version)
    answers = [raw_request(server.port, "GET", path) for path in TRAVERSALS]
    answers += [_post(server, f"/xlwings/custom-scripts-call/{n}", book, TOKEN)
                for n in NOT_SCRIPTS]
    answers += [_post(server, "/xlwings/custom-functions-call", p, TOKEN) for p, _ in BAD_CALLS]
    answers += [_post(server, "/xlwings/custom-scripts-call/refit", payload, TOKEN)
                for payload in (b"not json", b"[]", {**book, "sheets": 1}, {**book, "args": [1]},
                                {**book, "names": [{"name": "FL_RETURNS"}]})]
    answers += [_post(server, "/xlwings/custom-functions-call",
                      _function_call("FLASSO_FIT", [[[{"type": "Error"}]], [[1]]]), TOKEN),
                raw_request(server.port, "GET", "/xlwings/alert"),
                raw_request(server.port, "GET", "/xlwings/custom-scripts-call/refit"),
                raw_request(server.port, "POST", "/xlwings/custom-functions-call")]
    assert {a.status for a in answers} <= {400, 401, 404, 405, 422}
    for answer in answers:
        assert b"Traceback" not in answer.body and b'File "' not in answer.body, answer.body
        for folder in _server_folders():
            assert folder not in answer.body, (folder, answer.body)


# --------------------------------------------------------------------------- CORS
def _preflight(server, origin: str):
    return raw_request(server.port, "OPTIONS", "/xlwings/custom-functions-call",
                       {"Origin": origin, "Access-Control-Request-Method": "POST",
                        "Access-Control-Request-Headers": "authorization,content-type"})


def test_cors_preflight_from_a_foreign_origin_is_refused(server):
    r = _preflight(server, "https://evil.example")
    assert r.status == 400 and "access-control-allow-origin" not in r.headers
    r = _preflight(server, "null")
    assert r.status == 400 and "access-control-allow-origin" not in r.headers
    r = raw_request(server.port, "POST", "/xlwings/custom-functions-call",
                    {"Origin": "https://evil.example", "Content-Type": "application/json",
                     "Authorization": f"Bearer {TOKEN}"},
                    json.dumps(_function_call("FLASSO_VERSION", [])).encode())
    assert r.status == 200 and "access-control-allow-origin" not in r.headers  # unreadable


def test_cors_preflight_from_the_own_origin_is_allowed(prod, dev):
    for server, own in [(prod, f"http://127.0.0.1:{prod.port}"),
                        (prod, f"http://localhost:{prod.port}"),
                        (dev, f"https://127.0.0.1:{dev.port}"),  # https://XLWINGS_HOSTNAME
                        (dev, PARTNER)]:  # the configured extra origin
        r = _preflight(server, own)
        assert r.status == 200, (own, r.body)
        assert r.headers["access-control-allow-origin"] == own
        assert r.headers["access-control-allow-methods"] == "POST"
    assert _preflight(prod, PARTNER).status == 400  # configured on dev only


# --------------------------------------------------------------------------- startup refusals
@pytest.mark.parametrize(("env", "host", "message"), [
    ({"XLWINGS_ENVIRONMENT": "prod", "XLWINGS_AUTH_PROVIDERS": '[""]'}, "127.0.0.1",
     "XLWINGS_AUTH_PROVIDERS lists '', which is not an auth provider: every call would fail. "
     'The known providers are "custom" (access tokens, XL_FACTORLASSO_TOKEN_SHA256); "entraid" '
     "(Microsoft Entra ID single sign-on, XLWINGS_AUTH_ENTRAID_CLIENT_ID and "
     "XLWINGS_AUTH_ENTRAID_TENANT_ID)."),
    ({"XLWINGS_ENVIRONMENT": "dev", "XLWINGS_AUTH_PROVIDERS": '["nobody"]'}, "127.0.0.1",
     "XLWINGS_AUTH_PROVIDERS lists 'nobody', which is not an auth provider"),
    ({"XLWINGS_ENVIRONMENT": "prod", "XLWINGS_AUTH_PROVIDERS": '["entraid"]'}, "127.0.0.1",
     'XLWINGS_AUTH_PROVIDERS includes "entraid" but XLWINGS_AUTH_ENTRAID_CLIENT_ID is not set'),
    ({"XLWINGS_ENVIRONMENT": "dev", "XLWINGS_CORS_ALLOW_ORIGINS": '["*"]'}, "0.0.0.0",
     'XLWINGS_CORS_ALLOW_ORIGINS is ["*"] on 0.0.0.0, which is not a loopback interface'),
    ({"XLWINGS_ENVIRONMENT": "dev", MAX_BODY_ENV: "lots"}, "127.0.0.1",
     f"{MAX_BODY_ENV} must be a number of megabytes between 0.01 and 1024 (default 8), not "
     "'lots'"),
])
def test_serve_refuses_to_start(tmp_path, env, host, message):
    argv = [sys.executable, "-m", "xl_factorlasso", "serve", "--host", host, "--port",
            str(free_port())]
    r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env=clean_env(tmp_path, XLWINGS_LICENSE_KEY=_licence(),
                                     DOTENV_PATH=os.devnull, **env))
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert "Uvicorn running" not in r.stdout + r.stderr


def test_plain_uvicorn_refuses_to_start(tmp_path):
    """lifespan.py runs the same check when xlwings-server is started without the command."""
    env = clean_env(tmp_path, XLWINGS_LICENSE_KEY=_licence(), XLWINGS_ENVIRONMENT="dev",
                    XLWINGS_PROJECT_DIR=str(PROJECT_DIR), DOTENV_PATH=os.devnull,
                    XLWINGS_AUTH_PROVIDERS='["nobody"]')
    proc = subprocess.Popen(uvicorn_argv(free_port()), cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        stop(proc)
    assert proc.returncode != 0
    assert "XLWINGS_AUTH_PROVIDERS lists 'nobody', which is not an auth provider" in output
    assert "Application startup failed" in output and "Uvicorn running" not in output
