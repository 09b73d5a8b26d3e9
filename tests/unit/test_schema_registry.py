"""RegistrySchemas speaks the Confluent Schema Registry REST protocol: ids come from the
registry, not the manifest, and ids written by other producers are fetched and cached.

The registry here is a small HTTP server implementing the two endpoints used (register a
version, fetch a schema by id), so the client's HTTP, JSON and caching are exercised for real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from events.records import PaymentMethod, RequestPayment, utc_now
from events.schema_store import RegistrySchemas, SchemaNotFound
from events.wire import EventCodec, UnknownSchemaId, unframe


class RegistryState:
    def __init__(self) -> None:
        self.schemas: dict[int, str] = {}
        self.requests: list[str] = []

    def register(self, schema: str) -> int:
        for schema_id, known in self.schemas.items():
            if json.loads(known) == json.loads(schema):
                return schema_id
        schema_id = 100 + len(self.schemas)
        self.schemas[schema_id] = schema
        return schema_id


def handler_for(state: RegistryState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            state.requests.append(f"POST {self.path}")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._answer(200, {"id": state.register(body["schema"])})

        def do_GET(self) -> None:
            state.requests.append(f"GET {self.path}")
            schema_id = int(self.path.rsplit("/", 1)[-1])
            if schema_id not in state.schemas:
                self._answer(404, {"error_code": 40403, "message": "Schema not found"})
            else:
                self._answer(200, {"schema": state.schemas[schema_id]})

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def registry_factory() -> Iterator:
    servers = []

    def make() -> tuple[str, RegistryState]:
        state = RegistryState()
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", state

    yield make
    for server in servers:
        server.shutdown()


ISSUED_AT = utc_now()


def command() -> RequestPayment:
    return RequestPayment(
        command_id="0b6f3c1e-2f57-4b43-9d0a-6f7f7f1f2a10",
        idempotency_key="k-1",
        issued_at=ISSUED_AT,
        merchant_id="shop-1",
        order_id="ORD1",
        user_id="u1",
        amount_minor=1999,
        currency="CNY",
        method=PaymentMethod.WECHAT_PAY,
    )


def test_written_messages_carry_the_registry_id(registry_factory):
    url, state = registry_factory()
    codec = EventCodec(RegistrySchemas(url))
    message = codec.encode(command())
    schema_id, _ = unframe(message)
    assert schema_id in state.schemas and schema_id >= 100
    assert state.requests == ["POST /subjects/paystream.commands.RequestPayment/versions"]
    assert codec.decode(message) == command()
    codec.encode(command())
    assert len(state.requests) == 1, "the id is cached after the first registration"


def test_another_producers_schema_is_fetched_once_by_id(registry_factory):
    url, state = registry_factory()
    message = EventCodec(RegistrySchemas(url)).encode(command())
    reader = EventCodec(RegistrySchemas(url))
    assert reader.decode(message) == command()
    assert reader.decode(message) == command()
    assert state.requests.count(f"GET /schemas/ids/{unframe(message)[0]}") == 1


def test_an_id_the_registry_does_not_know_is_a_decode_error(registry_factory):
    url, _ = registry_factory()
    with pytest.raises(UnknownSchemaId):
        EventCodec(RegistrySchemas(url)).decode(b"\x00\x00\x00\x27\x0f" + b"\x00" * 8)
    with pytest.raises(SchemaNotFound):
        RegistrySchemas(url).by_id(9999)
