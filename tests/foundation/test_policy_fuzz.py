"""Random specs either validate or fail with clean problems; validation never raises."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from careplane.validation import PolicyError, parse_policy, validate_document

from .conftest import load_examples

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


BASES = load_examples()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_mutations_never_crash(data: st.DataObject) -> None:
    doc = copy.deepcopy(data.draw(st.sampled_from(BASES)))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(doc["spec"])))
        node: Any = doc["spec"]
        if not path:
            doc["spec"] = data.draw(values)
            break
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = data.draw(values)
    problems = validate_document(doc)
    for problem in problems:
        assert problem.path.startswith("spec") or problem.path == ""
        assert problem.message
    if problems:
        try:
            parse_policy(doc)
        except PolicyError as exc:
            assert str(exc)
        else:
            raise AssertionError("parse_policy accepted a document with problems")
    else:
        assert parse_policy(doc).spec is not None


@settings(max_examples=100, deadline=None)
@given(values)
def test_arbitrary_documents_never_crash(document: Any) -> None:
    for problem in validate_document(document):
        assert isinstance(problem.message, str)
