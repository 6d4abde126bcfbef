"""JSON-LD contexts the policy parser knows without fetching anything.

* ODRL 2.2 (http://www.w3.org/ns/odrl.jsonld, w3c/poe e3a45ad6) with the
  ``neq`` -> ``odrl:neg`` typo corrected to ``odrl:neq`` (fixed at the W3C on
  2025-04-10; older copies still carry it), and ``industry`` mapped to
  ``odrl:industry`` instead of upstream's ``odrl:industry:`` (stray colon).
* DSP 2024/1 (https://w3id.org/dspace/2024/1/context.json) as published.
* DSP 2025-1 (https://w3id.org/dspace/2025/1/context.jsonld): its prefixes plus
  the imported ODRL profile (https://w3id.org/dspace/2025/1/odrl-profile.jsonld),
  which the message types import and propagate into the policies they carry.
  The terms of the type-scoped message contexts are merged in flat (the
  policy part is what matters here; their definitions do not clash).
* The station policy context (https://w3id.org/hks/context.jsonld), identical
  to vocab/hks/context.jsonld (a test checks this).

Generated; do not edit by hand.
"""

from __future__ import annotations

from typing import Any

ODRL_CONTEXT_URL = "http://www.w3.org/ns/odrl.jsonld"
DSP_2024_1_CONTEXT_URL = "https://w3id.org/dspace/2024/1/context.json"
DSP_2025_1_CONTEXT_URL = "https://w3id.org/dspace/2025/1/context.jsonld"
DSP_2025_1_ODRL_PROFILE_URL = "https://w3id.org/dspace/2025/1/odrl-profile.jsonld"
HKS_CONTEXT_URL = "https://w3id.org/hks/context.jsonld"

