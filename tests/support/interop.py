"""Shared by the interop tests (tests/interop/): Java tools, class paths assembled by Maven, and
the skip-or-fail rule: on a user's machine a missing `java`/`mvn` skips with the reason; under CI
(the environment variable CI set, as `.ci/run` does) it fails, so the interop suite cannot pass
by not running."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("HKS_INTEROP_CACHE") or Path.home() / ".cache" / "hks-connector" / "interop")


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"interop under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def java_home() -> str | None:
    """A Java 17+ home: JAVA_HOME if set, else the one `java` on PATH belongs to."""
    if os.environ.get("JAVA_HOME") and (Path(os.environ["JAVA_HOME"]) / "bin" / "java").exists():
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    return str(Path(java).resolve().parent.parent) if java else None


def require_tools() -> str:
    """The `java` executable; skips (fails under CI) when java or mvn is missing."""
    home = java_home()
    if home is None:
        unavailable("the interop tests need a Java 17 runtime (`java`), which is not installed")
    if shutil.which("mvn") is None:
        unavailable("the interop tests need Maven (`mvn`) to fetch the TCK/EDC jars, which is not installed")
    return str(Path(home) / "bin" / "java")


def classpath(pom_dir: Path, name: str, timeout: float = 900) -> tuple[Path, float]:
    """Copy the dependencies of `pom_dir/pom.xml` into CACHE/name/lib (once per pom content);
    returns the lib folder and the seconds spent (0 when cached)."""
    lib = CACHE / name / "lib"
    stamp = CACHE / name / "pom.sha"
    digest = __import__("hashlib").sha256((pom_dir / "pom.xml").read_bytes()).hexdigest()
    if lib.is_dir() and stamp.exists() and stamp.read_text() == digest:
        return lib, 0.0
    if lib.exists():
        shutil.rmtree(lib)
    lib.mkdir(parents=True)
    started = time.monotonic()
    proc = subprocess.run(["mvn", "-q", "-B", "-f", str(pom_dir / "pom.xml"), "dependency:copy-dependencies",
                           f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        shutil.rmtree(lib, ignore_errors=True)
        pytest.fail(f"mvn could not assemble the {name} class path:\n{(proc.stdout + proc.stderr)[-3000:]}",
                    pytrace=False)
    stamp.write_text(digest)
    return lib, time.monotonic() - started


def edc_mode_node(directory: Path, name: str = "Ours"):
    """A NodeProcess (not started) whose connector.toml names the test-only identity mode that
    speaks EDC's iam-mock tokens."""
    from .nodes import NodeProcess

    node = NodeProcess(directory, name)
    config = node.directory / "connector.toml"
    config.write_text(config.read_text().replace('mode = "dev-shared-secret"', 'mode = "edc-iam-mock-test-only"'))
    return node
