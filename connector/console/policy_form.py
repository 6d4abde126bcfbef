"""A policy template of `policies/` as a form: one field per parameter the template constrains
(purposes, jurisdictions, number of uses, period of use, retention, fields to drop or
pseudonymise, ...), found by reading the template's constraints and refinements, and the
template filled back with the values typed. The engine checks the result (`check_policy`, the
rule the management API applies); each problem it reports is shown next to the field whose
part of the policy it names (the problem's path)."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from .shell import N_

#: a parameter's form name by the left operand it constrains (its local name); the kind says how
#: the typed text becomes the right operand
_NAMES: dict[str, tuple[str, str]] = {
    "purpose": ("purposes", "list"), "recipientJurisdiction": ("jurisdictions", "list"), "count": ("count", "value"),
    "dataCategory": ("categories", "list"), "organisation": ("organisations", "list"),
    "membership": ("memberships", "list"), "securityProfile": ("profile", "value"),
    "groupByColumn": ("group_by", "list"), "aggregateColumn": ("aggregate_columns", "list"),
    "aggregateFunction": ("functions", "list"), "minGroupSize": ("min_group_size", "value"),
    "maxRows": ("max_rows", "value"), "epsilonPerQuery": ("epsilon_per_query", "value"),
    "epsilonTotal": ("epsilon_total", "value"), "dateTime": ("date_time", "value"),
}
LABELS = {
    "purposes": N_("Purposes"), "jurisdictions": N_("Recipient jurisdictions"), "count": N_("Number of uses"),
    "period": N_("Period of use after the agreement"), "retention": N_("Retention: delete the data within"),
    "drop": N_("Fields to drop"), "pseudonymise": N_("Fields to pseudonymise"), "fields": N_("Fields"),
    "categories": N_("Personal-data categories"), "organisations": N_("Organisations (participant ids)"),
    "memberships": N_("Station memberships"), "profile": N_("Lowest connector security profile"),
    "group_by": N_("Columns to group or filter by"), "aggregate_columns": N_("Columns to aggregate"),
    "functions": N_("Aggregate functions"), "min_group_size": N_("Smallest group released"),
    "max_rows": N_("Most rows returned"), "epsilon_per_query": N_("Privacy budget per computation"),
    "epsilon_total": N_("Total privacy budget"), "date_time": N_("Time limit"),
}
HINTS = {
    "list": N_("One or more, separated by spaces or commas."),
    "value": N_("One value."),
    "duration": N_("An ISO 8601 duration, e.g. P1Y, P30D, PT12H."),
}


@dataclass
class Param:
    name: str
    kind: str  # list | value | duration
    default: str
    #: where it is in the template: JSON paths (keys and indexes) of the constraints it fills
    places: list[tuple] = field(default_factory=list)
    #: the same places as the engine names them in its problems ("permission[0].constraint[1]")
    paths: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    @property
    def hint(self) -> str:
        return HINTS[self.kind]


def _local(term: Any) -> str:
    text = term.get("@id", "") if isinstance(term, dict) else str(term)
    return re.split(r"[:/#]", text)[-1]


def _engine_path(place: tuple) -> str:
    out = ""
    for i, step in enumerate(place):
        if isinstance(step, int):
            if place[i - 1] != "action":  # the engine names a refined action "action", without its index
                out += f"[{step}]"
        else:
            out += ("." if out else "") + step
    return out


def _text(right: Any) -> str:
    if isinstance(right, list):
        return " ".join(_text(x) for x in right)
    if isinstance(right, dict):
        return str(right.get("@id", right.get("@value", "")))
    return str(right)


def parameters(template: dict) -> list[Param]:
    """The template's parameters in the order they first appear."""
    found: dict[str, Param] = {}

    def walk(node: Any, place: tuple, action: str) -> None:
        if isinstance(node, dict):
            if "rdf:value" in node:
                action = _local(node["rdf:value"])
            left = node.get("leftOperand")
            if left is not None and "rightOperand" in node:
                local = _local(left)
                if local == "elapsedTime":
                    name, kind = ("retention" if action == "delete" else "period"), "duration"
                elif local == "field":
                    name, kind = (action if action in ("drop", "pseudonymise") else "fields"), "list"
                else:
                    name, kind = _NAMES.get(local, (local, "list" if isinstance(node["rightOperand"], list) else "value"))
                param = found.setdefault(name, Param(name, kind, _text(node["rightOperand"])))
                param.places.append(place)
                param.paths.append(_engine_path(place))
                return
            for key, value in node.items():
                if key not in ("@context",):
                    walk(value, place + (key,), action)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, place + (i,), action)

    walk(template, (), "")
    return list(found.values())


def _split(text: str) -> list[str]:
    return [part for part in re.split(r"[\s,，、]+", text.strip()) if part]


def _right(original: Any, text: str) -> Any:
    """The typed text as a right operand of the template's own shape (list of ids, of strings, one
    id, a typed literal). What does not fit is left for the engine to refuse, with its path."""
    values = _split(text)
    if isinstance(original, list):
        if original and all(isinstance(x, dict) and "@id" in x for x in original):
            return [{"@id": v} for v in values]
        return values
    if isinstance(original, dict) and "@id" in original:
        return {"@id": values[0]} if len(values) == 1 else [{"@id": v} for v in values]
    if isinstance(original, dict) and "@value" in original:
        return {**original, "@value": text.strip()}
    return text.strip()


def fill(template: dict, params: list[Param], values: dict[str, str]) -> dict:
    """A copy of the template with each parameter's typed value (a parameter not sent keeps the
    template's)."""
    policy = copy.deepcopy(template)
    for param in params:
        if param.name not in values:
            continue
        for place in param.places:
            node: Any = policy
            for step in place:
                node = node[step]
            node["rightOperand"] = _right(node["rightOperand"], values[param.name][:4000])
    return policy


def problems_by_field(params: list[Param], problems: list[tuple[str, str]]) -> tuple[dict[str, list[str]], list[str]]:
    """Each engine problem next to the field whose constraint it names (its path, or the duty the
    constraint refines); the others for the whole form."""
    by_field: dict[str, list[str]] = {}
    other: list[str] = []
    for path, message in problems:
        owner = None
        for param in params:
            for own in param.paths:
                if path == own or path.startswith(own + ".") or (own.startswith(path + ".") and ".duty[" in path):
                    owner = param.name
                    break
            if owner:
                break
        text = f"{path}: {message}"
        if owner:
            by_field.setdefault(owner, []).append(text)
        else:
            other.append(text)
    return by_field, other
