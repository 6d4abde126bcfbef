"""ODRL 2.2 JSON-LD -> CompiledPolicy, refusing what is not valid.

Every problem is reported with the path of the offending part, e.g.
``permission[0].constraint[1].rightOperand``; all problems are collected and
raised together in one PolicyError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any, Iterable, Mapping

from . import taxonomy
from .contexts import HKS_CONTEXT_URL
from .compiled import Atom, CDuty, Collection, CompiledPolicy, CRule, Logic
from .errors import PolicyError
from .jsonld import expand
from .taxonomy import ANCESTORS, covers, may_overlap
from .values import Duration, parse_date, parse_datetime, parse_decimal, parse_integer
from .vocab import (
    ACTION_ANCESTORS,
    CONFLICT_TERMS,
    HKS,
    IDSC,
    KNOWN_ACTIONS,
    LEFT_OPERAND_ALIASES,
    LEFT_OPERANDS,
    LOGICAL_OPERANDS,
    ODRL,
    ODRL_PROPERTIES,
    OPERATOR_ALIASES,
    OPERATORS,
    ORDER_OPERATORS,
    PARTY_FUNCTIONS,
    POLICY_CLASSES,
    POLICY_USAGE,
    PYLD_DEFAULT_BASE,
    RDF,
    SECURITY_PROFILES,
    SET_OPERATORS,
    XSD,
    LeftOperand,
    action_ancestors,
    canonical_action,
    compact,
    resolve_bare_action,
    resolve_bare_left_operand,
    resolve_bare_operator,
    suggest,
)

_EMPTY: frozenset[str] = frozenset()

DUTY_READINGS = ("precondition", "eventual")


@dataclass(frozen=True)
class CompileOptions:
    """How to read a policy.

    duty_reading:
        "precondition" (default): a duty of a permission that the connector
        cannot perform itself (compensate, obtainConsent, any other action)
        must already be fulfilled, as in the W3C ODRL formal semantics; with no
        record of it the permission does not hold (fail closed).
        "eventual": such a duty only has to be not violated; it is returned as
        outstanding (the ODRL Test Suite's reading, "given that eventually the
        duty is fulfilled").
    require_action:
        ODRL requires every rule to name an action. False reads a rule without
        one as covering every action (the ODRL Test Suite has such rules).
    extra_left_operands:
        IRIs (or compact IRIs) of profile left operands to accept in addition
        to ODRL 2.2, the station profile and the IDS aliases; their values come
        from Context.operands.
    extra_actions:
        IRIs of additional actions to accept (they include no other action).
    """

    duty_reading: str = "precondition"
    require_action: bool = True
    extra_left_operands: tuple[str, ...] = ()
    extra_actions: tuple[str, ...] = ()


class _Err(PolicyError):
    """One problem at one path, collected by the compiler into the PolicyError it raises."""

    def __init__(self, path: str, msg: str):
        super().__init__(msg, path)
        self.msg = msg


def _local(iri: str) -> str:
    return iri.rsplit("#", 1)[-1].rsplit("/", 1)[-1]


_POLICY_PROPS = {ODRL + n for n in "uid permission prohibition obligation profile conflict inheritFrom target assigner assignee action".split()}
_RULE_COMMON = {ODRL + n for n in "uid action target assignee assigner constraint output relation function".split()} | set(PARTY_FUNCTIONS)
_PERMISSION_PROPS = _RULE_COMMON | {ODRL + "duty"}
_PROHIBITION_PROPS = _RULE_COMMON | {ODRL + "remedy"}
_DUTY_PROPS = _RULE_COMMON | {ODRL + "consequence", ODRL + "hasPolicy"}
_CONSTRAINT_PROPS = {ODRL + n for n in "uid leftOperand operator rightOperand rightOperandReference dataType unit status".split()}
_LOGICAL_PROPS = {ODRL + "uid"} | set(LOGICAL_OPERANDS)
_ACTION_NODE_PROPS = {ODRL + "refinement", ODRL + "uid", ODRL + "includedIn", ODRL + "implies"}
_COLLECTION_PROPS = {ODRL + n for n in "uid source refinement partOf".split()}

_DATETIME_TYPES = {XSD + "dateTime", XSD + "dateTimeStamp"}
_DURATION_TYPES = {XSD + "duration", XSD + "dayTimeDuration", XSD + "yearMonthDuration"}
_INT_TYPES = {XSD + t for t in "integer int long short byte nonNegativeInteger positiveInteger unsignedInt unsignedLong unsignedShort nonPositiveInteger negativeInteger".split()}
_DEC_TYPES = {XSD + t for t in ("decimal", "float", "double")}
_STRING_TYPES = {XSD + "string", XSD + "anyURI", XSD + "token", XSD + "normalizedString", XSD + "NMTOKEN", XSD + "language", RDF + "langString"}

_DUTY_KINDS = {
    HKS + "log": ("log", "before-release"),
    ODRL + "inform": ("notify", "before-release"),
    HKS + "drop": ("drop-fields", "before-release"),
    HKS + "pseudonymise": ("pseudonymise-fields", "before-release"),
    HKS + "aggregate": ("aggregate-only", "before-release"),
    ODRL + "anonymize": ("anonymise", "before-release"),
    IDSC + "REPLACE": ("replace", "before-release"),
    ODRL + "watermark": ("watermark", "before-release"),
    ODRL + "delete": ("delete", "obligation"),
    ODRL + "nextPolicy": ("next-policy", "obligation"),
    ODRL + "attribute": ("attribute", "obligation"),
    "http://creativecommons.org/ns#Attribution": ("attribute", "obligation"),
    ODRL + "obtainConsent": ("obtain-consent", "precondition"),
    ODRL + "compensate": ("compensate", "precondition"),
}

_PARAM_NAMES = {
    HKS + "field": "fields",
    ODRL + "systemDevice": "clearing_house",
    IDSC + "LOG_LEVEL": "log_level",
    IDSC + "NOTIFICATION_LEVEL": "level",
    IDSC + "JSON_PATH": "json_path",
    IDSC + "REPLACE_WITH": "replace_with",
    IDSC + "ENDPOINT": "endpoint",
    ODRL + "payAmount": "amount",
}


# ---------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------


def parse_policy(doc: Any, *, context: Any = None, contexts: Mapping[str, Any] | None = None) -> list[dict]:
    """JSON-LD (text or parsed; compact, expanded or flattened) -> expanded nodes."""
    doc = _load_json(doc)
    _check_depth(doc)
    if context is None and not _has_context(doc):
        context = HKS_CONTEXT_URL
    nodes, errors = expand(doc, context=context, contexts=contexts)
    if errors:
        raise PolicyError(errors)
    return nodes


def compile_policy(doc: Any, *, context: Any = None, contexts: Mapping[str, Any] | None = None,
                   options: CompileOptions | None = None) -> CompiledPolicy:
    """Parse and compile an ODRL 2.2 policy once.

    ``doc``: a JSON-LD policy as text or parsed JSON, in compact form (DSP
    2025-1, DSP 2024/1, the ODRL 2.2 or the station context), expanded or
    flattened form. ``context``: the @context to read it with when it carries
    none (e.g. an offer taken out of a DSP message: pass the message's
    context URL); the default is the station context, which includes all
    ODRL 2.2 terms. ``contexts``: the context documents by URL (nothing is
    ever fetched; the package holds none): pass ``connector.vocab.policy_contexts()``,
    the ``vocab/`` files, plus any others. Raises PolicyError naming every offending part.
    """
    options = options or CompileOptions()
    if options.duty_reading not in DUTY_READINGS:
        raise ValueError(f"duty_reading must be one of {DUTY_READINGS}")
    doc = _load_json(doc)
    _check_depth(doc)
    if context is None and not _has_context(doc):
        context = HKS_CONTEXT_URL
    nodes, errors = expand(doc, context=context, contexts=contexts)
    return _Compiler(nodes, list(errors), options).run()


def _load_json(doc: Any) -> Any:
    if isinstance(doc, (bytes, bytearray)):
        doc = doc.decode("utf-8")
    if isinstance(doc, str):
        try:
            return json.loads(doc)
        except json.JSONDecodeError as e:
            raise PolicyError([(f"line {e.lineno} column {e.colno}", f"not valid JSON: {e.msg}")]) from None
        except RecursionError:
            raise PolicyError([("(document)", f"nested deeper than {MAX_POLICY_DEPTH} levels (limit)")]) from None
    return doc


#: JSON nesting (objects and arrays) a policy may have; real policies stay under 15. The expander
#: and the compiler recurse, so a deeper document is refused before either sees it.
MAX_POLICY_DEPTH = 64


def _check_depth(doc: Any) -> None:
    """PolicyError if `doc` nests deeper than MAX_POLICY_DEPTH (an iterative walk: no recursion)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_POLICY_DEPTH:
            raise PolicyError([("(document)", f"nested deeper than {MAX_POLICY_DEPTH} levels (limit)")])
        children = node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (Mapping, list)))


