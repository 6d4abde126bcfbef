"""The batch transformers give the same bytes as the record-by-record path, for any data, any
chunking and any batch size, with pseudonyms from the native kernel and from Python. CSV: quoted
fields, embedded newlines and commas, carriage returns, CRLF, a BOM, ragged and empty rows,
header-only files, non-ASCII text, repeated and empty values to pseudonymise. NDJSON and JSON
arrays: any JSON values, blank lines, whitespace and indentation, nested objects and arrays,
truncated and trailing data."""
from __future__ import annotations

import csv
import io
import json
import re

import orjson

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.node.transform import (CsvTransformer, JsonArrayTransformer, Modification, NdjsonTransformer,
                                      TransformError, transformer)
from connector.node.transform_arrow import ArrowCsvTransformer
from connector.node.transform_json import BatchJsonArrayTransformer, BatchNdjsonTransformer

NAMES = ["id", "name", "phone", "age", "note"]
FIELD = st.one_of(st.sampled_from(["", "a", "P001", "P002", "x y", "é中", "1.5", " lead"]),
                  st.text(alphabet="ab,\"\n\r é", max_size=6))


def write(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode()


def run(tx, data: bytes, cuts: list[int]) -> bytes | type:
    try:
        parts, last = [], 0
        for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
            parts.append(tx.feed(data[last:cut]))
            last = cut
        parts.append(tx.finish())
        return b"".join(parts)
    except (TransformError, ValueError, csv.Error) as exc:
        return type(exc)


@st.composite
def csv_data(draw):  # noqa: ANN001, ANN201
    header = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5))
    width = len(header)
    plain = st.lists(st.sampled_from(["", "a", "P001", "P002", "é中", "7"]), min_size=width, max_size=width)
    rows = draw(st.lists(st.one_of(plain, st.lists(FIELD, min_size=0, max_size=width + 1)), max_size=40))
    data = write(header, rows)
    if draw(st.booleans()):
        data = data.replace(b"\n", b"\r\n") if draw(st.booleans()) else data.rstrip(b"\n")
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_data(), drop=st.sets(st.sampled_from(NAMES)), pseudo=st.sets(st.sampled_from(NAMES)),
       cuts=st.lists(st.integers(0, 10_000), max_size=6), batch=st.sampled_from([1, 16, 64, 1 << 22]),
       native=st.booleans())
def test_the_batch_path_writes_what_the_record_path_writes(data, drop, pseudo, cuts, batch, native):
    mod = Modification(frozenset(drop), frozenset(pseudo - drop), b"k" * 32)
    assert run(ArrowCsvTransformer(mod, batch=batch, native=native), data, cuts) == run(CsvTransformer(mod), data, cuts)


def test_a_large_plain_csv_takes_the_batch_path_and_matches():
    rows = [[f"P{i % 997:04d}", f"Name {i}", str(20 + i % 60), "" if i % 7 else "x"] for i in range(20_000)]
    data = write(["id", "name", "age", "note"], rows)
    mod = Modification(frozenset({"name"}), frozenset({"id"}), b"k" * 32)
    for native in (True, False):
        fast = ArrowCsvTransformer(mod, batch=64 * 1024, native=native)
        assert run(fast, data, list(range(0, len(data), 10_000))) == run(CsvTransformer(mod), data, [])
        assert fast.batched_rows == 20_000  # every row through the batch path


@pytest.mark.parametrize(("kind", "batched"), [("csv", ArrowCsvTransformer), ("ndjson", BatchNdjsonTransformer),
                                               ("json", BatchJsonArrayTransformer)])
def test_the_data_plane_gets_the_batch_transformers(kind, batched):
    assert isinstance(transformer(kind, Modification(frozenset({"a"}), frozenset(), b"k")), batched)


@given(key=st.binary(min_size=0, max_size=100), value=st.text(max_size=50))
def test_the_precomputed_hmac_is_the_modifications_pseudonym(key, value):
    from connector.node.transform_arrow import pseudonymiser

    assert pseudonymiser(key)(value) == Modification(frozenset(), frozenset(), key).pseudonym(value)


# ---------------------------------------------------------------------------- NDJSON and JSON arrays
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                   st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["", "P001", "P002", "é中"]),
                   st.text(max_size=8))
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)),
                     max_leaves=8)
