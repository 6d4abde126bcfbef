"""Concept hierarchies the set operators follow, and value normalisation.

* Jurisdictions: ISO 3166 codes plus the station's codes for the nine mainland
  Greater Bay Area cities (CN-GD-GZ, ...), with the GBA groupings of
  vocab/hks/hks.ttl. Values are reduced to codes: "HK", "hks:HK",
  "https://w3id.org/hks/ns#HK", "loc:HK" and "CN-HK" are all "HK".
* DPV 2.2 personal-data categories (pd:) and purposes (dpv:), see _dpv.py.
* Station purposes hks:MedicalResearch and hks:Evaluation.

``covers(general, specific)`` is the one relation the engine uses: true when
both are the same concept or ``general`` is a (transitive) broader concept of
``specific``. Unknown values only cover themselves.
"""

from __future__ import annotations

import re

from ._dpv import PERSONAL_DATA, PURPOSES
from .vocab import DPV, HKS, IDSC, LOC, SECURITY_PROFILES, compact, expand_curie

MAINLAND_GBA_CITIES: dict[str, str] = {
    "CN-GD-GZ": "Guangzhou",
    "CN-GD-SZ": "Shenzhen",
    "CN-GD-ZH": "Zhuhai",
    "CN-GD-FS": "Foshan",
    "CN-GD-HZ": "Huizhou",
    "CN-GD-DG": "Dongguan",
    "CN-GD-ZS": "Zhongshan",
    "CN-GD-JM": "Jiangmen",
    "CN-GD-ZQ": "Zhaoqing",
}

JURISDICTION_LABELS: dict[str, str] = {
    "GBA": "Guangdong-Hong Kong-Macao Greater Bay Area",
    "GBA-Mainland": "the nine mainland GBA cities",
    "HK": "Hong Kong SAR",
    "MO": "Macao SAR",
    "CN": "Mainland China",
    "CN-GD": "Guangdong",
    **MAINLAND_GBA_CITIES,
}

BROADER: dict[str, tuple[str, ...]] = {
    "GBA": (),
    "GBA-Mainland": ("GBA",),
    "HK": ("GBA",),
    "MO": ("GBA",),
    "CN": (),
    "CN-GD": ("CN",),
}
for _code in MAINLAND_GBA_CITIES:
    BROADER[_code] = ("CN-GD", "GBA-Mainland")

LABELS: dict[str, str] = dict(JURISDICTION_LABELS)

for _iri, (_broader, _label, _special) in PERSONAL_DATA.items():
    BROADER[_iri] = _broader
    LABELS[_iri] = _label
for _iri, (_broader, _label) in PURPOSES.items():
    BROADER[_iri] = _broader
    LABELS[_iri] = _label

BROADER[HKS + "MedicalResearch"] = (DPV + "ScientificResearch",)
LABELS[HKS + "MedicalResearch"] = "Medical research"
BROADER[HKS + "Evaluation"] = (DPV + "Purpose",)
LABELS[HKS + "Evaluation"] = "Evaluation before licensing"
BROADER[HKS + "StationMember"] = ()
LABELS[HKS + "StationMember"] = "Station member"
for _iri, (_canon, _rank) in SECURITY_PROFILES.items():
    if _iri == _canon:
        LABELS[_iri] = _iri.rsplit("/", 1)[1].replace("_", " ").title().replace("Security Profile", "security profile")


def _closure() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}

    def up(x: str, stack: tuple[str, ...]) -> frozenset[str]:
        if x in out:
            return out[x]
        acc: set[str] = set()
        for b in BROADER.get(x, ()):
            if b in stack:
                continue
            acc.add(b)
            acc |= up(b, stack + (x,))
        out[x] = frozenset(acc)
        return out[x]

    for x in list(BROADER):
        up(x, ())
    return out


#: concept -> all strictly broader concepts
ANCESTORS: dict[str, frozenset[str]] = _closure()

_EMPTY: frozenset[str] = frozenset()


def covers(general: str, specific: str) -> bool:
    return general == specific or general in ANCESTORS.get(specific, _EMPTY)


