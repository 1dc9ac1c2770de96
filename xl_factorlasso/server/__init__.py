"""The xlwings Server add-in (optional extra ``server``): FLASSO_* and the ribbon over Office.js.

Install with ``pip install "path/to/xl_factorlasso-<version>-py3-none-any.whl[server]"`` (or
``pip install ".[server]"`` in a source checkout) and start with ``xl-factorlasso serve``.
The core, the desktop add-in and the CLI never need this: nothing outside this folder imports
xlwings-server, and this module imports neither xlwings nor xlwings-server when it is imported
(:func:`serve` does, after configuring the environment they read at import time).

Licensing: xlwings-server and xlwings' PRO engine (which every server request uses) are
dual-licensed, PolyForm Noncommercial 1.0.0 or a paid xlwings PRO licence. The server needs
``XLWINGS_LICENSE_KEY``: ``noncommercial`` under the PolyForm terms, otherwise a trial or paid key.

This folder is also the xlwings-server *project directory* (``XLWINGS_PROJECT_DIR``):

* ``custom_functions/`` re-exports exactly the ``FLASSO_*`` worksheet functions (:data:`FUNCTIONS`);
* ``custom_scripts/`` re-exports exactly the five ribbon scripts (xlwings-server calls any
  attribute of that package by name, decorated or not, so nothing else may be visible there);
* ``templates/manifest.xml`` (ribbon tab), ``templates/taskpane.html`` (the Help pane),
  ``static/js/ribbon.js`` (buttons -> scripts), ``static/js/auth.js`` (token for the custom
  provider), ``auth/custom/`` (the token provider), ``lifespan.py`` (refuses to start an
  unauthenticated server outside ``dev``), ``pyproject.toml`` (non-secret defaults) and
  ``.env.template`` (every setting a deployment sets).

xlwings-server puts this folder at the front of ``sys.path`` and imports names with a meaning
for it from here (``config.py``, ``lifespan.py``, ``routers/custom.py``, ``models/``,
``auth/<provider>/``, ``custom_functions``, ``custom_scripts``): add files under such names only
for that purpose, and put other Python code in the package, not in this folder.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AUTH_PROVIDERS",
    "CERT_FILE",
    "CORS_WILDCARD_WARNING",
    "DEFAULT_MAX_BODY_MB",
    "DEV",
    "FUNCTIONS",
    "FUNCTIONS_NAMESPACE",
    "KEY_FILE",
    "MAX_BODY_ENV",
    "PROJECT_DIR",
    "RIBBON",
    "SCRIPTS",
    "SERVE_ORIGINS_ENV",
    "TOKEN_ENV",
    "RibbonButton",
    "ServerSetupError",
    "allowed_origins",
    "check_settings",
    "deployment_problems",
    "find_certs",
    "functions_namespace",
    "max_body_bytes",
    "namespaced_formula",
    "new_token",
    "normalise_origin",
    "own_origins",
    "serve",
    "served_origins",
    "token_digests",
]

PROJECT_DIR = Path(__file__).resolve().parent

#: The worksheet functions the add-in registers (``xl_factorlasso.udfs.__all__``).
FUNCTIONS = (
    "FLASSO_BEST_LAMBDA", "FLASSO_BETA_HISTORY", "FLASSO_CLUSTERS", "FLASSO_COV", "FLASSO_CV",
    "FLASSO_FIT", "FLASSO_INTERCEPT", "FLASSO_MAXDIV", "FLASSO_NOTES", "FLASSO_PREDICT",
    "FLASSO_R2", "FLASSO_RESID_VOL", "FLASSO_RETURNS", "FLASSO_RISK", "FLASSO_RISK_ASSETS",
    "FLASSO_VERSION",
)
#: The namespace of the functions in prod (``functions_namespace`` of ``pyproject.toml``).
FUNCTIONS_NAMESPACE = "FACTORLASSO"
#: The ``@script`` entry points of :mod:`xl_factorlasso.ribbon` callable over HTTP.
SCRIPTS = ("refit", "refit_cv", "optimise_portfolio", "backtest", "clear_outputs")

#: xlwings-server's certificate convention (``mkcert localhost 127.0.0.1 ::1`` in ``certs/``).
CERT_FILE, KEY_FILE = "localhost+2.pem", "localhost+2-key.pem"
#: Environment variable (or .env key) with the SHA-256 digests of the accepted access tokens.
TOKEN_ENV = "XL_FACTORLASSO_TOKEN_SHA256"
DEV = "dev"
#: The auth providers with an implementation: ours (``auth/custom``) and xlwings-server's Entra ID.
AUTH_PROVIDERS = {
    "custom": f"access tokens, {TOKEN_ENV}",
    "entraid": "Microsoft Entra ID single sign-on, XLWINGS_AUTH_ENTRAID_CLIENT_ID and "
               "XLWINGS_AUTH_ENTRAID_TENANT_ID",
}
#: Request-body limit (environment or .env), in MB of 2**20 bytes; see :func:`max_body_bytes`.
MAX_BODY_ENV = "XL_FACTORLASSO_MAX_BODY_MB"
#: 8 MB: about 40 times the demo workbook's refit request (0.19 MB for 8,890 cells) and some
#: 375,000 filled cells at 22.3 bytes a cell (full-precision numbers): 10 years of daily returns
#: on 100 assets with 8 factors sends 5.9 MB.
DEFAULT_MAX_BODY_MB = 8.0
#: Set by :func:`serve` for the app: the origins the server itself is reached at.
SERVE_ORIGINS_ENV = "XL_FACTORLASSO_SERVE_ORIGINS"


@dataclass(frozen=True)
class RibbonButton:
    """One button of the "Factor LASSO" tab: the desktop template's tab, button for button
    (``workbook_template/src/customUI14.xml``: same groups, labels and control ids)."""

    group: str  # group label
    control_id: str  # manifest <Control id> (= the desktop customUI button id)
    label: str
    action: str | None  # manifest <FunctionName> (ExecuteFunction); None: shows the task pane
    script: str | None  # the @script it runs


RIBBON = (
    RibbonButton("Factor model", "FactorLassoRefit", "Refit", "flasso-refit", "refit"),
    RibbonButton("Factor model", "FactorLassoCrossValidate", "Cross-validate", "flasso-refit-cv",
                 "refit_cv"),
    RibbonButton("Portfolio", "FactorLassoOptimise", "Optimise portfolio",
                 "flasso-optimise-portfolio", "optimise_portfolio"),
    RibbonButton("Portfolio", "FactorLassoBacktest", "Backtest", "flasso-backtest", "backtest"),
    RibbonButton("Workbook", "FactorLassoClear", "Clear outputs", "flasso-clear-outputs",
                 "clear_outputs"),
    RibbonButton("Workbook", "FactorLassoHelp", "Help", None, None),
)


class ServerSetupError(RuntimeError):
    """The server cannot start as configured; the message says what to change."""


# --------------------------------------------------------------------------- function names
# Office.js names every custom function NAMESPACE.FUNCTION, so a formula written for the
# desktop add-in (=FLASSO_FIT(...), the xlwings VBA wrappers) is #NAME? under this add-in and
# the other way round: a workbook's formulas are written for one add-in (docs/functions.md).
def functions_namespace(namespace: str | None = FUNCTIONS_NAMESPACE,
                        environment: str = "prod") -> str:
    """The namespace Excel shows before the add-in's functions (``FACTORLASSO.FLASSO_FIT``).

    xlwings-server's rule (its manifest's ``Functions.Namespace``): the configured
    ``functions_namespace`` in capitals, followed outside ``prod`` by ``_<ENVIRONMENT>``
    (``FACTORLASSO_DEV``), so that several environments can be installed side by side.

    Parameters
    ----------
    namespace : str, optional
        ``settings.functions_namespace`` (``XLWINGS_FUNCTIONS_NAMESPACE``).
    environment : str, default "prod"
        ``settings.environment`` (``XLWINGS_ENVIRONMENT``).

    Returns
    -------
    str
    """
    ns = (namespace or "").upper()
    if environment == "prod":
        return ns
    env = environment.upper()
    return f"{ns}_{env}" if ns else env


def namespaced_formula(formula: str, namespace: str, *, stored: bool = False) -> str:
    """``formula`` with every ``FLASSO_*`` call made a call of the server add-in's function.

    As typed in a cell: ``FLASSO_FIT(`` -> ``FACTORLASSO.FLASSO_FIT(``. As an .xlsx file keeps
    it (``stored=True``): ``_xldudf_FACTORLASSO_FLASSO_FIT(``, the prefix and the ``_`` in place
    of the dot with which Excel saves an Office.js custom function, and which it maps back to
    the function of the loaded add-in with that namespace. Calls already in the namespace are
    rewritten only from the typed to the stored form; text in quotes is left as it is.

    Parameters
    ----------
    formula : str
        Written for the desktop add-in (``=FLASSO_FIT(FL_RETURNS, FL_FACTORS)``) or for this
        add-in as typed (``=FACTORLASSO.FLASSO_FIT(...)``).
    namespace : str
        :func:`functions_namespace` of the server the workbook will be used with.
    stored : bool, default False

    Returns
    -------
    str
    """
    ns = namespace.upper()
    typed = rf"(?:{re.escape(ns)}\.)?" if ns else ""
    call = re.compile(rf'("(?:[^"]|"")*")|(?<![\w.]){typed}(FLASSO_\w+)(?=\s*\()',
                      re.IGNORECASE)

    def name(m: re.Match) -> str:
        if m.group(1) is not None:  # a quoted text
            return m.group(1)
        fn = m.group(2).upper()
        if stored:
            return f"_xldudf_{ns}_{fn}" if ns else f"_xldudf_{fn}"
        return f"{ns}.{fn}" if ns else fn

    return call.sub(name, formula)


# --------------------------------------------------------------------------- access tokens
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def new_token() -> tuple[str, str]:
    """A fresh access token for the ``custom`` auth provider and its SHA-256 digest.

    The user keeps the token (entered once in the add-in's Help pane); the server is given only
    the digest (``XL_FACTORLASSO_TOKEN_SHA256``), so its configuration holds no usable secret.
    """
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _dotenv_file() -> Path:
    """The .env file xlwings-server reads (``DOTENV_PATH``, else the project directory's)."""
    return Path(os.environ.get("DOTENV_PATH") or PROJECT_DIR / ".env")


def _dotenv_value(key: str, env_file: Path | None = None) -> str | None:
    path = env_file or _dotenv_file()
    if not path.is_file():
        return None
    from dotenv import dotenv_values  # a dependency of xlwings-server

    return dotenv_values(path).get(key)


def token_digests(env_file: Path | None = None) -> list[str]:
    """The accepted token digests: the environment variable, else the .env file.

    Comma- or space-separated hex SHA-256 digests; anything else raises ServerSetupError.
    """
    raw = os.environ.get(TOKEN_ENV)
    if raw is None:
        raw = _dotenv_value(TOKEN_ENV, env_file) or ""
    digests = [d.lower() for d in re.split(r"[\s,]+", raw.strip()) if d]
    bad = [d for d in digests if not _HEX64.match(d)]
    if bad:
        raise ServerSetupError(
            f"{TOKEN_ENV} must list SHA-256 hex digests (64 characters), not {bad[0][:12]!r}...; "
            "make one with `xl-factorlasso serve --new-token`"
        )
    return digests


# --------------------------------------------------------------------------- policy
_GUID = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
_MULTITENANT_IDS = ("common", "organizations", "consumers")
_ORIGIN = re.compile(r"^(https?)://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?$")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def normalise_origin(origin: str) -> str | None:
    """``origin`` as browsers send it in the ``Origin`` header, or None if it is not one.

    Lower case, no trailing slash, no default port (``https://Host:443/`` ->
    ``https://host``); a path, query, user name or any scheme but http(s) is not an origin.
    """
    text = str(origin).strip().lower().removesuffix("/")
    match = _ORIGIN.match(text)
    if match is None:
        return None
    scheme, host, port = match.groups()
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return f"{scheme}://{host}{port or ''}"


def own_origins(hostname: str | None = None, served: Iterable[str] = ()) -> list[str]:
    """The origins the add-in's own pages are loaded from: ``https://<XLWINGS_HOSTNAME>`` and
    the ``served`` origins (what :func:`serve` listens on, passed in ``SERVE_ORIGINS_ENV``)."""
    candidates = [f"https://{hostname}"] if hostname else []
    candidates += list(served)
    found = [normalise_origin(o) for o in candidates]
    return list(dict.fromkeys(o for o in found if o))


def allowed_origins(configured: Iterable[str] | None, hostname: str | None = None,
                    served: Iterable[str] = ()) -> list[str]:
    """The CORS allow-list the server runs with: its own origins, then the configured ones
    (``XLWINGS_CORS_ALLOW_ORIGINS``, normalised); ``["*"]`` if that is configured.

    Invalid entries are left out here; :func:`deployment_problems` refuses them at startup.
    """
    configured = list(configured or [])
    if "*" in configured:
        return ["*"]
    extra = [normalise_origin(o) for o in configured]
    return list(dict.fromkeys([*own_origins(hostname, served), *(o for o in extra if o)]))


def served_origins() -> list[str]:
    """The origins :func:`serve` listens on (``SERVE_ORIGINS_ENV``; empty under plain uvicorn)."""
    return [o for o in re.split(r"[\s,]+", os.environ.get(SERVE_ORIGINS_ENV, "")) if o]


CORS_WILDCARD_WARNING = (
    'XLWINGS_CORS_ALLOW_ORIGINS is ["*"]: any web page opened on this machine can call this dev '
    "server; list the origins that need access instead (the add-in itself needs none)"
)


def max_body_bytes(env_file: Path | None = None) -> int:
    """The request-body limit in bytes: ``XL_FACTORLASSO_MAX_BODY_MB`` (environment, else the
    .env file; megabytes of 2**20 bytes, fractions allowed), default :data:`DEFAULT_MAX_BODY_MB`.

    Anything but a number in [0.01, 1024] raises ServerSetupError.
    """
    raw = os.environ.get(MAX_BODY_ENV)
    if raw is None:
        raw = _dotenv_value(MAX_BODY_ENV, env_file)
    if raw is None or not str(raw).strip():
        return int(DEFAULT_MAX_BODY_MB * 2**20)
    try:
        megabytes = float(raw)
    except ValueError:
        megabytes = float("nan")
    if not 0.01 <= megabytes <= 1024:  # also false for nan
        raise ServerSetupError(
            f"{MAX_BODY_ENV} must be a number of megabytes between 0.01 and 1024 (default "
            f"{DEFAULT_MAX_BODY_MB:g}), not {raw!r}"
        )
    return int(megabytes * 2**20)


def deployment_problems(environment: str, auth_providers: Iterable[str] | None,
                        digests: Iterable[str] = (), *, entraid_client_id: str | None = None,
                        entraid_tenant_id: str | None = None, entraid_multitenant: bool = False,
                        required_roles: Iterable[str] | None = (),
                        cors_allow_origins: Iterable[str] | None = (), host: str | None = None,
                        enable_wasm: bool = False) -> list[str]:
    """Why a server with these settings must not start (empty: it may).

    Outside the ``dev`` environment every request must be authenticated: at least one auth
    provider, and the ``custom`` provider only with at least one token digest (the provider is
    ours, ``auth/custom``, and accepts nothing without them). In every environment, settings
    under which every call fails are refused: an unknown provider (every call would answer
    500), Entra ID without a valid client id and tenant id (every sign-in fails), required roles
    when only token users (who have no roles) can sign in, and xlwings Wasm mode (the add-in
    runs on the server). CORS: every ``cors_allow_origins`` entry must be an origin
    (``https://host[:port]``; ``"null"`` would admit sandboxed pages of any site), and ``"*"``
    is refused outside ``dev`` and, when ``host`` is known, on an interface that is not
    loopback.
    """
    providers = list(auth_providers or [])
    problems = []
    if environment != DEV and not providers:
        problems.append(
            f"XLWINGS_ENVIRONMENT is {environment!r} and no authentication is configured. "
            'Outside "dev" the add-in requires XLWINGS_AUTH_PROVIDERS: ["entraid"] (Microsoft '
            "Entra ID single sign-on; also set XLWINGS_AUTH_ENTRAID_CLIENT_ID and "
            'XLWINGS_AUTH_ENTRAID_TENANT_ID) or ["custom"] (access tokens; set '
            f"{TOKEN_ENV}, see `xl-factorlasso serve --new-token`). For a local test only, "
            "set XLWINGS_ENVIRONMENT=dev."
        )
    unknown = [p for p in providers if p not in AUTH_PROVIDERS]
    if unknown:
        known = "; ".join(f'"{name}" ({what})' for name, what in AUTH_PROVIDERS.items())
        problems.append(
            f"XLWINGS_AUTH_PROVIDERS lists {', '.join(map(repr, unknown))}, which is not an "
            f"auth provider: every call would fail. The known providers are {known}."
        )
    if "custom" in providers and not list(digests):
        problems.append(
            f'XLWINGS_AUTH_PROVIDERS includes "custom" but {TOKEN_ENV} lists no token digest: '
            "every request would be refused. Run `xl-factorlasso serve --new-token`, give the "
            f"digest to the server ({TOKEN_ENV}) and the token to the users."
        )
    if "entraid" in providers:
        problems += _entraid_problems(entraid_client_id, entraid_tenant_id, entraid_multitenant)
    if list(required_roles or []) and providers and set(providers) <= {"custom"}:
        problems.append(
            "XLWINGS_AUTH_REQUIRED_ROLES is set but the only auth provider is \"custom\", whose "
            "token users have no roles: every call would be refused (403). Remove the roles or "
            'add "entraid".'
        )
    problems += _cors_problems(list(cors_allow_origins or []), environment, host)
    if enable_wasm:
        problems.append(
            "XLWINGS_ENABLE_WASM is on: the add-in runs its Python on the server and ships no "
            "Wasm build; remove the setting."
        )
    return problems


def _entraid_problems(client_id: str | None, tenant_id: str | None,
                      multitenant: bool) -> list[str]:
    problems = []
    if not client_id or not _GUID.match(client_id.strip()):
        problems.append(
            'XLWINGS_AUTH_PROVIDERS includes "entraid" but XLWINGS_AUTH_ENTRAID_CLIENT_ID is '
            f"{'not set' if not client_id else repr(client_id)}: it must be the application "
            "(client) id of the Entra ID app registration, a GUID; every sign-in would fail."
        )
    tenant = (tenant_id or "").strip()
    if multitenant:
        ok, expected = (_GUID.match(tenant) or tenant.lower() in _MULTITENANT_IDS,
                        "a GUID, or common, organizations or consumers")
    else:
        ok, expected = _GUID.match(tenant), "the directory (tenant) id, a GUID"
    if not ok:
        problems.append(
            'XLWINGS_AUTH_PROVIDERS includes "entraid" but XLWINGS_AUTH_ENTRAID_TENANT_ID is '
            f"{'not set' if not tenant else repr(tenant_id)}: it must be {expected}; every "
            "sign-in would fail."
        )
    return problems


def _cors_problems(origins: list[str], environment: str, host: str | None) -> list[str]:
    problems = []
    bad = [o for o in origins if o != "*" and normalise_origin(o) is None]
    if bad:
        problems.append(
            f"XLWINGS_CORS_ALLOW_ORIGINS lists {', '.join(map(repr, bad))}, which is not an "
            'origin: list origins such as "https://excel.example.com" (scheme, host and '
            'optional port; no path; never "null"), or leave it empty (the add-in itself needs '
            "no cross-origin access)."
        )
    if "*" in origins and environment != DEV:
        problems.append(
            'XLWINGS_CORS_ALLOW_ORIGINS is ["*"] outside "dev": any web page a user opens could '
            "call the server with the user's browser. List the origins that need access, or "
            "leave it empty (the add-in itself needs no cross-origin access)."
        )
    elif "*" in origins and host is not None and not _is_loopback(host):
        problems.append(
            f'XLWINGS_CORS_ALLOW_ORIGINS is ["*"] on {host}, which is not a loopback interface: '
            "any web page could call this dev server. Use it only with --host 127.0.0.1, or "
            "list the origins that need access."
        )
    return problems


def check_settings(settings, host: str | None = None) -> None:
    """Raise ServerSetupError when xlwings-server ``settings`` break :func:`deployment_problems`
    (``host``: the interface :func:`serve` listens on, when known) or the body limit
    (:func:`max_body_bytes`) is not a valid number."""
    providers = list(settings.auth_providers or [])
    digests = token_digests() if "custom" in providers else []
    problems = deployment_problems(
        settings.environment, providers, digests,
        entraid_client_id=settings.auth_entraid_client_id,
        entraid_tenant_id=settings.auth_entraid_tenant_id,
        entraid_multitenant=settings.auth_entraid_multitenant,
        required_roles=settings.auth_required_roles,
        cors_allow_origins=settings.cors_allow_origins,
        host=host,
        enable_wasm=settings.enable_wasm,
    )
    if problems:
        raise ServerSetupError(" ".join(problems))
    max_body_bytes()


# --------------------------------------------------------------------------- certificates
def find_certs(dirs: Iterable[Path]) -> tuple[Path, Path] | None:
    """``(certfile, keyfile)`` from the first directory holding both, else None."""
    for d in dirs:
        cert, key = Path(d) / CERT_FILE, Path(d) / KEY_FILE
        if cert.is_file() and key.is_file():
            return cert, key
    return None


def _listen_origins(scheme: str, host: str, port: int) -> list[str]:
    """The origins a browser uses for a server on ``host:port`` (none for 0.0.0.0 or ::: the
    public name is then XLWINGS_HOSTNAME)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        return []
    url_host = f"[{host}]" if address is not None and address.version == 6 else host
    origins = [f"{scheme}://{url_host}:{port}"]
    if _is_loopback(host):
        origins += [f"{scheme}://localhost:{port}", f"{scheme}://127.0.0.1:{port}"]
    return list(dict.fromkeys(origins))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- serve
def _import_xlwings_for_server():
    """Import xlwings in server mode; a missing or rejected licence key is a ServerSetupError."""
    loaded = sys.modules.get("xlwings")
    if loaded is not None and not getattr(loaded.func, "__module__", "").startswith("xlwings.pro"):
        raise ServerSetupError(
            "xlwings was imported in this process before the server was configured, so its "
            "function decorators are the desktop ones; start the server in a fresh process "
            "(`xl-factorlasso serve`)"
        )
    try:
        import xlwings
    except Exception as err:  # noqa: BLE001 - xlwings.LicenseError, not importable before
        if type(err).__name__ != "LicenseError":
            raise
        sys.modules.pop("xlwings", None)
        if "couldn't find" in str(err).lower():
            raise ServerSetupError(
                "no xlwings licence key is set. The server add-in uses xlwings PRO code, "
                "dual-licensed under PolyForm Noncommercial 1.0.0 or a paid xlwings PRO licence: "
                'set XLWINGS_LICENSE_KEY="noncommercial" for non-commercial use, or a trial/paid '
                "key, in the environment or in the .env file (see docs/server.md)"
            ) from None
        raise ServerSetupError(f"the xlwings licence key was rejected: {err}") from None
    if not xlwings.__pro__:
        raise ServerSetupError("the xlwings licence key does not unlock xlwings PRO (server)")
    return xlwings


def serve(host: str = "127.0.0.1", port: int = 8000, *, reload: bool = False,
          certs: str | os.PathLike | None = None, env_file: str | os.PathLike | None = None,
          workers: int = 1, out: Callable[[str], None] = print) -> int:
    """Run xlwings-server (uvicorn) with this project directory; blocks until stopped.

    ``env_file``: the .env to read (default: ``./.env`` if it exists, else none). ``certs``: a
    directory with ``localhost+2.pem`` and ``localhost+2-key.pem`` (default: ``./certs``, then
    ``certs/`` in the project directory); HTTPS when found, plain HTTP otherwise (fine behind a
    TLS-terminating proxy; Office.js itself only loads add-ins over HTTPS). ``workers``: server
    processes. xlwings-server runs a script or a worksheet function on its worker's event loop,
    so a worker that computes (a fit, a cross-validation, a backtest) answers no other request
    until it is done, not even the task pane's files: ``workers`` computations run at once, and
    the others wait for one to end.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ServerSetupError(f"--workers must be a whole number >= 1, got {workers!r}")
    if reload and workers > 1:
        raise ServerSetupError("--reload runs one worker: leave out --workers, or --reload")
    import importlib.util

    if importlib.util.find_spec("xlwings_server") is None:
        raise ServerSetupError(
            "the server add-in needs the optional extra 'server': "
            "pip install \"path/to/xl_factorlasso-<version>-py3-none-any.whl[server]\" (the "
            "wheel built by make dist), or pip install \".[server]\" in a source checkout"
        )
    # xlwings-server and xlwings read these when they are imported: set them first.
    if env_file is not None:
        env_path = Path(env_file).resolve()
        if not env_path.is_file():
            raise ServerSetupError(f"no such .env file: {env_path}")
        os.environ["DOTENV_PATH"] = str(env_path)
    elif "DOTENV_PATH" not in os.environ and Path(".env").is_file():
        os.environ["DOTENV_PATH"] = str(Path(".env").resolve())
    os.environ["XLWINGS_PROJECT_DIR"] = str(PROJECT_DIR)
    os.environ["XLWINGS_ON_SERVER"] = "true"

    from xlwings_server.config import settings  # copies a .env licence key into the env

    xlwings = _import_xlwings_for_server()
    check_settings(settings, host)

    cert_dirs = [Path(certs)] if certs is not None else [Path("certs"), PROJECT_DIR / "certs"]
    if certs is not None and find_certs(cert_dirs) is None:
        raise ServerSetupError(f"{certs} does not hold both {CERT_FILE} and {KEY_FILE}")
    found = find_certs(cert_dirs)
    scheme = "https" if found else "http"
    # the app (lifespan.py, possibly in a reloader's child process) reads its own origins here
    os.environ[SERVE_ORIGINS_ENV] = ",".join(_listen_origins(scheme, host, port))
    origins = allowed_origins(settings.cors_allow_origins, settings.hostname, served_origins())

    import uvicorn

    env_note = str(_dotenv_file()) if _dotenv_file().is_file() else "none"
    out(f"xl-factorlasso server add-in (xlwings {xlwings.__version__}, project {PROJECT_DIR})")
    out(f"  environment {settings.environment}, auth providers "
        f"{list(settings.auth_providers or []) or 'none'}, .env {env_note}")
    namespace = functions_namespace(settings.functions_namespace, settings.environment)
    out(f"  worksheet functions: ={namespaced_formula('FLASSO_FIT(', namespace)}...) and the "
        f"{len(FUNCTIONS) - 1} others")
    out(f"  manifest: {scheme}://{host}:{port}{settings.app_path}/manifest/download")
    if not found:
        out("  no certificates (certs/localhost+2.pem, certs/localhost+2-key.pem): serving plain "
            "HTTP; Office.js add-ins need HTTPS (a TLS proxy in front, or mkcert certificates)")
    out(f"  request bodies up to {max_body_bytes() / 2**20:g} MB ({MAX_BODY_ENV}); "
        f"cross-origin calls from: {', '.join(origins) or 'no other origin'}")
    out(f"  {workers} worker{'s' if workers > 1 else ''}: each computes one request at a time "
        "(a fit, a cross-validation, a backtest) and answers nothing else meanwhile"
        + ("; --workers N for more at once" if workers == 1 else ""))
    if settings.environment == DEV and not settings.auth_providers and not _is_loopback(host):
        out(f"  WARNING: dev environment without authentication, reachable on {host}")
    if origins == ["*"]:
        out(f"  WARNING: {CORS_WILDCARD_WARNING}")
    uvicorn.run(
        "xlwings_server.main:main_app",
        host=host,
        port=port,
        lifespan="on",  # the startup checks and the request guard live in the lifespan
        reload=reload,
        reload_dirs=[str(PROJECT_DIR.parent)] if reload else None,  # the whole package
        workers=workers,
        ssl_certfile=str(found[0]) if found else None,
        ssl_keyfile=str(found[1]) if found else None,
    )
    return 0
