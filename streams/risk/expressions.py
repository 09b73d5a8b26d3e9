"""The expression language of risk rules: parsed, type-checked and compiled once, run per payment.

An expression is a boolean formula over named features: ``device.payments_1m >= 5 and amount <=
500``. Parsing checks every name against a feature catalogue and every operator against the
types of its operands, so a rule that loads cannot fail at run time except on a missing feature.
The parsed formula becomes nested closures, which is several times faster than walking a tree
and needs no ``eval`` of rule text.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from streams.risk.features import FeatureCatalogue, FeatureType

Value = int | bool | str
Features = Mapping[str, Value]
Evaluator = Callable[[Features], Any]

INT, BOOL, STR = FeatureType.INT, FeatureType.BOOL, FeatureType.STR
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
OPERATORS = {**ARITHMETIC, **COMPARISONS}
ORDERINGS = frozenset({"<", "<=", ">", ">="})

# Longest alternatives first, so "<=" is never read as "<" then "=".
_TOKEN = re.compile(
    r"""(?P<space>\s+)
      | (?P<number>[0-9][0-9A-Za-z_.]*)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<string>")
      | (?P<op><=|>=|==|!=|[<>+\-*()\[\],])""",
    re.VERBOSE,
)
_INTEGER = re.compile(r"[0-9]+(?:_[0-9]+)*")
# A backslash keeps the next character literally: "say \"hi\"" and "a \\ b".
_STRING_BODY = re.compile(r'(?:[^"\\\n]|\\.)*"')


class RuleSyntaxError(ValueError):
    """An expression or rule line that cannot be loaded, with where the problem is."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class Token:
    """One word of an expression: ``kind`` is number, name, string, op, keyword or end."""

    kind: str
    text: str
    value: Value
    line: int
    column: int


def _position(text: str, offset: int, line: int, column: int) -> tuple[int, int]:
    """Line and column of ``offset`` in ``text``, which starts at ``line``, ``column``."""
    newlines = text.count("\n", 0, offset)
    if newlines == 0:
        return line, column + offset
    return line + newlines, offset - text.rindex("\n", 0, offset)


def _string_token(text: str, offset: int) -> tuple[str, int]:
    """The value of the string literal opening at ``offset`` and the offset after it."""
    match = _STRING_BODY.match(text, offset + 1)
    if match is None:
        raise ValueError("unterminated string")
    body = match.group()[:-1]
    return re.sub(r"\\(.)", r"\1", body), match.end()


