"""Three "hosts" behind HAProxy on one PostgreSQL (issue 19), as a deployment past one machine
runs: three `oauthd serve` processes on their own ports, each with its own empty data dir,
sharing one database through `[storage] backend = "postgres"`, and HAProxy (tests/haproxy.py)
balancing every request round-robin over them under the issuer's one URL. A client never
knows which host answers: a code made on one is redeemed on another, a login page served by
one is posted to the next.

What must hold: a code is redeemed once and a refresh token rotates once although the racing
requests land on different hosts; a host killed with SIGKILL mid-load loses nothing it
acknowledged and the others go on serving; PostgreSQL restarted mid-load gives 503s (never a
500) and then full service, and nothing acknowledged before is lost."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.flow import Authorization, refresh, register, tokens_for
from tests.haproxy import balancer
from tests.interop.test_cli import free_port
from tests.interop.test_postgres_hosts import DSN_ENV, STORAGE
from tests.interop.test_workers import (
    Process,
    redemptions_have_one_winner,
    refreshes_rotate_once,
    start,
    write_config,
)
from tests.postgres import Cluster

HOSTS = 3
LOADERS = 6  # concurrent clients, each running code flows in a loop
ACKED_BEFORE = 12  # grants acknowledged before the fault is injected
ACKED_AFTER = 12  # and after it, before the load stops


@dataclass
class Deployment:
    url: str  # the issuer: HAProxy's frontend
    hosts: list[Process]
    urls: list[str]  # each host's own address, for checks that bypass the balancer


@contextmanager
def deployment(tmp_path: Path, dsn: str) -> Iterator[Deployment]:
    """HOSTS processes, one issuer (the balancer's URL), one database, HAProxy in front."""
    front = free_port()
    ports = [free_port() for _ in range(HOSTS)]
    with ExitStack() as stack:
        hosts = []
        for i, port in enumerate(ports):
            root = tmp_path / f"host{i}"
            root.mkdir()
            config = write_config(root, front, STORAGE)
            url = f"http://127.0.0.1:{port}"
            started = start(
                config, root / "serve.log", url, "--listen", f"127.0.0.1:{port}", env={DSN_ENV: dsn}
            )
            hosts.append(stack.enter_context(started))
        url = stack.enter_context(balancer(tmp_path / "haproxy", front, ports)).url
        yield Deployment(url, hosts, [h.url for h in hosts])


@pytest.fixture
def three_hosts(tmp_path: Path, postgres_cluster: Cluster) -> Iterator[Deployment]:
    with deployment(tmp_path, postgres_cluster.create_database()) as deployed:
        yield deployed


def token_requests(url: str) -> float:
    """How many /token requests the host at `url` has answered (its own /metrics)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "oauthd_http_requests_total" and sample.labels["endpoint"] == "/token"
    )


async def test_races_over_three_hosts_behind_haproxy_have_one_winner(
    three_hosts: Deployment,
) -> None:
    """OAuth 2.1 §4.1.3 and §4.3.1 across three hosts: each code, redeemed by four racers that
    HAProxy spreads over the hosts, yields one 200 and invalid_grant for the rest; each refresh
    token, raced the same way, rotates into one successor. Every host took part."""
    both = (three_hosts.url, three_hosts.url)
    await redemptions_have_one_winner(both)
    await refreshes_rotate_once(both)
    assert all(token_requests(url) > 0 for url in three_hosts.urls)


@dataclass
class Load:
    """Code flows run by LOADERS clients through the balancer until stopped. A grant counts as
    acknowledged when its token response (200) reached the client. Every server error any
    step met is counted by status (0: the connection failed); a flow that met one is not
    acknowledged, and its client starts another."""

    url: str
    acked: list[tuple[str, str]] = field(default_factory=list)  # (client_id, refresh token)
    errors: Counter[int] = field(default_factory=Counter)
    stop: trio.Event = field(default_factory=trio.Event)
    _progress: trio.Event = field(default_factory=trio.Event)

    def client(self) -> httpx.AsyncClient:
        async def seen(response: httpx.Response) -> None:
            if response.status_code >= 500:
                self.errors[response.status_code] += 1

        return httpx.AsyncClient(base_url=self.url, timeout=30, event_hooks={"response": [seen]})

    async def run(self, nursery: trio.Nursery) -> None:
        async with self.client() as http:
            client_id = (await register(http))["client_id"]
        for _ in range(LOADERS):
            nursery.start_soon(self._loader, client_id)

    async def _loader(self, client_id: str) -> None:
        async with self.client() as http:
            while not self.stop.is_set():
                try:
                    body = await tokens_for(http, Authorization(client_id))
                except httpx.TransportError:
                    self.errors[0] += 1
                    continue
                except AssertionError:  # a step was refused; `seen` counted a server error
                    continue
                self.acked.append((client_id, body["refresh_token"]))
                self._progress.set()

    async def until(self, count: int) -> None:
        """Wait until `count` grants were acknowledged in all."""
        with trio.fail_after(120):
            while len(self.acked) < count:
                self._progress = trio.Event()
                await self._progress.wait()


async def under_load(url: str, fault: Callable[[Load], Awaitable[None]]) -> Load:
    """Run the load, inject `fault` once ACKED_BEFORE grants were acknowledged, and stop once
    ACKED_AFTER more were."""
    load = Load(url)
    async with trio.open_nursery() as nursery:
        await load.run(nursery)
        await load.until(ACKED_BEFORE)
        await fault(load)
        await load.until(len(load.acked) + ACKED_AFTER)
        load.stop.set()
    return load


RETRIES = 10  # 503s a client retries after Retry-After


async def every_grant_survived(url: str, acked: list[tuple[str, str]]) -> None:
    """Each acknowledged grant's refresh token still works, through the balancer, for a
    client that honours a 503's Retry-After (a host that found the database unreachable a
    moment ago answers 503 at once for a second: see storage/postgres.py)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for client_id, token in acked:
            response = await refresh(http, client_id, token)
            for _ in range(RETRIES):
                if response.status_code != 503:
                    break
                await trio.sleep(int(response.headers.get("retry-after", "1")))
                response = await refresh(http, client_id, token)
            assert response.status_code == 200, response.text


