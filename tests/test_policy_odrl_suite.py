"""The 68 cases of the SolidLab ODRL Test Suite, run through connector.policy.

Each case is a policy, a request, a state of the world (SotW) and an expected
compliance report, all in Turtle. The adapter below reads the Turtle with a
small parser (the suite uses a plain subset), turns the policy into flattened
expanded JSON-LD, the request into a ``Request`` and the SotW into a
``Context``, and compares the engine's ``PolicyReport`` with the expected one:

* the activation state of every rule report (the suite's own metric,
  "Rule-Activation-similarity", on which its reference evaluator scores 67/68);
* also, more strictly, every premise report (action, party, target) and every
  constraint report (matched by the constraint's IRI).

Duty reading. The suite reads a permission's duty as "eventually fulfilled":
a duty with no record (NonSet) leaves the permission active, a violated one
makes it inactive (cases 059-061, 065). The W3C formal-semantics draft, which
the engine follows by default, reads the same duty as a pre-condition that
must be fulfilled before the action (its example C11: no payment on record ->
Inactive/Deny). The engine offers both readings (CompileOptions.duty_reading).
All 68 cases pass under the suite's reading ("eventual"); under the default
reading exactly 059 and 065 answer Inactive instead of Active, which is what
the formal semantics prescribes for a permission whose compensate duty has
not been fulfilled, and is what a fail-closed station wants. Both are tested.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from connector.policy import CompileOptions, Context, Request
from support.policies import compile_policy
from support.reference import cases, reference_dir

SUITE_PATH = "odrl/odrl-test-suite/data"
SUITE = reference_dir() / SUITE_PATH
needs_suite = pytest.mark.needs_reference(SUITE_PATH)

ODRL = "http://www.w3.org/ns/odrl/2/"
RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
REPORT = "https://w3id.org/force/compliance-report#"
EX = "http://example.org/"
DCT = "http://purl.org/dc/terms/"


# ---------------------------------------------------------------------------
# a small Turtle reader (prefixes, IRIs, prefixed names, 'a', literals with
# datatype or language, ';' and ',' lists) -- enough for the suite's files
# ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<iri><[^>]*>)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<dtype>\^\^)
      | (?P<lang>@[a-zA-Z]+(?:-[a-zA-Z0-9]+)*)
      | (?P<punct>[;,.\[\]()])
      | (?P<word>[A-Za-z_][\w\-]*:[\w\-.]*[\w\-]|[A-Za-z_][\w\-]*:|:[\w\-.]*[\w\-]|[A-Za-z_][\w\-]*)
      | (?P<number>[+-]?\d+(?:\.\d+)?)
    )""",
    re.X,
)


def parse_turtle(text: str) -> list[tuple[str, str, tuple]]:
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"turtle: cannot read {text[pos:pos + 40]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "comment":
            continue
        tokens.append((kind, m.group(kind)))
    prefixes: dict[str, str] = {}
    triples: list[tuple[str, str, tuple]] = []
    i = 0

    def term(tok):
        kind, val = tok
        if kind == "iri":
            return val[1:-1]
        if kind == "word":
            if val == "a":
                return RDF_TYPE
            p, _, local = val.partition(":")
            return prefixes[p] + local
        raise ValueError(f"turtle: expected an IRI, got {val!r}")

    while i < len(tokens):
        kind, val = tokens[i]
        if kind == "lang" and val == "@prefix":
            name = tokens[i + 1][1].rstrip(":")
            prefixes[name] = tokens[i + 2][1][1:-1]
            i += 4 if tokens[i + 3][1] == "." else 3
            continue
        subject = term(tokens[i])
        i += 1
        while True:
            pred = term(tokens[i])
            i += 1
            while True:
                kind, val = tokens[i]
                if kind == "string":
                    lit = bytes(val[1:-1], "utf-8").decode("unicode_escape")
                    dt = lang = None
                    if i + 1 < len(tokens) and tokens[i + 1][0] == "dtype":
                        dt = term(tokens[i + 2])
                        i += 3
                    elif i + 1 < len(tokens) and tokens[i + 1][0] == "lang":
                        lang = tokens[i + 1][1][1:]
                        i += 2
                    else:
                        i += 1
                    obj = ("lit", lit, dt, lang)
                elif kind == "number":
                    obj = ("lit", val, "http://www.w3.org/2001/XMLSchema#integer", None)
                    i += 1
                else:
                    obj = ("iri", term(tokens[i]))
                    i += 1
                triples.append((subject, pred, obj))
                if tokens[i][1] == ",":
                    i += 1
                    continue
                break
            if tokens[i][1] == ";":
                i += 1
                if tokens[i][1] == ".":
                    i += 1
                    break
                continue
            if tokens[i][1] == ".":
                i += 1
                break
            raise ValueError(f"turtle: unexpected {tokens[i]!r}")
    return triples


