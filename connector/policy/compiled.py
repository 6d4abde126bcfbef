"""The compiled form of a policy and its evaluation.

Two evaluators share the same compiled constraint tests:

* ``CompiledPolicy.evaluate`` is the hot path. It indexes rules by requested
  action once, runs precompiled closures (no parsing, no string work) and
  returns a permit with precomputed reasons.
* Anything that is not a clean permit goes to ``CompiledPolicy.report``: a
  full evaluation of every rule that records each constraint's outcome and
  writes the sentences. Its decision is the one returned, so a deny always
  carries complete reasons. Tests check that both agree.

Three-valued logic: a constraint whose left operand the context cannot supply
is *unknown*. A permission needs every constraint *satisfied*; a prohibition
applies unless a constraint is *not satisfied*. Unknown therefore always
fails closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Callable

from .explain import Join, Msg, Term, atom_msg, expected_text, requirement_msg, value_text
from .model import (
    ConstraintReport,
    Context,
    Decision,
    Duty,
    DutyReport,
    Effect,
    PolicyReport,
    Reason,
    Request,
    RuleReport,
)
from .values import Duration, add_duration, fmt_datetime
from .vocab import LeftOperand, action_ancestors, compact


_SKIP = 0
_BLOCK = 1

_STATE = {True: "satisfied", False: "not-satisfied", None: "unknown"}


# ---------------------------------------------------------------------------
# constraints
# ---------------------------------------------------------------------------


class Atom:
    """One constraint: leftOperand operator rightOperand."""

    __slots__ = ("path", "uid", "lo", "op", "right", "right_text", "date_interval", "unit", "get", "test", "fast", "undeferred")

    def __init__(self, path: str, uid: str | None, lo: LeftOperand, op: str, right: Any, unit: str | None,
                 get: Callable[[Context], Any], test: Callable[[Any], "bool | None"],
                 date_interval: tuple[datetime, datetime] | None = None, right_text: str | None = None):
        self.path = path
        self.uid = uid
        self.lo = lo
        self.op = op
        self.right = right
        self.unit = unit
        self.get = get
        self.test = test
        self.date_interval = date_interval
        self.right_text = right_text

        field = lo.field

        def fast(ctx, _get=get, _test=test, _field=field):
            if ctx.deferred and _field in ctx.deferred:
                return True  # decided at each use, not now
            v = _get(ctx)
            if v is None:
                return None
            return _test(v)

        def undeferred(ctx, _get=get, _test=test):  # `fast` for a context that defers nothing (the data plane's)
            v = _get(ctx)
            if v is None:
                return None
            return _test(v)

        self.fast = fast
        self.undeferred = undeferred

    def describe(self) -> str:
        return str(requirement_msg(self))

    def describe_msg(self) -> Msg:
        return requirement_msg(self)

    def detail(self, ctx: Context, role: str, rule: str) -> ConstraintReport:
        if ctx.deferred and self.lo.field in ctx.deferred:
            text = Msg("Checked at each use, not now: %(requirement)s.", requirement=requirement_msg(self))
            reason = Reason(rule=rule, path=self.path, code="constraint-deferred", message=str(text),
                            left_operand=compact(self.lo.iri), operator=self.op, expected=expected_text(self), text=text)
            return ConstraintReport(self.path, "satisfied", reason, (), self.uid)
        v = self.get(ctx)
        r = None if v is None else self.test(v)
        if r is None and self.lo.kind == "event":
            v = None  # the mapping is there, but not this event's state
        state = _STATE[r]
        if v is None:
            code = "operand-missing"
        elif r is None:
            code = "operand-incomparable"
        else:
            code = "constraint-satisfied" if r else "constraint-not-satisfied"
        actual = None if v is None else value_text(self, v if self.lo.kind != "elapsed" else v[0] - v[1])
        if self.lo.kind == "elapsed" and v is not None:
            actual = Duration.from_timedelta(v[0] - v[1]).human()
        if self.lo.kind == "count" and v is not None:
            actual = str(v + 1)
        text = atom_msg(self, v, state, role)
        reason = Reason(rule=rule, path=self.path, code=code, message=str(text),
                        left_operand=compact(self.lo.iri), operator=self.op, expected=expected_text(self), actual=actual,
                        text=text)
        return ConstraintReport(self.path, state, reason, (), self.uid)


def _combine(op: str, fasts: tuple) -> Callable[[Context], "bool | None"]:
    """The three-valued and / or / xone of `fasts` (True, False, or None: cannot be checked)."""
    if op in ("and", "andSequence"):
        if len(fasts) == 1:
            return fasts[0]

        def fast_and(ctx, _f=fasts):
            res = True
            for f in _f:
                r = f(ctx)
                if r is False:
                    return False
                if r is None:
                    res = None
            return res
        return fast_and
    if op == "or":
        def fast_or(ctx, _f=fasts):
            res = False
            for f in _f:
                r = f(ctx)
                if r is True:
                    return True
                if r is None:
                    res = None
            return res
        return fast_or

    def fast_xone(ctx, _f=fasts):
        t = u = 0
        for f in _f:
            r = f(ctx)
            if r is True:
                t += 1
                if t > 1:
                    return False
            elif r is None:
                u += 1
        if u:
            return None
        return t == 1
    return fast_xone


def _all_atoms(pairs: tuple) -> Callable[[Context], "bool | None"]:
    """The conjunction of atoms (operand getter, test) for a context that defers nothing: the
    data plane's hot path, one call per atom fewer than `_combine` over `Atom.undeferred`."""
    def now_and(ctx, _p=pairs):
        res = True
        for get, test in _p:
            v = get(ctx)
            if v is None:
                res = None
                continue
            r = test(v)
            if r is False:
                return False
            if r is None:
                res = None
        return res
    return now_and


