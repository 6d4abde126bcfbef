"""Vocabulary tables: ODRL 2.2, the station profile (hks:), IDS and DPV terms.

Everything here is data computed once at import; nothing reads files.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

ODRL = "http://www.w3.org/ns/odrl/2/"
HKS = "https://w3id.org/hks/ns#"
DPV = "https://w3id.org/dpv#"
PD = "https://w3id.org/dpv/pd#"
LOC = "https://w3id.org/dpv/loc#"
IDSC = "https://w3id.org/idsa/code/"
IDS = "https://w3id.org/idsa/core/"
XSD = "http://www.w3.org/2001/XMLSchema#"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
CC = "http://creativecommons.org/ns#"
VCARD = "http://www.w3.org/2006/vcard/ns#"
DCT = "http://purl.org/dc/terms/"
SKOS = "http://www.w3.org/2004/02/skos/core#"

#: Prefixes a policy may use even when its @context does not declare them.
#: None of them is a registered URI scheme, so reading ``hks:x`` as a compact
#: IRI cannot shadow a real absolute IRI.
WELL_KNOWN_PREFIXES: dict[str, str] = {
    "odrl": ODRL,
    "hks": HKS,
    "dpv": DPV,
    "pd": PD,
    "loc": LOC,
    "idsc": IDSC,
    "ids": IDS,
    "xsd": XSD,
    "rdf": RDF,
    "rdfs": RDFS,
    "cc": CC,
    "vcard": VCARD,
    "dct": DCT,
    "dc": DCT,
    "skos": SKOS,
}

#: The trap documented in reference/README.md: pyld >= 3 resolves bare values
#: such as "dateTime" against this base when none is given.
PYLD_DEFAULT_BASE = "http://example.org/base/"

_DISPLAY_PREFIXES = sorted(
    ((ns, p) for p, ns in WELL_KNOWN_PREFIXES.items() if p != "dc"),
    key=lambda x: -len(x[0]),
)


def compact(iri: str) -> str:
    """Shorten an IRI with the well-known prefixes, for display."""
    if not isinstance(iri, str):
        return str(iri)
    for ns, p in _DISPLAY_PREFIXES:
        if iri.startswith(ns) and len(iri) > len(ns):
            return f"{p}:{iri[len(ns):]}"
    return iri


def expand_curie(value: str) -> str:
    """Expand ``prefix:local`` with the well-known prefixes; leave others."""
    i = value.find(":")
    if i > 0 and not value.startswith("//", i + 1):
        ns = WELL_KNOWN_PREFIXES.get(value[:i])
        if ns is not None:
            return ns + value[i + 1 :]
    return value


def _known_curie(curie: str) -> str:
    """expand_curie for the package's own tables, which use only the well-known prefixes."""
    if curie.partition(":")[0] not in WELL_KNOWN_PREFIXES:
        raise ValueError(f"{curie!r} does not start with a well-known prefix")
    return expand_curie(curie)


def _iri_pairs(table: str) -> dict[str, str]:
    """Lines of ``prefix:term  prefix:term`` as {IRI: IRI}, in order."""
    pairs = {}
    for line in table.strip().splitlines():
        term, same = line.split()
        pairs[_known_curie(term)] = _known_curie(same)
    return pairs


def concept_table(table: str) -> dict[str, tuple[tuple[str, ...], str, bool]]:
    """Lines of ``concept | broader concepts (space-separated) | label [| special]`` (CURIEs) as
    {IRI: (broader IRIs, label, special)}, in order: how _dpv.py carries the DPV data."""
    concepts = {}
    for line in table.strip("\n").splitlines():
        concept, broader, label, *flag = line.split(" | ")
        if flag not in ([], ["special"]):
            raise ValueError(f"unexpected last column in {line!r}")
        concepts[_known_curie(concept)] = (tuple(_known_curie(b) for b in broader.split()), label, bool(flag))
    return concepts


def suggest(word: str, candidates) -> str:
    """' (did you mean X?)' or ''."""
    m = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {m[0]!r}?)" if m else ""


# --------------------------------------------------------------------------
# Policy classes and structural terms
# --------------------------------------------------------------------------

POLICY_CLASSES = {
    ODRL + n: n
    for n in ("Policy", "Set", "Offer", "Agreement", "Privacy", "Request", "Ticket", "Assertion")
}

CONFLICT_TERMS = {ODRL + "perm": "perm", ODRL + "prohibit": "prohibit", ODRL + "invalid": "invalid"}

