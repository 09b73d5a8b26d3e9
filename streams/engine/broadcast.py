"""Reading whole topics on every worker: merchants, rule sets, routing policies and feedback.

A consumer-group member sees only its partitions; risk needs every merchant and the newest rule
set everywhere, and routing every channel's results and the newest policy, so each worker reads
these topics itself, from the start, and keeps tailing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from events.dead_letters import ConsumedMessage
from events.records import AvroRecord
from events.topics import TopicSpec
from events.wire import DecodeError, EventCodec
from streams.engine.kafka import Delivered, plain_consumer, watermarks

log = logging.getLogger(__name__)

Undecodable = Callable[[ConsumedMessage, DecodeError], None]
# Records applied per call to ``poll``: the worker's loop goes round between such helpings.
HELPING = 1000


class BroadcastReader:
    """Feeds every record of ``topics`` to ``apply``, in log order per partition.

    The partitions are the catalogue's: the worker creates the topics before it starts. The
    worker's loop calls ``poll`` to apply what has arrived; ``caught_up`` reads until
    everything written before it was called has been applied.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: list[TopicSpec],
        codec: EventCodec,
        apply: Callable[[AvroRecord], None],
        undecodable: Undecodable,
    ) -> None:
        self._bootstrap = bootstrap
        self._consumer: Consumer | None = None
        # The topics' ends are asked on a connection of their own: on the reading consumer's,
        # the question would queue behind its long-polling fetch (up to half a second).
        self._probe: Consumer | None = None
        self._partitions = [
            TopicPartition(spec.name, number)
            for spec in topics
            for number in range(spec.partitions)
        ]
        self._codec = codec
        self._apply = apply
        self._undecodable = undecodable
        # Wall-clock ms at which the newest completed catch-up looked up the topics' ends.
        self._caught_up_ms = 0

    def start(self, timeout: float = 20.0) -> None:
        """Read every partition from the beginning until caught up.

        A start that has not caught up within ``timeout`` is abandoned and made again: the
        risk stages wait for this reader, so a stuck start would stop risk control.
        """
        while True:
            self._consumer = plain_consumer(self._bootstrap)
            self._probe = plain_consumer(self._bootstrap)
            self._consumer.assign(
                [
                    TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
                    for tp in self._partitions
                ]
            )
            try:
                self.caught_up(timeout)
                log.info("broadcast reader caught up with %d partitions", len(self._partitions))
                return
            except TimeoutError:
                log.warning("broadcast reader not caught up in %.0f s; starting again", timeout)
                self.stop()

    def stop(self) -> None:
        """Close the consumer."""
        consumers = (self._consumer, self._probe)
        self._consumer = self._probe = None
        self._caught_up_ms = 0
        for consumer in consumers:
            if consumer is not None:
                consumer.close()

    def poll(self, timeout: float = 0.0) -> int:
        """Apply what has arrived (waiting up to ``timeout`` s for it); returns how much."""
        messages = self._started().consume(HELPING, timeout)
        for message in messages:
            error = message.error()
            if error is None:
                self._apply_message(Delivered.of(message))
            elif error.fatal():
                raise KafkaException(error)
            else:
                # Workers keep the state they have and catch up when the broker is back.
                log.warning("broadcast reader: %s", error)
        return len(messages)

    def caught_up(self, timeout: float = 30.0) -> None:
        """Apply everything written to the topics before this call; raises TimeoutError."""
        consumer, began_ms = self._started(), int(time.time() * 1000)
        deadline, probe = time.monotonic() + timeout, self._probe
        if probe is None:
            raise RuntimeError("the broadcast reader is not started")
        ends = {}
        for tp in self._partitions:
            try:
                low, high = watermarks(probe, tp, max(deadline - time.monotonic(), 0.1))
            except KafkaException as error:
                raise TimeoutError(f"{tp.topic} end offsets not known: {error}") from error
            if high > low:  # an empty partition has nothing to wait for
                ends[tp.topic, tp.partition] = high
        while not self._reached(consumer, ends):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"broadcast topics not caught up in {timeout:.0f} s")
            self.poll(0.05)
        self._caught_up_ms = max(self._caught_up_ms, began_ms)

    def caught_up_with(self, written_ms: int, timeout: float = 30.0) -> None:
        """Apply everything written to the topics before ``written_ms`` (epoch ms); at once
        when a catch-up that began later has completed already."""
        if written_ms >= self._caught_up_ms:
            self.caught_up(timeout)

    def _reached(self, consumer: Consumer, ends: dict[tuple[str, int], int]) -> bool:
        # The position also moves past transaction markers and deleted records.
        positions = consumer.position(self._partitions)
        return all(
            tp.offset >= ends[tp.topic, tp.partition]
            for tp in positions
            if (tp.topic, tp.partition) in ends
        )

    def _started(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("the broadcast reader is not started")
        return self._consumer

    def _apply_message(self, message: Delivered) -> None:
        try:
            record = self._codec.decode(message.value)
        except DecodeError as error:
            # Every worker reads this record; the dead letter's derived id makes copies one.
            log.error("undecodable record on %s: %s", message.topic, error)
            self._undecodable(message, error)
            return
        self._apply(record)