# fmt: off
ODRL_CONTEXT: dict[str, Any] = {
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "schema": "http://schema.org/",
    "cc": "http://creativecommons.org/ns#",
    "uid": "@id",
    "type": "@type",
    "Policy": "odrl:Policy",
    "Rule": "odrl:Rule",
    "profile": {
        "@type": "@id",
        "@id": "odrl:profile"
    },
    "inheritFrom": {
        "@type": "@id",
        "@id": "odrl:inheritFrom"
    },
    "ConflictTerm": "odrl:ConflictTerm",
    "conflict": {
        "@type": "@vocab",
        "@id": "odrl:conflict"
    },
    "perm": "odrl:perm",
    "prohibit": "odrl:prohibit",
    "invalid": "odrl:invalid",
    "Agreement": "odrl:Agreement",
    "Assertion": "odrl:Assertion",
    "Offer": "odrl:Offer",
    "Privacy": "odrl:Privacy",
    "Request": "odrl:Request",
    "Set": "odrl:Set",
    "Ticket": "odrl:Ticket",
    "Asset": "odrl:Asset",
    "AssetCollection": "odrl:AssetCollection",
    "relation": {
        "@type": "@id",
        "@id": "odrl:relation"
    },
    "hasPolicy": {
        "@type": "@id",
        "@id": "odrl:hasPolicy"
    },
    "target": {
        "@type": "@id",
        "@id": "odrl:target"
    },
    "output": {
        "@type": "@id",
        "@id": "odrl:output"
    },
    "partOf": {
        "@type": "@id",
        "@id": "odrl:partOf"
    },
    "source": {
        "@type": "@id",
        "@id": "odrl:source"
    },
    "Party": "odrl:Party",
    "PartyCollection": "odrl:PartyCollection",
    "function": {
        "@type": "@vocab",
        "@id": "odrl:function"
    },
    "PartyScope": "odrl:PartyScope",
    "assignee": {
        "@type": "@id",
        "@id": "odrl:assignee"
    },
    "assigner": {
        "@type": "@id",
        "@id": "odrl:assigner"
    },
    "assigneeOf": {
        "@type": "@id",
        "@id": "odrl:assigneeOf"
    },
    "assignerOf": {
        "@type": "@id",
        "@id": "odrl:assignerOf"
    },
    "attributedParty": {
        "@type": "@id",
        "@id": "odrl:attributedParty"
    },
    "attributingParty": {
        "@type": "@id",
        "@id": "odrl:attributingParty"
    },
    "compensatedParty": {
        "@type": "@id",
        "@id": "odrl:compensatedParty"
    },
    "compensatingParty": {
        "@type": "@id",
        "@id": "odrl:compensatingParty"
    },
    "consentingParty": {
        "@type": "@id",
        "@id": "odrl:consentingParty"
    },
    "consentedParty": {
        "@type": "@id",
        "@id": "odrl:consentedParty"
    },
    "informedParty": {
        "@type": "@id",
        "@id": "odrl:informedParty"
    },
    "informingParty": {
        "@type": "@id",
        "@id": "odrl:informingParty"
    },
    "trackingParty": {
        "@type": "@id",
        "@id": "odrl:trackingParty"
    },
    "trackedParty": {
        "@type": "@id",
        "@id": "odrl:trackedParty"
    },
    "contractingParty": {
        "@type": "@id",
        "@id": "odrl:contractingParty"
    },
    "contractedParty": {
        "@type": "@id",
        "@id": "odrl:contractedParty"
    },
    "Action": "odrl:Action",
    "action": {
        "@type": "@vocab",
        "@id": "odrl:action"
    },
    "includedIn": {
        "@type": "@id",
        "@id": "odrl:includedIn"
    },
    "implies": {
        "@type": "@id",
        "@id": "odrl:implies"
    },
    "Permission": "odrl:Permission",
    "permission": {
        "@type": "@id",
        "@id": "odrl:permission"
    },
    "Prohibition": "odrl:Prohibition",
    "prohibition": {
        "@type": "@id",
        "@id": "odrl:prohibition"
    },
    "obligation": {
        "@type": "@id",
        "@id": "odrl:obligation"
    },
    "use": "odrl:use",
    "grantUse": "odrl:grantUse",
    "aggregate": "odrl:aggregate",
    "annotate": "odrl:annotate",
    "anonymize": "odrl:anonymize",
    "archive": "odrl:archive",
    "concurrentUse": "odrl:concurrentUse",
    "derive": "odrl:derive",
    "digitize": "odrl:digitize",
    "display": "odrl:display",
    "distribute": "odrl:distribute",
    "execute": "odrl:execute",
    "extract": "odrl:extract",
    "give": "odrl:give",
    "index": "odrl:index",
    "install": "odrl:install",
    "modify": "odrl:modify",
    "move": "odrl:move",
    "play": "odrl:play",
    "present": "odrl:present",
    "print": "odrl:print",
    "read": "odrl:read",
    "reproduce": "odrl:reproduce",
    "sell": "odrl:sell",
    "stream": "odrl:stream",
    "textToSpeech": "odrl:textToSpeech",
    "transfer": "odrl:transfer",
    "transform": "odrl:transform",
    "translate": "odrl:translate",
    "Duty": "odrl:Duty",
    "duty": {
        "@type": "@id",
        "@id": "odrl:duty"
    },
    "consequence": {
        "@type": "@id",
        "@id": "odrl:consequence"
    },
    "remedy": {
        "@type": "@id",
        "@id": "odrl:remedy"
    },
    "acceptTracking": "odrl:acceptTracking",
    "attribute": "odrl:attribute",
    "compensate": "odrl:compensate",
    "delete": "odrl:delete",
    "ensureExclusivity": "odrl:ensureExclusivity",
    "include": "odrl:include",
    "inform": "odrl:inform",
    "nextPolicy": "odrl:nextPolicy",
    "obtainConsent": "odrl:obtainConsent",
    "reviewPolicy": "odrl:reviewPolicy",
    "uninstall": "odrl:uninstall",
    "watermark": "odrl:watermark",
    "Constraint": "odrl:Constraint",
    "LogicalConstraint": "odrl:LogicalConstraint",
    "constraint": {
        "@type": "@id",
        "@id": "odrl:constraint"
    },
    "refinement": {
        "@type": "@id",
        "@id": "odrl:refinement"
    },
    "Operator": "odrl:Operator",
    "operator": {
        "@type": "@vocab",
        "@id": "odrl:operator"
    },
    "RightOperand": "odrl:RightOperand",
    "rightOperand": "odrl:rightOperand",
    "rightOperandReference": {
        "@type": "xsd:anyURI",
        "@id": "odrl:rightOperandReference"
    },
    "LeftOperand": "odrl:LeftOperand",
    "leftOperand": {
        "@type": "@vocab",
        "@id": "odrl:leftOperand"
    },
    "unit": "odrl:unit",
    "dataType": {
        "@type": "xsd:anyType",
        "@id": "odrl:datatype"
    },
    "status": "odrl:status",
    "absolutePosition": "odrl:absolutePosition",
    "absoluteSpatialPosition": "odrl:absoluteSpatialPosition",
    "absoluteTemporalPosition": "odrl:absoluteTemporalPosition",
    "absoluteSize": "odrl:absoluteSize",
    "count": "odrl:count",
    "dateTime": "odrl:dateTime",
    "delayPeriod": "odrl:delayPeriod",
    "deliveryChannel": "odrl:deliveryChannel",
    "elapsedTime": "odrl:elapsedTime",
    "event": "odrl:event",
    "fileFormat": "odrl:fileFormat",
    "industry": "odrl:industry",
    "language": "odrl:language",
    "media": "odrl:media",
    "meteredTime": "odrl:meteredTime",
    "payAmount": "odrl:payAmount",
    "percentage": "odrl:percentage",
    "product": "odrl:product",
    "purpose": "odrl:purpose",
    "recipient": "odrl:recipient",
    "relativePosition": "odrl:relativePosition",
    "relativeSpatialPosition": "odrl:relativeSpatialPosition",
    "relativeTemporalPosition": "odrl:relativeTemporalPosition",
    "relativeSize": "odrl:relativeSize",
    "resolution": "odrl:resolution",
    "spatial": "odrl:spatial",
    "spatialCoordinates": "odrl:spatialCoordinates",
    "systemDevice": "odrl:systemDevice",
    "timeInterval": "odrl:timeInterval",
    "unitOfCount": "odrl:unitOfCount",
    "version": "odrl:version",
    "virtualLocation": "odrl:virtualLocation",
    "eq": "odrl:eq",
    "gt": "odrl:gt",
    "gteq": "odrl:gteq",
    "lt": "odrl:lt",
    "lteq": "odrl:lteq",
    "neq": "odrl:neq",
    "isA": "odrl:isA",
    "hasPart": "odrl:hasPart",
    "isPartOf": "odrl:isPartOf",
    "isAllOf": "odrl:isAllOf",
    "isAnyOf": "odrl:isAnyOf",
    "isNoneOf": "odrl:isNoneOf",
    "or": "odrl:or",
    "xone": "odrl:xone",
    "and": "odrl:and",
    "andSequence": "odrl:andSequence",
    "policyUsage": "odrl:policyUsage"
}

