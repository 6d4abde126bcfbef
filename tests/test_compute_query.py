"""The pure core of computation-only offers (connector/compute/query.py, sql.py, policy terms) and
the DuckDB sandbox (engine.py) in process, on real files."""
from __future__ import annotations

import duckdb
import pytest

from connector.compute.engine import Limits, run
from connector.compute.query import QueryRefused, check, parse
from connector.compute.sql import plan
from connector.policy import PolicyError
from support.policies import compile_policy
from connector.policy.compute_terms import terms_from_params

TERMS = terms_from_params({"groupByColumn": ("district", "age_band"), "aggregateColumn": ("hba1c",),
                           "aggregateFunction": ("count", "avg", "sum"), "minGroupSize": 10, "maxRows": 5})


def policy_with(refinements: list) -> dict:
    return {"permission": [{"action": "hks:compute", "duty": [{"action": {"rdf:value": {"@id": "hks:aggregate"},
                                                                          "refinement": refinements}}]}]}


def test_incomplete_terms_are_refused_when_the_policy_is_created():
    fn = {"leftOperand": "hks:aggregateFunction", "operator": "isAnyOf", "rightOperand": ["avg"]}
    with pytest.raises(PolicyError, match="minGroupSize"):
        compile_policy(policy_with([fn]))
    with pytest.raises(PolicyError, match="not supported"):
        compile_policy(policy_with([{**fn, "rightOperand": ["list"]},
                                    {"leftOperand": "hks:minGroupSize", "operator": "gteq", "rightOperand": 5}]))
    with pytest.raises(PolicyError, match="go together"):
        compile_policy(policy_with([fn, {"leftOperand": "hks:minGroupSize", "operator": "gteq", "rightOperand": 5},
                                    {"leftOperand": "hks:epsilonPerQuery", "operator": "eq", "rightOperand": 1}]))


def test_sql_and_json_spellings_are_the_same_query():
    sql = parse("SELECT district, avg(hba1c) AS m FROM data WHERE age_band IN ('40-59') GROUP BY district "
                "ORDER BY m DESC LIMIT 3")
    js = parse({"select": [{"column": "district"}, {"aggregate": "avg", "column": "hba1c", "as": "m"}],
                "where": [{"column": "age_band", "op": "in", "values": ["40-59"]}], "groupBy": ["district"],
                "orderBy": [{"column": "m", "desc": True}], "limit": 3})
    assert sql.digest() == js.digest()
    check(sql, TERMS)


@pytest.mark.parametrize("query,rule", [
    ("SELECT * FROM data", "hks:aggregate"),
    ("SELECT hba1c FROM data", "hks:aggregate"),
    ("SELECT patient_id, count(*) FROM data GROUP BY patient_id", "hks:groupByColumn"),
    ("SELECT count(*) FROM data WHERE patient_id = 'x'", "hks:groupByColumn"),
    ("SELECT max(hba1c) FROM data", "hks:aggregateFunction"),
    ("SELECT sum(age) FROM data", "hks:aggregateColumn"),
    ("SELECT count(*) FROM data LIMIT 6", "hks:maxRows"),
    ("SELECT count(*) FROM data d JOIN data e ON true", "query"),
    ("SELECT count(*) FROM (SELECT * FROM data)", "query"),
    ("SELECT count(DISTINCT hba1c) FROM data", "query"),
    ("SELECT count(*) FROM data HAVING count(*) > 0", "query"),
    ("SELECT lower(district), count(*) FROM data GROUP BY 1", "query"),
    ("SELECT count(*) FROM data WHERE district = district", "query"),
    ("SELECT count(*) FROM data WHERE district = 'a' OR district = 'b'", "query"),
    ("COPY data TO '/tmp/x.csv'", "query"),
    ("SELECT count(*) FROM data; SELECT 1", "query"),
    ("SELECT count(*) FROM main.data", "query"),
    ("SELECT count(*) FROM data TABLESAMPLE 1 ROWS", "query"),
    ("SELECT count(*) FROM data AS d", "query"),
])
def test_refused_queries_name_the_rule(query, rule):
    with pytest.raises(QueryRefused) as caught:
        check(parse(query), TERMS)
    assert caught.value.rule == rule


def test_literals_are_bound_never_written_into_the_sql():
    q = parse("SELECT count(*) FROM data WHERE district = 'x'' OR 1=1 --'")
    p = plan(q, kind="csv", path="/d/r.csv", min_group=10, max_rows=5, noisy=False)
    assert "OR 1=1" not in p.build and "x' OR 1=1 --" in p.build_params and p.build_params[-1] == "/d/r.csv"