#: ODRL properties the compiler knows. Any other property in the ODRL
#: namespace is a typo or an unsupported feature and is refused.
ODRL_PROPERTIES = {
    ODRL + n
    for n in (
        "uid permission prohibition obligation duty remedy consequence action target "
        "assignee assigner constraint refinement leftOperand operator rightOperand "
        "rightOperandReference dataType unit status and or xone andSequence profile "
        "conflict inheritFrom source partOf hasPolicy output relation function "
        "informedParty informingParty attributedParty attributingParty compensatedParty "
        "compensatingParty consentingParty consentedParty contractingParty contractedParty "
        "trackingParty trackedParty assigneeOf assignerOf implies includedIn"
    ).split()
}

PARTY_FUNCTIONS = {
    ODRL + n: n
    for n in (
        "informedParty informingParty attributedParty attributingParty compensatedParty "
        "compensatingParty consentingParty consentedParty contractingParty contractedParty "
        "trackingParty trackedParty"
    ).split()
}

LOGICAL_OPERANDS = {ODRL + n: n for n in ("and", "or", "xone", "andSequence")}

OPERATORS = {
    ODRL + n: n
    for n in ("eq", "neq", "lt", "lteq", "gt", "gteq", "isA", "hasPart", "isPartOf", "isAllOf", "isAnyOf", "isNoneOf")
}
#: Older copies of the ODRL JSON-LD context map "neq" to odrl:neg (a typo the
#: W3C fixed on 2025-04-10). Accepted as neq.
OPERATOR_ALIASES = {ODRL + "neg": "neq"}
SET_OPERATORS = frozenset({"isAnyOf", "isNoneOf", "isAllOf", "isPartOf", "hasPart"})
ORDER_OPERATORS = frozenset({"lt", "lteq", "gt", "gteq"})

POLICY_USAGE = ODRL + "policyUsage"

# --------------------------------------------------------------------------
# Actions: includedIn hierarchy and exactMatch (deprecated -> current)
# --------------------------------------------------------------------------

_USE_CHILDREN = (
    "grantUse compensate acceptTracking aggregate annotate anonymize archive attribute "
    "concurrentUse delete derive digitize distribute ensureExclusivity execute include "
    "index inform install modify move nextPolicy obtainConsent play present print read "
    "reproduce reviewPolicy stream synchronize textToSpeech transform translate uninstall "
    "watermark obtainConsent"
).split()

ACTION_PARENT: dict[str, tuple[str, ...]] = {ODRL + a: (ODRL + "use",) for a in _USE_CHILDREN}
ACTION_PARENT.update(
    {
        ODRL + "use": (),
        ODRL + "transfer": (),
        ODRL + "display": (ODRL + "play",),
        ODRL + "extract": (ODRL + "reproduce",),
        ODRL + "give": (ODRL + "transfer",),
        ODRL + "sell": (ODRL + "transfer",),
        # deprecated ODRL actions without a replacement: only exact matches
        ODRL + "lease": (),
        ODRL + "lend": (),
        ODRL + "preview": (),
        ODRL + "secondaryUse": (),
        ODRL + "adHocShare": (),
        ODRL + "extractChar": (),
        ODRL + "extractPage": (),
        ODRL + "extractWord": (),
    }
)
for _cc in ("Reproduction", "Distribution", "DerivativeWorks", "CommercialUse", "Notice", "Attribution",
            "ShareAlike", "Sharing", "SourceCode"):
    ACTION_PARENT[CC + _cc] = (ODRL + "use",)
# station profile duties
ACTION_PARENT.update(
    {
        HKS + "log": (ODRL + "use",),
        HKS + "drop": (ODRL + "modify",),
        HKS + "pseudonymise": (ODRL + "modify",),
        IDSC + "REPLACE": (ODRL + "modify",),
        HKS + "compute": (ODRL + "use",),
        HKS + "aggregate": (ODRL + "use",),
    }
)

#: skos:exactMatch from ODRL22.ttl (deprecated term -> its replacement), plus
#: IDS spellings of the same actions.
ACTION_EXACT: dict[str, str] = _iri_pairs("""
odrl:append         odrl:modify
odrl:appendTo       odrl:modify
odrl:write          odrl:modify
odrl:writeTo        odrl:modify
odrl:copy           odrl:reproduce
odrl:export         odrl:transform
odrl:license        odrl:grantUse
odrl:pay            odrl:compensate
odrl:attachPolicy   cc:Notice
odrl:attachSource   cc:SourceCode
odrl:shareAlike     cc:ShareAlike
odrl:commercialize  cc:CommercialUse
odrl:share          cc:Sharing
idsc:log            hks:log
idsc:LOG            hks:log
idsc:USE            odrl:use
idsc:DELETE         odrl:delete
idsc:NOTIFY         odrl:inform
hks:notify          odrl:inform
hks:pseudonymize    hks:pseudonymise
odrl:anonymise      odrl:anonymize
""")

