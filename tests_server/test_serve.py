"""``xl-factorlasso serve``: its messages, and one live server on 127.0.0.1.

Every server process here is started by this test, stopped by its PID (SIGTERM, then SIGKILL
after a bounded wait) in a ``finally``, and all waits are bounded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests_server._live import clean_env, first_answer, free_port, stop
from xl_factorlasso.cli import main
from xl_factorlasso.server import CERT_FILE, FUNCTIONS, KEY_FILE, TOKEN_ENV


def _env(tmp_path: Path, **updates) -> dict:
    return clean_env(tmp_path, **updates)


def _serve(tmp_path: Path, *args: str, prelude: str = "", timeout: float = 60, **env):
    code = f"{prelude}import sys; from xl_factorlasso.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "serve", *args], cwd=tmp_path,
                          env=_env(tmp_path, **env), capture_output=True, text=True,
                          timeout=timeout)


def test_new_token_prints_a_token_and_its_digest(capsys):
    assert main(["serve", "--new-token"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    token, digest = lines[1], lines[3]
    assert hashlib.sha256(token.encode()).hexdigest() == digest
    assert TOKEN_ENV in lines[2]


def test_message_when_the_extra_is_not_installed(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "xlwings_server", None)  # what find_spec sees uninstalled
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err == ("xl-factorlasso serve: the server add-in needs the optional extra 'server': "
                   'pip install "path/to/xl_factorlasso-<version>-py3-'
                   'none-any.whl[server]" (the wheel built by make dist), or pip install '
                   '".[server]" in a source checkout\n')


def test_message_when_no_licence_key_is_set(tmp_path):
    r = _serve(tmp_path, XLWINGS_ENVIRONMENT="dev")
    assert r.returncode == 2, r.stderr
    assert "no xlwings licence key is set" in r.stderr
    assert "PolyForm Noncommercial" in r.stderr and "XLWINGS_LICENSE_KEY" in r.stderr
    assert "Traceback" not in r.stderr


def test_message_when_the_licence_key_is_rejected(tmp_path):
    r = _serve(tmp_path, XLWINGS_LICENSE_KEY="not-a-key", XLWINGS_ENVIRONMENT="dev")
    assert r.returncode == 2, r.stderr
    assert "licence key was rejected" in r.stderr and "Traceback" not in r.stderr


def test_refuses_to_start_without_auth_outside_dev(tmp_path):
    """The key and the environment come from ./.env (the directory serve is started from)."""
    (tmp_path / ".env").write_text('XLWINGS_LICENSE_KEY="noncommercial"\n'
                                   'XLWINGS_ENVIRONMENT="prod"\n')
    r = _serve(tmp_path)
    assert r.returncode == 2, r.stderr
    assert "XLWINGS_ENVIRONMENT is 'prod' and no authentication is configured" in r.stderr
    assert "Uvicorn running" not in r.stdout + r.stderr


def test_certs_option_needs_both_files(tmp_path, monkeypatch, capsys):
    for key in ("DOTENV_PATH", "XLWINGS_PROJECT_DIR", "XLWINGS_ON_SERVER"):
        monkeypatch.setenv(key, os.environ[key])  # serve() sets them; restored afterwards
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("must not start"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / CERT_FILE).write_text("")
    assert main(["serve", "--certs", "certs"]) == 2
    assert f"certs does not hold both {CERT_FILE} and {KEY_FILE}" in capsys.readouterr().err


# --------------------------------------------------------------------------- live server
def _self_signed_certs(folder: Path) -> bool:
    """certs/localhost+2(-key).pem for 127.0.0.1 (what mkcert makes), if openssl is here."""
    if shutil.which("openssl") is None:
        return False
    folder.mkdir()
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(folder / KEY_FILE), "-out", str(folder / CERT_FILE)],
        capture_output=True, timeout=60)
    return r.returncode == 0


def test_live_server_on_loopback(tmp_path, xlwings_version):
    import httpx

    import xl_factorlasso
    from xl_factorlasso.udfs import FLASSO_FIT

    https = _self_signed_certs(tmp_path / "certs")
    scheme = "https" if https else "http"
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "xl_factorlasso", "serve", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        env=_env(tmp_path, XLWINGS_LICENSE_KEY=os.environ["XLWINGS_LICENSE_KEY"],
                 XLWINGS_ENVIRONMENT="dev"),
    )
    base = f"{scheme}://127.0.0.1:{port}"
    cafile = tmp_path / "certs" / CERT_FILE
    try:
        verify = ssl.create_default_context(cafile=cafile) if https else True
        with httpx.Client(verify=verify, timeout=30) as http:
            meta = first_answer(http, f"{base}/xlwings/custom-functions-meta", proc,
                                 tmp_path / "server.log")
            assert meta.status_code == 200
            assert len(meta.json()["functions"]) == len(FUNCTIONS)

            returns = [["date", "A", "B"], *[[45000 + i, 0.01 * ((i * 7) % 5 - 2) + 0.002 * i,
                                              0.01 * ((i * 3) % 4 - 1.5)] for i in range(30)]]
            factors = [["date", "F"], *[[45000 + i, 0.01 * ((i * 5) % 7 - 3)] for i in range(30)]]
            body = {"client": "Office.js", "version": xlwings_version, "runtime": "1.4",
                    "func_name": "FLASSO_FIT", "args": [returns, factors, [[1e-4]]],
                    "caller_address": "[Book1.xlsx]Sheet1!A1"}
            r = http.post(f"{base}/xlwings/custom-functions-call", json=body)
            assert r.status_code == 200, r.text
            expected = FLASSO_FIT(returns, factors, 1e-4)
            assert r.json()["result"][0] == expected[0]
            assert r.json()["result"][1][1] == pytest.approx(expected[1][1], rel=1e-12)
            r = http.post(f"{base}/xlwings/custom-functions-call",
                          json={**body, "func_name": "FLASSO_VERSION", "args": []})
            assert r.json()["result"] == [[xl_factorlasso.__version__]]
            manifest = http.get(f"{base}/manifest").text
            assert f"{base}/taskpane.html" in manifest
    finally:
        stop(proc)
        log.close()
    output = (tmp_path / "server.log").read_text()
    assert ("no certificates" in output) == (not https)
    assert "Uvicorn running on" in output


# --------------------------------------------------------------------------- workers
def test_workers_option_is_checked_before_anything_starts(capsys):
    assert main(["serve", "--workers", "0"]) == 2
    assert capsys.readouterr().err == ("xl-factorlasso serve: --workers must be a whole number "
                                       ">= 1, got 0\n")
    assert main(["serve", "--reload", "--workers", "2"]) == 2
    assert capsys.readouterr().err == ("xl-factorlasso serve: --reload runs one worker: leave "
                                       "out --workers, or --reload\n")


def _cv_panel():
    """A cross-validation that takes seconds: FLASSO_CV on 300 rows, 40 factors, 300 assets."""
    import numpy as np

    rng = np.random.default_rng(0)
    t, m, n = 300, 40, 300
    returns = [["date", *[f"A{j}" for j in range(n)]]] + [
        [45000 + i, *rng.normal(0.0, 0.01, n).tolist()] for i in range(t)]
    factors = [["date", *[f"F{j}" for j in range(m)]]] + [
        [45000 + i, *rng.normal(0.0, 0.01, m).tolist()] for i in range(t)]
    return returns, factors


def _while_computing(server, body: dict) -> tuple[list[str], dict]:
    """POST ``body`` (a long worksheet function) and, once the server's log shows it started,
    GET the functions' metadata on a new connection: ``(the two requests in the order the
    server answered them, by its access log, the long answer)``."""
    import threading
    import time

    import httpx

    done: dict = {}

    def long_call():
        with httpx.Client(timeout=300) as http:
            done["response"] = http.post(f"{server.base}/xlwings/custom-functions-call",
                                         json=body)

    thread = threading.Thread(target=long_call)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while f'Function "{body["func_name"]}" called' not in server.log.read_text():
            assert time.monotonic() < deadline and thread.is_alive(), server.log.read_text()
            time.sleep(0.02)
        with httpx.Client(timeout=300) as http:  # (a new connection: any worker may take it)
            meta = http.get(f"{server.base}/xlwings/custom-functions-meta")
        assert meta.status_code == 200 and len(meta.json()["functions"]) == len(FUNCTIONS)
    finally:
        thread.join(timeout=300)
    assert done["response"].status_code == 200, done["response"].text
    answered = [("long" if "POST /xlwings/custom-functions-call" in line else "metadata")
                for line in server.log.read_text().splitlines()
                if "POST /xlwings/custom-functions-call" in line
                or "GET /xlwings/custom-functions-meta" in line]
    return answered, done["response"].json()


def test_a_computation_holds_its_worker_only(tmp_path, xlwings_version):
    """xlwings-server runs a worksheet function on its worker's event loop: with one worker a
    request sent while a cross-validation runs is answered after it; with ``--workers 2`` the
    other worker answers it at once. The cross-validation's answer is the add-in's own."""
    from tests_server._live import serve_argv, start
    from xl_factorlasso.udfs import FLASSO_CV

    returns, factors = _cv_panel()
    body = {"client": "Office.js", "version": xlwings_version, "runtime": "1.4",
            "func_name": "FLASSO_CV", "args": [returns, factors],
            "caller_address": "[Book1.xlsx]Sheet1!A1"}
    env = _env(tmp_path, XLWINGS_LICENSE_KEY=os.environ["XLWINGS_LICENSE_KEY"],
               XLWINGS_ENVIRONMENT="dev", OPENBLAS_NUM_THREADS="1")
    answers = {}
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        port = free_port()
        server = start([*serve_argv(port), "--workers", str(workers)], folder, env, port)
        try:
            answered, answers[workers] = _while_computing(server, body)
        finally:
            stop(server.proc)
        assert f"  {workers} worker" in server.log.read_text()
        # one worker: the metadata waits for the computation; two: the other one answers it
        assert answered == (["long", "metadata"] if workers == 1 else ["metadata", "long"])
    expected = FLASSO_CV(returns, factors)

    def cells(rows):  # (a blank cell is "" over HTTP and None in Python)
        return [[None if v == "" else v for v in row] for row in rows]

    for result in (answers[1]["result"], answers[2]["result"]):
        assert len(result) == len(expected) > 2 and result[0] == expected[0]
        for got, want in zip(cells(result[1:]), cells(expected[1:]), strict=True):
            numeric = [isinstance(w, float) for w in want]
            assert [g for g, n in zip(got, numeric, strict=True) if not n] == \
                [w for w, n in zip(want, numeric, strict=True) if not n]  # labels, marks
            assert np.allclose([g for g, n in zip(got, numeric, strict=True) if n],
                               [w for w, n in zip(want, numeric, strict=True) if n],
                               rtol=1e-10, atol=0.0)