RECORD = st.dictionaries(st.sampled_from(NAMES), VALUE, max_size=5)
ELEMENT = st.one_of(RECORD, RECORD, RECORD, VALUE)
SPACE = st.sampled_from(["", "", " ", "\n", "\r\n  ", "\t"])


@st.composite
def ndjson_data(draw):  # noqa: ANN001, ANN201
    lines = []
    for element in draw(st.lists(ELEMENT, max_size=30)):
        line = json.dumps(element, ensure_ascii=draw(st.booleans()), indent=None)
        lines.append(draw(st.sampled_from(["", "", "", "  ", "{bad", "1 2"])) if draw(st.integers(0, 15)) == 0 else line)
    end = draw(st.sampled_from(["\n", "", "\r\n", "\n\n", " "]))
    return (draw(st.sampled_from(["\n", "\r\n"])).join(lines) + end).encode()


@st.composite
def json_array_data(draw):  # noqa: ANN001, ANN201
    elements = draw(st.lists(ELEMENT, max_size=30))
    parts = [json.dumps(e, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, 1]))) for e in elements]
    separators = [draw(SPACE) + draw(st.sampled_from([",", ",", ",", ",,", ""])) + draw(SPACE) for _ in parts[1:]]
    body = parts[0] if parts else ""
    for sep, part in zip(separators, parts[1:]):
        body += sep + part
    data = (draw(SPACE) + "[" + draw(SPACE) + body + draw(SPACE) + draw(st.sampled_from(["]", "]", "]", ",]", "", "] x"]))
            + draw(SPACE)).encode()
    return data[:draw(st.integers(0, len(data)))] if draw(st.integers(0, 9)) == 0 else data


@pytest.mark.parametrize(("shape", "batched", "record"), [(ndjson_data, BatchNdjsonTransformer, NdjsonTransformer),
                                                      (json_array_data, BatchJsonArrayTransformer, JsonArrayTransformer)])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(draw=st.data(), drop=st.sets(st.sampled_from(NAMES)), pseudo=st.sets(st.sampled_from(NAMES)),
       cuts=st.lists(st.integers(0, 10_000), max_size=6), batch=st.sampled_from([1, 16, 64, 1 << 22]),
       native=st.booleans())
def test_the_json_batch_paths_write_what_the_record_paths_write(shape, batched, record, draw, drop, pseudo, cuts,
                                                                 batch, native):
    data = draw.draw(shape())
    mod = Modification(frozenset(drop), frozenset(pseudo - drop), b"k" * 32)
    assert run(batched(mod, batch=batch, native=native), data, cuts) == run(record(mod), data, cuts)


def test_large_json_batches_take_the_batch_path_and_match():
    records = [{"id": f"P{i:05d}", "name": f"Name {i}", "age": i % 90, "tags": [{"a": i}, {"b": None}], "note": ""}
               for i in range(5_000)] + [{"id": ""}, {"id": 7}, {"id": None}, [1, {"id": "x"}], "text"]
    mod = Modification(frozenset({"name"}), frozenset({"id", "note"}), b"k" * 32)
    ndjson = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)
    array = orjson.dumps(records, option=orjson.OPT_INDENT_2)
    cuts = list(range(0, len(array), 7_000))
    for native in (True, False):
        assert run(BatchNdjsonTransformer(mod, batch=32 * 1024, native=native), ndjson, cuts) == \
            run(NdjsonTransformer(mod), ndjson, [])
        batched = BatchJsonArrayTransformer(mod, batch=32 * 1024, native=native)
        assert run(batched, array, cuts) == run(JsonArrayTransformer(mod), array, [])
        assert batched.batched_elements > 4_500  # most elements in orjson batches, not through the scanner


