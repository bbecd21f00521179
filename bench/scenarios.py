"""The HTTP scenarios of issues 9 and 17 (`BENCH_ONLY=scenarios`), oauthd beside
node-oidc-provider.

Two oauthd servers (access log on, as deployed; one on the native engine, one on Hypercorn),
one node-oidc-provider (bench/node/, skipped with a note when node or the package is missing)
and the bare ASGI JSON endpoint on Hypercorn-trio (the reference for the token endpoint's
share), all on the server CPU; wrk on the other. Rows: client_credentials, refresh rotation,
the authorization-code + PKCE flow with a live session (flows/s), introspection of a JWT
access token, userinfo, the JWKS and the OpenID configuration. Rows are measured round-robin
(loadgen.measure), so each oauthd row is paired with node's in the same round. Then each
native oauthd and node row runs once more at a fixed rate, half of its measured peak, for
its p99 (latency at a load a server is deployed for, not under saturation).
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from loadgen import (
    HttpResult,
    LoadSettings,
    Server,
    Tally,
    Target,
    free_port,
    measure,
    measure_once,
)
from providers import (
    SERVICE,
    WEB,
    Prepared,
    basic,
    node_missing,
    node_server,
    oauthd_scenario_config,
    prepare_node,
    prepare_oauthd,
    secrets_env,
)
from table import Row, at_least, fmt_int, fmt_us, http_row

__all__ = ["scenario_rows"]

HERE = Path(__file__).resolve().parent
LUA = HERE / "lua"
REFERENCE = "reference: bare ASGI JSON on Hypercorn-trio `/`"
NODE_SHARE = 1.0  # oauthd req/s (flows/s) over node-oidc-provider's, per core
DOCUMENT_SHARE = 1.5  # the same for the prepared documents (JWKS, discovery): issue 17
DOCUMENTS = ("jwks", "discovery")
PACED_SHARE = 0.5  # the fixed-rate runs: this share of the row's measured peak
ENGINES = {"native": "(native)", "hypercorn": "(Hypercorn)"}  # [server] engine: row label
INTROSPECTION_RPS = 2_500.0
TOKEN_SHARE = 0.50  # client_credentials req/s over the bare ASGI endpoint's
OAUTHD = str(Path(sys.executable).parent / "oauthd")

Args = Callable[[], list[str]]  # wrk script arguments, made fresh for every run


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    make: Callable[[Prepared, Path, LoadSettings], tuple[str, Path, Args]]  # path, script, args
    per_count: bool = False


def static(method: str, auth: str = "", body: str = "") -> Args:
    return lambda: [method, auth, body]


def client_credentials(p: Prepared, _tmp: Path, _load: LoadSettings) -> tuple[str, Path, Args]:
    return p.token_path, LUA / "static.lua", static("POST", basic(SERVICE), p.cc_body)


def refresh(p: Prepared, tmp: Path, load: LoadSettings) -> tuple[str, Path, Args]:
    return p.token_path, LUA / "refresh.lua", p.refresh_pool(tmp, load.connections)


def code_flow(p: Prepared, _tmp: Path, _load: LoadSettings) -> tuple[str, Path, Args]:
    args = [p.authorize_path, p.cookie, p.token_path, basic(WEB), p.redeem_tail]
    return "/", LUA / "flow.lua", lambda: args


def introspection(p: Prepared, _tmp: Path, _load: LoadSettings) -> tuple[str, Path, Args]:
    auth = basic(p.introspector)
    return p.introspect_path, LUA / "static.lua", static("POST", auth, p.introspect_body)


def userinfo(p: Prepared, _tmp: Path, _load: LoadSettings) -> tuple[str, Path, Args]:
    return p.userinfo_path, LUA / "static.lua", static("GET", p.userinfo_bearer)


def jwks(p: Prepared, _tmp: Path, _load: LoadSettings) -> tuple[str, Path, Args]:
    return p.jwks_path, LUA / "static.lua", static("GET")


def discovery(p: Prepared, _tmp: Path, _load: LoadSettings) -> tuple[str, Path, Args]:
    return p.discovery_path, LUA / "static.lua", static("GET")


SCENARIOS = (
    Scenario("cc", "client_credentials token (Basic auth)", client_credentials),
    Scenario("refresh", "refresh rotation", refresh),
    Scenario("flow", "auth-code + PKCE flow, live session (flows/s)", code_flow, True),
    Scenario("introspect", "introspection of {introspected} access token", introspection),
    Scenario("userinfo", "userinfo (Bearer)", userinfo),
    Scenario("jwks", "JWKS", jwks),
    Scenario("discovery", "OpenID configuration (discovery)", discovery),
)


def selected() -> tuple[Scenario, ...]:
    """The scenarios BENCH_SCENARIOS names (comma-separated keys, e.g. `cc,refresh,flow`),
    in the table's order; all of them when it is unset."""
    wanted = [k.strip() for k in os.environ.get("BENCH_SCENARIOS", "").split(",") if k.strip()]
    unknown = set(wanted) - {s.key for s in SCENARIOS}
    if unknown:
        keys = ", ".join(s.key for s in SCENARIOS)
        raise SystemExit(f"BENCH_SCENARIOS: unknown {', '.join(sorted(unknown))} (known: {keys})")
    return tuple(s for s in SCENARIOS if not wanted or s.key in wanted)


