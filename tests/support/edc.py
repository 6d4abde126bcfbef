"""A real Eclipse EDC runtime (control plane + data plane, iam-mock) for the interop tests: its
configuration (tests/interop/edc/), a process started as `java -Dedc.fs.config=FILE -cp 'lib/*'
org.eclipse.edc.boot.system.runtime.BaseRuntime`, and its management API (v3)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .nodes import free_port

API_KEY = "edc-interop-test-key"
EDC_NS = "https://w3id.org/edc/v0.0.1/ns/"
CONTEXT = {"@vocab": EDC_NS, "odrl": "http://www.w3.org/ns/odrl/2/"}
PROTOCOL = "dataspace-protocol-http:2025-1"


def _escaped_pem(pem: bytes) -> str:
    return pem.decode().strip().replace("\n", "\\n")


class EdcRuntime:
    def __init__(self, directory: Path, lib: Path, java: str, participant_id: str, *, wait_millis: int = 50) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.lib, self.java, self.participant_id = lib, java, participant_id
        self.ports = {name: free_port() for name in ("default", "management", "protocol", "control", "public", "version")}
        self.management = f"http://127.0.0.1:{self.ports['management']}/management"
        self.protocol = f"http://127.0.0.1:{self.ports['protocol']}/protocol"
        self.public = f"http://127.0.0.1:{self.ports['public']}/public"
        self.log_path = directory / "edc.log"
        key = ec.generate_private_key(ec.SECP256R1())
        priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        template = (Path(__file__).parent.parent / "interop" / "edc" / "edc.properties.template").read_text()
        import string
        text = string.Template(template).substitute(
            PARTICIPANT_ID=participant_id, API_KEY=API_KEY, WAIT=wait_millis,
            SIGNER_PEM=_escaped_pem(priv), VERIFIER_PEM=_escaped_pem(pub),
            **{f"{k.upper()}_PORT": v for k, v in self.ports.items()})
        self.config = directory / "edc.properties"
        self.config.write_text(text)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> "EdcRuntime":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.java, f"-Dedc.fs.config={self.config}", "-cp", f"{self.lib}/*",
                                      "org.eclipse.edc.boot.system.runtime.BaseRuntime"],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"EDC exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            if " ready" in self.log_path.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        raise RuntimeError(f"EDC did not become ready: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def api(self, method: str, path: str, body: Any = None, expect: int | tuple = (200, 204)) -> Any:
        if isinstance(body, dict) and "@context" not in body:
            body = {"@context": CONTEXT, **body}
        resp = httpx.request(method, self.management + path, json=body, timeout=30, headers={"X-Api-Key": API_KEY})
        expected = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in expected, f"EDC {method} {path}: {resp.status_code} {resp.text[:2000]}"
        return resp.json() if resp.content else None

    def wait(self, path: str, field: str, states: set[str], timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.api("GET", path)
            if doc.get(field) in states or time.monotonic() > deadline:
                return doc
            time.sleep(0.1)