def _has_context(doc: Any) -> bool:
    if isinstance(doc, Mapping):
        return "@context" in doc
    if isinstance(doc, list):
        return any(isinstance(d, Mapping) and "@context" in d for d in doc)
    return False


# ---------------------------------------------------------------------------
# the compiler
# ---------------------------------------------------------------------------


class _Compiler:
    def __init__(self, nodes: list[dict], errors: list[tuple[str, str]], options: CompileOptions):
        self.nodes = nodes
        self.errors = errors
        self.warnings: list[tuple[str, str]] = []
        self.opt = options
        self.index: dict[str, dict] = {}
        for n in nodes:
            self._index(n, 0)
        self.extra_lo = {taxonomy.expand_curie(x): x for x in options.extra_left_operands}
        self.extra_actions = {taxonomy.expand_curie(x) for x in options.extra_actions}
        self.policy_uid: str | None = None

    def _index(self, node: Any, depth: int) -> None:
        if depth > 64 or not isinstance(node, dict):
            return
        nid = node.get("@id")
        if nid is not None and len(node) > 1:
            if nid in self.index and self.index[nid] is not node:
                merged = dict(self.index[nid])
                for k, v in node.items():
                    if k.startswith("@"):
                        merged.setdefault(k, v)
                    else:
                        merged[k] = merged.get(k, []) + v
                self.index[nid] = merged
            else:
                self.index[nid] = node
        for v in node.values():
            if isinstance(v, list):
                for x in v:
                    self._index(x, depth + 1)  # reaches the items of an {"@list": [...]} once, as a value

    # helpers ---------------------------------------------------------------
    def err(self, path: str, msg: str) -> None:
        self.errors.append((path, msg))

    def deref(self, v: Any) -> Any:
        if isinstance(v, dict) and set(v) == {"@id"}:
            return self.index.get(v["@id"], v)
        return v

    @staticmethod
    def vals(node: dict, prop: str) -> list:
        out = []
        for v in node.get(ODRL + prop, ()):
            if isinstance(v, dict) and "@list" in v:
                out.extend(v["@list"])
            else:
                out.append(v)
        return out

    def iri(self, v: Any, path: str) -> str | None:
        v = v if not isinstance(v, dict) or "@list" not in v else (v["@list"][0] if v["@list"] else None)
        if isinstance(v, dict):
            if "@id" in v:
                s = v["@id"]
            elif "@value" in v and isinstance(v["@value"], str):
                s = v["@value"]
            else:
                self.err(path, f"expected an IRI, got {_show(v)}")
                return None
        elif isinstance(v, str):
            s = v
        else:
            self.err(path, f"expected an IRI, got {_show(v)}")
            return None
        if s.startswith(PYLD_DEFAULT_BASE):
            s = s[len(PYLD_DEFAULT_BASE):]
        return taxonomy.expand_curie(s)

    def check_props(self, node: dict, allowed: set[str], path: str, what: str) -> None:
        for k in node:
            if k.startswith(ODRL) and k not in allowed:
                local = _local(k)
                if k in ODRL_PROPERTIES:
                    self.err(f"{path}.{local}", f"{local!r} is not allowed on {what}")
                else:
                    hint = " (the abstract super-property of and/or/xone; did you mean 'operator'?)" if local == "operand" else \
                        suggest(local, [_local(p) for p in allowed])
                    self.err(f"{path}.{local}", f"unknown ODRL property {local!r}{hint}")

    @staticmethod
    def node_id(node: dict) -> str | None:
        nid = node.get("@id")
        if isinstance(nid, str) and not nid.startswith("_:"):
            return nid
        for v in node.get(ODRL + "uid", ()):
            if isinstance(v, dict):
                return v.get("@id") or v.get("@value")
        return None

    # policy ----------------------------------------------------------------
    def run(self) -> CompiledPolicy:
        if not self.nodes:
            raise PolicyError(self.errors or [("", "the document holds no policy")])
        policies = [n for n in self.index.values() if any(t in POLICY_CLASSES for t in n.get("@type", ()))]
        for n in self.nodes:
            if n not in policies and any(t in POLICY_CLASSES for t in n.get("@type", ())):
                policies.append(n)
        if not policies:
            policies = [n for n in self.nodes if any(ODRL + p in n for p in ("permission", "prohibition", "obligation"))]
            if policies:
                self.warnings.append(("", "the policy has no ODRL policy @type; read as a Set"))
        uniq = []
        for p in policies:
            if all(p is not q for q in uniq):
                uniq.append(p)
        policies = uniq
        if not policies:
            raise PolicyError(self.errors or [("", "no ODRL policy found: expected an object with @type Set, Offer or "
                                                    "Agreement and at least one permission, prohibition or obligation")])
        if len(policies) > 1:
            ids = ", ".join(self.node_id(p) or "(anonymous)" for p in policies)
            raise PolicyError(self.errors + [("", f"the document holds {len(policies)} policies ({ids}); compile one at a time")])
        policy = self.run_policy(policies[0])
        if self.errors:
            raise PolicyError(self.errors)
        return policy

    def run_policy(self, node: dict) -> CompiledPolicy:
        self.check_props(node, _POLICY_PROPS, "policy", "a policy")
        types = [POLICY_CLASSES[t] for t in node.get("@type", ()) if t in POLICY_CLASSES]
        ptype = types[0] if types else "Set"
        uid = self.node_id(node)
        self.policy_uid = uid
        conflict = "invalid"
        cvals = self.vals(node, "conflict")
        if len(cvals) > 1:
            self.err("policy.conflict", "a policy has at most one conflict strategy")
        for v in cvals[:1]:
            c = self.iri(v, "policy.conflict")
            if c is not None:
                c = CONFLICT_TERMS.get(c) or CONFLICT_TERMS.get(ODRL + c)
                if c is None:
                    self.err("policy.conflict", f"conflict must be perm, prohibit or invalid, got {_show(v)}")
                else:
                    conflict = c
        if self.vals(node, "inheritFrom"):
            self.err("policy.inheritFrom", "inheritFrom is not supported (it needs the parent policy); inline the parent's rules")
        profile = tuple(p for p in (self.iri(v, "policy.profile") for v in self.vals(node, "profile")) if p)
        inherited = {k: self.vals(node, k) for k in ("target", "assignee", "assigner", "action")}
        perms = [self.rule("permission", i, v, inherited) for i, v in enumerate(self.vals(node, "permission"))]
        prohibs = [self.rule("prohibition", i, v, inherited) for i, v in enumerate(self.vals(node, "prohibition"))]
        obls = [self.obligation(i, v, inherited) for i, v in enumerate(self.vals(node, "obligation"))]
        perms = [r for r in perms if r is not None]
        prohibs = [r for r in prohibs if r is not None]
        obls = [r for r in obls if r is not None]
        if not (perms or prohibs or obls) and not self.errors:
            self.err("policy", "the policy has no permission, prohibition or obligation")
        if conflict == "invalid" and not self.errors:
            self.check_conflicts(perms, prohibs)
        return CompiledPolicy(uid=uid, policy_type=ptype, conflict=conflict, profile=profile, permissions=perms,
                              prohibitions=prohibs, obligations=obls, duty_reading=self.opt.duty_reading,
                              warnings=self.warnings, source_kind="json-ld")

    # rules -----------------------------------------------------------------
    def rule(self, kind: str, i: int, v: Any, inherited: dict) -> CRule | None:
        path = f"{kind}[{i}]"
        node = self.deref(v)
        if not isinstance(node, dict) or "@value" in node:
            self.err(path, f"a {kind} must be an object, got {_show(v)}")
            return None
        self.check_props(node, _PERMISSION_PROPS if kind == "permission" else _PROHIBITION_PROPS, path, f"a {kind}")
        uid = self.node_id(node)
        actions = self.actions(node, path, inherited.get("action", []))
        targets, tcolls = self.parties_or_assets(node, "target", path, inherited, "AssetCollection")
        parties, pcolls = self.parties_or_assets(node, "assignee", path, inherited, "PartyCollection")
        constraints = self.constraints(self.vals(node, "constraint"), f"{path}.constraint", kind)
        duties: list[CDuty] = []
        remedies: list[CDuty] = []
        if kind == "permission":
            duties = [d for d in (self.duty(x, f"{path}.duty[{j}]", "duty") for j, x in enumerate(self.vals(node, "duty"))) if d]
        else:
            remedies = [d for d in (self.duty(x, f"{path}.remedy[{j}]", "remedy") for j, x in enumerate(self.vals(node, "remedy"))) if d]
        if actions is None:
            return None
        return CRule(kind=kind, path=path, uid=uid, actions=actions, targets=targets, target_colls=tcolls,
                     parties=parties, party_colls=pcolls, constraints=constraints, duties=duties, remedies=remedies)

    def obligation(self, i: int, v: Any, inherited: dict) -> CRule | None:
        path = f"obligation[{i}]"
        node = self.deref(v)
        if not isinstance(node, dict):
            self.err(path, f"an obligation must be an object, got {_show(v)}")
            return None
        duty = self.duty(node, path, "obligation", skip_constraints=True)
        parties, pcolls = self.parties_or_assets(node, "assignee", path, inherited, "PartyCollection")
        constraints = self.constraints(self.vals(node, "constraint"), f"{path}.constraint", "obligation")
        if duty is None:
            return None
        return CRule(kind="obligation", path=path, uid=self.node_id(node), actions=((None, None),), targets=None,
                     target_colls=(), parties=parties, party_colls=pcolls, constraints=constraints, duties=[duty], remedies=[])

    def action_iri(self, raw: str, path: str) -> str | None:
        a = raw
        if ":" not in a:
            a = resolve_bare_action(raw) or ODRL + raw
        a = canonical_action(a)
        if a not in KNOWN_ACTIONS and a not in self.extra_actions and a not in ACTION_ANCESTORS:
            names = [_local(x) for x in KNOWN_ACTIONS]
            self.err(path, f"unknown action {compact(a)!r}{suggest(_local(a), names)}")
            return None
        return a

    def actions(self, node: dict, path: str, inherited: list) -> tuple | None:
        vals = self.vals(node, "action") or inherited
        if not vals:
            if self.opt.require_action:
                self.err(f"{path}.action", "every rule must name an action (ODRL 2.2 §2.4)")
                return None
            return ((None, None),)
        out = []
        for j, v in enumerate(vals):
            apath = f"{path}.action" if len(vals) == 1 else f"{path}.action[{j}]"
            anode = self.deref(v)
            refs: list = []
            if isinstance(anode, dict) and (RDF + "value" in anode or ODRL + "refinement" in anode):
                self.check_props(anode, _ACTION_NODE_PROPS, apath, "an action")
                rv = anode.get(RDF + "value")
                if rv:
                    raw = self.iri(rv[0], f"{apath}.rdf:value")
                elif anode.get("@id"):
                    raw = self.iri({"@id": anode["@id"]}, apath)
                else:
                    self.err(apath, "an action with a refinement needs rdf:value naming the action")
                    continue
                refs = self.vals(anode, "refinement")
            else:
                raw = self.iri(v, apath)
            if raw is None:
                continue
            a = self.action_iri(raw, apath)
            if a is None:
                continue
            ref = None
            if refs:
                kids = self.constraints(refs, f"{apath}.refinement", "refinement")
                ref = Logic("", None, "and", kids) if kids else None
            out.append((a, ref))
        if not out:
            return None
        return tuple(out)

    def parties_or_assets(self, node: dict, prop: str, path: str, inherited: dict, coll_type: str):
        vals = self.vals(node, prop) or inherited.get(prop, [])
        if not vals:
            return None, ()
        ids: set[str] = set()
        colls: list[Collection] = []
        for j, v in enumerate(vals):
            ppath = f"{path}.{prop}" if len(vals) == 1 else f"{path}.{prop}[{j}]"
            n = self.deref(v)
            if isinstance(n, dict) and (ODRL + coll_type in n.get("@type", ()) or ODRL + "source" in n or ODRL + "refinement" in n):
                self.check_props({k: x for k, x in n.items() if k.startswith(ODRL) and k not in _DUTY_PROPS}, _COLLECTION_PROPS, ppath, f"a {coll_type}")
                cid = set()
                nid = self.node_id(n)
                if nid:
                    cid.add(nid)
                for s in self.vals(n, "source"):
                    x = self.iri(s, f"{ppath}.source")
                    if x:
                        cid.add(x)
                refs = self.vals(n, "refinement")
                if refs:
                    kids = self.constraints(refs, f"{ppath}.refinement", "refinement")
                    colls.append(Collection(frozenset(cid), Logic("", None, "and", kids) if kids else None,
                                            " / ".join(sorted(compact(c) for c in cid)) + " (refined)" if cid else "members satisfying a refinement"))
                else:
                    ids |= cid
            else:
                if isinstance(n, dict) and "@id" not in n and "@value" not in n:
                    nid = self.node_id(n)
                    if nid:
                        ids.add(taxonomy.expand_curie(nid))
                        continue
                x = self.iri(n, ppath)
                if x:
                    ids.add(x)
        if not ids and not colls:
            return frozenset(), ()
        return (frozenset(ids) if ids else (None if colls else frozenset())), tuple(colls)

    # constraints -------------------------------------------------------------
    def constraints(self, vals: list, base: str, role: str) -> list:
        out = []
        for j, v in enumerate(vals):
            c = self.constraint(v, f"{base}[{j}]", role)
            if c is not None:
                out.append(c)
        return out

    def constraint(self, v: Any, path: str, role: str):
        node = self.deref(v)
        if not isinstance(node, dict) or "@value" in node:
            self.err(path, f"a constraint must be an object, got {_show(v)}")
            return None
        logical = [p for p in LOGICAL_OPERANDS if p in node]
        if logical:
            self.check_props(node, _LOGICAL_PROPS, path, "a logical constraint")
            if len(logical) > 1:
                self.err(path, "a logical constraint has exactly one of and, or, xone, andSequence")
                return None
            if ODRL + "leftOperand" in node:
                self.err(path, "a constraint is either logical (and/or/xone/andSequence) or has a leftOperand, not both")
                return None
            op = LOGICAL_OPERANDS[logical[0]]
            items = self.vals(node, op)
            if not items:
                self.err(f"{path}.{op}", f"{op} needs at least one constraint")
                return None
            kids = [self.constraint(x, f"{path}.{op}[{k}]", role) for k, x in enumerate(items)]
            kids = [k for k in kids if k is not None]
            if len(kids) != len(items):
                return None
            return Logic(path, self.node_id(node), op, kids)
        self.check_props(node, _CONSTRAINT_PROPS, path, "a constraint")
        try:
            return self.atom(node, path, role)
        except _Err as e:
            self.err(e.path, e.msg)
            return None

    def left_operand(self, node: dict, path: str) -> LeftOperand:
        los = node.get(ODRL + "leftOperand", [])
        if len(los) != 1:
            raise _Err(f"{path}.leftOperand", "a constraint needs exactly one leftOperand" if not los else "only one leftOperand is allowed")
        raw = self.iri(los[0], f"{path}.leftOperand")
        if raw is None:
            raise _Err(f"{path}.leftOperand", "bad leftOperand")
        iri = raw
        if ":" not in iri:
            iri = resolve_bare_left_operand(raw) or raw
        iri = LEFT_OPERAND_ALIASES.get(iri, iri)
        lo = LEFT_OPERANDS.get(iri)
        if lo is None and iri in self.extra_lo:
            lo = LeftOperand(iri, compact(iri), "generic", missing=f"No value for {compact(iri)} was supplied")
        if lo is None:
            names = [_local(x) for x in list(LEFT_OPERANDS) + list(LEFT_OPERAND_ALIASES)]
            raise _Err(f"{path}.leftOperand", f"unknown left operand {compact(iri)!r}{suggest(_local(iri), names)}; "
                                              f"the engine understands ODRL 2.2, the station profile (hks:) and IDS operands")
        return lo

    def operator(self, node: dict, path: str) -> str:
        ops = node.get(ODRL + "operator", [])
        if len(ops) != 1:
            raise _Err(f"{path}.operator", "a constraint needs exactly one operator" if not ops else "only one operator is allowed")
        raw = self.iri(ops[0], f"{path}.operator")
        if raw is None:
            raise _Err(f"{path}.operator", "bad operator")
        iri = raw if ":" in raw else (resolve_bare_operator(raw) or raw)
        if iri in OPERATOR_ALIASES:
            self.warnings.append((f"{path}.operator", "odrl:neg is the old ODRL context's typo for neq; read as neq"))
            return OPERATOR_ALIASES[iri]
        op = OPERATORS.get(iri)
        if op is None:
            raise _Err(f"{path}.operator", f"unknown operator {compact(iri)!r}{suggest(_local(iri), OPERATORS.values())}; "
                                           f"ODRL 2.2 has eq, neq, lt, lteq, gt, gteq, isA, hasPart, isPartOf, isAllOf, isAnyOf, isNoneOf")
        return op

    def right_values(self, node: dict, path: str) -> tuple[list, str | None]:
        if ODRL + "rightOperandReference" in node:
            raise _Err(f"{path}.rightOperandReference", "rightOperandReference needs dereferencing, which this engine never does; "
                                                         "put the value in rightOperand")
        if ODRL + "status" in node:
            raise _Err(f"{path}.status", "status is not supported: the engine takes the current value from the evaluation context")
        vals = self.vals(node, "rightOperand")
        if not vals:
            raise _Err(f"{path}.rightOperand", "a constraint needs a rightOperand")
        dt = None
        for d in node.get(ODRL + "dataType", ()):
            dt = self.iri(d, f"{path}.dataType")
        flat = []
        for v in vals:
            if isinstance(v, dict) and "@list" in v:
                flat.extend(v["@list"])
            else:
                flat.append(v)
        return flat, dt

    def atom(self, node: dict, path: str, role: str) -> Atom:
        lo = self.left_operand(node, path)
        op = self.operator(node, path)
        rpath = f"{path}.rightOperand"
        vals, dt = self.right_values(node, path)
        unit = None
        for u in node.get(ODRL + "unit", ()):
            unit = self.iri(u, f"{path}.unit")
        if lo.kind == "parameter" and role not in ("duty-refinement",):
            raise _Err(f"{path}.leftOperand", f"{compact(lo.iri)} is a duty parameter; use it only in the refinement of a duty's action")
        single_ops = {"eq", "neq", "lt", "lteq", "gt", "gteq", "isA"}
        if op in single_ops and len(vals) != 1:
            hint = " (did you mean isAnyOf?)" if op == "eq" else ""
            raise _Err(rpath, f"operator {op} takes one value, got a list of {len(vals)}{hint}")
        uid = self.node_id(node)
        builder = getattr(self, f"_build_{lo.kind}")
        return builder(lo, op, vals, dt, unit, path, rpath, uid)

    # typed literals ------------------------------------------------------------
    @staticmethod
    def _lit(v: Any) -> tuple[Any, str | None, bool]:
        """(value, datatype, is_iri)"""
        if isinstance(v, dict):
            if "@id" in v and "@value" not in v:
                return v["@id"], None, True
            if "@value" in v:
                return v["@value"], v.get("@type"), False
        return v, None, False

    def _bad_op(self, lo: LeftOperand, op: str, path: str, allowed: Iterable[str]) -> _Err:
        return _Err(f"{path}.operator", f"operator {op} is not defined for {lo.label.lower()} ({compact(lo.iri)}); "
                                        f"use one of: {', '.join(allowed)}")

    def _build_datetime(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "lt", "lteq", "gt", "gteq")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        v, t, is_iri = self._lit(vals[0])
        t = t or dt
        if is_iri:
            raise _Err(rpath, f"{compact(lo.iri)} needs an xsd:dateTime or xsd:date, got the IRI {compact(v)}")
        if not isinstance(v, str):
            raise _Err(rpath, f"{compact(lo.iri)} needs an xsd:dateTime or xsd:date, got {v!r}")
        interval = None
        try:
            if t in _DATETIME_TYPES:
                r = parse_datetime(v)
            elif t == XSD + "date":
                interval = parse_date(v)
            elif t is None or t in _STRING_TYPES:
                if "T" in v or " " in v.strip():
                    r = parse_datetime(v)
                else:
                    interval = parse_date(v)
            else:
                raise ValueError(f"the right operand is typed {compact(t)}")
        except ValueError as e:
            raise _Err(rpath, f"{compact(lo.iri)} needs an xsd:dateTime (e.g. 2025-12-31T23:59:59Z) or xsd:date: {e}") from None
        get = attrgetter(lo.field)
        if interval is not None:
            s, e = interval
            test = {
                "eq": lambda x: s <= x < e, "neq": lambda x: not (s <= x < e),
                "lt": lambda x: x < s, "lteq": lambda x: x < e, "gt": lambda x: x >= e, "gteq": lambda x: x >= s,
            }[op]
            return Atom(path, uid, lo, op, s, unit, get, test, date_interval=interval, right_text=v.strip())
        test = _cmp_test(op, r)
        return Atom(path, uid, lo, op, r, unit, get, test)

    def _build_elapsed(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "lt", "lteq", "gt", "gteq")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        d = self._duration(vals[0], dt, lo, rpath)
        td = None
        if d.months == 0:
            from datetime import timedelta
            td = timedelta(microseconds=d.micros)

        def get(ctx):
            n = ctx.now
            a = ctx.agreement_time
            if n is None or a is None:
                return None
            return (n, a)

        from .values import add_duration

        cmp = _cmp_fn(op)

        cell: list = [None]  # (agreement time, limit) of the last call; replaced as one tuple

        def test(x, _td=td, _d=d, _cmp=cmp, _cell=cell):
            n, a = x
            last = _cell[0]
            if last is not None and last[0] == a:
                limit = last[1]
            elif _td is not None:
                limit = a + _td
            else:
                try:
                    limit = add_duration(a, _d)
                except OverflowError:
                    return op in ("lt", "lteq", "neq")
                _cell[0] = (a, limit)
            return _cmp(n, limit)

        return Atom(path, uid, lo, op, d, unit, get, test)

    def _duration(self, v, dt, lo, rpath) -> Duration:
        x, t, is_iri = self._lit(v)
        t = t or dt
        if is_iri or not isinstance(x, str) or (t is not None and t not in _DURATION_TYPES and t not in _STRING_TYPES):
            raise _Err(rpath, f"{compact(lo.iri)} needs an xsd:duration (e.g. P1Y, P30D, PT12H), got {_show(v)}")
        try:
            return Duration.parse(x)
        except ValueError as e:
            raise _Err(rpath, str(e)) from None

    def _build_duration(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "lt", "lteq", "gt", "gteq")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        r = self._duration(vals[0], dt, lo, rpath)
        want = {"eq": (0,), "neq": (-1, 1), "lt": (-1,), "lteq": (-1, 0), "gt": (1,), "gteq": (0, 1)}[op]

        def test(v, _r=r, _w=want):
            c = v.compare(_r)
            return None if c is None else c in _w

        return Atom(path, uid, lo, op, r, unit, attrgetter(lo.field), test)

    def _int_value(self, v, dt, lo, rpath) -> int:
        x, t, is_iri = self._lit(v)
        t = t or dt
        if is_iri or (t is not None and t not in _INT_TYPES and t not in _DEC_TYPES and t not in _STRING_TYPES):
            raise _Err(rpath, f"{compact(lo.iri)} needs an integer, got {_show(v)}")
        try:
            n = parse_integer(x if not isinstance(x, str) or t not in _DEC_TYPES else parse_decimal(x))
        except ValueError as e:
            raise _Err(rpath, f"{compact(lo.iri)} needs an integer: {e}") from None
        if n < 0:
            raise _Err(rpath, f"{compact(lo.iri)} cannot be negative, got {n}")
        return n

    def _build_count(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "lt", "lteq", "gt", "gteq", "isAnyOf", "isNoneOf")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        ns = tuple(self._int_value(v, dt, lo, rpath) for v in vals)
        get = attrgetter(lo.field)
        # count reading: the value compared is the number of this use, i.e.
        # completed uses + 1, so "count lteq 10" permits exactly ten uses.
        if op == "isAnyOf":
            s = frozenset(ns)
            test = lambda u: (u + 1) in s  # noqa: E731
        elif op == "isNoneOf":
            s = frozenset(ns)
            test = lambda u: (u + 1) not in s  # noqa: E731
        else:
            n = ns[0]
            c = _cmp_fn(op)
            test = lambda u, _n=n, _c=c: _c(u + 1, _n)  # noqa: E731
        return Atom(path, uid, lo, op, ns[0] if len(ns) == 1 and op not in SET_OPERATORS else ns, unit, get, test)

    def _nominal_values(self, lo, vals, dt, rpath) -> tuple[str, ...]:
        out = []
        for v in vals:
            x, t, is_iri = self._lit(v)
            if isinstance(x, bool) or not isinstance(x, (str, int)) or (t in _INT_TYPES | _DEC_TYPES | _DATETIME_TYPES | _DURATION_TYPES):
                raise _Err(rpath, f"{compact(lo.iri)} needs IRIs or names, got {_show(v)}")
            x = str(x)
            if x.startswith(PYLD_DEFAULT_BASE):
                x = x[len(PYLD_DEFAULT_BASE):]
            try:
                n = taxonomy.normalise(lo.domain, x)
            except ValueError as e:
                raise _Err(rpath, str(e)) from None
            if lo.domain in ("purpose", "category"):
                bad = taxonomy.unknown_in_namespace(n)
                if bad:
                    raise _Err(rpath, bad)
            out.append(n)
        return tuple(out)

    def _build_nominal(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "isA", "isAnyOf", "isNoneOf", "isPartOf", "hasPart", "isAllOf")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        rs = self._nominal_values(lo, vals, dt, rpath)
        R = frozenset(rs)
        A = ANCESTORS
        E = _EMPTY
        if op == "eq":
            r0 = rs[0]
            test = lambda v: v == r0  # noqa: E731
        elif op == "neq":
            r0 = rs[0]
            test = lambda v: v != r0  # noqa: E731
        elif op in ("isA",):
            r0 = rs[0]
            test = lambda v: v == r0 or r0 in A.get(v, E)  # noqa: E731
        elif op in ("isAnyOf", "isPartOf"):
            test = lambda v: v in R or not R.isdisjoint(A.get(v, E))  # noqa: E731
        elif op == "isNoneOf":
            test = lambda v: not (v in R or not R.isdisjoint(A.get(v, E)))  # noqa: E731
        elif op == "hasPart":
            test = lambda v: all(r == v or v in A.get(r, E) for r in R)  # noqa: E731
        else:  # isAllOf
            test = lambda v: R <= (A.get(v, E) | {v})  # noqa: E731
        right = rs[0] if op in ("eq", "neq", "isA") else rs
        return Atom(path, uid, lo, op, right, unit, attrgetter(lo.field), test)

    def _build_ordinal(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "isA", "isAnyOf", "isNoneOf", "isPartOf", "lt", "lteq", "gt", "gteq")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        rs = self._nominal_values(lo, vals, dt, rpath)
        R = frozenset(rs)
        ranks = SECURITY_PROFILES
        if op in ORDER_OPERATORS:
            rank = ranks[rs[0]][1]
            c = _cmp_fn(op)

            def test(v, _rank=rank, _c=c):
                hit = ranks.get(v)
                return False if hit is None else _c(hit[1], _rank)
        elif op in ("eq", "isA"):
            r0 = rs[0]
            test = lambda v: v == r0  # noqa: E731
        elif op == "neq":
            r0 = rs[0]
            test = lambda v: v != r0  # noqa: E731
        elif op == "isNoneOf":
            test = lambda v: v not in R  # noqa: E731
        else:
            test = lambda v: v in R  # noqa: E731
        right = rs[0] if op not in SET_OPERATORS else rs
        return Atom(path, uid, lo, op, right, unit, attrgetter(lo.field), test)

    def _build_set(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "isA", "isAnyOf", "isNoneOf", "isAllOf", "hasPart", "isPartOf")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        rs = self._nominal_values(lo, vals, dt, rpath)
        R = frozenset(rs)
        A = ANCESTORS
        E = _EMPTY

        def cov(x):  # x is covered by some r in R
            return x in R or not R.isdisjoint(A.get(x, E))

        if op == "eq":
            test = lambda V: V == R  # noqa: E731
        elif op == "neq":
            test = lambda V: V != R  # noqa: E731
        elif op == "isAnyOf":
            test = lambda V: any(cov(x) for x in V)  # noqa: E731
        elif op == "isNoneOf":
            test = lambda V: not any(cov(x) for x in V)  # noqa: E731
        elif op in ("isAllOf", "hasPart"):
            test = lambda V: all(r in V or any(r in A.get(x, E) for x in V) for r in R)  # noqa: E731
        elif op == "isPartOf":
            test = lambda V: all(cov(x) for x in V)  # noqa: E731
        else:  # isA
            r0 = rs[0]
            test = lambda V: all(x == r0 or r0 in A.get(x, E) for x in V)  # noqa: E731
        right = rs[0] if op in ("isA",) else rs
        return Atom(path, uid, lo, op, right, unit, attrgetter(lo.field), _memo(test))

    def _build_event(self, lo, op, vals, dt, unit, path, rpath, uid):
        allowed = ("eq", "neq", "lt", "lteq", "gt", "gteq", "isAnyOf", "isNoneOf")
        if op not in allowed:
            raise self._bad_op(lo, op, path, allowed)
        evs = []
        for v in vals:
            x, t, is_iri = self._lit(v)
            if not isinstance(x, str):
                raise _Err(rpath, f"event needs an event IRI, got {_show(v)}")
            x = taxonomy.expand_curie(x if ":" in x else (ODRL + x if x == "policyUsage" else x))
            if x == POLICY_USAGE:
                raise _Err(rpath, "'event ... policyUsage' only makes sense in a duty (it says when the duty is due)")
            evs.append(x)
        want = {"eq": ("ongoing",), "neq": ("upcoming", "ended"), "lt": ("upcoming",), "lteq": ("upcoming", "ongoing"),
                "gt": ("ended",), "gteq": ("ongoing", "ended"), "isAnyOf": ("ongoing",), "isNoneOf": ("ongoing",)}[op]
        known = ("upcoming", "ongoing", "ended")

        def test(events, _e=tuple(evs), _w=want):
            states = [events.get(e) for e in _e]
            if op == "isNoneOf":
                if any(s == "ongoing" for s in states):
                    return False
                return None if any(s not in known for s in states) else True
            if any(s in _w for s in states):
                return True
            return None if any(s not in known for s in states) else False

        right = evs[0] if len(evs) == 1 and op not in SET_OPERATORS else tuple(evs)
        return Atom(path, uid, lo, op, right, unit, attrgetter("events"), test)

    def _build_generic(self, lo, op, vals, dt, unit, path, rpath, uid):
        conv, typed = self._generic_values(lo, vals, dt, rpath)
        if op in ORDER_OPERATORS and not all(isinstance(x, (int, Decimal, datetime, Duration)) for x in typed):
            raise _Err(f"{path}.operator", f"operator {op} needs a number, time or duration as right operand, got {_show(vals[0])}")
        keys = (lo.iri, compact(lo.iri), _local(lo.iri))

        def get(ctx, _k=keys, _conv=conv):
            ops = ctx.operands
            if not ops:
                return None
            for k in _k:
                if k in ops:
                    v = ops[k]
                    break
            else:
                return None
            try:
                if isinstance(v, (list, tuple, set, frozenset)):
                    return frozenset(_conv(x) for x in v)
                return _conv(v)
            except (ValueError, TypeError, ArithmeticError):
                return None

        R = frozenset(typed)
        r0 = typed[0]
        if op in ("eq", "neq", "lt", "lteq", "gt", "gteq"):
            c = _cmp_fn(op)

            def test(v, _c=c, _r=r0):
                if isinstance(v, frozenset):
                    return v == R if op == "eq" else (v != R if op == "neq" else None)
                if isinstance(v, Duration) and isinstance(_r, Duration):
                    k = v.compare(_r)
                    return None if k is None else _c(k, 0)
                try:
                    return _c(v, _r)
                except TypeError:
                    return None
        elif op in ("isAnyOf", "isPartOf", "isA"):
            test = lambda v: (not v.isdisjoint(R)) if isinstance(v, frozenset) else v in R  # noqa: E731
            if op == "isPartOf":
                test = lambda v: (v <= R) if isinstance(v, frozenset) else v in R  # noqa: E731
        elif op == "isNoneOf":
            test = lambda v: v.isdisjoint(R) if isinstance(v, frozenset) else v not in R  # noqa: E731
        else:  # isAllOf, hasPart
            test = lambda v: R <= v if isinstance(v, frozenset) else R <= {v}  # noqa: E731
        right = r0 if op in ("eq", "neq", "lt", "lteq", "gt", "gteq", "isA") else tuple(typed)
        return Atom(path, uid, lo, op, right, unit, get, test)

    def _generic_values(self, lo, vals, dt, rpath):
        typed = []
        kinds = set()
        for v in vals:
            x, t, is_iri = self._lit(v)
            t = t or dt
            try:
                if is_iri:
                    typed.append(taxonomy.expand_curie(x))
                    kinds.add("str")
                elif t in _INT_TYPES or (t is None and isinstance(x, int) and not isinstance(x, bool)):
                    typed.append(parse_integer(x))
                    kinds.add("num")
                elif t in _DEC_TYPES or (t is None and isinstance(x, float)):
                    typed.append(parse_decimal(x))
                    kinds.add("num")
                elif t in _DATETIME_TYPES:
                    typed.append(parse_datetime(x))
                    kinds.add("dt")
                elif t == XSD + "date":
                    typed.append(parse_date(x)[0])
                    kinds.add("dt")
                elif t in _DURATION_TYPES:
                    typed.append(Duration.parse(x))
                    kinds.add("dur")
                elif t == XSD + "boolean" or isinstance(x, bool):
                    typed.append(str(x).lower())
                    kinds.add("str")
                else:
                    typed.append(str(x))
                    kinds.add("str")
            except ValueError as e:
                raise _Err(rpath, f"bad right operand for {compact(lo.iri)}: {e}") from None
        if len(kinds) > 1 and kinds != {"num"}:
            raise _Err(rpath, f"the values of {compact(lo.iri)} mix types")
        kind = kinds.pop() if kinds else "str"
        if kind == "num":
            conv = parse_decimal if any(isinstance(x, Decimal) for x in typed) else (lambda x: parse_integer(x) if not isinstance(x, float) else parse_decimal(x))
            if any(isinstance(x, Decimal) for x in typed):
                typed = [Decimal(x) for x in typed]
                conv = parse_decimal
            else:
                conv = _int_or_decimal
        elif kind == "dt":
            from .values import as_datetime
            conv = as_datetime
        elif kind == "dur":
            from .values import as_duration
            conv = as_duration
        else:
            conv = lambda x: taxonomy.expand_curie(str(x)) if isinstance(x, str) else str(x)  # noqa: E731
        return conv, typed

    def _build_parameter(self, lo, op, vals, dt, unit, path, rpath, uid):
        out = []
        for v in vals:
            x, t, is_iri = self._lit(v)
            out.append(taxonomy.expand_curie(x) if is_iri else x)
        return Atom(path, uid, lo, op, tuple(out), unit, lambda ctx: None, lambda v: None)

    # duties --------------------------------------------------------------------
    def duty(self, v: Any, path: str, role: str, skip_constraints: bool = False) -> CDuty | None:
        node = self.deref(v)
        if not isinstance(node, dict) or "@value" in node:
            self.err(path, f"a duty must be an object, got {_show(v)}")
            return None
        self.check_props(node, _DUTY_PROPS, path, "a duty")
        uid = self.node_id(node)
        avals = self.vals(node, "action")
        if len(avals) != 1:
            self.err(f"{path}.action", "a duty needs exactly one action" if not avals else "a duty has exactly one action")
            return None
        anode = self.deref(avals[0])
        refs = []
        if isinstance(anode, dict) and (RDF + "value" in anode or ODRL + "refinement" in anode):
            self.check_props(anode, _ACTION_NODE_PROPS, f"{path}.action", "an action")
            rv = anode.get(RDF + "value")
            raw = self.iri(rv[0], f"{path}.action.rdf:value") if rv else (self.iri({"@id": anode["@id"]}, f"{path}.action") if "@id" in anode else None)
            refs = self.vals(anode, "refinement")
        else:
            raw = self.iri(avals[0], f"{path}.action")
        if raw is None:
            if not self.errors:
                self.err(f"{path}.action", "a duty's action needs rdf:value naming the action")
            return None
        action = self.action_iri(raw, f"{path}.action")
        if action is None:
            return None
        kind, timing = _DUTY_KINDS.get(action, ("other", "precondition"))
        params: dict[str, Any] = {}
        deadline_abs = None
        deadline_dur = None
        strict = False
        for j, r in enumerate(refs):
            rpath = f"{path}.action.refinement[{j}]"
            rnode = self.deref(r)
            if not isinstance(rnode, dict) or any(p in rnode for p in LOGICAL_OPERANDS):
                self.err(rpath, "a duty's refinement must be a simple constraint (it states how the duty is performed)")
                continue
            self.check_props(rnode, _CONSTRAINT_PROPS, rpath, "a constraint")
            try:
                lo = self.left_operand(rnode, rpath)
                op = self.operator(rnode, rpath)
                if lo.kind in ("datetime", "elapsed"):
                    if op not in ("lt", "lteq"):
                        raise _Err(f"{rpath}.operator", "a deadline refinement uses lt or lteq (the duty is due before the time)")
                    a = self.atom(rnode, rpath, "duty-refinement")
                    strict = op == "lt"
                    if lo.kind == "elapsed":
                        deadline_dur = a.right
                        params["within"] = a.right.text
                    elif a.date_interval is not None:
                        deadline_abs = a.date_interval[0] if op == "lt" else a.date_interval[1]
                        strict = True
                    else:
                        deadline_abs = a.right
                    continue
                vals, dt = self.right_values(rnode, rpath)
                if lo.kind == "parameter" or lo.iri in _PARAM_NAMES:
                    name = _PARAM_NAMES.get(lo.iri, _local(lo.iri))
                else:
                    name = _local(lo.iri)
                a = self._build_parameter(lo, op, vals, dt, None, rpath, f"{rpath}.rightOperand", None)
                value = a.right
                if name == "fields":
                    if any(not isinstance(x, str) for x in value):
                        raise _Err(f"{rpath}.rightOperand", "field names must be strings")
                    params["fields"] = tuple(params.get("fields", ())) + tuple(value)
                elif name == "amount":
                    try:
                        params["amount"] = parse_decimal(value[0])
                    except ValueError as e:
                        raise _Err(f"{rpath}.rightOperand", f"payAmount needs a decimal: {e}") from None
                    for u in rnode.get(ODRL + "unit", ()):
                        params["unit"] = self.iri(u, f"{rpath}.unit")
                else:
                    params[name] = value[0] if len(value) == 1 else tuple(value)
            except _Err as e:
                self.err(e.path, e.msg)
        for fprop, fname in PARTY_FUNCTIONS.items():
            for x in node.get(fprop, ()):
                key = fname.replace("Party", "_party")
                val = self._party_iri(x, f"{path}.{fname}")
                if val:
                    params[key] = val if key not in params else tuple(_as_tuple(params[key])) + (val,)
        for x in node.get(HKS + "clearingHouse", ()):
            params["clearing_house"] = self.iri(x, f"{path}.hks:clearingHouse")
        consent_ref = None
        for x in node.get(HKS + "consentReference", ()):
            consent_ref = self.iri(x, f"{path}.hks:consentReference")
            params["consent_reference"] = consent_ref
        for x in self.vals(node, "assignee"):
            a = self._party_iri(x, f"{path}.assignee")
            if a:
                params["assignee"] = a
        if kind == "next-policy":
            pol = None
            for x in self.vals(node, "hasPolicy") + self.vals(node, "target"):
                pol = self.iri(x, f"{path}.target")
            params["policy"] = pol or self.policy_uid or "(this policy)"
        if kind == "aggregate-only":
            from .compute_terms import check_aggregate_params
            for msg in check_aggregate_params(params):
                self.err(f"{path}.action", msg)
        if kind in ("drop-fields", "pseudonymise-fields") and not params.get("fields"):
            self.err(f"{path}.action", f"{compact(action)} needs a refinement naming the fields, e.g. "
                                       f"{{\"leftOperand\": \"hks:field\", \"operator\": \"isAnyOf\", \"rightOperand\": [\"name\", \"phone\"]}}")
        cond_kids = []
        if not skip_constraints:
            for j, c in enumerate(self.vals(node, "constraint")):
                cpath = f"{path}.constraint[{j}]"
                cn = self.deref(c)
                if isinstance(cn, dict) and self._is_policy_usage(cn):
                    op = OPERATORS.get(self.iri(cn[ODRL + "operator"][0], cpath) or "", "")
                    if op in ("gt", "gteq") and timing == "precondition":
                        timing = "obligation"
                    continue
                k = self.constraint(c, cpath, "duty")
                if k is not None:
                    cond_kids.append(k)
        consequences = [d for d in (self.duty(x, f"{path}.consequence[{j}]", "consequence")
                                    for j, x in enumerate(self.vals(node, "consequence"))) if d]
        if role in ("consequence", "remedy", "obligation") and timing == "precondition":
            timing = "obligation"
        cond = Logic("", None, "and", cond_kids) if cond_kids else None
        return CDuty(path=path, uid=uid, action=action, kind=kind, timing=timing,
                     params=tuple(sorted(params.items())), cond=cond, deadline_abs=deadline_abs,
                     deadline_dur=deadline_dur, deadline_strict=strict, consequences=consequences,
                     consent_ref=taxonomy.expand_curie(consent_ref) if consent_ref else None)

    def _party_iri(self, x: Any, path: str) -> str | None:
        n = self.deref(x)
        if isinstance(n, dict) and "@value" not in n:
            nid = self.node_id(n)
            if nid:
                return taxonomy.expand_curie(nid)
        return self.iri(x, path)

    def _is_policy_usage(self, node: dict) -> bool:
        los = node.get(ODRL + "leftOperand", [])
        ros = node.get(ODRL + "rightOperand", [])
        if len(los) != 1 or len(ros) != 1 or ODRL + "operator" not in node:
            return False
        lo = self.iri(los[0], "")
        ro = ros[0]
        rv = ro.get("@id") or ro.get("@value") if isinstance(ro, dict) else None
        if not isinstance(rv, str):
            return False
        rv = taxonomy.expand_curie(rv if ":" in rv else ODRL + rv)
        return lo in (ODRL + "event", "event") and rv == POLICY_USAGE

    # conflicts -----------------------------------------------------------------
    def check_conflicts(self, perms: list[CRule], prohibs: list[CRule]) -> None:
        for q in prohibs:
            for p in perms:
                acts = _actions_overlap(p, q)
                if acts is None:
                    continue
                if not _overlap(p.targets, p.target_colls, q.targets, q.target_colls):
                    continue
                if not _overlap(p.parties, p.party_colls, q.parties, q.party_colls):
                    continue
                if _provably_disjoint(p, q, acts):
                    continue
                self.err(q.path,
                         f"{p.path} (permits {compact(acts[0]) if acts[0] else 'any action'}) and {q.path} (prohibits "
                         f"{compact(acts[1]) if acts[1] else 'any action'}) can both apply to the same request; under the "
                         f"default conflict strategy 'invalid' the whole policy would be void for it. Set \"conflict\": "
                         f"\"prohibit\" (prohibitions win) or \"perm\" (permissions win), or make their conditions exclusive.")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _memo(test):
    """Cache a set test by its (hashable, usually re-used) frozenset argument."""
    cache: dict = {}

    def memo(V, _c=cache, _t=test):
        r = _c.get(V)
        if r is None:
            r = _t(V)
            if len(_c) < 4096:
                _c[V] = r
        return r

    return memo


