"""Who may call the HTTP API (/v1/* and /metrics, on the operations port): bearer tokens or client
certificates, and roles (issue 8).

  Authorization: Bearer <token>                       or
  a client certificate (the operations port's mutual TLS, optional per connection)

- A request that carries an Authorization header is decided by its token, whatever certificate
  the connection presented (an explicit per-request credential; a proxy holding a certificate
  may pass on its users' tokens). Otherwise the client certificate decides: one the operations
  client CA issued (a certificate from any other CA already failed the TLS handshake) and that an
  entry of the tokens file names (subject CN and/or SPKI SHA-256).
- No token and no certificate, a token the switch does not know, or a certificate no entry
  names: 401 with `WWW-Authenticate: Bearer`.
- A known caller whose role may not use the method or the path: 403 (an auditor or a participant
  writing, a participant or a monitor reading /metrics or payments it may not).
- A participant asking for another participant's payment or instruction: 404, exactly as for a
  payment that does not exist, so that nobody learns which UETRs or instruction ids exist.

Roles: operator (every payment, every method, /metrics), auditor (every payment and /metrics,
read only), participant:<code> (its own payments, read only; and a quote for itself: POST
/v1/quotes, issue 11), monitor (/metrics only: what Prometheus scrapes with). Every role may
read the OpenAPI document, /v1/openapi.json (issue 11). /healthz and /readyz stay open: liveness
and readiness probes (a kubelet's included) present no credential, and neither says more than
"up" and "ready".

Every refusal is the JSON of every other refusal, {"reason_code", "error"} (AG01, "transaction
forbidden", for 401 and 403; MS03 for the 404, as for an unknown payment), and is counted in
switch_api_refusals_total{reason} (a fixed set of reasons). The partner endpoint is not touched
here: it has its own authentication.

Tokens are stored as the SHA-256 of the token (config/operators.toml or MEKONG_API_TOKENS_FILE);
every stored hash is compared in constant time (hmac.compare_digest, no early exit), so the answer
time says nothing about which or how many tokens are known.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from aiohttp import web
from cryptography.x509.oid import NameOID

from switch import limits
from switch.config import ApiCertificate, ApiToken
from switch.tls import spki_sha256_of_der

log = logging.getLogger(__name__)

API_PREFIX: Final = "/v1/"
METRICS_PATH: Final = "/metrics"
OPENAPI_PATH: Final = "/v1/openapi.json"  # the HTTP API's OpenAPI document (issue 11)
TOKEN_PREFIX: Final = "mekong_"  # makes a leaked token easy to find by secret scanners
token_bytes: Final = 32
authorization_chars_max: Final = 512  # a longer Authorization header is not one of our tokens
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# what a participant may write: a quote for itself (issue 11; the route checks "for itself")
PARTICIPANT_WRITES: Final = frozenset({("POST", "/v1/quotes")})


class Role(StrEnum):
    OPERATOR = "operator"
    AUDITOR = "auditor"
    PARTICIPANT = "participant"
    MONITOR = "monitor"


class Refusal(StrEnum):
    """The label of switch_api_refusals_total{reason}: a fixed set."""

    MISSING_TOKEN = "missing_token"  # no token and no client certificate
    INVALID_TOKEN = "invalid_token"
    UNKNOWN_CERTIFICATE = "unknown_certificate"  # a certificate of the operations CA that no entry names
    ROLE_FORBIDDEN = "role_forbidden"
    NOT_OWN = "not_own"  # a participant asked for another's payment (answered 404)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role; `participant` only for participant roles."""

    name: str
    role: Role
    participant: str | None = None

    def may(self, method: str) -> bool:
        """The role model: operators may use every method; the other roles only read."""
        return self.role is Role.OPERATOR or method in READ_METHODS

    def may_see(self, participant: str) -> bool:
        """Whether this caller may see a payment or instruction of `participant`."""
        if self.role is Role.MONITOR:
            return False
        return self.role is not Role.PARTICIPANT or participant == self.participant

    def may_use(self, path: str) -> bool:
        """/metrics: operators, auditors and monitors (the volumes of every party and partner are
        no participant's business); /v1: every role but monitor; the OpenAPI document (what the
        API is, nobody's data): every role."""
        if path == OPENAPI_PATH:
            return True
        if path == METRICS_PATH:
            return self.role in (Role.OPERATOR, Role.AUDITOR, Role.MONITOR)
        return self.role is not Role.MONITOR


