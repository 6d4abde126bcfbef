"""Policy decisions per second on one core, compiled once vs parsed on every call.

Template: policies/gba-cross-border-personal-information.jsonld. The workload
is the data-plane path (every retrieval re-runs the decision): requests from
organisations in Hong Kong and the mainland GBA cities with varying use
counters and times, i.e. permits carrying their duties, with the purpose
declared alone or as a set of purposes. A separate figure is given for
refusals (which build full explanations), one of them a set of purposes that
mixes medical research with marketing.

Both runs make the same decisions; the per-call run starts from the JSON-LD
text each time (json.loads + expansion + compilation + evaluation), as an
engine without a compiled form would. The last line printed is one JSON object.

    python bench/policy.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connector.policy import Context, Effect, Request  # noqa: E402
from connector.policy import compile_policy as _compile_policy  # noqa: E402
from connector.vocab import policy_contexts  # noqa: E402


def compile_policy(text):
    return _compile_policy(text, contexts=policy_contexts())

TEMPLATE = ROOT / "policies" / "gba-cross-border-personal-information.jsonld"
UTC = timezone.utc


def workload():
    agreed = datetime(2025, 3, 1, tzinfo=UTC)
    cats = {"pd:Name", "pd:TelephoneNumber", "pd:Identifier", "pd:Age", "pd:Gender", "pd:Location", "pd:HealthRecord"}
    permits, denies = [], []
    # purposes declared one at a time and as sets (one access may declare several purposes)
    purposes = ["hks:MedicalResearch", frozenset({"hks:MedicalResearch"}),
                frozenset({"hks:MedicalResearch", "https://w3id.org/hks/ns#MedicalResearch"})]
    for i, where in enumerate(["HK", "CN-GD-GZ", "CN-GD-SZ", "CN-GD-FS", "HK", "CN-GD-ZH", "HK", "CN-GD-DG"]):
        req = Request("use", "urn:hks:asset:outpatient-visits-2025.csv", f"did:web:org{i}.example")
        ctx = Context(now=agreed + timedelta(days=3 + 20 * i, seconds=17 * i), purpose=purposes[i % len(purposes)],
                      recipient_jurisdiction=where, organisation=f"did:web:org{i}.example", use_count=i,
                      agreement_time=agreed, data_categories=cats)
        permits.append((req, ctx))
    for where, used, purpose in (("SG", 0, "hks:MedicalResearch"), ("HK", 10, "hks:MedicalResearch"), ("HK", 1, "dpv:Marketing"),
                                 ("HK", 1, frozenset({"hks:MedicalResearch", "dpv:Marketing"}))):
        req = Request("use", "urn:hks:asset:outpatient-visits-2025.csv", "did:web:other.example")
        denies.append((req, Context(now=agreed + timedelta(days=30), purpose=purpose, recipient_jurisdiction=where,
                                    use_count=used, agreement_time=agreed, data_categories=cats)))
    return permits, denies


def rate(fn, cases, seconds: float, cpu: list | None = None) -> float:
    """Calls per second of wall time; with `cpu`, also appends calls per second of this process's
    CPU time (what the figure is on a machine other processes share)."""
    n = 0
    fn(cases[0])  # warm
    start, start_cpu = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        for c in cases:
            fn(c)
        n += len(cases)
        now = time.perf_counter()
        if now >= deadline:
            if cpu is not None:
                cpu.append(n / max(time.process_time() - start_cpu, 1e-9))
            return n / (now - start)


def main() -> None:
    ap = argparse.ArgumentParser(description="ODRL decisions per second, compiled once vs parsed per call")
    ap.add_argument("--quick", action="store_true", help="a shorter run (about 10 s)")
    ap.add_argument("--seconds", type=float, default=None, help="measuring time per phase (default 2, --quick 0.7)")
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = 0.7 if args.quick else 2.0
    text = TEMPLATE.read_text(encoding="utf-8")
    policy = compile_policy(text)
    permits, denies = workload()

    # the same decisions both ways
    for req, ctx in permits:
        a, b = policy.evaluate(req, ctx), compile_policy(text).evaluate(req, ctx)
        assert a.effect is b.effect is Effect.PERMIT and a.duties == b.duties
    for req, ctx in denies:
        a, b = policy.evaluate(req, ctx), compile_policy(text).evaluate(req, ctx)
        assert a.effect is b.effect is Effect.DENY and [r.message for r in a.reasons] == [r.message for r in b.reasons]

    ev = policy.evaluate
    cpu: list[float] = []
    compiled = rate(lambda c: ev(c[0], c[1]), permits, args.seconds, cpu)
    per_call = rate(lambda c: compile_policy(text).evaluate(c[0], c[1]), permits, args.seconds / 2)
    compiled_deny = rate(lambda c: ev(c[0], c[1]), denies, args.seconds / 2)
    result = {
        "bench": "policy",
        "value": round(compiled),
        "unit": "decisions/s (one core, compiled once)",
        "baseline": round(per_call),
        "baseline_unit": "decisions/s parsing the JSON-LD policy on every call",
        "template": TEMPLATE.name,
        "workload": f"{len(permits)} permit requests (HK and mainland GBA organisations, purposes alone and as sets), cycled",
        "decisions_per_s": round(compiled),
        "decisions_per_cpu_s": round(cpu[0]),
        "per_call_parse_decisions_per_s": round(per_call),
        "ratio": round(compiled / per_call, 1),
        "deny_with_explanation_per_s": round(compiled_deny),
        "target": {"decisions_per_s": 100000, "ratio": 50},
    }
    print(f"compiled once:         {compiled:12,.0f} decisions/s ({cpu[0]:,.0f} per second of CPU time)")
    print(f"parsed on every call:  {per_call:12,.0f} decisions/s")
    print(f"refusals (explained):  {compiled_deny:12,.0f} decisions/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
