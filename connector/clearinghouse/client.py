"""Client of the clearing house, for nodes and auditors (aiohttp).

Everything the clearing house returns is verified here against the log's verifier key
(pinned by the caller, never fetched from the log), with the pure checks in
:mod:`connector.clearinghouse.verify`.  Typical node use::

    ch = ClearingHouseClient(url, verifier_key, authorization=identity.outbound_authorization,
                             audience=clearing_house_audience)   # tokens for the clearing house only
    jws = sign_entry(make_entry(process_id=pid, event="negotiation.agreed", provider=..., consumer=...,
                                sender=me, timestamp=now, sha256=hashlib.sha256(message).digest()), node_key)
    receipt = await ch.submit(jws)         # verified receipt (or EntryRefused / ClearingHouseUnavailable)
    # keep receipt.to_json() and receipt.checkpoint; later, or periodically:
    newest = await ch.check_receipts(kept_receipts, remembered_checkpoint)   # LogVerificationError names the entry

``submit`` is safe to retry: an entry that is already in the log (a retry after a lost
answer) comes back as ``409 Replayed`` with its index, and the client rebuilds the
receipt from a fresh inclusion proof (``receipt.replayed``).
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import quote

import aiohttp
import orjson

from ..bodies import BodyTooLarge, read_limited
from ..ledger.checkpoint import Checkpoint, VerifierKey
from ..ledger.merkle import verify_inclusion
from .entry import EntryError, parse_signed_entry
from .verify import (
    LogVerificationError,
    Receipt,
    check_consistency,
    decode_proof,
    open_checkpoint,
    verify_receipt,
)
from ..errors import TransparencyLogError

__all__ = ["ClearingHouseClient", "ClearingHouseError", "EntryRefused", "ClearingHouseUnavailable",
           "LogVerificationError", "Receipt"]

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
Authorization = str | Callable[[str], Awaitable[str]] | None


class ClearingHouseError(TransparencyLogError):
    """Base class of the client's errors (besides :class:`LogVerificationError`: the log misbehaved)."""


