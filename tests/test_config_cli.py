"""`connector init`, configuration, environment overrides and CLI errors."""
import os
import stat
import subprocess
import sys
import tomllib

import pytest

from connector import config as config_mod


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_init_writes_config_and_keys(tmp_path):
    node = tmp_path / "node"
    result = cli("init", str(node), "--name", "Harbour Lab", "--port", "9000")
    assert result.returncode == 0, result.stderr
    cfg = tomllib.loads((node / "connector.toml").read_text())
    assert cfg["node"]["name"] == "Harbour Lab"
    assert cfg["node"]["participant_id"].startswith("urn:hks:participant:")
    assert cfg["node"]["public_url"] == "http://127.0.0.1:9000"
    assert cfg["database"]["url"] == f"sqlite+aiosqlite:///{(node / 'node.db').resolve()}"
    assert len(cfg["management"]["api_key"]) >= 32
    assert cfg["identity"]["mode"] == "dev-shared-secret"
    for secret_file in (node / "connector.toml", node / "keys" / "node.key"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in (node / "keys" / "node.key").read_text()
    assert cfg["management"]["api_key"] not in result.stdout  # secrets are not printed
    again = cli("init", str(node), "--name", "Other")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_environment_overrides_every_section(tmp_path):
    config_mod.init_directory(tmp_path, name="Org", shared_secret="s" * 20)
    settings = config_mod.load(tmp_path, environ={
        "CONNECTOR_NODE_LISTEN_PORT": "9123", "CONNECTOR_NODE_NAME": "Renamed",
        "CONNECTOR_DATABASE_URL": "postgresql+asyncpg://u@h/db", "CONNECTOR_DSP_MAX_BODY_BYTES": "2048",
        "CONNECTOR_TCK_ENABLED": "true", "CONNECTOR_MANAGEMENT_API_KEY": "k" * 20,
    })
    assert settings.node.listen_port == 9123 and settings.node.name == "Renamed"
    assert settings.database_url == "postgresql+asyncpg://u@h/db"
    assert settings.max_body_bytes == 2048 and settings.tck_enabled
    assert settings.management_api_key == "k" * 20


@pytest.mark.parametrize("env,needle", [
    ({"CONNECTOR_NODE_LISTEN_PORT": "eighty"}, "[node] listen_port must be an integer"),
    ({"CONNECTOR_NODE_LISTEN_PORT": "70000"}, "[node] listen_port must be 0..65535"),
    ({"CONNECTOR_MANAGEMENT_API_KEY": "short"}, "[management] api_key"),
    ({"CONNECTOR_DATABASE_URL": "mysql://x"}, "[database] url"),
    ({"CONNECTOR_NODE_PUBLIC_URL": "ftp://x"}, "[node] public_url"),
    ({"CONNECTOR_IDENTITY_MODE": "none"}, "[identity] mode"),
    ({"CONNECTOR_TCK_ENABLED": "maybe"}, "[tck] enabled"),
    ({"CONNECTOR_IDENTITY_AUDIENCE": "idsc:IDS_CONNECTORS_ALL"}, "[identity] audience is no longer supported"),
    ({"CONNECTOR_IDENTITY_MAX_TOKEN_LIFETIME": "315360000"}, "[identity] max_token_lifetime"),
    ({"CONNECTOR_DSP_OUTBOX_ATTEMPTS": "6"}, "[dsp] outbox_attempts was removed"),
    ({"CONNECTOR_OUTBOX_LEASE_SECONDS": "0"}, "[outbox] lease_seconds must be between 1 and 3600"),
])
def test_config_errors_are_one_line_exit_2(tmp_path, env, needle):
    config_mod.init_directory(tmp_path, name="Org")
    result = cli("run", str(tmp_path), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_and_unknown_settings(tmp_path):
    result = cli("run", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "no connector.toml" in result.stderr
    config_mod.init_directory(tmp_path, name="Org")
    path = tmp_path / "connector.toml"
    path.write_text(path.read_text() + "\n[node2]\nx = 1\n")
    result = cli("run", str(tmp_path))
    assert result.returncode == 2 and "unknown section [node2]" in result.stderr
    text = path.read_text().replace("\n[node2]\nx = 1\n", "").replace('api_key = "', 'api_kee = "')
    path.write_text(text)
    result = cli("run", str(tmp_path))
    assert result.returncode == 2 and "unknown setting [management] api_kee" in result.stderr


def test_node_refuses_to_start_without_management_key(tmp_path):
    config_mod.init_directory(tmp_path, name="Org")
    path = tmp_path / "connector.toml"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("api_key")]
    path.write_text("\n".join(lines))
    result = cli("run", str(tmp_path))
    assert result.returncode == 2
    assert "setting [management] api_key is missing" in result.stderr


def test_dev_token_names_one_recipient(tmp_path):
    import base64
    import json

    config_mod.init_directory(tmp_path, name="Org")
    own = config_mod.load(tmp_path).node.participant_id
    for extra, audience in (((), own), (("--audience", "http://127.0.0.1:8300"), "http://127.0.0.1:8300")):
        result = cli("dev-token", str(tmp_path), "--participant", "urn:hks:participant:auditor", *extra)
        assert result.returncode == 0, result.stderr
        payload = result.stdout.split()[-1].split(".")[0]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["sub"] == "urn:hks:participant:auditor" and claims["aud"] == audience
