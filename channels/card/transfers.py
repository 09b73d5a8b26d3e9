"""The card simulator's Connect transfers: the platform's balance paying connected accounts.

``POST /v1/transfers`` moves ``amount`` from the platform's available balance to the connected
account ``destination`` at once, so a Transfer exists only once the money moved; a refusal
leaves none. ``GET /v1/transfers`` lists them newest first, filtered by ``transfer_group`` or
``destination``, and ``GET /v1/transfers/{id}`` retrieves one. Connected accounts are told by
their ids: ``acct_missing…`` does not exist, ``acct_unverified…`` has requirements past due
(so its ``transfers`` capability is inactive), and every other ``acct_…`` takes transfers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from channels.card.book import transaction_id
from channels.card.objects import error_json, list_json, unix_seconds
from channels.card.params import (
    ApiAnswer,
    ApiCall,
    Params,
    Refusal,
    currency_code,
    invalid,
    nested,
    positive_amount,
    require_known,
    required,
)
from channels.simulator import Behaviour

TRANSFER_PREFIX = "tr_"
ACCOUNT_PREFIX = "acct_"
MISSING_ACCOUNT_PREFIX = "acct_missing"
UNVERIFIED_ACCOUNT_PREFIX = "acct_unverified"
DEFAULT_PAYOUT_BALANCE_MINOR = 10**12
_PAYMENT_PREFIX = "py_"  # the payment the transfer makes on the connected account
_LIST_LIMIT = 100
_DEFAULT_LIST_LIMIT = 10

_TRANSFER_PARAMS = frozenset(
    {"amount", "currency", "destination", "description", "metadata", "transfer_group"}
    | {"source_type", "expand"}
)
_LIST_PARAMS = frozenset({"transfer_group", "destination", "limit", "starting_after", "expand"})

Publish = Callable[[str, dict[str, Any], datetime], None]


@dataclass(frozen=True)
class SimTransfer:
    """A transfer the simulated platform made: money that left its balance."""

    transfer_id: str
    amount_minor: int
    currency: str
    destination: str
    created_at: datetime
    transfer_group: str | None
    description: str | None
    metadata: dict[str, str]


class TransferDesk:
    """The platform's available balance and the transfers drawn from it."""

    def __init__(
        self,
        behaviour: Behaviour,
        clock: Callable[[], datetime],
        publish: Publish,
        balance_minor: int = DEFAULT_PAYOUT_BALANCE_MINOR,
    ) -> None:
        # One figure for every currency: Stripe keeps one per currency, the simulator needs one.
        self.balance_minor = balance_minor
        self._behaviour = behaviour
        self._clock = clock
        self._publish = publish
        self._transfers: list[SimTransfer] = []
        self._serial = 0

    def transfers(self) -> list[SimTransfer]:
        """Every transfer made, oldest first."""
        return list(self._transfers)

    def create(self, call: ApiCall) -> ApiAnswer:
        """``POST /v1/transfers``: pay a connected account from the platform's balance."""
        params = call.params
        require_known(params, _TRANSFER_PARAMS)
        amount = positive_amount(params)
        if amount is None:
            raise invalid("Missing required param: amount.", "amount", "parameter_missing")
        currency = currency_code(params)
        destination = _payable(required(params, "destination"))
        refused = self._refusal(amount)
        if refused is not None:
            return refused
        transfer = self._make(params, amount, currency, destination)
        body = transfer_json(transfer)
        self._publish("transfer.created", body, transfer.created_at)
        return ApiAnswer(200, body)

    def list_transfers(self, call: ApiCall) -> ApiAnswer:
        """``GET /v1/transfers``: newest first, filtered exactly by group and destination."""
        params = call.params
        require_known(params, _LIST_PARAMS)
        found = [t for t in reversed(self._transfers) if _listed(t, params)]
        found = _after(found, params.get("starting_after"))
        limit = _limit(params)
        page = [transfer_json(transfer) for transfer in found[:limit]]
        return ApiAnswer(200, list_json("/v1/transfers", page, has_more=len(found) > limit))

    def retrieve(self, call: ApiCall) -> ApiAnswer:
        """``GET /v1/transfers/{id}``."""
        for transfer in self._transfers:
            if transfer.transfer_id == call.target:
                return ApiAnswer(200, transfer_json(transfer))
        message = f"No such transfer: '{call.target}'"
        error = error_json("invalid_request_error", message, "resource_missing", "id")
        raise Refusal(ApiAnswer(404, error, saved=False))

    def _refusal(self, amount: int) -> ApiAnswer | None:
        # Refused while executing, so the refusal is saved under the key like a success.
        if amount > self.balance_minor:
            message = (
                "You have insufficient available funds in your Stripe account. Add funds to "
                "your available balance or transfer a smaller amount."
            )
            return _refused(message, "balance_insufficient")
        if not self._behaviour.succeeds():
            message = (
                "The requested transfer cannot be created. "
                "Contact us if you are receiving this error."
            )
            return _refused(message, "transfers_not_allowed")
        return None

    def _make(self, params: Params, amount: int, currency: str, destination: str) -> SimTransfer:
        now = self._clock()
        self._serial += 1
        transfer = SimTransfer(
            transfer_id=f"{TRANSFER_PREFIX}{now:%Y%m%d}{self._serial:010d}",
            amount_minor=amount,
            currency=currency,
            destination=destination,
            created_at=now,
            transfer_group=params.get("transfer_group") or None,
            description=params.get("description") or None,
            metadata=nested(params, "metadata"),
        )
        self.balance_minor -= amount
        self._transfers.append(transfer)
        return transfer


