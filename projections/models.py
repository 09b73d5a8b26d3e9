"""SQLAlchemy models of the read models, and the offsets that make them exactly-once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every projection table."""


class ProjectionOffset(Base):
    """The next offset a projection will read from one partition.

    Written in the same transaction as the rows it produced: after a crash, the rows and the
    position agree, so nothing is skipped and nothing is applied twice.
    """

    __tablename__ = "projection_offsets"

    projection: Mapped[str] = mapped_column(String(100), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class PaymentStatus(Base):
    """One row per payment: what was asked for and where it stands."""

    __tablename__ = "payment_status"

    payment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64), index=True)
    order_id: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    command_id: Mapped[str] = mapped_column(String(64))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_event_id: Mapped[str] = mapped_column(String(36))


class RiskDecision(Base):
    """One row per payment the risk stage decided: the outcome, why, and any hold on it."""

    __tablename__ = "risk_decisions"

    payment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    fired_rules: Mapped[str] = mapped_column(Text)
    ruleset_version: Mapped[int] = mapped_column(Integer)
    hold_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(Text)
    resolution_reason: Mapped[str | None] = mapped_column(Text)
    last_event_id: Mapped[str] = mapped_column(String(36))


class PaymentChannel(Base):
    """One row per routed payment: its channel, where the attempt stands, what went back."""

    __tablename__ = "payment_channels"

    payment_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str | None] = mapped_column(String(32), index=True)
    routing_reason: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(24), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    fee_minor: Mapped[int | None] = mapped_column(BigInteger)
    channel_ref: Mapped[str | None] = mapped_column(Text)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    failure: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChannelRefund(Base):
    """One row per refund a channel made: a copy of the event replayed onto the log counts once."""

    __tablename__ = "channel_refunds"

    refund_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payment_id: Mapped[str] = mapped_column(String(36), index=True)
    channel: Mapped[str | None] = mapped_column(String(32))
    channel_ref: Mapped[str | None] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    refunded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