class Logic:
    """and / or / xone / andSequence over constraints (also the implicit
    conjunction of a rule's constraint list, with op "and" and no path)."""

    __slots__ = ("path", "uid", "op", "children", "fast", "undeferred")

    def __init__(self, path: str, uid: str | None, op: str, children: list):
        self.path = path
        self.uid = uid
        self.op = op
        self.children = children
        if op not in ("and", "andSequence", "or", "xone"):  # pragma: no cover - compiler never builds others
            raise ValueError(op)
        self.fast = _combine(op, tuple(c.fast for c in children))
        if op in ("and", "andSequence") and len(children) > 1 and all(c.__class__ is Atom for c in children):
            self.undeferred = _all_atoms(tuple((c.get, c.test) for c in children))
        else:
            self.undeferred = _combine(op, tuple(c.undeferred for c in children))

    def describe(self) -> str:
        return str(self.describe_msg())

    def describe_msg(self) -> Msg:
        parts = [c.describe_msg() for c in self.children]
        if self.op in ("and", "andSequence"):
            return Join(" and then " if self.op == "andSequence" else " and ", parts)
        if self.op == "or":
            return Msg("at least one of: %(conditions)s", conditions=Join("; ", parts))
        return Msg("exactly one of: %(conditions)s", conditions=Join("; ", parts))

    def detail(self, ctx: Context, role: str, rule: str) -> ConstraintReport:
        kids = tuple(c.detail(ctx, role, rule) for c in self.children)
        states = [k.state for k in kids]
        if self.op in ("and", "andSequence"):
            st = "not-satisfied" if "not-satisfied" in states else "unknown" if "unknown" in states else "satisfied"
        elif self.op == "or":
            st = "satisfied" if "satisfied" in states else "unknown" if "unknown" in states else "not-satisfied"
        else:
            t = states.count("satisfied")
            st = "not-satisfied" if t > 1 else "unknown" if "unknown" in states else ("satisfied" if t == 1 else "not-satisfied")
        reason = None
        if self.path and st != "satisfied":
            if self.op == "xone":
                counts = {"holding": states.count("satisfied"), "all": len(states)}
                msg = (Msg("Exactly one of the alternatives must hold; %(holding)s of %(all)s hold and some cannot be "
                           "checked.", **counts) if "unknown" in states
                       else Msg("Exactly one of the alternatives must hold; %(holding)s of %(all)s hold.", **counts))
            elif self.op == "or":
                msg = (Msg("None of the alternatives holds (some cannot be checked).") if st == "unknown"
                       else Msg("None of the alternatives holds."))
            else:
                msg = Msg("Not all of the combined conditions hold.")
            reason = Reason(rule=rule, path=self.path, code="constraint-not-satisfied" if st == "not-satisfied" else "operand-missing",
                            message=str(msg), operator=self.op, text=msg)
        return ConstraintReport(self.path, st, reason, kids, self.uid)


def _failures(rep: ConstraintReport, out: list[Reason], want: tuple[str, ...] = ("not-satisfied", "unknown")) -> None:
    """Collect the reasons a constraint tree did not hold, leaves first."""
    if rep.state not in want:
        return
    if not rep.children:
        if rep.reason is not None:
            out.append(rep.reason)
        return
    if rep.reason is not None and rep.path:
        out.append(rep.reason)
    for k in rep.children:
        _failures(k, out, want)


def _successes(rep: ConstraintReport, out: list[Reason]) -> None:
    if rep.state != "satisfied":
        return
    if not rep.children:
        if rep.reason is not None:
            out.append(rep.reason)
        return
    for k in rep.children:
        _successes(k, out)