def _descendants() -> dict[str, frozenset[str]]:
    d: dict[str, set[str]] = {}
    for x, anc in ANCESTORS.items():
        for a in anc:
            d.setdefault(a, set()).add(x)
    return {k: frozenset(v) for k, v in d.items()}


DESCENDANTS: dict[str, frozenset[str]] = _descendants()


def may_overlap(a: str, b: str) -> bool:
    """Could some value be covered by both a and b?"""
    if covers(a, b) or covers(b, a):
        return True
    da = DESCENDANTS.get(a, _EMPTY)
    db = DESCENDANTS.get(b, _EMPTY)
    return bool(da & db)


def is_special_category(iri: str) -> bool:
    entry = PERSONAL_DATA.get(iri)
    if entry and entry[2]:
        return True
    return DPV + "SpecialCategoryPersonalData" in ANCESTORS.get(iri, _EMPTY)


# --------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------

_CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,8})*$|^GBA(-Mainland)?$")
_JURISDICTION_ALIASES = {"CN-HK": "HK", "CN-MO": "MO", "CN-44": "CN-GD", "CN-GD-MAINLAND": "GBA-Mainland"}
_JPREFIXES = (HKS, LOC, "http://ontologi.es/place/", "urn:iso:std:iso:3166:-2:", "urn:iso:std:iso:3166:")


def jurisdiction_code(value: str) -> str:
    """Reduce a jurisdiction value to its code; ValueError if it is not one."""
    v = expand_curie(value.strip())
    for p in _JPREFIXES:
        if v.startswith(p):
            v = v[len(p) :]
            break
    if v.upper() == "GBA-MAINLAND":
        return "GBA-Mainland"
    v = v.upper() if v.upper() != "GBA" else "GBA"
    v = _JURISDICTION_ALIASES.get(v, v)
    if not _CODE.match(v):
        raise ValueError(
            f"{value!r} is not a jurisdiction code (use an ISO 3166 code such as HK, MO or SG, "
            f"a GBA city code such as CN-GD-GZ, or GBA / GBA-Mainland)"
        )
    return v


def security_profile(value: str) -> tuple[str, int]:
    v = value.strip()
    hit = SECURITY_PROFILES.get(v) or SECURITY_PROFILES.get(expand_curie(v))
    if hit is None:
        raise ValueError(
            f"{value!r} is not an IDS security profile (use idsc:BASE_SECURITY_PROFILE, "
            f"idsc:TRUST_SECURITY_PROFILE or idsc:TRUST_PLUS_SECURITY_PROFILE)"
        )
    return hit


def normalise(domain: str, value) -> str:
    """Normalise one nominal value of the given domain (IRIs expanded)."""
    if not isinstance(value, str):
        value = str(value)
    if domain == "jurisdiction":
        return jurisdiction_code(value)
    if domain == "profile":
        return security_profile(value)[0]
    return expand_curie(value)


def display(value, domain: str = "iri") -> str:
    """A value as a person should read it."""
    if domain == "jurisdiction":
        return str(value)
    if isinstance(value, str):
        c = compact(value)
        label = LABELS.get(value)
        if label and domain == "profile":
            return c.split(":", 1)[-1]
        if label and label.lower() != c.split(":", 1)[-1].lower():
            return f"{label} ({c})"
        return c
    return str(value)


def known_concept(value: str) -> bool:
    return value in BROADER


def unknown_in_namespace(value: str) -> str | None:
    """An explanation when a pd:/dpv: IRI is not in DPV 2.2, else None."""
    from .vocab import PD, suggest

    for ns in (PD, DPV):
        if value.startswith(ns) and value not in BROADER:
            local = value[len(ns) :]
            names = [k[len(ns) :] for k in BROADER if k.startswith(ns)]
            return f"{compact(value)} is not a DPV 2.2 term{suggest(local, names)}"
    if value.startswith(IDSC) and "SECURITY" in value and value not in SECURITY_PROFILES:
        return f"{compact(value)} is not an IDS security profile"
    return None
