"""The card simulator's book: the shared order book with what Stripe keeps beside each order.

Stripe's test payment methods decide how a card behaves (``pm_card_visa`` pays,
``pm_card_visa_chargeDeclinedInsufficientFunds`` is declined for insufficient funds), so the
simulator reads them the same way. A PaymentIntent is kept under our order id (its
``metadata[order_id]``), which is what makes a repeated charge find the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from channels.simulator import OrderBook, SimOrder, SimRefund

INTENT_PREFIX = "pi_"
REFUND_PREFIX = "re_"
CHARGE_PREFIX = "ch_"
TRANSACTION_PREFIX = "txn_"
TEST_CARD_PREFIX = "pm_card_"


@dataclass(frozen=True)
class CardError:
    """A card failure as Stripe reports it: an error code and, for declines, the issuer's reason."""

    code: str
    decline_code: str | None
    message: str


GENERIC_DECLINE = CardError("card_declined", "generic_decline", "Your card was declined.")

# Stripe's test payment methods that fail, by what follows the brand (``pm_card_visa_…``).
_FAILING_TEST_CARDS: dict[str, CardError] = {
    "chargeDeclined": GENERIC_DECLINE,
    "chargeCustomerFail": GENERIC_DECLINE,
    "chargeDeclinedInsufficientFunds": CardError(
        "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "chargeDeclinedFraudulent": CardError("card_declined", "fraudulent", "Your card was declined."),
    "chargeDeclinedLostCard": CardError("card_declined", "lost_card", "Your card was declined."),
    "chargeDeclinedStolenCard": CardError(
        "card_declined", "stolen_card", "Your card was declined."
    ),
    "chargeDeclinedExpiredCard": CardError(
        "expired_card", "expired_card", "Your card has expired."
    ),
    "chargeDeclinedIncorrectCvc": CardError(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "chargeDeclinedProcessingError": CardError(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}


def is_test_card(payment_method: str) -> bool:
    """Whether ``payment_method`` is one of Stripe's ``pm_card_…`` test payment methods."""
    return payment_method.startswith(TEST_CARD_PREFIX) and len(payment_method) > len(
        TEST_CARD_PREFIX
    )


def scripted_failure(payment_method: str) -> CardError | None:
    """How a test payment method fails, or None for a card that pays."""
    name = payment_method.removeprefix(TEST_CARD_PREFIX)
    if name in _FAILING_TEST_CARDS:
        return _FAILING_TEST_CARDS[name]
    _, _, behaviour = name.partition("_")
    return _FAILING_TEST_CARDS.get(behaviour)


@dataclass
class IntentDetails:
    """What Stripe keeps on a PaymentIntent beyond the shared order's fields."""

    payment_method: str
    metadata: dict[str, str]
    error: CardError | None = None


class CardBook(OrderBook):
    """The shared order book with PaymentIntent details, lookup by ``pi_`` id, ``re_`` refunds."""

    def __init__(self) -> None:
        super().__init__(INTENT_PREFIX)
        self._by_intent: dict[str, SimOrder] = {}
        self._details: dict[str, IntentDetails] = {}
        self._refund_metadata: dict[str, dict[str, str]] = {}

    def add_intent(self, order: SimOrder, details: IntentDetails) -> tuple[SimOrder, bool]:
        """Keep a new PaymentIntent; returns the one kept and whether it is the new one."""
        kept = self.add_charge(order)
        if kept is not order:
            return kept, False
        self._by_intent[order.channel_ref] = order
        self._details[order.order_id] = details
        return order, True

    def intent(self, intent_id: str) -> SimOrder | None:
        """The order behind a ``pi_`` id."""
        return self._by_intent.get(intent_id)

    def details(self, order: SimOrder) -> IntentDetails:
        """The PaymentIntent details of an order this book keeps."""
        return self._details[order.order_id]

    def search_metadata(self, wanted: dict[str, str]) -> list[SimOrder]:
        """Orders whose metadata holds every pair in ``wanted``, oldest first."""
        return [
            order
            for order in self.orders()
            if all(self._details[order.order_id].metadata.get(k) == v for k, v in wanted.items())
        ]

    def refund(
        self, order_id: str, refund_id: str, amount_minor: int, when: datetime, reason: str = ""
    ) -> SimRefund:
        """The shared book's refund, renamed ``re_…``: the base names every reference alike."""
        made = super().refund(order_id, refund_id, amount_minor, when, reason)
        if made.channel_ref.startswith(INTENT_PREFIX):
            made.channel_ref = REFUND_PREFIX + made.channel_ref.removeprefix(INTENT_PREFIX)
        return made

    def keep_refund_metadata(self, refund: SimRefund, metadata: dict[str, str]) -> None:
        """Remember the metadata a refund was made with (the first call's wins)."""
        self._refund_metadata.setdefault(refund.refund_id, dict(metadata))

    def refund_metadata(self, refund: SimRefund) -> dict[str, str]:
        """The metadata a refund was made with."""
        return self._refund_metadata.get(refund.refund_id, {"refund_id": refund.refund_id})


def charge_id(intent_id: str) -> str:
    """The id of a PaymentIntent's charge (this simulator makes exactly one per intent)."""
    return CHARGE_PREFIX + intent_id.removeprefix(INTENT_PREFIX)


def transaction_id(source_id: str) -> str:
    """The balance transaction id of a charge or refund."""
    return TRANSACTION_PREFIX + source_id.partition("_")[2]
