"""The compliance hook decides "not cross-border" for most agreements without compiling each one
(ComplianceService._shape_says_not_cross_border). It must agree with compiling: checked here on an
agreement made from every policy template, twice (the second from what it keeps per terms)."""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from connector.compliance import record as rec
from connector.compliance.service import ComplianceService
from connector.node.usage import PolicyCache
from connector.protocol.policies import agreement_from_offer
from connector.vocab import POLICY_CONTEXT_FILES, vocab_dir

TEMPLATES = sorted((Path(__file__).resolve().parents[1] / "policies").glob("*.jsonld"))


def service() -> ComplianceService:
    settings = SimpleNamespace(identity_mode="dev", node=SimpleNamespace(name="Pearl", jurisdiction="CN-GD-SZ"))
    node = SimpleNamespace(settings=settings, participant_id="urn:hks:pearl", clock=lambda: 0.0,
                           catalog=SimpleNamespace(policies=PolicyCache()))
    return ComplianceService(node)


def agreement(offer: dict) -> dict:
    return agreement_from_offer(f"urn:uuid:{uuid.uuid4()}", {**offer, "target": "dataset-1"},
                                assigner="urn:hks:pearl", assignee="urn:hks:harbour", timestamp="2026-12-02T00:00:00Z")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.stem)
def test_the_shortcut_agrees_with_compiling_on_every_template(template):
    svc, offer = service(), json.loads(template.read_text())
    for _ in range(2):  # the second agreement of the same terms comes from what the first left
        body = agreement(offer)
        compiled = rec.is_cross_border(svc.node.catalog.policies.compile(body))
        if svc._shape_says_not_cross_border(body):
            assert not compiled
        else:
            assert compiled, "a plain agreement that is not cross-border should take the shortcut"
    assert any(rec.is_cross_border(service().node.catalog.policies.compile(agreement(json.loads(t.read_text()))))
               for t in TEMPLATES), "no template is cross-border: the test would prove nothing"


def test_anything_but_a_plain_uuid_id_and_a_standard_context_is_compiled():
    svc = service()
    body = agreement(json.loads((TEMPLATES[0]).read_text()))
    assert not svc._shape_says_not_cross_border({**body, "@id": rec.GBA_TEMPLATE + "1"})
    assert not svc._shape_says_not_cross_border({**body, "uid": "urn:hks:policy:x"})
    assert not svc._shape_says_not_cross_border({**body, "@context": {"urn": rec.GBA_TEMPLATE}})
    assert not svc._shape_says_not_cross_border({**body, "@context": "https://example.com/ctx.jsonld"})
    assert not svc._shape_says_not_cross_border("not a policy")


def test_no_standard_policy_context_redefines_the_urn_prefix():
    # the shortcut reads `urn:uuid:...` as itself: true only while no standard context defines "urn"
    for url, rel in POLICY_CONTEXT_FILES.items():
        ctx = json.loads((vocab_dir() / rel).read_text(encoding="utf-8")).get("@context", {})
        for part in ctx if isinstance(ctx, list) else [ctx]:
            assert not (isinstance(part, dict) and "urn" in part), url