class Graph:
    def __init__(self, triples):
        self.triples = triples

    def objects(self, s, p):
        return [o for (x, y, o) in self.triples if x == s and y == p]

    def iris(self, s, p):
        return [o[1] for o in self.objects(s, p) if o[0] == "iri"]

    def one(self, s, p):
        v = self.objects(s, p)
        return v[0] if v else None

    def subjects_of_type(self, t):
        return [s for (s, p, o) in self.triples if p == RDF_TYPE and o == ("iri", t)]

    def to_jsonld(self) -> list[dict]:
        """Flattened expanded JSON-LD: one node object per subject."""
        nodes: dict[str, dict] = {}
        for s, p, o in self.triples:
            n = nodes.setdefault(s, {"@id": s})
            if p == RDF_TYPE:
                n.setdefault("@type", []).append(o[1])
                continue
            if o[0] == "iri":
                v = {"@id": o[1]}
            else:
                v = {"@value": o[1]}
                if o[2]:
                    v["@type"] = o[2]
                if o[3]:
                    v["@language"] = o[3]
            n.setdefault(p, []).append(v)
        return list(nodes.values())


def _read(url: str, folder: str) -> Graph:
    name = url.rsplit("/", 1)[1]
    return Graph(parse_turtle((SUITE / folder / name).read_text(encoding="utf-8")))


def load_cases():
    if not SUITE.is_dir():
        return []
    index = Graph(parse_turtle((SUITE / "index.ttl").read_text(encoding="utf-8")))
    cases = []
    for s in dict.fromkeys(x for (x, _, _) in index.triples):
        src = index.iris(s, EX + "expectedReportSource")
        if not src:
            continue
        cases.append({
            "id": s,
            "name": src[0].rsplit("/", 1)[1][: -len(".ttl")],
            "policy": index.iris(s, EX + "policySource")[0],
            "request": index.iris(s, EX + "requestSource")[0],
            "sotw": index.iris(s, EX + "sotwSource")[0],
            "expected": src[0],
        })
    return sorted(cases, key=lambda c: c["name"])


CASES = load_cases()


def build_request(g: Graph) -> tuple[Request, str]:
    req = g.subjects_of_type(ODRL + "Request")[0]
    perm = g.iris(req, ODRL + "permission")[0]
    action = g.iris(perm, ODRL + "action")[0]
    target = (g.iris(perm, ODRL + "target") or [None])[0]
    assignee = (g.iris(perm, ODRL + "assignee") or [None])[0]
    return Request(action=action, target=target, assignee=assignee), perm


_DEONTIC = {"Fulfilled": "fulfilled", "Violated": "violated", "NonSet": "not-set"}


def build_context(g: Graph, request: Request) -> Context:
    now = g.one("http://example.com/request/currentTime", DCT + "issued")
    duty_states = {}
    for rep in g.subjects_of_type(REPORT + "DutyReport"):
        rule = g.iris(rep, REPORT + "rule")[0]
        state = g.iris(rep, REPORT + "deonticState")[0].rsplit("#", 1)[1]
        duty_states[rule] = _DEONTIC[state]
    membership = frozenset(g.iris(request.assignee, ODRL + "partOf")) if request.assignee else frozenset()
    collections = frozenset(g.iris(request.target, ODRL + "partOf")) if request.target else frozenset()
    return Context(now=datetime.fromisoformat(now[1]) if now else None, membership=membership,
                   asset_collections=collections, duty_states=duty_states)


_STATE = {"Satisfied": "satisfied", "Unsatisfied": "not-satisfied"}


