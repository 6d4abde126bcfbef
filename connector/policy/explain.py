"""Sentences for people: constraints, duties and decisions in plain words.

Every sentence is a `Msg`: a message id (its English text with ``%(name)s`` placeholders) and
its parameters, which may be `Msg`s themselves. ``str(msg)`` is the English text (what the
API, the CLI and the logs show); a shell renders it in another language with
``msg.render(gettext)`` from its own message catalogs. The core only builds them: no catalog,
no I/O. The message ids are extracted from this package with ``pybabel -k Msg``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from . import taxonomy
from .values import Duration, add_duration, fmt_datetime
from .vocab import compact

if TYPE_CHECKING:  # pragma: no cover
    from .compiled import Atom
    from .model import Decision, Duty


class Msg:
    """A sentence or phrase: message id plus parameters (text, numbers, or other `Msg`s)."""

    __slots__ = ("id", "params", "_english")

    def __init__(self, id: str, **params: Any) -> None:
        self.id = id
        self.params = params
        self._english: str | None = None

    def render(self, gettext: Callable[[str], str] | None = None) -> str:
        if gettext is None:
            if self._english is None:  # kept: a reason's sentence is read again inside its rule's
                self._english = self._render(None)
            return self._english
        return self._render(gettext)

    def _render(self, gettext: Callable[[str], str] | None) -> str:
        text = gettext(self.id) if gettext is not None else self.id
        if not self.params:
            return text
        return text % {k: (v.render(gettext) if isinstance(v, Msg) else v) for k, v in self.params.items()}

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Msg({self.id!r}, {self.params!r})"

    def ids(self) -> set[str]:
        """Every message id in this sentence, its parts' included (what a catalog must hold)."""
        found = {self.id}
        for v in self.params.values():
            if isinstance(v, Msg):
                found |= v.ids()
        return found


class Term(Msg):
    """A term from the vocabulary (an operand's label): English is ``lower``-cased in the middle
    of a sentence, unless it is an acronym; a translation is used as it is."""

    __slots__ = ("lower",)

    def __init__(self, id: str, lower: bool = False) -> None:
        super().__init__(id)
        self.lower = lower

    def _render(self, gettext: Callable[[str], str] | None) -> str:
        text = gettext(self.id) if gettext is not None else self.id
        if text == self.id and self.lower and not self.id.isupper():
            return text.lower()
        return text


class Join(Msg):
    """Parts joined by a separator (``", "``, ``"; "``, ``" and "``)."""

    __slots__ = ("sep", "parts")

    def __init__(self, sep: str, parts: list) -> None:
        super().__init__("")
        self.sep = sep
        self.parts = parts

    def _render(self, gettext: Callable[[str], str] | None) -> str:
        sep = gettext(self.sep) if gettext is not None and self.sep.strip() else self.sep
        return sep.join(p.render(gettext) if isinstance(p, Msg) else str(p) for p in self.parts)

    def ids(self) -> set[str]:
        found = {self.sep} if self.sep.strip() else set()
        for p in self.parts:
            if isinstance(p, Msg):
                found |= p.ids()
        return found


#: a stored sentence read back is at most this deep and has at most this many parts in all
_STORED_DEPTH, _STORED_PARTS = 8, 200


def msg_to_json(msg: Any) -> Any:
    """A sentence as JSON to store beside its English text (message ids and parameters), so a
    shell can render it later in its viewer's language (`msg_from_json`). Plain values as text."""
    if isinstance(msg, Term):
        return {"t": msg.id, "lower": msg.lower}
    if isinstance(msg, Join):
        return {"j": msg.sep, "parts": [msg_to_json(p) for p in msg.parts]}
    if isinstance(msg, Msg):
        return {"m": msg.id, "p": {k: msg_to_json(v) for k, v in msg.params.items()}}
    return msg if isinstance(msg, (str, int, float, bool)) or msg is None else str(msg)


