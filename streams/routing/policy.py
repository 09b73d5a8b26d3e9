"""The routing policy: channels, merchants, rules and settings, written as TOML.

A policy file (see docs/routing-policy.md) is checked completely when it is loaded: every
problem is reported at once with its key path and the line it is written on, and a file with any
problem is refused as a whole. Nothing in the file is ever evaluated as code.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from events.money import is_known_currency
from events.records import PaymentMethod
from streams.routing.health import HealthSettings
from streams.routing.quotas import NO_QUOTA, DailyQuota

BASIS_POINTS = 10_000
DEFAULT_POLICY = "default.policy.toml"
_CHANNEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_RULE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_MERCHANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
_REGION = re.compile(r"[A-Z]{2}")
_METHODS = {m.value: m for m in PaymentMethod if m is not PaymentMethod.UNSPECIFIED}

KeyPath = tuple[str | int, ...]


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


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One thing wrong in a policy file: the line (when known), the key path and what."""

    line: int | None
    path: str
    message: str


class PolicyError(ValueError):
    """A policy that cannot be loaded; ``problems`` lists everything wrong with it."""

    def __init__(self, source: str, problems: list[PolicyProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(_problem_text(source, p) for p in problems))


def _problem_text(source: str, problem: PolicyProblem) -> str:
    where = f"{source}:{problem.line}" if problem.line else source
    return (
        f"{where}: {problem.path}: {problem.message}"
        if problem.path
        else f"{where}: {problem.message}"
    )


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?")
_ASSIGNMENT = re.compile(
    r"""\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_KEY_PART = re.compile(r"""([A-Za-z0-9_-]+)|"([^"]*)"|'([^']*)'""")
_STRING = re.compile(r"""("(?:[^"\\]|\\.)*"|'[^']*')""")


def _open_brackets(text: str) -> int:
    """How many more arrays ``text`` opens than it closes (strings and comments aside)."""
    bare = _STRING.sub("", text).partition("#")[0]
    return bare.count("[") - bare.count("]")


def _key_parts(text: str) -> KeyPath:
    return tuple(next(g for g in m.groups() if g is not None) for m in _KEY_PART.finditer(text))


class _KeyLines:
    """The line each table and key of a TOML text is written on; tomllib keeps no positions,
    so the headers and assignments at the start of lines are read once more here."""

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        tables: dict[KeyPath, int] = {}
        table: KeyPath = ()
        depth = 0  # inside an array written over several lines: its lines are values
        for number, raw in enumerate(text.split("\n"), start=1):
            header, assignment = _HEADER.fullmatch(raw), _ASSIGNMENT.match(raw)
            if depth > 0:
                depth += _open_brackets(raw)
            elif header is not None:
                table = _key_parts(header.group(2))
                if header.group(1) == "[[":
                    # Arrays of tables are numbered the way the loaded data indexes them.
                    tables[table] = tables.get(table, -1) + 1
                    table = (*table, tables[table])
                self.lines.setdefault(table, number)
            elif assignment is not None:
                self.lines.setdefault(table + _key_parts(assignment.group(1)), number)
                depth = _open_brackets(raw[assignment.end() :])

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor written on a line of its own."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


