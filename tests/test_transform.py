"""Modification in transit (pure): the same result however the data is cut into chunks."""
import csv
import io
import json

import pytest
from hypothesis import given, settings, strategies as st

from connector.node.transform import (
    CsvTransformer, JsonArrayTransformer, Modification, NdjsonTransformer, TransformError,
)

MOD = Modification(frozenset({"name", "phone"}), frozenset({"patient_id"}), b"provider-secret")


def run(t, data: bytes, cuts: list[int]) -> bytes:
    out, last = b"", 0
    for cut in sorted(set(c % (len(data) + 1) for c in cuts)):
        out += t.feed(data[last:cut])
        last = cut
    out += t.feed(data[last:])
    return out + t.finish()


CSV = ('patient_id,name,phone,age,diagnosis_code\n'
       'P001,"Chan, Tai Man",91234567,54,E11\n'
       'P002,"Multi\nline ""quoted""",92345678,61,I10\n'
       'P001,Wong,93456789,33,\n').encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=500), max_size=8))
def test_csv_drops_and_pseudonymises_whatever_the_chunking(cuts):
    out = run(CsvTransformer(MOD), CSV, cuts).decode()
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["patient_id", "age", "diagnosis_code"]
    assert [r[1:] for r in rows[1:]] == [["54", "E11"], ["61", "I10"], ["33", ""]]
    assert rows[1][0] == rows[3][0] != "P001" and rows[1][0].startswith("ps_")  # linkable, not reversible
    assert rows[2][0] != rows[1][0]
    assert "Chan" not in out and "9123" not in out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_json_array_and_ndjson_whatever_the_chunking(cuts):
    records = [{"patient_id": "P1", "name": "A, \"]} B", "phone": "1", "age": 3, "nested": {"a": [1, {"b": "]"}]}},
               {"patient_id": "P2", "age": 4}, 7, "text"]
    arr = run(JsonArrayTransformer(MOD), json.dumps(records, indent=1).encode(), cuts)
    back = json.loads(arr)
    assert back[0] == {"patient_id": MOD.pseudonym("P1"), "age": 3, "nested": {"a": [1, {"b": "]"}]}}
    assert back[1] == {"patient_id": MOD.pseudonym("P2"), "age": 4} and back[2:] == [7, "text"]
    nd = run(NdjsonTransformer(MOD), b"".join(json.dumps(r).encode() + b"\n" for r in records), cuts)
    assert [json.loads(line) for line in nd.splitlines()] == back


def test_broken_data_is_an_error_not_a_truncated_success():
    with pytest.raises(TransformError):
        run(JsonArrayTransformer(MOD), b'[{"a": 1}, {"b": ', [])
    with pytest.raises(TransformError):
        run(CsvTransformer(MOD), b'a,b\n"unclosed,1\n', [])
    with pytest.raises(TransformError):
        run(NdjsonTransformer(MOD), b'{"a": 1}\n{broken\n', [])
    with pytest.raises(TransformError):
        run(JsonArrayTransformer(MOD), b'{"not": "an array"}', [])
