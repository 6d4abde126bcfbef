"""The batch (pyarrow) CSV modification gives the same bytes as the record-by-record path, for any
CSV, any chunking and any batch size: quoted fields, embedded newlines and commas, carriage
returns, ragged and empty rows, non-ASCII text, repeated and empty values to pseudonymise."""
from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.node.transform import CsvTransformer, Modification, TransformError, transformer
from connector.node.transform_arrow import ArrowCsvTransformer

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
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_data(), drop=st.sets(st.sampled_from(NAMES)), pseudo=st.sets(st.sampled_from(NAMES)),
       cuts=st.lists(st.integers(0, 10_000), max_size=6), batch=st.sampled_from([1, 16, 64, 1 << 22]))
def test_the_batch_path_writes_what_the_record_path_writes(data, drop, pseudo, cuts, batch):
    mod = Modification(frozenset(drop), frozenset(pseudo - drop), b"k" * 32)
    assert run(ArrowCsvTransformer(mod, batch=batch), data, cuts) == run(CsvTransformer(mod), data, cuts)


def test_a_large_plain_csv_takes_the_batch_path_and_matches():
    rows = [[f"P{i % 997:04d}", f"Name {i}", str(20 + i % 60), "" if i % 7 else "x"] for i in range(20_000)]
    data = write(["id", "name", "age", "note"], rows)
    mod = Modification(frozenset({"name"}), frozenset({"id"}), b"k" * 32)
    fast = ArrowCsvTransformer(mod, batch=64 * 1024)
    assert run(fast, data, list(range(0, len(data), 10_000))) == run(CsvTransformer(mod), data, [])
    assert 0 < len(fast.pseudonyms) <= 997  # computed once per distinct value, through the batch path


@pytest.mark.parametrize("kind", ["csv"])
def test_the_data_plane_gets_the_batch_transformer_for_csv(kind):
    assert isinstance(transformer(kind, Modification(frozenset({"a"}), frozenset(), b"k")), ArrowCsvTransformer)


@given(key=st.binary(min_size=0, max_size=100), value=st.text(max_size=50))
def test_the_precomputed_hmac_is_the_modifications_pseudonym(key, value):
    from connector.node.transform_arrow import pseudonymiser

    assert pseudonymiser(key)(value) == Modification(frozenset(), frozenset(), key).pseudonym(value)
