"""Access tokens: a provider's pull token and a consumer's push token, derived from the node's
key so that the database keeps only a nonce (and, for a pull, the token's hash)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...identity.keys import load_private_key
from ...policy.explain import M_
from ..usage import ours
from .common import HTTP_ENDPOINT_TYPE, AccessRefused, Json

# The tokens this node checks, a provider's pull token and a consumer's push token, are 32 bytes
# of HMAC under the node key, base64url. node.db never holds one: it keeps a placeholder with the
# nonce the token is derived from (in the outbox and, for a push, the consumer's transfer row) and,
# for a pull, the token's SHA-256 to look it up by. The dispatcher derives the token on the wire.
PULL_TOKEN_PLACEHOLDER = "__HKS_PULL_TOKEN__"
PUSH_TOKEN_PLACEHOLDER = "__HKS_PUSH_TOKEN__"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_PLACEHOLDER_RE = re.compile(rb"__HKS_(PULL|PUSH)_TOKEN__([A-Za-z0-9_-]{22})")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def derive_key(key_path: Path, purpose: str) -> bytes:
    """A secret for one purpose, derived from the node's private key (no extra key file)."""
    private = load_private_key(key_path).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(private)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Tokens:
    def _derived_token(self, kind: str, transfer_id: str, nonce: str) -> str:
        """A pull (`kind` PULL) or push (PUSH) token of one transfer: derived from the node's key,
        so that the database needs to keep only the nonce and every retry sends the same token."""
        message = f"{kind}\x00{transfer_id}\x00{nonce}".encode()
        return _b64(hmac.new(self._token_key, message, hashlib.sha256).digest())

    @staticmethod
    def token_hash(authorization: str | None) -> str:
        """SHA-256 of the bearer token in `authorization`, the key it is looked up by."""
        if not authorization:
            raise AccessRefused(401, [ours(M_("the Authorization header is missing"))])
        token = authorization.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not _TOKEN_RE.fullmatch(token):
            raise AccessRefused(401, [ours(M_("the access token is malformed"))])
        return token_digest(token)

    def start_address(self, row: Json) -> Json:
        """The pull DataAddress the provider gives in its TransferStartMessage. A new token for
        every start (a resumed transfer gets a new one); the row keeps only its hash and expiry."""
        nonce = _b64(os.urandom(16))
        row["token_hash"] = token_digest(self._derived_token("PULL", row["id"], nonce))
        row["token_expires_at"] = self.clock.now() + self.token_ttl
        endpoint = f"{self.node.settings.node.public_url.rstrip('/')}/data/{row['id']}"
        return {"@type": "DataAddress", "endpointType": HTTP_ENDPOINT_TYPE, "endpoint": endpoint,
                "endpointProperties": [  # "endpoint" again: EDC (0.15) reads only endpointType and these
                    {"@type": "EndpointProperty", "name": "endpoint", "value": endpoint},
                    {"@type": "EndpointProperty", "name": "authorization", "value": PULL_TOKEN_PLACEHOLDER + nonce},
                    {"@type": "EndpointProperty", "name": "authType", "value": "bearer"}]}

    def reveal_tokens(self, entry: Json, payload: bytes) -> bytes:
        """The dispatcher's last step before a transfer message goes on the wire: a placeholder
        becomes the token, which is never written to the database."""
        if b"__HKS_" not in payload:
            return payload
        return _PLACEHOLDER_RE.sub(lambda m: self._derived_token(
            m.group(1).decode(), entry["process_id"], m.group(2).decode()).encode(), payload)
