"""Shard selectors, peering names and kopf settings."""

from __future__ import annotations

import kopf
import pytest

from careplane.operator import settings as cfg


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("shard=a", {"shard": "a"}, True),
        ("shard=a", {"shard": "b"}, False),
        ("shard==a", {"shard": "a"}, True),
        ("shard!=a", {}, True),
        ("shard!=a", {"shard": "a"}, False),
        ("shard", {"shard": ""}, True),
        ("!shard", {"shard": "x"}, False),
        ("shard in (a, b),tier notin (batch)", {"shard": "b", "tier": "web"}, True),
        ("shard in (a, b),tier notin (batch)", {"shard": "b", "tier": "batch"}, False),
        ("shard in (a,b)", {"shard": "c"}, False),
        (None, {}, True),
    ],
)
def test_selector_matches(selector: str | None, labels: dict[str, str], expected: bool) -> None:
    assert cfg.selector_matches(selector, labels) is expected


def test_malformed_selector_is_rejected() -> None:
    with pytest.raises(ValueError, match="cannot parse"):
        cfg.parse_selector("a b c")


def test_shards_peer_apart_and_replicas_of_one_shard_peer_together() -> None:
    a1 = cfg.OperatorConfig(prometheus_url="http://p", selector="shard=a")
    a2 = cfg.OperatorConfig(prometheus_url="http://p", selector="shard=a", metrics_port=1)
    b = cfg.OperatorConfig(prometheus_url="http://p", selector="shard=b")
    whole = cfg.OperatorConfig(prometheus_url="http://p")
    assert cfg.peering_name(a1) == cfg.peering_name(a2) != cfg.peering_name(b)
    assert cfg.peering_name(whole) == "careplane"
    assert cfg.peering_name(cfg.OperatorConfig(prometheus_url="x", peering_name="mine")) == "mine"


def test_configure_sets_storage_peering_and_server_side_selector() -> None:
    settings = kopf.OperatorSettings()
    cfg.configure(settings, cfg.OperatorConfig(prometheus_url="http://p", selector="shard=a", peering_lifetime=7))
    assert settings.persistence.finalizer == cfg.FINALIZER
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.peering.mandatory and settings.peering.lifetime == 7 and settings.peering.priority > 0
    assert list(settings.watching.label_selectors.values()) == ["shard=a"]
    body = kopf.Body({"metadata": {"annotations": {cfg.STATE_ANNOTATION: "{}", "other": "1"}}, "spec": {"a": 1}})
    essence = settings.persistence.diffbase_storage.build(body=body)
    assert cfg.STATE_ANNOTATION not in essence.get("metadata", {}).get("annotations", {})
    other = kopf.OperatorSettings()
    cfg.configure(other, cfg.OperatorConfig(prometheus_url="http://p", standalone=True))
    assert other.peering.standalone and not other.peering.mandatory
