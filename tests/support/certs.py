"""Real processes for the dataset registration certificate tests (issue 14 item 6): a station, a
clearing house in station mode, and two enrolled nodes (Pearl River, the dataset's owner, and
Harbour Lab) that log there."""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx

from support.identity import station_clearing_house, station_for_clearing_house
from support.nodes import NodeProcess

DATA = b"patient_id,age\nP1,40\nP2,51\n"


@contextlib.contextmanager
def certified_net(base: Path) -> Iterator[dict]:
    station, ch_port = station_for_clearing_house(base / "station")
    procs: list = [station]
    try:
        ch, ch_url = station_clearing_house(base / "ch", station, ch_port)
        env = {"CONNECTOR_CLEARINGHOUSE_URL": ch_url, "CONNECTOR_CLEARINGHOUSE_VERIFIER_KEY": ch.verifier_key,
               "CONNECTOR_CLEARINGHOUSE_AUDIENCE": ch_url}
        ch.start()
        procs.append(ch)
        configure_station_clearinghouse(station, ch_url, ch.verifier_key)
        pearl = NodeProcess(base / "pearl", "Pearl River Medical Centre", station=station, jurisdiction="CN-GD-GZ",
                            env={**env, "CONNECTOR_DATAPLANE_UPSTREAM_HOSTS": "127.0.0.1"})
        harbour = NodeProcess(base / "harbour", "Harbour Lab", station=station, env=env)
        (pearl.directory / "data").mkdir(exist_ok=True)
        (pearl.directory / "data" / "visits.csv").write_bytes(DATA)
        pearl.start()
        procs.append(pearl)
        harbour.start()
        procs.append(harbour)
        pearl.api("POST", "/assets", {"id": "visits", "title": "Clinic visits", "contentType": "text/csv",
                                      "dataAddress": {"type": "file", "path": "visits.csv"},
                                      "properties": {"dataCategories": ["pd:Age"]}}, expect=201)
        pearl.api("POST", "/policies", {"id": "open", "policy": {"permission": [{"action": "use"}]}}, expect=201)
        pearl.api("POST", "/offers", {"id": "offer-visits", "assetIds": ["visits"], "accessPolicyId": "open",
                                      "contractPolicyId": "open"}, expect=201)
        (base / "station.jwks").write_text(httpx.get(station.url + "/jwks.json").text)
        yield {"station": station, "ch": ch, "pearl": pearl, "harbour": harbour, "base": base,
               "jwks": base / "station.jwks", "ch_key": ch.verifier_key, "ch_url": ch_url}
    finally:
        for proc in reversed(procs):
            proc.stop()


class Upstream:
    """An HTTP upstream in the test process: /data answers `body`, /broken answers 500."""

    def __init__(self, body: bytes) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                ok = self.path == "/data"
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", str(len(body) if ok else 0))
                self.end_headers()
                if ok:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "connector", *args], capture_output=True, text=True, timeout=120)


def certify(net: dict, asset: str = "visits") -> dict:
    """Register `asset` of Pearl River, approve it at the station, fetch and log it: the bundle."""
    pearl, station = net["pearl"], net["station"]
    doc = pearl.api("POST", f"/assets/{asset}/registration", expect=200)
    station.admin("POST", f"/admin/certificates/{doc['request']}/approve", {}, expect=200)
    done = refreshed(pearl, asset)
    assert done["status"] == "approved", done
    return done["bundle"]


def refreshed(node, asset: str, seconds: float = 30.0) -> dict:
    """Refresh until the station has logged the approved certificate (status no longer "logging")."""
    import time

    deadline = time.monotonic() + seconds
    done = node.api("POST", f"/assets/{asset}/registration/refresh", expect=200)
    while done["status"] == "logging" and time.monotonic() < deadline:
        time.sleep(0.2)
        done = node.api("POST", f"/assets/{asset}/registration/refresh", expect=200)
    return done


def configure_station_clearinghouse(station, url: str, verifier_key: str) -> None:
    """The operator writes the clearing house's settings after both started: the running station
    reads them on its next attempt (no restart)."""
    path = station.directory / "station.toml"
    lines = f'url = "{url}"\naudience = "{url}"\nverifier_key = "{verifier_key}"\n'
    text = path.read_text(encoding="utf-8")
    if "\n[clearinghouse]\n" in text:
        text = text.replace("\n[clearinghouse]\n", "\n[clearinghouse]\n" + lines, 1)
    else:
        text += "\n[clearinghouse]\n" + lines
    path.write_text(text, encoding="utf-8")


def verify(net: dict, bundle: dict | Path, *extra: str) -> subprocess.CompletedProcess:
    path = bundle if isinstance(bundle, Path) else net["base"] / "cert.json"
    if not isinstance(bundle, Path):
        path.write_text(json.dumps(bundle))
    return cli("verify-certificate", str(path), "--station-keys", str(net["jwks"]),
               "--clearinghouse-key", net["ch_key"], *extra)
