"""Webhook signatures as Stripe makes them.

The header is ``Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` where the MAC covers
``"<t>.<raw body>"`` under the endpoint's secret. While a secret is being rolled the channel
signs with every live secret, so one header may carry several ``v1`` values; a receiver accepts
the payload when any of them matches any secret it knows. The timestamp bounds replays: a
correctly signed payload older than the tolerance is refused for that reason alone.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_SCHEME = "v1"
TOLERANCE_SECONDS = 300


class SignatureProblem(StrEnum):
    """Why a signature header was refused; each reason is distinct so logs can tell them apart."""

    MISSING = "signature_header_missing"
    MALFORMED = "signature_header_malformed"
    NO_V1 = "signature_scheme_v1_missing"
    MISMATCH = "signature_mismatch"
    STALE = "timestamp_outside_tolerance"


class SignatureRefused(ValueError):
    """A webhook whose signature header does not prove it came from the channel."""

    def __init__(self, problem: SignatureProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class ParsedSignature:
    """The parts of a ``Stripe-Signature`` header."""

    timestamp: int
    signatures: tuple[str, ...]


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<payload>"`` under ``secret``."""
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` value for ``payload``, one ``v1`` per live secret."""
    when = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={when}"]
    parts += [
        f"{SIGNATURE_SCHEME}={compute_signature(payload, secret, when)}" for secret in secrets
    ]
    return ",".join(parts)


def parse_signature_header(header: str | None) -> ParsedSignature:
    """Split the header into its timestamp and ``v1`` signatures; other schemes are ignored."""
    if not header:
        raise SignatureRefused(SignatureProblem.MISSING)
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        name, separator, value = item.strip().partition("=")
        if not separator or not value:
            raise SignatureRefused(SignatureProblem.MALFORMED)
        if name == "t":
            timestamps.append(value)
        elif name == SIGNATURE_SCHEME:
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        raise SignatureRefused(SignatureProblem.MALFORMED)
    if not signatures:
        raise SignatureRefused(SignatureProblem.NO_V1)
    return ParsedSignature(int(timestamps[0]), tuple(signatures))


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    tolerance_seconds: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check ``header`` against ``payload`` under any of ``secrets``; returns the timestamp.

    Raises SignatureRefused. The signature is checked before the age so that a forged header
    is always reported as a mismatch, never as merely late.
    """
    parsed = parse_signature_header(header)
    if not _any_matches(payload, parsed, secrets):
        raise SignatureRefused(SignatureProblem.MISMATCH)
    current = time.time() if now is None else now
    if abs(current - parsed.timestamp) > tolerance_seconds:
        raise SignatureRefused(SignatureProblem.STALE)
    return parsed.timestamp


def _any_matches(payload: bytes, parsed: ParsedSignature, secrets: Sequence[str]) -> bool:
    # Every pair is compared, in constant time each, so the time taken says nothing about
    # which secret or which signature came close.
    matched = False
    for secret in secrets:
        expected = compute_signature(payload, secret, parsed.timestamp)
        for candidate in parsed.signatures:
            matched |= hmac.compare_digest(expected.encode(), candidate.encode())
    return matched