async def test_a_host_killed_mid_load_loses_nothing_it_acknowledged(
    three_hosts: Deployment,
) -> None:
    """SIGKILL one host while code flows run through the balancer: every grant acknowledged
    before or after refreshes afterwards on the other hosts, and the load goes on (a flow
    whose request was on the killed host fails, as HAProxy's 502 or a closed connection; no
    answer is a 500)."""
    victim = three_hosts.hosts[1]

    async def kill(_load: Load) -> None:
        os.kill(victim.popen.pid, signal.SIGKILL)
        victim.popen.wait(timeout=10)

    load = await under_load(three_hosts.url, kill)
    assert victim.popen.returncode == -signal.SIGKILL
    # A flow whose request was on the killed host gets HAProxy's 502 or a closed connection.
    assert set(load.errors) <= {0, 502}, load.errors
    await every_grant_survived(three_hosts.url, load.acked)


async def test_postgres_restarted_mid_load_gives_503_then_full_service(
    three_hosts: Deployment, postgres_cluster: Cluster
) -> None:
    """Restart PostgreSQL while code flows run through the balancer: while it is down the hosts
    answer 503 (never a 500), then serve again on their own, and every grant acknowledged
    before or after the restart refreshes. Through the balancer a 503 may be HAProxy's own,
    once the hosts' /healthz has failed its checks; a host asked directly answers its own."""

    async def restart(load: Load) -> None:
        await trio.to_thread.run_sync(postgres_cluster.stop)
        try:
            client_id, token = load.acked[0]
            async with httpx.AsyncClient(base_url=three_hosts.urls[0], timeout=30) as http:
                while_down = await refresh(http, client_id, token)
            assert while_down.status_code == 503, while_down.text
            assert while_down.json()["error"] == "temporarily_unavailable"
            assert int(while_down.headers["retry-after"]) >= 1
        finally:  # the cluster is shared by the session's other tests
            await trio.to_thread.run_sync(postgres_cluster.start)

    load = await under_load(three_hosts.url, restart)
    assert set(load.errors) <= {503}, load.errors
    await every_grant_survived(three_hosts.url, load.acked)
