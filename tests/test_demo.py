"""`connector demo --json`: the whole station story runs and says so on its last line."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_json_summary():
    result = subprocess.run([sys.executable, "-m", "connector", "demo", "--json"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["ok"] is True
    states = {n["label"]: n["state"] for n in summary["negotiations"]}
    assert all({"id", "state"} <= set(n) for n in summary["negotiations"])
    assert "FINALIZED" in states.values() and "TERMINATED" in states.values()
    refused = next(n for n in summary["negotiations"] if "(SG)" in n["label"])
    assert refused["state"] == "TERMINATED" and "Recipient jurisdiction SG" in refused["reason"]
    early, transfer = summary["transfers"]
    assert early["state"] == "TERMINATED" and "PIPIA" in early["reason"]  # before the provider recorded its PIPIA
    assert transfer["state"] == "STARTED"
    pulled, denied = summary["accesses"]
    assert pulled["status"] == 200 and pulled["personalFieldsRemoved"] and "name" not in pulled["columns"]
    assert denied["status"] == 403 and denied["reasons"]
    comp = summary["compliance"]
    assert comp["ok"] and comp["record"]
    assert comp["filings"]["provider"]["authority"].startswith("Cyberspace Administration of Guangdong")
    assert comp["filings"]["consumer"]["authority"].startswith("Digital Policy Office")
    assert comp["reoffer"]["status"] == 409 and "the policy follows the data" in comp["reoffer"]["reason"]
    ch = summary["clearinghouse"]
    assert ch["ok"] and ch["entries"] > 0 and all(a["verdict"] == "ok" for a in ch["audits"])
    computed, by_patient = summary["computations"]
    assert computed["status"] == 200 and computed["rows"] > 0 and not computed["recordLeftProvider"]
    assert by_patient["status"] == 403 and by_patient["rule"] == "hks:groupByColumn"
    cert = summary["certificate"]  # Pearl River's dataset carries a verified registration certificate
    assert cert["ok"] and cert["approved"] and cert["verified"] and "the bytes match" in cert["reason"]
