"""[telemetry] settings (the same section in the node, station and clearing-house configs) and the
JSON log line; in-process: pure configuration and formatting, no service involved."""
import json
import logging

import pytest

from connector import config, telemetry
from connector.config import ConfigError


def node_dir(tmp_path):
    config.init_directory(tmp_path / "node", name="Node")
    return tmp_path / "node"


def test_tracing_is_off_and_logs_are_text_by_default(tmp_path):
    settings = config.load(node_dir(tmp_path), environ={})
    assert settings.telemetry == telemetry.TelemetrySettings("", "text", "")
    assert not telemetry.tracing() and telemetry.current_traceparent() is None


def test_the_section_is_read_from_the_file_and_the_environment(tmp_path):
    directory = node_dir(tmp_path)
    with open(directory / config.CONFIG_FILE, "a") as f:
        f.write('\n[telemetry]\notlp_endpoint = "http://collector:4318"\n')
    settings = config.load(directory, environ={"CONNECTOR_TELEMETRY_LOG_FORMAT": "json"})
    assert settings.telemetry.otlp_endpoint == "http://collector:4318" and settings.telemetry.log_format == "json"


@pytest.mark.parametrize("key,value,named", [
    ("LOG_FORMAT", "xml", "[telemetry] log_format"),
    ("OTLP_ENDPOINT", "file:///etc/passwd", "[telemetry] otlp_endpoint"),
    ("OTLP_ENDPOINT", "collector:4318", "[telemetry] otlp_endpoint"),
])
def test_a_wrong_setting_is_refused_by_name(tmp_path, key, value, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
        config.load(node_dir(tmp_path), environ={f"CONNECTOR_TELEMETRY_{key}": value})


def test_a_json_line_has_the_ids_and_the_traceback():
    formatter = telemetry.JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("connector.x", logging.ERROR, __file__, 1, "failed %s", ("here",),
                                   exc_info=__import__("sys").exc_info())
    doc = json.loads(formatter.format(record))
    assert doc["message"] == "failed here" and doc["level"] == "ERROR" and doc["logger"] == "connector.x"
    assert doc["request_id"] is None and doc["process_id"] is None and doc["trace_id"] is None
    assert "ValueError: boom" in doc["exception"]
    with telemetry.continued(None, "outbox x", "urn:uuid:" + "p" * 500):
        doc = json.loads(formatter.format(record))
    assert doc["process_id"] == ("urn:uuid:" + "p" * 500)[:telemetry.MAX_ID]  # bounded: a peer may choose it
