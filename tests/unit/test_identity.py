"""Derived ids: stable, and the same text the standard library's UUIDv5 gives."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from events.identity import PAYMENT_NAMESPACE, derived_id, payment_id_for, uuid5_text


@given(st.text())
def test_uuid5_text_is_the_standard_uuid5(name: str) -> None:
    assert uuid5_text(name) == str(uuid.uuid5(PAYMENT_NAMESPACE, name))


def test_a_payment_id_never_changes() -> None:
    # Pinned as the first release computed it: every stored payment is addressed by it.
    assert payment_id_for("m-1", "order-1") == "a7e27ae9-ffbc-5101-b365-e4b1ac4c10ac"
    assert derived_id("m-1/order-1") == payment_id_for("m-1", "order-1")
