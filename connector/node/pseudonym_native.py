"""Pseudonyms for a whole Arrow string array in one native call, and plain CSV rows dropped and
pseudonymised in one native pass (issue 16, item 2).

Pseudonymising costs one HMAC-SHA256 per distinct value; in a Python loop that is about 1 µs a
value, far too slow for CSV at disk speed (bench/dataplane.py). `pseudonym_native.c` does the loop
over the array's buffers with OpenSSL's SHA-256, on several threads, without the GIL.

CSV: pyarrow's own read and write of a CSV without any change runs at about 115 MB/s on the
project's 2-core machines, below the issue's 150 MB/s for the modified CSV, so no path through
pyarrow's reader and writer can meet it. A batch of plain rows (no quote, CR or NUL) needs no CSV
parser: `hks_csv_rows` splits it on newlines and commas, copies the kept fields and writes the
pseudonyms in one pass (bench/dataplane.py measures both; the property test in
tests/test_transform_arrow.py compares its bytes with the record path's).

The kernel is optional: it is compiled on first use with the system's C compiler against OpenSSL's
headers (Debian: libssl-dev) into a per-user cache directory, and loaded with ctypes. Without a
compiler or headers, or with CONNECTOR_NATIVE_PSEUDONYMS=0, `kernel()` is None and callers use the
Python path; one log line says which path this process uses."""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pyarrow as pa

from ..errors import NodeError

log = logging.getLogger("connector.transform")

SOURCE = Path(__file__).with_suffix(".c")
PSEUDONYM_LEN = 35  # "ps_" + 32 hex digits
DISABLE_ENV = "CONNECTOR_NATIVE_PSEUDONYMS"
COMPILE_TIMEOUT = 120


class NativeUnavailable(NodeError):
    """The kernel cannot be built or loaded here; the Python path is used (never raised to callers)."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hks-connector" / "native"


def _private(path: Path) -> bool:
    """Ours alone: a library another user could have written must never be loaded."""
    st = path.stat()
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _compiled() -> Path:
    source = SOURCE.read_bytes()
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise NativeUnavailable("no C compiler")
    tag = hashlib.sha256(source + platform.machine().encode() + compiler.encode()).hexdigest()[:16]
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _private(directory):
        raise NativeUnavailable(f"{directory} is not private to this user")
    target = directory / f"pseudonym-{tag}.so"
    if target.exists():
        if not _private(target):
            raise NativeUnavailable(f"{target} is not private to this user")
        return target
    fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(fd)
    try:
        done = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", partial, str(SOURCE), "-lcrypto", "-pthread"],
                              capture_output=True, timeout=COMPILE_TIMEOUT, check=False)
        if done.returncode != 0:
            first = (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[0]
            raise NativeUnavailable(f"compiling failed: {first[:200]}")
        os.chmod(partial, 0o700)
        os.replace(partial, target)  # atomic: processes compiling at once each load a whole library
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


@functools.cache
def kernel() -> ctypes.CDLL | None:
    """The loaded kernel, or None (the Python path); decided once per process."""
    if os.environ.get(DISABLE_ENV, "1").strip() == "0":
        log.info("pseudonyms: Python hmac path (%s=0)", DISABLE_ENV)
        return None
    try:
        path = _compiled()
        lib = ctypes.CDLL(str(path))
    except (NativeUnavailable, OSError, subprocess.SubprocessError) as exc:
        log.info("pseudonyms: Python hmac path (the native kernel is unavailable: %s)", exc)
        return None
    fn = lib.hks_pseudonymise
    fn.restype = ctypes.c_int64
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                   ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
    rows = lib.hks_csv_rows
    rows.restype = ctypes.c_int64
    rows.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int32,
                     ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                     ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    lib.hks_free.restype = None
    lib.hks_free.argtypes = [ctypes.c_void_p]
    log.info("pseudonyms: native OpenSSL kernel (%s)", path)
    return lib


THREADS = max(1, min(4, os.cpu_count() or 1))


def pseudonymise(lib: ctypes.CDLL, key: bytes, values: pa.Array, threads: int = THREADS) -> pa.StringArray:
    """`Modification.pseudonym` of every value of a string array without nulls; empty stays empty."""
    if values.null_count:
        raise ValueError("the kernel takes no nulls")
    if values.type != pa.string():
        values = values.cast(pa.string())
    n = len(values)
    if n * PSEUDONYM_LEN >= 2**31:
        raise ValueError("too many values for one call")
    offsets = values.buffers()[1]
    data = values.buffers()[2]
    out = pa.allocate_buffer(max(1, n * PSEUDONYM_LEN))
    out_offsets = pa.allocate_buffer((n + 1) * 4)
    written = lib.hks_pseudonymise(key, len(key), offsets.address + values.offset * 4,
                                   data.address if data is not None else 0, n, out.address, out_offsets.address,
                                   threads)
    return pa.StringArray.from_buffers(n, out_offsets, out.slice(0, written))


def csv_rows(lib: ctypes.CDLL, key: bytes, data: bytes, fields: int, keep: set[int] | list[int], pseudo: set[int],
             threads: int = THREADS) -> tuple[bytes, int] | None:
    """The rows of `data` (whole lines, no quote, CR or NUL) with only the fields `keep` (at least
    two), those in `pseudo` pseudonymised unless empty, and their number; None when a row does not
    have `fields` fields or a field is longer than csv.reader takes (the record path decides those)."""
    keep_mask = bytes(1 if i in keep else 0 for i in range(fields))
    pseudo_mask = bytes(1 if i in pseudo else 0 for i in range(fields))
    out, rows = ctypes.c_void_p(), ctypes.c_int64()
    written = lib.hks_csv_rows(key, len(key), data, len(data), fields, keep_mask, pseudo_mask, ctypes.byref(out),
                               ctypes.byref(rows), threads)
    if written == -2:
        raise MemoryError("the CSV kernel could not allocate its output")
    if written < 0:
        return None
    try:
        return (ctypes.string_at(out.value, written) if written else b""), rows.value
    finally:
        lib.hks_free(out)