def _int_or_decimal(x):
    if isinstance(x, float):
        return parse_decimal(x)
    try:
        return parse_integer(x)
    except ValueError:
        return parse_decimal(x)


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _show(v: Any) -> str:
    if isinstance(v, dict):
        if "@value" in v:
            t = v.get("@type")
            return f"{v['@value']!r}" + (f" (typed {compact(t)})" if t else "")
        if "@id" in v:
            return compact(v["@id"])
        return "an object"
    return repr(v)


def _cmp_fn(op: str):
    import operator as o

    return {"eq": o.eq, "neq": o.ne, "lt": o.lt, "lteq": o.le, "gt": o.gt, "gteq": o.ge}[op]


def _cmp_test(op: str, r):
    if op == "lt":
        return lambda v: v < r
    if op == "lteq":
        return lambda v: v <= r
    if op == "gt":
        return lambda v: v > r
    if op == "gteq":
        return lambda v: v >= r
    if op == "eq":
        return lambda v: v == r
    return lambda v: v != r


def _actions_overlap(p: CRule, q: CRule):
    for a, _ in p.actions:
        for b, _ in q.actions:
            if a is None or b is None:
                return (a, b)
            if a in action_ancestors(b) or b in action_ancestors(a):
                return (a, b)
            for anc in ACTION_ANCESTORS.values():
                if a in anc and b in anc:
                    return (a, b)
    return None