@contextmanager
def running(notes: list[str], name: str, server: Server) -> Iterator[Server]:
    with server:
        yield server
    code = server.exit_code
    notes.append(f"{name} exited {'0' if code == 0 else f'with code {code}'} on SIGTERM")


def oauthd(tmp: Path, cpu: str, engine: str = "native") -> Server:
    port = free_port()
    config = oauthd_scenario_config(tmp, port, engine)
    return Server(
        [OAUTHD, "serve", "--config", str(config)],
        f"http://127.0.0.1:{port}/healthz",
        config.with_suffix(".log"),
        cpu,
        env=secrets_env(),
    )


def targets_for(
    provider: str, server: Server, p: Prepared, tmp: Path, load: LoadSettings
) -> dict[str, Target]:
    """{scenario key: target}."""
    targets = {}
    for s in selected():
        path, script, args = s.make(p, tmp, load)
        name = f"{provider} {s.title.format(introspected=p.introspected)}"
        url = p.base_url + path
        targets[s.key] = Target(name, server, url, script, args, s.per_count)
    return targets


def paired(a: HttpResult, b: HttpResult) -> float:
    """Median over rounds of a's req/s over b's in the same round."""
    return statistics.median(x / y for x, y in zip(a.rps_rounds, b.rps_rounds, strict=True))


def judged(share: float, required: float, what: str) -> str:
    return f"{'ok' if share >= required else 'MISS'} ({share:.2f}x {what})"


def oauthd_result(
    key: str, r: HttpResult, node: HttpResult | None, reference: HttpResult
) -> tuple[str, str]:
    """(target, result) of an oauthd row; CPU/req ratios beside req/s ones (steadier when the
    machine is shared)."""
    share = DOCUMENT_SHARE if key in DOCUMENTS else NODE_SHARE
    vs_node = "no node rows" if node is None else judged(paired(r, node), share, "node")
    if node is not None:
        vs_node += f", by CPU {node.cpu_us_per_request / r.cpu_us_per_request:.2f}x"
    target = f">= {share:.1f}x node"
    if key == "cc":
        asgi = paired(r, reference)
        return (
            f"{target}, >= {TOKEN_SHARE:.0%} ASGI",
            f"{vs_node}; {'ok' if asgi >= TOKEN_SHARE else 'MISS'} ({asgi:.0%} of ASGI)",
        )
    if key == "introspect":
        verdict = at_least(r.rps, INTROSPECTION_RPS)
        return f"{target}, >= {INTROSPECTION_RPS:,.0f}/s", f"{vs_node}; {verdict}"
    return target, vs_node


def paced(
    targets: list[Target], results: dict[str, HttpResult], load: LoadSettings
) -> dict[str, HttpResult]:
    """Each target once more at PACED_SHARE of its measured peak HTTP request rate (a flow
    row counts two requests a flow), for its latency at that load."""
    out = {}
    seconds = max(1.0, load.duration_s / load.rounds)
    for t in targets:
        r = results[t.name]
        http_rps = r.rps * (r.http_requests / r.requests if r.requests else 1.0)
        rate = PACED_SHARE * http_rps
        if rate <= 0:
            continue
        tally = Tally()
        measure_once(t, seconds, load, tally, pace_ms=load.connections / rate * 1000)
        out[t.name] = tally.result()
    return out