@pytest.fixture
def records(tmp_path):
    path = tmp_path / "r.csv"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 'P' || i AS patient_id, ['A','B','C'][1 + i % 3] AS district, "
                f"CASE WHEN i < 3 THEN 'tiny' ELSE 'big' END AS age_band, 5 + i % 10 AS hba1c FROM range(300) t(i)) "
                f"TO '{path}' (HEADER)")
    (tmp_path / "secret.csv").write_text("x\n1\n")
    return path


def test_small_groups_and_complements_are_suppressed(records):
    run_ = lambda sql: run(parse(sql), kind="csv", path=str(records), min_group=10, max_rows=5,  # noqa: E731
                           epsilon=None, limits=Limits())
    grouped = run_("SELECT age_band, count(*) FROM data GROUP BY age_band ORDER BY age_band")
    assert grouped.rows == [["big", 297]] and grouped.suppressed == 1
    assert run_("SELECT count(*) FROM data WHERE age_band = 'big'").rows == []  # leaves out 3: withheld
    assert run_("SELECT count(*) FROM data").rows == [[300]]


def test_the_sandbox_reads_only_the_asset(records):
    con = duckdb.connect(":memory:")
    con.execute("SET allowed_paths = ?", [[str(records)]])
    con.execute("SET enable_external_access = false")
    with pytest.raises(duckdb.Error):
        con.execute(f"SELECT * FROM read_csv('{records.parent / 'secret.csv'}')").fetchall()


def test_too_many_rows_are_refused_not_truncated(records):
    wide = terms_from_params({"groupByColumn": ("patient_id",), "aggregateFunction": ("count",), "minGroupSize": 1,
                              "maxRows": 5})
    q = parse("SELECT patient_id, count(*) FROM data GROUP BY patient_id")
    check(q, wide)
    with pytest.raises(QueryRefused) as caught:
        run(q, kind="csv", path=str(records), min_group=1, max_rows=5, epsilon=None, limits=Limits())
    assert caught.value.rule == "hks:maxRows"


@pytest.mark.parametrize("memory,seconds,why", [("2GB", 0.05, "longer than"), ("64MB", 120, "memory")])
def test_a_long_or_large_computation_is_stopped(records, memory, seconds, why):
    big = records.parent / "big.parquet"
    duckdb.connect().execute(f"COPY (SELECT 'k' || (i % 1000000) AS g, random() AS v FROM range(3000000) t(i)) "
                             f"TO '{big}' (FORMAT parquet)")
    q = parse("SELECT g, median(v) FROM data GROUP BY g")
    with pytest.raises(QueryRefused) as caught:
        run(q, kind="parquet", path=str(big), min_group=1, max_rows=5, epsilon=None,
            limits=Limits(memory=memory, seconds=seconds))
    assert caught.value.rule == "limits" and caught.value.status == 422 and why in caught.value.message


def test_an_error_never_quotes_a_value_from_the_data(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("district,hba1c\nCentral,7.1\nSECRETVALUE,8.0\n")
    for sql in ("SELECT count(*) FROM data WHERE district = 5", "SELECT sum(hba1c) FROM data WHERE district > 1"):
        with pytest.raises(QueryRefused) as caught:
            run(parse(sql), kind="csv", path=str(path), min_group=1, max_rows=5, epsilon=None, limits=Limits())
        assert "SECRETVALUE" not in caught.value.message and "Central" not in caught.value.message
        assert str(tmp_path) not in caught.value.message


def test_the_template_permits_computing_and_nothing_else():
    from datetime import datetime, timezone
    from pathlib import Path

    from connector.compute import ACTION
    from connector.policy import Context, Request
    from connector.policy.compute_terms import terms_of

    text = (Path(__file__).resolve().parents[1] / "policies" / "computation-only-aggregates.jsonld").read_text()
    policy = compile_policy(text)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ctx = Context(now=now, purpose="hks:MedicalResearch", use_count=0, agreement_time=now)
    computing = policy.evaluate(Request(ACTION, "a", "x"), ctx)
    assert computing.permitted and terms_of(computing.duties).min_group_size == 10
    assert "suppressing groups under 10 records" in computing.explain()
    for action in ("use", "read", "distribute"):
        assert not policy.evaluate(Request(action, "a", "x"), ctx).permitted
    fiftyfirst = policy.evaluate(Request(ACTION, "a", "x"), Context(now=now, purpose="hks:MedicalResearch",
                                                                    use_count=50, agreement_time=now))
    assert not fiftyfirst.permitted and "at most 50" in fiftyfirst.explain()