def _overlap(ids1, colls1, ids2, colls2) -> bool:
    if (ids1 is None and not colls1) or (ids2 is None and not colls2):
        return True
    if colls1 or colls2:
        return True
    return bool(ids1 & ids2)


def _atoms(rule: CRule, action: str | None) -> list[Atom]:
    out = [c for c in rule.constraints if isinstance(c, Atom)]
    for c in rule.constraints:
        if isinstance(c, Logic) and c.op in ("and", "andSequence"):
            out.extend(k for k in c.children if isinstance(k, Atom))
    for a, ref in rule.actions:
        if a == action and ref is not None:
            out.extend(k for k in ref.children if isinstance(k, Atom))
    return out


def _provably_disjoint(p: CRule, q: CRule, acts) -> bool:
    """True when no request can satisfy both rules' constraints."""
    atoms = _atoms(p, acts[0]) + _atoms(q, acts[1])
    by_lo: dict[str, list[Atom]] = {}
    for a in atoms:
        by_lo.setdefault(a.lo.iri, []).append(a)
    p_los = {a.lo.iri for a in _atoms(p, acts[0])}
    q_los = {a.lo.iri for a in _atoms(q, acts[1])}
    for lo in p_los & q_los:
        group = by_lo[lo]
        kind = group[0].lo.kind
        if kind in ("datetime", "count", "duration", "elapsed") and _interval_empty(group):
            return True
        if kind == "nominal" and _nominal_empty(group):
            return True
        if kind == "set" and group[0].lo.domain == "purpose" and _purpose_set_empty(group):
            return True
    return False


