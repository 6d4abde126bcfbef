"""Self-descriptions: the vocabulary, the station's SHACL shapes and their validation, and
reading a registered graph back into a search index. Pure (no network); shared by the node,
which builds and serves its self-description, and the station registry, which checks and
indexes it. Shapes and ontology: vocab/hks-station/."""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rdflib import RDF, Graph, Literal, Namespace, URIRef

from ..vocab import vocab_dir
from ..errors import IdentityError

IDS = Namespace("https://w3id.org/idsa/core/")
IDSC = Namespace("https://w3id.org/idsa/code/")
DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
HKS = Namespace("https://w3id.org/hks/ns#")
SH = Namespace("http://www.w3.org/ns/shacl#")
DATA_THEME = "http://publications.europa.eu/resource/authority/data-theme/"
PREFIXES = {"ids": str(IDS), "idsc": str(IDSC), "dcat": str(DCAT), "dct": str(DCT), "odrl": str(ODRL),
            "hks": str(HKS)}
MEDIA_TYPES = ("text/turtle", "application/ld+json", "application/n-triples")
SECURITY_PROFILES = ("idsc:BASE_SECURITY_PROFILE", "idsc:TRUST_SECURITY_PROFILE", "idsc:TRUST_PLUS_SECURITY_PROFILE")
# idscp2-jvm spells them differently (ids/NOTES.md §1): normalise on the way in.
_PROFILE_ALIASES = {
    "BASE_CONNECTOR_SECURITY_PROFILE": "BASE_SECURITY_PROFILE",
    "TRUSTED_CONNECTOR_SECURITY_PROFILE": "TRUST_SECURITY_PROFILE",
    "TRUSTED_CONNECTOR_PLUS_SECURITY_PROFILE": "TRUST_PLUS_SECURITY_PROFILE",
}
JURISDICTION_RE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3}){0,2}$")
#: an absolute IRI that N-Triples and Turtle can carry as it is (RFC 3987 minus what <...> forbids)
_IRI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*$")


def is_safe_iri(value: str) -> bool:
    return len(value) <= 2000 and _IRI_RE.match(value) is not None

