"""The rule-file format: from text to a RuleSet, with every problem at its line and column.

A rule file is line oriented (see docs/risk-rules.md): a version, default limits per merchant
rating, during-stage rules with an outcome, and after-stage alerts over merchant health. Loading
reports every problem of the file at once, so an author fixes a file in one pass.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from events.money import UnknownCurrency, currency_exponent
from streams.risk.expressions import Expression, RuleSyntaxError, parse_expression
from streams.risk.features import HEALTH_FEATURES, PAYMENT_FEATURES, FeatureCatalogue
from streams.risk.ruleset import (
    AMOUNT_LIMITS,
    COUNT_LIMITS,
    MAX_DELAY_SECONDS,
    PAYOUT_LIMITS,
    RATINGS,
    RESERVED_PREFIXES,
    Alert,
    Outcome,
    Rule,
    RuleSet,
)

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DURATION = re.compile(r"([0-9]+)([smh])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3_600}
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNT = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong in a rule file."""

    line: int
    column: int
    message: str


class RuleSetError(ValueError):
    """A rule file that cannot be loaded; ``problems`` lists everything wrong with it."""

    def __init__(self, source: str, problems: list[RuleProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = (f"{source}:{p.line}:{p.column}: {p.message}" for p in problems)
        super().__init__("\n".join(lines))


def parse_amount(currency: str, text: str) -> int:
    """``text`` in major units of ``currency`` as exact integer minor units; raises ValueError."""
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(f"expected a currency code like CNY, got {currency!r}")
    exponent = currency_exponent(currency)
    if text.startswith("-"):
        raise ValueError(f"a limit cannot be negative, got {text!r}")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise ValueError(f"expected an amount like 50000.00, got {text!r}")
    units, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > exponent:
        allowed = f"{exponent} decimals" if exponent else "no decimals"
        raise ValueError(f"{currency} has {allowed}, {text!r} has {len(fraction)}")
    # Padding the fraction to the currency's digits makes the text the minor-unit amount.
    return int(units + fraction.ljust(exponent, "0"))


def parse_duration(text: str) -> int:
    """``30s``, ``5m`` or ``2h`` in seconds, between 1 second and 24 hours; raises ValueError."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"expected a duration like 30s, 5m or 2h, got {text!r}")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not 0 < seconds <= MAX_DELAY_SECONDS:
        raise ValueError(f"a delay must be longer than 0 and at most 24h, got {text!r}")
    return seconds


def strip_comment(line: str) -> str:
    """``line`` without its ``#`` comment; a ``#`` inside a double-quoted string is kept."""
    quoted = escaped = False
    for index, char in enumerate(line):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "#" and not quoted:
            return line[:index]
    return line


class _Line:
    """One line of a rule file without its comment: its words and where each starts."""

    def __init__(self, number: int, text: str) -> None:
        self.number = number
        self.text = strip_comment(text)
        self.spans = [(m.start() + 1, m.end(), m.group()) for m in re.finditer(r"\S+", self.text)]
        self.words = [word for _, _, word in self.spans]

    def word(self, index: int) -> str:
        return self.words[index] if index < len(self.words) else ""

    def column(self, index: int) -> int:
        # Past the last word: just after the line's end, where the missing word belongs.
        return self.spans[index][0] if index < len(self.spans) else len(self.text.rstrip()) + 2

    def rest(self, index: int) -> tuple[str, int]:
        """The text after word ``index`` and the column it starts at."""
        end = self.spans[index][1]
        return self.text[end:], end + 1


class _Loader:
    """Reads a rule file line by line, keeping every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[RuleProblem] = []
        self.version: int | None = None
        self.rules: list[Rule] = []
        self.alerts: list[Alert] = []
        # Names and limit keys already used, with the line that used them first.
        self.seen: dict[tuple[str, ...], int] = {}
        self.limits: dict[str, dict[str, int]] = {}
        self.handlers = {"version": self.on_version, "limit": self.on_limit}
        self.handlers.update(rule=self.on_rule, alert=self.on_alert)

    def fail(self, line: _Line, index: int, message: str) -> None:
        """Record a problem at word ``index`` of ``line``."""
        self.problems.append(RuleProblem(line.number, line.column(index), message))

    def load(self, text: str) -> None:
        # Only "\n" ends a line, as in editors: splitlines() would also split at form feeds.
        for number, raw in enumerate(text.split("\n"), start=1):
            line = _Line(number, raw.removesuffix("\r"))
            handler = self.handlers.get(line.word(0))
            if handler is not None:
                handler(line)
            elif line.words:
                kinds = "'version', 'limit', 'rule' or 'alert'"
                self.fail(line, 0, f"unknown line {line.word(0)!r}: expected {kinds}")
        if ("version",) not in self.seen:
            self.problems.append(RuleProblem(1, 1, "missing 'version N' line"))

    def first_use(self, line: _Line, index: int, key: tuple[str, ...], what: str) -> bool:
        """True when ``key`` was not used by an earlier line; reports the repeat otherwise."""
        earlier = self.seen.setdefault(key, line.number)
        if earlier != line.number:
            self.fail(line, index, f"{what} already defined on line {earlier}")
        return earlier == line.number

    def has_words(self, line: _Line, count: int, usage: str) -> bool:
        """True when ``line`` has ``count`` words; reports what is missing or surplus."""
        if len(line.words) == count:
            return True
        index = min(len(line.words), count)
        found = f"unexpected {line.word(index)!r}" if index == count else "missing words"
        self.fail(line, index, f"{found}: expected '{usage}'")
        return False

    def on_version(self, line: _Line) -> None:
        first = self.first_use(line, 0, ("version",), "version")
        if first and self.has_words(line, 2, "version N"):
            text = line.word(1)
            if _COUNT.fullmatch(text) and int(text) >= 1:
                self.version = int(text)
            else:
                self.fail(line, 1, f"version must be a positive integer, got {text!r}")

    def on_limit(self, line: _Line) -> None:
        rating, name = line.word(1), line.word(2)
        if rating not in RATINGS:
            self.fail(line, 1, f"unknown rating {rating!r}: expected one of {', '.join(RATINGS)}")
        elif name in AMOUNT_LIMITS or name in PAYOUT_LIMITS:
            if self.has_words(line, 5, "limit RATING NAME CURRENCY AMOUNT"):
                self.amount_limit(line)
        elif name in COUNT_LIMITS:
            if self.has_words(line, 4, "limit RATING NAME COUNT"):
                self.count_limit(line)
        else:
            amounts = ", ".join(AMOUNT_LIMITS + PAYOUT_LIMITS)
            known = amounts + " or <user|device|ip|account>_payments_<1m|1h|1d>"
            self.fail(line, 2, f"unknown limit {name!r}: expected {known}")

    def amount_limit(self, line: _Line) -> None:
        currency = line.word(3)
        try:
            value = parse_amount(currency, line.word(4))
        except UnknownCurrency as error:
            self.fail(line, 3, str(error))
        except ValueError as error:
            self.fail(line, 4 if _CURRENCY.fullmatch(currency) else 3, str(error))
        else:
            self.set_limit(line, f"{line.word(2)}.{currency}", value)

    def count_limit(self, line: _Line) -> None:
        text = line.word(3)
        if _COUNT.fullmatch(text):
            self.set_limit(line, line.word(2), int(text))
        else:
            self.fail(line, 3, f"expected a count of payments (0 or more), got {text!r}")

    def set_limit(self, line: _Line, key: str, value: int) -> None:
        rating = line.word(1)
        if self.first_use(line, 2, ("limit", rating, key), f"limit {rating} {key}"):
            self.limits.setdefault(rating, {})[key] = value

    def header(self, line: _Line, usage: str) -> int | None:
        """Check the name of a rule or alert line; the index of its ``when``."""
        if not _NAME.fullmatch(line.word(1)):
            rule = "1-64 characters of a-z, 0-9 and _, starting with a letter"
            self.fail(line, 1, f"a name is {rule}, got {line.word(1)!r}")
            return None
        if "when" not in line.words[2:]:
            self.fail(line, len(line.words), f"missing 'when': expected '{usage}'")
            return None
        return line.words.index("when", 2)

    def condition(self, line: _Line, when: int, catalogue: FeatureCatalogue) -> Expression | None:
        text, column = line.rest(when)
        try:
            return parse_expression(text, catalogue, line=line.number, column=column)
        except RuleSyntaxError as error:
            self.problems.append(RuleProblem(error.line, error.column, error.message))
            return None

    def outcome(self, line: _Line, when: int) -> tuple[Outcome, int] | None:
        """The outcome between a rule's name and ``when``, and its delay in seconds."""
        words = line.words[2:when]
        if words[:1] == ["delay"] and len(words) == 2:
            try:
                return Outcome.DELAY, parse_duration(words[1])
            except ValueError as error:
                self.fail(line, 3, str(error))
        elif len(words) == 1 and words[0] in _FIXED_OUTCOMES:
            return Outcome(words[0]), 0
        elif words[:1] == ["delay"]:
            self.fail(line, 2, "'delay' takes one duration, like 'delay 30s'")
        elif words and words[0] in _FIXED_OUTCOMES:
            self.fail(line, 3, f"unexpected {words[1]!r}: expected 'when'")
        else:
            got = f"unknown outcome {words[0]!r}" if words else "missing outcome"
            self.fail(line, 2, f"{got}: expected approve, review, reject or delay DURATION")
        return None

    def on_rule(self, line: _Line) -> None:
        when = self.header(line, "rule NAME OUTCOME when EXPRESSION")
        if when is None:
            return
        before, name = len(self.problems), line.word(1)
        if name.startswith(RESERVED_PREFIXES):
            reserved = " and ".join(f"'{prefix}'" for prefix in RESERVED_PREFIXES)
            self.fail(line, 1, f"names starting with {reserved} are kept for built-in checks")
        self.first_use(line, 1, ("rule", name), f"rule {name!r}")
        outcome = self.outcome(line, when)
        condition = self.condition(line, when, PAYMENT_FEATURES)
        if outcome and condition and len(self.problems) == before:
            self.rules.append(Rule(name, outcome[0], outcome[1], condition, line.number))

    def on_alert(self, line: _Line) -> None:
        when = self.header(line, "alert NAME [downgrade] when EXPRESSION")
        if when is None:
            return
        before, name = len(self.problems), line.word(1)
        self.first_use(line, 1, ("alert", name), f"alert {name!r}")
        flags = line.words[2:when]
        if flags not in ([], ["downgrade"]):
            index = 3 if flags[0] == "downgrade" else 2
            self.fail(
                line, index, f"unexpected {line.word(index)!r}: expected 'downgrade' or 'when'"
            )
        condition = self.condition(line, when, HEALTH_FEATURES)
        if condition and len(self.problems) == before:
            self.alerts.append(Alert(name, flags == ["downgrade"], condition, line.number))


_FIXED_OUTCOMES = frozenset({"approve", "review", "reject"})


def parse_ruleset(text: str, *, source: str = "<rules>") -> RuleSet:
    """Load a rule file's text; raises RuleSetError listing every problem in it."""
    loader = _Loader()
    loader.load(text)
    if loader.problems or loader.version is None:
        problems = sorted(loader.problems, key=lambda p: (p.line, p.column))
        raise RuleSetError(source, problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    rules, alerts = tuple(loader.rules), tuple(loader.alerts)
    return RuleSet(loader.version, rules, alerts, loader.limits, text, digest)


def load_ruleset(path: Path) -> RuleSet:
    """Load the rule file at ``path``; problems are reported against the path."""
    return parse_ruleset(path.read_text(encoding="utf-8"), source=str(path))


# The built-in checks, resolved to feature names once rather than per payment.