KNOWN_ACTIONS = frozenset(ACTION_PARENT) | frozenset(ACTION_EXACT)


def canonical_action(iri: str) -> str:
    return ACTION_EXACT.get(iri, iri)


def _action_ancestors() -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}

    def anc(a: str, seen=()) -> frozenset[str]:
        if a in out:
            return out[a]
        acc = {a}
        for p in ACTION_PARENT.get(a, ()):
            if p not in seen:
                acc |= anc(p, seen + (a,))
        out[a] = frozenset(acc)
        return out[a]

    for a in ACTION_PARENT:
        anc(a)
    return out


#: action -> itself and every action it is (transitively) included in
ACTION_ANCESTORS = _action_ancestors()


def action_ancestors(iri: str) -> frozenset[str]:
    c = canonical_action(iri)
    return ACTION_ANCESTORS.get(c) or frozenset((c,))


def resolve_bare_action(word: str) -> str | None:
    """Map a bare action name ("use", "log") to an IRI, or None."""
    for ns in (ODRL, HKS, CC):
        if ns + word in KNOWN_ACTIONS:
            return ns + word
    return None


# --------------------------------------------------------------------------
# Left operands
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeftOperand:
    iri: str
    label: str
    #: how its value is obtained and compared:
    #: datetime | elapsed | count | nominal | ordinal | set | duration | event | generic | parameter
    kind: str
    #: Context attribute that supplies the value (None: Context.operands)
    field: str | None = None
    #: value domain for nominal/set kinds: jurisdiction | purpose | category | iri | profile
    domain: str = "iri"
    #: how a missing value is described to a person
    missing: str = ""


def _lo(name: str, *a, **kw) -> LeftOperand:
    return LeftOperand(name, *a, **kw)


_LEFT: list[LeftOperand] = [
    _lo(ODRL + "dateTime", "Time of the request", "datetime", "now",
        missing="The time of the request was not supplied"),
    _lo(ODRL + "elapsedTime", "Time since the agreement", "elapsed", "agreement_time",
        missing="The time of the agreement (or of the request) is not known"),
    _lo(ODRL + "count", "Use number", "count", "use_count",
        missing="The usage counter for this agreement was not supplied"),
    _lo(ODRL + "purpose", "Declared purpose", "set", "purpose", "purpose",
        missing="The requester declared no purpose"),
    _lo(ODRL + "spatial", "Processing location", "nominal", "processing_location", "jurisdiction",
        missing="The location where the data will be processed was not supplied"),
    _lo(ODRL + "recipient", "Requesting organisation", "nominal", "organisation",
        missing="The requesting organisation is not known"),
    _lo(ODRL + "systemDevice", "Requesting connector", "nominal", "connector",
        missing="The requesting connector is not known"),
    _lo(ODRL + "event", "Event", "event", "events",
        missing="The state of the event is not known"),
    _lo(HKS + "recipientJurisdiction", "Recipient jurisdiction", "nominal", "recipient_jurisdiction",
        "jurisdiction", missing="The recipient's jurisdiction is not in its verified claims"),
    _lo(HKS + "dataCategory", "Personal-data categories of the asset", "set", "data_categories", "category",
        missing="The asset's personal-data categories are not catalogued"),
    _lo(HKS + "securityProfile", "Connector security profile", "ordinal", "security_profile", "profile",
        missing="The requesting connector's security profile is not in its token"),
    _lo(HKS + "membership", "Station membership", "set", "membership",
        missing="The requester's station memberships are not known"),
    _lo(HKS + "role", "Role", "set", "roles", missing="The requester's roles are not known"),
    _lo(HKS + "organisation", "Requesting organisation", "nominal", "organisation",
        missing="The requesting organisation is not in its verified claims"),
    _lo(HKS + "connector", "Requesting connector", "nominal", "connector",
        missing="The requesting connector is not known"),
    _lo(HKS + "retentionPeriod", "Declared retention period", "duration", "retention_period",
        missing="The requester declared no retention period"),
    # parameters: only meaningful in refinements of duties
    _lo(HKS + "field", "Field", "parameter"),
    _lo(HKS + "groupByColumn", "Group-by column", "parameter"),
    _lo(HKS + "aggregateColumn", "Aggregated column", "parameter"),
    _lo(HKS + "aggregateFunction", "Aggregate function", "parameter"),
    _lo(HKS + "minGroupSize", "Minimum group size", "parameter"),
    _lo(HKS + "maxRows", "Maximum rows returned", "parameter"),
    _lo(HKS + "epsilonPerQuery", "Privacy budget per computation", "parameter"),
    _lo(HKS + "epsilonTotal", "Total privacy budget", "parameter"),
    _lo(IDSC + "JSON_PATH", "JSON path", "parameter"),
    _lo(IDSC + "REPLACE_WITH", "Replacement", "parameter"),
    _lo(IDSC + "LOG_LEVEL", "Log level", "parameter"),
    _lo(IDSC + "NOTIFICATION_LEVEL", "Notification level", "parameter"),
    _lo(IDSC + "ENDPOINT", "Endpoint", "parameter"),
]