# ---------------------------------------------------------------------------
# duties
# ---------------------------------------------------------------------------


class CDuty:
    __slots__ = ("path", "uid", "key", "name", "action", "kind", "timing", "params", "cond", "deadline_abs",
                 "deadline_dur", "deadline_td", "deadline_strict", "consequences", "static", "consent_ref", "dynamic", "_last",
                 "_due")

    def __init__(self, *, path, uid, action, kind, timing, params, cond, deadline_abs, deadline_dur,
                 deadline_strict, consequences, consent_ref):
        self.path = path
        self.uid = uid
        self.key = uid or path
        self.name = uid or path
        self.action = action
        self.kind = kind
        self.timing = timing
        self.params = params
        self.cond: Logic | None = cond
        self.deadline_abs: datetime | None = deadline_abs
        self.deadline_dur: Duration | None = deadline_dur
        self.deadline_td = (timedelta(microseconds=deadline_dur.micros)
                            if deadline_dur is not None and deadline_dur.months == 0 else None)
        self.deadline_strict = deadline_strict
        self.consequences: list[CDuty] = consequences
        self.consent_ref = consent_ref
        self.static = Duty(kind, action, self.name, timing, params, deadline_abs)
        self.dynamic = deadline_dur is not None or deadline_abs is not None
        self._last: tuple[datetime, datetime] | None = None
        #: (deadline, the Duty due then) of the last call: one agreement's accesses share it (Duty is immutable)
        self._due: tuple[datetime, Duty] | None = None

    def deadline(self, ctx: Context) -> datetime | None:
        if self.deadline_abs is not None:
            return self.deadline_abs
        a = ctx.agreement_time
        if a is None:
            return None
        last = self._last
        if last is not None and last[0] == a:
            return last[1]
        if self.deadline_td is not None:
            dl = a + self.deadline_td
        else:
            try:
                dl = add_duration(a, self.deadline_dur)
            except OverflowError:
                dl = datetime.max.replace(tzinfo=a.tzinfo)
        self._last = (a, dl)
        return dl

    def run(self, ctx: Context, eventual: bool):
        """_SKIP (inactive or already fulfilled), _BLOCK, or the Duty to perform."""
        if self.cond is not None and self.cond.fast(ctx) is False:
            return _SKIP
        st = ctx.duty_states
        state = st.get(self.key) if st else None
        if state == "violated":
            return _BLOCK
        t = self.timing
        if t == "before-release":
            return self.static
        if t == "precondition":
            if state == "fulfilled":
                return _SKIP
            if self.consent_ref is not None and ctx.consents and self.consent_ref in ctx.consents:
                return _SKIP
            if self.kind == "obtain-consent" and ctx.deferred and "consents" in ctx.deferred:
                return _SKIP  # consent is checked at each use, not when the contract is made
            return self.static if eventual else _BLOCK
        if not self.dynamic:
            return self.static
        now = ctx.now
        if now is None:
            return _BLOCK
        dl = self.deadline(ctx)
        if dl is None or now > dl or (self.deadline_strict and now == dl):
            return _BLOCK
        if self.deadline_abs is not None:
            return self.static
        due = self._due
        if due is not None and due[0] == dl:
            return due[1]
        duty = Duty(self.kind, self.action, self.name, t, self.params, dl)
        self._due = (dl, duty)
        return duty

    def report(self, ctx: Context, eventual: bool, rule: str) -> DutyReport:
        if self.cond is not None:
            c = self.cond.detail(ctx, "duty", rule)
            if c.state == "not-satisfied":
                return DutyReport(self.path, self.uid, self.kind, "inactive")
        st = ctx.duty_states
        state = st.get(self.key) if st else None
        what = Msg("%(kind)s duty (%(action)s)", kind=Term(self.kind.replace("-", " ")), action=compact(self.action))

        def blocked(code: str, msg: Msg, s: str = "blocked") -> DutyReport:
            return DutyReport(self.path, self.uid, self.kind, s,
                              Reason(rule=rule, path=self.path, code=code, message=str(msg), text=msg))

        if state == "violated":
            if self.consequences:
                return blocked("duty-violated", Msg("The %(duty)s has been violated; its consequences now apply, so the "
                                                    "permission no longer holds.", duty=what), "violated")
            return blocked("duty-violated", Msg("The %(duty)s has been violated, so the permission no longer holds.",
                                                duty=what), "violated")
        t = self.timing
        if t == "before-release":
            return DutyReport(self.path, self.uid, self.kind, "to-perform", duty=self.static)
        if t == "precondition":
            if state == "fulfilled" or (self.consent_ref is not None and ctx.consents and self.consent_ref in ctx.consents):
                return DutyReport(self.path, self.uid, self.kind, "fulfilled")
            if self.kind == "obtain-consent" and ctx.deferred and "consents" in ctx.deferred:
                return DutyReport(self.path, self.uid, self.kind, "inactive")  # checked at each use, not now
            if eventual:
                return DutyReport(self.path, self.uid, self.kind, "not-set", duty=self.static)
            from .explain import duty_msg
            return blocked("duty-not-fulfilled",
                           Msg("The %(duty)s is a condition of this permission and has not been fulfilled: %(detail)s "
                               "(no record of it; ODRL duties of a permission must be fulfilled before it can be "
                               "exercised).", duty=what, detail=duty_msg(self.static)),
                           "not-set")
        if not self.dynamic:
            return DutyReport(self.path, self.uid, self.kind, "to-perform", duty=self.static)
        if ctx.now is None:
            return blocked("operand-missing", Msg("The time of the request was not supplied, so the deadline of the "
                                                  "%(duty)s cannot be checked (fail closed).", duty=what))
        dl = self.deadline(ctx)
        if dl is None:
            return blocked("operand-missing", Msg("The time of the agreement is not known, so the deadline of the "
                                                  "%(duty)s cannot be computed; access is refused (fail closed).", duty=what))
        if ctx.now > dl or (self.deadline_strict and ctx.now == dl):
            return blocked("duty-deadline-passed",
                           Msg("The %(duty)s fell due at %(deadline)s; the data must already have been deleted, so it "
                               "may not be used at %(now)s.", duty=what, deadline=fmt_datetime(dl), now=fmt_datetime(ctx.now)))
        duty = self.static if self.deadline_abs is not None else Duty(self.kind, self.action, self.name, t, self.params, dl)
        return DutyReport(self.path, self.uid, self.kind, "to-perform", duty=duty)


