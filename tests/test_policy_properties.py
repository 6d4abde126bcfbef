"""Properties of the policy engine, checked with Hypothesis.

* adding a prohibition, or a constraint to a permission, never turns a
  deny / not-applicable into a permit;
* the order of rules (and of constraints within a rule) does not change the
  decision or the duties;
* compact JSON-LD and its expansion by an independent processor (pyld, with an
  in-memory loader) give the same decision;
* the fast path and the full report always agree;
* lt / lteq / gt / gteq on dateTime (xsd:dateTime and xsd:date) and on
  elapsedTime (calendar durations) switch exactly at the boundary.
"""

from __future__ import annotations

import calendar
import copy
import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from connector.policy import Context, Effect, PolicyError, Request
from connector.vocab import policy_contexts
from support.policies import compile_policy

UTC = timezone.utc
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TIMES = [datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 15, 12, tzinfo=UTC),
         datetime(2026, 1, 1, tzinfo=UTC)]
JURISDICTIONS = ["HK", "MO", "SG", "CN-GD-GZ", "CN-GD-SZ"]
PURPOSES = ["hks:MedicalResearch", "dpv:ScientificResearch", "dpv:Marketing", "dpv:ResearchAndDevelopment"]
CATEGORIES = ["pd:Name", "pd:HealthRecord", "pd:FacialPrint", "pd:Age", "pd:MedicalHealth", "pd:Biometric"]
ACTIONS = ["use", "read", "distribute", "print", "sell"]
PARTIES = ["urn:org:a", "urn:org:b"]


def _t(dt: datetime) -> dict:
    return {"@value": dt.isoformat().replace("+00:00", "Z"), "@type": "xsd:dateTime"}


atoms = st.one_of(
    st.builds(lambda op, n: {"leftOperand": "count", "operator": op, "rightOperand": {"@value": str(n), "@type": "xsd:integer"}},
              st.sampled_from(["eq", "neq", "lt", "lteq", "gt", "gteq"]), st.integers(0, 6)),
    st.builds(lambda op, t: {"leftOperand": "dateTime", "operator": op, "rightOperand": _t(t)},
              st.sampled_from(["eq", "neq", "lt", "lteq", "gt", "gteq"]), st.sampled_from(TIMES)),
    st.builds(lambda op, d: {"leftOperand": "elapsedTime", "operator": op, "rightOperand": {"@value": d, "@type": "xsd:duration"}},
              st.sampled_from(["lt", "lteq", "gt", "gteq"]), st.sampled_from(["PT12H", "P1D", "P1M", "P1Y"])),
    st.builds(lambda op, vs: {"leftOperand": "hks:recipientJurisdiction", "operator": op,
                              "rightOperand": vs if op in ("isAnyOf", "isNoneOf", "isPartOf") else vs[0]},
              st.sampled_from(["eq", "neq", "isAnyOf", "isNoneOf", "isPartOf"]),
              st.lists(st.sampled_from(JURISDICTIONS + ["GBA"]), min_size=1, max_size=3, unique=True)),
    st.builds(lambda op, vs: {"leftOperand": "purpose", "operator": op,
                              "rightOperand": [{"@id": v} for v in vs] if op in ("isAnyOf", "isNoneOf") else {"@id": vs[0]}},
              st.sampled_from(["eq", "isA", "isAnyOf", "isNoneOf"]),
              st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2, unique=True)),
    st.builds(lambda op, vs: {"leftOperand": "hks:dataCategory", "operator": op, "rightOperand": [{"@id": v} for v in vs]},
              st.sampled_from(["isAnyOf", "isNoneOf", "isAllOf", "isPartOf"]),
              st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True)),
)

constraints = st.one_of(
    atoms,
    st.builds(lambda op, kids: {op: kids}, st.sampled_from(["and", "or", "xone", "andSequence"]),
              st.lists(atoms, min_size=2, max_size=3)),
)

duties = st.sampled_from([
    {"action": "hks:log"},
    {"action": "inform"},
    {"action": [{"rdf:value": {"@id": "odrl:delete"},
                 "refinement": [{"leftOperand": "elapsedTime", "operator": "lteq", "rightOperand": "P1Y"}]}]},
    {"action": [{"rdf:value": {"@id": "hks:drop"}, "refinement": [{"leftOperand": "hks:field", "operator": "eq", "rightOperand": "name"}]}]},
    {"@id": "urn:duty:pay", "action": "compensate"},
    {"action": "attribute"},
])


@st.composite
def rules(draw, kind: str):
    r = {"action": draw(st.sampled_from(ACTIONS))}
    if draw(st.booleans()):
        r["assignee"] = draw(st.sampled_from(PARTIES))
    cs = draw(st.lists(constraints, max_size=3))
    if cs:
        r["constraint"] = cs
    if kind == "permission":
        ds = draw(st.lists(duties, max_size=2))
        if ds:
            r["duty"] = ds
    return r


