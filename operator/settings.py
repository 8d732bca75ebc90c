"""How kopf itself is set up for careplane: storage, peering, posting, watching, sharding.

Why each choice:

* progress and diff-base in **annotations** under ``careplane.io`` (not
  ``status.kopf``): the CRD's status schema is strict, so the API server would
  prune kopf's status fields and kopf would re-run handlers forever;
* the decision state annotation is excluded from the diff-base, so writing it
  every interval is not seen as a spec update;
* **peering** for HA: every replica of one Deployment shares a peering object
  and picks a random priority at start, so exactly one is active and the other
  waits (kopf pauses every peer that sees a higher priority); when the active
  one exits it withdraws at once, when it dies its record expires after
  ``peering.lifetime``;
* **sharding** by ``--namespace`` and/or ``--selector``: the label selector is
  sent to the API server (``settings.watching.label_selectors``) and checked
  again client-side by :func:`selector_matches`, so a shard never acts on a
  policy outside its selector even if a server ignores the parameter; each
  shard gets its own peering object (named after the shard), so shards do not
  pause each other;
* watching timeouts well under the API server's, so a half-dead connection is
  noticed within a minute, and API errors back off.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import kopf

from careplane import policy

PREFIX = "careplane.io"
FINALIZER = f"{PREFIX}/finalizer"
STATE_ANNOTATION = f"{PREFIX}/decision-state"
RECONCILED_BY_ANNOTATION = f"{PREFIX}/reconciled-by"
RESOURCE = f"{policy.API_GROUP}/{policy.PLURAL}"


@dataclass(frozen=True)
class OperatorConfig:
    """The command-line choices of one operator process."""

    prometheus_url: str
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()
    all_namespaces: bool = False
    selector: str | None = None
    metrics_port: int = 9464
    standalone: bool = False
    liveness: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    peering_name: str | None = None  # default: derived from the shard
    peering_lifetime: int = 60
    priority: int | None = None  # default: random, so two replicas never tie
    prometheus_token: str | None = None
    prometheus_ca: str | None = None
    prometheus_insecure: bool = False
    prometheus_timeout: float = 5.0
    identity: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def clusterwide(self) -> bool:
        return self.all_namespaces or not self.namespaces


def shard_id(namespaces: Sequence[str], selector: str | None) -> str:
    """A short stable id of a shard: operators with the same shard peer, others do not."""
    if not namespaces and not selector:
        return ""
    key = ",".join(sorted(namespaces)) + "|" + (selector or "")
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def peering_name(config: OperatorConfig) -> str:
    if config.peering_name:
        return config.peering_name
    shard = shard_id(config.namespaces, config.selector)
    return "careplane" + (f"-{shard}" if shard else "")


# --- label selectors ------------------------------------------------------------------------
_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b`` has two terms)."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


Predicate = Callable[[Mapping[str, str]], bool]


def _equals(key: str, value: str) -> Predicate:
    return lambda labels: labels.get(key) == value


def _in(key: str, values: frozenset[str]) -> Predicate:
    return lambda labels: labels.get(key) in values


def _exists(key: str) -> Predicate:
    return lambda labels: key in labels


def _not(pred: Predicate) -> Predicate:
    return lambda labels: not pred(labels)


def parse_selector(selector: str) -> list[Callable[[Mapping[str, str]], bool]]:
    """Kubernetes label-selector syntax as predicates: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``in``, ``notin``.

    Hand-written (about 20 lines) because neither kopf nor the kubernetes client
    evaluates selectors client-side; raises ValueError on a malformed term.
    """
    preds: list[Callable[[Mapping[str, str]], bool]] = []
    for term in _split_selector(selector):
        if m := _SET.match(term):
            key, values = m.group(1), frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            preds.append(_in(key, values) if m.group(2) == "in" else _not(_in(key, values)))
        elif "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            preds.append(_not(_equals(key, value)))
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            preds.append(_equals(key, value))
        elif term.startswith("!"):
            preds.append(_not(_exists(term[1:].strip())))
        elif re.fullmatch(r"[A-Za-z0-9./_-]+", term):
            preds.append(_exists(term))
        else:
            raise ValueError(f"--selector: cannot parse {term!r} (use k=v, k!=v, k, !k, k in (a,b))")
    return preds


def selector_matches(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    if not selector:
        return True
    labels = labels or {}
    return all(pred(labels) for pred in parse_selector(selector))


def configure(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Apply careplane's choices to kopf's settings (called from the startup handler)."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX,
        key="last-handled-configuration",
        ignored_fields=[
            ("metadata", "annotations", STATE_ANNOTATION),
            ("metadata", "annotations", RECONCILED_BY_ANNOTATION),
        ],
    )

    settings.peering.standalone = config.standalone
    if not config.standalone:
        settings.peering.name = peering_name(config)
        settings.peering.mandatory = True
        settings.peering.lifetime = config.peering_lifetime
        settings.peering.priority = (
            config.priority if config.priority is not None else random.SystemRandom().randint(1, 2**31 - 1)
        )
        settings.peering.stealth = True

    # Events only from explicit kopf.event() calls, not from every log line.
    settings.posting.enabled = True
    settings.posting.loggers = False

    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.watching.inactivity_timeout = 70
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    settings.networking.error_backoffs = (1, 2, 4, 8, 16, 30)
    if config.selector:
        parse_selector(config.selector)  # fail fast on a malformed selector
        settings.watching.label_selectors[RESOURCE] = config.selector
    # A daemon stops within this time when the policy is deleted or the operator pauses.
    settings.background.cancellation_polling = 5