def compare(case, reading: str) -> list[str]:
    """Differences between the expected report and the engine's."""
    policy_graph = _read(case["policy"], "policies")
    policy = compile_policy(policy_graph.to_jsonld(), options=CompileOptions(require_action=False, duty_reading=reading))
    request, _ = build_request(_read(case["request"], "requests"))
    context = build_context(_read(case["sotw"], "sotw"), request)
    report = policy.report(request, context)
    mine_constraints = {}

    def walk(c):
        if c.uid:
            mine_constraints[c.uid] = c.state
        for k in c.children:
            walk(k)

    for r in report.rules:
        for c in r.constraints:
            walk(c)
    expected = _read(case["expected"], "test_cases")
    diffs = []
    n_rules = 0
    for kind in ("PermissionReport", "ProhibitionReport", "DutyReport"):
        for rep in expected.subjects_of_type(REPORT + kind):
            rule = expected.iris(rep, REPORT + "rule")[0]
            want = expected.iris(rep, REPORT + "activationState")[0].rsplit("#", 1)[1]
            mine = report.rule(rule)
            n_rules += 1
            got = "Active" if mine.active else "Inactive"
            if got != want:
                diffs.append(f"rule {rule}: activation {got}, expected {want}")
            for prem in expected.iris(rep, REPORT + "premiseReport"):
                types = expected.iris(prem, RDF_TYPE)
                states = expected.iris(prem, REPORT + "satisfactionState")
                if not states:
                    # testcase-065's rule report points at premise reports that
                    # the file never describes (its TargetReport etc. carry other
                    # ids); nothing to compare for those.
                    continue
                state = states[0].rsplit("#", 1)[1]
                for t, value in ((REPORT + "ActionReport", mine.action_matched),
                                 (REPORT + "PartyReport", mine.party_matched),
                                 (REPORT + "TargetReport", mine.target_matched)):
                    if t in types:
                        got_p = "Unsatisfied" if value is False else "Satisfied"
                        if got_p != state:
                            diffs.append(f"{t.rsplit('#', 1)[1]}: {got_p}, expected {state}")
    for rep in expected.subjects_of_type(REPORT + "ConstraintReport"):
        cid = expected.iris(rep, REPORT + "constraint")[0]
        want = _STATE[expected.iris(rep, REPORT + "satisfactionState")[0].rsplit("#", 1)[1]]
        got = mine_constraints.get(cid)
        if got != want:
            diffs.append(f"constraint {cid}: {got}, expected {want}")
    assert n_rules, "expected report without rule reports"
    return diffs


@needs_suite
def test_suite_present_and_complete():
    assert len(CASES) == 68


@needs_suite
@pytest.mark.parametrize("case", cases(CASES, SUITE_PATH), ids=lambda c: c["name"])
def test_case_under_the_suites_duty_reading(case):
    assert compare(case, "eventual") == []


#: Cases where the default (W3C formal semantics, fail-closed) reading answers
#: differently from the suite, and why: both have a permission whose
#: odrl:compensate duty has no record of being performed (SotW: NonSet or no
#: report at all). The formal semantics: "a permission is active iff its
#: constraints are satisfied and its conditions (duties) are fulfilled" --
#: see the W3C example C11, where the same unperformed compensate duty makes
#: the permission Inactive with controlState Deny.
DIFFERENT_UNDER_PRECONDITION_READING = {"testcase-059-nonset", "testcase-065-alice"}


@needs_suite
@pytest.mark.parametrize("case", cases(CASES, SUITE_PATH), ids=lambda c: c["name"])
def test_case_under_the_default_duty_reading(case):
    diffs = compare(case, "precondition")
    if case["name"] in DIFFERENT_UNDER_PRECONDITION_READING:
        assert len(diffs) == 1 and "activation Inactive, expected Active" in diffs[0], diffs
    else:
        assert diffs == []


def test_turtle_reader_handles_the_suite_syntax():
    g = Graph(parse_turtle('@prefix ex: <http://example.org/>.\nex:a a ex:B; ex:p "x"^^ex:t, ex:c; ex:q "y"@en.'))
    assert ("http://example.org/a", RDF_TYPE, ("iri", "http://example.org/B")) in g.triples
    assert g.one("http://example.org/a", "http://example.org/q") == ("lit", "y", None, "en")
    assert len(g.objects("http://example.org/a", "http://example.org/p")) == 2