@st.composite
def policies(draw):
    doc = {"@context": "https://w3id.org/hks/context.jsonld", "@type": "Set", "uid": "urn:test:random",
           "conflict": draw(st.sampled_from(["perm", "prohibit", "invalid"])),
           "permission": draw(st.lists(rules("permission"), min_size=1, max_size=3))}
    prohibs = draw(st.lists(rules("prohibition"), max_size=2))
    if prohibs:
        doc["prohibition"] = prohibs
    return doc


@st.composite
def contexts(draw):
    opt = lambda s: st.one_of(st.none(), s)  # noqa: E731
    agreed = draw(opt(st.sampled_from(TIMES)))
    now = draw(opt(st.sampled_from(TIMES + [t + timedelta(days=1) for t in TIMES] + [t + timedelta(days=366) for t in TIMES])))
    return Context(
        now=now, agreement_time=agreed, use_count=draw(opt(st.integers(0, 7))),
        recipient_jurisdiction=draw(opt(st.sampled_from(JURISDICTIONS))), purpose=draw(opt(st.sampled_from(PURPOSES))),
        data_categories=draw(opt(st.sets(st.sampled_from(CATEGORIES), max_size=3))),
        duty_states=draw(st.sampled_from([None, {"urn:duty:pay": "fulfilled"}, {"urn:duty:pay": "violated"},
                                          {"permission[0].duty[0]": "violated"}])),
    )


requests = st.builds(Request, st.sampled_from(ACTIONS), st.just("urn:asset:1"), st.sampled_from(PARTIES + [None]))


def decide(doc, req, ctx):
    try:
        p = compile_policy(doc)
    except PolicyError:
        return None  # refused at creation: certainly not a permit
    d = p.evaluate(req, ctx)
    assert d.effect is p.report(req, ctx).decision.effect  # fast path and full report agree
    return d


def _duty_set(d):
    return sorted((x.kind, x.action, x.timing, repr(x.params), x.deadline) for x in d.duties)


def _permits(d) -> bool:
    return d is not None and d.effect is Effect.PERMIT


@SETTINGS
@given(policies(), rules("prohibition"), requests, contexts())
def test_adding_a_prohibition_never_turns_deny_into_permit(doc, prohibition, req, ctx):
    before = decide(doc, req, ctx)
    assume(before is not None)
    more = copy.deepcopy(doc)
    more.setdefault("prohibition", []).append(prohibition)
    after = decide(more, req, ctx)
    if not _permits(before):
        assert not _permits(after)


@SETTINGS
@given(policies(), constraints, st.integers(0, 2), requests, contexts())
def test_adding_a_constraint_never_turns_deny_into_permit(doc, constraint, i, req, ctx):
    before = decide(doc, req, ctx)
    assume(before is not None)
    more = copy.deepcopy(doc)
    rule = more["permission"][i % len(more["permission"])]
    rule.setdefault("constraint", []).append(constraint)
    after = decide(more, req, ctx)
    if not _permits(before):
        assert not _permits(after)


@SETTINGS
@given(policies(), st.randoms(use_true_random=False), requests, contexts())
def test_rule_order_does_not_change_the_decision(doc, rnd, req, ctx):
    # a duty state keyed by position ("permission[0].duty[0]") names another
    # duty once the rules move; states keyed by a duty's @id do not
    assume(not ctx.duty_states or all(not k.startswith("permission[") for k in ctx.duty_states))
    before = decide(doc, req, ctx)
    shuffled = copy.deepcopy(doc)
    rnd.shuffle(shuffled["permission"])
    rnd.shuffle(shuffled.get("prohibition", []))
    for r in shuffled["permission"] + shuffled.get("prohibition", []):
        rnd.shuffle(r.get("constraint", []))
    after = decide(shuffled, req, ctx)
    if before is None or after is None:
        assert before is None and after is None
        return
    assert before.effect is after.effect
    # duties named by a path move with their rule; compare what must be done
    assert _duty_set(before) == _duty_set(after)


def _pyld_expand(doc):
    from pyld import jsonld

    def loader(url, options=None):
        doc = policy_contexts()[url]
        return {"contextUrl": None, "documentUrl": url, "document": doc if "@context" in doc else {"@context": doc},
                "contentType": "application/ld+json"}

    return jsonld.expand(copy.deepcopy(doc), {"documentLoader": loader, "base": None})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), requests, contexts())
