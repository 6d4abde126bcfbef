"""A generated station registry: participants with realistic self-descriptions (issue 16, item 4).

Each participant has an organisation name, a jurisdiction (weighted towards the Greater Bay Area),
a connector with DSP endpoints, and 1-6 datasets with titles, descriptions, keywords, EU data
themes, personal-data categories and one contract offer each (sometimes two). The offers' policies
are the repository's policy templates (`policies/*.jsonld`) put into catalog form as a node does
(`catalog_offer`), some with their parameters varied (named partners, recipient jurisdictions, an
expiry date), so the registry holds both shared and participant-specific policies.

Used by `bench/registry.py` and the registry tests; deterministic for a given seed."""
from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from connector.identity.sd import DATA_THEME
from connector.protocol.policies import catalog_offer

ROOT = Path(__file__).resolve().parents[2]
JURISDICTIONS = [("HK", 30), ("CN-GD-GZ", 12), ("CN-GD-SZ", 12), ("CN-GD-ZH", 4), ("CN-GD-FS", 3), ("MO", 5),
                 ("SG", 12), ("JP", 5), ("KR", 4), ("TW", 4), ("GB", 3), ("DE", 3), ("US", 3)]
PLACES = ["Harbour", "Pearl River", "Lion Rock", "Kowloon", "Victoria", "Lantau", "Tsing Yi", "Sha Tin", "Tai Po",
          "Shenzhen Bay", "Qianhai", "Nansha", "Hengqin", "Merlion", "Marina", "Orchard", "Cotai", "Dongguan",
          "Foshan", "Zhuhai", "Canton", "Sai Kung", "Tuen Mun", "Yuen Long", "Lamma", "Peak", "Causeway"]
FIELDS = [("health", "Medical Centre", "HEAL"), ("health", "Clinic Group", "HEAL"), ("health", "Hospital", "HEAL"),
          ("research", "University Research Lab", "TECH"), ("research", "Institute of Science", "TECH"),
          ("transport", "Mobility Data Co.", "TRAN"), ("transport", "Port Logistics", "TRAN"),
          ("finance", "Analytics", "ECON"), ("finance", "Bank", "ECON"), ("energy", "Power", "ENER"),
          ("environment", "Environmental Monitoring", "ENVI"), ("government", "Statistics Office", "GOVE"),
          ("education", "Schools Foundation", "EDUC"), ("agriculture", "Farms", "AGRI")]
TOPICS = {
    "health": [("Outpatient visits", ["diabetes", "hba1c", "outpatient", "glucose"]),
               ("Emergency admissions", ["emergency", "triage", "admissions"]),
               ("Cancer registry extract", ["oncology", "cancer", "survival"]),
               ("Vaccination records", ["vaccination", "immunisation", "influenza"]),
               ("Dialysis sessions", ["kidney", "dialysis", "renal"])],
    "research": [("Cohort study measurements", ["cohort", "longitudinal", "biomarkers"]),
                 ("Air quality sensor readings", ["pm2.5", "sensors", "air quality"]),
                 ("Genomics summary statistics", ["genomics", "gwas", "variants"])],
    "transport": [("Traffic speeds", ["traffic", "speed", "congestion"]),
                  ("Container movements", ["containers", "port", "shipping"]),
                  ("Bus arrivals", ["bus", "public transport", "arrivals"])],
    "finance": [("Card spending by district", ["spending", "retail", "cards"]),
                ("SME loan performance", ["loans", "sme", "credit"])],
    "energy": [("Smart meter load profiles", ["electricity", "smart meter", "load"])],
    "environment": [("Water quality samples", ["water", "marine", "samples"]),
                    ("Noise levels", ["noise", "urban", "monitoring"])],
    "government": [("Population by district", ["census", "population", "districts"])],
    "education": [("Enrolment by school", ["schools", "enrolment", "students"])],
    "agriculture": [("Crop yields", ["crops", "yield", "harvest"])],
}
THEMES_BY_FIELD = {"health": ["HEAL", "SOCI"], "research": ["TECH", "HEAL", "ENVI"], "transport": ["TRAN", "REGI"],
                   "finance": ["ECON"], "energy": ["ENER", "ENVI"], "environment": ["ENVI", "REGI"],
                   "government": ["GOVE", "SOCI"], "education": ["EDUC"], "agriculture": ["AGRI"]}
CATEGORIES = ["pd:Age", "pd:Gender", "pd:MedicalHealth", "pd:Name", "pd:Identifier", "pd:Location",
              "pd:TelephoneNumber", "pd:Income"]
YEARS = ["2022", "2023", "2024", "2025"]


def templates() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((ROOT / "policies").glob("*.jsonld")):
        body = json.loads(path.read_text())
        out[path.stem] = body
    return out


def participant_id(rng: random.Random) -> str:
    """An IDS SKI:keyid:AKI participant id, as the station assigns."""
    return ":keyid:".join(rng.getrandbits(160).to_bytes(20, "big").hex(":").upper() for _ in range(2))