DSP_2024_1_CONTEXT: dict[str, Any] = {
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "cred": "https://www.w3.org/2018/credentials#",
    "sec": "https://w3id.org/security#",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "cc": "http://creativecommons.org/ns#",
    "dct": "http://purl.org/dc/terms/",
    "dcat": "http://www.w3.org/ns/dcat#",
    "dspace": "https://w3id.org/dspace/2024/1/",
    "dct:title": {
        "@language": "en"
    },
    "dct:creator": {
        "@type": "@id"
    },
    "dct:description": {
        "@container": "@set"
    },
    "dct:issued": {
        "@type": "xsd:dateTime"
    },
    "dct:modified": {
        "@type": "xsd:dateTime"
    },
    "dcat:byteSize": {
        "@type": "xsd:decimal"
    },
    "dcat:distribution": {
        "@container": "@set"
    },
    "dcat:theme": {
        "@type": "@id"
    },
    "dcat:conformsTo": {
        "@type": "@id"
    },
    "dcat:dataset": {
        "@container": "@set"
    },
    "dcat:endpointURL": {
        "@type": "xsd:anyURI"
    },
    "dcat:endpointDescription": {
        "@type": "xsd:anyURI"
    },
    "dcat:keyword": {
        "@container": "@set"
    },
    "dcat:servesDataset": {
        "@container": "@set"
    },
    "dcat:service": {
        "@container": "@set"
    },
    "dcat:accessService": {
        "@container": "@set"
    },
    "dspace:agreementId": {
        "@type": "@id"
    },
    "dspace:dataset": {
        "@type": "@id"
    },
    "dspace:transportType": {
        "@type": "@id"
    },
    "dspace:state": {
        "@type": "@id"
    },
    "dspace:providerId": {
        "@type": "@id"
    },
    "dspace:consumerId": {
        "@type": "@id"
    },
    "dspace:participantId": {
        "@type": "@id"
    },
    "dspace:reason": {
        "@container": "@set"
    },
    "dspace:catalog": {
        "@container": "@set"
    },
    "dspace:filter": {
        "@container": "@set"
    },
    "dspace:timestamp": {
        "@type": "xsd:dateTime"
    },
    "dspace:callbackAddress": {
        "@type": "xsd:anyURI"
    },
    "dspace:endpointProperties": {
        "@container": "@set"
    },
    "foaf:homepage": {
        "@type": "xsd:anyURI"
    },
    "odrl:hasPolicy": {
        "@container": "@set"
    },
    "odrl:permission": {
        "@container": "@set"
    },
    "odrl:prohibition": {
        "@container": "@set"
    },
    "odrl:obligation": {
        "@container": "@set"
    },
    "odrl:duty": {
        "@container": "@set"
    },
    "odrl:constraint": {
        "@container": "@set"
    },
    "odrl:action": {
        "@type": "@id"
    },
    "odrl:target": {
        "@type": "@id"
    },
    "odrl:leftOperand": {
        "@type": "@id"
    },
    "odrl:operator": {
        "@type": "@id"
    },
    "odrl:rightOperandReference": {
        "@type": "@id"
    },
    "odrl:profile": {
        "@container": "@set"
    },
    "odrl:assigner": {
        "@type": "@id"
    },
    "odrl:assignee": {
        "@type": "@id"
    }
}

