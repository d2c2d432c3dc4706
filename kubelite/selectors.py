"""Label and field selectors, parsed once into tuples and matched fast.

A selector string is parsed into a tuple of requirements, each a small
`(key, operator, argument)` tuple whose argument is already the thing a match
compares against (a string, or a frozenset for `in`/`notin`). `matches` is then
a loop of dict lookups and comparisons, because it runs for every watch event
times every watcher.

The syntax and semantics are Kubernetes' (`k8s.io/apimachinery/pkg/labels` and
`.../fields`):

- labels: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a` (exists),
  `!a` (does not exist), `a>1`, `a<1` (integer comparison), joined by commas.
  `!=` and `notin` also match objects that lack the key.
- fields: `field=value`, `field==value`, `field!=value`, joined by commas, with
  `\\,`, `\\=` and `\\\\` escaping those characters in values. A missing field
  compares as "".

The empty string selects everything. Errors are `kubelite.errors.InvalidError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from kubelite.errors import InvalidError

# Operators, as they are written in a selector string.
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_SET_OPS = frozenset({IN, NOT_IN})

_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INT_RE = re.compile(r"^[-+]?[0-9]+$")


def validate_label_key(key: str) -> None:
    """Raises InvalidError unless key is a qualified name (`[prefix/]name`)."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix):
            raise InvalidError(
                f"invalid label key {key!r}: prefix part must be a lowercase RFC 1123 "
                "subdomain of at most 253 characters"
            )
    if not name:
        raise InvalidError(f"invalid label key {key!r}: name part must be non-empty")
    if len(name) > 63:
        raise InvalidError(
            f"invalid label key {key!r}: name part must be no more than 63 characters"
        )
    if not _NAME_RE.match(name):
        raise InvalidError(
            f"invalid label key {key!r}: name part must consist of alphanumeric characters, "
            "'-', '_' or '.', and must start and end with an alphanumeric character"
        )


def validate_label_value(value: str) -> None:
    """Raises InvalidError unless value is a valid label value (may be empty)."""
    if len(value) > 63:
        raise InvalidError(f"invalid label value {value!r}: must be no more than 63 characters")
    if value and not _NAME_RE.match(value):
        raise InvalidError(
            f"invalid label value {value!r}: a valid label must be an empty string or "
            "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character"
        )


# ---------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------


