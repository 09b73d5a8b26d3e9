"""The schemas: manifest integrity, classes matching schemas, and BACKWARD_TRANSITIVE evolution
against every earlier version, both those in the manifest and those in the git history."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from events.record_types import RECORD_TYPES
from events.schema_compat import backward_transitive_problems, read_problems
from events.schema_store import ManifestSchemas, full_name, load_manifest_entries

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
REPO_ROOT = SCHEMAS_DIR.parent


def test_manifest_ids_and_versions_are_unique_and_contiguous():
    entries = load_manifest_entries()
    ids = [entry["id"] for entry in entries]
    assert len(ids) == len(set(ids)), "a schema id was reused"
    versions = defaultdict(list)
    for entry in entries:
        versions[entry["subject"]].append(entry["version"])
    for subject, numbers in versions.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), subject


@pytest.mark.parametrize("entry", load_manifest_entries(), ids=lambda entry: entry["file"])
def test_published_schema_file_is_unchanged(entry):
    """Editing a published version in place would change what its id means on the wire."""
    schemas = ManifestSchemas()
    schema = schemas.by_id(entry["id"])
    assert full_name(schema.definition) == entry["subject"]
    assert schema.fingerprint == entry["fingerprint"], (
        f"{entry['file']} changed after publication: add a new version file instead"
    )


@pytest.mark.parametrize("subject", sorted(RECORD_TYPES))
def test_record_class_has_exactly_the_newest_schema_fields(subject):
    latest, record_type = ManifestSchemas().latest(subject), RECORD_TYPES[subject]
    schema_fields = [field["name"] for field in latest.definition["fields"]]
    class_fields = [field.name for field in dataclasses.fields(record_type)]
    written = record_type.wire_fields or (*class_fields, *record_type.folded_fields)
    assert list(written) == schema_fields


@pytest.mark.parametrize("subject", ManifestSchemas().subjects())
def test_newest_schema_reads_every_manifest_version(subject):
    schemas = ManifestSchemas()
    earlier = {f"v{s.version}": s.definition for s in schemas.versions(subject)}
    problems = backward_transitive_problems(subject, schemas.latest(subject).definition, earlier)
    assert problems == [], "\n".join(map(str, problems))


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], check=True, capture_output=True, text=True
    ).stdout


def committed_versions(path: Path) -> dict[str, dict]:
    """Every committed content of ``path`` in the git history, by commit."""
    relative = path.relative_to(REPO_ROOT).as_posix()
    found = {}
    for commit in _git("log", "--format=%H", "--", relative).split():
        try:
            found[f"{relative}@{commit[:10]}"] = json.loads(_git("show", f"{commit}:{relative}"))
        except subprocess.CalledProcessError:
            continue  # the commit deleted the file
    return found


def test_newest_schemas_read_every_version_ever_committed():
    """Catches in-place edits that the manifest alone would not (e.g. a fingerprint updated too)."""
    assert (REPO_ROOT / ".git").exists(), "the schema history check needs the git checkout"
    schemas = ManifestSchemas()
    problems = []
    for path in sorted(SCHEMAS_DIR.glob("*/*.avsc")):
        history = committed_versions(path)
        if not history:
            continue  # not committed yet: the manifest checks cover it
        subject = full_name(json.loads(path.read_text()))
        latest = schemas.latest(subject).definition
        problems += backward_transitive_problems(subject, latest, history)
    assert problems == [], "\n".join(map(str, problems))


def _request_payment() -> dict:
    return copy.deepcopy(ManifestSchemas().latest("paystream.commands.RequestPayment").definition)


def test_checker_refuses_a_new_field_without_default():
    evolved = _request_payment()
    evolved["fields"].append({"name": "merchant_category", "type": "string"})
    assert read_problems(evolved, _request_payment())


def test_checker_refuses_a_removed_enum_symbol_without_default():
    evolved = _request_payment()
    method = next(f for f in evolved["fields"] if f["name"] == "method")
    method["type"]["symbols"].remove("COINS")
    del method["type"]["default"]
    assert read_problems(evolved, _request_payment())


def test_checker_refuses_a_narrowed_amount_type():
    evolved = _request_payment()
    amount = next(f for f in evolved["fields"] if f["name"] == "amount_minor")
    amount["type"] = "int"
    assert read_problems(evolved, _request_payment())


def test_checker_accepts_an_optional_field_and_a_new_enum_symbol():
    evolved = _request_payment()
    evolved["fields"].append({"name": "coupon", "type": ["null", "string"], "default": None})
    method = next(f for f in evolved["fields"] if f["name"] == "method")
    method["type"]["symbols"].append("BANK_TRANSFER")
    assert read_problems(evolved, _request_payment()) == ()
