"""Dataset registration certificates: claims, bundle and offline verification. Pure: no I/O and no
clock (callers pass what they read).

A certificate is a compact JWS (``typ`` ``hks-dataset-cert+jwt``) signed by the station with its
token-signing key (the keys of its ``/jwks.json``); its claims::

    {"iss": station issuer, "serial": 7, "datasetId": "visits", "sha256": "<64 hex>",
     "owner": "urn:hks:participant:...", "title": "...", "categories": ["pd:Name", ...],
     "issuedAt": "2026-12-02T08:30:00Z", "reviewStatus": "approved", "replaces": 3 | null,
     "loggedBy": "<the station's clearing-house participant id>"}

The station itself logs the SHA-256 of the certificate's JWS text at the clearing house (event
``dataset.certified``, process ``urn:hks:dataset-certificate:<first 32 hex of that SHA-256>``, sender
``loggedBy``, parties the owner and the station); a verifier refuses an entry any other party sent
(the owner included). The bundle carries the
certificate, that signed log entry and its receipt (inclusion proof and signed checkpoint), so a
verifier needs only the station's and the clearing house's public keys.

The revocation list is a JWS (``typ`` ``hks-cert-revocations+jwt``) signed the same way:
``{"iss": ..., "number": 12, "issuedAt": ..., "nextUpdate": ..., "revoked": [{"serial": 7, "revokedAt": "...",
"reason": "..."}]}``. Like a CRL (RFC 5280 s.5.1.2.4-5, s.5.2.3): ``number`` grows with every list the
station issues, ``issuedAt`` is its thisUpdate and ``nextUpdate`` the time by which a newer list is
issued; a verifier refuses a list past its ``nextUpdate``, so an old list cannot be replayed to hide
a later revocation for longer than one list's lifetime.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import jwt

from ..clearinghouse.entry import EntryError, parse_signed_entry
from ..clearinghouse.verify import LogVerificationError, Receipt, verify_receipt
from ..identity.jose import ASYMMETRIC_ALGORITHMS
from ..errors import IdentityError

CERT_TYP = "hks-dataset-cert+jwt"
REVOCATIONS_TYP = "hks-cert-revocations+jwt"
LOG_EVENT = "dataset.certified"
PROCESS_PREFIX = "urn:hks:dataset-certificate:"
#: the dataset property (a full IRI: passes both DSP wire forms untouched) carrying the bundle
CATALOG_PROPERTY = "https://w3id.org/hks/registrationCertificate"
MAX_CERT_BYTES = 16 * 1024
MAX_BUNDLE_BYTES = 64 * 1024
MAX_TITLE = 500
MAX_CATEGORIES = 50
SHA256_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
DATASET_ID_RE = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: a list issued up to this much after the time of the check is accepted (the two clocks differ)
REVOCATIONS_SKEW = timedelta(minutes=5)
_ISO_Z_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
CLAIMS = ("iss", "serial", "datasetId", "sha256", "owner", "title", "categories", "issuedAt", "reviewStatus", "replaces",
          "loggedBy")

Json = dict[str, Any]


class CertificateError(IdentityError, ValueError):
    """A certificate, its bundle or a registration request is refused; the message is the reason
    (our rule, never more than 200 characters of the input)."""


def process_id(certificate: str) -> str:
    """The log's process id for a certificate: from its own hash, so no one can take it first."""
    return f"{PROCESS_PREFIX}{sha256_hex(certificate.encode('ascii'))[:32]}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serial_of(bundle: Json) -> int:
    """The serial of a bundle this node keeps (checked when it was stored)."""
    return int(jwt.decode(bundle["certificate"], options={"verify_signature": False})["serial"])


def check_request(doc: object) -> Json:
    """A registration request as a participant sends it: datasetId, sha256, title, categories,
    and optionally replaces (the serial of the certificate of the version it replaces)."""
    if not isinstance(doc, dict):
        raise CertificateError("the request must be a JSON object")
    unknown = set(doc) - {"datasetId", "sha256", "title", "categories", "replaces"}
    if unknown:
        raise CertificateError(f"unknown field {sorted(unknown)[0][:100]!r} (known: datasetId, sha256, title, "
                               "categories, replaces)")
    dataset_id = doc.get("datasetId")
    if not isinstance(dataset_id, str) or not DATASET_ID_RE.fullmatch(dataset_id):
        raise CertificateError("datasetId must be 1-255 printable ASCII characters without spaces")
    digest = doc.get("sha256")
    if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
        raise CertificateError("sha256 must be the data's SHA-256 as 64 lowercase hex digits")
    title = doc.get("title", dataset_id)
    if not isinstance(title, str) or not 0 < len(title) <= MAX_TITLE or CONTROL_RE.search(title):
        raise CertificateError(f"title must be 1-{MAX_TITLE} characters without control characters")
    categories = doc.get("categories", [])
    if (not isinstance(categories, list) or len(categories) > MAX_CATEGORIES
            or not all(isinstance(c, str) and 0 < len(c) <= 200 and not CONTROL_RE.search(c) for c in categories)):
        raise CertificateError(f"categories must be a list of at most {MAX_CATEGORIES} strings (each 1-200 characters)")
    replaces = doc.get("replaces")
    if replaces is not None and (not isinstance(replaces, int) or isinstance(replaces, bool) or replaces < 1):
        raise CertificateError("replaces must be the serial (a positive integer) of the certificate it replaces")
    return {"datasetId": dataset_id, "sha256": digest, "title": title, "categories": list(categories),
            "replaces": replaces}


