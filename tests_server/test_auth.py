"""Authentication: required outside dev, the token provider, and the startup refusal."""

from __future__ import annotations

import hashlib

import pytest

from xl_factorlasso.server import (
    TOKEN_ENV,
    ServerSetupError,
    deployment_problems,
    new_token,
    token_digests,
)


@pytest.fixture
def token(monkeypatch, server_settings):
    """Auth required: the custom provider with one accepted token."""
    token, digest = new_token()
    other = hashlib.sha256(b"someone else").hexdigest()
    monkeypatch.setenv(TOKEN_ENV, f"{other}, {digest}")
    monkeypatch.setattr(server_settings, "auth_providers", ["custom"])
    return token


def _function_call(version: str) -> dict:
    return {"client": "Office.js", "version": version, "runtime": "1.4",
            "func_name": "FLASSO_VERSION", "args": []}


def test_401_without_credentials_when_auth_is_required(client, token, xlwings_version, demo_xlsx):
    from tests.fake_office_client import book_payload

    call = _function_call(xlwings_version)
    r = client.post("/xlwings/custom-functions-call", json=call)
    assert r.status_code == 401
    assert r.json() == {"detail": "Custom Auth Error: no access token (Authorization header)"}
    r = client.post("/xlwings/custom-scripts-call/refit",
                    json=book_payload(demo_xlsx, xlwings_version))
    assert r.status_code == 401
    for wrong in ("test-token", "Bearer test-token", f"Bearer {token}x", token[:-1]):
        r = client.post("/xlwings/custom-functions-call", json=call,
                        headers={"Authorization": wrong})
        assert r.status_code == 401, wrong
        assert r.json() == {"detail": "Custom Auth Error: Couldn't validate token"}


def test_valid_token_is_accepted(client, token, xlwings_version):
    import xl_factorlasso

    for header in (f"Bearer {token}", token):
        r = client.post("/xlwings/custom-functions-call", json=_function_call(xlwings_version),
                        headers={"Authorization": header})
        assert r.status_code == 200, r.text
        assert r.json()["result"] == [[xl_factorlasso.__version__]]


def test_custom_provider_without_digests_refuses_everyone(client, monkeypatch, server_settings,
                                                          xlwings_version):
    monkeypatch.setenv(TOKEN_ENV, "")
    monkeypatch.setattr(server_settings, "auth_providers", ["custom"])
    r = client.post("/xlwings/custom-functions-call", json=_function_call(xlwings_version),
                    headers={"Authorization": "Bearer test-token"})
    assert r.status_code == 401


def test_office_needs_metadata_and_manifest_before_signing_in(client, token):
    """Office loads these anonymously; they hold no data (calls are what is protected)."""
    for path in ("/manifest", "/xlwings/custom-functions-meta", "/xlwings/custom-scripts-meta",
                 "/taskpane.html"):
        assert client.get(path).status_code == 200, path


# --------------------------------------------------------------------------- startup policy
ENTRA = {"entraid_client_id": "0b17fe4c-c241-40a4-818b-982893871d8c",
         "entraid_tenant_id": "7efc2c74-5575-4681-aa9b-557c5c661a5a"}


@pytest.mark.parametrize(("environment", "providers", "digests", "ok"), [
    ("dev", [], [], True),
    ("prod", [], [], False),
    ("staging", None, [], False),
    ("qa", ["entraid"], [], True),
    ("prod", ["custom"], [], False),
    ("prod", ["custom"], ["ab" * 32], True),
    ("dev", ["custom"], [], False),  # every request would be refused: say so at startup
    ("prod", ["entraid", "custom"], ["ab" * 32], True),
])
def test_deployment_policy(environment, providers, digests, ok):
    problems = deployment_problems(environment, providers, digests, **ENTRA)
    assert (problems == []) == ok, problems


def test_token_digests_are_validated(monkeypatch, tmp_path):
    token, digest = new_token()
    assert hashlib.sha256(token.encode()).hexdigest() == digest and len(token) >= 40
    monkeypatch.setenv(TOKEN_ENV, f" {digest.upper()} ,\n{'0' * 64}")
    assert token_digests() == [digest, "0" * 64]
    monkeypatch.setenv(TOKEN_ENV, token)  # the token itself, not its digest
    with pytest.raises(ServerSetupError, match="SHA-256 hex digests"):
        token_digests()
    monkeypatch.delenv(TOKEN_ENV)
    env = tmp_path / "settings.env"
    env.write_text(f'{TOKEN_ENV}="{digest}"\n')
    assert token_digests(env) == [digest]


def test_server_refuses_to_start_unauthenticated_outside_dev(app, monkeypatch, server_settings,
                                                             xlwings_version):
    """lifespan.py: however the app is started (serve, uvicorn, gunicorn), not without auth."""
    from fastapi.testclient import TestClient

    monkeypatch.setattr(server_settings, "environment", "prod")
    monkeypatch.setattr(server_settings, "auth_providers", [])
    with pytest.raises(ServerSetupError, match="no authentication is configured"):
        with TestClient(app):
            pass
    monkeypatch.setattr(server_settings, "auth_providers", ["custom"])
    monkeypatch.setenv(TOKEN_ENV, "")
    with pytest.raises(ServerSetupError, match="lists no token digest"):
        with TestClient(app):
            pass
    token, digest = new_token()
    monkeypatch.setenv(TOKEN_ENV, digest)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post("/xlwings/custom-functions-call", json=_function_call(xlwings_version))
        assert r.status_code == 401  # prod: a well-formed call needs a token
