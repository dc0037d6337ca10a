"""Who may call the HTTP API (/v1/*): bearer tokens and roles (issue 8).

  Authorization: Bearer <token>

- No token, or a token the switch does not know: 401 with `WWW-Authenticate: Bearer`.
- A known token whose role may not use the method: 403 (an auditor or a participant writing).
- A participant asking for another participant's payment or instruction: 404, exactly as for a
  payment that does not exist, so that nobody learns which UETRs or instruction ids exist.

Every refusal is the JSON of every other refusal, {"reason_code", "error"} (AG01, "transaction
forbidden", for 401 and 403; MS03 for the 404, as for an unknown payment), and is counted in
switch_api_refusals_total{reason} (a fixed set of reasons). Other paths (/healthz, /readyz,
/metrics, the partner endpoint) are not touched here: the partner endpoint has its own
authentication, and the health and metrics endpoints carry no personal data.

Tokens are stored as the SHA-256 of the token (config/operators.toml or MEKONG_API_TOKENS_FILE);
every stored hash is compared in constant time (hmac.compare_digest, no early exit), so the answer
time says nothing about which or how many tokens are known.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from aiohttp import web

from switch.config import ApiToken

log = logging.getLogger(__name__)

API_PREFIX: Final = "/v1/"
TOKEN_PREFIX: Final = "mekong_"  # makes a leaked token easy to find by secret scanners
token_bytes: Final = 32
authorization_chars_max: Final = 512  # a longer Authorization header is not one of our tokens
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(StrEnum):
    OPERATOR = "operator"
    AUDITOR = "auditor"
    PARTICIPANT = "participant"


class Refusal(StrEnum):
    """The label of switch_api_refusals_total{reason}: a fixed set."""

    MISSING_TOKEN = "missing_token"
    INVALID_TOKEN = "invalid_token"
    ROLE_FORBIDDEN = "role_forbidden"
    NOT_OWN = "not_own"  # a participant asked for another's payment (answered 404)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role; `participant` only for participant roles."""

    name: str
    role: Role
    participant: str | None = None

    def may(self, method: str) -> bool:
        """The role model: operators may use every method; auditors and participants only read."""
        return self.role is Role.OPERATOR or method in READ_METHODS

    def may_see(self, participant: str) -> bool:
        """Whether this caller may see a payment or instruction of `participant`."""
        return self.role is not Role.PARTICIPANT or participant == self.participant


def principal_of(token: ApiToken) -> Principal:
    if token.role.startswith("participant:"):
        return Principal(token.name, Role.PARTICIPANT, token.role.removeprefix("participant:"))
    return Principal(token.name, Role(token.role))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64, with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(token_bytes)


class ApiTokens:
    """The known tokens (their hashes) and who holds each."""

    def __init__(self, tokens: Sequence[ApiToken]) -> None:
        self._entries = [(bytes.fromhex(t.sha256), principal_of(t)) for t in tokens]

    def authenticate(self, token: str) -> Principal | None:
        presented = hashlib.sha256(token.encode("utf-8")).digest()
        found: Principal | None = None
        for digest, principal in self._entries:  # every entry, whichever matches
            if hmac.compare_digest(presented, digest):
                found = principal
        return found


API_TOKENS = web.AppKey("api_tokens", ApiTokens)
PRINCIPAL = web.RequestKey("api_principal", Principal)  # who is calling, on /v1 routes
REFUSALS = web.AppKey("api_refusals", Any)  # a prometheus Counter with the label `reason`


def _refuse(request: web.Request, status: int, reason: Refusal, reason_code: str, message: str) -> web.Response:
    counter = request.app.get(REFUSALS)
    if counter is not None:
        counter.labels(reason.value).inc()
    principal = request.get(PRINCIPAL)
    # who (the token's name, never the token), what and why; the path holds no personal data
    log.info("API refused %s %s: %s (%s)", request.method, request.path[:200], reason.value,
             principal.name if principal is not None else "no known token")
    response = web.json_response({"reason_code": reason_code, "error": message}, status=status)
    if status == 401:  # RFC 6750 section 3: no error code when no credentials were sent
        challenge = 'Bearer realm="mekong"' if reason is Refusal.MISSING_TOKEN else 'Bearer realm="mekong", error="invalid_token"'
        response.headers["WWW-Authenticate"] = challenge
    return response


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header or len(header) > authorization_chars_max:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@web.middleware
async def require_token(request: web.Request, handler: Any) -> web.StreamResponse:
    """On /v1/* only: a known bearer token whose role may use the method, else 401 / 403."""
    if not request.path.startswith(API_PREFIX):
        return await handler(request)
    if "Authorization" not in request.headers:
        return _refuse(request, 401, Refusal.MISSING_TOKEN, "AG01", "a bearer token is required (Authorization: Bearer ...)")
    token = _bearer(request)
    principal = request.app[API_TOKENS].authenticate(token) if token is not None else None
    if principal is None:
        return _refuse(request, 401, Refusal.INVALID_TOKEN, "AG01", "the bearer token is not valid")
    request[PRINCIPAL] = principal
    if not principal.may(request.method):
        return _refuse(request, 403, Refusal.ROLE_FORBIDDEN, "AG01", f"role {principal.role} may not {request.method} here")
    return await handler(request)


def may_see(request: web.Request, participant: str) -> bool:
    """For the /v1 handlers: whether the caller may see a payment or instruction of
    `participant`. When not, the handler answers 404 as for one that does not exist; the refusal
    is counted here."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is not None and principal.may_see(participant):
        return True
    counter = request.app.get(REFUSALS)
    if counter is not None:
        counter.labels(Refusal.NOT_OWN.value).inc()
    log.info("API refused %s %s: %s (%s)", request.method, request.path[:200], Refusal.NOT_OWN.value,
             principal.name if principal is not None else "no known token")
    return False


def install(app: web.Application, tokens: ApiTokens, refusals: Any) -> None:
    """Put the token check in front of the app's /v1 routes (called by build_ops_app before the
    app is frozen)."""
    app[API_TOKENS] = tokens
    app[REFUSALS] = refusals
    app.middlewares.append(require_token)
