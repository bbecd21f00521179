"""The front door of path tenants (web/tenants.py): which paths belong to a tenant, and an LRU
of tenant apps bounded in number and idle time, so many tenants do not keep many apps."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from oauthd.web.tenants import TenantRouter, tenant_of_path


@pytest.mark.parametrize(
    ("path", "root", "tenant"),
    [
        ("/t/acme/token", "", "acme"),
        ("/t/acme", "", "acme"),
        ("/t/acme/.well-known/openid-configuration", "", "acme"),
        ("/.well-known/oauth-authorization-server/t/acme", "", "acme"),
        ("/.well-known/openid-configuration/t/acme", "", "acme"),
        ("/.well-known/oauth-protected-resource/t/acme/userinfo", "", "acme"),
        ("/.well-known/oauth-authorization-server", "", None),
        ("/token", "", None),
        ("/tx/acme", "", None),
        ("/base/t/acme/token", "/base", "acme"),
        ("/.well-known/oauth-authorization-server/base/t/acme", "/base", "acme"),
        ("/t/acme/token", "/base", None),
    ],
)
def test_tenant_of_path(path: str, root: str, tenant: str | None) -> None:
    """RFC 8414 §3.1 and RFC 9728 §3.1 insert the well-known segment before the issuer's path."""
    assert tenant_of_path(path, root) == tenant


async def app(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def scope_of(tenant: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": f"/t/{tenant}/jwks", "headers": []}


async def request(router: TenantRouter, tenant: str) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        pass

    await router(scope_of(tenant), receive, send)


async def test_tenant_apps_are_an_lru_bounded_in_number_and_idle_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Past max_apps the least recently used app is dropped, and one idle past idle_s; each
    drop is handed on (the tenant's actors stop); the next request builds it again."""
    built: list[str] = []
    dropped: list[str] = []

    async def activate(tenant: str) -> Any:
        built.append(tenant)
        return app

    router = TenantRouter(app, "", activate, dropped.append, max_apps=2, idle_s=60.0)
    for tenant in ("a", "b", "a", "c"):
        await request(router, tenant)
    assert built == ["a", "b", "c"]
    assert dropped == ["b"]
    assert list(router.apps) == ["a", "c"]
    await trio.sleep(61)
    await request(router, "a")
    assert built == ["a", "b", "c", "a"]
    assert sorted(dropped) == ["a", "b", "c"]


async def test_a_tenant_past_the_bound_is_let_go_after_the_response_that_activated_another() -> (
    None
):
    """Letting a tenant go (its shards closed, its key schedule stopped) is not the latency of
    the cold request that pushed it out: it happens once that request has been answered."""
    dropped: list[str] = []
    seen_at_response: list[list[str]] = []

    async def responding(_scope: Any, _receive: Any, send: Any) -> None:
        seen_at_response.append(list(dropped))
        await app(_scope, _receive, send)

    async def activate(_tenant: str) -> Any:
        return responding

    router = TenantRouter(app, "", activate, dropped.append, max_apps=1, idle_s=60.0)
    await request(router, "a")
    await request(router, "b")
    assert seen_at_response == [[], []]  # "a" still held while "b" answered its first request
    assert dropped == ["a"]
    assert list(router.apps) == ["b"]


async def test_one_activation_for_concurrent_first_requests(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Requests arriving while a tenant is being activated wait for that one activation."""
    built: list[str] = []

    async def activate(tenant: str) -> Any:
        built.append(tenant)
        await trio.sleep(1)
        return app

    router = TenantRouter(app, "", activate, lambda _t: None)
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(router.app_of, "a")
    assert built == ["a"]


async def test_unknown_and_disabled_tenants_are_not_kept() -> None:
    """An unknown tenant (None) or a disabled one is answered, never cached."""
    answers: dict[str, Any] = {"x": None, "y": "disabled"}

    async def activate(tenant: str) -> Any:
        return answers[tenant]

    router = TenantRouter(app, "", activate, lambda _t: None)
    assert await router.app_of("x") is None
    assert await router.app_of("y") == "disabled"
    assert not router.apps