#: ODRL 2.2 left operands without a dedicated Context field: their values come
#: from Context.operands (keyed by IRI, compact IRI or bare name).
_GENERIC_ODRL = {
    "absolutePosition": "Absolute position",
    "absoluteSpatialPosition": "Absolute spatial position",
    "absoluteTemporalPosition": "Absolute temporal position",
    "absoluteSize": "Absolute size",
    "delayPeriod": "Delay period",
    "deliveryChannel": "Delivery channel",
    "device": "Device",
    "fileFormat": "File format",
    "industry": "Industry",
    "language": "Language",
    "media": "Media",
    "meteredTime": "Metered time",
    "payAmount": "Payment amount",
    "percentage": "Percentage",
    "product": "Product",
    "relativePosition": "Relative position",
    "relativeSpatialPosition": "Relative spatial position",
    "relativeTemporalPosition": "Relative temporal position",
    "relativeSize": "Relative size",
    "resolution": "Resolution",
    "spatialCoordinates": "Spatial coordinates",
    "system": "System",
    "timeInterval": "Recurring time interval",
    "unitOfCount": "Unit of count",
    "version": "Version",
    "virtualLocation": "Virtual location",
}
for _n, _label in _GENERIC_ODRL.items():
    _LEFT.append(_lo(ODRL + _n, _label, "generic", missing=f"No value for {_label.lower()} was supplied"))

LEFT_OPERANDS: dict[str, LeftOperand] = {lo.iri: lo for lo in _LEFT}

#: other spellings of the same left operands
LEFT_OPERAND_ALIASES: dict[str, str] = _iri_pairs("""
dpv:hasPersonalData          hks:dataCategory
dpv:hasPurpose               odrl:purpose
dpv:hasRecipient             hks:organisation
idsc:CONNECTOR               hks:connector
idsc:SYSTEM                  hks:connector
idsc:SECURITY_LEVEL          hks:securityProfile
idsc:PURPOSE                 odrl:purpose
idsc:COUNT                   odrl:count
idsc:ELAPSED_TIME            odrl:elapsedTime
idsc:POLICY_EVALUATION_TIME  odrl:dateTime
vcard:hasRole                hks:role
idsc:ROLE                    hks:role
""")


def resolve_bare_left_operand(word: str) -> str | None:
    for ns in (ODRL, HKS):
        if ns + word in LEFT_OPERANDS:
            return ns + word
    return None


def resolve_bare_operator(word: str) -> str | None:
    if ODRL + word in OPERATORS or ODRL + word in OPERATOR_ALIASES:
        return ODRL + word
    return None


# --------------------------------------------------------------------------
# Security profiles (IDS): both spellings, ordered
# --------------------------------------------------------------------------

SECURITY_PROFILES: dict[str, tuple[str, int]] = {}
for _canon, _alt, _rank in (
    ("BASE_SECURITY_PROFILE", "BASE_CONNECTOR_SECURITY_PROFILE", 1),
    ("TRUST_SECURITY_PROFILE", "TRUSTED_CONNECTOR_SECURITY_PROFILE", 2),
    ("TRUST_PLUS_SECURITY_PROFILE", "TRUSTED_CONNECTOR_PLUS_SECURITY_PROFILE", 3),
):
    for _s in (_canon, _alt):
        SECURITY_PROFILES[IDSC + _s] = (IDSC + _canon, _rank)
        SECURITY_PROFILES[_s] = (IDSC + _canon, _rank)
        SECURITY_PROFILES["idsc:" + _s] = (IDSC + _canon, _rank)

#: human-facing description per duty kind
DUTY_KIND_LABELS = {
    "log": "log the access to the clearing house",
    "notify": "notify a party",
    "drop-fields": "drop fields in transit",
    "pseudonymise-fields": "pseudonymise fields in transit",
    "aggregate-only": "release only checked aggregates",
    "anonymise": "anonymise in transit",
    "replace": "replace values in transit",
    "watermark": "watermark the data",
    "delete": "delete the data",
    "next-policy": "pass the data on only under a given policy",
    "attribute": "attribute the source",
    "obtain-consent": "hold the data subjects' consent",
    "compensate": "pay",
    "other": "perform an action",
}