DSP_2025_1_ODRL_PROFILE: dict[str, Any] = {
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "Policy": "odrl:Policy",
    "Rule": "odrl:Rule",
    "profile": {
        "@type": "@id",
        "@id": "odrl:profile"
    },
    "prohibit": "odrl:prohibit",
    "Agreement": "odrl:Agreement",
    "Assertion": "odrl:Assertion",
    "Offer": "odrl:Offer",
    "Set": "odrl:Set",
    "Asset": "odrl:Asset",
    "hasPolicy": {
        "@type": "@id",
        "@id": "odrl:hasPolicy"
    },
    "target": {
        "@type": "@id",
        "@id": "odrl:target"
    },
    "assignee": {
        "@type": "@id",
        "@id": "odrl:assignee"
    },
    "assigner": {
        "@type": "@id",
        "@id": "odrl:assigner"
    },
    "Action": "odrl:Action",
    "action": {
        "@type": "@vocab",
        "@id": "odrl:action"
    },
    "Permission": "odrl:Permission",
    "permission": {
        "@type": "@id",
        "@id": "odrl:permission",
        "@container": "@set"
    },
    "Prohibition": "odrl:Prohibition",
    "prohibition": {
        "@type": "@id",
        "@id": "odrl:prohibition",
        "@container": "@set"
    },
    "obligation": {
        "@type": "@id",
        "@id": "odrl:obligation",
        "@container": "@set"
    },
    "use": "odrl:use",
    "Duty": "odrl:Duty",
    "duty": {
        "@type": "@id",
        "@id": "odrl:duty",
        "@container": "@set"
    },
    "Constraint": "odrl:Constraint",
    "constraint": {
        "@type": "@id",
        "@id": "odrl:constraint",
        "@container": "@set"
    },
    "Operator": "odrl:Operator",
    "operator": {
        "@type": "@vocab",
        "@id": "odrl:operator"
    },
    "RightOperand": "odrl:RightOperand",
    "rightOperand": "odrl:rightOperand",
    "LeftOperand": "odrl:LeftOperand",
    "leftOperand": {
        "@type": "@vocab",
        "@id": "odrl:leftOperand"
    },
    "eq": "odrl:eq",
    "gt": "odrl:gt",
    "gteq": "odrl:gteq",
    "lt": "odrl:lt",
    "lteq": "odrl:lteq",
    "neq": "odrl:neq",
    "isA": "odrl:isA",
    "hasPart": "odrl:hasPart",
    "isPartOf": "odrl:isPartOf",
    "isAllOf": "odrl:isAllOf",
    "isAnyOf": "odrl:isAnyOf",
    "isNoneOf": "odrl:isNoneOf",
    "or": "odrl:or",
    "xone": "odrl:xone",
    "and": "odrl:and",
    "andSequence": "odrl:andSequence"
}