def _describe(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number with a fraction"}
    kinds.update({str: "a string", list: "an array", dict: "a table"})
    return f"{kinds.get(type(value), type(value).__name__)} ({value!r})"


def _render(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


Check = Callable[[str], str | None]


class _Reader:
    """Reads values out of the loaded tables and keeps every problem instead of stopping at the
    first; each reader returns a usable stand-in after a problem, so reading goes on."""

    def __init__(self, text: str) -> None:
        self.lines = _KeyLines(text)
        self.problems: list[PolicyProblem] = []

    def fail(self, path: KeyPath, message: str) -> None:
        """Record a problem at ``path``."""
        self.problems.append(PolicyProblem(self.lines.line_of(path), _render(path), message))

    def table(self, value: Any, path: KeyPath, known: tuple[str, ...] | None) -> dict[str, Any]:
        """``value`` as a table whose keys are all in ``known`` (any keys when None)."""
        if not isinstance(value, dict):
            self.fail(path, f"expected a table, got {_describe(value)}")
            return {}
        for key in value:
            if known is not None and key not in known:
                self.fail((*path, key), f"unknown key {key!r}: expected {', '.join(known)}")
        return value

    def integer(
        self, table: dict[str, Any], path: KeyPath, key: str, low: int = 0, high: int | None = None
    ) -> int | None:
        """A whole number between ``low`` and ``high``; None when missing or wrong."""
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            unit = (
                " of basis points (500 is 5%)" if key.endswith("bps") or key.endswith("_bp") else ""
            )
            self.fail((*path, key), f"expected a whole number{unit}, got {_describe(value)}")
        elif value < low or (high is not None and value > high):
            upper = f" and at most {high}" if high is not None else ""
            self.fail((*path, key), f"must be at least {low}{upper}, got {value}")
        else:
            return value
        return None

    def strings(
        self, table: dict[str, Any], path: KeyPath, key: str, check: Check
    ) -> tuple[str, ...] | None:
        """A non-empty array of distinct strings each passing ``check``; None when missing."""
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            self.fail((*path, key), f"expected a non-empty array, got {_describe(value)}")
            return ()
        kept: list[str] = []
        for item in value:
            problem = (
                check(item)
                if isinstance(item, str)
                else f"expected a string, got {_describe(item)}"
            )
            if problem is None and item in kept:
                problem = f"{item!r} is listed twice"
            if problem is not None:
                self.fail((*path, key), problem)
            else:
                kept.append(item)
        return tuple(kept)


def _matching(pattern: re.Pattern[str], what: str) -> Check:
    def check(text: str) -> str | None:
        return None if pattern.fullmatch(text) else f"{text!r} is not {what}"

    return check


_NAME_RULE = "of a-z, 0-9 and _, starting with a letter"
_channel_name = _matching(_CHANNEL_NAME, f"a channel name: 1-32 characters {_NAME_RULE}")
_rule_name = _matching(_RULE_NAME, f"a rule name: 1-64 characters {_NAME_RULE}")
_merchant_id = _matching(_MERCHANT_ID, "a merchant id")
_region = _matching(_REGION, "a region like CN")


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


def _channel(r: _Reader, name: str, value: Any) -> ChannelPolicy:
    path: KeyPath = ("channels", name)
    if (problem := _channel_name(name)) is not None:
        r.fail(path, problem)
    table = r.table(value, path, _CHANNEL_KEYS)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        r.fail((*path, "enabled"), f"expected true or false, got {_describe(enabled)}")
    methods = tuple(_METHODS[m] for m in _required(r, table, path, "methods", _method))
    currencies = _required(r, table, path, "currencies", _currency)
    fees = _fees(r, table.get("fees"), (*path, "fees"), methods, currencies)
    quotas = (_quota(r, table.get(key), (*path, key), currencies) for key in _CHANNEL_KEYS[-2:])
    return ChannelPolicy(name, enabled is True, methods, currencies, fees, *quotas)


def _required(
    r: _Reader, table: dict[str, Any], path: KeyPath, key: str, check: Check
) -> tuple[str, ...]:
    values = r.strings(table, path, key, check)
    if values is None:
        r.fail(path, f"missing {key!r}")
    return values or ()


def _fees(
    r: _Reader,
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


def _fee(r: _Reader, value: Any, path: KeyPath, currencies: tuple[str, ...]) -> Fee:
    fee = r.table(value, path, ("bps", "fixed"))
    if "bps" not in fee:
        r.fail(path, "missing 'bps'")
    written = fee.get("fixed", {})
    fixed = _amounts(r, written, (*path, "fixed"), currencies)
    missing = [c for c in currencies if c not in written] if isinstance(written, dict) else []
    if missing:
        r.fail((*path, "fixed"), f"missing the fixed fee in {', '.join(missing)} (0 for none)")
    return Fee(r.integer(fee, path, "bps", high=BASIS_POINTS) or 0, fixed)


def _amounts(r: _Reader, value: Any, path: KeyPath, currencies: tuple[str, ...]) -> dict[str, int]:
    table = r.table(value, path, None)
    amounts: dict[str, int] = {}
    for currency in table:
        if currency not in currencies:
            r.fail((*path, currency), f"{currency!r} is not one of the channel's currencies")
        elif (amount := r.integer(table, path, currency)) is not None:
            amounts[currency] = amount
    return amounts


def _quota(r: _Reader, value: Any, path: KeyPath, currencies: tuple[str, ...]) -> DailyQuota:
    if value is None:
        return NO_QUOTA
    table = r.table(value, path, _QUOTA_KEYS)
    count = r.integer(table, path, "count")
    amounts = _amounts(r, table.get("amount", {}), (*path, "amount"), currencies)
    return DailyQuota(count, amounts) if count is not None or amounts else NO_QUOTA


def _merchant(
    r: _Reader, merchant_id: str, value: Any, channels: Mapping[str, ChannelPolicy]
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


def _rule(r: _Reader, index: int, value: Any, channels: Mapping[str, ChannelPolicy]) -> RoutingRule:
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
    r: _Reader, value: Any, path: KeyPath, currencies: tuple[str, ...] | None
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
    r: _Reader, value: Any, path: KeyPath, names: tuple[str, ...]
) -> tuple[int, ...] | None:
    if value is None:
        return None
    whole = isinstance(value, list) and all(type(w) is int and w >= 0 for w in value)
    if not whole or len(value) != len(names) or sum(value) == 0:
        rule = f"one whole number of 0 or more per channel ({len(names)}), not all 0"
        r.fail(path, f"expected {rule}, got {_describe(value)}")
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


def _settings(r: _Reader, data: dict[str, Any], name: str, defaults: object) -> dict[str, int]:
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


def _policy(r: _Reader, data: dict[str, Any], digest: str) -> RoutingPolicy:
    r.table(data, (), _TOP_KEYS)
    version = r.integer(data, (), "version", low=1)
    if "version" not in data:
        r.fail((), "missing 'version = N' (a whole number of 1 or more)")
    kill_switch = data.get("kill_switch", False)
    if not isinstance(kill_switch, bool):
        r.fail(("kill_switch",), f"expected true or false, got {_describe(kill_switch)}")
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


def _unique_rule_names(r: _Reader, rules: tuple[RoutingRule, ...]) -> None:
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
    reader = _Reader(text)
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
