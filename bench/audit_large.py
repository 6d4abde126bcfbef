"""`connector audit verify --all` on a large log (issue 11's done-when: 100,000 entries).

The log is built fast: really signed ES256 entries from two participants, appended through the
clearing house's own append transaction in batches of 10,000 (connector.clearinghouse.testing.
fill_log), then a real clearing-house process serves it and the audit runs as its own process,
as an auditor would run it. Reports the audit's wall time and peak RSS; value = entries
verified per second.

    python bench/audit_large.py [--entries N]

Last line: one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.clearinghouse.testing import ClearingHouseProcess, Participant, fill_log  # noqa: E402

SECRET = "bench-audit-" + secrets.token_hex(8)
AUDITOR = "urn:hks:participant:auditor"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        ch = ClearingHouseProcess(Path(tmp) / "ch", shared_secret=SECRET, auditors=[AUDITOR])
        parties = [Participant("urn:hks:participant:pearl", SECRET), Participant("urn:hks:participant:harbour", SECRET)]
        for p in parties:
            ch.trust(p)
        print(f"building a log of {args.entries} signed entries ...", file=sys.stderr, flush=True)
        build = fill_log(ch.directory, parties, args.entries)
        ch.start()
        try:
            env = {**os.environ, "CONNECTOR_AUDIT_TOKEN": Participant(AUDITOR, SECRET).token}
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "connector", "audit", "verify", "--clearinghouse", ch.url,
                                   "--key", str(ch.directory / "log.pub"), "--keys", str(ch.directory / "participants"),
                                   "--all", "--quiet", "--json"], env=env, capture_output=True, text=True, timeout=3600)
            seconds = time.perf_counter() - started
        finally:
            ch.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    verdict = [line for line in done.stdout.splitlines() if line.startswith("verdict:")]
    print(json.dumps({
        "bench": "audit_large", "unit": "entries verified/s by connector audit verify --all",
        "value": round(args.entries / seconds, 1), "seconds": round(seconds, 1), "entries": args.entries,
        "exit_code": done.returncode, "verdict": verdict[-1] if verdict else (done.stdout + done.stderr)[-300:],
        "peak_rss_mb_of_children": round(peak_mb, 1), "build_seconds": round(build, 1),
        "baseline": None, "ratio": None}))


if __name__ == "__main__":
    main()