class EntryRefused(ClearingHouseError):
    """The clearing house refused the request (4xx).  ``code`` is its machine-readable reason."""

    def __init__(self, status: int, code: str, message: str, body: dict | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body or {}


class ClearingHouseUnavailable(ClearingHouseError):
    """Network error, timeout or 5xx: nothing is known to have happened; retry later (the node's outbox does)."""


class ClearingHouseClient:
    def __init__(self, url: str, verifier_key: str | VerifierKey, *, authorization: Authorization = None,
                 session: aiohttp.ClientSession | None = None, timeout: float = 30.0,
                 origin: str | None = None, audience: str | None = None) -> None:
        self.url = url.rstrip("/")
        #: the clearing house's id, the one audience of the tokens we send it (default: its URL)
        self.audience = audience or self.url
        self.verifier_key = verifier_key
        self.origin = origin
        self._authorization = authorization
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def __aenter__(self) -> "ClearingHouseClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- transport ---------------------------------------------------------

    async def _headers(self) -> dict[str, str]:
        auth = self._authorization
        if auth is None:
            return {}
        if isinstance(auth, str):
            return {"Authorization": auth}
        return {"Authorization": await auth(self.audience)}

    async def _request(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
                       text: bool = False) -> tuple[int, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = await self._headers()
        data = None
        if json_body is not None:
            data = orjson.dumps(json_body)
            headers["Content-Type"] = "application/json"
        try:
            async with self._session.request(method, self.url + path, data=data, params=params, headers=headers,
                                             timeout=self._timeout) as resp:
                raw = await read_limited(resp, MAX_RESPONSE_BYTES)
                status = resp.status
        except BodyTooLarge:
            raise ClearingHouseUnavailable(f"answer from {self.url}{path} is over {MAX_RESPONSE_BYTES} bytes") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ClearingHouseUnavailable(f"clearing house at {self.url} unreachable: {type(exc).__name__}: {exc}") from None
        if status >= 500:
            raise ClearingHouseUnavailable(f"clearing house answered {status}: {_message(raw)}")
        if status >= 400:
            body = _json_or_none(raw)
            code = body.get("code", "Refused") if isinstance(body, dict) else "Refused"
            raise EntryRefused(status, str(code), _message(raw), body if isinstance(body, dict) else None)
        if text:
            try:
                return status, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise LogVerificationError(f"{path}: answer is not UTF-8") from None
        body = _json_or_none(raw)
        if not isinstance(body, dict):
            raise LogVerificationError(f"{path}: answer is not a JSON object")
        return status, body

    # -- entries -----------------------------------------------------------

    async def submit(self, jws: str, *, recover_replay: bool = True) -> Receipt:
        """Append a signed entry; return its verified receipt.

        Raises :class:`EntryRefused` (4xx: bad entry, not a party, ...), :class:`ClearingHouseUnavailable`
        (retry later) or :class:`LogVerificationError` (the receipt does not verify: the log misbehaved)."""
        try:
            own_leaf = parse_signed_entry(jws).leaf_hash
        except EntryError as exc:
            raise EntryRefused(400, exc.code, f"not sent: {exc}") from None
        try:
            _, body = await self._request("POST", "/entries", json_body={"jws": jws})
        except EntryRefused as exc:
            index = exc.body.get("leafIndex")
            if exc.status == 409 and exc.code == "Replayed" and recover_replay and type(index) is int:
                return await self.receipt_for(index, own_leaf, replayed=True)
            raise
        receipt = Receipt.from_json(body)
        verify_receipt(receipt, self.verifier_key, origin=self.origin, leaf_hash=own_leaf)
        return receipt

    async def receipt_for(self, index: int, leaf_hash: bytes, *, replayed: bool = False) -> Receipt:
        """A verified receipt for an entry known to be at ``index`` (proof against the latest checkpoint)."""
        size, proof, note = await self.inclusion_proof(index)
        if note is None:
            raise LogVerificationError(f"the log gave no checkpoint for tree size {size}")
        receipt = Receipt(leaf_index=index, leaf_hash=leaf_hash, tree_size=size, checkpoint=note,
                          inclusion_proof=tuple(proof), replayed=replayed)
        verify_receipt(receipt, self.verifier_key, origin=self.origin, leaf_hash=leaf_hash)
        return receipt

    # -- checkpoints and proofs ------------------------------------------------

    async def checkpoint(self, size: int | None = None) -> tuple[Checkpoint, str]:
        """The latest (or the size-``size``) checkpoint, verified with the log's key: (checkpoint, note text)."""
        _, note = await self._request("GET", "/checkpoint", params={"size": size} if size is not None else None,
                                      text=True)
        cp = open_checkpoint(note, self.verifier_key, origin=self.origin)
        if size is not None and cp.size != size:
            raise LogVerificationError(f"asked for the checkpoint of size {size}, got size {cp.size}")
        return cp, note

    async def inclusion_proof(self, index: int, size: int | None = None) -> tuple[int, list[bytes], str | None]:
        params = {"index": index} if size is None else {"index": index, "size": size}
        _, body = await self._request("GET", "/proofs/inclusion", params=params)
        got = body.get("treeSize")
        if type(got) is not int or (size is not None and got != size):
            raise LogVerificationError("inclusion proof answer has a wrong treeSize")
        note = body.get("checkpoint")
        return got, decode_proof(body.get("inclusionProof"), "inclusion proof"), note if isinstance(note, str) else None

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        _, body = await self._request("GET", "/proofs/consistency", params={"from": old_size, "to": new_size})
        if body.get("from") != old_size or body.get("to") != new_size:
            raise LogVerificationError("consistency proof answer is for other sizes")
        return decode_proof(body.get("consistencyProof"), "consistency proof")

    async def check_consistency(self, remembered: str | Checkpoint, newer: str | Checkpoint | None = None) -> Checkpoint:
        """Verify that the log is an append-only extension of ``remembered`` (a checkpoint the caller
        verified before); returns the newer checkpoint (default: the latest), verified."""
        old = self._open(remembered)
        new = self._open(newer) if newer is not None else (await self.checkpoint())[0]
        proof = []
        if 0 < old.size < new.size:
            proof = await self.consistency_proof(old.size, new.size)
        check_consistency(old, new, proof)
        return new

    async def check_receipts(self, receipts: Iterable[Receipt], remembered: str | Checkpoint | None = None) -> Checkpoint:
        """The node's check of what it logged.  For every kept receipt, in index order: the log still
        serves that very entry at that index (same leaf hash) and it is in the latest signed tree;
        then the latest checkpoint is an append-only extension of ``remembered`` and of every
        receipt's checkpoint.  Returns the latest checkpoint, verified.

        Raises :class:`LogVerificationError` whose ``index`` names the first bad entry."""
        new, _ = await self.checkpoint()
        ordered = sorted(receipts, key=lambda r: r.leaf_index)
        for receipt in ordered:
            await self.check_kept(receipt, new)
        olds = [self._open(r.checkpoint) for r in ordered]
        if remembered is not None:
            olds.append(self._open(remembered))
        for old in sorted({(c.size, c.root_hash): c for c in olds}.values(), key=lambda c: c.size):
            await self.check_consistency(old, new)
        return new

    async def check_kept(self, receipt: Receipt, new: Checkpoint) -> None:
        """One kept receipt against the verified checkpoint ``new``: the log still serves that very entry
        at that index, in the tree ``new`` signs.  Raises :class:`LogVerificationError` (``index`` set)."""
        i = receipt.leaf_index
        if i >= new.size:
            raise LogVerificationError(f"entry {i} is gone: the log now has only {new.size} entries", i)
        try:
            _, item = await self._request("GET", f"/entries/{i}", params={"size": new.size})
        except EntryRefused as exc:
            if exc.status == 404:
                raise LogVerificationError(f"entry {i} is missing from the log", i) from None
            raise
        try:
            served = parse_signed_entry(item.get("jws"))
        except EntryError as exc:
            raise LogVerificationError(f"entry {i}: the log serves something that is not a signed entry ({exc})",
                                       i) from None
        if served.leaf_hash != receipt.leaf_hash:
            raise LogVerificationError(f"entry {i} is not the entry this node logged there "
                                       "(it was changed, replaced or moved)", i)
        if item.get("leafIndex") != i:
            raise LogVerificationError(f"entry {i}: the log answered for index {item.get('leafIndex')!r}", i)
        proof = decode_proof(item.get("inclusionProof"), "inclusion proof")
        if not verify_inclusion(receipt.leaf_hash, i, new.size, proof, new.root_hash):
            raise LogVerificationError(f"entry {i} is no longer in the signed tree at that position", i)

    def _open(self, cp: str | Checkpoint) -> Checkpoint:
        if isinstance(cp, Checkpoint):
            return cp
        return open_checkpoint(cp, self.verifier_key, origin=self.origin)

    # -- listings (verified by the caller: see connector.clearinghouse.audit) --------

    async def process_page(self, process_id: str, *, after: int = -1, limit: int = 100,
                           size: int | None = None) -> dict:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if size is not None:
            params["size"] = size
        _, body = await self._request("GET", f"/processes/{quote(process_id, safe='')}/entries", params=params)
        return body

    async def entries_page(self, *, start: int = 0, limit: int = 1000, size: int | None = None,
                           proofs: bool = False) -> dict:
        params: dict[str, Any] = {"start": start, "limit": limit, "proofs": "true" if proofs else "false"}
        if size is not None:
            params["size"] = size
        _, body = await self._request("GET", "/entries", params=params)
        return body


def _json_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _message(raw: bytes) -> str:
    body = _json_or_none(raw)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return raw[:200].decode("utf-8", "replace")