DSP_2025_1_CONTEXT: dict[str, Any] = {
    "@version": 1.1,
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dct": "http://purl.org/dc/terms/",
    "dcat": "http://www.w3.org/ns/dcat#",
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "dspace": "https://w3id.org/dspace/2025/1/",
    "ACCEPTED": "dspace:ACCEPTED",
    "FINALIZED": "dspace:FINALIZED",
    "REQUESTED": "dspace:REQUESTED",
    "STARTED": "dspace:STARTED",
    "COMPLETED": "dspace:COMPLETED",
    "SUSPENDED": "dspace:SUSPENDED",
    "TERMINATED": "dspace:TERMINATED",
    "OFFERED": "dspace:OFFERED",
    "AGREED": "dspace:AGREED",
    "VERIFIED": "dspace:VERIFIED",
    "Policy": "odrl:Policy",
    "Rule": "odrl:Rule",
    "profile": {
        "@type": "@id",
        "@id": "odrl:profile"
    },
    "prohibit": "odrl:prohibit",
    "Agreement": "odrl:Agreement",
    "Assertion": "odrl:Assertion",
    "Offer": "odrl:Offer",
    "Set": "odrl:Set",
    "Asset": "odrl:Asset",
    "hasPolicy": {
        "@type": "@id",
        "@id": "odrl:hasPolicy"
    },
    "target": {
        "@type": "@id",
        "@id": "odrl:target"
    },
    "assignee": {
        "@type": "@id",
        "@id": "odrl:assignee"
    },
    "assigner": {
        "@type": "@id",
        "@id": "odrl:assigner"
    },
    "Action": "odrl:Action",
    "action": {
        "@type": "@vocab",
        "@id": "odrl:action"
    },
    "Permission": "odrl:Permission",
    "permission": {
        "@type": "@id",
        "@id": "odrl:permission",
        "@container": "@set"
    },
    "Prohibition": "odrl:Prohibition",
    "prohibition": {
        "@type": "@id",
        "@id": "odrl:prohibition",
        "@container": "@set"
    },
    "obligation": {
        "@type": "@id",
        "@id": "odrl:obligation",
        "@container": "@set"
    },
    "use": "odrl:use",
    "Duty": "odrl:Duty",
    "duty": {
        "@type": "@id",
        "@id": "odrl:duty",
        "@container": "@set"
    },
    "Constraint": "odrl:Constraint",
    "constraint": {
        "@type": "@id",
        "@id": "odrl:constraint",
        "@container": "@set"
    },
    "Operator": "odrl:Operator",
    "operator": {
        "@type": "@vocab",
        "@id": "odrl:operator"
    },
    "RightOperand": "odrl:RightOperand",
    "rightOperand": "odrl:rightOperand",
    "LeftOperand": "odrl:LeftOperand",
    "leftOperand": {
        "@type": "@vocab",
        "@id": "odrl:leftOperand"
    },
    "eq": "odrl:eq",
    "gt": "odrl:gt",
    "gteq": "odrl:gteq",
    "lt": "odrl:lt",
    "lteq": "odrl:lteq",
    "neq": "odrl:neq",
    "isA": "odrl:isA",
    "hasPart": "odrl:hasPart",
    "isPartOf": "odrl:isPartOf",
    "isAllOf": "odrl:isAllOf",
    "isAnyOf": "odrl:isAnyOf",
    "isNoneOf": "odrl:isNoneOf",
    "or": "odrl:or",
    "xone": "odrl:xone",
    "and": "odrl:and",
    "andSequence": "odrl:andSequence",
    "DatasetRequestMessage": "dspace:DatasetRequestMessage",
    "dataset": "dspace:dataset",
    "CatalogRequestMessage": "dspace:CatalogRequestMessage",
    "filter": {
        "@id": "dspace:filter",
        "@container": "@set"
    },
    "CatalogError": "dspace:CatalogError",
    "code": "dspace:code",
    "reason": {
        "@id": "dspace:reason",
        "@container": "@set"
    },
    "ContractRequestMessage": "dspace:ContractRequestMessage",
    "callbackAddress": "dspace:callbackAddress",
    "providerPid": {
        "@type": "@id",
        "@id": "dspace:providerPid"
    },
    "consumerPid": {
        "@type": "@id",
        "@id": "dspace:consumerPid"
    },
    "offer": {
        "@type": "@id",
        "@id": "dspace:offer"
    },
    "ContractOfferMessage": "dspace:ContractOfferMessage",
    "ContractAgreementMessage": "dspace:ContractAgreementMessage",
    "agreement": {
        "@id": "dspace:agreement",
        "@type": "@id"
    },
    "timestamp": "dspace:timestamp",
    "ContractAgreementVerificationMessage": "dspace:ContractAgreementVerificationMessage",
    "ContractNegotiationEventMessage": "dspace:ContractNegotiationEventMessage",
    "eventType": {
        "@type": "@vocab",
        "@id": "dspace:eventType"
    },
    "ContractNegotiationTerminationMessage": "dspace:ContractNegotiationTerminationMessage",
    "ContractNegotiation": "dspace:ContractNegotiation",
    "state": {
        "@type": "@vocab",
        "@id": "dspace:state"
    },
    "ContractNegotiationError": "dspace:ContractNegotiationError",
    "TransferRequestMessage": "dspace:TransferRequestMessage",
    "dataAddress": "dspace:dataAddress",
    "format": {
        "@type": "@vocab",
        "@id": "dct:format"
    },
    "agreementId": {
        "@type": "@id",
        "@id": "dspace:agreementId"
    },
    "TransferStartMessage": "dspace:TransferStartMessage",
    "TransferCompletionMessage": "dspace:TransferCompletionMessage",
    "TransferTerminationMessage": "dspace:TransferTerminationMessage",
    "TransferSuspensionMessage": "dspace:TransferSuspensionMessage",
    "TransferError": "dspace:TransferError",
    "DataAddress": "dspace:DataAddress",
    "endpointType": {
        "@type": "@vocab",
        "@id": "dspace:endpointType"
    },
    "endpointProperties": {
        "@id": "dspace:endpointProperties",
        "@container": "@set"
    },
    "endpoint": "dspace:endpoint",
    "EndpointProperty": "dspace:EndpointProperty",
    "name": "dspace:name",
    "value": "dspace:value",
    "TransferProcess": "dspace:TransferProcess",
    "VersionsError": "dspace:VersionsError",
    "Catalog": "dcat:Catalog",
    "service": {
        "@id": "dcat:service",
        "@container": "@set"
    },
    "participantId": {
        "@type": "@id",
        "@id": "dspace:participantId"
    },
    "catalog": {
        "@id": "dcat:catalog",
        "@container": "@set"
    },
    "distribution": {
        "@id": "dcat:distribution",
        "@container": "@set"
    },
    "Dataset": "dcat:Dataset",
    "DataService": "dcat:DataService",
    "endpointDescription": "dcat:endpointDescription",
    "endpointURL": "dcat:endpointURL",
    "Distribution": "dcat:Distribution",
    "accessService": {
        "@id": "dcat:accessService"
    },
    "CatalogService": "dspace:CatalogService",
    "id": "@id",
    "type": "@type",
    "serviceEndpoint": {
        "@id": "https://www.w3.org/ns/did#serviceEndpoint",
        "@type": "@id"
    }
}

