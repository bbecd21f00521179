"""The request metrics (oauthd/metrics.py) are counted as plain numbers and folded into
prometheus_client's families at scrape time: /metrics must read exactly as it did when each
request updated a prometheus_client Counter and Histogram."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from oauthd.metrics import BUCKETS_S, Metrics
from oauthd.runtime import SystemStats

REQUESTS = [
    ("/token", 200, 0.003, "default"),
    ("/token", 200, 0.001, "default"),  # on a bucket's bound: counted in that bucket
    ("/token", 400, 0.0025, "default"),
    ("/userinfo", 200, 0.2, "acme"),
    ("other", 404, 12.0, "default"),  # past the last bound: +Inf only
]


def reference() -> str:
    """The same requests through prometheus_client's own Counter and Histogram."""
    registry = CollectorRegistry(auto_describe=False)
    labels = ["endpoint", "status", "tenant"]
    count = Counter("oauthd_http_requests", "HTTP requests", labels, registry=registry)
    latency = Histogram(
        "oauthd_http_request_duration_seconds",
        "HTTP request latency",
        ["endpoint", "tenant"],
        buckets=BUCKETS_S,
        registry=registry,
    )
    for endpoint, status, seconds, tenant in REQUESTS:
        count.labels(endpoint, str(status), tenant).inc()
        latency.labels(endpoint, tenant).observe(seconds)
    return generate_latest(registry).decode()


def without_created_times(text: str) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", text)


def test_request_metrics_read_as_prometheus_client_counter_and_histogram() -> None:
    """Names, help, types, labels, cumulative buckets, sums, counts and `_created` series, in
    the same order: only the creation times differ."""
    metrics = Metrics()
    for endpoint, status, seconds, tenant in REQUESTS:
        metrics.request(endpoint, status, seconds, tenant)
    rendered = metrics.render(SystemStats(1, 1, 0, 0, 0), {}).decode()
    expected = without_created_times(reference())
    assert without_created_times(rendered).startswith(expected)
    assert "_created{" in expected
