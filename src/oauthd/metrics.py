"""The only importer of prometheus_client: what `/metrics` exposes, in one registry per server.

Each running server has its own `Metrics` (its own `CollectorRegistry`, never the global one),
so several servers in one process (the tests) count apart. Counters are incremented where
things happen (the request metrics as plain numbers, folded into their families at scrape
time: `_Requests`); the actor system's numbers and the signing keys' states are read at
scrape time and handed to `render()`, never pushed.

Label sets are bounded: `endpoint` is a route template (`/register/<client_id>`) or `other`
for unmatched paths, never a raw path; `status` is a status code the server sent; `grant_type`
is one of the grant types the token endpoint knows; `state` a key state.

`tenant` is `default` for the file's tenant (the root issuer) and the tenant's id for the
others, for at most `metrics.max_tenant_labels` of them: the first that many tenants this
process counts something for keep their own value until it restarts, and every later one is
counted under `_other` (not a valid tenant id, so it never names one). A server hosting ten
thousand tenants thus exposes a bounded number of series; the `_other` rows show how much
traffic the named ones leave out.

    oauthd_http_requests_total{endpoint,status,tenant}
    oauthd_http_request_duration_seconds{endpoint,tenant}  histogram
    oauthd_tokens_issued_total{grant_type,tenant}
    oauthd_refresh_token_reuse_total                     a replayed refresh token ended its grant
    oauthd_rate_limited_total{endpoint,tenant}           requests refused by a rate limit or quota
    oauthd_actors_live, oauthd_actor_mailbox_depth       gauges, at scrape time
    oauthd_actor_activations_total, oauthd_actor_evictions_total, oauthd_actor_restarts_total
    oauthd_signing_keys{state}                           published | active | retired
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_TENANT",
    "KEY_STATES",
    "OTHER_TENANTS",
    "UNMATCHED",
    "ActorStats",
    "Metrics",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "other"  # the endpoint label of a request no route matched
DEFAULT_TENANT = "default"  # the tenant label of the file's tenant, always its own
OTHER_TENANTS = "_other"  # the tenant label of the tenants past metrics.max_tenant_labels
KEY_STATES = ("published", "active", "retired")  # gone keys are not listed
# Token requests take ~1-5 ms, logins ~150 ms (argon2), federation up to the upstream timeout.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = (*BUCKETS_S, math.inf)
# The `le` labels as prometheus_client writes them (its helper is untyped).
_LE = tuple(floatToGoString(bound) for bound in _BOUNDS)  # type: ignore[no-untyped-call]


class ActorStats(Protocol):
    """What `ActorSystem.stats()` returns (runtime.SystemStats), read at scrape time."""

    @property
    def live(self) -> int: ...
    @property
    def activations(self) -> int: ...
    @property
    def evictions(self) -> int: ...
    @property
    def restarts(self) -> int: ...
    @property
    def mailbox_depth(self) -> int: ...


class _ScrapeTime:
    """A collector of the numbers the /metrics route reads just before rendering."""

    def __init__(self) -> None:
        self.stats: ActorStats | None = None
        self.key_states: Mapping[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        if s is not None:
            yield GaugeMetricFamily("oauthd_actors_live", "Live actors", value=s.live)
            yield GaugeMetricFamily(
                "oauthd_actor_mailbox_depth", "Messages waiting in all mailboxes", s.mailbox_depth
            )
            for name, help_text, value in (
                ("oauthd_actor_activations", "Actors spawned", s.activations),
                ("oauthd_actor_evictions", "Actors evicted (idle or over the cap)", s.evictions),
                ("oauthd_actor_restarts", "Actors restarted after a crash", s.restarts),
            ):
                yield CounterMetricFamily(name, help_text, value=value)
        keys = GaugeMetricFamily("oauthd_signing_keys", "Signing keys by state", labels=["state"])
        for state in KEY_STATES:
            keys.add_metric([state], self.key_states.get(state, 0))
        yield keys


class _Latency:
    """One request-latency series: a count per bucket (not cumulative), their sum, and when it
    was made, as prometheus_client's Histogram keeps them."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(_BOUNDS)
        self.total = 0.0
        self.created = time.time()


