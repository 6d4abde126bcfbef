"""Reference material the project does not ship (DSP schemas and examples, W3C/ODRL test data,
IDS Information Model, Merkle test vectors), found through ONE setting.

``CONNECTOR_SHARED_DIR`` names the shared folder; by default it is ``shared`` next to the
repository (``<repo>/../shared``). The material is under ``<shared>/reference``.

A test that reads it carries ``@pytest.mark.needs_reference("dsp/dsp-2025-1", ...)`` (the
paths it needs, relative to ``<shared>/reference``; none: the folder itself). When a path is
absent the test is skipped with the reason on a user's machine, and FAILS under CI (the
environment variable ``CI`` set, as ``.ci/run`` does), so CI cannot pass by not running them.
Tests parametrised over the material's files get one ``reference-absent`` case instead, so
they are still collected, and counted, without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "CONNECTOR_SHARED_DIR"
MARKER = "needs_reference"


def shared_dir() -> Path:
    """The shared folder: $CONNECTOR_SHARED_DIR or <repo>/../shared."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    # tests/support/reference.py -> parents[2] is the repo; its sibling "shared"
    return Path(__file__).resolve().parents[2].parent / "shared"


def reference_dir() -> Path:
    return shared_dir() / "reference"


def missing(*paths: str) -> list[str]:
    """The given paths (relative to <shared>/reference) that are absent; the folder itself if none given."""
    ref = reference_dir()
    return [p for p in (paths or (".",)) if not (ref / p).exists()]


def cases(items: list, *paths: str, width: int = 1) -> list:
    """``items`` to parametrise over, or, when the material is absent, one ``reference-absent``
    placeholder (the test's ``needs_reference`` marker then skips it, or fails it under CI)."""
    if items or not missing(*paths):
        return items
    return [pytest.param(*([None] * width), id="reference-absent")]


def check(item: pytest.Item) -> None:
    """Skip (or, under CI, fail) a test marked needs_reference whose material is absent."""
    absent = [p for m in item.iter_markers(MARKER) for p in missing(*m.args)]
    if not absent:
        return
    reason = (f"reference material absent under {reference_dir()}: {', '.join(sorted(set(absent)))} "
              f"(set {ENV} to the shared folder)")
    if os.environ.get("CI"):
        pytest.fail(f"under CI: {reason}", pytrace=False)
    pytest.skip(reason)
