"""The worker's processors: intake, then the risk stages, wired to one namespace's topics.

Topics carry framed Avro; the processors decode inside their handlers' wrapper, so a message
that does not decode is dead-lettered with its reason instead of stopping the stage.
"""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord

from events.records import AvroRecord, RequestPayment, utc_now
from events.topics import TopicCatalogue
from events.wire import UnexpectedRecordType
from paystream.config import PaystreamSettings
from streams.engine.outgoing import Outgoing
from streams.engine.processor import ProcessorSpec
from streams.engine.store import StateStore
from streams.intake import PaymentIntake
from streams.validation import ValidationPolicy

INTAKE = "intake"


def intake_spec(catalogue: TopicCatalogue, settings: PaystreamSettings) -> ProcessorSpec:
    """The intake processor: RequestPayment in; PaymentAccepted, PaymentRejected or
    CommandDeduplicated out, keyed by payment id on the payment log."""
    seen_keys = StateStore(catalogue.intake_keys)
    intake = PaymentIntake(ValidationPolicy.from_settings(settings), seen_keys)

    async def handle(_message: ConsumerRecord, record: AvroRecord) -> list[Outgoing]:
        if not isinstance(record, RequestPayment):
            raise UnexpectedRecordType(f"{record.subject} is not a payment command")
        outcome = intake.handle(record, utc_now())
        return [Outgoing(catalogue.events.name, outcome.payment_id.encode(), outcome)]

    return ProcessorSpec(INTAKE, (catalogue.commands,), handle, stores=(seen_keys,))
