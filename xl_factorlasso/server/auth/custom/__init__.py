"""The ``custom`` auth provider: static access tokens, checked against SHA-256 digests.

xlwings-server imports ``auth.custom`` from the project directory when
``XLWINGS_AUTH_PROVIDERS`` contains ``"custom"`` (its own ``custom`` is a placeholder that accepts
the literal ``test-token``; this one replaces it). The client sends ``Authorization: Bearer
<token>`` (``static/js/auth.js``; the token is entered once in the Help pane). The server holds
only the digests, in ``XL_FACTORLASSO_TOKEN_SHA256`` (environment or .env); with none configured
every request is refused, and the server does not start (``lifespan.py``).
"""

import hashlib
import secrets

from fastapi import status
from fastapi.exceptions import HTTPException
from xlwings_server.models import User

from xl_factorlasso.server import token_digests

__all__ = ["validate_token"]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=status.HTTP_401_UNAUTHORIZED, detail=detail)


async def validate_token(token_string: str) -> User:
    token = (token_string or "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        raise _unauthorized("Custom Auth Error: no access token (Authorization header)")
    digest = hashlib.sha256(token.encode()).hexdigest()
    # compare against every digest (no early exit): the time taken does not depend on which
    matches = [secrets.compare_digest(digest, known) for known in token_digests()]
    if not any(matches):
        raise _unauthorized("Custom Auth Error: Couldn't validate token")
    return User(id=f"token-{digest[:12]}", name=f"token {digest[:8]}")