def test_compact_and_expanded_give_the_same_decision(doc, req, ctx):
    compact_d = decide(doc, req, ctx)
    expanded = _pyld_expand(doc)
    assert json.dumps(expanded)  # really JSON
    expanded_d = decide(expanded, req, ctx)
    if compact_d is None or expanded_d is None:
        assert compact_d is None and expanded_d is None
        return
    assert compact_d.effect is expanded_d.effect
    assert [d.to_dict() for d in compact_d.duties] == [d.to_dict() for d in expanded_d.duties]
    assert [(r.path, r.code) for r in compact_d.reasons] == [(r.path, r.code) for r in expanded_d.reasons]


# ---------------------------------------------------------------------------
# exact boundaries
# ---------------------------------------------------------------------------

US = timedelta(microseconds=1)
instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)).map(lambda d: d.replace(tzinfo=UTC))
TRUTH = {"lt": (True, False, False), "lteq": (True, True, False), "gt": (False, False, True), "gteq": (False, True, True)}


def _one(lo, op, ro):
    return compile_policy({"@type": "Set", "permission": [{"action": "use", "constraint": [
        {"leftOperand": lo, "operator": op, "rightOperand": ro}]}]})


@SETTINGS
@given(instants, st.sampled_from(sorted(TRUTH)))
def test_datetime_boundaries_are_exact(t, op):
    p = _one("dateTime", op, {"@value": t.isoformat(), "@type": "xsd:dateTime"})
    got = tuple(p.evaluate(Request("use"), Context(now=x)).permitted for x in (t - US, t, t + US))
    assert got == TRUTH[op]


@SETTINGS
@given(st.dates(min_value=datetime(1990, 1, 2).date(), max_value=datetime(2090, 1, 1).date()), st.sampled_from(sorted(TRUTH)))
def test_date_boundaries_are_exact(day, op):
    """An xsd:date is the whole day: lteq includes its last microsecond, gt starts the next day."""
    p = _one("dateTime", op, {"@value": day.isoformat(), "@type": "xsd:date"})
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    probe = {"lt": (start - US, start), "gteq": (start - US, start), "lteq": (end - US, end), "gt": (end - US, end)}[op]
    below, at = (p.evaluate(Request("use"), Context(now=x)).permitted for x in probe)
    assert (below, at) == {"lt": (True, False), "gteq": (False, True), "lteq": (True, False), "gt": (False, True)}[op]


def _reference_add(a: datetime, years: int, months: int, days: int, seconds: int) -> datetime:
    """Independent XSD dateTime + duration: months first (day pinned), then the rest."""
    m = a.month - 1 + months + 12 * years
    y, m = a.year + m // 12, m % 12 + 1
    d = min(a.day, calendar.monthrange(y, m)[1])
    return a.replace(year=y, month=m, day=d) + timedelta(days=days, seconds=seconds)


@SETTINGS
@given(instants, st.integers(0, 3), st.integers(0, 14), st.integers(0, 40), st.integers(0, 86399 * 2),
       st.sampled_from(sorted(TRUTH)))
def test_elapsed_time_boundaries_are_exact(agreed, years, months, days, seconds, op):
    assume(years or months or days or seconds)
    h, rem = divmod(seconds, 3600)
    mi, s = divmod(rem, 60)
    text = f"P{years}Y{months}M{days}DT{h}H{mi}M{s}S"
    p = _one("elapsedTime", op, {"@value": text, "@type": "xsd:duration"})
    limit = _reference_add(agreed, years, months, days, seconds)
    got = tuple(p.evaluate(Request("use"), Context(now=x, agreement_time=agreed)).permitted for x in (limit - US, limit, limit + US))
    assert got == TRUTH[op]


@SETTINGS
@given(st.integers(0, 50), st.integers(0, 50), st.sampled_from(["eq", "neq", "lt", "lteq", "gt", "gteq"]))
def test_count_compares_the_number_of_this_use(n, used, op):
    p = _one("count", op, {"@value": str(n), "@type": "xsd:integer"})
    this = used + 1
    want = {"eq": this == n, "neq": this != n, "lt": this < n, "lteq": this <= n, "gt": this > n, "gteq": this >= n}[op]
    assert p.evaluate(Request("use"), Context(use_count=used)).permitted is want


@SETTINGS
@given(st.integers(0, 800), st.integers(0, 86399), st.sampled_from(sorted(TRUTH)))
def test_duration_boundaries_are_exact(days, seconds, op):
    """A declared duration (hks:retentionPeriod) against a day-time duration."""
    p = _one("hks:retentionPeriod", op, {"@value": f"P{days}DT{seconds}S", "@type": "xsd:duration"})
    limit = timedelta(days=days, seconds=seconds)
    probes = [limit - US, limit, limit + US] if limit else [limit, limit, limit + US]
    got = tuple(p.evaluate(Request("use"), Context(retention_period=x)).permitted for x in probes)
    want = TRUTH[op] if limit else (TRUTH[op][1], TRUTH[op][1], TRUTH[op][2])
    assert got == want
