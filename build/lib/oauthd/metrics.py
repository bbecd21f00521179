"""The only importer of prometheus_client: what `/metrics` exposes, in one registry per server.

Each running server has its own `Metrics` (its own `CollectorRegistry`, never the global one),
so several servers in one process (the tests) count apart. Counters are incremented where
things happen; the actor system's numbers and the signing keys' states are read at scrape
time and handed to `render()`, never pushed.

Label sets are bounded: `endpoint` is a route template (`/register/<client_id>`) or `other`
for unmatched paths, never a raw path; `status` is a status code the server sent; `grant_type`
is one of the grant types the token endpoint knows; `state` a key state.

    oauthd_http_requests_total{endpoint,status}
    oauthd_http_request_duration_seconds{endpoint}      histogram
    oauthd_tokens_issued_total{grant_type}
    oauthd_refresh_token_reuse_total                     a replayed refresh token ended its grant
    oauthd_rate_limited_total{endpoint}                  requests refused by a rate limit
    oauthd_actors_live, oauthd_actor_mailbox_depth       gauges, at scrape time
    oauthd_actor_activations_total, oauthd_actor_evictions_total, oauthd_actor_restarts_total
    oauthd_signing_keys{state}                           published | active | retired
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "KEY_STATES", "UNMATCHED", "ActorStats", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "other"  # the endpoint label of a request no route matched
KEY_STATES = ("published", "active", "retired")  # gone keys are not listed
# Token requests take ~1-5 ms, logins ~150 ms (argon2), federation up to the upstream timeout.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "oauthd_http_requests", "HTTP requests", ["endpoint", "status"], registry=r
        )
        self.latency = Histogram(
            "oauthd_http_request_duration_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=BUCKETS_S,
            registry=r,
        )
        self.tokens = Counter(
            "oauthd_tokens_issued", "Access tokens issued", ["grant_type"], registry=r
        )
        self.refresh_reuse = Counter(
            "oauthd_refresh_token_reuse",
            "Rotated refresh tokens replayed after the grace window (grant revoked)",
            registry=r,
        )
        self.throttled = Counter(
            "oauthd_rate_limited", "Requests refused by a rate limit", ["endpoint"], registry=r
        )
        self._scrape = _ScrapeTime()
        r.register(self._scrape)

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def rate_limited(self, endpoint: str) -> None:
        """Count one request a rate limiter refused; `endpoint` is the route's path template."""
        self.throttled.labels(endpoint).inc()

    def observe(self, event: str, fields: Mapping[str, object]) -> None:
        """Count a committed audit event (see oauthd.audit) that a metric follows."""
        if event == "token_issued":
            self.tokens.labels(str(fields.get("grant_type", ""))).inc()
        elif event == "refresh_reuse_detected":
            self.refresh_reuse.inc()

    def render(self, stats: ActorStats, key_states: Mapping[str, int]) -> bytes:
        """The text exposition, with the actor system's and the keys' numbers as of now."""
        self._scrape.stats = stats
        self._scrape.key_states = key_states
        return generate_latest(self.registry)