@pytest.mark.parametrize("indent", [None, orjson.OPT_INDENT_2])
def test_json_records_with_nested_objects_take_the_batch_path_and_bad_data_is_parsed_a_bounded_number_of_times(
        monkeypatch, indent):
    # Every record holds an array of objects, so most candidate element ends are inside a record:
    # the batch path must still find the records' ends, and data it cannot parse goes to the
    # scanner after a bounded number of tries per batch, never one per element.
    records = [{"id": f"P{i}", "tags": [{"k": j} for j in range(8)]} for i in range(3_000)]
    mod = Modification(frozenset(), frozenset({"id"}), b"k" * 32)
    good = orjson.dumps(records, option=indent or 0)
    batched = BatchJsonArrayTransformer(mod, batch=32 * 1024)
    assert run(batched, good, list(range(0, len(good), 4096))) == run(JsonArrayTransformer(mod), good, [])
    assert batched.batched_elements > 2_500
    bad = good[:-1] + b',{"id": x}]'
    parsed: list[int] = []
    loads = orjson.loads
    monkeypatch.setattr(orjson, "loads", lambda text: parsed.append(len(text)) or loads(text))
    batched = BatchJsonArrayTransformer(mod, batch=32 * 1024)
    with monkeypatch.context() as m:
        m.setattr("connector.node.transform_json._element_end_like", lambda head: re.compile(rb"\},(?P<next>\{)"))
        assert run(batched, bad, list(range(0, len(bad), 4096))) is TransformError  # every "},{" is a candidate
    assert sum(1 for n in parsed if n > 1024) <= 4 * (len(bad) // (32 * 1024) + 1)


# ---------------------------------------------------------------------------- the native CSV pass
def _native_or_skip():
    from connector.node import pseudonym_native

    lib = pseudonym_native.kernel()
    if lib is None:
        if __import__("os").environ.get("CI"):
            pytest.fail("the native kernel is unavailable under CI (a C compiler and libssl-dev are needed)")
        pytest.skip("no native kernel here")
    return pseudonym_native, lib


@pytest.mark.parametrize("threads", [1, 2, 3, 4])
def test_the_native_csv_pass_on_several_threads_writes_what_the_record_path_writes(threads):
    native, lib = _native_or_skip()
    header = ["id", "name", "age", "note"]
    rows = [[f"P{i % 991:04d}", f"Name é{i}", str(i % 90), "" if i % 5 else "中"] for i in range(60_000)]
    body = write(header, rows).split(b"\n", 1)[1]
    body = body.replace(b"\nP0003,", b"\n\nP0003,")  # empty lines, in every thread's range
    mod = Modification(frozenset({"name"}), frozenset({"id", "note"}), b"k" * 32)
    expected = run(CsvTransformer(mod), write(header, []) + body, [])
    head = run(CsvTransformer(mod), write(header, []), [])
    for data in (body, body.rstrip(b"\n")):  # the last line with and without its newline
        got, rows = native.csv_rows(lib, mod.key, data, 4, [0, 2, 3], {0, 3}, threads=threads)
        assert head + got == expected
        assert rows == 60_000


@pytest.mark.parametrize("bad", [b"P1,a,b\n", b"P1,a,b,c,d\n", b"P1," + b"x" * 131_073 + b",1,2\n", b"\n,,,\n"])
def test_the_native_csv_pass_refuses_a_batch_with_a_row_it_cannot_read_as_csv_reader_does(bad):
    native, lib = _native_or_skip()
    good = b"".join(b"P%d,n,1,x\n" % i for i in range(40_000))
    where = len(good) * 3 // 4
    where = good.index(b"\n", where) + 1
    data = good[:where] + bad + good[where:]
    got = native.csv_rows(lib, b"k", data, 4, [0, 1, 3], {0}, threads=4)
    if bad == b"\n,,,\n":  # an empty line and a row of four empty fields: both fine
        assert got is not None and got[1] == 40_001 and got[0].count(b"\n") == 40_001
    else:
        assert got is None


def test_a_csv_with_an_overlong_field_or_invalid_utf8_is_the_record_paths_to_judge():
    header = ["id", "name", "age"]
    mod = Modification(frozenset({"name"}), frozenset({"id"}), b"k" * 32)
    for body in (b"P1," + b"x" * 140_000 + b",3\n", b"P1,\xff\xfe,3\n"):
        data = write(header, []) + b"P0,a,1\n" * 1000 + body
        expected = run(CsvTransformer(mod), data, [])
        assert expected in (csv.Error, UnicodeDecodeError, ValueError)
        for native in (True, False):
            assert run(ArrowCsvTransformer(mod, batch=1 << 22, native=native), data, []) == expected
