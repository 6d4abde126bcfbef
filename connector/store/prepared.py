"""Statements compiled once, for the hot paths of a transition.

On SQLite a `Prepared` statement runs straight on the driver's cursor: its SQL, the
order of its parameters and SQLAlchemy's own type processors (JSON, floats) are taken
from one compilation per set of parameter names. SQLAlchemy's execution path cost
four times the query itself there (profiled: 200 of 240 samples of a negotiation's
statements). On PostgreSQL, and for any statement the plan cannot express (expanding
IN lists, callable defaults), it runs through SQLAlchemy as usual: the results offer
the same small interface either way."""
from __future__ import annotations

from typing import Any, Iterator

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

_NO_PLAN = object()


class Prepared:
    __slots__ = ("statement", "_plans")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[tuple, Any] = {}

    def execute(self, conn: Connection, params: dict[str, Any] | None = None) -> Any:
        params = params or {}
        if conn.dialect.name != "sqlite":
            return conn.execute(self.statement, params)
        keys = tuple(params)
        plan = self._plans.get((conn.dialect, keys))
        if plan is None:  # one plan per dialect (its JSON serializer) and set of parameter names
            plan = self._plans[(conn.dialect, keys)] = _plan(self.statement, conn, keys)
        if plan is _NO_PLAN:
            return conn.execute(self.statement, params)
        sql, binds, columns = plan
        values = [const if name is None else (proc(params[name]) if proc else params[name])
                  for name, proc, const in binds]
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            cursor = conn.connection.driver_connection.execute(sql, values)
            rows = None if columns is None else cursor.fetchall()
        except dbapi_error as exc:  # raised as SQLAlchemy would (IntegrityError, OperationalError, ...)
            raise DBAPIError.instance(sql, values, exc, dbapi_error) from exc
        return _Result(cursor.rowcount, columns, rows)


def _plan(statement: ClauseElement, conn: Connection, keys: tuple[str, ...]) -> Any:
    """(sql, [(param name or None, bind processor, constant)], result columns) or _NO_PLAN."""
    try:
        dialect = conn.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        sql = compiled.string
        if not compiled.positional or "POSTCOMPILE" in sql:
            return _NO_PLAN
        processors = compiled._bind_processors
        binds = []
        for name in compiled.positiontup:
            proc = processors.get(name)
            if name in keys:
                binds.append((name, proc, None))
                continue
            bind = compiled.binds[name]
            if bind.callable is not None or bind.required:
                return _NO_PLAN  # a value only SQLAlchemy knows how to produce
            binds.append((None, None, proc(bind.value) if proc else bind.value))
        columns = None
        if compiled._result_columns:
            columns = [(entry.keyname, entry.type._cached_result_processor(dialect, None))
                       for entry in compiled._result_columns]
        return sql, binds, columns
    except AttributeError:  # another SQLAlchemy release: its own path is always right
        return _NO_PLAN


class _Result:
    """The part of SQLAlchemy's Result that the hot paths use."""
    __slots__ = ("rowcount", "_columns", "_rows")

    def __init__(self, rowcount: int, columns: list | None, rows: list | None) -> None:
        self.rowcount = rowcount
        self._columns = columns
        self._rows = rows

    def _processed(self) -> list[tuple]:
        rows = self._rows or []
        procs = [proc for _, proc in self._columns or ()]
        if any(procs):
            rows = [tuple(p(v) if p else v for p, v in zip(procs, row)) for row in rows]
        return rows

    def all(self) -> list[tuple]:
        return self._processed()

    def first(self) -> tuple | None:
        if not self._rows:
            return None
        self._rows = self._rows[:1]
        return self._processed()[0]

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        if not self._rows or len(self._rows) != 1:
            raise LookupError(f"expected exactly one row, got {len(self._rows or [])}")
        return self.first()[0]

    def mappings(self) -> "_Mappings":
        return _Mappings([name for name, _ in self._columns or ()], self)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self._processed())


class _Mappings:
    __slots__ = ("_names", "_result")

    def __init__(self, names: list[str], result: _Result) -> None:
        self._names = names
        self._result = result

    def first(self) -> dict[str, Any] | None:
        row = self._result.first()
        return None if row is None else dict(zip(self._names, row))

    def all(self) -> list[dict[str, Any]]:
        return [dict(zip(self._names, row)) for row in self._result.all()]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.all())
