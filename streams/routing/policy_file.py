"""The policy file format: from TOML text to a RoutingPolicy, every problem at its key and line.

A policy file (see docs/routing-policy.md) is checked completely when it is loaded: every
problem is reported at once with its key path and the line it is written on, and a file with any
problem is refused as a whole. Nothing in the file is ever evaluated as code.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from events.money import is_known_currency
from events.records import PaymentMethod
from streams.routing.health import HealthSettings
from streams.routing.policy import (
    BASIS_POINTS,
    ChannelPolicy,
    Fee,
    MerchantPolicy,
    RoutingPolicy,
    RoutingRule,
    SuccessRateSettings,
)
from streams.routing.quotas import NO_QUOTA, DailyQuota
from streams.routing.toml_reader import (
    Check,
    KeyPath,
    PolicyError,
    PolicyProblem,
    TableReader,
    describe,
    matching,
)

# PolicyError and PolicyProblem are defined in toml_reader, whose TableReader records them;
# callers import them from here, and listing them re-exports them under strict mypy.
__all__ = [
    "DEFAULT_POLICY",
    "PolicyError",
    "PolicyProblem",
    "default_policy",
    "load_policy",
    "parse_policy",
]

DEFAULT_POLICY = "default.policy.toml"
_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MERCHANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
_REGION = re.compile(r"[A-Z]{2}")
_METHODS = {m.value: m for m in PaymentMethod if m is not PaymentMethod.UNSPECIFIED}


_NAME_RULE = "of a-z, 0-9 and _, starting with a letter"
_channel_name = matching(_CHANNEL_NAME, f"a channel name: 1-32 characters {_NAME_RULE}")
_rule_name = matching(_RULE_NAME, f"a rule name: 1-64 characters {_NAME_RULE}")
_merchant_id = matching(_MERCHANT_ID, "a merchant id")
_region = matching(_REGION, "a region like CN")


def _method(name: str) -> str | None:
    return None if name in _METHODS else f"unknown method {name!r}: expected {', '.join(_METHODS)}"


def _currency(code: str) -> str | None:
    return None if is_known_currency(code) else f"{code!r} is not an ISO 4217 currency code"


def _known(channels: Mapping[str, object]) -> Check:
    def check(name: str) -> str | None:
        return None if name in channels else f"unknown channel {name!r}"

    return check


_CHANNEL_KEYS = ("enabled", "methods", "currencies", "fees", "daily_quota", "merchant_daily_quota")
_QUOTA_KEYS = ("count", "amount")


def _channel(r: TableReader, name: str, value: Any) -> ChannelPolicy:
    path: KeyPath = ("channels", name)
    if (problem := _channel_name(name)) is not None:
        r.fail(path, problem)
    table = r.table(value, path, _CHANNEL_KEYS)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        r.fail((*path, "enabled"), f"expected true or false, got {describe(enabled)}")
    methods = tuple(_METHODS[m] for m in _required(r, table, path, "methods", _method))
    currencies = _required(r, table, path, "currencies", _currency)
    fees = _fees(r, table.get("fees"), (*path, "fees"), methods, currencies)
    quotas = (_quota(r, table.get(key), (*path, key), currencies) for key in _CHANNEL_KEYS[-2:])
    return ChannelPolicy(name, enabled is True, methods, currencies, fees, *quotas)


def _required(
    r: TableReader, table: dict[str, Any], path: KeyPath, key: str, check: Check
) -> tuple[str, ...]:
    values = r.strings(table, path, key, check)
    if values is None:
        r.fail(path, f"missing {key!r}")
    return values or ()


def _fees(
    r: TableReader,
    value: Any,
    path: KeyPath,
    methods: tuple[PaymentMethod, ...],
    currencies: tuple[str, ...],
) -> dict[PaymentMethod, Fee]:
    table = r.table({} if value is None else value, path, tuple(m.value for m in methods))
    fees: dict[PaymentMethod, Fee] = {}
    for method in methods:
        if method.value in table:
            fees[method] = _fee(r, table[method.value], (*path, method.value), currencies)
        else:
            example = "{ bps = 60, fixed = { CNY = 0 } }"
            r.fail(path, f"missing the fee for {method.value}, like {example}")
    return fees


def _fee(r: TableReader, value: Any, path: KeyPath, currencies: tuple[str, ...]) -> Fee:
    fee = r.table(value, path, ("bps", "fixed"))
    if "bps" not in fee:
        r.fail(path, "missing 'bps'")
    written = fee.get("fixed", {})
    fixed = _amounts(r, written, (*path, "fixed"), currencies)
    missing = [c for c in currencies if c not in written] if isinstance(written, dict) else []
    if missing:
        r.fail((*path, "fixed"), f"missing the fixed fee in {', '.join(missing)} (0 for none)")
    return Fee(r.integer(fee, path, "bps", high=BASIS_POINTS) or 0, fixed)


def _amounts(
    r: TableReader, value: Any, path: KeyPath, currencies: tuple[str, ...]
) -> dict[str, int]:
    table = r.table(value, path, None)
    amounts: dict[str, int] = {}
    for currency in table:
        if currency not in currencies:
            r.fail((*path, currency), f"{currency!r} is not one of the channel's currencies")
        elif (amount := r.integer(table, path, currency)) is not None:
            amounts[currency] = amount
    return amounts


def _quota(r: TableReader, value: Any, path: KeyPath, currencies: tuple[str, ...]) -> DailyQuota:
    if value is None:
        return NO_QUOTA
    table = r.table(value, path, _QUOTA_KEYS)
    count = r.integer(table, path, "count")
    amounts = _amounts(r, table.get("amount", {}), (*path, "amount"), currencies)
    return DailyQuota(count, amounts) if count is not None or amounts else NO_QUOTA


def _merchant(
    r: TableReader, merchant_id: str, value: Any, channels: Mapping[str, ChannelPolicy]
) -> MerchantPolicy:
    path: KeyPath = ("merchants", merchant_id)
    if (problem := _merchant_id(merchant_id)) is not None:
        r.fail(path, problem)
    table = r.table(value, path, ("channels", "daily_quota"))
    allowed = r.strings(table, path, "channels", _known(channels))
    quota_path = (*path, "daily_quota")
    quotas = {
        name: _quota(r, quota, (*quota_path, name), channels[name].currencies)
        for name, quota in r.table(
            table.get("daily_quota", {}), quota_path, tuple(channels)
        ).items()
        if name in channels
    }
    return MerchantPolicy(merchant_id, None if allowed is None else frozenset(allowed), quotas)


_RULE_KEYS = ("name", "method", "currency", "amount", "merchants", "regions", "channels", "weights")


def _rule(
    r: TableReader, index: int, value: Any, channels: Mapping[str, ChannelPolicy]
) -> RoutingRule:
    path: KeyPath = ("rules", index)
    before = len(r.problems)
    table = r.table(value, path, _RULE_KEYS)
    name = table.get("name")
    problem = _rule_name(name) if isinstance(name, str) else f"missing 'name' {_NAME_RULE}"
    if problem is not None:
        r.fail((*path, "name"), problem)
    methods = r.strings(table, path, "method", _method)
    currencies = r.strings(table, path, "currency", _currency)
    band = _band(r, table.get("amount"), (*path, "amount"), currencies)
    names = _required(r, table, path, "channels", _known(channels))
    weights = _weights(r, table.get("weights"), (*path, "weights"), names)
    for channel in names if len(r.problems) == before else ():
        if not _serves_any(channels[channel], methods, currencies):
            r.fail((*path, "channels"), f"{channel!r} takes no payment this rule matches")
    merchants = r.strings(table, path, "merchants", _merchant_id)
    regions = r.strings(table, path, "regions", _region)
    return RoutingRule(
        name=str(name),
        channels=names,
        weights=weights,
        methods=None if methods is None else frozenset(_METHODS[m] for m in methods),
        currencies=_set(currencies),
        min_amount=band[0],
        max_amount=band[1],
        merchants=_set(merchants),
        regions=_set(regions),
        line=r.lines.line_of(path),
    )


def _set(values: tuple[str, ...] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def _band(
    r: TableReader, value: Any, path: KeyPath, currencies: tuple[str, ...] | None
) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    table = r.table(value, path, ("min", "max"))
    low, high = r.integer(table, path, "min"), r.integer(table, path, "max", low=1)
    if currencies is None or len(currencies) != 1:
        r.fail(
            path, "an amount band is in minor units of one currency: give exactly one 'currency'"
        )
    if low is not None and high is not None and low >= high:
        r.fail(path, f"'min' must be below 'max' (the band is [min, max)), got {low} and {high}")
    return low, high


def _weights(
    r: TableReader, value: Any, path: KeyPath, names: tuple[str, ...]
) -> tuple[int, ...] | None:
    if value is None:
        return None
    whole = isinstance(value, list) and all(type(w) is int and w >= 0 for w in value)
    if not whole or len(value) != len(names) or sum(value) == 0:
        rule = f"one whole number of 0 or more per channel ({len(names)}), not all 0"
        r.fail(path, f"expected {rule}, got {describe(value)}")
        return None
    return tuple(value)


def _serves_any(
    channel: ChannelPolicy, methods: tuple[str, ...] | None, currencies: tuple[str, ...] | None
) -> bool:
    method_ok = methods is None or any(_METHODS[m] in channel.methods for m in methods)
    return method_ok and (currencies is None or any(c in channel.currencies for c in currencies))


# Each setting's lowest and highest allowed value (None: no highest).
_BOUNDS: dict[str, tuple[int, int | None]] = {
    "exploration_bp": (0, BASIS_POINTS),
    "band_bp": (0, BASIS_POINTS),
    "half_life_seconds": (1, None),
    "prior_success_bp": (0, BASIS_POINTS),
    "prior_weight": (1, None),
    "prior_latency_ms": (0, None),
    "failures_in_a_row": (1, None),
    "probe_interval_seconds": (1, None),
    "probe_successes": (1, None),
}


def _settings(r: TableReader, data: dict[str, Any], name: str, defaults: object) -> dict[str, int]:
    """The integer settings of table ``name``; a setting not written keeps its default."""
    table = r.table(data.get(name, {}), (name,), _SETTINGS[name])
    values: dict[str, int] = {}
    for key in _SETTINGS[name]:
        value = r.integer(table, (name,), key, *_BOUNDS[key])
        values[key] = getattr(defaults, key) if value is None else value
    return values


_SETTINGS = {
    "success_rate": ("exploration_bp", "band_bp"),
    "health": ("half_life_seconds", "prior_success_bp", "prior_weight", "prior_latency_ms"),
    "elimination": ("failures_in_a_row", "probe_interval_seconds", "probe_successes"),
}
_TOP_KEYS = (
    "version",
    "kill_switch",
    "static_priority",
    "channels",
    "merchants",
    "rules",
    *_SETTINGS,
)


def _policy(r: TableReader, data: dict[str, Any], digest: str) -> RoutingPolicy:
    r.table(data, (), _TOP_KEYS)
    version = r.integer(data, (), "version", low=1)
    if "version" not in data:
        r.fail((), "missing 'version = N' (a whole number of 1 or more)")
    kill_switch = data.get("kill_switch", False)
    if not isinstance(kill_switch, bool):
        r.fail(("kill_switch",), f"expected true or false, got {describe(kill_switch)}")
    channels = {
        n: _channel(r, n, v)
        for n, v in r.table(data.get("channels", {}), ("channels",), None).items()
    }
    if not channels:
        r.fail(("channels",), "a policy needs at least one channel, like [channels.card]")
    static = r.strings(data, (), "static_priority", _known(channels))
    merchants = r.table(data.get("merchants", {}), ("merchants",), None)
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        r.fail(("rules",), "rules are an array of tables: write each as [[rules]]")
        rules = []
    health = _settings(r, data, "health", HealthSettings())
    health |= _settings(r, data, "elimination", HealthSettings())
    success_rate = _settings(r, data, "success_rate", SuccessRateSettings())
    return RoutingPolicy(
        version=version or 1,
        channels=channels,
        static_priority=tuple(channels) if static is None else static,
        kill_switch=kill_switch is True,
        rules=tuple(_rule(r, i, rule, channels) for i, rule in enumerate(rules)),
        merchants={m: _merchant(r, m, v, channels) for m, v in merchants.items()},
        success_rate=SuccessRateSettings(**success_rate),
        health=HealthSettings(**health),
        digest=digest,
    )


def _unique_rule_names(r: TableReader, rules: tuple[RoutingRule, ...]) -> None:
    first: dict[str, int] = {}
    for index, rule in enumerate(rules):
        earlier = first.setdefault(rule.name, index)
        if earlier != index:
            r.fail(("rules", index, "name"), f"rule {rule.name!r} is already rules[{earlier}]")


_SYNTAX_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def parse_policy(text: str, *, source: str = "<policy>") -> RoutingPolicy:
    """Load a policy's TOML text; raises PolicyError listing every problem in it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        where = _SYNTAX_LINE.search(str(error))
        line = int(where.group(1)) if where else None
        raise PolicyError(source, [PolicyProblem(line, "", f"not valid TOML: {error}")]) from None
    reader = TableReader(text)
    policy = _policy(reader, data, hashlib.sha256(text.encode("utf-8")).hexdigest())
    _unique_rule_names(reader, policy.rules)
    if reader.problems:
        raise PolicyError(source, sorted(reader.problems, key=lambda p: (p.line or 0, p.path)))
    return policy


def load_policy(path: Path) -> RoutingPolicy:
    """Load the policy file at ``path``; problems are reported against the path."""
    return parse_policy(path.read_text(encoding="utf-8"), source=str(path))


def default_policy() -> RoutingPolicy:
    """The policy shipped with paystream (``default.policy.toml``)."""
    text = resources.files("streams.routing").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
    return parse_policy(text, source=DEFAULT_POLICY)
