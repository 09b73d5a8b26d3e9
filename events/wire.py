"""The wire format: Confluent framing (magic byte 0, 4-byte big-endian schema id) + Avro body.

Decoding resolves the writer's schema (from the id) against the newest schema this code knows
for that record, so events written by older producers are read as today's classes.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from typing import TypeVar

import fastavro

from events.record_types import RECORD_TYPES
from events.records import AvroRecord
from events.schema_store import SchemaCatalogue, SchemaNotFound, SchemaVersion

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
R = TypeVar("R", bound=AvroRecord)


class DecodeError(ValueError):
    """A message that cannot be turned into a record; ``kind`` names the failure for the DLQ."""

    kind = "DecodeError"


class BadFraming(DecodeError):
    """Too short, or the first byte is not the Confluent magic byte 0."""

    kind = "BadFraming"


class UnknownSchemaId(DecodeError):
    """The schema id is in neither the manifest nor the registry."""

    kind = "UnknownSchemaId"


class UnknownRecordType(DecodeError):
    """The schema is valid but names a record this code has no class for."""

    kind = "UnknownRecordType"


class AvroBodyError(DecodeError):
    """The body does not decode under the writer's schema."""

    kind = "AvroBodyError"


class UnexpectedRecordType(DecodeError):
    """A well-formed record of a type this topic must not carry."""

    kind = "UnexpectedRecordType"


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent header."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(message: bytes) -> tuple[int, bytes]:
    """Split a framed message into (schema id, Avro body); raises BadFraming."""
    if len(message) < _HEADER.size:
        raise BadFraming(f"message of {len(message)} bytes is shorter than the 5-byte header")
    magic, schema_id = _HEADER.unpack_from(message)
    if magic != MAGIC_BYTE:
        raise BadFraming(f"first byte is {magic}, not the magic byte {MAGIC_BYTE}")
    return schema_id, message[_HEADER.size :]


class EventCodec:
    """Encodes typed records to framed Avro and back, using a schema catalogue for the ids."""

    def __init__(self, schemas: SchemaCatalogue) -> None:
        self._schemas = schemas

    def encode(self, record: AvroRecord) -> bytes:
        """The record in the wire format, under the newest schema of its type."""
        schema = self._schemas.latest(record.subject)
        body = io.BytesIO()
        fastavro.schemaless_writer(body, schema.parsed, record.to_avro())
        return frame(schema.schema_id, body.getvalue())

    def subject_of(self, message: bytes | None) -> str:
        """The record type a message carries, from its header alone (no body decoding).

        Lets a processor pass over the records it has no use for at the cost of a lookup.
        """
        if message is None:
            raise BadFraming("message has no value (a tombstone)")
        schema_id, _ = unframe(message)
        return self._writer_schema(schema_id).subject

    def decode(self, message: bytes | None) -> AvroRecord:
        """The typed record in ``message``; raises a DecodeError subclass saying what is wrong."""
        if message is None:
            raise BadFraming("message has no value (a tombstone)")
        schema_id, body = unframe(message)
        writer = self._writer_schema(schema_id)
        reader = self._reader_schema(writer)
        buffer = io.BytesIO(body)
        try:
            datum = fastavro.schemaless_reader(
                buffer,
                writer.parsed,
                None if reader.schema_id == writer.schema_id else reader.parsed,
            )
        except Exception as error:  # fastavro raises many types for corrupt bodies
            raise AvroBodyError(
                f"body does not decode as {writer.subject} (schema id {schema_id}): {error!r}"
            ) from error
        if not isinstance(datum, dict):
            raise AvroBodyError(f"body of schema id {schema_id} is not a record")
        if buffer.tell() != len(body):
            # A record followed by junk is a corrupt or mis-framed message, not a record.
            raise AvroBodyError(
                f"{len(body) - buffer.tell()} bytes left over after a {writer.subject} record"
            )
        try:
            return RECORD_TYPES[reader.subject].from_avro(datum)
        except (ValueError, KeyError, TypeError) as error:
            # Well-formed Avro that breaks the record's own rules (a table row that does not
            # fit its layout, say) is as undecodable as a corrupt body.
            raise AvroBodyError(f"{writer.subject} body is not a valid record: {error}") from error

    def decode_as(self, message: bytes | None, expected: Iterable[type[R]]) -> R:
        """Decode and check the record is one of ``expected``; raises UnexpectedRecordType."""
        record = self.decode(message)
        allowed = tuple(expected)
        if not isinstance(record, allowed):
            names = ", ".join(cls.__name__ for cls in allowed)
            raise UnexpectedRecordType(f"got {type(record).__name__}, this topic carries {names}")
        return record

    def _writer_schema(self, schema_id: int) -> SchemaVersion:
        try:
            return self._schemas.by_id(schema_id)
        except SchemaNotFound as error:
            raise UnknownSchemaId(str(error)) from error

    def _reader_schema(self, writer: SchemaVersion) -> SchemaVersion:
        if writer.subject not in RECORD_TYPES:
            raise UnknownRecordType(f"no record class for {writer.subject}")
        return self._schemas.latest(writer.subject)