class Requirement(NamedTuple):
    """One label requirement; values are sorted and deduplicated."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.operator == EXISTS:
            return self.key
        if self.operator == DOES_NOT_EXIST:
            return f"!{self.key}"
        if self.operator in _SET_OPS:
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        if self.operator == GREATER_THAN:
            return f"{self.key}>{self.values[0]}"
        if self.operator == LESS_THAN:
            return f"{self.key}<{self.values[0]}"
        return f"{self.key}{self.operator}{self.values[0]}"


def make_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """Builds a validated Requirement; `==` is normalised to `=`."""
    validate_label_key(key)
    vals = tuple(sorted(set(values)))
    if operator == DOUBLE_EQUALS:
        operator = EQUALS
    if operator in (EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            raise InvalidError(f"{key}: exact-match operator must have exactly one value")
    elif operator in _SET_OPS:
        if not vals:
            raise InvalidError(f"{key}: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            raise InvalidError(f"{key}: values set must be empty for exists and does not exist")
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1 or not _INT_RE.match(vals[0]):
            raise InvalidError(
                f"{key}: for 'Gt', 'Lt' operators, exactly one integer value is required"
            )
    else:
        raise InvalidError(f"{key}: operator {operator!r} is not recognized")
    if operator not in (GREATER_THAN, LESS_THAN):
        for value in vals:
            validate_label_value(value)
    return Requirement(key, operator, vals)


# Operator codes of the compiled form; small ints compare fastest.
_OP_EQ, _OP_NE, _OP_IN, _OP_NOTIN, _OP_EXISTS, _OP_ABSENT, _OP_GT, _OP_LT = range(8)


def _compile(req: Requirement) -> tuple[str, int, Any]:
    op = req.operator
    if op == EQUALS:
        return (req.key, _OP_EQ, req.values[0])
    if op == NOT_EQUALS:
        return (req.key, _OP_NE, req.values[0])
    if op == IN:
        if len(req.values) == 1:
            return (req.key, _OP_EQ, req.values[0])
        return (req.key, _OP_IN, frozenset(req.values))
    if op == NOT_IN:
        if len(req.values) == 1:
            return (req.key, _OP_NE, req.values[0])
        return (req.key, _OP_NOTIN, frozenset(req.values))
    if op == EXISTS:
        return (req.key, _OP_EXISTS, None)
    if op == DOES_NOT_EXIST:
        return (req.key, _OP_ABSENT, None)
    return (req.key, _OP_GT if op == GREATER_THAN else _OP_LT, int(req.values[0]))


_EMPTY: Mapping[str, str] = {}


class LabelSelector:
    """A parsed label selector: an AND of requirements.

    `LabelSelector()` (or parsing "") selects everything; `LabelSelector.nothing()`
    selects nothing and has no string form (its str() is unparseable on purpose,
    so it can never be sent to the server and silently select everything).
    """

    __slots__ = ("requirements", "_compiled", "_nothing")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False):
        # Kubernetes sorts requirements by key, which makes str() canonical.
        self.requirements: tuple[Requirement, ...] = tuple(
            sorted(requirements, key=lambda r: r.key)
        )
        self._compiled = tuple(_compile(r) for r in self.requirements)
        self._nothing = nothing

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @property
    def selects_everything(self) -> bool:
        return not self._nothing and not self.requirements

    @property
    def selects_nothing(self) -> bool:
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        if labels is None:
            labels = _EMPTY
        for key, op, arg in self._compiled:
            value = labels.get(key)
            if op == _OP_EQ:
                if value != arg:
                    return False
            elif op == _OP_NE:
                if value == arg:
                    return False
            elif op == _OP_IN:
                if value not in arg:
                    return False
            elif op == _OP_NOTIN:
                if value in arg:
                    return False
            elif op == _OP_EXISTS:
                if value is None:
                    return False
            elif op == _OP_ABSENT:
                if value is not None:
                    return False
            else:
                if value is None or not _INT_RE.match(value):
                    return False
                number = int(value)
                if (op == _OP_GT and not number > arg) or (op == _OP_LT and not number < arg):
                    return False
        return True

    def matches_object(self, obj: Mapping[str, Any]) -> bool:
        """Matches the labels of a Kubernetes-shaped object."""
        return self.matches((obj.get("metadata") or _EMPTY).get("labels"))

    def __str__(self) -> str:
        if self._nothing:
            return "<selects nothing>"
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


# The lexer mirrors k8s.io/apimachinery/pkg/labels/selector.go: identifiers are
# runs of anything but whitespace and the special characters below.
_TOKEN_RE = re.compile(r"\s*(?:(==|!=|[=!(),<>])|([^\s!=(),<>]+))")
_END = ("end", "")


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:  # unreachable: every character is special or not
            raise InvalidError(f"unable to parse requirement: unexpected text at {text[pos:]!r}")
        op, ident = m.group(1), m.group(2)
        if op is not None:
            tokens.append(("op", op))
        elif ident in (IN, NOT_IN):
            tokens.append(("kw", ident))
        else:
            tokens.append(("id", ident))
        pos = m.end()
    tokens.append(_END)
    return tokens


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.pos]

    def take(self) -> tuple[str, str]:
        tok = self.tokens[self.pos]
        if tok is not _END:
            self.pos += 1
        return tok

    def fail(self, why: str) -> InvalidError:
        return InvalidError(f"unable to parse requirement: {why} (in selector {self.text!r})")

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        if self.peek() is _END:
            return reqs
        while True:
            reqs.append(self.requirement())
            tok = self.take()
            if tok is _END:
                return reqs
            if tok != ("op", ","):
                raise self.fail(f"found {tok[1]!r}, expected ','")
            if self.peek() is _END:
                raise self.fail("found end of string, expected a requirement after ','")

    def requirement(self) -> Requirement:
        negate = False
        if self.peek() == ("op", "!"):
            self.take()
            negate = True
        kind, key = self.take()
        if kind != "id":
            raise self.fail(f"found {key or 'end of string'!r}, expected a label key")
        kind, op = self.peek()
        if negate:
            if not (kind == "end" or (kind == "op" and op == ",")):
                raise self.fail(f"found {op!r} after '!{key}', expected ',' or end of string")
            return make_requirement(key, DOES_NOT_EXIST)
        if kind == "end" or (kind == "op" and op == ","):
            return make_requirement(key, EXISTS)
        self.take()
        if kind == "kw":
            return make_requirement(key, op, self.value_set(key))
        if kind == "op" and op in ("=", "==", "!="):
            return make_requirement(key, op, [self.single_value()])
        if kind == "op" and op in ("<", ">"):
            value = self.single_value()
            if not _INT_RE.match(value):
                raise self.fail(f"for {key!r}, {op!r} needs an integer value, got {value!r}")
            return make_requirement(key, GREATER_THAN if op == ">" else LESS_THAN, [value])
        raise self.fail(
            f"found {op!r} after {key!r}, expected one of '=', '==', '!=', 'in', 'notin', "
            "'<', '>', ',' or end of string"
        )

    def single_value(self) -> str:
        kind, value = self.peek()
        if kind in ("id", "kw"):
            self.take()
            return value
        if kind == "end" or (kind == "op" and value == ","):
            return ""  # `a=` selects an empty value, as in Kubernetes
        raise self.fail(f"found {value!r}, expected a value")

    def value_set(self, key: str) -> list[str]:
        if self.take() != ("op", "("):
            raise self.fail(f"expected '(' after the set operator of {key!r}")
        values: list[str] = []
        expect_value = True
        while True:
            kind, tok = self.take()
            if kind == "op" and tok == ")":
                if expect_value:
                    values.append("")
                return values
            if kind == "op" and tok == ",":
                if expect_value:
                    values.append("")
                expect_value = True
                continue
            if kind in ("id", "kw") and expect_value:
                values.append(tok)
                expect_value = False
                continue
            raise self.fail(f"found {tok or 'end of string'!r} in the value set of {key!r}")


def parse_label_selector(text: str) -> LabelSelector:
    """Parses a label selector string; "" selects everything."""
    return LabelSelector(_LabelParser(text).parse())


def selector_from_label_selector_spec(spec: Mapping[str, Any] | None) -> LabelSelector:
    """Converts a Kubernetes LabelSelector object (matchLabels, matchExpressions).

    As in Kubernetes (`metav1.LabelSelectorAsSelector`), `None` selects nothing
    and `{}` selects everything. Operators are In, NotIn, Exists, DoesNotExist.
    """
    if spec is None:
        return LabelSelector.nothing()
    reqs: list[Requirement] = []
    for key, value in (spec.get("matchLabels") or {}).items():
        if not isinstance(value, str):
            raise InvalidError(f"matchLabels[{key}]: value must be a string")
        reqs.append(make_requirement(key, EQUALS, [value]))
    ops = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
    for expr in spec.get("matchExpressions") or ():
        operator = ops.get(expr.get("operator", ""))
        if operator is None:
            raise InvalidError(
                f"matchExpressions: operator {expr.get('operator')!r} is not recognized; "
                "expected In, NotIn, Exists or DoesNotExist"
            )
        reqs.append(make_requirement(expr.get("key", ""), operator, expr.get("values") or ()))
    return LabelSelector(reqs)


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

#: The fields a field selector may name, with their paths into an object.
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "spec.nodeName": ("spec", "nodeName"),
    "status.phase": ("status", "phase"),
}


def field_values(obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of an object, a missing one as ""."""
    out: dict[str, str] = {}
    for name, (outer, inner) in FIELD_PATHS.items():
        part = obj.get(outer)
        value = part.get(inner) if isinstance(part, Mapping) else None
        out[name] = value if isinstance(value, str) else ("" if value is None else str(value))
    return out


