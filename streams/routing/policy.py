"""The routing policy: channels, merchants, rules and settings.

Policy files are TOML, loaded and checked by ``streams.routing.policy_file``; the types here are
what a loaded policy is made of, and what routing reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events.records import PaymentMethod
from streams.routing.health import HealthSettings
from streams.routing.quotas import NO_QUOTA, DailyQuota

BASIS_POINTS = 10_000


def fee_minor(amount_minor: int, bps: int, fixed_minor: int) -> int:
    """``amount * bps / 10000`` rounded half up, plus the fixed part: integers throughout."""
    return (amount_minor * bps + BASIS_POINTS // 2) // BASIS_POINTS + fixed_minor


@dataclass(frozen=True, slots=True)
class Fee:
    """A channel's price for one method: basis points of the amount plus a fixed amount in
    minor units of each currency."""

    bps: int
    fixed: Mapping[str, int]

    def for_amount(self, amount_minor: int, currency: str) -> int:
        """The fee in minor units of ``currency`` for a payment of ``amount_minor``."""
        return fee_minor(amount_minor, self.bps, self.fixed[currency])


@dataclass(frozen=True, slots=True)
class ChannelPolicy:
    """One channel: whether it takes payments, which, at what fee, and its daily quotas (its
    own, and the one every merchant has on it)."""

    name: str
    enabled: bool
    methods: tuple[PaymentMethod, ...]
    currencies: tuple[str, ...]
    fees: Mapping[PaymentMethod, Fee]
    daily_quota: DailyQuota = NO_QUOTA
    merchant_daily_quota: DailyQuota = NO_QUOTA

    def serves(self, method: PaymentMethod, currency: str) -> bool:
        """True when the channel takes ``method`` in ``currency``."""
        return method in self.methods and currency in self.currencies


@dataclass(frozen=True, slots=True)
class MerchantPolicy:
    """What one merchant may use: its channels (None: all) and its own daily quotas on some."""

    merchant_id: str
    channels: frozenset[str] | None = None
    daily_quotas: Mapping[str, DailyQuota] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """When every condition that is set holds, route among ``channels`` only: by success rate
    with their order breaking ties, or by their ``weights`` when set. The amount band is
    ``[min_amount, max_amount)`` in minor units."""

    name: str
    channels: tuple[str, ...]
    weights: tuple[int, ...] | None = None
    methods: frozenset[PaymentMethod] | None = None
    currencies: frozenset[str] | None = None
    min_amount: int | None = None
    max_amount: int | None = None
    merchants: frozenset[str] | None = None
    regions: frozenset[str] | None = None
    line: int | None = None

    def matches(
        self, method: str, currency: str, amount_minor: int, merchant_id: str, region: str | None
    ) -> bool:
        """True when every condition of the rule holds for the payment."""
        return (
            (self.methods is None or method in self.methods)
            and (self.currencies is None or currency in self.currencies)
            and (self.min_amount is None or amount_minor >= self.min_amount)
            and (self.max_amount is None or amount_minor < self.max_amount)
            and (self.merchants is None or merchant_id in self.merchants)
            and (self.regions is None or region in self.regions)
        )


@dataclass(frozen=True, slots=True)
class SuccessRateSettings:
    """Success-rate routing: the share of payments that explore, and how far below the best
    success rate a channel may be and still compete on its fee (both in basis points)."""

    exploration_bp: int = 500
    band_bp: int = 200


@dataclass(frozen=True)
class RoutingPolicy:
    """A loaded policy; ``channels`` keep the file's order and ``digest`` (SHA-256 of the text)
    identifies it in decisions next to its version."""

    version: int
    channels: Mapping[str, ChannelPolicy]
    static_priority: tuple[str, ...]
    kill_switch: bool = False
    rules: tuple[RoutingRule, ...] = ()
    merchants: Mapping[str, MerchantPolicy] = field(default_factory=dict)
    success_rate: SuccessRateSettings = field(default_factory=SuccessRateSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    digest: str = ""

    @property
    def priority(self) -> tuple[str, ...]:
        """Every channel in tie-break order: the static priority list, then the others in the
        order the file declares them."""
        listed = set(self.static_priority)
        return self.static_priority + tuple(n for n in self.channels if n not in listed)