#: EU data themes (publications.europa.eu authority table) and everyday words for them
THEME_CODES = ("AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "REGI", "SOCI", "TECH", "TRAN")
THEME_ALIASES = {
    "health": "HEAL", "medical": "HEAL", "medicine": "HEAL", "healthcare": "HEAL",
    "transport": "TRAN", "traffic": "TRAN", "mobility": "TRAN",
    "environment": "ENVI", "climate": "ENVI", "economy": "ECON", "finance": "ECON", "education": "EDUC",
    "energy": "ENER", "government": "GOVE", "public-sector": "GOVE", "science": "TECH", "technology": "TECH",
    "agriculture": "AGRI", "food": "AGRI", "justice": "JUST", "regions": "REGI", "cities": "REGI",
    "society": "SOCI", "population": "SOCI", "international": "INTR",
}


def theme_iri(value: str) -> str | None:
    """A theme given as an IRI, an EU data-theme code (HEAL) or a word (health) -> IRI; else None."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        return value if is_safe_iri(value) else None
    code = value.upper() if value.upper() in THEME_CODES else THEME_ALIASES.get(value.lower())
    return DATA_THEME + code if code else None


def profile_iri(value: str | None) -> URIRef:
    """A security profile (compact or full IRI, either IDS spelling) -> its idsc: IRI."""
    text = (value or "idsc:BASE_SECURITY_PROFILE").strip()
    name = text.rsplit("/", 1)[-1].split(":")[-1]
    return IDSC[_PROFILE_ALIASES.get(name, name)]


def jurisdiction_iri(code: str) -> URIRef:
    return HKS[code]


def jurisdiction_code(iri: str) -> str | None:
    return iri[len(str(HKS)):] if iri.startswith(str(HKS)) else None


def participant_iri(participant_id: str, station_url: str | None) -> URIRef:
    """An IRI for the participant: its station record when enrolled (the SKI:keyid:AKI id is
    not a good IRI), else the participant id itself when it is one."""
    if station_url:
        return URIRef(f"{station_url.rstrip('/')}/participants/{quote(participant_id, safe='')}")
    if is_safe_iri(participant_id):
        return URIRef(participant_id)
    return URIRef(f"urn:hks:participant:{quote(participant_id, safe='')}")


def connector_iri(public_url: str) -> str:
    return public_url.rstrip("/") + "/"


def local(base: str, kind: str, ident: str) -> URIRef:
    return URIRef(f"{base}#{kind}-{quote(ident, safe='')}")


# ------------------------------------------------------------------ shapes
@functools.lru_cache(maxsize=1)
def station_shapes() -> Graph:
    return Graph().parse(vocab_dir() / "hks-station" / "shapes.ttl", format="turtle")


@dataclass
class ShapeReport:
    conforms: bool
    text: str
    results: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"conforms": self.conforms, "results": self.results, "text": self.text}


def validate(graph: Graph, shapes: Graph | None = None) -> ShapeReport:
    """pyshacl with inference "none" (RDFS inference trips the IDS "abstract class" checks)."""
    from pyshacl import validate as shacl_validate

    conforms, report, text = shacl_validate(graph, shacl_graph=shapes if shapes is not None else station_shapes(),
                                            inference="none", allow_warnings=True, advanced=False)
    results = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        results.append({
            "focusNode": str(report.value(result, SH.focusNode) or ""),
            "path": str(report.value(result, SH.resultPath) or ""),
            "message": str(report.value(result, SH.resultMessage) or ""),
            "severity": str(report.value(result, SH.resultSeverity) or "").rsplit("#", 1)[-1],
        })
    results.sort(key=lambda r: (r["focusNode"], r["path"], r["message"]))
    return ShapeReport(bool(conforms), str(text), results)


# -------------------------------------------------------------------- index
@dataclass
class IndexedOffer:
    offer_id: str
    dataset_id: str
    title: str
    description: str
    keywords: list[str]
    themes: list[str]
    data_categories: list[str]
    policy: dict[str, Any] | None


@dataclass
class Index:
    connector: str
    participant_id: str
    organisation: str
    jurisdiction: str | None
    membership: list[str]
    membership_status: str | None
    station: str | None
    security_profile: str | None
    endpoints: dict[str, str]
    offers: list[IndexedOffer]

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector, "participantId": self.participant_id, "organisation": self.organisation,
            "jurisdiction": self.jurisdiction, "membership": self.membership,
            "membershipStatus": self.membership_status, "station": self.station,
            "securityProfile": self.security_profile, "endpoints": self.endpoints,
            "offers": [o.__dict__ for o in self.offers],
        }


class IndexError_(IdentityError, ValueError):
    """The graph does not describe exactly one station connector."""


def _str(graph: Graph, s: Any, p: URIRef) -> str | None:
    value = graph.value(s, p)
    return str(value) if value is not None else None


def index_graph(graph: Graph) -> Index:
    """Read a (shape-conforming) self-description into an index for searching."""
    import orjson

    connectors = list(graph.subjects(RDF.type, IDS.BaseConnector))
    if len(connectors) != 1:
        raise IndexError_(f"the self-description must describe exactly one ids:BaseConnector, it describes {len(connectors)}")
    c = connectors[0]
    endpoints: dict[str, str] = {}
    for ep in list(graph.objects(c, IDS.hasDefaultEndpoint)) + list(graph.objects(c, IDS.hasEndpoint)):
        version = _str(graph, ep, HKS.protocolVersion)
        url = _str(graph, ep, IDS.accessURL)
        if version and url:
            endpoints[version] = url
    establishment = _str(graph, c, HKS.establishedIn)
    offers: list[IndexedOffer] = []
    catalog = graph.value(c, HKS.catalog)
    for dataset in sorted(graph.objects(catalog, DCAT.dataset)) if catalog is not None else []:
        base = dict(
            dataset_id=_str(graph, dataset, DCT.identifier) or "",
            title=_str(graph, dataset, DCT.title) or "",
            description=_str(graph, dataset, DCT.description) or "",
            keywords=sorted(str(k) for k in graph.objects(dataset, DCAT.keyword)),
            themes=sorted(str(t) for t in graph.objects(dataset, DCAT.theme)),
            data_categories=sorted(str(d) for d in graph.objects(dataset, HKS.personalDataCategory)),
        )
        for offer in sorted(graph.objects(dataset, ODRL.hasPolicy)):
            doc = graph.value(offer, HKS.policyDocument)
            try:
                policy = orjson.loads(str(doc)) if doc is not None else None
            except orjson.JSONDecodeError:
                policy = None
            offers.append(IndexedOffer(offer_id=_str(graph, offer, DCT.identifier) or "",
                                       policy=policy if isinstance(policy, dict) else None, **base))
    return Index(
        connector=str(c), participant_id=_str(graph, c, HKS.participantId) or "",
        organisation=_str(graph, c, HKS.organisationName) or "",
        jurisdiction=jurisdiction_code(establishment) if establishment else None,
        membership=sorted("hks:" + str(m)[len(str(HKS)):] if str(m).startswith(str(HKS)) else str(m)
                          for m in graph.objects(c, HKS.memberOf)),
        membership_status=_str(graph, c, HKS.membershipStatus), station=_str(graph, c, HKS.stationAuthority),
        security_profile=("idsc:" + str(graph.value(c, IDS.securityProfile)).rsplit("/", 1)[-1])
        if graph.value(c, IDS.securityProfile) is not None else None,
        endpoints=endpoints, offers=offers,
    )


def literal(value: str) -> Literal:
    return Literal(value)
