"""The native pseudonym kernel (connector/node/pseudonym_native.c): every output equals the
`hmac` module's, for any key (empty, short, longer than SHA-256's block), any value (empty,
non-ASCII, longer than a block), slices of arrays and several threads; compiled from scratch into
a fresh cache; and the Python path when it is switched off or cannot be built. Without a C compiler
or OpenSSL's headers the kernel tests skip here and fail under CI=true (.ci/run installs both)."""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.node import pseudonym_native


def expected(key: bytes, value: str) -> str:
    return "" if value == "" else "ps_" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    lib = pseudonym_native.kernel()
    if lib is None:
        reason = "the native pseudonym kernel is unavailable (a C compiler and libssl-dev are needed)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return lib


@pytest.fixture
def fresh(monkeypatch, tmp_path):  # noqa: ANN001, ANN201
    """kernel() decided again, with its cache in tmp_path; decided once more afterwards."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pseudonym_native.kernel.cache_clear()
    yield tmp_path
    pseudonym_native.kernel.cache_clear()


@settings(max_examples=200, deadline=None)
@given(key=st.binary(max_size=100), values=st.lists(st.text(max_size=80), max_size=50),
       start=st.integers(0, 10), threads=st.integers(1, 4))
def test_every_pseudonym_is_the_hmac_modules(kernel, key, values, start, threads):
    array = pa.array(["skipped"] * start + values, pa.string()).slice(start)  # an array at an offset
    got = pseudonym_native.pseudonymise(kernel, key, array, threads=threads).to_pylist()
    assert got == [expected(key, v) for v in values]


def test_many_values_on_several_threads_are_the_hmac_modules(kernel):
    key = os.urandom(32)
    values = [f"P{i:07d}" if i % 5 else "" for i in range(100_000)] + ["中" * 40]
    got = pseudonym_native.pseudonymise(kernel, key, pa.array(values), threads=4).to_pylist()
    assert got == [expected(key, v) for v in values]


def test_nulls_are_refused(kernel):
    with pytest.raises(ValueError, match="no nulls"):
        pseudonym_native.pseudonymise(kernel, b"k", pa.array(["a", None]))


def test_the_kernel_is_compiled_into_a_private_cache_and_logged(kernel, fresh, caplog):
    with caplog.at_level(logging.INFO, logger="connector.transform"):
        lib = pseudonym_native.kernel()
    assert lib is not None
    built = list((fresh / "hks-connector" / "native").glob("pseudonym-*.so"))
    assert len(built) == 1 and stat.S_IMODE(built[0].stat().st_mode) & 0o077 == 0
    assert "native OpenSSL kernel" in caplog.text
    assert pseudonym_native.pseudonymise(lib, b"k", pa.array(["x"])).to_pylist() == [expected(b"k", "x")]


def test_a_library_others_could_write_is_not_loaded(kernel, fresh, caplog):
    pseudonym_native.kernel()
    built = next((fresh / "hks-connector" / "native").glob("pseudonym-*.so"))
    built.chmod(0o777)
    pseudonym_native.kernel.cache_clear()
    with caplog.at_level(logging.INFO, logger="connector.transform"):
        assert pseudonym_native.kernel() is None
    assert "Python hmac path" in caplog.text and "not private" in caplog.text


def test_without_a_working_compiler_the_python_path_is_used(fresh, monkeypatch, caplog):
    monkeypatch.setenv("CC", "/bin/false")
    with caplog.at_level(logging.INFO, logger="connector.transform"):
        assert pseudonym_native.kernel() is None
    assert "Python hmac path (the native kernel is unavailable: compiling failed" in caplog.text


def test_switched_off_the_python_path_is_used(fresh, monkeypatch, caplog):
    monkeypatch.setenv(pseudonym_native.DISABLE_ENV, "0")
    with caplog.at_level(logging.INFO, logger="connector.transform"):
        assert pseudonym_native.kernel() is None
    assert f"Python hmac path ({pseudonym_native.DISABLE_ENV}=0)" in caplog.text
    assert not (fresh / "hks-connector").exists()


def test_values_of_every_length_around_the_one_block_shortcut_are_the_hmac_modules(kernel):
    # Up to 55 bytes the kernel pads the one final block itself; from 56 it hashes as OpenSSL does.
    key = os.urandom(32)
    values = ["x" * n for n in range(0, 140)] + ["é" * n for n in range(20, 40)]
    got = pseudonym_native.pseudonymise(kernel, key, pa.array(values), threads=1).to_pylist()
    assert got == [expected(key, v) for v in values]
    body = b"".join(b"%s,%d\n" % (v.encode(), i) for i, v in enumerate(values) if v)
    rows, count = pseudonym_native.csv_rows(kernel, key, body, 2, [0, 1], {0}, threads=1)
    assert rows.decode().splitlines() == [f"{expected(key, v)},{i}" for i, v in enumerate(values) if v]
    assert count == len(values) - 1
