"""Reading and checking Stripe's request parameters in the card simulator.

Stripe takes form-encoded bodies with nested keys (``metadata[order_id]=…``,
``payment_method_types[0]=card``) and refuses a parameter it does not know, a missing one or a
malformed one with a 400 ``invalid_request_error`` naming the parameter. Such a refusal happens
before anything executes, so it is never saved under an idempotency key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from channels.card.objects import error_json
from events.money import is_known_currency

Params = dict[str, str]

# One clause of Stripe's search query language that the simulator understands:
# metadata['key']:'value', with quotes inside either part escaped by a backslash.
_QUOTED = r"'((?:[^'\\]|\\.)*)'"
_METADATA_CLAUSE = re.compile(rf"metadata\[{_QUOTED}\]:{_QUOTED}")
_AND = re.compile(r"\s+AND\s+")


@dataclass(frozen=True)
class ApiAnswer:
    """A status and JSON body; ``saved`` when the call executed and its key keeps the answer."""

    status: int
    body: dict[str, Any]
    saved: bool = True
    replayed: bool = False


@dataclass(frozen=True)
class ApiCall:
    """One request's parameters and the object id in its path (empty when none)."""

    params: Params
    target: str = ""


class Refusal(Exception):
    """Raised inside an operation to answer with ``answer`` instead of going on."""

    def __init__(self, answer: ApiAnswer) -> None:
        super().__init__(answer.body.get("error", {}).get("message", ""))
        self.answer = answer


def invalid(message: str, param: str | None = None, code: str | None = None) -> Refusal:
    """A 400 ``invalid_request_error`` raised before executing (so never saved)."""
    body = error_json("invalid_request_error", message, code=code, param=param)
    return Refusal(ApiAnswer(400, body, saved=False))


def top_name(key: str) -> str:
    """The parameter a form key belongs to: ``metadata`` for ``metadata[order_id]``."""
    return key.partition("[")[0]


def require_known(params: Params, allowed: frozenset[str]) -> None:
    """Refuse the first parameter the endpoint does not take, as Stripe does."""
    for key in params:
        if top_name(key) not in allowed:
            raise invalid(f"Received unknown parameter: {key}", top_name(key), "parameter_unknown")


def nested(params: Params, name: str) -> dict[str, str]:
    """The hash parameter ``name``: ``{"order_id": "x"}`` from ``metadata[order_id]=x``."""
    prefix = f"{name}["
    return {
        key[len(prefix) : -1]: value
        for key, value in params.items()
        if key.startswith(prefix) and key.endswith("]")
    }


def required(params: Params, name: str) -> str:
    """A parameter that must be present and not empty."""
    value = params.get(name)
    if not value:
        raise invalid(f"Missing required param: {name}.", name, "parameter_missing")
    return value


def positive_amount(params: Params, name: str = "amount") -> int | None:
    """An amount in integer minor units, or None when absent; never read through a float."""
    text = params.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or int(text) <= 0:
        raise invalid("Invalid positive integer", name, "parameter_invalid_integer")
    return int(text)


def currency_code(params: Params) -> str:
    """The ISO 4217 code of the ``currency`` parameter (Stripe's lower case accepted)."""
    code = required(params, "currency").upper()
    if not is_known_currency(code):
        raise invalid(f"Invalid currency: {code.lower()}.", "currency", "parameter_invalid_string")
    return code


def search_metadata(query: str) -> dict[str, str]:
    """The ``metadata['k']:'v'`` clauses of a search query, joined by AND, as a dict."""
    wanted: dict[str, str] = {}
    for clause in _AND.split(query.strip()):
        match = _METADATA_CLAUSE.fullmatch(clause)
        if match is None:
            raise invalid(f"Unsupported search query: {query!r}", "query")
        wanted[_unescape(match.group(1))] = _unescape(match.group(2))
    return wanted


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)
