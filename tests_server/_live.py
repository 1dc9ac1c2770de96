"""Live servers for the tests: started on 127.0.0.1 by the test, stopped by PID, bounded waits.

Every process started here is stopped with :func:`stop` (SIGTERM, then SIGKILL after a bounded
wait) in a ``finally`` of the test or fixture that started it. :func:`raw_request` sends bytes
exactly as given (no client-side path normalisation), so a test knows what went on the wire.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = ROOT / "xl_factorlasso" / "server"
STARTUP_SECONDS = 60


def clean_env(home: Path, **updates) -> dict:
    """A clean environment: no xlwings/xlwings-server settings, a HOME without xlwings.conf."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XLWINGS_", "XL_FACTORLASSO_")) and k != "DOTENV_PATH"}
    env.update(HOME=str(home), MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    env.update({k: v for k, v in updates.items() if v is not None})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def first_answer(http, url: str, proc: subprocess.Popen, log: Path):
    """GET url as soon as the server answers (bounded); fail early if the process died."""
    import httpx  # installed with xlwings-server (this directory is skipped without it)

    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return http.get(url)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                pytest.fail(f"no answer within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)


@dataclass
class LiveServer:
    """A server process on 127.0.0.1:``port`` (plain HTTP) and its combined output."""

    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """Resident memory of the server process (Linux /proc), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS line")


def start(argv: list[str], folder: Path, env: dict, port: int) -> LiveServer:
    """Start ``argv`` (a server on ``port``) in ``folder``; return once it answers ``/``.

    The caller stops it with ``stop(server.proc)`` in a ``finally``.
    """
    import httpx

    log = folder / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        with httpx.Client(timeout=30) as http:
            first_answer(http, f"http://127.0.0.1:{port}/", proc, log)
    except BaseException:
        stop(proc)
        raise
    return LiveServer(proc, port, log)


def serve_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "xl_factorlasso", "serve", "--host", "127.0.0.1",
            "--port", str(port)]


def uvicorn_argv(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "xlwings_server.main:main_app", "--host",
            "127.0.0.1", "--port", str(port)]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; the last one wins
    body: bytes


def raw_request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes = b"", timeout: float = 30) -> RawResponse:
    """One HTTP/1.1 request with ``path`` sent byte for byte as given; the whole response."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        return read_response(s)


def read_response(s: socket.socket) -> RawResponse:
    """Read a response until the server closes the connection.

    A server that answers before reading the whole request body closes with unread data, so
    the kernel ends the connection with a reset; what arrived before it is still read first.
    """
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        if b"\r\n\r\n" not in data:
            raise
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return RawResponse(int(status_line.split()[1]), headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out