def msg_from_json(data: Any) -> Any:
    """A sentence stored by `msg_to_json` (a Msg, or the plain value). ValueError: not one."""
    budget = [_STORED_PARTS]

    def read(item: Any, depth: int) -> Any:
        budget[0] -= 1
        if depth > _STORED_DEPTH or budget[0] < 0:
            raise ValueError("a stored sentence too deep or too long")
        if not isinstance(item, dict):
            if isinstance(item, (str, int, float, bool)) or item is None:
                return item
            raise ValueError("not a stored sentence")
        if isinstance(item.get("t"), str):
            return Term(item["t"], bool(item.get("lower")))
        if isinstance(item.get("j"), str) and isinstance(item.get("parts"), list):
            return Join(item["j"], [read(p, depth + 1) for p in item["parts"]])
        message_id, params = item.get("m"), item.get("p", {})
        if isinstance(message_id, str) and isinstance(params, dict):
            return Msg(message_id, **{str(k): read(v, depth + 1) for k, v in params.items()})
        raise ValueError("not a stored sentence")

    return read(data, 0)


def M_(message: str) -> str:
    """Marks a message id kept in a table (extracted with ``-k M_``)."""
    return message

_TIME_PHRASE = {
    "lt": M_("before %(value)s"), "lteq": M_("no later than %(value)s"), "gt": M_("after %(value)s"),
    "gteq": M_("at or after %(value)s"), "eq": M_("exactly at %(value)s"), "neq": M_("at any time other than %(value)s"),
}
_DATE_PHRASE = {
    "lt": M_("before %(value)s"), "lteq": M_("no later than the end of %(value)s"),
    "gt": M_("after the end of %(value)s"), "gteq": M_("on or after %(value)s"), "eq": M_("on %(value)s"),
    "neq": M_("on a day other than %(value)s"),
}
_NUM_PHRASE = {
    "lt": M_("less than %(value)s"), "lteq": M_("at most %(value)s"), "gt": M_("more than %(value)s"),
    "gteq": M_("at least %(value)s"), "eq": M_("exactly %(value)s"), "neq": M_("other than %(value)s"),
}
_DURATION_UNITS = (
    (M_("%(n)s year"), M_("%(n)s years")), (M_("%(n)s month"), M_("%(n)s months")),
    (M_("%(n)s day"), M_("%(n)s days")), (M_("%(n)s hour"), M_("%(n)s hours")),
    (M_("%(n)s minute"), M_("%(n)s minutes")), (M_("%(n)s second"), M_("%(n)s seconds")),
)


def _phrase(table: dict[str, str], op: str, value: Any) -> Msg:
    """An operator's phrase around its value ("before X", "at most X"); an unknown operator by name."""
    template = table.get(op)
    return Msg(template, value=value) if template else Msg("%(op)s %(value)s", op=op, value=value)


def human_msg(d: Duration, *, signed: bool = True) -> Msg:
    """A duration in words ("1 year, 2 days"), as `Duration.human` says it."""
    y, mo = divmod(abs(d.months), 12)
    secs, us = divmod(abs(d.micros), 1_000_000)
    days, secs = divmod(secs, 86400)
    h, secs = divmod(secs, 3600)
    mi, secs = divmod(secs, 60)
    parts: list = [Msg(one if n == 1 else many, n=n) for n, (one, many) in zip((y, mo, days, h, mi, secs), _DURATION_UNITS) if n]
    if us and not parts:
        parts.append(Msg("%(n)s microseconds", n=us))
    body: Msg = Join(", ", parts) if parts else Msg("no time")
    if signed and (d.months < 0 or d.micros < 0):
        return Msg("minus %(duration)s", duration=body)
    return body


def _duration_msg(d: Duration) -> Msg:
    return Msg("%(text)s (%(human)s)", text=d.text, human=human_msg(d))


def value_msg(atom: "Atom", v: Any) -> "Msg | str":
    if v is None:
        return Msg("unknown")
    dom = atom.lo.domain
    if isinstance(v, (frozenset, set, list, tuple)):
        items = sorted(taxonomy.display(x, dom) for x in v)
        if dom == "purpose" and len(items) == 1:
            return items[0]  # one declared purpose reads as before sets of purposes
        return "{" + ", ".join(items) + "}" if items else Msg("none")
    if isinstance(v, datetime):
        return fmt_datetime(v)
    if isinstance(v, Duration):
        return _duration_msg(v)
    return taxonomy.display(v, dom) if isinstance(v, str) else str(v)


def value_text(atom: "Atom", v: Any) -> str:
    return str(value_msg(atom, v))


