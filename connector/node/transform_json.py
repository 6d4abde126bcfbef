"""Modification in transit in large batches for NDJSON and JSON arrays (issue 16, item 2).

orjson parses and writes the records, as the record path (`NdjsonTransformer`,
`JsonArrayTransformer`) does, so the bytes are the same (a property test compares them); what a
batch saves is the per-record work around it: pseudonyms for a whole batch in one call (the
native kernel, see pseudonym_native.py), and for JSON arrays one orjson call per batch of
elements instead of a Python loop over every byte. Memory: one batch and its records."""
from __future__ import annotations

import re
from collections import deque
from functools import partial
from itertools import repeat

import orjson

from .transform import JsonArrayTransformer, Modification, NdjsonTransformer, TransformError
from .transform_arrow import BATCH, Batches, Pseudonyms

_WHITESPACE = b" \t\r\n"  # JSON's, as JsonArrayTransformer skips it
# The end of an object or array, a comma and the start of the next: where a top-level element
# may end. Only a candidate: orjson parsing the elements before it whole is the proof.
_ELEMENT_END = re.compile(rb"[}\]][ \t\r\n]*,[ \t\r\n]*(?P<next>[{\[])")
_TAIL_WINDOW = 64 * 1024
_CANDIDATES = 4  # parses tried per batch, at most
_FIRST_KEY = re.compile(rb'[ \t\r\n]*(\{[ \t\r\n]*"[^"\\]{0,64}"[ \t\r\n]*:)')


def _element_end_like(head: bytes) -> re.Pattern:
    """A candidate end followed by an object that starts with the same key as `head`'s: records
    usually do, objects nested in them usually not, so fewer candidates fail to parse."""
    first = _FIRST_KEY.match(head)
    if first is None:
        return _ELEMENT_END
    return re.compile(rb"[}\]][ \t\r\n]*,[ \t\r\n]*(?P<next>" + re.escape(first.group(1)) + rb")")


class RecordBatch:
    """`Modification.record` on many parsed values at once, in place (dropping keeps the order
    of the rest and replacing keeps a key's place, so the objects equal the record path's)."""

    def __init__(self, mod: Modification, native: bool = True) -> None:
        self.drop = tuple(mod.drop)
        self.pseudonymise = tuple(mod.pseudonymise)
        self.pseudonyms = Pseudonyms(mod.key, native) if mod.pseudonymise else None

    def modify(self, values: list) -> None:
        # map() over the records keeps the per-record loops in C: they are most of the cost.
        records = [v for v in values if type(v) is dict]
        for name in self.drop:
            deque(map(dict.pop, records, repeat(name), repeat(None)), maxlen=0)
        for name in self.pseudonymise:
            found = list(map(dict.get, records, repeat(name)))
            if set(map(type, found)) != {str}:  # absent, null or not a string: as the record path does
                holders = [r for r, v in zip(records, found, strict=True) if v is not None]
                found = [v if type(v) is str else orjson.dumps(v).decode() for v in found if v is not None]
            else:
                holders = records
            if found:
                deque(map(dict.__setitem__, holders, repeat(name), self.pseudonyms.texts(found)), maxlen=0)


class BatchNdjsonTransformer:
    def __init__(self, mod: Modification, batch: int = BATCH, native: bool = True) -> None:
        self.batches = Batches(batch)
        self.records = RecordBatch(mod, native)

    def feed(self, chunk: bytes) -> bytes:
        batch = self.batches.feed(chunk)
        return self._lines(batch.split(b"\n")[:-1]) if batch else b""

    def finish(self) -> bytes:
        lines = self.batches.rest().split(b"\n")
        last = lines.pop()  # after the last newline: written only when it holds a record
        return self._lines(lines + [last] if last.strip() else lines)

    def _lines(self, lines: list[bytes]) -> bytes:
        try:
            values = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:  # a blank line (written as a newline) or a bad one
            values = list(map(_line_value, lines))
        self.records.modify(values)
        if _BLANK in values:
            return b"".join(b"\n" if v is _BLANK else _dumps_line(v) for v in values)
        return b"".join(map(_dumps_line, values))