class FieldRequirement(NamedTuple):
    field: str
    operator: str  # "=" or "!="
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str, term: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, None)
            if nxt not in ("\\", ",", "="):
                raise InvalidError(f"invalid field selector: bad escape in {term!r}")
            out.append(nxt)
        elif ch in ",=":
            raise InvalidError(f"invalid field selector: unescaped {ch!r} in {term!r}")
        else:
            out.append(ch)
    return "".join(out)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    start = i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


class FieldSelector:
    """A parsed field selector: an AND of `field=value` / `field!=value` terms."""

    __slots__ = ("requirements", "_compiled")

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements: tuple[FieldRequirement, ...] = tuple(sorted(requirements))
        self._compiled = tuple(
            (*FIELD_PATHS[r.field], r.operator == "=", r.value) for r in self.requirements
        )

    @property
    def selects_everything(self) -> bool:
        return not self.requirements

    @staticmethod
    def field_values(obj: Mapping[str, Any]) -> dict[str, str]:
        return field_values(obj)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for outer, inner, equal, want in self._compiled:
            part = obj.get(outer)
            value = part.get(inner) if isinstance(part, Mapping) else None
            if value is None:
                value = ""
            if (value == want) != equal:
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


def parse_field_selector(text: str, *, allowed: Iterable[str] | None = None) -> FieldSelector:
    """Parses a field selector string; "" selects everything.

    `allowed` narrows the supported fields (default: every field of FIELD_PATHS);
    any other field raises InvalidError("field label not supported: X").
    """
    allowed_fields = FIELD_PATHS.keys() if allowed is None else set(allowed) & FIELD_PATHS.keys()
    reqs: list[FieldRequirement] = []
    for term in _split_unescaped(text, ","):
        term = term.strip()
        if not term:
            continue
        idx, op = _find_operator(term)
        if idx < 0:
            raise InvalidError(f"invalid field selector: {text!r}; can't understand {term!r}")
        field, raw = term[:idx].strip(), term[idx + len(op) :]
        if field not in allowed_fields:
            raise InvalidError(f"field label not supported: {field}")
        value = _unescape_field_value(raw, term)
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    return FieldSelector(reqs)


def _find_operator(term: str) -> tuple[int, str]:
    """The leftmost unescaped `!=`, `==` or `=` of a term, as Kubernetes splits it."""
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return i, op
        i += 1
    return -1, ""


__all__ = [
    "FIELD_PATHS",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "field_values",
    "make_requirement",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_label_selector_spec",
    "validate_label_key",
    "validate_label_value",
]