def paced_note(r: HttpResult | None) -> str:
    if r is None:
        return ""
    rate = r.rps * (r.http_requests / r.requests if r.requests else 1.0)
    return f"p99 {fmt_us(r.p99_us)} at {fmt_int(rate)} req/s"


def scenario_rows(
    load: LoadSettings, tmp: Path, reference: Server, rows: list[Row], notes: list[str]
) -> None:
    """Start the servers, prepare tokens and sessions, measure every row round-robin, then
    the native oauthd and node rows at half their peak; rows are printed per scenario:
    oauthd on the native engine, on Hypercorn, then node-oidc-provider."""
    missing = node_missing()
    with ExitStack() as stack:
        ref = stack.enter_context(running(notes, "raw ASGI reference", reference))
        ours: dict[str, dict[str, Target]] = {}
        for engine in ENGINES:
            server = stack.enter_context(
                running(notes, f"oauthd ({engine})", oauthd(tmp, load.server_cpu, engine))
            )
            prepared = prepare_oauthd(server.ready_url.removesuffix("/healthz"))
            ours[engine] = targets_for(f"oauthd {ENGINES[engine]}", server, prepared, tmp, load)
        theirs: dict[str, Target] = {}
        if missing is None:
            node_tmp = tmp / "node"
            node_tmp.mkdir(exist_ok=True)
            node = stack.enter_context(
                running(notes, "node-oidc-provider", node_server(node_tmp, load.server_cpu))
            )
            node_url = node.ready_url.rsplit("/.well-known/", 1)[0]
            theirs = targets_for("node-oidc-provider", node, prepare_node(node_url), node_tmp, load)
        every = [t for targets in ours.values() for t in targets.values()]
        targets = [Target(REFERENCE, ref, ref.ready_url), *every, *theirs.values()]
        results = measure(targets, load)
        at_half = paced([*ours["native"].values(), *theirs.values()], results, load)
        rss = {t.name: t.server.rss_mib() for t in targets}

    def row(t: Target) -> Row:
        r = results[t.name]
        made = http_row(t.name, r, rss[t.name])
        value = ", ".join(
            v
            for v in (
                made.value,
                f"{r.http_requests / r.requests:.1f} req/flow"
                if t.per_count and r.requests
                else "",
                paced_note(at_half.get(t.name)),
            )
            if v
        )
        return replace(made, value=value)

    rows.append(row(targets[0]))
    for key in ours["native"]:
        node_r = results[theirs[key].name] if key in theirs else None
        for engine_targets in ours.values():
            t = engine_targets[key]
            target, result = oauthd_result(key, results[t.name], node_r, results[REFERENCE])
            rows.append(replace(row(t), target=target, result=result))
        if key in theirs:
            rows.append(row(theirs[key]))
    notes.append(
        "Scenario rows (BENCH_ONLY=scenarios): oauthd with the access log on (JSON lines to a "
        "file, as deployed) on its native engine and on Hypercorn ([server] engine), "
        "node-oidc-provider "
        + (f"SKIPPED: {missing}" if missing else "(bench/node/) with an in-memory store, no log")
        + f"; all on CPU {load.server_cpu}, wrk on CPU {load.client_cpu} (1 thread, "
        f"{load.connections} connections). Flow rows count flows (GET /authorize with the "
        "session cookie -> 303 with a code, then POST /token with the PKCE verifier): req/s is "
        "flows/s and CPU/req is CPU per flow; p50/p99 are per HTTP request. Errors = 4xx/5xx, "
        "socket errors, and 2xx/3xx replies a script judged wrong (a refresh without a new "
        "refresh_token, a redirect without a code). node-oidc-provider refuses to introspect "
        "JWT access tokens, so its introspection row is of an opaque token. The value column's "
        f"'p99 ... at N req/s': one more run of the row at {PACED_SHARE:.0%} of its measured "
        "peak HTTP request rate (each connection waits a random 0-2x connections/rate "
        "before each request), latency timed from each send."
    )
    other = max(r.other_cpu_share for r in results.values())
    notes.append(
        f"Scenario rows: CPU {load.server_cpu} time not spent by the measured server: at most "
        f"{other:.0%} of a row's wall time"
        + (" -- the machine was busy; compare CPU/req." if other > 0.25 else ".")
    )