def _line_value(line: bytes) -> object:
    if not line.strip():
        return _BLANK
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise TransformError(f"an NDJSON line is not valid JSON: {exc}") from None


_dumps_line = partial(orjson.dumps, option=orjson.OPT_APPEND_NEWLINE)
_BLANK = object()


class BatchJsonArrayTransformer:
    """The record path's scanner owns the stream wherever it is not between two elements; from
    there on, a batch's elements up to the last element end are parsed by orjson in one call."""

    def __init__(self, mod: Modification, batch: int = BATCH, native: bool = True) -> None:
        self.scanner = JsonArrayTransformer(mod)
        self.records = RecordBatch(mod, native)
        self.batch = batch
        self.parts: list[bytes] = []
        self.held = 0
        self.batched_elements = 0
        self.element_end: re.Pattern | None = None  # learnt from the first element

    def feed(self, chunk: bytes) -> bytes:
        self.parts.append(chunk)
        self.held += len(chunk)
        if self.held < self.batch:
            return b""
        data = b"".join(self.parts)
        self.parts, self.held = [], 0
        return self._data(data)

    def finish(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.held = [], 0
        return self._data(data) + self.scanner.finish()

    def _between_elements(self) -> bool:
        s = self.scanner
        return s.started and not s.ended and s.element_start < 0 and not s.buf

    def _data(self, data: bytes) -> bytes:
        out = []
        if not self.scanner.started:  # the opening bracket (or the error) is the scanner's
            first = len(data) - len(data.lstrip(_WHITESPACE))
            out.append(self.scanner.feed(data[:first + 1]))
            data = data[first + 1:]
        pos = 0
        tried = False  # one try per batch: retrying at every element could parse the batch again each time
        while pos < len(data):
            if not tried and self._between_elements():
                tried = True
                taken, pos = self._elements(data, pos)
                out.append(taken)
                continue
            if tried:
                end = len(data)
            else:  # up to the next candidate end: the scanner may be between elements there
                m = _ELEMENT_END.search(data, pos)
                end = m.start("next") if m else len(data)
            out.append(self.scanner.feed(data[pos:end]))
            pos = end
        return b"".join(out)

    def _elements(self, data: bytes, pos: int) -> tuple[bytes, int]:
        """The elements from `pos` (between elements) to the last candidate end where orjson reads
        them as a sequence of whole elements; else nothing. Returns output and where to go on."""
        if self.element_end is None:
            self.element_end = _element_end_like(data[pos:pos + 256])
        candidates = []
        for pattern in (self.element_end, _ELEMENT_END):  # followed by a record like the first one, then any
            candidates = list(pattern.finditer(data, max(pos, len(data) - _TAIL_WINDOW)))
            if not candidates and len(data) - pos > _TAIL_WINDOW:
                candidates = list(pattern.finditer(data, pos))
            if candidates:
                break
        for end in reversed(candidates[-_CANDIDATES:]):
            text = b"[" + data[pos:end.start() + 1] + b"]"
            try:
                values = orjson.loads(text)
                break
            except orjson.JSONDecodeError:
                continue  # inside an element (an object in a nested array), or bad data: an earlier one
        else:
            return b"", pos  # the scanner decides
        self.records.modify(values)
        self.batched_elements += len(values)
        try:
            written = orjson.dumps(values)[1:-1]
        except orjson.JSONEncodeError:  # nested one level too deep as a list: one by one, as the record path writes them
            written = b",".join(orjson.dumps(v) for v in values)
        if not self.scanner.first:
            written = b"," + written
        self.scanner.first = False
        return written, end.start("next")  # the comma is taken: the scanner is between elements again
