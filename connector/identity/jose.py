"""JOSE helpers shared by the station and the nodes (pure): algorithms pinned by key type,
JWKs with RFC 7638 thumbprints as key ids, and detached JWS (RFC 7515 appendix F) used to
sign self-descriptions."""
from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

#: the JWS algorithms the project signs and accepts; never "none", never HMAC
ASYMMETRIC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "EdDSA"})
_CURVE_ALG = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_ALG_CURVE = {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def alg_for_key(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "EdDSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        alg = _CURVE_ALG.get(key.curve.name)
        if alg:
            return alg
    raise ValueError("unsupported key type (use EC P-256/P-384/P-521 or Ed25519)")


def generate_key(alg: str) -> PrivateKey:
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg in _ALG_CURVE:
        return ec.generate_private_key(_ALG_CURVE[alg]())
    raise ValueError(f"unsupported signing algorithm {alg!r} (one of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))})")


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, Any]:
    public = key.public_key() if hasattr(key, "private_bytes") else key
    if isinstance(public, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    return {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y")}


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), base64url."""
    members = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def signing_jwk(key: PrivateKey) -> dict[str, Any]:
    """The public JWK of a signing key as published in a JWKS: kid, alg and use set."""
    jwk = public_jwk(key)
    return {**jwk, "kid": thumbprint(jwk), "alg": alg_for_key(key), "use": "sig"}


def key_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    kty = jwk.get("kty")
    text = json.dumps(jwk)
    if kty == "EC":
        key = ECAlgorithm.from_jwk(text)
    elif kty == "OKP":
        key = OKPAlgorithm.from_jwk(text)
    else:
        raise ValueError(f"unsupported JWK key type {kty!r}")
    if hasattr(key, "private_bytes"):
        raise ValueError("a published JWK must not carry a private key")
    return key  # type: ignore[return-value]


def sign_detached(payload: bytes, key: PrivateKey, headers: dict[str, Any]) -> str:
    """Compact JWS with a detached payload: ``header..signature``."""
    alg = alg_for_key(key)
    return jwt.api_jws.encode(payload, key, algorithm=alg, headers=headers,  # type: ignore[arg-type]
                              is_payload_detached=True)


def verify_detached(jws: str, payload: bytes, key: PublicKey) -> dict[str, Any]:
    """Verify a detached compact JWS over `payload` with `key`, the algorithm pinned to the
    key's type. Returns the protected header. Raises jwt.InvalidTokenError."""
    alg = alg_for_key(key)
    if jws.count(".") != 2 or jws.split(".")[1] != "":
        raise jwt.DecodeError("not a detached compact JWS (header..signature)")
    decoded = jwt.api_jws.decode_complete(jws, key, algorithms=[alg], detached_payload=payload)  # type: ignore[arg-type]
    return decoded["header"]
