"""Sentences for people: constraints, duties and decisions in plain words."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import taxonomy
from .values import Duration, add_duration, fmt_datetime
from .vocab import DUTY_KIND_LABELS, compact

if TYPE_CHECKING:  # pragma: no cover
    from .compiled import Atom
    from .model import Decision, Duty

_TIME_PHRASE = {
    "lt": "before", "lteq": "no later than", "gt": "after", "gteq": "at or after",
    "eq": "exactly at", "neq": "at any time other than",
}
_DATE_PHRASE = {
    "lt": "before", "lteq": "no later than the end of", "gt": "after the end of",
    "gteq": "on or after", "eq": "on", "neq": "on a day other than",
}
_NUM_PHRASE = {
    "lt": "less than", "lteq": "at most", "gt": "more than", "gteq": "at least",
    "eq": "exactly", "neq": "other than",
}


def value_text(atom: "Atom", v: Any) -> str:
    if v is None:
        return "unknown"
    dom = atom.lo.domain
    if isinstance(v, (frozenset, set, list, tuple)):
        items = sorted(taxonomy.display(x, dom) for x in v)
        if dom == "purpose" and len(items) == 1:
            return items[0]  # one declared purpose reads as before sets of purposes
        return "{" + ", ".join(items) + "}" if items else "none"
    if isinstance(v, datetime):
        return fmt_datetime(v)
    if isinstance(v, Duration):
        return f"{v.text} ({v.human()})"
    return taxonomy.display(v, dom) if isinstance(v, str) else str(v)


def expected_text(atom: "Atom") -> str:
    r = atom.right
    dom = atom.lo.domain
    if atom.date_interval is not None:
        return atom.right_text
    if isinstance(r, tuple):
        return ", ".join(taxonomy.display(x, dom) if isinstance(x, str) else value_text(atom, x) for x in r)
    return value_text(atom, r) + (f" {compact(atom.unit)}" if atom.unit else "")


def _count_rule(op: str, n) -> str:
    return {
        "lteq": f"at most {n} use{'s' if n != 1 else ''}",
        "lt": f"fewer than {n} uses",
        "eq": f"only use number {n}",
        "neq": f"any use except use number {n}",
        "gt": f"uses after the first {n}",
        "gteq": f"uses from number {n} on",
    }.get(op, f"use numbers {op} {n}")


def requirement(atom: "Atom") -> str:
    """What the constraint demands, as a clause."""
    lo, op, kind = atom.lo, atom.op, atom.lo.kind
    if kind == "count":
        if op in ("isAnyOf", "isNoneOf"):
            return f"the use number must {'not ' if op == 'isNoneOf' else ''}be one of {expected_text(atom)}"
        return f"there may be {_count_rule(op, atom.right)} (this one included)"
    if kind == "datetime":
        phrase = (_DATE_PHRASE if atom.date_interval is not None else _TIME_PHRASE).get(op, op)
        return f"the request must be made {phrase} {expected_text(atom)}"
    if kind == "elapsed":
        d: Duration = atom.right
        return f"the time since the agreement must be {_NUM_PHRASE.get(op, op)} {d.text} ({d.human()})"
    if kind == "event":
        ev = expected_text(atom)
        return {"lt": f"before the event {ev}", "lteq": f"before or during the event {ev}", "eq": f"during the event {ev}",
                "gt": f"after the event {ev}", "gteq": f"during or after the event {ev}",
                "neq": f"not during the event {ev}"}.get(op, f"event {op} {ev}")
    L = lo.label.lower() if not lo.label.isupper() else lo.label
    e = expected_text(atom)
    return {
        "eq": f"{L} must be {e}",
        "neq": f"{L} must not be {e}",
        "isA": f"{L} must be a kind of {e}",
        "isAnyOf": f"{L} must be one of: {e}",
        "isNoneOf": f"{L} must be none of: {e}",
        "isAllOf": f"{L} must include all of: {e}",
        "hasPart": f"{L} must include {e}",
        "isPartOf": f"{L} must lie within: {e}",
        "lt": f"{L} must be less than {e}",
        "lteq": f"{L} must be at most {e}",
        "gt": f"{L} must be more than {e}",
        "gteq": f"{L} must be at least {e}",
    }.get(op, f"{L} {op} {e}")


def atom_sentence(atom: "Atom", v: Any, state: str, role: str) -> str:
    """One sentence about a constraint's outcome. ``v`` is the value the
    context supplied (None: missing); ``role`` is permission, prohibition,
    duty or refinement."""
    lo, op, kind = atom.lo, atom.op, atom.lo.kind
    if state == "unknown":
        what = lo.missing or f"{lo.label} is not known"
        if v is not None and kind not in ("elapsed",):
            what = f"{lo.label} {value_text(atom, v)} cannot be compared with {expected_text(atom)}"
        tail = ("the prohibition is applied" if role == "prohibition"
                else "the duty is treated as required" if role == "duty" else "access is refused")
        return f"{what}, so the condition that {requirement(atom)} cannot be checked; {tail} (fail closed)."
    ok = state == "satisfied"
    if kind == "count":
        n = v + 1
        rule = _count_rule(op, atom.right) if op not in ("isAnyOf", "isNoneOf") else f"use numbers {op} {expected_text(atom)}"
        return f"This {'is' if ok else 'would be'} use number {n} of the asset under this agreement; the policy allows {rule}."
    if kind == "datetime":
        phrase = (_DATE_PHRASE if atom.date_interval is not None else _TIME_PHRASE).get(op, op)
        return f"The request at {fmt_datetime(v)} is {'' if ok else 'not '}{phrase} {expected_text(atom)}."
    if kind == "elapsed":
        now, agreed = v
        d: Duration = atom.right
        try:
            limit = fmt_datetime(add_duration(agreed, d))
        except OverflowError:
            limit = "the end of time"
        since = Duration.from_timedelta(now - agreed)
        when = (f"{since.human()} after" if since.micros > 0 else "at the time of" if since.micros == 0
                else f"{since.human().replace('minus ', '')} before")
        return (f"The request comes {when} the agreement of "
                f"{fmt_datetime(agreed)}; the policy requires the time since the agreement to be "
                f"{_NUM_PHRASE.get(op, op)} {d.text} ({d.human()}), i.e. a limit of {limit}"
                f"{'' if ok else ', which this request does not meet'}.")
    if kind == "event":
        ev = expected_text(atom)
        st = v.get(atom.right if not isinstance(atom.right, tuple) else atom.right[0], "unknown") if isinstance(v, dict) else v
        return f"The event {ev} is {st}; the policy requires use {requirement(atom)}{'' if ok else ', which does not hold'}."
    L = lo.label
    a = value_text(atom, v)
    e = expected_text(atom)
    if op == "isAnyOf":
        return f"{L} {a} is one of: {e}." if ok else f"{L} {a} is not one of the permitted: {e}."
    if op == "isNoneOf":
        return f"{L} {a} is none of: {e}." if ok else f"{L} {a} is one of the excluded: {e}."
    if op == "eq":
        return f"{L} is {a}, as required." if ok else f"{L} is {a}; the policy requires {e}."
    if op == "neq":
        return f"{L} {a} is not {e}." if ok else f"{L} is {a}, which the policy excludes."
    if op == "isA":
        return f"{L} {a} is a kind of {e}." if ok else f"{L} {a} is not a kind of {e}."
    if op == "isPartOf":
        return f"{L} {a} lies within: {e}." if ok else f"{L} {a} does not lie within: {e}."
    if op == "hasPart":
        return f"{L} {a} includes {e}." if ok else f"{L} {a} does not include {e}."
    if op == "isAllOf":
        return f"{L} {a} includes all of: {e}." if ok else f"{L} {a} does not include all of: {e}."
    return f"{L} {a} is {'' if ok else 'not '}{_NUM_PHRASE.get(op, op)} {e}."


def describe_duty(d: "Duty") -> str:
    p = dict(d.params)
    fields = p.get("fields")
    flist = ", ".join(fields) if fields else None
    when = " before the data is released" if d.timing == "before-release" else ""
    k = d.kind
    if k == "log":
        ch = p.get("clearing_house")
        return f"Log the access to the clearing house{' ' + compact(ch) if ch else ''}{when}; if it is not accepted, the access is blocked."
    if k == "notify":
        who = p.get("informed_party")
        return f"Notify {compact(who) if who else 'the provider'} of the access{when}."
    if k == "drop-fields":
        return f"Drop the field{'s' if fields and len(fields) > 1 else ''} {flist} from every record{when}."
    if k == "pseudonymise-fields":
        return f"Pseudonymise the field{'s' if fields and len(fields) > 1 else ''} {flist} in every record{when}."
    if k == "aggregate-only":
        from .compute_terms import describe_aggregate
        return describe_aggregate(p) + when + "."
    if k == "anonymise":
        return f"Anonymise {('the fields ' + flist) if flist else 'the data'}{when}."
    if k == "replace":
        return f"Replace the values at {p.get('json_path', '?')} with {p.get('replace_with', '?')!r}{when}."
    if k == "watermark":
        return f"Watermark the data{when}."
    if k == "delete":
        if d.deadline is not None:
            return f"The recipient must delete the data by {fmt_datetime(d.deadline)}."
        if p.get("within"):
            w = Duration.parse(p["within"])
            return f"The recipient must delete the data within {w.text} ({w.human()}) of the agreement."
        return "The recipient must delete the data after use."
    if k == "next-policy":
        pol = p.get("policy")
        return f"The recipient may pass the data on only under policy {compact(pol) if pol else '(this policy)'}."
    if k == "attribute":
        who = p.get("attributed_party")
        return f"The recipient must attribute the data to {compact(who) if who else 'its source'} wherever it is used."
    if k == "obtain-consent":
        ref = p.get("consent_reference")
        return f"The data subjects' consent{' ' + str(ref) if ref else ''} must be on record."
    if k == "compensate":
        amt = p.get("amount")
        unit = p.get("unit")
        return f"Payment{' of ' + str(amt) if amt is not None else ''}{' ' + compact(unit) if unit else ''} must have been made."
    return f"{DUTY_KIND_LABELS.get(k, 'Perform')} ({compact(d.action)})".capitalize() + "."


def explain_decision(dec: "Decision") -> str:
    head = {"permit": "PERMIT", "deny": "DENY", "not-applicable": "NOT APPLICABLE (treated as deny)"}[dec.effect.value]
    lines = [f"{head}" + (f" under policy {dec.policy_uid}" if dec.policy_uid else "")]
    for r in dec.reasons:
        lines.append(f"  - [{r.path}] {r.message}")
    if dec.duties:
        lines.append("  Duties:")
        for d in dec.duties:
            lines.append(f"  * [{d.rule}] {d.describe()}")
    if dec.consequences:
        lines.append("  Consequences triggered:")
        for d in dec.consequences:
            lines.append(f"  * [{d.rule}] {d.describe()}")
    return "\n".join(lines)