# ---------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------


class Collection:
    """An AssetCollection or PartyCollection a rule names, with its refinement."""

    __slots__ = ("ids", "refinement", "label")

    def __init__(self, ids: frozenset[str], refinement: Logic | None, label: str):
        self.ids = ids
        self.refinement = refinement
        self.label = label


class CRule:
    __slots__ = ("kind", "path", "uid", "name", "actions", "targets", "target_colls", "parties", "party_colls",
                 "cond", "cond_now", "constraints", "duties", "remedies", "permit_reasons", "simple_duties",
                 "static_duties", "plan", "plan_template", "plan_dynamic")

    def __init__(self, *, kind, path, uid, actions, targets, target_colls, parties, party_colls, constraints, duties, remedies):
        self.kind = kind
        self.path = path
        self.uid = uid
        self.name = uid or path
        #: tuple of (action IRI or None for any, refinement Logic or None)
        self.actions: tuple[tuple[str | None, Logic | None], ...] = actions
        self.targets: frozenset[str] | None = targets
        self.target_colls: tuple[Collection, ...] = target_colls
        self.parties: frozenset[str] | None = parties
        self.party_colls: tuple[Collection, ...] = party_colls
        self.constraints: list = constraints
        self.cond: Logic | None = Logic("", None, "and", constraints) if constraints else None
        self.cond_now = self.cond.undeferred if self.cond is not None else None
        self.duties: list[CDuty] = duties
        self.remedies: list[CDuty] = remedies
        permits = Msg("%(rule)s%(uid)s permits %(actions)s: every condition holds.", rule=path,
                      uid=" (" + uid + ")" if uid else "", actions=self.describe_actions_msg())
        self.permit_reasons = (Reason(rule=self.name, path=path, code="permitted", message=str(permits), text=permits),)
        self.simple_duties = all(d.timing != "precondition" and not d.dynamic and d.cond is None for d in duties)
        self.static_duties = tuple(d.static for d in duties) if self.simple_duties else None
        #: duties in order; the ones that need no evaluation already as their Duty
        self.plan = tuple(d.static if (d.timing != "precondition" and not d.dynamic and d.cond is None) else d for d in duties)
        #: the plan as the duties that need no evaluation in place (None where one does) and the
        #: (position, duty) of those that do: the hot path fills the gaps, dropping skipped ones
        self.plan_template = tuple(d if d.__class__ is Duty else None for d in self.plan)
        self.plan_dynamic = tuple((i, d) for i, d in enumerate(self.plan) if d.__class__ is not Duty)

    # premise --------------------------------------------------------------
    @staticmethod
    def _match(ids: frozenset[str] | None, colls: tuple[Collection, ...], subject: str | None,
               memberships: frozenset[str] | None, ctx: Context):
        """True / False / None (a collection refinement could not be checked)."""
        if ids is None and not colls:
            return True
        if ids:
            if subject is not None and subject in ids:
                return True
            if memberships and not ids.isdisjoint(memberships):
                return True
        res = False
        for c in colls:
            if c.ids and not (subject in c.ids or (memberships and not c.ids.isdisjoint(memberships))):
                continue
            r = c.refinement.fast(ctx) if c.refinement is not None else True
            if r is True:
                return True
            if r is None:
                res = None
        return res

    def target_state(self, req: Request, ctx: Context):
        return self._match(self.targets, self.target_colls, req.target, ctx.asset_collections, ctx)

    def party_state(self, req: Request, ctx: Context):
        return self._match(self.parties, self.party_colls, req.assignee, ctx.membership, ctx)

    # hot path -------------------------------------------------------------
    def grant(self, req: Request, ctx: Context, ref: Logic | None, eventual: bool):
        if (self.targets is not None or self.target_colls) and self.target_state(req, ctx) is not True:
            return None
        if (self.parties is not None or self.party_colls) and self.party_state(req, ctx) is not True:
            return None
        if ctx.deferred:
            if ref is not None and ref.fast(ctx) is not True:
                return None
            if self.cond is not None and self.cond.fast(ctx) is not True:
                return None
        else:  # nothing deferred (every data access): the checks without the deferral test
            if ref is not None and ref.undeferred(ctx) is not True:
                return None
            if self.cond_now is not None and self.cond_now(ctx) is not True:
                return None
        if not ctx.duty_states:
            if self.static_duties is not None:
                return self.static_duties
            out = list(self.plan_template)
            skipped = False
            for i, d in self.plan_dynamic:
                r = d.run(ctx, eventual)
                if r is _BLOCK:
                    return None
                if r is _SKIP:
                    skipped = True
                else:
                    out[i] = r
            return tuple(x for x in out if x is not None) if skipped else tuple(out)
        out = []
        for d in self.duties:
            r = d.run(ctx, eventual)
            if r is _BLOCK:
                return None
            if r is not _SKIP:
                out.append(r)
        return tuple(out)

    def forbids(self, req: Request, ctx: Context, ref: Logic | None) -> bool:
        if (self.targets is not None or self.target_colls) and self.target_state(req, ctx) is False:
            return False
        if (self.parties is not None or self.party_colls) and self.party_state(req, ctx) is False:
            return False
        if ref is not None and ref.fast(ctx) is False:
            return False
        if self.cond is not None and self.cond.fast(ctx) is False:
            return False
        return True

    def describe_actions(self) -> str:
        return str(self.describe_actions_msg())

    def describe_actions_msg(self) -> Msg:
        return Join(", ", [compact(a) if a else Msg("any action") for a, _ in self.actions])

    # full evaluation -------------------------------------------------------
    def report(self, req: Request, ctx: Context, anc: frozenset[str], eventual: bool) -> RuleReport:
        role = self.kind
        entry = None
        for a, ref in self.actions:
            if a is None or a in anc:
                entry = (a, ref)
                break
        action_matched = entry is not None
        t_wild = self.targets is None and not self.target_colls
        p_wild = self.parties is None and not self.party_colls
        t_raw = True if t_wild else self.target_state(req, ctx)
        p_raw = True if p_wild else self.party_state(req, ctx)
        # an unknown collection refinement fails closed: no match for a
        # permission, a match for a prohibition
        if role == "prohibition":
            t_state = None if t_wild else t_raw is not False
            p_state = None if p_wild else p_raw is not False
        else:
            t_state = None if t_wild else t_raw is True
            p_state = None if p_wild else p_raw is True
        reasons: list[Reason] = []
        creps = tuple(c.detail(ctx, role, self.name) for c in self.constraints)
        cstate = _conj([c.state for c in creps])
        ref_rep = entry[1].detail(ctx, "refinement", self.name) if entry and entry[1] is not None else None
        rstate = ref_rep.state if ref_rep is not None else "satisfied"
        drep: tuple[DutyReport, ...] = ()
        if role == "prohibition":
            premise = action_matched and t_state is not False and p_state is not False
            active = premise and cstate != "not-satisfied" and rstate != "not-satisfied"
            granted = False
            if active:
                acts = compact(entry[0]) if entry[0] else Msg("any action")
                why: list[Reason] = []
                for c in creps:
                    _successes(c, why)
                    _failures(c, why, ("unknown",))
                if ref_rep is not None:
                    _successes(ref_rep, why)
                    _failures(ref_rep, why, ("unknown",))
                head = {"rule": self.path, "uid": " (" + self.uid + ")" if self.uid else "", "actions": acts}
                text = (Msg("%(rule)s%(uid)s prohibits %(actions)s in this case:", **head) if why
                        else Msg("%(rule)s%(uid)s prohibits %(actions)s without conditions.", **head))
                reasons.append(Reason(rule=self.name, path=self.path, code="prohibited", message=str(text), text=text))
                reasons.extend(why)
        else:
            premise = action_matched and t_state is not False and p_state is not False
            if role == "obligation":
                premise = action_matched and p_state is not False
                active = premise and cstate != "not-satisfied"
                return RuleReport(self.path, self.uid, role, action_matched, t_state, p_state, creps, cstate, rstate,
                                  tuple(d.report(ctx, eventual, self.name) for d in self.duties) if active else (),
                                  active, False, ())
            if action_matched:
                if t_state is False:
                    text = Msg("%(rule)s covers %(targets)s only; the request is for %(target)s%(note)s.", rule=self.path,
                               targets=self._list_msg(self.targets, self.target_colls),
                               target=compact(req.target) if req.target else Msg("an unnamed asset"),
                               note=Msg(" (a collection refinement could not be checked)") if t_raw is None else "")
                    reasons.append(Reason(rule=self.name, path=self.path, code="target-mismatch", message=str(text),
                                          text=text))
                if p_state is False:
                    note = Msg(" (a collection refinement could not be checked)") if p_raw is None else ""
                    parties = self._list_msg(self.parties, self.party_colls)
                    text = (Msg("%(rule)s is granted to %(parties)s only; the requester is %(requester)s%(note)s.",
                                rule=self.path, parties=parties, requester=compact(req.assignee), note=note)
                            if req.assignee else
                            Msg("%(rule)s is granted to %(parties)s only; the requester is not identified%(note)s.",
                                rule=self.path, parties=parties, note=note))
                    reasons.append(Reason(rule=self.name, path=self.path, code="party-mismatch", message=str(text),
                                          text=text))
            if premise:
                drep = tuple(d.report(ctx, eventual, self.name) for d in self.duties)
            blocked = any(d.state in ("blocked", "violated") or (d.state == "not-set" and not eventual) for d in drep)
            active = bool(premise and cstate == "satisfied" and not blocked)
            granted = active and rstate == "satisfied"
            if premise and not granted:
                for c in creps:
                    _failures(c, reasons)
                if ref_rep is not None:
                    before = len(reasons)
                    _failures(ref_rep, reasons)
                    for i in range(before, len(reasons)):
                        r = reasons[i]
                        text = Msg("Refinement of the action: %(reason)s", reason=r.sentence())
                        reasons[i] = Reason(r.rule, r.path, "refinement-not-satisfied" if r.code == "constraint-not-satisfied" else r.code,
                                            str(text), r.left_operand, r.operator, r.expected, r.actual, text)
                for d in drep:
                    if d.reason is not None:
                        reasons.append(d.reason)
            if granted:
                why: list[Reason] = []
                for c in creps:
                    _successes(c, why)
                head = {"rule": self.path, "uid": " (" + self.uid + ")" if self.uid else "",
                        "action": compact(entry[0]) if entry[0] else Msg("any action")}
                text = (Msg("%(rule)s%(uid)s permits %(action)s: %(detail)s", detail=Join(" ", [r.sentence() for r in why]),
                            **head) if why else Msg("%(rule)s%(uid)s permits %(action)s: it has no conditions.", **head))
                reasons.append(Reason(rule=self.name, path=self.path, code="permitted", message=str(text), text=text))
        return RuleReport(self.path, self.uid, role, action_matched, t_state, p_state, creps, cstate, rstate,
                          drep, active, granted, tuple(reasons))

    @staticmethod
    def _list(ids, colls) -> str:
        return str(CRule._list_msg(ids, colls))

    @staticmethod
    def _list_msg(ids, colls) -> "Msg | str":
        names = sorted(compact(i) for i in (ids or ()))
        names += [c.label for c in colls]
        return ", ".join(names) or Msg("nobody")