def expected_msg(atom: "Atom") -> "Msg | str":
    r = atom.right
    dom = atom.lo.domain
    if atom.date_interval is not None:
        return atom.right_text
    if isinstance(r, tuple):
        return Join(", ", [taxonomy.display(x, dom) if isinstance(x, str) else value_msg(atom, x) for x in r])
    if atom.unit:
        return Msg("%(value)s %(unit)s", value=value_msg(atom, r), unit=compact(atom.unit))
    return value_msg(atom, r)


def expected_text(atom: "Atom") -> str:
    return str(expected_msg(atom))


def _count_rule(op: str, n: Any) -> Msg:
    if op == "lteq":
        return Msg("at most %(n)s use", n=n) if n == 1 else Msg("at most %(n)s uses", n=n)
    template = {
        "lt": M_("fewer than %(n)s uses"),
        "eq": M_("only use number %(n)s"),
        "neq": M_("any use except use number %(n)s"),
        "gt": M_("uses after the first %(n)s"),
        "gteq": M_("uses from number %(n)s on"),
    }.get(op)
    return Msg(template, n=n) if template else Msg("use numbers %(op)s %(n)s", op=op, n=n)


_EVENT_RULE = {"lt": M_("before the event %(event)s"), "lteq": M_("before or during the event %(event)s"),
               "eq": M_("during the event %(event)s"), "gt": M_("after the event %(event)s"),
               "gteq": M_("during or after the event %(event)s"), "neq": M_("not during the event %(event)s")}
_REQUIREMENT = {
    "eq": M_("%(label)s must be %(value)s"),
    "neq": M_("%(label)s must not be %(value)s"),
    "isA": M_("%(label)s must be a kind of %(value)s"),
    "isAnyOf": M_("%(label)s must be one of: %(value)s"),
    "isNoneOf": M_("%(label)s must be none of: %(value)s"),
    "isAllOf": M_("%(label)s must include all of: %(value)s"),
    "hasPart": M_("%(label)s must include %(value)s"),
    "isPartOf": M_("%(label)s must lie within: %(value)s"),
    "lt": M_("%(label)s must be less than %(value)s"),
    "lteq": M_("%(label)s must be at most %(value)s"),
    "gt": M_("%(label)s must be more than %(value)s"),
    "gteq": M_("%(label)s must be at least %(value)s"),
}


def requirement_msg(atom: "Atom") -> Msg:
    """What the constraint demands, as a clause."""
    lo, op, kind = atom.lo, atom.op, atom.lo.kind
    if kind == "count":
        if op == "isAnyOf":
            return Msg("the use number must be one of %(values)s", values=expected_msg(atom))
        if op == "isNoneOf":
            return Msg("the use number must not be one of %(values)s", values=expected_msg(atom))
        return Msg("there may be %(rule)s (this one included)", rule=_count_rule(op, atom.right))
    if kind == "datetime":
        table = _DATE_PHRASE if atom.date_interval is not None else _TIME_PHRASE
        return Msg("the request must be made %(when)s", when=_phrase(table, op, expected_msg(atom)))
    if kind == "elapsed":
        return Msg("the time since the agreement must be %(limit)s",
                   limit=_phrase(_NUM_PHRASE, op, _duration_msg(atom.right)))
    if kind == "event":
        ev = expected_msg(atom)
        template = _EVENT_RULE.get(op)
        return Msg(template, event=ev) if template else Msg("event %(op)s %(event)s", op=op, event=ev)
    label = Term(lo.label, lower=True)
    template = _REQUIREMENT.get(op)
    if template:
        return Msg(template, label=label, value=expected_msg(atom))
    return Msg("%(label)s %(op)s %(value)s", label=label, op=op, value=expected_msg(atom))


def requirement(atom: "Atom") -> str:
    return str(requirement_msg(atom))