def _policy(rng: random.Random, tpl: dict[str, dict[str, Any]], pids: list[str], now: dt.datetime) -> dict[str, Any]:
    kind = rng.choices(["gba", "open", "members", "research", "evaluation", "aggregates", "partners",
                        "jurisdictions", "expiring"], [10, 12, 10, 14, 8, 6, 15, 20, 5])[0]
    if kind == "gba":
        return tpl["gba-cross-border-personal-information"]
    if kind == "open":
        return tpl["hk-open-data-attribution"]
    if kind == "members":
        return tpl["station-members-only"]
    if kind == "research":
        return tpl["research-only-one-year"]
    if kind == "evaluation":
        return tpl["n-times-evaluation-licence"]
    if kind == "aggregates":
        return tpl["computation-only-aggregates"]
    if kind == "partners":  # participant-specific: named partners (sometimes the searcher's own id)
        partners = rng.sample(pids, k=min(len(pids), rng.randint(1, 3)))
        return {"@context": "https://w3id.org/hks/context.jsonld", "@type": "Offer", "permission": [{
            "action": "use", "constraint": [{"leftOperand": "hks:organisation", "operator": "isAnyOf",
                                             "rightOperand": [{"@id": p} for p in partners]}]}]}
    if kind == "jurisdictions":
        allowed = sorted(rng.sample([j for j, _ in JURISDICTIONS], rng.randint(1, 5)))
        constraints: list[dict[str, Any]] = [{"leftOperand": "hks:recipientJurisdiction", "operator": "isAnyOf",
                                              "rightOperand": allowed}]
        if rng.random() < 0.6:
            constraints.append({"leftOperand": "purpose", "operator": "isA",
                                "rightOperand": {"@id": rng.choice(["hks:MedicalResearch", "dpv:ResearchAndDevelopment",
                                                                    "dpv:ScientificResearch"])}})
        return {"@context": "https://w3id.org/hks/context.jsonld", "@type": "Offer",
                "permission": [{"action": "use", "constraint": constraints}]}
    # expiring: a dateTime constraint (decided anew at each search), some already past
    until = now + dt.timedelta(days=rng.randint(-30, 365))
    return {"@context": "https://w3id.org/hks/context.jsonld", "@type": "Offer", "permission": [{
        "action": "use", "constraint": [
            {"leftOperand": "dateTime", "operator": "lt",
             "rightOperand": {"@value": until.strftime("%Y-%m-%dT00:00:00Z"), "@type": "xsd:dateTime"}},
            {"leftOperand": "hks:recipientJurisdiction", "operator": "isAnyOf", "rightOperand": ["HK", "SG", "MO"]}]}]}


def generate(n: int, *, seed: int = 16, station: str = "https://station.example.hk",
             now: dt.datetime | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`n` participants: (participant records as the station keeps them, registry indexes as
    ``Index.to_dict()`` gives them). About 2 % of the participants are revoked."""
    rng = random.Random(seed)
    now = now or dt.datetime.now(dt.timezone.utc)
    tpl = templates()
    pids = [participant_id(rng) for _ in range(n)]
    records, indexes = [], []
    names: set[str] = set()
    bodies: dict[int, dict[str, Any]] = {}
    codes, weights = zip(*JURISDICTIONS)
    for i, pid in enumerate(pids):
        field, kind, _theme = rng.choice(FIELDS)
        name = f"{rng.choice(PLACES)} {kind}"
        if name in names:
            name = f"{name} {i}"
        names.add(name)
        jurisdiction = rng.choices(codes, weights)[0]
        slug = name.lower().replace(" ", "-").replace(".", "")
        url = f"https://{slug}.example/"
        status = "revoked" if rng.random() < 0.02 else "active"
        records.append({"id": pid, "name": name, "jurisdiction": jurisdiction, "status": status,
                        "security_profile": "idsc:BASE_SECURITY_PROFILE", "membership": ["hks:StationMember"],
                        "connector_url": url.rstrip("/")})
        offers = []
        for d in range(rng.choices([1, 2, 3, 4, 6], [30, 30, 20, 12, 8])[0]):
            title, words = rng.choice(TOPICS[field])
            year = rng.choice(YEARS)
            dataset_id = f"{slug}-{title.lower().replace(' ', '-')}-{year}-{d}"
            themes = sorted({DATA_THEME + t for t in rng.sample(THEMES_BY_FIELD[field],
                                                                 k=min(2, rng.randint(1, len(THEMES_BY_FIELD[field]))))})
            categories = sorted(rng.sample(CATEGORIES, rng.choice([0, 0, 1, 2, 3]))) if field in ("health", "research",
                                                                                               "finance") else []
            keywords = sorted(rng.sample(words, rng.randint(1, len(words))))
            description = (f"{title} {year} from {name}, {rng.choice(['de-identified', 'aggregated', 'synthetic', 'raw'])} "
                           f"records covering {rng.choice(['one district', 'the whole territory', 'three cities', 'all sites'])}, "
                           f"updated {rng.choice(['daily', 'weekly', 'monthly', 'yearly'])}.")
            for k in range(1 if rng.random() < 0.85 else 2):
                offer_id = f"{dataset_id}-offer-{k}"
                terms = _policy(rng, tpl, pids, now)
                body = bodies.get(id(terms)) or catalog_offer("", terms, "")
                if any(terms is t for t in tpl.values()):  # a template's catalog form: made once
                    bodies[id(terms)] = body
                policy = {**body, "@id": offer_id, "assigner": pid}
                offers.append({"offer_id": offer_id, "dataset_id": dataset_id, "title": f"{title} {year}",
                               "description": description, "keywords": keywords, "themes": themes,
                               "data_categories": categories, "policy": policy})
        indexes.append({"connector": url, "participantId": pid, "organisation": name, "jurisdiction": jurisdiction,
                        "membership": ["hks:StationMember"], "membershipStatus": status, "station": station,
                        "securityProfile": "idsc:BASE_SECURITY_PROFILE",
                        "endpoints": {"2025-1": url + "dsp/2025-1", "2024-1": url + "dsp"}, "offers": offers})
    return records, indexes