def _conj(states: list[str]) -> str:
    if "not-satisfied" in states:
        return "not-satisfied"
    if "unknown" in states:
        return "unknown"
    return "satisfied"


# ---------------------------------------------------------------------------
# policy
# ---------------------------------------------------------------------------


class CompiledPolicy:
    """A policy compiled once; evaluate it as often as needed."""

    def __init__(self, *, uid, policy_type, conflict, profile, permissions, prohibitions, obligations,
                 duty_reading, warnings, source_kind):
        self.uid: str | None = uid
        self.policy_type: str = policy_type
        #: perm | prohibit | invalid
        self.conflict: str = conflict
        self.profile: tuple[str, ...] = profile
        self.permissions: list[CRule] = permissions
        self.prohibitions: list[CRule] = prohibitions
        self.obligations: list[CRule] = obligations
        #: "precondition" (W3C formal semantics, the default) or "eventual"
        self.duty_reading: str = duty_reading
        self.warnings: list[tuple[str, str]] = warnings
        self.source_kind = source_kind
        self._eventual = duty_reading == "eventual"
        self._index: dict[str, tuple[tuple, tuple]] = {}
        self._no_obligations = not obligations

    # ------------------------------------------------------------------
    def _build_index(self, action: str):
        anc = action_ancestors(action)

        def pick(rules):
            out = []
            for r in rules:
                for a, ref in r.actions:
                    if a is None or a in anc:
                        out.append((r, ref))
                        break
            return tuple(out)

        entry = (pick(self.permissions), pick(self.prohibitions))
        if len(self._index) < 1024:
            self._index[action] = entry
        return entry

    def evaluate(self, request: Request, context: Context) -> Decision:
        """Decide. Never raises on a compiled policy; unknown values deny."""
        try:
            entry = self._index.get(request.action)
            if entry is None:
                entry = self._build_index(request.action)
            perms, prohibs = entry
            for rule, ref in prohibs:
                if rule.forbids(request, context, ref):
                    return self.report(request, context).decision
            granted = None
            reasons = None
            eventual = self._eventual
            for rule, ref in perms:
                d = rule.grant(request, context, ref, eventual)
                if d is not None:
                    if granted is None:
                        granted, reasons = d, rule.permit_reasons
                    else:
                        granted = _merge(granted, d)
                        reasons = reasons + rule.permit_reasons
            if granted is None:
                return self.report(request, context).decision
            if not self._no_obligations:
                granted = _merge(granted, self._obligation_duties(request, context))
            return Decision(Effect.PERMIT, reasons, granted, (), self.uid)
        except Exception as exc:  # pragma: no cover - defensive: fail closed, never raise
            return _internal_error(self.uid, exc)

    def _obligation_duties(self, req: Request, ctx: Context) -> tuple[Duty, ...]:
        anc = action_ancestors(req.action)
        out: list[Duty] = []
        for r in self.obligations:
            rep = r.report(req, ctx, anc, True)
            if rep.active:
                out.extend(d.duty for d in rep.duties if d.duty is not None)
        return tuple(out)

    def report(self, request: Request, context: Context) -> PolicyReport:
        """Evaluate every rule and explain each outcome (slower than evaluate)."""
        try:
            return self._report(request, context)
        except Exception as exc:  # pragma: no cover - defensive
            return PolicyReport(_internal_error(self.uid, exc), ())

    def _report(self, req: Request, ctx: Context) -> PolicyReport:
        anc = action_ancestors(req.action)
        ev = self._eventual
        preps = [r.report(req, ctx, anc, ev) for r in self.permissions]
        hreps = [r.report(req, ctx, anc, ev) for r in self.prohibitions]
        oreps = [r.report(req, ctx, anc, True) for r in self.obligations]
        granting = [r for r in preps if r.granted]
        prohibiting = [r for r in hreps if r.active]
        consequences: list[Duty] = []
        for rule, rep in zip(self.permissions, preps):
            for cd, dr in zip(rule.duties, rep.duties):
                if dr.state == "violated":
                    consequences.extend(c.static for c in cd.consequences)
        conflict = None
        if prohibiting:
            for rule, rep in zip(self.prohibitions, hreps):
                if rep.active:
                    consequences.extend(c.static for c in rule.remedies)
            if granting and self.conflict == "perm":
                reasons = [x for r in granting for x in r.reasons]
                for r in prohibiting:
                    text = Msg("%(rule)s would prohibit this, but the policy's conflict strategy 'perm' lets permissions "
                               "prevail.", rule=r.path)
                    reasons.append(Reason(rule=r.uid or r.path, path=r.path, code="prohibition-overridden",
                                          message=str(text), text=text))
                dec = Decision(Effect.PERMIT, tuple(reasons), self._duties(granting, preps, req, ctx), (), self.uid)
                return PolicyReport(dec, tuple(preps + hreps + oreps), "perm")
            reasons = []
            if granting and self.conflict == "invalid":
                conflict = "invalid"
                names = ", ".join(r.path for r in granting + prohibiting)
                text = Msg("%(rules)s all apply to this request and contradict each other; under the conflict strategy "
                           "'invalid' (the ODRL default) the policy is void for it, so access is refused.", rules=names)
                reasons.append(Reason(rule=self.uid or "policy", path="policy", code="conflict-void", message=str(text),
                                      text=text))
            reasons += [x for r in prohibiting for x in r.reasons]
            dec = Decision(Effect.DENY, tuple(reasons), (), tuple(consequences), self.uid)
            return PolicyReport(dec, tuple(preps + hreps + oreps), conflict)
        if granting:
            reasons = [x for r in granting for x in r.reasons]
            dec = Decision(Effect.PERMIT, tuple(reasons), self._duties(granting, preps, req, ctx), (), self.uid)
            return PolicyReport(dec, tuple(preps + hreps + oreps))
        applicable = [r for r in preps if r.applies]
        if applicable:
            reasons = [x for r in applicable for x in r.reasons]
            dec = Decision(Effect.DENY, tuple(reasons), (), tuple(consequences), self.uid)
            return PolicyReport(dec, tuple(preps + hreps + oreps))
        reasons = [x for r in preps if r.action_matched for x in r.reasons]
        what = compact(req.action)
        text = Msg("No permission of the policy covers %(action)s%(target)s%(assignee)s; what is not permitted is refused.",
                   action=what, target=Msg(" on %(target)s", target=compact(req.target)) if req.target else "",
                   assignee=Msg(" by %(assignee)s", assignee=compact(req.assignee)) if req.assignee else "")
        reasons.append(Reason(rule=self.uid or "policy", path="policy", code="no-rule", message=str(text), text=text))
        dec = Decision(Effect.NOT_APPLICABLE, tuple(reasons), (), tuple(consequences), self.uid)
        return PolicyReport(dec, tuple(preps + hreps + oreps))

    def _duties(self, granting, preps, req, ctx) -> tuple[Duty, ...]:
        out: tuple[Duty, ...] = ()
        for rep in granting:
            out = _merge(out, tuple(d.duty for d in rep.duties if d.duty is not None))
        if self.obligations:
            out = _merge(out, self._obligation_duties(req, ctx))
        return out

    # ------------------------------------------------------------------
    def rules(self) -> list[CRule]:
        return self.permissions + self.prohibitions + self.obligations

    def describe(self) -> list[str]:
        """What the engine understood, line by line (for ``policy check``)."""
        from .explain import describe_duty

        lines = [f"Policy {self.uid or '(no uid)'}: {self.policy_type}, conflict strategy '{self.conflict}'"
                 + (f", profile {', '.join(self.profile)}" if self.profile else "")
                 + (", duties read as eventual (ODRL Test Suite)" if self._eventual else "")]
        for r in self.rules():
            verb = {"permission": "PERMITS", "prohibition": "PROHIBITS", "obligation": "OBLIGES"}[r.kind]
            head = f"{r.path}{' <' + r.uid + '>' if r.uid else ''} {verb} {r.describe_actions()}"
            if r.targets is not None or r.target_colls:
                head += f" on {r._list(r.targets, r.target_colls)}"
            head += f" for {r._list(r.parties, r.party_colls)}" if (r.parties is not None or r.party_colls) else " for any party"
            lines.append(head)
            for a, ref in r.actions:
                if ref is not None:
                    lines.append(f"    refinement of {compact(a)}: {ref.describe()}")
            for c in r.constraints:
                lines.append(f"    when [{c.path}] {c.describe()}")
            for d in r.duties:
                extra = ""
                if d.deadline_abs is not None:
                    extra = f" (deadline: {fmt_datetime(d.deadline_abs)})"
                cond = f" [only when {d.cond.describe()}]" if d.cond is not None else ""
                lines.append(f"    duty [{d.path}] {d.timing}: {describe_duty(d.static)}{extra}{cond}")
                for c in d.consequences:
                    lines.append(f"      if violated, consequence [{c.path}]: {describe_duty(c.static)}")
            for d in r.remedies:
                lines.append(f"    remedy [{d.path}]: {describe_duty(d.static)}")
        for p, m in self.warnings:
            lines.append(f"warning: {p + ': ' if p else ''}{m}")
        return lines


def _merge(a: tuple[Duty, ...], b: tuple[Duty, ...]) -> tuple[Duty, ...]:
    if not b:
        return a
    if not a:
        return b
    seen = dict.fromkeys(a)
    for d in b:
        seen.setdefault(d)
    return tuple(sorted(seen, key=lambda d: (d.kind, d.action, repr(d.params), d.deadline.isoformat() if d.deadline else "")))


def _internal_error(uid, exc) -> Decision:
    text = Msg("The policy could not be evaluated (%(error)s); access is refused.", error=f"{type(exc).__name__}: {exc}")
    return Decision(Effect.DENY, (Reason(rule=uid or "policy", path="policy", code="internal-error",
                                         message=str(text), text=text),),
                    (), (), uid)