_OUTCOME = {  # operator: (holds, does not hold)
    "isAnyOf": (M_("%(label)s %(value)s is one of: %(expected)s."),
                M_("%(label)s %(value)s is not one of the permitted: %(expected)s.")),
    "isNoneOf": (M_("%(label)s %(value)s is none of: %(expected)s."),
                 M_("%(label)s %(value)s is one of the excluded: %(expected)s.")),
    "eq": (M_("%(label)s is %(value)s, as required."), M_("%(label)s is %(value)s; the policy requires %(expected)s.")),
    "neq": (M_("%(label)s %(value)s is not %(expected)s."), M_("%(label)s is %(value)s, which the policy excludes.")),
    "isA": (M_("%(label)s %(value)s is a kind of %(expected)s."), M_("%(label)s %(value)s is not a kind of %(expected)s.")),
    "isPartOf": (M_("%(label)s %(value)s lies within: %(expected)s."),
                 M_("%(label)s %(value)s does not lie within: %(expected)s.")),
    "hasPart": (M_("%(label)s %(value)s includes %(expected)s."), M_("%(label)s %(value)s does not include %(expected)s.")),
    "isAllOf": (M_("%(label)s %(value)s includes all of: %(expected)s."),
                M_("%(label)s %(value)s does not include all of: %(expected)s.")),
}
_EVENT_STATE_WORDS = {"upcoming": M_("upcoming"), "ongoing": M_("ongoing"), "ended": M_("ended"), "unknown": M_("unknown")}


def atom_msg(atom: "Atom", v: Any, state: str, role: str) -> Msg:
    """One sentence about a constraint's outcome. ``v`` is the value the
    context supplied (None: missing); ``role`` is permission, prohibition,
    duty or refinement."""
    lo, op, kind = atom.lo, atom.op, atom.lo.kind
    if state == "unknown":
        what: Msg = Term(lo.missing) if lo.missing else Msg("%(label)s is not known", label=Term(lo.label))
        if v is not None and kind not in ("elapsed",):
            what = Msg("%(label)s %(value)s cannot be compared with %(expected)s", label=Term(lo.label),
                       value=value_msg(atom, v), expected=expected_msg(atom))
        tail = (Msg("the prohibition is applied") if role == "prohibition"
                else Msg("the duty is treated as required") if role == "duty" else Msg("access is refused"))
        return Msg("%(what)s, so the condition that %(requirement)s cannot be checked; %(consequence)s (fail closed).",
                   what=what, requirement=requirement_msg(atom), consequence=tail)
    ok = state == "satisfied"
    if kind == "count":
        if op not in ("isAnyOf", "isNoneOf"):
            rule = _count_rule(op, atom.right)
        else:
            rule = Msg("use numbers %(op)s %(values)s", op=op, values=expected_msg(atom))
        if ok:
            return Msg("This is use number %(n)s of the asset under this agreement; the policy allows %(rule)s.",
                       n=v + 1, rule=rule)
        return Msg("This would be use number %(n)s of the asset under this agreement; the policy allows %(rule)s.",
                   n=v + 1, rule=rule)
    if kind == "datetime":
        table = _DATE_PHRASE if atom.date_interval is not None else _TIME_PHRASE
        when = _phrase(table, op, expected_msg(atom))
        if ok:
            return Msg("The request at %(time)s is %(when)s.", time=fmt_datetime(v), when=when)
        return Msg("The request at %(time)s is not %(when)s.", time=fmt_datetime(v), when=when)
    if kind == "elapsed":
        now, agreed = v
        d: Duration = atom.right
        try:
            limit: Any = fmt_datetime(add_duration(agreed, d))
        except OverflowError:
            limit = Msg("the end of time")
        since = Duration.from_timedelta(now - agreed)
        if since.micros > 0:
            when: Msg = Msg("%(duration)s after", duration=human_msg(since))
        elif since.micros == 0:
            when = Msg("at the time of")
        else:
            when = Msg("%(duration)s before", duration=human_msg(since, signed=False))
        params = {"when": when, "agreed": fmt_datetime(agreed), "limit": _phrase(_NUM_PHRASE, op, _duration_msg(d)),
                  "end": limit}
        if ok:
            return Msg("The request comes %(when)s the agreement of %(agreed)s; the policy requires the time since "
                       "the agreement to be %(limit)s, i.e. a limit of %(end)s.", **params)
        return Msg("The request comes %(when)s the agreement of %(agreed)s; the policy requires the time since "
                   "the agreement to be %(limit)s, i.e. a limit of %(end)s, which this request does not meet.", **params)
    if kind == "event":
        ev = expected_msg(atom)
        st = v.get(atom.right if not isinstance(atom.right, tuple) else atom.right[0], "unknown") if isinstance(v, dict) else v
        word = _EVENT_STATE_WORDS.get(st) if isinstance(st, str) else None
        state_text: Any = Msg(word) if word else st
        if ok:
            return Msg("The event %(event)s is %(state)s; the policy requires use %(requirement)s.",
                       event=ev, state=state_text, requirement=requirement_msg(atom))
        return Msg("The event %(event)s is %(state)s; the policy requires use %(requirement)s, which does not hold.",
                   event=ev, state=state_text, requirement=requirement_msg(atom))
    params = {"label": Term(lo.label), "value": value_msg(atom, v), "expected": expected_msg(atom)}
    pair = _OUTCOME.get(op)
    if pair is not None:
        return Msg(pair[0] if ok else pair[1], **params)
    compared = _phrase(_NUM_PHRASE, op, params.pop("expected"))
    if ok:
        return Msg("%(label)s %(value)s is %(compared)s.", compared=compared, **params)
    return Msg("%(label)s %(value)s is not %(compared)s.", compared=compared, **params)


