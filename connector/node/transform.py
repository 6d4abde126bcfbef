"""Modification in transit: drop or pseudonymise named fields record by record as the
data streams (CSV, NDJSON, JSON arrays of objects). Pure: bytes in, bytes out; memory
is bounded by the largest record, not the size of the data."""
from __future__ import annotations

import csv
import hashlib
import hmac
import io
from dataclasses import dataclass
from typing import Any, Iterable

import orjson
from ..errors import NodeError


class TransformError(NodeError, ValueError):
    """The data does not have the shape its content type promises."""


@dataclass(frozen=True)
class Modification:
    drop: frozenset[str]
    pseudonymise: frozenset[str]
    key: bytes

    @property
    def active(self) -> bool:
        return bool(self.drop or self.pseudonymise)

    def pseudonym(self, value: Any) -> str:
        # Keyed: the same value always gives the same pseudonym for this provider
        # (records stay linkable), and without the key it cannot be reversed or guessed.
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        return "ps_" + hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def record(self, obj: dict) -> dict:
        out = {}
        for k, v in obj.items():
            if k in self.drop:
                continue
            out[k] = self.pseudonym(v) if k in self.pseudonymise and v is not None else v
        return out


def modification_from_duties(duties: Iterable[Any], key: bytes) -> Modification:
    drop: set[str] = set()
    pseudo: set[str] = set()
    for duty in duties:
        if duty.kind == "drop-fields":
            drop.update(duty.param("fields") or ())
        elif duty.kind == "pseudonymise-fields":
            pseudo.update(duty.param("fields") or ())
    return Modification(frozenset(drop), frozenset(pseudo - drop), key)


def kind_of(content_type: str | None, name: str = "") -> str | None:
    """csv | ndjson | json, or None for data that cannot be modified record by record."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in ("text/csv", "application/csv") or name.endswith(".csv"):
        return "csv"
    if ct in ("application/x-ndjson", "application/ndjson", "application/jsonl") or name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    if ct == "application/json" or name.endswith(".json"):
        return "json"
    return None


class _Lines:
    """Split a byte stream into complete lines; keeps the unfinished tail, in parts joined only
    when a newline ends it (linear in a long line, not quadratic)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    @property
    def tail(self) -> bytes:
        return b"".join(self._parts)

    @tail.setter
    def tail(self, value: bytes) -> None:
        self._parts = [value] if value else []

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            if chunk:
                self._parts.append(chunk)
            return []
        lines = b"".join([*self._parts, chunk]).split(b"\n")
        last = lines.pop()
        self._parts = [last] if last else []
        return lines


class CsvTransformer:
    """Records are whole CSV records (a quoted field may hold newlines)."""

    def __init__(self, mod: Modification) -> None:
        self.mod = mod
        self.lines = _Lines()
        self.pending: list[str] = []  # the lines of an unfinished record (open quote), joined when it closes
        self.header: list[str] | None = None
        self.keep: list[int] = []
        self.pseudo: set[int] = set()

    def feed(self, chunk: bytes) -> bytes:
        return self._records(self.lines.feed(chunk))

    def finish(self) -> bytes:
        out = self._records([self.lines.tail] if self.lines.tail else [])
        self.lines.tail = b""
        if self.pending:
            raise TransformError("the CSV data ends inside a quoted field")
        return out

    def _records(self, lines: list[bytes]) -> bytes:
        complete = []
        for raw in lines:
            text = raw.decode("utf-8")
            odd = text.count('"') % 2 == 1
            if self.pending:  # an open quote: an odd count of quotes on this line closes it
                self.pending.append(text)
                if odd:
                    complete.append("\n".join(self.pending))
                    self.pending = []
                continue
            if odd:  # a quoted field opens: the record continues on the next line
                self.pending = [text]
                continue
            complete.append(text)
        if not complete:
            return b""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for row in csv.reader(complete):
            if self.header is None:
                self.header = row
                self.keep = [i for i, name in enumerate(row) if name not in self.mod.drop]
                self.pseudo = {i for i, name in enumerate(row) if name in self.mod.pseudonymise}
                writer.writerow([row[i] for i in self.keep])
                continue
            if not row:
                continue
            writer.writerow([self.mod.pseudonym(row[i]) if i in self.pseudo and row[i] != "" else row[i]
                             for i in self.keep if i < len(row)])
        return buf.getvalue().encode("utf-8")


