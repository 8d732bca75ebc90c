"""Tenant confinement of a policy's PromQL: every vector selector only sees the policy's namespace.

``confine(query, namespace)`` returns the query with ``namespace="<ns>"`` injected
into every vector selector (bare ``metric``, ``metric{...}``, ``{...}``, inside
functions, aggregations, range vectors, subqueries, offsets and ``@``). A query
that names another namespace, or matches ``namespace`` with ``!=``, ``=~`` or
``!~`` (a way around the equality), or that cannot be analysed, raises
:class:`QueryRejected` with a message naming the selector and the fix.

Why hand-written: rewriting needs exact source positions and a faithful
printer. The one usable parser on PyPI (``promql-parser``, Rust bindings) has
neither: it gives no positions, and its printer drops escapes in strings
(``{a="x\\"y"}`` prints as ``{a="x"y"}``), which would let a crafted matcher
value break out of its quotes after a print round trip. So the rewrite is a
careful tokenizer that understands strings (all three quote styles, escapes),
comments, numbers and durations, ``[range]``/``[range:step]``, label-matcher
blocks, function calls, aggregations with ``by``/``without``, binary-op
modifiers (``on``, ``ignoring``, ``group_left``, ``group_right``, ``bool``),
``offset`` and ``@``. Keywords that PromQL's grammar also accepts as metric
names (``sum``, ``on``, ``and``...) are rejected where they would be read as a
selector. When ``promql-parser`` is installed, the rewritten query is also
parsed and every selector re-checked on the AST (defence in depth; the
tokenizer alone is what the tests prove).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAMESPACE_LABEL = "namespace"

AGGREGATORS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
})
BINARY_KEYWORDS = frozenset({"and", "or", "unless", "atan2"})
GROUPING_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
OTHER_KEYWORDS = frozenset({"bool", "offset"})
KEYWORDS = AGGREGATORS | BINARY_KEYWORDS | GROUPING_KEYWORDS | OTHER_KEYWORDS
NUMBER_WORDS = frozenset({"inf", "nan"})

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9]+(?:ms|s|m|h|d|w|y))+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_RANGE = re.compile(r"\[\s*(?:[0-9a-z.]+)?\s*(?::\s*(?:[0-9a-z.]+)?\s*)?\]")
_LABEL_LIST = re.compile(r"\(\s*(?:[A-Za-z_][A-Za-z0-9_]*\s*(?:,\s*[A-Za-z_][A-Za-z0-9_]*\s*)*,?\s*)?\)")
_MATCH_OP = re.compile(r"=~|!~|!=|=")
_NAMESPACE_VALUE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_OPERATOR_CHARS = "+-*/%^=!<>"


class QueryRejected(ValueError):
    """A policy query that could see outside its namespace (or could not be analysed)."""


@dataclass(frozen=True)
class Selector:
    """A vector selector found in the query (for reports and tests)."""

    text: str  # as written
    metric: str | None
    start: int
    end: int


def _skip_space(q: str, i: int) -> int:
    """Skip whitespace and ``#`` comments."""
    n = len(q)
    while i < n:
        if q[i].isspace():
            i += 1
        elif q[i] == "#":
            while i < n and q[i] != "\n":
                i += 1
        else:
            break
    return i


def _string_end(q: str, i: int) -> int:
    """Index just past the string literal starting at ``q[i]`` (``"``, ``'`` or raw backtick)."""
    quote = q[i]
    j = i + 1
    n = len(q)
    while j < n:
        c = q[j]
        if quote != "`" and c == "\\":
            j += 2
            continue
        if quote != "`" and c == "\n":
            break
        if c == quote:
            return j + 1
        j += 1
    raise QueryRejected(f"unterminated string starting at column {i + 1}: {q[i:i + 30]!r}")


def _string_value(literal: str) -> str | None:
    """The value of a string literal when it has no escapes (namespaces never need any), else None."""
    body = literal[1:-1]
    if literal[0] != "`" and "\\" in body:
        return None
    return body