def _number_value(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        hint = " (no decimals: amounts are integer minor units)" if "." in text else ""
        raise ValueError(f"malformed number {text!r}{hint}")
    return int(text)


_HINTS = {
    "=": " (did you mean '=='?)",
    "!": " (did you mean '!=' or 'not'?)",
    "'": " (strings are written in double quotes)",
    "/": " (there is no division: use the ratio features)",
}


def _unexpected(char: str) -> str:
    return f"unexpected character {char!r}{_HINTS.get(char, '')}"


def tokenize(text: str, *, line: int = 1, column: int = 1) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token; raises RuleSyntaxError."""
    tokens: list[Token] = []
    offset = 0
    while offset < len(text):
        where = _position(text, offset, line, column)
        match = _TOKEN.match(text, offset)
        if match is None:
            raise RuleSyntaxError(*where, _unexpected(text[offset]))
        kind, word = match.lastgroup or "", match.group()
        end = match.end()
        try:
            if kind == "number":
                tokens.append(Token(kind, word, _number_value(word), *where))
            elif kind == "string":
                value, end = _string_token(text, offset)
                tokens.append(Token(kind, text[offset:end], value, *where))
            elif kind == "name" and word in KEYWORDS:
                tokens.append(Token("keyword", word, word, *where))
            elif kind != "space":
                tokens.append(Token(kind, word, word, *where))
        except ValueError as error:
            raise RuleSyntaxError(*where, str(error)) from None
        offset = end
    tokens.append(Token("end", "", "", *_position(text, len(text), line, column)))
    return tokens


@dataclass(frozen=True, slots=True)
class Node:
    """A type-checked sub-expression and the closure computing it.

    ``feature`` is set for a bare feature name and ``constant`` for a literal (or folded
    literals), so operators can build closures that skip a call for those common operands.
    """

    kind: FeatureType
    line: int
    column: int
    run: Evaluator
    feature: str | None = None
    constant: tuple[Value] | None = None


def _constant(kind: FeatureType, value: Value, line: int, column: int) -> Node:
    return Node(kind, line, column, lambda _features: value, constant=(value,))


def _feature_test(symbol: str, name: str, value: Any) -> Evaluator | None:
    """``feature <symbol> literal`` without an operator call: the commonest shape in rules."""
    tests: dict[str, Evaluator] = {
        "<": lambda features: features[name] < value,
        "<=": lambda features: features[name] <= value,
        ">": lambda features: features[name] > value,
        ">=": lambda features: features[name] >= value,
        "==": lambda features: features[name] == value,
        "!=": lambda features: features[name] != value,
    }
    return tests.get(symbol)


def _binary(symbol: str, left: Node, right: Node) -> Evaluator:
    """A closure for ``left symbol right``, specialised for feature-versus-literal operands."""
    op = OPERATORS[symbol]
    run_left, run_right = left.run, right.run
    if right.constant is not None:
        (value,) = right.constant
        if left.feature is not None:
            name = left.feature
            inline = _feature_test(symbol, name, value)
            return inline or (lambda features: op(features[name], value))
        return lambda features: op(run_left(features), value)
    if left.feature is not None and right.feature is not None:
        first, second = left.feature, right.feature
        return lambda features: op(features[first], features[second])
    return lambda features: op(run_left(features), run_right(features))


def _combine(symbol: str, kind: FeatureType, left: Node, right: Node) -> Node:
    """The node for ``left symbol right``; two literals are folded into one."""
    if left.constant is not None and right.constant is not None:
        value = OPERATORS[symbol](left.constant[0], right.constant[0])
        return _constant(kind, value, left.line, left.column)
    return Node(kind, left.line, left.column, _binary(symbol, left, right))


def _all_of(parts: list[Evaluator]) -> Evaluator:
    if len(parts) == 2:
        first, second = parts
        return lambda features: first(features) and second(features)
    if len(parts) == 3:
        one, two, three = parts
        return lambda features: one(features) and two(features) and three(features)
    return lambda features: all(part(features) for part in parts)


def _any_of(parts: list[Evaluator]) -> Evaluator:
    if len(parts) == 2:
        first, second = parts
        return lambda features: first(features) or second(features)
    if len(parts) == 3:
        one, two, three = parts
        return lambda features: one(features) or two(features) or three(features)
    return lambda features: any(part(features) for part in parts)


def _membership(left: Node, values: frozenset[Value], negated: bool) -> Evaluator:
    if left.feature is not None:
        get = itemgetter(left.feature)
        if negated:
            return lambda features: get(features) not in values
        return lambda features: get(features) in values
    run = left.run
    if negated:
        return lambda features: run(features) not in values
    return lambda features: run(features) in values


class Parser:
    """Recursive descent over the tokens; each level returns a type-checked Node."""

    def __init__(self, tokens: list[Token], catalogue: FeatureCatalogue) -> None:
        self.tokens = tokens
        self.catalogue = catalogue
        self.index = 0
        self.names: dict[str, None] = {}

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, *words: str) -> bool:
        token = self.current
        return token.kind in ("op", "keyword") and token.text in words

    def expect(self, word: str, what: str) -> Token:
        if not self.at(word):
            raise self.error(self.current, f"expected {what}, got {describe(self.current)}")
        return self.advance()

    @staticmethod
    def error(token: Token | Node, message: str) -> RuleSyntaxError:
        return RuleSyntaxError(token.line, token.column, message)

    def check(self, node: Node, kind: FeatureType, token: Token, role: str) -> None:
        if node.kind is not kind:
            message = f"{role} needs {kind} operands, got {node.kind}"
            raise self.error(token, message)

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise self.error(self.current, "empty expression")
        node = self.disjunction()
        if self.current.kind != "end":
            token = self.current
            raise self.error(token, f"unexpected {describe(token)} after a complete expression")
        if node.kind is not BOOL:
            raise self.error(node, f"the expression must be a bool, not {node.kind}")
        return node

    def disjunction(self) -> Node:
        return self.chain("or", self.conjunction, _any_of)

    def conjunction(self) -> Node:
        return self.chain("and", self.negation, _all_of)

    def chain(
        self,
        word: str,
        operand: Callable[[], Node],
        build: Callable[[list[Evaluator]], Evaluator],
    ) -> Node:
        """``operand {word operand}``, flattened so a long chain is one short-circuit loop."""
        first = operand()
        parts = [first]
        while self.at(word):
            token = self.advance()
            parts.append(operand())
            self.check(first, BOOL, token, f"'{word}'")
            self.check(parts[-1], BOOL, token, f"'{word}'")
        if len(parts) == 1:
            return first
        return Node(BOOL, first.line, first.column, build([part.run for part in parts]))

    def negation(self) -> Node:
        if not self.at("not"):
            return self.comparison()
        token = self.advance()
        operand = self.negation()
        self.check(operand, BOOL, token, "'not'")
        run = operand.run
        return Node(BOOL, token.line, token.column, lambda features: not run(features))

    def at_membership(self) -> bool:
        return self.at("in") or (self.at("not") and self.tokens[self.index + 1].text == "in")

    def comparison(self) -> Node:
        left = self.sum()
        if self.at_membership():
            node = self.membership(left)
        elif self.at(*COMPARISONS):
            node = self.compare(left)
        else:
            return left
        if self.at_membership() or self.at(*COMPARISONS):
            raise self.error(self.current, "comparisons do not chain: join them with 'and'")
        return node

    def compare(self, left: Node) -> Node:
        token = self.advance()
        right = self.sum()
        if token.text in ORDERINGS:
            self.check(left, INT, token, f"'{token.text}'")
            self.check(right, INT, token, f"'{token.text}'")
        elif left.kind is not right.kind:
            kinds = f"{left.kind} and {right.kind}"
            raise self.error(token, f"'{token.text}' needs operands of one type, got {kinds}")
        return _combine(token.text, BOOL, left, right)

    def membership(self, left: Node) -> Node:
        negated = self.advance().text == "not"
        if negated:
            self.advance()
        self.expect("[", "'[' opening a list")
        if self.at("]"):
            raise self.error(self.current, "empty list: nothing is in it")
        values: set[Value] = set()
        while True:
            values.add(self.element(left.kind))
            if not self.at(","):
                break
            self.advance()
        self.expect("]", "',' or ']'")
        return Node(BOOL, left.line, left.column, _membership(left, frozenset(values), negated))

    def element(self, kind: FeatureType) -> Value:
        """One literal of a list, which must have the type of the value tested."""
        token = self.current
        node = self.unary()
        if node.constant is None:
            raise self.error(token, "list elements must be literals")
        if node.kind is not kind:
            message = f"list element is {node.kind} but the value tested is {kind}"
            raise self.error(token, message)
        return node.constant[0]

    def sum(self) -> Node:
        node = self.product()
        while self.at("+", "-"):
            node = self.arithmetic(node, self.advance(), self.product)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("*"):
            node = self.arithmetic(node, self.advance(), self.unary)
        return node

    def arithmetic(self, left: Node, token: Token, operand: Callable[[], Node]) -> Node:
        right = operand()
        self.check(left, INT, token, f"'{token.text}'")
        self.check(right, INT, token, f"'{token.text}'")
        return _combine(token.text, INT, left, right)

    def unary(self) -> Node:
        if not self.at("-"):
            return self.atom()
        token = self.advance()
        operand = self.unary()
        self.check(operand, INT, token, "'-'")
        zero = _constant(INT, 0, token.line, token.column)
        return _combine("-", INT, zero, operand)

    def atom(self) -> Node:
        token = self.advance()
        if token.kind == "number":
            return _constant(INT, token.value, token.line, token.column)
        if token.kind == "string":
            return _constant(STR, token.value, token.line, token.column)
        if token.kind == "keyword" and token.text in ("true", "false"):
            return _constant(BOOL, token.text == "true", token.line, token.column)
        if token.kind == "name":
            return self.feature(token)
        if token.text == "(":
            inner = self.disjunction()
            self.expect(")", "')'")
            return inner
        raise self.error(token, f"expected a value, got {describe(token)}")

    def feature(self, token: Token) -> Node:
        name = token.text
        kind = self.catalogue.get(name)
        if kind is None:
            close = difflib.get_close_matches(name, list(self.catalogue), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self.error(token, f"unknown feature {name!r}{hint}")
        self.names.setdefault(name)
        return Node(kind, token.line, token.column, itemgetter(name), feature=name)


def describe(token: Token) -> str:
    """How an error message names ``token``."""
    return "the end of the expression" if token.kind == "end" else repr(token.text)


@dataclass(frozen=True)
class Expression:
    """A compiled boolean expression: ``predicate(features)`` is its value for one payment."""

    source: str
    names: tuple[str, ...]
    predicate: Callable[[Features], bool] = field(repr=False, compare=False)

    def evaluate(self, features: Features) -> bool:
        """The expression's value; raises KeyError when a feature it reads is missing."""
        return self.predicate(features)


def parse_expression(
    text: str, catalogue: FeatureCatalogue, *, line: int = 1, column: int = 1
) -> Expression:
    """Parse, type-check and compile ``text``, which starts at ``line``, ``column`` of its file."""
    parser = Parser(tokenize(text, line=line, column=column), catalogue)
    node = parser.parse()
    return Expression(text.strip(), tuple(parser.names), node.run)
