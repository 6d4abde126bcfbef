"""A real OTLP/HTTP trace receiver for tests and benches: a threaded HTTP server in this process that
decodes each export (protobuf, opentelemetry-proto) into (service, trace id, span name, path)."""
from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Receiver:
    """An OTLP/HTTP trace receiver: decodes each export (protobuf) into (service, trace id, span name)."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                found = []
                for resource_spans in request.resource_spans:
                    service = next((a.value.string_value for a in resource_spans.resource.attributes
                                    if a.key == "service.name"), "")
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            found.append({"service": service, "trace": span.trace_id.hex(), "name": span.name,
                                          "path": self.path})
                with receiver.lock:
                    receiver.spans.extend(found)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # noqa: ANN002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_trace(self) -> dict[str, set[str]]:
        with self.lock:
            traces: dict[str, set[str]] = defaultdict(set)
            for span in self.spans:
                traces[span["trace"]].add(span["service"])
            return traces

    def close(self) -> None:
        self.server.shutdown()