def _matchers(q: str, i: int, namespace: str, selector_name: str) -> int:
    """Check the matcher block starting at ``q[i] == '{'``; return the index past ``}``."""
    assert q[i] == "{"
    j = _skip_space(q, i + 1)
    while True:
        if j >= len(q):
            raise QueryRejected(f"unterminated label matchers in {selector_name}")
        if q[j] == "}":
            return j + 1
        m = _LABEL.match(q, j)
        if not m:
            raise QueryRejected(
                f"cannot read the label matchers of {selector_name} at column {j + 1}: {q[j:j + 30]!r} "
                "(write matchers as label=\"value\"; quoted label names and `or` are not accepted)"
            )
        label = m.group(0)
        j = _skip_space(q, m.end())
        op = _MATCH_OP.match(q, j)
        if not op:
            raise QueryRejected(f"expected a match operator after {label!r} in {selector_name}")
        j = _skip_space(q, op.end())
        if j >= len(q) or q[j] not in "\"'`":
            raise QueryRejected(f"expected a string value for {label!r} in {selector_name}")
        end = _string_end(q, j)
        if label == NAMESPACE_LABEL:
            value = _string_value(q[j:end])
            if op.group(0) != "=":
                raise QueryRejected(
                    f"{selector_name} matches {NAMESPACE_LABEL} with {op.group(0)!r}; a policy may only read its "
                    f"own namespace: remove the {NAMESPACE_LABEL} matcher (careplane adds {NAMESPACE_LABEL}=\"{namespace}\")"
                )
            if value != namespace:
                raise QueryRejected(
                    f"{selector_name} reads namespace {q[j:end]} but the policy lives in {namespace!r}: remove the "
                    f"{NAMESPACE_LABEL} matcher (careplane adds {NAMESPACE_LABEL}=\"{namespace}\")"
                )
        j = _skip_space(q, end)
        if j < len(q) and q[j] == ",":
            j = _skip_space(q, j + 1)
        elif j < len(q) and q[j] != "}":
            raise QueryRejected(f"expected ',' or '}}' in the matchers of {selector_name} at column {j + 1}")


def _scan(query: str, namespace: str, ranges: list[str] | None = None) -> tuple[str, list[Selector]]:
    """The confined query and its selectors; the ``[range]``/``[range:step]`` blocks go to ``ranges`` if given."""
    if not _NAMESPACE_VALUE.fullmatch(namespace):
        raise QueryRejected(f"{namespace!r} is not a valid namespace name")
    q = query
    out: list[str] = []
    selectors: list[Selector] = []
    inject = f'{NAMESPACE_LABEL}="{namespace}"'
    i, n = 0, len(q)
    # The kind of the previous token decides how a word is read (as PromQL's grammar does).
    # start | open ( or , | operand (just ended an expression) | binop | modifier (on(..), bool...)
    # | agg (an aggregator awaiting by/without) | grouping (by(..)/without(..)) | offset | at
    prev = "start"
    while True:
        j = _skip_space(q, i)
        if j > i:
            out.append(" ")
        i = j
        if i >= n:
            break
        c = q[i]
        if c in "\"'`":
            end = _string_end(q, i)
            out.append(q[i:end])
            i, prev = end, "operand"
        elif c.isdigit() or (c == "." and i + 1 < n and q[i + 1].isdigit()):
            m = _NUMBER.match(q, i)
            assert m is not None
            if m.end() < n and (q[m.end()].isalnum() or q[m.end()] in "_:."):
                raise QueryRejected(f"cannot read the number at column {i + 1}: {q[i:i + 20]!r}")
            out.append(m.group(0))
            i, prev = m.end(), "operand"
        elif c == "[":
            m = _RANGE.match(q, i)
            if not m:
                raise QueryRejected(f"cannot read the range at column {i + 1}: {q[i:i + 20]!r}")
            if ranges is not None:
                ranges.append(m.group(0))
            out.append(m.group(0))
            i, prev = m.end(), "operand"
        elif c == "{":
            end = _matchers(q, i, namespace, q[i:q.find("}", i) + 1] or q[i:])
            selectors.append(Selector(q[i:end], None, i, end))
            out.append(_inject(q[i:end], inject))
            i, prev = end, "operand"
        elif c.isalpha() or c in "_:":
            m = _IDENT.match(q, i)
            assert m is not None
            word, end = m.group(0), m.end()
            nxt = _skip_space(q, end)
            nc = q[nxt] if nxt < n else ""
            next_word = _IDENT.match(q, nxt)
            if word.lower() in NUMBER_WORDS and nc != "{":
                out.append(word)
                i, prev = end, "operand"
            elif (word in ("by", "without") and prev in ("operand", "agg")) or (
                    word in ("on", "ignoring") and prev in ("binop", "modifier")):
                lm = _LABEL_LIST.match(q, nxt) if nc == "(" else None
                if not lm:
                    raise QueryRejected(f"{word!r} must be followed by a label list in parentheses, e.g. {word} (job)")
                out.append(word + lm.group(0))
                i, prev = lm.end(), ("grouping" if word in ("by", "without") else "modifier")
            elif word in ("group_left", "group_right") and prev == "modifier":
                lm = _LABEL_LIST.match(q, nxt) if nc == "(" else None
                out.append(word + (lm.group(0) if lm else ""))
                i, prev = (lm.end() if lm else end), "modifier"
            elif word == "bool" and prev == "binop":
                out.append(word)
                i, prev = end, "modifier"
            elif word in BINARY_KEYWORDS and prev == "operand":
                out.append(word)
                i, prev = end, "binop"
            elif word == "offset" and prev == "operand":
                out.append(word)
                i, prev = end, "offset"
            elif word in AGGREGATORS and prev not in ("operand",) and (
                    nc == "(" or (next_word is not None and next_word.group(0) in ("by", "without"))):
                out.append(word)
                i, prev = end, ("open" if nc == "(" else "agg")
                if nc == "(":
                    out.append("(")
                    i = nxt + 1
            elif word in KEYWORDS:
                raise QueryRejected(
                    f"{word!r} at column {i + 1} would be read as a metric name or is misplaced; "
                    f"write {{__name__=\"{word}\"}} if you mean a metric"
                )
            elif nc == "(" and prev != "operand":
                out.append(word + "(")  # a function call
                i, prev = nxt + 1, "open"
            elif prev == "operand":
                raise QueryRejected(f"unexpected {word!r} at column {i + 1}")
            else:
                # A metric name: a selector, with or without a matcher block.
                if nc == "{":
                    block_end = _matchers(q, nxt, namespace, word + q[nxt:q.find("}", nxt) + 1])
                    selectors.append(Selector(q[i:block_end], word, i, block_end))
                    out.append(word + _inject(q[nxt:block_end], inject))
                    i = block_end
                else:
                    selectors.append(Selector(word, word, i, end))
                    out.append(f"{word}{{{inject}}}")
                    i = end
                prev = "operand"
        elif c in "(,":
            out.append(c)
            i, prev = i + 1, "open"
        elif c == ")":
            out.append(c)
            i, prev = i + 1, "operand"
        elif c == "@":
            out.append(c)
            i, prev = i + 1, "at"
        elif c in _OPERATOR_CHARS:
            op = c
            if q[i:i + 2] in ("==", "!=", ">=", "<="):
                op = q[i:i + 2]
            elif c in "=!":
                raise QueryRejected(f"unexpected {c!r} at column {i + 1}")
            out.append(op)
            i, prev = i + len(op), "binop"
        else:
            raise QueryRejected(f"unexpected character {c!r} at column {i + 1}")
    return "".join(out).strip(), selectors


