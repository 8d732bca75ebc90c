"""Tenant confinement of PromQL: exact rewrites, clear rejections, and a property test with a real oracle.

The oracle: two real Prometheus servers hold the same series of namespace ``alpha``; the second also holds
``beta`` and series without a namespace. A query confined to ``alpha`` must give identical answers on
both. Any leak of another tenant's data shows up as a difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from careplane.operator.promql import QueryRejected, confine, duration_seconds, range_seconds, selectors
from careplane.sandbox.prometheus import PrometheusServer, Series

from .conftest import requires_prometheus

NS = "alpha"


@pytest.mark.parametrize(("query", "expected"), [
    ("up", 'up{namespace="alpha"}'),
    ('sum(rate(http_requests_total{service="fhir-api"}[1m]))',
     'sum(rate(http_requests_total{namespace="alpha",service="fhir-api"}[1m]))'),
    ('histogram_quantile(0.95, sum by (le) (rate(h_bucket{service="a"}[1m])))',
     'histogram_quantile(0.95, sum by(le) (rate(h_bucket{namespace="alpha",service="a"}[1m])))'),
    ('{__name__=~"http_.*"}', '{namespace="alpha",__name__=~"http_.*"}'),
    ("x offset -5m @ start()", 'x{namespace="alpha"} offset -5m @ start()'),
    ("max_over_time(rate(x[5m])[1h:1m])", 'max_over_time(rate(x{namespace="alpha"}[5m])[1h:1m])'),
    ("a / on(job) group_left(pod) b", 'a{namespace="alpha"} / on(job) group_left(pod) b{namespace="alpha"}'),
    ("a > bool 1", 'a{namespace="alpha"} > bool 1'),
    ("sum without (pod) (a) and b unless c", 'sum without(pod) (a{namespace="alpha"}) and b{namespace="alpha"} unless c{namespace="alpha"}'),
    ('label_replace(up, "namespace", "beta", "", "")', 'label_replace(up{namespace="alpha"}, "namespace", "beta", "", "")'),
    ('x{a="}{namespace=\\"beta\\"}"}', 'x{namespace="alpha",a="}{namespace=\\"beta\\"}"}'),
    ("x # {namespace=\"beta\"}\n + y", 'x{namespace="alpha"} + y{namespace="alpha"}'),
    ('x{namespace="alpha"}', 'x{namespace="alpha",namespace="alpha"}'),
    ("1 - up", '1 - up{namespace="alpha"}'),
    ("sum(x) by (a) > Inf", 'sum(x{namespace="alpha"}) by(a) > Inf'),
])
def test_rewrites(query: str, expected: str) -> None:
    assert confine(query, NS) == expected


@pytest.mark.parametrize(("query", "message"), [
    ('x{namespace="beta"}', 'x{namespace="beta"} reads namespace "beta" but the policy lives in \'alpha\''),
    ('x{namespace=~"alpha|beta"}', "matches namespace with '=~'"),
    ('x{namespace!="alpha"}', "matches namespace with '!='"),
    ('x{namespace!~"beta"}', "matches namespace with '!~'"),
    ('sum(rate(x{service="a", namespace = "beta"}[1m]))', "reads namespace \"beta\""),
    ('{namespace=""}', "reads namespace \"\""),
    ('x{"namespace"="beta"}', "quoted label names"),
    ('x{a="b" or namespace="beta"}', "expected ','"),
    ("count(on)", "write {__name__=\"on\"}"),
    ("sum", "would be read as a metric name"),
    ("time()", "reads no metric"),
    ("", "empty"),
    ('x{a="unterminated}', "unterminated"),
    ("x $ y", "unexpected character"),
])
def test_rejections_name_the_selector_and_the_fix(query: str, message: str) -> None:
    with pytest.raises(QueryRejected) as err:
        confine(query, NS)
    assert message in str(err.value)
    if "namespace" in query and "quoted" not in message and "','" not in message:
        assert "remove the namespace matcher" in str(err.value)


def test_selectors_are_reported() -> None:
    found = selectors("a + rate(b{c='d'}[1m])", NS)
    assert [(s.metric, s.text) for s in found] == [("a", "a"), ("b", "b{c='d'}")]


@pytest.mark.parametrize(("query", "seconds"), [
    ('sum(rate(http_requests_total{service="fhir-api"}[1m]))', 60.0),
    ("sum(rate(a[90s])) / sum(rate(b[2m]))", 120.0),  # the longest window
    ("rate(a[1h30m])", 5400.0),
    ("max_over_time(rate(a[5m])[1h:1m])", 3600.0),  # a subquery's range, not its resolution
    ('sum(careplane_demand{service="x"})', None),  # a gauge: an instant query averages over nothing
    ("rate(a[1m]) ~ 3", None),  # unreadable: confine() rejects it with the reason
])
def test_the_window_a_demand_query_averages_over(query: str, seconds: float | None) -> None:
    assert range_seconds(query, NS) == seconds


def test_durations() -> None:
    assert duration_seconds("1h30m") == 5400.0 and duration_seconds("250ms") == 0.25
    assert duration_seconds("1x") is None and duration_seconds("") is None and duration_seconds("5m1") is None


def test_namespace_must_be_a_valid_name() -> None:
    with pytest.raises(QueryRejected, match="not a valid namespace"):
        confine("up", 'alpha"} or {a="')


# ---- the oracle ----------------------------------------------------------------------------------

METRICS = ["x", "y", "on", "sum", "nan_total"]


def _series(namespaces: list[str | None], end: float) -> list[Series]:
    out = []
    for k, metric in enumerate(METRICS):
        for ns in namespaces:
            for svc in ("s1", "s2"):
                labels = {"service": svc, "a": str(k % 2)}
                if ns is not None:
                    labels["namespace"] = ns
                scale = {"alpha": 1.0, "beta": 1000.0, None: 77.0}[ns]
                samples = [(end - 1800 + 15 * i, scale * (i + 1) * (1 + k)) for i in range(121)]
                out.append(Series(metric, labels, samples))
    return out


@pytest.fixture(scope="module")
def oracle() -> Iterator[tuple[str, str, float]]:
    end = math.floor(time.time()) - 120
    with PrometheusServer() as only_alpha, PrometheusServer() as everyone:
        only_alpha.backfill(_series(["alpha"], end))
        everyone.backfill(_series(["alpha", "beta", None], end))
        yield only_alpha.url, everyone.url, float(end - 300)


def _evaluate(url: str, query: str, at: float) -> Any:
    body = requests.get(f"{url}/api/v1/query", params={"query": query, "time": str(at)}, timeout=10).json()
    if body["status"] != "success":
        return ("error", body.get("errorType"))
    data = body["data"]
    result = data["result"]
    if data["resultType"] in ("scalar", "string"):
        return (data["resultType"], result[1])
    return (data["resultType"], sorted((sorted(r["metric"].items()), r.get("value", r.get("values"))) for r in result))


def _agree(oracle: tuple[str, str, float], query: str) -> bool | None:
    """None when the query is rejected; else whether both servers agree on the confined query."""
    try:
        confined = confine(query, NS)
    except QueryRejected:
        return None
    alpha_url, all_url, at = oracle
    return _evaluate(alpha_url, confined, at) == _evaluate(all_url, confined, at)


@requires_prometheus
def test_the_oracle_can_fail(oracle: tuple[str, str, float]) -> None:
    alpha_url, all_url, at = oracle
    assert _evaluate(alpha_url, "sum(x)", at) != _evaluate(all_url, "sum(x)", at)  # unconfined: leaks
    assert _agree(oracle, "sum(x)") is True
    assert _evaluate(alpha_url, confine("sum(x)", NS), at)[1]  # and it does return data


names = st.sampled_from([*METRICS, "by", "offset", "bool", "and", "Inf", "nan", "avg", "__name__"])
label_names = st.sampled_from(["namespace", "service", "a", "__name__", "Namespace", "namespace_"])
match_ops = st.sampled_from(["=", "!=", "=~", "!~"])
values = st.sampled_from(["alpha", "beta", "", ".*", "alpha|beta", "s1", "x", "al.*", "(?i)ALPHA", 'a\\"', "y"])
quotes = st.sampled_from(['"', "'", "`"])


@st.composite
def matcher(draw: st.DrawFn) -> str:
    q = draw(quotes)
    v = draw(values)
    if q == "`":
        v = v.replace("\\", "")
    if q == "'":
        v = v.replace('\\"', "\\'")
    return f"{draw(label_names)}{draw(match_ops)}{q}{v}{q}"


@st.composite
def selector(draw: st.DrawFn) -> str:
    name = draw(st.one_of(st.just(""), names))
    ms = draw(st.lists(matcher(), max_size=3))
    if not ms and name:
        return name
    sep = draw(st.sampled_from([",", ", ", " , "]))
    return f"{name}{{{sep.join(ms)}}}"


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda s: f"rate({s}[1m])", selector()),
        st.builds(lambda e: f"sum by (service) ({e})", inner),
        st.builds(lambda e: f"sum without(a)({e})", inner),
        st.builds(lambda e: f"count({e})", inner),
        st.builds(lambda e: f"topk(1, {e})", inner),
        st.builds(lambda a, op, b: f"{a} {op} {b}", inner, st.sampled_from(["+", "/", ">", "== bool", "and", "or", "unless", "and on(service)", "* on(service, a) group_left"]), inner),
        st.builds(lambda e: f"({e})", inner),
        st.builds(lambda e: f"-{e}", inner),
        st.builds(lambda e: f"{e} offset 1m", inner),
        st.builds(lambda e: f"max_over_time(({e})[5m:1m])", inner),
        st.builds(lambda e: f'label_replace({e}, "namespace", "alpha", "", "")', inner),
        st.builds(lambda e: f"absent({e})", inner),
        st.builds(lambda e: f'{e} # {{namespace="beta"}}\n', inner),
    )


expressions = st.recursive(st.one_of(selector(), st.sampled_from(["1", "0.5", "Inf"])), _combine, max_leaves=6)


@requires_prometheus
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(query=expressions)
def test_confined_queries_cannot_see_other_namespaces(oracle: tuple[str, str, float], query: str) -> None:
    assert _agree(oracle, query) in (None, True), query


@requires_prometheus
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(query=st.text(alphabet='xyonsum(){}[]"\'`=~!,+-*/ #\n@:.5mbealphtkv_', min_size=1, max_size=40))
def test_arbitrary_text_is_rejected_or_confined(oracle: tuple[str, str, float], query: str) -> None:
    assert _agree(oracle, query) in (None, True), query