class NdjsonTransformer:
    def __init__(self, mod: Modification) -> None:
        self.mod = mod
        self.lines = _Lines()

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._line(line) for line in self.lines.feed(chunk))

    def finish(self) -> bytes:
        tail, self.lines.tail = self.lines.tail, b""
        return self._line(tail, last=True) if tail.strip() else b""

    def _line(self, line: bytes, last: bool = False) -> bytes:
        if not line.strip():
            return b"" if last else b"\n"
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TransformError(f"an NDJSON line is not valid JSON: {exc}") from None
        if isinstance(obj, dict):
            obj = self.mod.record(obj)
        return orjson.dumps(obj) + b"\n"


class JsonArrayTransformer:
    """A top-level JSON array, split into its elements by a small scanner that tracks
    strings and nesting, so each element is parsed alone."""

    def __init__(self, mod: Modification) -> None:
        self.mod = mod
        self.buf = bytearray()
        self.started = False
        self.ended = False
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.element_start = -1
        self.first = True
        self.scan_from = 0

    def feed(self, chunk: bytes) -> bytes:
        self.buf += chunk
        out = bytearray()
        i = self.scan_from
        buf = self.buf
        while i < len(buf):
            c = buf[i]
            if not self.started:
                if c == 0x5B:  # [
                    self.started = True
                    out += b"["
                elif c not in b" \t\r\n":
                    raise TransformError("the JSON data is not an array of records")
                i += 1
                continue
            if self.ended:
                if c not in b" \t\r\n":
                    raise TransformError("unexpected data after the JSON array")
                i += 1
                continue
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif c == 0x5C:  # backslash
                    self.escaped = True
                elif c == 0x22:
                    self.in_string = False
                i += 1
                continue
            if c == 0x22:
                self.in_string = True
                if self.element_start < 0:
                    self.element_start = i
            elif c in b"[{":
                if self.element_start < 0:
                    self.element_start = i
                self.depth += 1
            elif c in b"]}":
                if self.depth == 0:  # the end of the top-level array
                    self._emit(i, out)
                    out += b"]"
                    self.ended = True
                else:
                    self.depth -= 1
            elif c == 0x2C and self.depth == 0:  # a comma between top-level elements
                self._emit(i, out)
            elif c not in b" \t\r\n" and self.element_start < 0:
                self.element_start = i
            i += 1
        # drop what has been emitted; keep the current element
        keep_from = self.element_start if self.element_start >= 0 else len(buf)
        del self.buf[:keep_from]
        if self.element_start >= 0:
            self.element_start = 0
        self.scan_from = len(self.buf)
        return bytes(out)

    def _emit(self, end: int, out: bytearray) -> None:
        if self.element_start < 0:
            return
        raw = bytes(self.buf[self.element_start:end])
        self.element_start = -1
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise TransformError(f"an array element is not valid JSON: {exc}") from None
        if isinstance(obj, dict):
            obj = self.mod.record(obj)
        if not self.first:
            out += b","
        self.first = False
        out += orjson.dumps(obj)

    def finish(self) -> bytes:
        if not self.ended:
            raise TransformError("the JSON array is not closed")
        return b""


def transformer(kind: str, mod: Modification):  # noqa: ANN201
    """The batch transformer for `kind`: the same bytes as the record path's, in large batches."""
    if kind == "csv":
        from .transform_arrow import ArrowCsvTransformer
        return ArrowCsvTransformer(mod)
    from .transform_json import BatchJsonArrayTransformer, BatchNdjsonTransformer
    return {"ndjson": BatchNdjsonTransformer, "json": BatchJsonArrayTransformer}[kind](mod)