def _inject(block: str, matcher: str) -> str:
    inner = block[1:-1]
    if not inner.strip():
        return "{" + matcher + "}"
    return "{" + matcher + "," + inner + "}"


def _verify_with_parser(confined: str, namespace: str) -> None:
    """Defence in depth: re-check the rewrite on promql-parser's AST when the package is installed."""
    try:
        import promql_parser
    except ImportError:
        return
    try:
        expr = promql_parser.parse(confined)
    except Exception as e:  # the library raises its own error types
        raise QueryRejected(f"the query does not parse: {e}") from None
    problems: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers
            if matchers.or_matchers:
                problems.append(f"{node}: `or` inside matchers is not accepted")
            ns = [m for m in matchers.matchers if m.name == NAMESPACE_LABEL]
            if not ns or any(m.op != promql_parser.MatchOp.Equal or m.value != namespace for m in ns):
                problems.append(f"{node}: not confined to {namespace!r}")

    promql_parser.walk(expr, visit)
    if problems:
        raise QueryRejected("; ".join(problems))


def confine(query: str, namespace: str) -> str:
    """Return ``query`` with ``namespace="<namespace>"`` on every vector selector, or raise :class:`QueryRejected`."""
    if not query or not query.strip():
        raise QueryRejected("the query is empty")
    confined, selectors = _scan(query, namespace)
    if not selectors:
        # Not a leak, but a demand query without a selector reads nothing from the workload.
        raise QueryRejected(f"the query {query!r} reads no metric: it needs at least one selector")
    _verify_with_parser(confined, namespace)
    return confined


def selectors(query: str, namespace: str) -> list[Selector]:
    """The vector selectors of ``query`` (raises :class:`QueryRejected` like :func:`confine`)."""
    return _scan(query, namespace)[1]


_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}


def duration_seconds(text: str) -> float | None:
    """A PromQL duration (``90s``, ``1m``, ``1h30m``) in seconds, or None if ``text`` is not one."""
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def range_seconds(query: str, namespace: str = "default") -> float | None:
    """The longest range a query averages over (the ``1m`` of ``rate(x[1m])``), or None for an instant query.

    Why: a rate over a window shows a jump in demand gradually, over that window; the decision core
    extrapolates a rising reading over at most this long (careplane.decision.reactive). A gauge read
    as it is (no range) shows a jump at once and is not extrapolated. An unreadable query gives None
    (the policy is rejected elsewhere, by :func:`confine`, with the reason).
    """
    ranges: list[str] = []
    try:
        _scan(query, namespace, ranges)
    except QueryRejected:
        return None
    windows = [duration_seconds(r.strip("[]").split(":")[0]) for r in ranges]
    known = [w for w in windows if w is not None and w > 0]
    return max(known) if known else None