def _bounds(a: Atom):
    """(lower, lower_incl, upper, upper_incl, eq, neq) over the operand's value."""
    op, r = a.op, a.right
    if a.lo.kind == "count":
        if op in SET_OPERATORS:
            return None
        r = r  # compared with use number
    if a.date_interval is not None:
        s, e = a.date_interval
        return {"eq": (s, True, e, False, None, None), "lt": (None, False, s, False, None, None),
                "lteq": (None, False, e, False, None, None), "gt": (e, True, None, False, None, None),
                "gteq": (s, True, None, False, None, None)}.get(op, (None, False, None, False, None, None))
    return {"eq": (r, True, r, True, r, None), "lt": (None, False, r, False, None, None),
            "lteq": (None, False, r, True, None, None), "gt": (r, False, None, False, None, None),
            "gteq": (r, True, None, False, None, None), "neq": (None, False, None, False, None, r)}.get(op)


def _cmp(a, b) -> int | None:
    if isinstance(a, Duration):
        return a.compare(b)
    return (a > b) - (a < b)


def _interval_empty(group: list[Atom]) -> bool:
    lo = hi = None
    lo_in = hi_in = True
    neqs = []
    for a in group:
        b = _bounds(a)
        if b is None:
            return False
        l, li, h, hi_i, _eq, ne = b
        if ne is not None:
            neqs.append(ne)
        if l is not None:
            if lo is None:
                lo, lo_in = l, li
            else:
                c = _cmp(l, lo)
                if c is None:
                    return False
                if c > 0 or (c == 0 and not li):
                    lo, lo_in = l, li
        if h is not None:
            if hi is None:
                hi, hi_in = h, hi_i
            else:
                c = _cmp(h, hi)
                if c is None:
                    return False
                if c < 0 or (c == 0 and not hi_i):
                    hi, hi_in = h, hi_i
    if lo is not None and hi is not None:
        c = _cmp(lo, hi)
        if c is None:
            return False
        if c > 0 or (c == 0 and not (lo_in and hi_in)):
            return True
        if c == 0 and any(_cmp(n, lo) == 0 for n in neqs):
            return True
    return False


