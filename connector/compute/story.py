"""The demo's computation-only story (`connector demo`): Harbour Lab computes mean HbA1c by district
and age band from Pearl River's records without a record leaving Pearl River; its attempt to group by
patient id is refused with the rule."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Awaitable, Callable

MEAN_BY_DISTRICT = ("SELECT district, age_band, avg(hba1c) AS mean_hba1c, count(*) AS patients FROM data "
                    "GROUP BY district, age_band ORDER BY district, age_band")
BY_PATIENT = "SELECT patient_id, avg(hba1c) FROM data GROUP BY patient_id"


def template() -> dict:
    for path in (Path(__file__).resolve().parents[2] / "policies", Path(__file__).resolve().parents[1] / "_policies"):
        candidate = path / "computation-only-aggregates.jsonld"
        if candidate.is_file():
            return json.loads(candidate.read_text(encoding="utf-8"))
    raise FileNotFoundError("policies/computation-only-aggregates.jsonld is missing")


def with_age_bands(visits_csv: str) -> str:
    """The synthetic visits with an age band column (what the computation-only asset offers)."""
    rows = list(csv.reader(io.StringIO(visits_csv)))
    age = rows[0].index("age")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rows[0] + ["age_band"])
    for row in rows[1:]:
        years = int(row[age])
        writer.writerow(row + ["25-44" if years < 45 else "45-64" if years < 65 else "65+"])
    return out.getvalue()


async def computation_story(*, call: Callable[..., Awaitable[Any]], negotiate: Callable[..., Awaitable[dict]],
                            provider: Any, provider_url: str, consumer: Any, consumer_url: str, to_provider: dict,
                            data_root: Path, visits_csv: str, step: Callable[[str], None],
                            provider_name: str, consumer_name: str) -> list[dict]:
    (data_root / "outpatient-records-compute.csv").write_text(with_age_bands(visits_csv))
    await call(provider, provider_url, "POST", "/assets", {
        "id": "outpatient-records-computation", "title": "Outpatient records, computation only (synthetic)",
        "contentType": "text/csv", "dataAddress": {"type": "file", "path": "outpatient-records-compute.csv"},
        "properties": {"theme": "health"}})
    await call(provider, provider_url, "POST", "/policies", {"id": "computation-only", "policy": template()})
    await call(provider, provider_url, "POST", "/offers", {
        "id": "computation-offer", "assetIds": ["outpatient-records-computation"], "accessPolicyId": "open",
        "contractPolicyId": "computation-only"})
    step(f"{provider_name} offered the same records as computation only: aggregates of hba1c and age by district "
         "and age band, groups of at least 10, at most 50 queries, each logged")
    agreed = await negotiate(consumer, consumer_url, f"{consumer_name} asks to compute on the records",
                             {**to_provider, "datasetId": "outpatient-records-computation",
                              "offerId": "computation-offer"}, "FINALIZED")
    out = []
    path = f"/agreements/{agreed['agreementId']}/computations"
    status, body = await call(consumer, consumer_url, "POST", path, {"query": MEAN_BY_DISTRICT,
                                                                     "purpose": "hks:MedicalResearch"}, raw=True)
    result = json.loads(body)
    rows = result.get("rows", []) if status == 200 else []
    record = result.get("record", {})
    leaked = b"GZ-1" in body or b"Synthetic Patient" in body
    out.append({"label": "mean HbA1c by district and age band", "status": status, "expected": 200,
                "rows": len(rows), "groupsSuppressed": record.get("groupsSuppressed"),
                "queryDigest": record.get("queryDigest"), "recordLeftProvider": leaked})
    first = (f"; e.g. {rows[0][0]} {rows[0][1]}: {rows[0][2]:.2f} over {rows[0][3]} patients"
             if rows and isinstance(rows[0][2], (int, float)) else "")
    step(f"{consumer_name} computed mean HbA1c by district and age band: HTTP {status}, {len(rows)} groups, "
         f"{record.get('groupsSuppressed')} withheld as smaller than 10{first}; no record left {provider_name}")
    status, body = await call(consumer, consumer_url, "POST", path, {"query": BY_PATIENT,
                                                                     "purpose": "hks:MedicalResearch"}, raw=True)
    refusal = json.loads(body)
    out.append({"label": "group by patient_id", "status": status, "expected": 403, "rule": refusal.get("rule"),
                "reasons": refusal.get("reasons", [])})
    step(f"{consumer_name} tried to group by patient_id: HTTP {status}, rule {refusal.get('rule')}: "
         f"{' '.join(refusal.get('reasons', []))[:160]}")
    return out