def principal_of(holder: ApiToken | ApiCertificate) -> Principal:
    """Who holds a token or a certificate, as the tokens file says."""
    if holder.role.startswith("participant:"):
        return Principal(holder.name, Role.PARTICIPANT, holder.role.removeprefix("participant:"))
    return Principal(holder.name, Role(holder.role))


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


class ApiCertificates:
    """The client certificates allowed on the API and who holds each. Maps a verified peer
    certificate (DER) to its Principal, or None; answers are cached per certificate (bounded:
    limits.tls_identity_cache_max), as a client sends the same one on every connection."""

    def __init__(self, certificates: Sequence[ApiCertificate]) -> None:
        self._entries = [(c.subject_cn, c.spki_sha256, principal_of(c)) for c in certificates]
        self._cache: OrderedDict[bytes, Principal | None] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def authenticate(self, der: bytes) -> Principal | None:
        key = hashlib.sha256(der).digest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        cert, fingerprint = spki_sha256_of_der(der)
        cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        matches = [
            principal for subject_cn, spki, principal in self._entries
            if (subject_cn is None or cns == [subject_cn]) and (spki is None or spki == fingerprint)
        ]
        found = matches[0] if len(matches) == 1 else None  # a certificate two entries name is nobody's
        self._cache[key] = found
        if len(self._cache) > limits.tls_identity_cache_max:
            self._cache.popitem(last=False)
        return found


API_TOKENS = web.AppKey("api_tokens", ApiTokens)
API_CERTIFICATES = web.AppKey("api_certificates", ApiCertificates)
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
    if status == 401:  # RFC 6750 section 3: no error code when no token was sent
        challenge = 'Bearer realm="mekong", error="invalid_token"' if reason is Refusal.INVALID_TOKEN else 'Bearer realm="mekong"'
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


def peer_certificate(request: web.Request) -> bytes | None:
    """The client certificate of the request's connection (DER), verified by the TLS handshake
    against the operations client CA; None when none was presented (or without TLS)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
    return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def _authenticate(request: web.Request) -> Principal | web.Response:
    """Who is calling: by the bearer token when an Authorization header is sent, else by the
    client certificate; or the 401 to answer."""
    if "Authorization" in request.headers:  # a token sent decides, whatever the certificate
        token = _bearer(request)
        principal = request.app[API_TOKENS].authenticate(token) if token is not None else None
        if principal is None:
            return _refuse(request, 401, Refusal.INVALID_TOKEN, "AG01", "the bearer token is not valid")
        return principal
    der = peer_certificate(request)
    if der is not None:
        principal = request.app[API_CERTIFICATES].authenticate(der)
        if principal is None:
            return _refuse(request, 401, Refusal.UNKNOWN_CERTIFICATE, "AG01",
                           "the client certificate is not one the API knows (or send a bearer token)")
        return principal
    return _refuse(request, 401, Refusal.MISSING_TOKEN, "AG01",
                   "a bearer token (Authorization: Bearer ...) or a client certificate is required")


@web.middleware
async def require_principal(request: web.Request, handler: Any) -> web.StreamResponse:
    """On /v1/* and /metrics only: a known caller (token or client certificate) whose role may use
    the method and the path, else 401 / 403."""
    path = request.path
    if not (path.startswith(API_PREFIX) or path == METRICS_PATH):
        return await handler(request)
    found = _authenticate(request)
    if isinstance(found, web.Response):
        return found
    request[PRINCIPAL] = found
    participant_write = found.role is Role.PARTICIPANT and (request.method, path) in PARTICIPANT_WRITES
    if not (found.may(request.method) or participant_write) or not found.may_use(path):
        return _refuse(request, 403, Refusal.ROLE_FORBIDDEN, "AG01", f"role {found.role} may not {request.method} {path[:64]}")
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


def install(app: web.Application, tokens: ApiTokens, refusals: Any, certificates: ApiCertificates | None = None) -> None:
    """Put the caller check in front of the app's /v1 routes and /metrics (called by
    build_ops_app before the app is frozen)."""
    app[API_TOKENS] = tokens
    app[API_CERTIFICATES] = certificates or ApiCertificates(())
    app[REFUSALS] = refusals
    app.middlewares.append(require_principal)
