"""The terms of a computation-only permission (hks:compute with an hks:aggregate duty).

Pure: the compiler checks them when a policy is created; `terms_of(decision)` gives the
node what the engine decided the query must satisfy. See vocab/hks/hks.ttl."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .explain import Msg

#: aggregate functions the connector can run and check (lower-case SQL names)
KNOWN_FUNCTIONS = frozenset({"count", "sum", "avg", "min", "max", "stddev", "median"})
_COLUMN_TERMS = ("groupByColumn", "aggregateColumn")


@dataclass(frozen=True)
class ComputeTerms:
    group_by: frozenset[str]
    aggregate_columns: frozenset[str]
    functions: frozenset[str]
    min_group_size: int
    max_rows: int
    epsilon_per_query: float | None = None
    epsilon_total: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"groupByColumns": sorted(self.group_by), "aggregateColumns": sorted(self.aggregate_columns),
                "aggregateFunctions": sorted(self.functions), "minGroupSize": self.min_group_size,
                "maxRows": self.max_rows, "epsilonPerQuery": self.epsilon_per_query,
                "epsilonTotal": self.epsilon_total}


def _names(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or isinstance(value, (tuple, list)):
        raise ValueError(f"{what} needs one integer")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} needs an integer: {str(value)[:40]!r} is not one") from None
    if number != number.to_integral_value() or number < 1 or number > 10**9:
        raise ValueError(f"{what} needs a positive integer, got {str(value)[:40]}")
    return int(number)


def _eps(value: Any, what: str) -> float:
    if isinstance(value, bool) or isinstance(value, (tuple, list)):
        raise ValueError(f"{what} needs one decimal")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what} needs a decimal: {str(value)[:40]!r} is not one") from None
    if not number.is_finite() or number <= 0 or number > 100:
        raise ValueError(f"{what} must be above 0 and at most 100, got {str(value)[:40]}")
    return float(number)


def terms_from_params(params: Iterable[tuple[str, Any]] | dict) -> ComputeTerms:
    """ComputeTerms from the duty's parameters, or ValueError naming what is wrong."""
    p = dict(params)
    for term in _COLUMN_TERMS + ("aggregateFunction",):
        for name in _names(p.get(term, ())):
            if not isinstance(name, str) or not name or len(name) > 128:
                raise ValueError(f"hks:{term} needs column or function names (strings)")
    functions = frozenset(str(f).lower() for f in _names(p.get("aggregateFunction", ())))
    unknown = sorted(functions - KNOWN_FUNCTIONS)
    if unknown:
        raise ValueError(f"hks:aggregateFunction: {', '.join(unknown)[:100]} is not supported "
                         f"(supported: {', '.join(sorted(KNOWN_FUNCTIONS))})")
    if not functions:
        raise ValueError("hks:aggregate needs hks:aggregateFunction naming the allowed aggregates")
    if "minGroupSize" not in p:
        raise ValueError("hks:aggregate needs hks:minGroupSize (groups smaller than it are suppressed)")
    eps_q = _eps(p["epsilonPerQuery"], "hks:epsilonPerQuery") if "epsilonPerQuery" in p else None
    eps_t = _eps(p["epsilonTotal"], "hks:epsilonTotal") if "epsilonTotal" in p else None
    if (eps_q is None) != (eps_t is None):
        raise ValueError("hks:epsilonPerQuery and hks:epsilonTotal go together (a budget per computation and in total)")
    if eps_q is not None and eps_t is not None and eps_q > eps_t:
        raise ValueError("hks:epsilonPerQuery is larger than hks:epsilonTotal")
    group_by = frozenset(_names(p.get("groupByColumn", ())))
    aggregated = frozenset(_names(p.get("aggregateColumn", ())))
    return ComputeTerms(group_by=group_by, aggregate_columns=aggregated, functions=functions,
                        min_group_size=_int(p["minGroupSize"], "hks:minGroupSize"),
                        max_rows=_int(p.get("maxRows", 1000), "hks:maxRows"),
                        epsilon_per_query=eps_q, epsilon_total=eps_t)


def check_aggregate_params(params: dict) -> list[str]:
    try:
        terms_from_params(params)
    except ValueError as exc:
        return [str(exc)]
    return []


def aggregate_msg(params: dict) -> "Msg":
    """The terms of an aggregate-only duty, as a sentence (without its full stop)."""
    from .explain import Msg  # noqa: F811 - explain imports this module
    try:
        t = terms_from_params(params)
    except ValueError as exc:
        return Msg("Release only checked aggregates (terms invalid: %(error)s)", error=str(exc))
    terms = {"functions": ", ".join(sorted(t.functions)),
             "columns": ", ".join(sorted(t.aggregate_columns)) or Msg("no column (count only)"),
             "groups": ", ".join(sorted(t.group_by)) or Msg("nothing"), "size": t.min_group_size, "rows": t.max_rows}
    if t.epsilon_per_query is not None:
        return Msg("Release only aggregates (%(functions)s) of %(columns)s, grouped by or filtered on %(groups)s, "
                   "suppressing groups under %(size)s records, at most %(rows)s rows, with noise at epsilon "
                   "%(epsilon)s per computation and %(total)s in total",
                   epsilon=f"{t.epsilon_per_query:g}", total=f"{t.epsilon_total:g}", **terms)
    return Msg("Release only aggregates (%(functions)s) of %(columns)s, grouped by or filtered on %(groups)s, "
               "suppressing groups under %(size)s records, at most %(rows)s rows", **terms)


def describe_aggregate(params: dict) -> str:
    return str(aggregate_msg(params))


def terms_of(duties: Iterable) -> ComputeTerms | None:
    """The terms of the one aggregate-only duty among a decision's duties; None if there is none.
    Several aggregate duties (two permissions) would be ambiguous: ValueError (refuse)."""
    found = [d for d in duties if d.kind == "aggregate-only"]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError("the policy applies several hks:aggregate duties to this computation")
    return terms_from_params(found[0].params)