def _nominal_empty(group: list[Atom]) -> bool:
    exact: list[str] = []
    covers_sets: list[frozenset[str]] = []
    neq: set[str] = set()
    none_of: set[str] = set()
    for a in group:
        if a.op == "eq":
            exact.append(a.right)
        elif a.op in ("isAnyOf", "isPartOf"):
            covers_sets.append(frozenset(a.right))
        elif a.op == "isA":
            covers_sets.append(frozenset((a.right,)))
        elif a.op == "neq":
            neq.add(a.right)
        elif a.op == "isNoneOf":
            none_of |= set(a.right)
        else:
            return False
    if len(set(exact)) > 1:
        return True
    for x in exact:
        if x in neq or any(covers(e, x) for e in none_of):
            return True
        for S in covers_sets:
            if not any(covers(s, x) for s in S):
                return True
    for i, S in enumerate(covers_sets):
        if all(any(covers(e, s) for e in none_of) for s in S):
            return True
        for T in covers_sets[i + 1:]:
            if not any(may_overlap(s, t) for s in S for t in T):
                return True
    return False


def _purpose_set_empty(group: list[Atom]) -> bool:
    """No non-empty set of declared purposes satisfies every atom of ``group``?
    (A declaration is never empty: an empty one is no declaration.) Operators
    that cannot by themselves exclude a set (neq, hasPart, isAllOf) are left
    out, which only ever answers "may overlap": sound."""
    exact: list[frozenset[str]] = []
    every_in: list[frozenset[str]] = []  # each declared purpose lies within (isPartOf, isA)
    some_in: list[frozenset[str]] = []  # at least one lies within (isAnyOf)
    none_of: set[str] = set()
    for a in group:
        if a.op == "eq":
            exact.append(frozenset(a.right))
        elif a.op == "isPartOf":
            every_in.append(frozenset(a.right))
        elif a.op == "isA":
            every_in.append(frozenset((a.right,)))
        elif a.op == "isAnyOf":
            some_in.append(frozenset(a.right))
        elif a.op == "isNoneOf":
            none_of |= set(a.right)
    if len(set(exact)) > 1:
        return True

    def excluded(x: str) -> bool:
        return any(covers(e, x) for e in none_of)

    for X in exact:
        if any(excluded(x) for x in X):
            return True
        if any(not any(covers(s, x) for s in S) for S in every_in for x in X):
            return True
        if any(not any(covers(s, x) for s in S for x in X) for S in some_in):
            return True
    for S in every_in + some_in:
        if all(excluded(s) for s in S):
            return True
    for i, S in enumerate(every_in):
        for T in every_in[i + 1:] + some_in:
            if not any(may_overlap(s, t) for s in S for t in T):
                return True
    return False