def atom_sentence(atom: "Atom", v: Any, state: str, role: str) -> str:
    return str(atom_msg(atom, v, state, role))


def duty_msg(d: "Duty") -> Msg:
    """What a duty asks, as a sentence."""
    p = dict(d.params)
    fields = p.get("fields")
    flist = ", ".join(fields) if fields else None
    when: Any = Msg(" before the data is released") if d.timing == "before-release" else ""
    k = d.kind
    if k == "log":
        ch = p.get("clearing_house")
        return Msg("Log the access to the clearing house%(name)s%(when)s; if it is not accepted, the access is blocked.",
                   name=" " + compact(ch) if ch else "", when=when)
    if k == "notify":
        who = p.get("informed_party")
        return Msg("Notify %(party)s of the access%(when)s.", party=compact(who) if who else Msg("the provider"), when=when)
    several = bool(fields and len(fields) > 1)
    if k == "drop-fields":
        if several:
            return Msg("Drop the fields %(fields)s from every record%(when)s.", fields=flist, when=when)
        return Msg("Drop the field %(fields)s from every record%(when)s.", fields=flist, when=when)
    if k == "pseudonymise-fields":
        if several:
            return Msg("Pseudonymise the fields %(fields)s in every record%(when)s.", fields=flist, when=when)
        return Msg("Pseudonymise the field %(fields)s in every record%(when)s.", fields=flist, when=when)
    if k == "aggregate-only":
        from .compute_terms import aggregate_msg
        return Msg("%(terms)s%(when)s.", terms=aggregate_msg(p), when=when)
    if k == "anonymise":
        if flist:
            return Msg("Anonymise the fields %(fields)s%(when)s.", fields=flist, when=when)
        return Msg("Anonymise the data%(when)s.", when=when)
    if k == "replace":
        return Msg("Replace the values at %(path)s with %(value)s%(when)s.", path=p.get("json_path", "?"),
                   value=repr(p.get("replace_with", "?")), when=when)
    if k == "watermark":
        return Msg("Watermark the data%(when)s.", when=when)
    if k == "delete":
        if d.deadline is not None:
            return Msg("The recipient must delete the data by %(deadline)s.", deadline=fmt_datetime(d.deadline))
        if p.get("within"):
            return Msg("The recipient must delete the data within %(duration)s of the agreement.",
                       duration=_duration_msg(Duration.parse(p["within"])))
        return Msg("The recipient must delete the data after use.")
    if k == "next-policy":
        pol = p.get("policy")
        return Msg("The recipient may pass the data on only under policy %(policy)s.",
                   policy=compact(pol) if pol else Msg("(this policy)"))
    if k == "attribute":
        who = p.get("attributed_party")
        return Msg("The recipient must attribute the data to %(party)s wherever it is used.",
                   party=compact(who) if who else Msg("its source"))
    if k == "obtain-consent":
        ref = p.get("consent_reference")
        return Msg("The data subjects' consent%(reference)s must be on record.", reference=" " + str(ref) if ref else "")
    if k == "compensate":
        amt = p.get("amount")
        unit = p.get("unit")
        return Msg("Payment%(amount)s%(unit)s must have been made.",
                   amount=Msg(" of %(amount)s", amount=str(amt)) if amt is not None else "",
                   unit=" " + compact(unit) if unit else "")
    if k == "other":
        return Msg("Perform an action (%(action)s).", action=compact(d.action).lower())
    return Msg("Perform (%(action)s).", action=compact(d.action).lower())


def describe_duty(d: "Duty") -> str:
    return str(duty_msg(d))


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
