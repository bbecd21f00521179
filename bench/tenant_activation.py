"""A cold path tenant's first request in process: activation, then its first token (CPU time).

    .venv/bin/python bench/tenant_activation.py [COUNT]          # default 100
    PYTHONPATH=OLD/src .venv/bin/python bench/tenant_activation.py [COUNT]   # another oauthd

Makes COUNT tenants (tenant_data.py), opens the runtime and the tenant router as `oauthd serve`
wires them (no socket, no HTTP server), then for each tenant in turn: activates it (what its
first request does before any route runs: registry look-up, settings, KeyManager, routes),
sends its first client_credentials token request as an ASGI call (the client's shard opened,
the signing key used for the first time), then a second one (warm). Prints the process CPU
time of each step, p50 and p90 over the tenants: CPU time, because this VM is shared. With
PYTHONPATH pointing at an older checkout's `src`, the same steps run on that code (the data
dir is made by the code under test, in the same format).
"""

from __future__ import annotations

import base64
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import trio

from coldclients import percentile
from oauthd.server import Runtime, TenantRouter, app_state, create_app, open_runtime
from oauthd.settings import LogSettings, settings_for_tests
from tenant_data import ISSUER, MACHINE_SECRET, make_tenants, tenant_client, tenant_id

Step = Callable[[], Awaitable[Any]]


async def asgi_post(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"auth.bench.example"), *headers],
        "client": ("127.0.0.1", 5000),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
        "server": ("127.0.0.1", 443),
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


async def token(router: Any, i: int) -> None:
    basic = base64.b64encode(f"{tenant_client(i)}:{MACHINE_SECRET}".encode())
    body = b"grant_type=client_credentials"
    headers = [
        (b"authorization", b"Basic " + basic),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(body)).encode()),
    ]
    status = await asgi_post(router, f"/t/{tenant_id(i)}/token", body, headers)
    if status != 200:
        raise RuntimeError(f"tenant {i}: token answered {status}")


async def cpu_ms(step: Step) -> float:
    started = time.process_time()
    await step()
    return (time.process_time() - started) * 1000


async def measure(data: Path, count: int) -> dict[str, list[float]]:
    settings = settings_for_tests(
        issuer=ISSUER, data_dir=data, log=LogSettings(access_log=False, level="warning")
    )
    times: dict[str, list[float]] = {"activation": [], "first token": [], "second token": []}
    async with trio.open_nursery() as nursery:
        runtime: Runtime = await nursery.start(partial(open_runtime, settings, janitor=False))
        tenancy = runtime.tenancy

        def make_app(env: Any) -> Any:
            return create_app(app_state(runtime, env, ""))

        activate = partial(tenancy.activate, make_app=make_app)
        router = TenantRouter(make_app(runtime.env), settings.issuer_path, activate, tenancy.drop)
        tenancy.listeners.append(router.forget)
        for i in range(count):
            times["activation"].append(await cpu_ms(partial(router.app_of, tenant_id(i))))
            times["first token"].append(await cpu_ms(partial(token, router, i)))
            times["second token"].append(await cpu_ms(partial(token, router, i)))
        nursery.cancel_scope.cancel()
    return times


def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-activation-") as name:
        data = Path(name) / "data"
        make_tenants(data, settings_for_tests(issuer=ISSUER, data_dir=data), count)
        times = trio.run(measure, data, count)
    print(f"{count} tenants, process CPU time per step (ms):")
    for step, values in times.items():
        p50, p90 = statistics.median(values), percentile(values, 90)
        print(f"  {step:13} p50 {p50:6.2f}  p90 {p90:6.2f}")
    print(f"  load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