HKS_CONTEXT: dict[str, Any] = {
    "@version": 1.1,
    "odrl": "http://www.w3.org/ns/odrl/2/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "vcard": "http://www.w3.org/2006/vcard/ns#",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "schema": "http://schema.org/",
    "cc": "http://creativecommons.org/ns#",
    "uid": "@id",
    "type": "@type",
    "Policy": "odrl:Policy",
    "Rule": "odrl:Rule",
    "profile": {
        "@type": "@id",
        "@id": "odrl:profile"
    },
    "inheritFrom": {
        "@type": "@id",
        "@id": "odrl:inheritFrom"
    },
    "ConflictTerm": "odrl:ConflictTerm",
    "conflict": {
        "@type": "@vocab",
        "@id": "odrl:conflict"
    },
    "perm": "odrl:perm",
    "prohibit": "odrl:prohibit",
    "invalid": "odrl:invalid",
    "Agreement": "odrl:Agreement",
    "Assertion": "odrl:Assertion",
    "Offer": "odrl:Offer",
    "Privacy": "odrl:Privacy",
    "Request": "odrl:Request",
    "Set": "odrl:Set",
    "Ticket": "odrl:Ticket",
    "Asset": "odrl:Asset",
    "AssetCollection": "odrl:AssetCollection",
    "relation": {
        "@type": "@id",
        "@id": "odrl:relation"
    },
    "hasPolicy": {
        "@type": "@id",
        "@id": "odrl:hasPolicy"
    },
    "target": {
        "@type": "@id",
        "@id": "odrl:target"
    },
    "output": {
        "@type": "@id",
        "@id": "odrl:output"
    },
    "partOf": {
        "@type": "@id",
        "@id": "odrl:partOf"
    },
    "source": {
        "@type": "@id",
        "@id": "odrl:source"
    },
    "Party": "odrl:Party",
    "PartyCollection": "odrl:PartyCollection",
    "function": {
        "@type": "@vocab",
        "@id": "odrl:function"
    },
    "PartyScope": "odrl:PartyScope",
    "assignee": {
        "@type": "@id",
        "@id": "odrl:assignee"
    },
    "assigner": {
        "@type": "@id",
        "@id": "odrl:assigner"
    },
    "assigneeOf": {
        "@type": "@id",
        "@id": "odrl:assigneeOf"
    },
    "assignerOf": {
        "@type": "@id",
        "@id": "odrl:assignerOf"
    },
    "attributedParty": {
        "@type": "@id",
        "@id": "odrl:attributedParty"
    },
    "attributingParty": {
        "@type": "@id",
        "@id": "odrl:attributingParty"
    },
    "compensatedParty": {
        "@type": "@id",
        "@id": "odrl:compensatedParty"
    },
    "compensatingParty": {
        "@type": "@id",
        "@id": "odrl:compensatingParty"
    },
    "consentingParty": {
        "@type": "@id",
        "@id": "odrl:consentingParty"
    },
    "consentedParty": {
        "@type": "@id",
        "@id": "odrl:consentedParty"
    },
    "informedParty": {
        "@type": "@id",
        "@id": "odrl:informedParty"
    },
    "informingParty": {
        "@type": "@id",
        "@id": "odrl:informingParty"
    },
    "trackingParty": {
        "@type": "@id",
        "@id": "odrl:trackingParty"
    },
    "trackedParty": {
        "@type": "@id",
        "@id": "odrl:trackedParty"
    },
    "contractingParty": {
        "@type": "@id",
        "@id": "odrl:contractingParty"
    },
    "contractedParty": {
        "@type": "@id",
        "@id": "odrl:contractedParty"
    },
    "Action": "odrl:Action",
    "action": {
        "@type": "@vocab",
        "@id": "odrl:action"
    },
    "includedIn": {
        "@type": "@id",
        "@id": "odrl:includedIn"
    },
    "implies": {
        "@type": "@id",
        "@id": "odrl:implies"
    },
    "Permission": "odrl:Permission",
    "permission": {
        "@type": "@id",
        "@id": "odrl:permission"
    },
    "Prohibition": "odrl:Prohibition",
    "prohibition": {
        "@type": "@id",
        "@id": "odrl:prohibition"
    },
    "obligation": {
        "@type": "@id",
        "@id": "odrl:obligation"
    },
    "use": "odrl:use",
    "grantUse": "odrl:grantUse",
    "aggregate": "odrl:aggregate",
    "annotate": "odrl:annotate",
    "anonymize": "odrl:anonymize",
    "archive": "odrl:archive",
    "concurrentUse": "odrl:concurrentUse",
    "derive": "odrl:derive",
    "digitize": "odrl:digitize",
    "display": "odrl:display",
    "distribute": "odrl:distribute",
    "execute": "odrl:execute",
    "extract": "odrl:extract",
    "give": "odrl:give",
    "index": "odrl:index",
    "install": "odrl:install",
    "modify": "odrl:modify",
    "move": "odrl:move",
    "play": "odrl:play",
    "present": "odrl:present",
    "print": "odrl:print",
    "read": "odrl:read",
    "reproduce": "odrl:reproduce",
    "sell": "odrl:sell",
    "stream": "odrl:stream",
    "textToSpeech": "odrl:textToSpeech",
    "transfer": "odrl:transfer",
    "transform": "odrl:transform",
    "translate": "odrl:translate",
    "Duty": "odrl:Duty",
    "duty": {
        "@type": "@id",
        "@id": "odrl:duty"
    },
    "consequence": {
        "@type": "@id",
        "@id": "odrl:consequence"
    },
    "remedy": {
        "@type": "@id",
        "@id": "odrl:remedy"
    },
    "acceptTracking": "odrl:acceptTracking",
    "attribute": "odrl:attribute",
    "compensate": "odrl:compensate",
    "delete": "odrl:delete",
    "ensureExclusivity": "odrl:ensureExclusivity",
    "include": "odrl:include",
    "inform": "odrl:inform",
    "nextPolicy": "odrl:nextPolicy",
    "obtainConsent": "odrl:obtainConsent",
    "reviewPolicy": "odrl:reviewPolicy",
    "uninstall": "odrl:uninstall",
    "watermark": "odrl:watermark",
    "Constraint": "odrl:Constraint",
    "LogicalConstraint": "odrl:LogicalConstraint",
    "constraint": {
        "@type": "@id",
        "@id": "odrl:constraint"
    },
    "refinement": {
        "@type": "@id",
        "@id": "odrl:refinement"
    },
    "Operator": "odrl:Operator",
    "operator": {
        "@type": "@vocab",
        "@id": "odrl:operator"
    },
    "RightOperand": "odrl:RightOperand",
    "rightOperand": "odrl:rightOperand",
    "rightOperandReference": {
        "@type": "xsd:anyURI",
        "@id": "odrl:rightOperandReference"
    },
    "LeftOperand": "odrl:LeftOperand",
    "leftOperand": {
        "@type": "@vocab",
        "@id": "odrl:leftOperand"
    },
    "unit": "odrl:unit",
    "dataType": {
        "@type": "xsd:anyType",
        "@id": "odrl:datatype"
    },
    "status": "odrl:status",
    "absolutePosition": "odrl:absolutePosition",
    "absoluteSpatialPosition": "odrl:absoluteSpatialPosition",
    "absoluteTemporalPosition": "odrl:absoluteTemporalPosition",
    "absoluteSize": "odrl:absoluteSize",
    "count": "odrl:count",
    "dateTime": "odrl:dateTime",
    "delayPeriod": "odrl:delayPeriod",
    "deliveryChannel": "odrl:deliveryChannel",
    "elapsedTime": "odrl:elapsedTime",
    "event": "odrl:event",
    "fileFormat": "odrl:fileFormat",
    "industry": "odrl:industry",
    "language": "odrl:language",
    "media": "odrl:media",
    "meteredTime": "odrl:meteredTime",
    "payAmount": "odrl:payAmount",
    "percentage": "odrl:percentage",
    "product": "odrl:product",
    "purpose": "odrl:purpose",
    "recipient": "odrl:recipient",
    "relativePosition": "odrl:relativePosition",
    "relativeSpatialPosition": "odrl:relativeSpatialPosition",
    "relativeTemporalPosition": "odrl:relativeTemporalPosition",
    "relativeSize": "odrl:relativeSize",
    "resolution": "odrl:resolution",
    "spatial": "odrl:spatial",
    "spatialCoordinates": "odrl:spatialCoordinates",
    "systemDevice": "odrl:systemDevice",
    "timeInterval": "odrl:timeInterval",
    "unitOfCount": "odrl:unitOfCount",
    "version": "odrl:version",
    "virtualLocation": "odrl:virtualLocation",
    "eq": "odrl:eq",
    "gt": "odrl:gt",
    "gteq": "odrl:gteq",
    "lt": "odrl:lt",
    "lteq": "odrl:lteq",
    "neq": "odrl:neq",
    "isA": "odrl:isA",
    "hasPart": "odrl:hasPart",
    "isPartOf": "odrl:isPartOf",
    "isAllOf": "odrl:isAllOf",
    "isAnyOf": "odrl:isAnyOf",
    "isNoneOf": "odrl:isNoneOf",
    "or": "odrl:or",
    "xone": "odrl:xone",
    "and": "odrl:and",
    "andSequence": "odrl:andSequence",
    "policyUsage": "odrl:policyUsage",
    "hks": "https://w3id.org/hks/ns#",
    "dpv": "https://w3id.org/dpv#",
    "pd": "https://w3id.org/dpv/pd#",
    "loc": "https://w3id.org/dpv/loc#",
    "idsc": "https://w3id.org/idsa/code/",
    "ids": "https://w3id.org/idsa/core/",
    "recipientJurisdiction": "hks:recipientJurisdiction",
    "dataCategory": "hks:dataCategory",
    "securityProfile": "hks:securityProfile",
    "membership": "hks:membership",
    "role": "hks:role",
    "organisation": "hks:organisation",
    "connector": "hks:connector",
    "retentionPeriod": "hks:retentionPeriod",
    "field": "hks:field",
    "log": "hks:log",
    "drop": "hks:drop",
    "pseudonymise": "hks:pseudonymise",
    "compute": "hks:compute",
    "groupByColumn": "hks:groupByColumn",
    "aggregateColumn": "hks:aggregateColumn",
    "aggregateFunction": "hks:aggregateFunction",
    "minGroupSize": "hks:minGroupSize",
    "maxRows": "hks:maxRows",
    "epsilonPerQuery": "hks:epsilonPerQuery",
    "epsilonTotal": "hks:epsilonTotal",
    "consentReference": {
        "@id": "hks:consentReference"
    },
    "clearingHouse": {
        "@id": "hks:clearingHouse",
        "@type": "@id"
    }
}
# fmt: on

KNOWN_CONTEXTS: dict[str, dict[str, Any]] = {
    ODRL_CONTEXT_URL: ODRL_CONTEXT,
    "https://www.w3.org/ns/odrl.jsonld": ODRL_CONTEXT,
    "http://www.w3.org/ns/odrl/2/": ODRL_CONTEXT,
    DSP_2024_1_CONTEXT_URL: DSP_2024_1_CONTEXT,
    DSP_2025_1_CONTEXT_URL: DSP_2025_1_CONTEXT,
    DSP_2025_1_ODRL_PROFILE_URL: DSP_2025_1_ODRL_PROFILE,
    HKS_CONTEXT_URL: HKS_CONTEXT,
}
