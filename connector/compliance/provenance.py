"""Policies that follow the data (pure): may a node offer data it received under an agreement (or
an asset it declares as derived from such data) under a given contract policy?

The source agreement's policy restricts onward transfer when it prohibits `distribute` under a
recipient-jurisdiction condition, has a `nextPolicy` duty, or admits recipients of some
jurisdictions only. Then an onward offer's contract policy may be no weaker: it must admit only
recipients in jurisdictions the source admits, and, when the source limits the purposes, only
purposes within them. Anything the new policy leaves open is weaker (fail closed).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..policy import CompiledPolicy
from ..policy.compiled import Atom, Logic
from ..policy.taxonomy import covers
from ..policy.vocab import HKS, ODRL, compact

_RECIPIENT = HKS + "recipientJurisdiction"
_PURPOSE = ODRL + "purpose"
_DISTRIBUTE = ODRL + "distribute"
_ADMITS = ("isAnyOf", "isPartOf", "eq", "isA")


@dataclass(frozen=True)
class Onward:
    """What a policy lets a recipient do with the data next."""

    restricts: bool  # the policy limits onward transfer at all
    jurisdictions: tuple[str, ...] | None  # recipients admitted (None: any)
    purposes: tuple[str, ...] | None  # purposes admitted (None: any)


def _conjuncts(rule) -> list[Atom]:  # noqa: ANN001
    out = []
    for c in rule.constraints:
        if isinstance(c, Atom):
            out.append(c)
        elif isinstance(c, Logic) and c.op in ("and", "andSequence"):
            out.extend(k for k in c.children if isinstance(k, Atom))
    return out


def _values(a: Atom) -> tuple[str, ...]:
    return tuple(v for v in (a.right if isinstance(a.right, tuple) else (a.right,)) if isinstance(v, str))


def onward(policy: CompiledPolicy) -> Onward:
    """The recipients and purposes every permission of `policy` is limited to (None where a permission
    leaves them open), and whether it restricts onward transfer."""
    restricts = False
    where: list[str] | None = []
    purposes: list[str] | None = []
    for rule in policy.prohibitions:
        if any(a in (None, _DISTRIBUTE) for a, _ in rule.actions):
            for atom in _conjuncts(rule):
                if atom.lo.iri == _RECIPIENT and atom.op == "isNoneOf":
                    restricts = True
    for rule in policy.permissions:
        if any(d.kind == "next-policy" for d in rule.duties):
            restricts = True
        atoms = _conjuncts(rule)
        w = [v for a in atoms if a.lo.iri == _RECIPIENT and a.op in _ADMITS for v in _values(a)]
        p = [v for a in atoms if a.lo.iri == _PURPOSE and a.op in _ADMITS for v in _values(a)]
        if w:
            restricts = True
            if where is not None:
                where += w
        else:
            where = None
        if p:
            if purposes is not None:
                purposes += p
        else:
            purposes = None
    if not policy.permissions:
        where = purposes = None
    return Onward(restricts, tuple(dict.fromkeys(where)) if where is not None else None,
                  tuple(dict.fromkeys(purposes)) if purposes is not None else None)


def weaker(source: CompiledPolicy, offered: CompiledPolicy) -> list[str]:
    """How `offered` is weaker than what `source` allows onward ([] when it is not)."""
    src = onward(source)
    if not src.restricts:
        return []
    new = onward(offered)
    problems = []
    if src.jurisdictions is not None:
        if new.jurisdictions is None:
            problems.append("it admits recipients in any jurisdiction; the source admits "
                            + ", ".join(src.jurisdictions) + " only")
        else:
            outside = [j for j in new.jurisdictions if not any(covers(s, j) for s in src.jurisdictions)]
            if outside:
                problems.append(f"it admits recipients in {', '.join(outside)}, outside "
                                + ", ".join(src.jurisdictions))
    if src.purposes is not None:
        if new.purposes is None:
            problems.append("it admits any purpose; the source admits " + ", ".join(map(compact, src.purposes)) + " only")
        else:
            outside = [p for p in new.purposes if not any(covers(s, p) for s in src.purposes)]
            if outside:
                problems.append(f"it admits the purposes {', '.join(map(compact, outside))}, outside "
                                + ", ".join(map(compact, src.purposes)))
    return problems
