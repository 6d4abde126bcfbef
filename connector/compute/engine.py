"""Running a checked query: DuckDB in memory, sandboxed, bounded; optional Laplace noise (OpenDP).

Each computation gets its own in-memory DuckDB connection that may read exactly one file
(`allowed_paths`), with external access disabled, extension loading off, a memory limit,
no spilling to disk, and the configuration locked before the query runs. A timer interrupts
the query from another thread when the time limit passes.
"""
from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from typing import Any

import duckdb
import rfc8785

from .query import Query, QueryRefused
from .sql import plan

_DP_LOCK = threading.Lock()
_laplace_cache: dict[float, Any] = {}


@dataclass
class Limits:
    memory: str = "256MB"
    seconds: float = 10.0
    threads: int = 1


@dataclass
class Result:
    columns: list[str]
    rows: list[list[Any]]
    suppressed: int
    epsilon: float

    def table(self) -> dict:
        return {"columns": self.columns, "rows": self.rows}

    def digest(self) -> str:
        return hashlib.sha256(rfc8785.dumps(self.table())).hexdigest()


def _laplace(scale: float):
    """An OpenDP Laplace measurement on floats with the given scale (cached per scale)."""
    with _DP_LOCK:
        m = _laplace_cache.get(scale)
        if m is None:
            import opendp.prelude as dp

            dp.enable_features("contrib")
            m = dp.m.make_laplace(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=scale)
            if len(_laplace_cache) < 256:
                _laplace_cache[scale] = m
        return m


def _json_value(v: Any) -> Any:
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return str(v)  # dates, decimals: their text


def _noisy(query: Query, rows: list[tuple], hidden: int, epsilon: float) -> list[list[Any]]:
    """Each aggregate gets an equal share of epsilon per group (groups are disjoint, so shares
    compose in parallel across groups). count: sensitivity 1; sum: max |bound|; avg = noisy sum /
    noisy count, each with its share."""
    n_aggs = sum(1 for i in query.items if i.function) + hidden
    share = epsilon / n_aggs
    out = []
    for row in rows:
        values = list(row[: len(query.items)])
        extra = list(row[len(query.items):])
        k = 0
        for idx, item in enumerate(query.items):
            if item.function is None:
                continue
            true = float(values[idx] or 0.0)
            if item.function == "count":
                values[idx] = max(0, int(round(_laplace(1.0 / share)(true))))
            elif item.function == "sum":
                sens = max(abs(item.bounds[0]), abs(item.bounds[1]))
                values[idx] = _laplace(sens / share)(true)
            else:  # avg
                sens = max(abs(item.bounds[0]), abs(item.bounds[1]))
                total = _laplace(sens / share)(true)
                count = max(1.0, _laplace(1.0 / share)(float(extra[k] or 0)))
                k += 1
                values[idx] = min(item.bounds[1], max(item.bounds[0], total / count))
        out.append(values)
    return out


def run(query: Query, *, kind: str, path: str, min_group: int, max_rows: int, epsilon: float | None,
        limits: Limits) -> Result:
    """Blocking: call it in a worker thread. Raises QueryRefused for anything that is not a result."""
    p = plan(query, kind=kind, path=path, min_group=min_group, max_rows=max_rows, noisy=epsilon is not None)
    con = duckdb.connect(":memory:", config={"memory_limit": limits.memory, "threads": max(1, limits.threads),
                                             "autoload_known_extensions": False,
                                             "autoinstall_known_extensions": False,
                                             "max_temp_directory_size": "0B"})
    timer = threading.Timer(limits.seconds, con.interrupt)
    try:
        con.execute("SET allowed_paths = ?", [[path]])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        timer.start()
        con.execute(p.build, p.build_params)
        suppressed = con.execute(p.suppressed).fetchone()[0]
        rows = con.execute(p.result).fetchall()
    except duckdb.InterruptException:
        raise QueryRefused("limits", f"the computation ran longer than {limits.seconds:g} s and was stopped",
                           status=422) from None
    except duckdb.OutOfMemoryException:
        raise QueryRefused("limits", f"the computation needed more than {limits.memory} of memory and was "
                                     "stopped", status=422) from None
    except duckdb.Error as exc:
        # Only a binder error's text is shown (it names columns, never values); any other message
        # may quote a value from the data (a failed conversion) or the file's path: its type only.
        text = str(exc).split("\n", 1)[0]
        if not isinstance(exc, duckdb.BinderException) or "read_" in text or "/" in text:
            text = f"{type(exc).__name__} (for example a column of another type than the query assumes)"
        raise QueryRefused("query", f"the computation failed: {text[:200]}", status=422) from None
    finally:
        timer.cancel()
        con.close()
    if query.limit is None and len(rows) > max_rows:
        raise QueryRefused("hks:maxRows", f"the result has more than {max_rows} rows (hks:maxRows); "
                                          "group more coarsely, filter or set a limit")
    if epsilon is not None:
        table = _noisy(query, rows, len(p.hidden_counts), epsilon)
    else:
        table = [list(r[: len(query.items)]) for r in rows]
    return Result(list(p.columns), [[_json_value(v) for v in r] for r in table], int(suppressed), epsilon or 0.0)