def certificate_claims(*, issuer: str, serial: int, request: Mapping[str, Any], owner: str, issued_at: str,
                       logged_by: str) -> Json:
    return {"iss": issuer, "serial": serial, "datasetId": request["datasetId"], "sha256": request["sha256"],
            "owner": owner, "title": request["title"], "categories": list(request["categories"]),
            "issuedAt": issued_at, "reviewStatus": "approved", "replaces": request.get("replaces"),
            "loggedBy": logged_by}


def sign(claims: Mapping[str, Any], key: Any, kid: str, alg: str, typ: str = CERT_TYP) -> str:
    return jwt.encode(dict(claims), key, algorithm=alg, headers={"typ": typ, "kid": kid})


def _jwks_keys(jwks: object) -> dict[str, tuple[Any, str]]:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise CertificateError("the station's keys must be a JWKS (a JSON object with \"keys\")")
    out = {}
    for jwk in jwks["keys"][:20]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or jwk.get("alg") not in ASYMMETRIC_ALGORITHMS:
            continue
        try:
            out[jwk["kid"]] = (jwt.PyJWK(jwk).key, jwk["alg"])
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    if not out:
        raise CertificateError("the station's JWKS holds no usable signing key")
    return out


def verify_signed(token: object, jwks: object, typ: str, what: str, issuer: str | None = None) -> Json:
    """The claims of a station-signed JWS of type `typ`, or CertificateError (bad signature, unknown
    key, wrong type or issuer)."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_CERT_BYTES * 4:
        raise CertificateError(f"the {what} must be a compact JWS")
    keys = _jwks_keys(jwks)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise CertificateError(f"the {what} is not a well-formed JWS") from None
    if header.get("typ") != typ:
        raise CertificateError(f"the {what} is not of type {typ}")
    found = keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
    if found is None:
        raise CertificateError(f"the {what} is signed with a key that is not the station's")
    key, alg = found
    if header.get("alg") != alg:
        raise CertificateError(f"the {what}'s algorithm is not the one of the station's key")
    try:
        claims = jwt.decode(token, key, algorithms=[alg], options={"verify_aud": False, "verify_exp": False,
                                                                    "verify_iat": False, "verify_nbf": False})
    except jwt.PyJWTError:
        raise CertificateError(f"bad signature: the {what} does not verify with the station's key") from None
    if issuer is not None and claims.get("iss") != issuer:
        raise CertificateError(f"the {what} is issued by another station")
    return claims


def check_claims(claims: Json) -> Json:
    missing = [c for c in CLAIMS if c not in claims]
    if missing:
        raise CertificateError(f"the certificate lacks {missing[0]}")
    if not isinstance(claims["serial"], int) or isinstance(claims["serial"], bool) or claims["serial"] < 1:
        raise CertificateError("the certificate's serial is not a positive integer")
    if claims["reviewStatus"] != "approved":
        raise CertificateError("the certificate's review status is not approved")
    try:
        check_request({k: claims[k] for k in ("datasetId", "sha256", "title", "categories", "replaces")})
    except CertificateError as exc:
        raise CertificateError(f"the certificate's claims are malformed: {exc}") from None
    if not isinstance(claims["owner"], str) or not DATASET_ID_RE.fullmatch(claims["owner"]):
        raise CertificateError("the certificate's owner is not a participant id")
    if not isinstance(claims["loggedBy"], str) or not DATASET_ID_RE.fullmatch(claims["loggedBy"]):
        raise CertificateError("the certificate's loggedBy is not the station's clearing-house participant id")
    return claims


@dataclass(frozen=True)
class Verified:
    claims: Json
    leaf_index: int
    tree_size: int
    revocations_number: int | None = None


def _utc(value: object, what: str) -> datetime:
    if not isinstance(value, str) or not _ISO_Z_RE.fullmatch(value):
        raise CertificateError(f"the revocation list's {what} is not a UTC time written YYYY-MM-DDTHH:MM:SSZ")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise CertificateError(f"the revocation list's {what} {value} is not a calendar time") from None


def check_revocations(token: object, station_jwks: object, issuer: str, at: datetime) -> Json:
    """The claims of the station's signed revocation list, current at `at` (aware): refused when
    past its nextUpdate (stale: a newer list may name revocations this one hides), issued after `at`,
    or without a well-formed number, issuedAt and nextUpdate."""
    listed = verify_signed(token, station_jwks, REVOCATIONS_TYP, "revocation list", issuer)
    number = listed.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise CertificateError("the revocation list has no number (a positive integer): it cannot be told from an "
                               "older one")
    issued, next_update = _utc(listed.get("issuedAt"), "issuedAt"), _utc(listed.get("nextUpdate"), "nextUpdate")
    if next_update <= issued:
        raise CertificateError("the revocation list's nextUpdate is not after its issuedAt")
    when = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if at >= next_update:
        raise CertificateError(f"the revocation list (number {number}) is stale: its next update was due at "
                               f"{listed['nextUpdate']}, the check is at {when}; fetch the station's current list")
    if issued > at + REVOCATIONS_SKEW:
        raise CertificateError(f"the revocation list (number {number}) was issued at {listed['issuedAt']}, after the "
                               f"time of the check ({when})")
    if not isinstance(listed.get("revoked"), list):
        raise CertificateError("the revocation list is malformed")
    return listed


def verify_bundle(bundle: object, *, station_jwks: object, clearinghouse_key: str, revocations: str | None = None,
                  data_sha256: str | None = None, owner: str | None = None, dataset_id: str | None = None,
                  at: datetime | None = None) -> Verified:
    """Check a certificate bundle offline: the station's signature, the log entry naming the
    certificate's SHA-256 (sent by the station: the certificate's loggedBy), its inclusion proof against the clearing house's
    signed checkpoint, and where given: the signed revocation list (current at `at`, which the
    caller must then pass: this module reads no clock), the data's digest, the expected owner and
    dataset id. Raises CertificateError with the reason."""
    if not isinstance(bundle, dict) or set(bundle) - {"certificate", "logEntry", "receipt"}:
        raise CertificateError("a certificate file is a JSON object with certificate, logEntry and receipt")
    token = bundle.get("certificate")
    claims = check_claims(verify_signed(token, station_jwks, CERT_TYP, "certificate"))
    try:
        entry = parse_signed_entry(bundle.get("logEntry"))
    except EntryError as exc:
        raise CertificateError(f"the clearing-house entry is malformed: {str(exc)[:200]}") from None
    e = entry.entry
    if e["event"] != LOG_EVENT or e["processId"] != process_id(token):
        raise CertificateError("the clearing-house entry is not the one for this certificate")
    if e["sha256"] != sha256_hex(token.encode("ascii")):
        raise CertificateError("the clearing-house entry logs another certificate (its SHA-256 differs)")
    if e["sender"] != claims["loggedBy"]:
        raise CertificateError("the clearing-house entry was not logged by the station that signed the certificate "
                               f"(sender {str(e['sender'])[:100]}, the station logs as {claims['loggedBy'][:100]})")
    try:
        receipt = Receipt.from_json(bundle.get("receipt"))
        verify_receipt(receipt, clearinghouse_key, leaf_hash=entry.leaf_hash)
    except LogVerificationError as exc:
        raise CertificateError(f"the inclusion proof does not verify: {str(exc)[:200]}") from None
    except (ValueError, TypeError):
        raise CertificateError("the clearing house's key is not a signed-note verifier key") from None
    if revocations is not None:
        if at is None:
            raise CertificateError("a revocation list is checked as of a time: none was given")
        listed = check_revocations(revocations, station_jwks, claims["iss"], at)
        for item in listed["revoked"]:
            if isinstance(item, dict) and item.get("serial") == claims["serial"]:
                raise CertificateError(f"certificate {claims['serial']} is revoked (since {str(item.get('revokedAt'))[:40]})")
    if owner is not None and claims["owner"] != owner:
        raise CertificateError(f"the certificate is for a dataset of {claims['owner'][:100]}, not of {owner[:100]}")
    if dataset_id is not None and claims["datasetId"] != dataset_id:
        raise CertificateError(f"the certificate is for dataset {claims['datasetId'][:100]}, not {dataset_id[:100]}")
    if data_sha256 is not None and data_sha256 != claims["sha256"]:
        raise CertificateError("the data does not match the registered digest (SHA-256 differs)")
    return Verified(claims, receipt.leaf_index, receipt.tree_size,
                    listed["number"] if revocations is not None else None)
