"""Every record type carried on Kafka, by schema subject: what the codec decodes into.

Derived from the topic catalogue, so a record type added to a topic is decodable everywhere.
"""

from __future__ import annotations

from events.records import AvroRecord
from events.topics import TopicCatalogue

RECORD_TYPES: dict[str, type[AvroRecord]] = {
    cls.subject: cls for spec in TopicCatalogue().all() for cls in spec.records
}
