"""Computation queries: one model, two spellings, checked against the policy's terms.

Pure: no I/O, no clock. A query arrives either as structured JSON or as a small SQL subset;
SQL is parsed with sqlglot and the *syntax tree* is translated into the model (anything the
model cannot express is refused: joins, subqueries, SELECT *, functions other than the
aggregates, HAVING, DISTINCT, windows ...). The model is then checked against `ComputeTerms`
and rendered to DuckDB SQL by `connector.compute.sql`: identifiers are only ever names the
policy lists, literals are only ever bound parameters. No check here looks at SQL text.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import rfc8785
import sqlglot
from sqlglot import exp

from ..policy.compute_terms import ComputeTerms
from ..protocol.errors import echo
from ..errors import ComputeError

MAX_SQL = 4000
MAX_ITEMS = 32
MAX_FILTERS = 16
MAX_IN = 50
MAX_LITERAL = 200
TABLE = "data"  # the one table a query names: the asset
DP_FUNCTIONS = frozenset({"count", "sum", "avg"})
OPS = {"=": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "in": "IN"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_AGG = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
        exp.Stddev: "stddev", exp.StddevSamp: "stddev", exp.Median: "median"}
_CMP = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_SELECT_ARGS = {"expressions", "from_", "from", "where", "group", "order", "limit"}


class QueryRefused(ComputeError):
    """A query the terms do not allow. `rule` names the policy term (or 'query' for syntax)."""

    def __init__(self, rule: str, message: str, status: int = 403):
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.status = status

    def to_dict(self) -> dict:
        return {"rule": self.rule, "reason": self.message}


def _bad(message: str) -> QueryRefused:
    return QueryRefused("query", message, 400)


@dataclass(frozen=True)
class Item:
    name: str  # output column name
    column: str | None  # the source column (None: count(*))
    function: str | None  # None: a group-by column
    bounds: tuple[float, float] | None = None  # clamp for sum/avg under a privacy budget


@dataclass(frozen=True)
class Filter:
    column: str
    op: str  # one of OPS' keys, normalised
    values: tuple  # one value, or several for "in"


@dataclass(frozen=True)
class Query:
    items: tuple[Item, ...]
    filters: tuple[Filter, ...] = ()
    group_by: tuple[str, ...] = ()
    order_by: tuple[tuple[str, bool], ...] = ()  # (output name, descending)
    limit: int | None = None
    extra: dict = field(default_factory=dict, compare=False)

    def canonical(self) -> dict:
        return {"select": [{"as": i.name, "column": i.column, "aggregate": i.function,
                            "bounds": list(i.bounds) if i.bounds else None} for i in self.items],
                "where": [{"column": f.column, "op": f.op, "values": list(f.values)} for f in self.filters],
                "groupBy": list(self.group_by),
                "orderBy": [{"column": n, "desc": d} for n, d in self.order_by], "limit": self.limit}

    def digest(self) -> str:
        return hashlib.sha256(rfc8785.dumps(self.canonical())).hexdigest()


# ------------------------------------------------------------------ values
def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _bad(f"{what} must be a plain name (letters, digits, _; at most 64), got {echo(str(value), 60)}")
    return value


def _literal(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        raise _bad("a filter value must be a string or a number")
    if isinstance(value, str):
        if len(value) > MAX_LITERAL:
            raise _bad(f"a filter value is longer than {MAX_LITERAL} characters")
        return value
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise _bad("a filter value is out of range")
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise _bad("a filter value must be a string or a finite number")


def _bounds(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            or not value[0] < value[1] or max(abs(value[0]), abs(value[1])) > 1e12):
        raise _bad("bounds must be [lower, upper], two finite numbers with lower < upper")
    return float(value[0]), float(value[1])


def _default_name(function: str, column: str | None) -> str:
    return function if column is None else f"{function}_{column}"


def _check_shape(items: list[Item], filters: list[Filter], group_by: list[str], order_by: list, limit: Any) -> Query:
    if not items:
        raise _bad("a query selects at least one aggregate")
    if len(items) > MAX_ITEMS or len(filters) > MAX_FILTERS or len(group_by) > MAX_ITEMS:
        raise _bad(f"a query has at most {MAX_ITEMS} select items and group-by columns and {MAX_FILTERS} filters")
    names = [i.name for i in items]
    if len(set(names)) != len(names):
        raise _bad("two select items have the same name; name them with 'as'")
    if len(set(group_by)) != len(group_by):
        raise _bad("a group-by column is repeated")
    for name, _desc in order_by:
        if name not in names:
            raise _bad(f"order by {echo(name, 60)}: order by a selected column or aggregate name")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10**6):
        raise _bad("limit must be a positive integer")
    return Query(tuple(items), tuple(filters), tuple(group_by), tuple(order_by), limit)


# -------------------------------------------------------------- JSON form
def parse_json(doc: Any) -> Query:
    """The structured form: {"select": [...], "where": [...], "groupBy": [...], "orderBy": [...], "limit": n}."""
    if not isinstance(doc, dict):
        raise _bad("the query must be a JSON object or a SQL string")
    unknown = set(doc) - {"select", "where", "groupBy", "orderBy", "limit"}
    if unknown:
        raise _bad(f"unknown query member {echo(sorted(unknown)[0], 60)}")
    select, where = doc.get("select"), doc.get("where", [])
    group, order = doc.get("groupBy", []), doc.get("orderBy", [])
    if not isinstance(select, list) or not isinstance(where, list) or not isinstance(group, list) \
            or not isinstance(order, list):
        raise _bad("select, where, groupBy and orderBy are lists")
    if len(select) > MAX_ITEMS or len(where) > MAX_FILTERS or len(order) > MAX_ITEMS:
        raise _bad("the query is too large")
    items = []
    for s in select:
        if s == "*" or not isinstance(s, dict):
            raise QueryRefused("hks:aggregate", "SELECT * is refused: only aggregates of allowed columns leave")
        if set(s) - {"column", "aggregate", "as", "bounds"}:
            raise _bad("a select item has column, aggregate, as and bounds only")
        function = s.get("aggregate")
        column = s.get("column")
        if column == "*":
            column = None
        if column is not None:
            column = _name(column, "a column")
        if function is None:
            if column is None:
                raise QueryRefused("hks:aggregate", "SELECT * is refused: only aggregates of allowed columns leave")
            items.append(Item(_name(s.get("as", column), "a name"), column, None))
            continue
        if not isinstance(function, str):
            raise _bad("aggregate must be a function name")
        function = function.lower()
        if column is None and function != "count":
            raise _bad(f"{echo(function, 30)} needs a column")
        items.append(Item(_name(s.get("as", _default_name(function, column)), "a name"), column, function,
                          _bounds(s.get("bounds"))))
    filters = []
    for f in where:
        if not isinstance(f, dict) or set(f) - {"column", "op", "value", "values"}:
            raise _bad("a filter is {column, op, value} or {column, op: 'in', values}")
        op = str(f.get("op", "")).lower()
        if op not in OPS:
            raise _bad(f"filter operator {echo(str(f.get('op')), 20)} is not one of {', '.join(OPS)}")
        if op == "in":
            values = f.get("values")
            if not isinstance(values, list) or not 1 <= len(values) <= MAX_IN:
                raise _bad(f"'in' needs a list of 1 to {MAX_IN} values")
            vals = tuple(_literal(v) for v in values)
        else:
            vals = (_literal(f.get("value")),)
        filters.append(Filter(_name(f.get("column"), "a filter column"), "!=" if op == "<>" else op, vals))
    group_by = [_name(g, "a group-by column") for g in group]
    order_by = []
    for o in order:
        if isinstance(o, str):
            order_by.append((_name(o, "an order-by name"), False))
        elif isinstance(o, dict) and set(o) <= {"column", "desc"} and isinstance(o.get("desc", False), bool):
            order_by.append((_name(o.get("column"), "an order-by name"), bool(o.get("desc", False))))
        else:
            raise _bad("orderBy items are names or {column, desc}")
    return _check_shape(items, filters, group_by, order_by, doc.get("limit"))


# --------------------------------------------------------------- SQL form
def _column(node: exp.Expression, what: str) -> str:
    if not isinstance(node, exp.Column) or node.args.get("catalog") or node.args.get("db"):
        raise _bad(f"{what} must be a plain column name")
    if node.table and node.table != TABLE:
        raise _bad(f"{what}: the only table is '{TABLE}'")
    if isinstance(node.this, exp.Star):
        raise QueryRefused("hks:aggregate", "SELECT * is refused: only aggregates of allowed columns leave")
    return _name(node.name, what)


def _sql_literal(node: exp.Expression) -> Any:
    negative = False
    if isinstance(node, exp.Neg):
        negative, node = True, node.this
    if not isinstance(node, exp.Literal):
        raise _bad("a filter compares a column with a literal string or number")
    if node.is_string:
        if negative:
            raise _bad("a string cannot be negated")
        return _literal(node.this)
    text = node.this
    try:
        value: Any = int(text) if re.fullmatch(r"\d{1,16}", text) else float(text)
    except ValueError:
        raise _bad("a number literal is malformed") from None
    return _literal(-value if negative else value)


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def parse_sql(text: Any) -> Query:
    """The SQL subset: SELECT <group columns and aggregates> FROM data [WHERE <col op literal> AND ...]
    [GROUP BY cols] [ORDER BY names] [LIMIT n]."""
    if not isinstance(text, str) or not text.strip():
        raise _bad("the SQL query is empty")
    if len(text) > MAX_SQL:
        raise _bad(f"the SQL query is longer than {MAX_SQL} characters")
    try:
        statements = sqlglot.parse(text, read="duckdb")
    except Exception as exc:  # noqa: BLE001 - sqlglot raises several error types
        raise _bad(f"the SQL does not parse: {echo(str(exc), 120)}") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        raise _bad("exactly one SQL statement is allowed")
    tree = statements[0]
    if not isinstance(tree, exp.Select):
        raise _bad(f"only SELECT is allowed, not {type(tree).__name__}")
    used = {k for k, v in tree.args.items() if v not in (None, [], False)}
    if used - _SELECT_ARGS:
        raise _bad(f"not in the query subset: {', '.join(sorted(used - _SELECT_ARGS))[:100]}")
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or not isinstance(source.this, exp.Table) or source.this.name.lower() != TABLE \
            or any(v not in (None, [], False) for k, v in source.this.args.items() if k != "this"):
        raise _bad(f"a query reads FROM {TABLE} (the asset) and nothing else")
    if any(isinstance(n, (exp.Subquery, exp.Join, exp.Window, exp.Distinct, exp.Placeholder, exp.Parameter))
           for n in tree.walk()):
        raise _bad("subqueries, joins, windows, DISTINCT and parameters are not in the query subset")
    items = []
    for node in tree.expressions:
        alias = None
        if isinstance(node, exp.Alias):
            alias = _name(node.alias, "a select alias")
            node = node.this
        if isinstance(node, exp.Star):
            raise QueryRefused("hks:aggregate", "SELECT * is refused: only aggregates of allowed columns leave")
        if isinstance(node, exp.Column):
            column = _column(node, "a selected column")
            items.append(Item(alias or column, column, None))
            continue
        function = _AGG.get(type(node))
        if function is None:
            raise _bad(f"{echo(node.sql(dialect='duckdb'), 60)} is neither a column nor an allowed aggregate")
        others = {k for k, v in node.args.items() if v not in (None, [], False) and k not in ("this", "big_int")}
        if others:
            raise _bad(f"{function}: only a column (or * for count) may be given")
        arg = node.this
        if isinstance(arg, exp.Star) and function == "count":
            column = None
        else:
            column = _column(arg, f"the argument of {function}")
        items.append(Item(alias or _default_name(function, column), column, function))
    filters = []
    where = tree.args.get("where")
    for cond in _conjuncts(where.this) if where is not None else []:
        if isinstance(cond, exp.In):
            if cond.args.get("query") or not cond.expressions:
                raise _bad("IN takes a list of literals")
            if len(cond.expressions) > MAX_IN:
                raise _bad(f"IN takes at most {MAX_IN} values")
            filters.append(Filter(_column(cond.this, "a filter column"), "in",
                                  tuple(_sql_literal(v) for v in cond.expressions)))
            continue
        op = _CMP.get(type(cond))
        if op is None:
            raise _bad(f"filter {echo(cond.sql(dialect='duckdb'), 60)}: only col op literal joined by AND")
        filters.append(Filter(_column(cond.this, "a filter column"), op, (_sql_literal(cond.expression),)))
    group_by = [_column(g, "a group-by column") for g in (tree.args["group"].expressions if tree.args.get("group") else [])]
    order_by = []
    if tree.args.get("order"):
        for o in tree.args["order"].expressions:
            if not isinstance(o.this, exp.Column):
                raise _bad("order by a selected name")
            order_by.append((_column(o.this, "an order-by name"), bool(o.args.get("desc"))))
    limit = None
    if tree.args.get("limit"):
        lit = tree.args["limit"].expression
        if not isinstance(lit, exp.Literal) or lit.is_string or not re.fullmatch(r"\d{1,7}", lit.this):
            raise _bad("limit must be a positive integer")
        limit = int(lit.this)
    return _check_shape(items, filters, group_by, order_by, limit)


def parse(body: Any) -> Query:
    """A query as the consumer sends it: a SQL string or the JSON object."""
    return parse_sql(body) if isinstance(body, str) else parse_json(body)


# ---------------------------------------------------------------- policy
def check(query: Query, terms: ComputeTerms) -> None:
    """Raise QueryRefused naming the policy term the query breaks; return when it meets them all."""
    for g in query.group_by:
        if g not in terms.group_by:
            raise QueryRefused("hks:groupByColumn", f"grouping by {echo(g, 60)} is not allowed; the policy allows "
                                                    f"grouping by {', '.join(sorted(terms.group_by)) or 'nothing'}")
    for item in query.items:
        if item.function is None:
            if item.column not in query.group_by:
                raise QueryRefused("hks:aggregate", f"column {echo(item.column, 60)} is selected without an "
                                                    "aggregate; only aggregates leave (a group-by column may be "
                                                    "selected)")
            continue
        if item.function not in terms.functions:
            raise QueryRefused("hks:aggregateFunction", f"{echo(item.function, 30)} is not an allowed aggregate; "
                                                        f"allowed: {', '.join(sorted(terms.functions))}")
        if item.column is not None and item.column not in terms.aggregate_columns:
            raise QueryRefused("hks:aggregateColumn", f"aggregating {echo(item.column, 60)} is not allowed; the "
                                                      f"policy allows {', '.join(sorted(terms.aggregate_columns)) or 'count(*) only'}")
        if terms.epsilon_per_query is not None:
            if item.function not in DP_FUNCTIONS:
                raise QueryRefused("hks:epsilonPerQuery", f"under a privacy budget only {', '.join(sorted(DP_FUNCTIONS))} "
                                                          f"are released (with noise), not {item.function}")
            if item.function in ("sum", "avg") and item.bounds is None:
                raise QueryRefused("hks:epsilonPerQuery", f"{item.function}({item.column}) under a privacy budget needs "
                                                          "'bounds': [lower, upper] to clamp values (JSON form)")
    if not any(i.function for i in query.items):
        raise QueryRefused("hks:aggregate", "a query releases at least one aggregate")
    for f in query.filters:
        if f.column not in terms.group_by:
            raise QueryRefused("hks:groupByColumn", f"filtering on {echo(f.column, 60)} is not allowed; filters may "
                                                    f"use {', '.join(sorted(terms.group_by)) or 'no column'}")
    if query.limit is not None and query.limit > terms.max_rows:
        raise QueryRefused("hks:maxRows", f"limit {query.limit} is above the policy's {terms.max_rows} rows")
