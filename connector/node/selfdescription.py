"""The node's self-description: an RDF graph (IDS Information Model v4 ``ids:BaseConnector``
with its endpoints, security profile and resource catalog, the DCAT catalog of its public
offers, and the station's claims about the organisation), served at
``/.well-known/self-description`` as Turtle, JSON-LD or N-Triples by ``Accept`` (406
otherwise; ``Vary: Accept``, a strong ``ETag`` per representation, ``If-None-Match`` -> 304),
each representation signed with the node's enrolled key (a detached JWS in ``Hks-Signature``),
and, in station mode, validated against the station's SHACL shapes at start-up (the node
refuses to start on a violation) and registered with the station registry at start and
whenever the catalog changes.

The pure part (`build_graph`, `public_offers`, `serialize_all`, `choose_media_type`) takes
rows and facts as arguments; `SelfDescriptionService` does the I/O.

"Public offers" are those whose *access* policy admits a requester about whom nothing is
known (evaluated with the station's policy engine, fail closed): an offer that only some
partners may see is not published in the registry.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson
from aiohttp import web

from ..identity import sd
from ..identity.sd import DCAT, DCT, HKS, IDS, ODRL, PREFIXES, local, participant_iri
from ..protocol.policies import catalog_offer
from ..errors import NodeError, SetupError

log = logging.getLogger("connector.selfdescription")
Json = dict[str, Any]
MODEL_VERSION = "4.2.7"
DSP_VERSIONS = ("2025-1", "2024-1")
SIGNATURE_HEADER = "Hks-Signature"
DECIDED_AT_USE = frozenset({"purpose", "processing_location", "retention_period", "events", "duty_states", "consents"})


@dataclass(frozen=True)
class NodeFacts:
    participant_id: str
    name: str
    public_url: str
    station_url: str | None = None
    jurisdiction: str | None = None
    membership: tuple[str, ...] = ()
    membership_status: str | None = None
    security_profile: str = "idsc:BASE_SECURITY_PROFILE"


@dataclass(frozen=True)
class PublicOffer:
    offer_id: str  # as in the DSP catalog
    dataset_id: str
    title: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    data_categories: tuple[str, ...] = ()
    policy: Json = field(default_factory=dict)
    certificate: str | None = None  # SHA-256 of the dataset's registration certificate (connector/certs)


# ------------------------------------------------------------------ pure part
def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def asset_metadata(properties: Mapping[str, Any] | None) -> tuple[list[str], list[str], list[str], list[str]]:
    """(keywords, theme IRIs, data categories, theme words not recognised) from asset properties:
    ``keywords``/``dcat:keyword``, ``theme``/``themes``/``dcat:theme``, ``dataCategories``."""
    props = properties or {}
    keywords = _strings(props.get("keywords")) + _strings(props.get("keyword")) + _strings(props.get("dcat:keyword"))
    themes, unknown = [], []
    for raw in _strings(props.get("theme")) + _strings(props.get("themes")) + _strings(props.get("dcat:theme")):
        iri = sd.theme_iri(raw)
        (themes if iri else unknown).append(iri or raw)
    categories = _strings(props.get("dataCategories"))
    return keywords[:50], themes[:20], categories[:50], unknown


def is_public(access_policy: Json, asset_id: str, now: dt.datetime, properties: Mapping[str, Any] | None = None) -> bool:
    """Does the access policy admit a requester about whom nothing is known? (fail closed)"""
    from ..policy import Context, Request, compile_policy
    from ..vocab import policy_contexts

    doc = dict(access_policy)
    doc.setdefault("@type", "Offer")
    if "uid" not in doc and "@id" not in doc:
        doc["uid"] = "urn:hks:policy:access"
    categories = _strings((properties or {}).get("dataCategories"))
    try:
        decision = compile_policy(doc, contexts=policy_contexts()).evaluate(
            Request(action="use", target=asset_id, assignee="urn:hks:anyone"),
            Context(now=now, use_count=0, agreement_time=now, deferred=DECIDED_AT_USE,
                    data_categories=frozenset(categories) if categories else None))
    except Exception:  # noqa: BLE001 - a policy the engine cannot read publishes nothing
        return False
    return bool(decision.permitted)


def public_offers(assets: Iterable[Json], policies: Iterable[Json], offers: Iterable[Json], *,
                  participant_id: str, now: dt.datetime) -> list[PublicOffer]:
    from .catalog import catalog_offer_id

    asset_rows = {a["id"]: a for a in assets}
    policy_rows = {p["id"]: p["body"] for p in policies}
    out = []
    for offer in sorted(offers, key=lambda o: (o.get("created_at") or 0, o["id"])):
        access = policy_rows.get(offer["access_policy_id"])
        contract = policy_rows.get(offer["contract_policy_id"])
        if access is None or contract is None:
            continue
        asset_ids = list(offer["asset_ids"])
        for asset_id in asset_ids:
            asset = asset_rows.get(asset_id)
            if asset is None or not is_public(access, asset_id, now, asset.get("properties")):
                continue
            keywords, themes, categories, _ = asset_metadata(asset.get("properties"))
            oid = catalog_offer_id(offer["id"], asset_id, len(asset_ids))
            out.append(PublicOffer(
                offer_id=oid, dataset_id=asset_id, title=asset.get("title") or asset_id,
                description=asset.get("description") or "", keywords=tuple(keywords), themes=tuple(themes),
                data_categories=tuple(categories), policy=catalog_offer(oid, contract, participant_id),
                certificate=asset.get("certificate")))
    return out


def build_graph(facts: NodeFacts, offers: Iterable[PublicOffer]):  # noqa: ANN201 - rdflib.Graph
    """The self-description graph. No blank nodes, so every serialisation is deterministic."""
    from rdflib import RDF, Graph, Literal, URIRef

    g = Graph()
    for prefix, ns in PREFIXES.items():
        g.bind(prefix, ns)
    base = facts.public_url.rstrip("/")
    doc = f"{base}/.well-known/self-description"
    c = URIRef(sd.connector_iri(facts.public_url))
    party = participant_iri(facts.participant_id, facts.station_url)
    add = g.add
    add((c, RDF.type, IDS.BaseConnector))
    add((c, IDS.title, Literal(facts.name)))
    add((c, IDS.description, Literal(f"Hong Kong station connector of {facts.name}")))
    add((c, IDS.curator, party))
    add((c, IDS.maintainer, party))
    add((c, IDS.securityProfile, sd.profile_iri(facts.security_profile)))
    add((c, IDS.outboundModelVersion, Literal(MODEL_VERSION)))
    add((c, IDS.inboundModelVersion, Literal(MODEL_VERSION)))
    for i, version in enumerate(DSP_VERSIONS):
        ep = URIRef(f"{base}/dsp/{version}")
        add((c, IDS.hasDefaultEndpoint if i == 0 else IDS.hasEndpoint, ep))
        add((ep, RDF.type, IDS.ConnectorEndpoint))
        add((ep, IDS.accessURL, ep))
        add((ep, HKS.protocolVersion, Literal(version)))
    # the station's claims about the organisation
    add((c, HKS.participantId, Literal(facts.participant_id)))
    add((c, HKS.organisationName, Literal(facts.name)))
    if facts.jurisdiction:  # a value that is no jurisdiction code stays a literal: the shapes then say so
        add((c, HKS.establishedIn, sd.jurisdiction_iri(facts.jurisdiction)
             if sd.JURISDICTION_RE.fullmatch(facts.jurisdiction) else Literal(facts.jurisdiction)))
    for membership in facts.membership:
        iri = str(HKS) + membership.split(":", 1)[1] if membership.startswith("hks:") else membership
        add((c, HKS.memberOf, URIRef(iri) if sd.is_safe_iri(iri) else Literal(membership)))
    if facts.membership_status:
        add((c, HKS.membershipStatus, Literal(facts.membership_status)))
    if facts.station_url and sd.is_safe_iri(facts.station_url):
        add((c, HKS.stationAuthority, URIRef(facts.station_url.rstrip("/"))))
    # One catalog of the public offers, seen two ways: the IDS resource catalog (ids:offeredResource
    # -> ids:Resource) and the DCAT catalog (dcat:dataset -> dcat:Dataset, dcat:service). It is typed
    # ids:ResourceCatalog only: the IDS model makes that a subclass of dcat:Catalog, and the official
    # IDS shapes refuse a plain dcat:Catalog instance as "abstract".
    catalog = resources = URIRef(f"{doc}#catalog")
    add((c, IDS.resourceCatalog, catalog))
    add((c, HKS.catalog, catalog))
    add((catalog, RDF.type, IDS.ResourceCatalog))
    add((catalog, DCT.title, Literal(f"Public offers of {facts.name}")))
    add((catalog, DCT.publisher, party))
    for version in DSP_VERSIONS:
        service = URIRef(f"{doc}#dsp-{version}")
        add((catalog, DCAT.service, service))
        add((service, RDF.type, DCAT.DataService))
        add((service, DCAT.endpointURL, URIRef(f"{base}/dsp/{version}")))
        add((service, HKS.protocolVersion, Literal(version)))
        add((service, DCT.conformsTo, URIRef(f"https://w3id.org/dspace/{version.replace('-', '/')}")))
    for offer in offers:
        resource = local(doc, "resource", offer.dataset_id)
        ids_offer = local(doc, "contract-offer", offer.offer_id)
        permission = local(doc, "permission", offer.offer_id)
        add((resources, IDS.offeredResource, resource))
        add((resource, RDF.type, IDS.Resource))
        add((resource, IDS.title, Literal(offer.title)))
        if offer.description:
            add((resource, IDS.description, Literal(offer.description)))
        for keyword in offer.keywords:
            add((resource, IDS.keyword, Literal(keyword)))
        add((resource, IDS.contractOffer, ids_offer))
        add((ids_offer, RDF.type, IDS.ContractOffer))
        add((ids_offer, IDS.provider, party))
        add((ids_offer, IDS.permission, permission))
        add((permission, RDF.type, IDS.Permission))
        add((permission, IDS.action, sd.IDSC.USE))
        add((permission, IDS.target, resource))
        dataset = local(doc, "dataset", offer.dataset_id)
        odrl_offer = local(doc, "offer", offer.offer_id)
        add((catalog, DCAT.dataset, dataset))
        add((dataset, RDF.type, DCAT.Dataset))
        add((dataset, DCT.identifier, Literal(offer.dataset_id)))
        add((dataset, DCT.title, Literal(offer.title)))
        if offer.certificate:  # the bundle is in the DSP catalog; this names it (its SHA-256, as logged)
            add((dataset, HKS.registrationCertificate, Literal(offer.certificate)))
        if offer.description:
            add((dataset, DCT.description, Literal(offer.description)))
        for keyword in offer.keywords:
            add((dataset, DCAT.keyword, Literal(keyword)))
        for theme in offer.themes:
            add((dataset, DCAT.theme, URIRef(theme)))
        for category in offer.data_categories:
            add((dataset, HKS.personalDataCategory, Literal(category)))
        add((dataset, ODRL.hasPolicy, odrl_offer))
        add((odrl_offer, RDF.type, ODRL.Offer))
        add((odrl_offer, DCT.identifier, Literal(offer.offer_id)))
        add((odrl_offer, ODRL.assigner, party))
        add((odrl_offer, ODRL.target, dataset))
        add((odrl_offer, HKS.policyDocument,
             Literal(orjson.dumps(offer.policy, option=orjson.OPT_SORT_KEYS).decode(), datatype=RDF.JSON)))
    return g


def serialize_all(graph: Any) -> dict[str, bytes]:
    """{media type: bytes} for Turtle, JSON-LD and N-Triples, each deterministic."""
    turtle = graph.serialize(format="turtle").encode()
    lines = sorted({line for line in graph.serialize(format="nt").splitlines() if line.strip()})
    ntriples = ("\n".join(lines) + "\n").encode()
    doc = json.loads(graph.serialize(format="json-ld", context=dict(PREFIXES), auto_compact=True))
    if isinstance(doc, dict) and isinstance(doc.get("@graph"), list):
        doc["@graph"].sort(key=lambda node: str(node.get("@id", "")))
    jsonld = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
    return {"text/turtle": turtle, "application/ld+json": jsonld, "application/n-triples": ntriples}


def choose_media_type(accept: str | None) -> str | None:
    """The representation for an Accept header (RFC 9110 q-values); None -> 406."""
    if not accept or not accept.strip():
        return "text/turtle"
    best: tuple[float, int, str] | None = None
    for i, part in enumerate(accept.split(",")[:50]):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        q = 1.0
        for param in fields[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if media in sd.MEDIA_TYPES:
            candidates = [media]
        elif media == "*/*":
            candidates = list(sd.MEDIA_TYPES)
        elif media == "text/*":
            candidates = ["text/turtle"]
        elif media == "application/*":
            candidates = ["application/ld+json", "application/n-triples"]
        else:
            continue
        specificity = 0 if "*" in media else 1
        for media_type in candidates[:1]:
            key = (q, specificity, media_type)
            if best is None or key[:2] > best[:2]:
                best = key
    return best[2] if best else None


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


# ------------------------------------------------------------------ the shell
@dataclass
class Document:
    bodies: dict[str, bytes]
    etags: dict[str, str]
    signatures: dict[str, str]
    triples: int
    offers: int


class StartupError(SetupError):
    """The node must not start (one line for people)."""


class SelfDescriptionService:
    """Builds, serves, validates and registers the node's self-description."""

    def __init__(self, node: Any) -> None:
        self.node = node
        settings = node.settings
        self.station_mode = settings.identity_mode == "station"
        self.station_url = settings.identity_station_url if self.station_mode else None
        self._key = None
        self._cert_thumb: str | None = None
        self._record: Json = {}
        self._version = 0
        self._built_version = -1
        self._doc: Document | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.registered_etag: str | None = None
        self._facts_built: NodeFacts | None = None
        self.last_error: str | None = None
        node.catalog.on_change.append(self.changed)

    # ------------------------------------------------------------- facts
    def _load_keys(self) -> None:
        from cryptography.hazmat.primitives import serialization

        from ..identity.jose import b64url
        from ..identity.keys import load_private_key

        keys = Path(self.node.settings.directory) / "keys"
        if (keys / "node.key").is_file():
            self._key = load_private_key(keys / "node.key")
        if (keys / "node.crt").is_file():
            from ..identity.pki import load_certificate
            der = load_certificate((keys / "node.crt").read_bytes()).public_bytes(serialization.Encoding.DER)
            self._cert_thumb = b64url(hashlib.sha256(der).digest())
        if self.station_mode:
            from ..identity.enrol import read_record
            self._record = read_record(Path(self.node.settings.directory))

    def facts(self) -> NodeFacts:
        settings = self.node.settings
        claims = dict(self._record)
        own = getattr(getattr(self.node.identity, "client", None), "claims", None) if self.station_mode else None
        if own:  # the newest word of the station: our own DAT
            claims.update({"organisation": own.get("organisation", claims.get("organisation")),
                           "jurisdiction": own.get("jurisdiction", claims.get("jurisdiction")),
                           "membership": own.get("membership", claims.get("membership")),
                           "status": own.get("membershipStatus", claims.get("status")),
                           "securityProfile": own.get("securityProfile", claims.get("securityProfile"))})
        if not self.station_mode:
            return NodeFacts(participant_id=settings.node.participant_id, name=settings.node.name,
                             public_url=settings.node.public_url, jurisdiction=settings.node.jurisdiction or None)
        return NodeFacts(
            participant_id=settings.node.participant_id, name=claims.get("organisation") or settings.node.name,
            public_url=settings.node.public_url, station_url=self.station_url,
            jurisdiction=claims.get("jurisdiction") or settings.node.jurisdiction or None,
            membership=tuple(claims.get("membership") or ()), membership_status=claims.get("status"),
            security_profile=claims.get("securityProfile") or "idsc:BASE_SECURITY_PROFILE")

    # ------------------------------------------------------------- build
    def changed(self) -> None:
        """catalog.on_change hook: rebuild (and re-register) soon."""
        self._version += 1
        self._changed.set()

    async def _rows(self) -> tuple[list, list, list]:
        from ..store.tables import assets, offers, policies

        catalog = self.node.catalog
        rows = await catalog.list_rows(assets)
        await self.node.certificates.annotate(rows)  # each certified dataset's certificate hash
        return (rows, await catalog.list_rows(policies), await catalog.list_rows(offers))

    async def current(self) -> Document:
        if self._doc is not None and self._built_version == self._version:
            return self._doc
        async with self._lock:
            if self._doc is None or self._built_version != self._version:
                version = self._version
                doc, report = await self._build()
                if report is not None and not report.conforms:
                    log.error("the self-description does not conform to the station's shapes: %s",
                              "; ".join(r["message"] for r in report.results[:5]))
                self._doc, self._built_version = doc, version
        return self._doc

    async def _build(self) -> tuple[Document, Any]:
        assets, policies, offers = await self._rows()
        facts = self.facts()
        now = dt.datetime.now(dt.timezone.utc)

        def work() -> tuple[Document, Any]:
            published = public_offers(assets, policies, offers, participant_id=facts.participant_id, now=now)
            graph = build_graph(facts, published)
            report = sd.validate(graph) if self.station_mode else None
            bodies = serialize_all(graph)
            signatures = {media: self._sign(body, media) for media, body in bodies.items()}
            doc = Document(bodies=bodies, etags={m: etag_of(b) for m, b in bodies.items()}, signatures=signatures,
                           triples=len(graph), offers=len(published))
            return doc, report

        self._facts_built = facts
        return await asyncio.to_thread(work)

    def _sign(self, body: bytes, media: str) -> str:
        if self._key is None:
            return ""
        from ..identity.jose import sign_detached

        headers = {"typ": "hks-sd+jws", "cty": media, "kid": self.node.settings.node.participant_id}
        if self._cert_thumb:
            headers["x5t#S256"] = self._cert_thumb
        return sign_detached(body, self._key, headers)

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> list:
        """Build (and in station mode validate) before serving; returns background coroutines."""
        self._load_keys()
        if not self.station_mode:
            return []
        client = getattr(self.node.identity, "client", None)
        if client is not None:
            client.on_token.append(self._own_claims_changed)
        async with self._lock:
            version = self._version
            doc, report = await self._build()
            if not report.conforms:
                first = report.results[0] if report.results else {"message": report.text[:300]}
                raise StartupError(f"the self-description does not conform to the station's shapes: "
                                   f"{first['message']} ({len(report.results)} violation(s))")
            self._doc, self._built_version = doc, version
        self._changed.set()
        return [self._register_loop()]

    def _own_claims_changed(self, claims: Json) -> None:
        """A new DAT: if the station's claims in it differ from what the document states, rebuild."""
        if self._facts_built is not None and self.facts() != self._facts_built:
            self.changed()

    async def _register_loop(self) -> None:
        delay = 1.0
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                doc = await self.current()
                if self._built_version == self._version and doc.etags["text/turtle"] != self.registered_etag:
                    await self._register(doc)
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except _Permanent as exc:
                self.last_error = str(exc)
                log.error("the station registry refused the self-description: %s", exc)
            except Exception as exc:  # noqa: BLE001 - transient: retry with backoff
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("could not register the self-description (%s); retrying in %.0f s", self.last_error, delay)
                try:
                    await asyncio.wait_for(self._changed.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                self._changed.set()
                delay = min(delay * 2, 60.0)

    async def _register(self, doc: Document) -> None:
        import aiohttp

        from ..bodies import read_limited

        body = doc.bodies["text/turtle"]
        issuer = await self.node.identity.client.trust.issuer()  # registry writes: a token for the station only
        headers = {"Authorization": await self.node.identity.outbound_authorization(issuer),
                   "Content-Type": "text/turtle", SIGNATURE_HEADER: doc.signatures["text/turtle"]}
        session = self.node.identity.client.trust.session
        assert session is not None
        async with session.post(f"{self.station_url}/registry/self-descriptions", data=body, headers=headers,
                                allow_redirects=False) as resp:
            answer = await read_limited(resp, 256 * 1024)
            if resp.status in (200, 201):
                self.registered_etag = doc.etags["text/turtle"]
                self.last_error = None
                log.info("registered the self-description with the station (%d offers)", doc.offers)
                return
            try:
                detail = orjson.loads(answer).get("error")
            except (orjson.JSONDecodeError, AttributeError):
                detail = answer[:200].decode(errors="replace")
            if resp.status == 400:
                raise _Permanent(f"{resp.status}: {detail}")
            raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status, message=str(detail))

    # ------------------------------------------------------------- HTTP
    async def handle(self, request: web.Request) -> web.Response:
        media = choose_media_type(request.headers.get("Accept"))
        vary = {"Vary": "Accept"}
        if media is None:
            return web.json_response({"error": "no acceptable representation; this node serves "
                                               + ", ".join(sd.MEDIA_TYPES)}, status=406, headers=vary)
        try:
            doc = await self.current()
        except Exception:  # noqa: BLE001 - never a half-built description
            log.exception("the self-description could not be built")
            return web.json_response({"error": "the self-description is not available"}, status=503, headers=vary)
        etag = doc.etags[media]
        headers = {**vary, "ETag": etag, "Cache-Control": "no-cache"}
        if doc.signatures.get(media):
            headers[SIGNATURE_HEADER] = doc.signatures[media]
        if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
            return web.Response(status=304, headers=headers)
        charset = "utf-8" if media == "text/turtle" else None
        return web.Response(body=doc.bodies[media], content_type=media, charset=charset, headers=headers)

    def status(self) -> Json:
        doc = self._doc
        return {"etag": doc.etags["text/turtle"] if doc else None,
                "registered": doc is not None and self.registered_etag == doc.etags["text/turtle"],
                "offers": doc.offers if doc else None, "lastError": self.last_error}


class _Permanent(NodeError):
    """The registry refused the document (400): retrying the same document will not help."""
