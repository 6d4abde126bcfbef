"""A checked Query rendered to DuckDB SQL. Pure.

Identifiers are names the policy lists (checked before) and are quoted anyway; every literal
is a bound parameter. Suppression happens in SQL: each group carries the count of records
that match the filters (`__n`) and of all its records (`__all`); a group is released only
when `__n >= k` and the records the filters left out of it are none or at least k
(`__all = __n OR __all - __n >= k`), so a filter that singles out one person, or one that
leaves out only one person, yields a suppressed group.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .query import OPS, Query

SOURCES = {"csv": "read_csv(?, header = true)", "parquet": "read_parquet(?)",
           "ndjson": "read_json(?, format = 'newline_delimited')"}


def kind_of(path: str, content_type: str | None = None) -> str | None:
    name = path.lower()
    ct = (content_type or "").lower()
    if name.endswith(".parquet") or "parquet" in ct:
        return "parquet"
    if name.endswith((".ndjson", ".jsonl")) or "ndjson" in ct or "jsonl" in ct or "json-seq" in ct:
        return "ndjson"
    if name.endswith(".csv") or ct.startswith("text/csv"):
        return "csv"
    return None


def computable(asset: Any) -> bool:
    """Whether an asset (a row of the assets table) can be computed on: a CSV, Parquet or NDJSON file."""
    address = getattr(asset, "data_address", None) or {}
    return address.get("type") == "file" and kind_of(str(address.get("path", "")),
                                                     getattr(asset, "content_type", None)) is not None


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Plan:
    build: str  # CREATE TEMP TABLE g AS ...
    build_params: list
    suppressed: str  # SELECT count(*) of groups withheld
    result: str  # SELECT the released rows
    columns: tuple[str, ...]
    hidden_counts: tuple[str, ...]  # avg under noise: the count column behind each avg


def plan(query: Query, *, kind: str, path: str, min_group: int, max_rows: int, noisy: bool) -> Plan:
    conds, cond_params = [], []
    for f in query.filters:
        if f.op == "in":
            conds.append(f"{q(f.column)} IN ({', '.join('?' for _ in f.values)})")
        else:
            conds.append(f"{q(f.column)} {OPS[f.op]} ?")
        cond_params.extend(f.values)
    where = " AND ".join(conds)

    params_in_select: list = []

    def filtered(expr: str) -> str:
        if not where:
            return expr
        params_in_select.extend(cond_params)
        return f"{expr} FILTER (WHERE {where})"

    cols, hidden = [], []
    for i, item in enumerate(query.items):
        out = f"c{i}"
        if item.function is None:
            cols.append(f"{q(item.column)} AS {out}")
            continue
        arg = "*" if item.column is None else q(item.column)
        if noisy and item.bounds is not None:
            lo, hi = item.bounds
            arg = f"least(greatest(CAST({q(item.column)} AS DOUBLE), {float(lo)!r}), {float(hi)!r})"
        if noisy and item.function == "avg":  # released as noisy sum / noisy count
            cols.append(filtered(f"sum({arg})") + f" AS {out}")
            cols.append(filtered(f"count({arg})") + f" AS h{i}")
            hidden.append(f"h{i}")
        else:
            fn = {"stddev": "stddev_samp"}.get(item.function, item.function)
            cols.append(filtered(f"{fn}({arg})") + f" AS {out}")
    cols.append(filtered("count(*)") + " AS __n")
    cols.append("count(*) AS __all")
    group = f" GROUP BY {', '.join(q(g) for g in query.group_by)}" if query.group_by else ""
    build = f"CREATE TEMP TABLE g AS SELECT {', '.join(cols)} FROM {SOURCES[kind]}{group}"
    keep = f"__n >= {int(min_group)} AND (__all = __n OR __all - __n >= {int(min_group)})"
    names = [item.name for item in query.items]
    order = ", ".join(f"c{names.index(n)} {'DESC' if d else 'ASC'} NULLS LAST" for n, d in query.order_by)
    # no limit given: one row more than allowed, so that a result too large is noticed and refused
    limit = query.limit if query.limit is not None and query.limit <= max_rows else max_rows + 1
    select = ", ".join([f"c{i}" for i in range(len(names))] + hidden)
    result = (f"SELECT {select} FROM g WHERE {keep}" + (f" ORDER BY {order}" if order else "")
              + f" LIMIT {int(limit)}")
    return Plan(build, [*params_in_select, path] if False else params + params_in_select if False else
                _ordered_params(path, params_in_select), f"SELECT count(*) FROM g WHERE __n > 0 AND NOT ({keep})",
                result, tuple(names), tuple(hidden))


def _ordered_params(path: str, select_params: list) -> list:
    # the select list (with its FILTER clauses) comes before FROM read_xxx(?)
    return [*select_params, path]
