"""`connector audit verify` against a real clearing house: verdicts, access, saved state, and
one-line errors with exit code 2 for bad usage (1 is reserved for a log that fails verification)."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connector.clearinghouse.testing import ClearingHouseProcess, Participant
from connector.ledger.checkpoint import verifier_key_string

pytestmark = pytest.mark.slow
SECRET = "audit-test-secret-" + secrets.token_hex(8)
AUDITOR = "urn:hks:participant:auditor"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("audit")
    ch = ClearingHouseProcess(tmp / "ch", shared_secret=SECRET, auditors=[AUDITOR])
    a, b, c = (Participant(f"urn:hks:participant:{n}", SECRET) for n in ("pearl", "harbour", "lionrock"))
    for p in (a, b, c):
        ch.trust(p)
    ch.start()
    pid = "urn:uuid:" + secrets.token_hex(16)
    for sender, other, provider in [(a, b, True), (b, a, False), (a, b, True)]:
        r = httpx.post(ch.url + "/entries", json={"jws": sender.sign(sender.entry(other, process_id=pid, provider=provider))},
                       headers=sender.headers())
        assert r.status_code == 201, r.text
    r = httpx.post(ch.url + "/entries", json={"jws": a.sign(a.entry(c))}, headers=a.headers())
    assert r.status_code == 201
    yield {"ch": ch, "a": a, "b": b, "c": c, "auditor": Participant(AUDITOR, SECRET), "pid": pid, "tmp": tmp}
    ch.stop()


def audit(env, *args, token: str | None = "auditor", key: str | None = None, keys: bool = True):
    environ = {k: v for k, v in os.environ.items() if k != "CONNECTOR_AUDIT_TOKEN"}
    if token:
        environ["CONNECTOR_AUDIT_TOKEN"] = env[token].token if token in env else token
    cmd = [sys.executable, "-m", "connector", "audit", "verify"]
    if "--clearinghouse" not in args:
        cmd += ["--clearinghouse", env["ch"].url]
    cmd += ["--key", key or str(env["ch"].directory / "log.pub")]
    if keys:
        cmd += ["--keys", str(env["ch"].directory / "participants")]
    done = subprocess.run(cmd + list(args), env=environ, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def test_party_audits_its_process(env):
    code, out, err = audit(env, "--process", env["pid"], "--json", token="b")
    assert code == 0, out + err
    lines = out.splitlines()
    assert [line[:7] for line in lines[:3]] == ["OK   #0", "OK   #1", "OK   #2"]
    assert "sender=urn:hks:participant:harbour" in lines[1]
    assert lines[3].startswith("verdict: OK: 3 entries of process")
    summary = json.loads(lines[-1])
    assert summary["ok"] and summary["entries"] == 3 and summary["treeSize"] == 4 and summary["firstBadEntry"] is None


def test_auditor_audits_everything_and_the_next_run_checks_consistency(env):
    state = env["tmp"] / "state.json"
    code, out, err = audit(env, "--all", "--save", str(state))
    assert code == 0 and "verdict: OK: 4 entries of the whole log" in out, out + err
    saved = json.loads(state.read_text())
    assert saved["scope"] == "all" and saved["checkpoint"].splitlines()[1] == "4"
    a, b = env["a"], env["b"]
    httpx.post(env["ch"].url + "/entries", json={"jws": a.sign(a.entry(b))}, headers=a.headers())
    code, out, err = audit(env, "--all", "--since", str(state), "--quiet")
    assert code == 0 and out.splitlines() == [
        "verdict: OK: 5 entries of the whole log verified against the signed checkpoint of size 5, "
        "consistent with the checkpoint of size 4"], out + err


def test_others_may_not_audit(env):
    code, out, err = audit(env, "--process", env["pid"], token="c")
    assert code == 2 and err.count("\n") == 1 and "403 NotAParty" in err, err
    code, out, err = audit(env, "--all", token="a")
    assert code == 2 and "403 NotAnAuditor" in err, err


def test_a_checkpoint_signed_by_another_key_fails_verification(env):
    other = verifier_key_string(env["ch"].verifier_key.split("+")[0], Ed25519PrivateKey.generate().public_key())
    code, out, err = audit(env, "--all", key=other)
    assert code == 1 and "verdict: FAILED" in out and "checkpoint does not verify" in out, out + err


@pytest.mark.parametrize("args, kw, message", [
    (("--all", "--process", "x"), {}, "exactly one of --process PID and --all"),
    ((), {}, "exactly one of --process PID and --all"),
    (("--all",), {"token": None}, "no token: set CONNECTOR_AUDIT_TOKEN"),
    (("--all",), {"key": "not-a-key"}, "--key is not a verifier key"),
    (("--all",), {"keys": False}, "exactly one of --keys"),
    (("--all", "--clearinghouse", "ftp://x"), {}, "--clearinghouse must be an http(s) URL"),
    (("--all", "--clearinghouse", "http://127.0.0.1:9"), {}, "unreachable"),
    (("--all", "--since", "/nonexistent/state.json"), {}, "--since /nonexistent/state.json"),
    (("--all", "--token-file", "/nonexistent/token"), {}, "--token-file"),
])
def test_usage_errors_are_one_line_with_exit_code_2(env, args, kw, message):
    code, out, err = audit(env, *args, **kw)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_since_must_be_a_checkpoint_or_state(env):
    bad = env["tmp"] / "bad-state.json"
    bad.write_text('{"type": "something else"}')
    code, out, err = audit(env, "--all", "--since", str(bad))
    assert code == 2 and "not an audit state file" in err
    garbage = env["tmp"] / "garbage.txt"
    garbage.write_text("not a checkpoint\n")
    code, out, err = audit(env, "--all", "--since", str(garbage), "--quiet")
    assert code == 1 and "the --since checkpoint" in out
