"""`connector clearinghouse init|run|trust`: files and modes, configuration errors as one line
with exit code 2, refusal to start on a log that is not its own or already in use."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from connector.clearinghouse import config as ch_config
from connector.clearinghouse.testing import ClearingHouseProcess, Participant
from connector.ledger.checkpoint import parse_signer_key, parse_verifier_key

SECRET = "cli-test-secret-0123456789"


def connector(*args, env=None, timeout=60):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTOR_CH_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True,
                          env=environ, timeout=timeout)


def test_init_writes_config_and_a_private_log_key(tmp_path):
    done = connector("clearinghouse", "init", str(tmp_path / "ch"), "--origin", "station.example.hk/clearinghouse",
                     "--port", "8399", "--auditor", "urn:a", "--auditor", "urn:b")
    assert done.returncode == 0, done.stderr
    d = tmp_path / "ch"
    assert stat.S_IMODE((d / "clearinghouse.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "keys" / "log.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "keys").stat().st_mode) == 0o700
    name, key = parse_signer_key((d / "keys" / "log.key").read_text().strip())
    verifier = (d / "log.pub").read_text().strip()
    assert name == "station.example.hk/clearinghouse" == parse_verifier_key(verifier).name
    assert f"verifier key: {verifier}" in done.stdout
    assert "PRIVATE" not in done.stdout + done.stderr
    settings = ch_config.load(d, environ={})
    assert settings.auditors == ("urn:a", "urn:b") and settings.listen_port == 8399
    assert settings.participant_keys == d / "participants" and settings.database_url.endswith("/ch/clearinghouse.db")
    again = connector("clearinghouse", "init", str(d))
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "refusing to overwrite" in again.stderr


@pytest.mark.parametrize("args, message", [
    (["--origin", "has space"], "--origin 'has space' must be"),
    (["--origin", "a+b"], "must be 1-200 printable characters without spaces or '+'"),
    (["--shared-secret", "short"], "--shared-secret must be at least 16 characters"),
    (["--participant-keys", "k", "--station-url", "http://s"], "not both"),
])
def test_init_errors(tmp_path, args, message):
    done = connector("clearinghouse", "init", str(tmp_path / "ch"), *args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


def init(tmp_path, **kw):
    ch_config.init_directory(tmp_path / "ch", shared_secret=SECRET, port=0, **kw)
    return tmp_path / "ch"


@pytest.mark.parametrize("edit, env, message", [
    (lambda d: (d / "clearinghouse.toml").unlink(), {}, "no clearinghouse.toml in"),
    (lambda d: (d / "keys" / "log.key").chmod(0o644), {}, "is readable by others (mode 0644); chmod 600 it"),
    (lambda d: (d / "keys" / "log.key").write_text("PRIVATE+KEY+x+00000000+AAAA"), {}, "is not a valid signer key"),
    (lambda d: (d / "keys" / "log.key").unlink(), {}, "the log key"),
    (lambda d: None, {"CONNECTOR_CH_DATABASE_URL": "mysql://x"}, "[database] url must start with"),
    (lambda d: None, {"CONNECTOR_CH_IDENTITY_SHARED_SECRET": "x"}, "shared_secret must be at least 16"),
    (lambda d: None, {"CONNECTOR_CH_IDENTITY_MODE": "magic"}, "[identity] mode must be one of"),
    (lambda d: None, {"CONNECTOR_CH_IDENTITY_MODE": "station"}, "needs [participants] station_url"),
    (lambda d: None, {"CONNECTOR_CH_CLEARINGHOUSE_LISTEN_PORT": "99999"}, "listen_port must be between 0 and 65535"),
    (lambda d: None, {"CONNECTOR_CH_CLEARINGHOUSE_MAX_ENTRY_BYTES": "many"}, "max_entry_bytes must be an integer"),
    (lambda d: None, {"CONNECTOR_CH_PARTICIPANTS_STATION_URL": "http://station"}, "exactly one of the settings"),
    (lambda d: None, {"CONNECTOR_CH_PARTICIPANTS_KEYS": "/nonexistent"}, "/nonexistent does not exist"),
    (lambda d: None, {"CONNECTOR_CH_ACCESS_AUDITOR_CLAIM": "role"}, "auditor_claim must look like NAME=VALUE"),
    (lambda d: (d / "clearinghouse.toml").write_text("[nope]\n"), {}, "unknown section [nope]"),
    (lambda d: (d / "clearinghouse.toml").write_text("[clearinghouse]\nport = 1\n"), {},
     "unknown setting [clearinghouse] port"),
    (lambda d: (d / "clearinghouse.toml").write_text("not toml ["), {}, "is not valid TOML"),
    (lambda d: (d / "participants" / "bad.pem").write_text("junk"), {}, "not a PEM public key"),
])
def test_run_configuration_errors_are_one_line(tmp_path, edit, env, message):
    d = init(tmp_path)
    edit(d)
    done = connector("clearinghouse", "run", str(d), env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


@pytest.mark.slow
def test_run_refuses_a_second_process_and_another_logs_database(tmp_path):
    first = ClearingHouseProcess(tmp_path / "one", shared_secret=SECRET)
    first.start()
    try:
        second = connector("clearinghouse", "run", str(first.directory), timeout=30)
        assert second.returncode == 2 and "another clearing-house process is using" in second.stderr, second.stderr
    finally:
        first.stop()
    other = ClearingHouseProcess(tmp_path / "two", shared_secret=SECRET,
                                 database_url=first.settings.database_url)
    done = connector("clearinghouse", "run", str(other.directory), timeout=30)
    assert done.returncode == 2 and "holds the log" in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_trust_registers_a_nodes_public_key(tmp_path):
    from connector import config as node_config
    d = init(tmp_path)
    node_config.init_directory(tmp_path / "node", name="Pearl River Medical Centre", participant_id="urn:hks:participant:pearl",
                               shared_secret=SECRET)
    done = connector("clearinghouse", "trust", str(d), "--node", str(tmp_path / "node"))
    assert done.returncode == 0, done.stderr
    pem = (d / "participants" / "urn:hks:participant:pearl.pem").read_text()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    p = Participant("urn:hks:participant:x", SECRET)
    (tmp_path / "x.pem").write_bytes(__import__("connector.clearinghouse.keys", fromlist=["public_pem"])
                                     .public_pem(p.key.public_key()))
    done = connector("clearinghouse", "trust", str(d), "--participant", "urn:hks:participant:x/1", "--public-key",
                     str(tmp_path / "x.pem"))
    assert done.returncode == 0 and (d / "participants" / "urn:hks:participant:x%2F1.pem").exists(), done.stderr
    from connector.clearinghouse.keys import load_key_map
    assert set(load_key_map(d / "participants")) == {"urn:hks:participant:pearl", "urn:hks:participant:x/1"}
    bad = connector("clearinghouse", "trust", str(d), "--participant", "x")
    assert bad.returncode == 2 and "give --participant and --public-key, or --node" in bad.stderr


def test_init_writes_station_identity_when_asked(tmp_path):
    from connector.clearinghouse import config as ch_config

    ch_config.init_directory(tmp_path / "a", station_url="http://127.0.0.1:9", identity="station")
    settings = ch_config.load(tmp_path / "a", environ={})
    assert settings.identity_mode == "station" and "shared_secret" not in (tmp_path / "a" / "clearinghouse.toml").read_text()
    with pytest.raises(ch_config.ConfigError, match="--identity station needs --station-url"):
        ch_config.init_directory(tmp_path / "b", identity="station")