class _Requests:
    """The request metrics as plain numbers, counted on the event loop (one request at a time
    updates them, so no lock) and folded into the same families prometheus_client's Counter
    and Histogram would expose, at scrape time: a request pays a dict look-up and two
    additions, not a labelled child's lock and value objects (~2 us, issue 17)."""

    def __init__(self) -> None:
        # By (endpoint, status, tenant label): [count, created]; by (endpoint, tenant label).
        self.counts: dict[tuple[str, int, str], list[float]] = {}
        self.latency: dict[tuple[str, str], _Latency] = {}
        # What a request updates, by (endpoint, status, tenant label): one look-up.
        self.series: dict[tuple[str, int, str], tuple[list[float], _Latency]] = {}

    def add(self, endpoint: str, status: int, label: str, seconds: float) -> None:
        key = (endpoint, status, label)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = (
                self.counts.setdefault(key, [0.0, time.time()]),
                self.latency.setdefault((endpoint, label), _Latency()),
            )
        count, latency = series
        count[0] += 1
        latency.counts[bisect_left(_BOUNDS, seconds)] += 1  # the first bound >= seconds
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "oauthd_http_requests", "HTTP requests", labels=["endpoint", "status", "tenant"]
        )
        for (endpoint, status, label), (value, created) in self.counts.items():
            requests.add_metric([endpoint, str(status), label], value, created=created)
        yield requests
        name = "oauthd_http_request_duration_seconds"
        latency = HistogramMetricFamily(name, "HTTP request latency", labels=["endpoint", "tenant"])
        for (endpoint, label), series in self.latency.items():
            cumulative = [float(n) for n in accumulate(series.counts)]
            latency.add_metric(
                [endpoint, label], list(zip(_LE, cumulative, strict=True)), series.total
            )
            labels = {"endpoint": endpoint, "tenant": label}
            latency.samples.append(Sample(f"{name}_created", labels, series.created))
        yield latency


class Metrics:
    def __init__(self, max_tenant_labels: int = 100) -> None:
        self.max_tenant_labels = max_tenant_labels
        self._tenants: set[str] = set()  # the tenants with a label value of their own
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self._requests = _Requests()
        r.register(self._requests)
        self.tokens = Counter(
            "oauthd_tokens_issued", "Access tokens issued", ["grant_type", "tenant"], registry=r
        )
        self.refresh_reuse = Counter(
            "oauthd_refresh_token_reuse",
            "Rotated refresh tokens replayed after the grace window (grant revoked)",
            registry=r,
        )
        self.throttled = Counter(
            "oauthd_rate_limited",
            "Requests refused by a rate limit or a tenant's request quota",
            ["endpoint", "tenant"],
            registry=r,
        )
        self._scrape = _ScrapeTime()
        r.register(self._scrape)

    def tenant_label(self, tenant: str) -> str:
        """The `tenant` label value of `tenant`: its id while fewer than `max_tenant_labels`
        others have one, else `_other` (the module's docstring)."""
        if tenant == DEFAULT_TENANT or tenant in self._tenants:
            return tenant
        if len(self._tenants) < self.max_tenant_labels:
            self._tenants.add(tenant)
            return tenant
        return OTHER_TENANTS

    def request(
        self, endpoint: str, status: int, seconds: float, tenant: str = DEFAULT_TENANT
    ) -> None:
        self._requests.add(endpoint, status, self.tenant_label(tenant), seconds)

    def rate_limited(self, endpoint: str, tenant: str = DEFAULT_TENANT) -> None:
        """Count one request a rate limiter refused; `endpoint` is the route's path template."""
        self.throttled.labels(endpoint, self.tenant_label(tenant)).inc()

    def observer(self, tenant: str) -> Callable[[str, Mapping[str, object]], None]:
        """`observe` for the actors of `tenant`."""

        def observe(event: str, fields: Mapping[str, object]) -> None:
            self.observe(event, fields, tenant)

        return observe

    def observe(
        self, event: str, fields: Mapping[str, object], tenant: str = DEFAULT_TENANT
    ) -> None:
        """Count a committed audit event (see oauthd.audit) that a metric follows."""
        if event == "token_issued":
            grant_type = str(fields.get("grant_type", ""))
            self.tokens.labels(grant_type, self.tenant_label(tenant)).inc()
        elif event == "refresh_reuse_detected":
            self.refresh_reuse.inc()

    def render(self, stats: ActorStats, key_states: Mapping[str, int]) -> bytes:
        """The text exposition, with the actor system's and the keys' numbers as of now."""
        self._scrape.stats = stats
        self._scrape.key_states = key_states
        return generate_latest(self.registry)
