"""Where schema ids come from: the committed manifest, or a Confluent-compatible Schema Registry.

Subjects follow the record-name strategy (the subject is the record's full Avro name), because
one topic carries several record types: the events log holds every kind of payment event.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, Protocol

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

MANIFEST = "manifest.json"


class SchemaNotFound(LookupError):
    """No schema is known under that id or subject."""


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one record schema, with the id it travels under on the wire."""

    schema_id: int
    subject: str
    version: int
    definition: dict[str, Any]

    @cached_property
    def parsed(self) -> Any:
        """The schema as fastavro parsed it (a fresh name space: each schema stands alone)."""
        return fastavro.parse_schema(self.definition, named_schemas={})

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the Avro parsing canonical form: equal exactly when the schemas are."""
        return str(fingerprint(to_parsing_canonical_form(self.parsed), "SHA-256"))


class SchemaCatalogue(Protocol):
    """Maps record subjects to the schema we write, and wire ids to the schema a writer used."""

    def latest(self, subject: str) -> SchemaVersion:
        """The newest version of ``subject``: the one this code writes and reads into."""
        ...

    def by_id(self, schema_id: int) -> SchemaVersion:
        """The schema registered under ``schema_id``; raises SchemaNotFound."""
        ...


def _read_schema_file(relative: str) -> dict[str, Any]:
    source = resources.files("schemas").joinpath(relative)
    definition: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return definition


def load_manifest_entries() -> list[dict[str, Any]]:
    """The manifest's entries: id, subject, version, file and fingerprint of every schema."""
    text = resources.files("schemas").joinpath(MANIFEST).read_text(encoding="utf-8")
    entries: list[dict[str, Any]] = json.loads(text)["schemas"]
    return entries


class ManifestSchemas:
    """Schema ids fixed by ``schemas/manifest.json``; the default, needing no service."""

    def __init__(self) -> None:
        self._by_id: dict[int, SchemaVersion] = {}
        self._latest: dict[str, SchemaVersion] = {}
        for entry in load_manifest_entries():
            self._add(
                SchemaVersion(
                    schema_id=entry["id"],
                    subject=entry["subject"],
                    version=entry["version"],
                    definition=_read_schema_file(entry["file"]),
                )
            )

    def _add(self, schema: SchemaVersion) -> None:
        self._by_id[schema.schema_id] = schema
        current = self._latest.get(schema.subject)
        if current is None or schema.version > current.version:
            self._latest[schema.subject] = schema

    def versions(self, subject: str) -> list[SchemaVersion]:
        """Every committed version of ``subject``, oldest first."""
        found = [schema for schema in self._by_id.values() if schema.subject == subject]
        return sorted(found, key=lambda schema: schema.version)

    def subjects(self) -> list[str]:
        """Every subject in the manifest."""
        return sorted(self._latest)

    def latest(self, subject: str) -> SchemaVersion:
        """The newest committed version of ``subject``."""
        try:
            return self._latest[subject]
        except KeyError:
            raise SchemaNotFound(f"no schema for subject {subject!r}") from None

    def by_id(self, schema_id: int) -> SchemaVersion:
        """The manifest entry with ``schema_id``."""
        try:
            return self._by_id[schema_id]
        except KeyError:
            raise SchemaNotFound(f"schema id {schema_id} is not in the manifest") from None


class RegistrySchemas:
    """Schema ids from a Confluent-compatible Schema Registry.

    Our newest schemas are registered on first use (registering an identical schema is a no-op
    that returns its id); ids written by other producers are fetched once and cached.
    """

    def __init__(
        self, url: str, local: ManifestSchemas | None = None, timeout: float = 10.0
    ) -> None:
        self._url = url.rstrip("/")
        self._local = local or ManifestSchemas()
        self._timeout = timeout
        self._latest: dict[str, SchemaVersion] = {}
        self._by_id: dict[int, SchemaVersion] = {}

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self._url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise SchemaNotFound(f"schema registry has no {path}") from error
            raise

    def latest(self, subject: str) -> SchemaVersion:
        """Our newest version of ``subject``, registered so it has a registry id."""
        if subject not in self._latest:
            local = self._local.latest(subject)
            answer = self._request(
                "POST",
                f"/subjects/{subject}/versions",
                {"schema": json.dumps(local.definition)},
            )
            registered = SchemaVersion(answer["id"], subject, local.version, local.definition)
            self._latest[subject] = registered
            self._by_id[registered.schema_id] = registered
        return self._latest[subject]

    def by_id(self, schema_id: int) -> SchemaVersion:
        """The writer schema under ``schema_id``, fetched from the registry once."""
        if schema_id not in self._by_id:
            answer = self._request("GET", f"/schemas/ids/{schema_id}")
            definition = json.loads(answer["schema"])
            subject = full_name(definition)
            self._by_id[schema_id] = SchemaVersion(schema_id, subject, 0, definition)
        return self._by_id[schema_id]


def full_name(definition: dict[str, Any]) -> str:
    """The full Avro name of a record schema (its subject under the record-name strategy)."""
    name: str = definition["name"]
    namespace = definition.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def schema_catalogue(registry_url: str | None) -> SchemaCatalogue:
    """The registry when a URL is configured, else the committed manifest."""
    return RegistrySchemas(registry_url) if registry_url else ManifestSchemas()
