"""connector.cli_policy: `check` and `explain` (typer app mounted as `connector policy`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from connector.cli_policy import app

ROOT = Path(__file__).resolve().parents[1]
GBA = ROOT / "policies" / "gba-cross-border-personal-information.jsonld"
runner = CliRunner()


def test_check_lists_what_it_understood():
    r = runner.invoke(app, ["check", str(GBA)])
    assert r.exit_code == 0, r.output
    assert "valid" in r.output
    assert "recipient jurisdiction must be one of: HK, CN-GD-GZ" in r.output
    assert "Pseudonymise the field patient_id" in r.output


def test_check_refuses_with_the_offending_part(tmp_path):
    bad = tmp_path / "bad.jsonld"
    bad.write_text(json.dumps({"@type": "Set", "permission": [{"action": "use", "constraint": [
        {"leftOperand": "count", "operator": "lteq", "rightOperand": "ten"}]}]}))
    r = runner.invoke(app, ["check", str(bad)])
    assert r.exit_code == 1
    assert "permission[0].constraint[0].rightOperand" in r.output and "needs an integer" in r.output


def test_check_json_output():
    r = runner.invoke(app, ["check", str(GBA), "--json"])
    assert r.exit_code == 0
    out = json.loads(r.output)
    assert out["valid"] and out["conflict"] == "prohibit"


def _ctx(tmp_path, **context):
    f = tmp_path / "ctx.json"
    f.write_text(json.dumps({"request": {"action": "use", "target": "urn:x", "assignee": "did:web:merlion.example.sg"},
                             "context": context}))
    return f


def test_explain_prints_the_decision_and_reasons(tmp_path):
    f = _ctx(tmp_path, now="2025-06-01T00:00:00Z", agreement_time="2025-06-01T00:00:00Z", use_count=0,
             purpose="hks:MedicalResearch", recipient_jurisdiction="SG", data_categories=["pd:Name"])
    r = runner.invoke(app, ["explain", str(GBA), "--context", str(f)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("DENY")
    assert "Recipient jurisdiction SG is not one of the permitted: HK, CN-GD-GZ" in r.output
    r = runner.invoke(app, ["explain", str(GBA), "--context", str(f), "--all"])
    assert "[NO] permission[0].constraint[1]" in r.output and "[ok] permission[0].constraint[0]" in r.output
    r = runner.invoke(app, ["explain", str(GBA), "--context", str(f), "--json"])
    assert json.loads(r.output)["decision"] == "deny"


def test_explain_permit_lists_duties(tmp_path):
    f = _ctx(tmp_path, now="2025-06-01T00:00:00Z", agreement_time="2025-06-01T00:00:00Z", use_count=0,
             purpose="hks:MedicalResearch", recipient_jurisdiction="HK", data_categories=["pd:Name"])
    r = runner.invoke(app, ["explain", str(GBA), "--context", str(f)])
    assert r.output.startswith("PERMIT") and "delete the data by 2026-06-01T00:00:00Z" in r.output


def test_explain_rejects_a_bad_context_file(tmp_path):
    f = tmp_path / "ctx.json"
    f.write_text(json.dumps({"action": "use", "context": {"colour": "red"}}))
    r = runner.invoke(app, ["explain", str(GBA), "--context", str(f)])
    assert r.exit_code == 2 and "unknown context field" in r.output


def test_runnable_as_a_module():
    r = subprocess.run([sys.executable, "-m", "connector.policy", "check", str(GBA)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "valid" in r.stdout