def transfer_json(transfer: SimTransfer) -> dict[str, Any]:
    """A Transfer object."""
    suffix = transfer.transfer_id.removeprefix(TRANSFER_PREFIX)
    return {
        "id": transfer.transfer_id,
        "object": "transfer",
        "amount": transfer.amount_minor,
        "amount_reversed": 0,
        "balance_transaction": transaction_id(transfer.transfer_id),
        "created": unix_seconds(transfer.created_at),
        "currency": transfer.currency.lower(),
        "description": transfer.description,
        "destination": transfer.destination,
        "destination_payment": _PAYMENT_PREFIX + suffix,
        "livemode": False,
        "metadata": dict(transfer.metadata),
        "reversals": list_json(f"/v1/transfers/{transfer.transfer_id}/reversals", []),
        "reversed": False,
        "source_transaction": None,
        "source_type": "card",
        "transfer_group": transfer.transfer_group,
    }


def _refused(message: str, code: str) -> ApiAnswer:
    return ApiAnswer(400, error_json("invalid_request_error", message, code))


def _payable(destination: str) -> str:
    # Both are checked before executing, as a parameter is, so neither is saved under the key.
    if not destination.startswith(ACCOUNT_PREFIX) or destination.startswith(MISSING_ACCOUNT_PREFIX):
        message = f"No such destination: '{destination}'"
        raise _destination_refusal(message, "resource_missing")
    if destination.startswith(UNVERIFIED_ACCOUNT_PREFIX):
        message = (
            f"The destination account {destination} cannot receive transfers: its transfers "
            "capability is inactive because the account's requirements are past due. The "
            "account holder must complete verification first."
        )
        raise _destination_refusal(message, "transfers_not_allowed")
    return destination


def _destination_refusal(message: str, code: str) -> Refusal:
    body = error_json("invalid_request_error", message, code, "destination")
    return Refusal(ApiAnswer(400, body, saved=False))


def _listed(transfer: SimTransfer, params: Params) -> bool:
    group, destination = params.get("transfer_group"), params.get("destination")
    return (group is None or transfer.transfer_group == group) and (
        destination is None or transfer.destination == destination
    )


def _after(found: list[SimTransfer], starting_after: str | None) -> list[SimTransfer]:
    if starting_after is None:
        return found
    ids = [transfer.transfer_id for transfer in found]
    if starting_after not in ids:
        message = f"No such transfer: '{starting_after}'"
        raise invalid(message, "starting_after", "resource_missing")
    return found[ids.index(starting_after) + 1 :]


def _limit(params: Params) -> int:
    limit = positive_amount(params, "limit")
    if limit is None:
        return _DEFAULT_LIST_LIMIT
    if limit > _LIST_LIMIT:
        raise invalid("This value must be less than or equal to 100.", "limit")
    return limit
