"""The DAPS-compatible token service (pure: keys, records and time come in as arguments).

``client_credentials`` with an RFC 7523 client assertion (``private_key_jwt``), scope
``idsc:IDS_CONNECTOR_ATTRIBUTES_ALL``. The assertion must be signed by the participant's
enrolled key (algorithm pinned to that key's type), with ``iss = sub = participant id``,
``aud`` the token endpoint or the issuer, ``exp`` at most `max_lifetime` ahead, ``nbf`` and
``iat`` not in the future (30 s leeway), and a ``jti`` that the shell records as used
(single use, persisted until the assertion expires).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Mapping

import jwt

from ..identity.dat import ASSERTION_TYPE, DAT_SCOPE, DAT_TYPE, LEEWAY
from ..identity.jose import ASYMMETRIC_ALGORITHMS, PrivateKey, PublicKey, alg_for_key
from ..identity.pki import is_participant_id
from ..errors import StationError

IDS_CONTEXT = "https://w3id.org/idsa/contexts/context.jsonld"


class OAuthError(StationError):
    """RFC 6749 §5.2 error: `error` code, a description naming the problem, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


@dataclass(frozen=True)
class VerifiedAssertion:
    participant_id: str
    jti: str
    expires: float


def check_form(form: Mapping[str, str]) -> str:
    """The token request's form fields; returns the client assertion."""
    grant = form.get("grant_type")
    if grant != "client_credentials":
        raise OAuthError("unsupported_grant_type", f"grant_type must be client_credentials, got {str(grant)[:50]!r}")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    scopes = (form.get("scope") or "").split()
    if DAT_SCOPE not in scopes:
        raise OAuthError("invalid_scope", f"scope must include {DAT_SCOPE}")
    assertion = form.get("client_assertion")
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is missing")
    if len(assertion) > 8192:
        raise OAuthError("invalid_request", "client_assertion is over 8192 bytes")
    return assertion


def assertion_subject(assertion: str) -> str:
    """The unverified ``sub`` (which enrolled key to verify with), checked for form only."""
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError as exc:
        raise OAuthError("invalid_client", f"malformed client assertion: {exc}", 401) from None
    if header.get("alg") not in ASYMMETRIC_ALGORITHMS:
        raise OAuthError("invalid_client", f"client assertion algorithm {str(header.get('alg'))[:20]!r} is not allowed", 401)
    sub = claims.get("sub")
    if not is_participant_id(sub):
        raise OAuthError("invalid_client", "the client assertion's sub is not a participant id (SKI:keyid:AKI)", 401)
    return sub


def verify_assertion(assertion: str, *, participant_id: str, key: PublicKey, audiences: frozenset[str],
                     now: float, max_lifetime: float, leeway: float = LEEWAY) -> VerifiedAssertion:
    alg = alg_for_key(key)
    try:
        header = jwt.get_unverified_header(assertion)
        if header.get("alg") != alg:
            raise OAuthError("invalid_client", f"the client assertion must be signed {alg} with the enrolled key", 401)
        claims = jwt.decode(assertion, key, algorithms=[alg], options={  # type: ignore[arg-type]
            "verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
            "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False})
    except jwt.InvalidSignatureError:
        raise OAuthError("invalid_client", "the client assertion's signature does not verify with the enrolled key", 401) from None
    except jwt.InvalidTokenError as exc:
        raise OAuthError("invalid_client", f"malformed client assertion: {exc}", 401) from None
    if claims.get("iss") != participant_id or claims.get("sub") != participant_id:
        raise OAuthError("invalid_client", "the client assertion's iss and sub must both be the participant id", 401)
    aud = claims.get("aud")
    auds = {aud} if isinstance(aud, str) else set(aud) if isinstance(aud, list) else set()
    if not auds & audiences:
        raise OAuthError("invalid_client", f"the client assertion's aud must be one of {sorted(audiences)}", 401)
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise OAuthError("invalid_client", "the client assertion has no exp", 401)
    if now > exp + leeway:
        raise OAuthError("invalid_client", "the client assertion has expired", 401)
    if exp > now + max_lifetime + leeway:
        raise OAuthError("invalid_client", f"the client assertion lives too long (at most {int(max_lifetime)} s)", 401)
    for name in ("nbf", "iat"):
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise OAuthError("invalid_client", f"the client assertion's {name} is not a number", 401)
        if value is not None and value > now + leeway:
            raise OAuthError("invalid_client", f"the client assertion is not valid yet ({name} in the future)", 401)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 200:
        raise OAuthError("invalid_client", "the client assertion has no jti (it must be single use)", 401)
    return VerifiedAssertion(participant_id, jti, float(exp))


def dat_claims(record: Mapping[str, Any], *, issuer: str, audience: str, now: float, lifetime: int,
               transport_certs: list[str]) -> dict[str, Any]:
    """The DAT for an active participant record (IDS DatPayload plus the station's claims)."""
    iat = int(now)
    claims: dict[str, Any] = {
        "@context": IDS_CONTEXT,
        "@type": DAT_TYPE,
        "iss": issuer,
        "sub": record["id"],
        "aud": [audience],
        "iat": iat,
        "nbf": iat,
        "exp": iat + lifetime,
        "jti": str(uuid.uuid4()),
        "scope": DAT_SCOPE,
        "client_id": record["id"],
        "securityProfile": record["security_profile"],
        "transportCertsSha256": transport_certs,
        # the station's own claims, read by the policy engine
        "organisation": record["name"],
        "jurisdiction": record["jurisdiction"],
        "membership": list(record["membership"]),
        "membershipStatus": record["status"],
    }
    if record.get("connector_url"):
        claims["referringConnector"] = record["connector_url"]
    return claims


def sign_dat(claims: Mapping[str, Any], key: PrivateKey, kid: str) -> str:
    return jwt.encode(dict(claims), key, algorithm=alg_for_key(key), headers={"typ": "at+jwt", "kid": kid})  # type: ignore[arg-type]
