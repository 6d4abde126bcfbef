"""Pseudonyms for a whole Arrow string array in one native call (issue 16, item 2).

Pseudonymising costs one HMAC-SHA256 per distinct value; in a Python loop that is about 1 µs a
value, far too slow for CSV at disk speed (bench/dataplane.py). `pseudonym_native.c` does the loop
over the array's buffers with OpenSSL's SHA-256, on several threads, without the GIL.

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
