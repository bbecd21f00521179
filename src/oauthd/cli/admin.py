"""`oauthd clients|users|grants`: administration beside a running server or without one, of
the file's tenant or, with `--tenant <id>`, of a tenant of the registry.

Every command opens the actor runtime on the data dir and goes through the same actors, the
same transactions and the same SQLite write locks as the server, so it is ordered with live
requests (docs/architecture.md "Beyond one process"). A user's grants live in the client shards:
`grants list|revoke --user` and `users remove` visit every client shard on disk, one at a time, like
the janitor does. Exit codes: 0 ok, 1 not found, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Sequence

import trio

from oauthd.actors import GetClient, ListClients, RegisterClient, directory_address
from oauthd.actors.client_admin import ListGrants, RemoveClient, RevokeGrants
from oauthd.actors.directory import UnindexClient
from oauthd.actors.enrol import enrol
from oauthd.actors.people import FindUser, GetUser
from oauthd.actors.people_admin import AddUser, ListUsers, RemoveUser, RevokeConsents
from oauthd.cli.command import Command, RuntimeCommand, on_runtime, tenant_option
from oauthd.errors import (
    ConfigError,
    InvalidClient,
    NotFound,
    OAuthError,
    TemporarilyUnavailable,
)
from oauthd.oauth.rfc7591_registration import parse_metadata
from oauthd.oauth.scopes import known_scopes
from oauthd.runtime import Address
from oauthd.server import Runtime
from oauthd.settings import Settings
from oauthd.storage import ClientRecord, hash_password, shard_key_for
from oauthd.storage.admin import GrantRow

__all__ = ["NOT_FOUND", "add_parsers"]

OK, NOT_FOUND = 0, 1


def add_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], config: argparse.ArgumentParser
) -> None:
    """The admin subcommands, each with `config` (`--config`) and `--tenant` as parents."""
    config = argparse.ArgumentParser(add_help=False, parents=[config, tenant_option()])
    clients = sub.add_parser("clients", help="registered clients")
    csub = clients.add_subparsers(dest="clients_command", required=True)
    ca = csub.add_parser(
        "add", parents=[config], help="register a client; prints its id (and secret) once"
    )
    ca.add_argument("--name", default="", help="client_name shown on the consent page")
    ca.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris")
    ca.add_argument(
        "--auth-method",
        default="client_secret_basic",
        choices=["none", "client_secret_basic", "client_secret_post"],
        help="token_endpoint_auth_method (none: a public client without a secret)",
    )
    ca.add_argument("--grant-type", action="append", dest="grant_types")
    ca.add_argument("--scope", default="")
    ca.add_argument("--first-party", action="store_true", help="skip the consent page")
    ca.set_defaults(run=on_tenant(add_client))
    cl = csub.add_parser("list", parents=[config], help="list registered clients")
    cl.set_defaults(run=on_tenant(list_clients))
    for name, text, command in (
        ("show", "show one client", show_client),
        ("remove", "delete a client and its grants", remove_client),
    ):
        p = csub.add_parser(name, parents=[config], help=text)
        p.add_argument("client_id")
        p.set_defaults(run=on_tenant(command))

    users = sub.add_parser("users", help="local users (email and password)")
    usub = users.add_subparsers(dest="users_command", required=True)
    ua = usub.add_parser(
        "add", parents=[config], help="add a user; the password is read from stdin or a prompt"
    )
    ua.add_argument("--email", required=True)
    ua.add_argument("--name", default="")
    ua.set_defaults(run=on_tenant(add_user))
    ul = usub.add_parser("list", parents=[config], help="list users")
    ul.set_defaults(run=on_tenant(list_users))
    ur = usub.add_parser(
        "remove", parents=[config], help="delete a user, their sessions, consents and grants"
    )
    ur.add_argument("user", help="email or user id")
    ur.set_defaults(run=on_tenant(remove_user))

    grants = sub.add_parser("grants", help="grants (token families) and consents")
    gsub = grants.add_subparsers(dest="grants_command", required=True)
    for name, text in (("list", "list live grants"), ("revoke", "revoke grants and consents")):
        p = gsub.add_parser(name, parents=[config], help=text)
        p.add_argument("--user", help="email or user id")
        p.add_argument("--client", help="client_id")
        p.set_defaults(run=on_tenant(grants_command))


def on_tenant(command: RuntimeCommand) -> Command:
    """`command` on the runtime (`on_runtime`), for the tenant of `--tenant`: not found (1)
    when the registry has no such active tenant."""

    async def checked(runtime: Runtime, args: argparse.Namespace) -> int:
        if not runtime.env.knows(args.tenant):
            return not_found(f"no tenant {args.tenant!r}")
        return await command(runtime, args)

    return on_runtime(checked)


def when(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(t))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def not_found(what: str) -> int:
    print(f"oauthd: {what}", file=sys.stderr)
    return NOT_FOUND


# --- clients ---------------------------------------------------------------------------------


async def list_clients(runtime: Runtime, args: argparse.Namespace) -> int:
    rows = await runtime.system.ask(directory_address(args.tenant), ListClients())
    print_table(("client_id", "source", "created"), [(c, s, when(t)) for c, s, t in rows])
    return OK


async def show_client(runtime: Runtime, args: argparse.Namespace) -> int:
    client = await load_client(runtime, args.tenant, args.client_id)
    if client is None:
        return not_found(f"no client {args.client_id!r}")
    print_client(client)
    return OK


async def remove_client(runtime: Runtime, args: argparse.Namespace) -> int:
    system, directory = runtime.system, directory_address(args.tenant)
    client = await load_client(runtime, args.tenant, args.client_id)
    if client is None:
        return not_found(f"no client {args.client_id!r}")
    address = Address(args.tenant, "client", shard_key_for(client.client_id))
    await system.ask(address, RemoveClient())
    await system.ask(directory, UnindexClient(client.client_id))
    await system.ask(directory, RevokeConsents(None, client.client_id))
    print(f"removed {client.client_id} (its grants are revoked; `oauthd gc` deletes its shard)")
    return OK


async def load_client(runtime: Runtime, tenant: str, client_id: str) -> ClientRecord | None:
    address = Address(tenant, "client", shard_key_for(client_id))
    try:
        client = await runtime.system.ask(address, GetClient())
    except (NotFound, InvalidClient):  # no shard (never spawns), or deleted
        return None
    return client if client.client_id == client_id else None


def print_client(c: ClientRecord) -> None:
    fields = [
        ("client_id", c.client_id),
        ("client_name", c.client_name),
        ("source", c.source),
        ("created", when(c.created_at)),
        ("auth method", c.token_endpoint_auth_method),
        ("grant types", " ".join(c.grant_types)),
        ("scope", c.scope),
        ("first party", "yes" if c.first_party else "no"),
        ("redirect uris", "\n".ljust(16).join(c.redirect_uris)),
    ]
    for name, value in fields:
        print(f"{name:<15} {value}")


async def add_client(runtime: Runtime, args: argparse.Namespace) -> int:
    settings: Settings = runtime.env.settings_of(args.tenant)
    body = {
        "client_name": args.name,
        "redirect_uris": args.redirect_uris,
        "token_endpoint_auth_method": args.auth_method,
        "grant_types": args.grant_types or ["authorization_code", "refresh_token"],
        "scope": args.scope,
    }
    try:
        scopes = known_scopes(settings)
        meta = parse_metadata(body, lambda scope: all(s in scopes for s in scope))
    except OAuthError as exc:
        raise ConfigError("command line", "clients add", exc.description) from None
    new = enrol(meta, int(time.time()), source="cli", first_party=args.first_party)
    await runtime.system.ask(directory_address(args.tenant), RegisterClient(new.record))
    print(f"client_id:     {new.record.client_id}")
    if new.client_secret is not None:
        print(f"client_secret: {new.client_secret}   (shown once; only its hash is stored)")
    return OK


# --- users -----------------------------------------------------------------------------------


def read_password() -> str:
    """From a prompt on a terminal (asked twice), else the first line of stdin: never argv,
    which other users of the machine can read in the process list."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("command line", "users add", "the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def add_user(runtime: Runtime, args: argparse.Namespace) -> int:
    password = read_password()
    if len(password) < 8:
        raise ConfigError("command line", "users add", "the password needs 8 characters")
    hashed = await trio.to_thread.run_sync(hash_password, password)
    name = args.name or args.email.partition("@")[0]
    now = int(runtime.env.clock.now())
    message = AddUser(args.email, name, hashed, now)
    try:
        user = await runtime.system.ask(directory_address(args.tenant), message)
    except TemporarilyUnavailable as exc:  # the tenant's user quota
        raise ConfigError("command line", "users add", exc.detail or exc.description) from None
    if user is None:
        raise ConfigError("command line", "users add", f"{args.email} already exists")
    print(f"user_id: {user.user_id}")
    return OK


async def list_users(runtime: Runtime, args: argparse.Namespace) -> int:
    users = await runtime.system.ask(directory_address(args.tenant), ListUsers())
    print_table(
        ("email", "name", "user_id", "identities", "created"),
        [(u.email or "-", u.name, u.user_id, u.identities, when(u.created_at)) for u in users],
    )
    return OK


async def remove_user(runtime: Runtime, args: argparse.Namespace) -> int:
    message = RemoveUser(args.user)
    removed = await runtime.system.ask(directory_address(args.tenant), message)
    if removed is None:
        return not_found(f"no user {args.user!r}")
    ended = await each_shard(runtime, args.tenant, RevokeGrants(removed.user_id))
    print(f"removed {removed.email or removed.user_id}; {len(ended)} grants revoked")
    return OK


# --- grants ----------------------------------------------------------------------------------


async def grants_command(runtime: Runtime, args: argparse.Namespace) -> int:
    if args.user is None and args.client is None:
        raise ConfigError("command line", f"grants {args.grants_command}", "--user or --client")
    system, directory = runtime.system, directory_address(args.tenant)
    user_id = None
    if args.user is not None:
        user = await system.ask(directory, FindUser(args.user))
        user = user or await system.ask(directory, GetUser(args.user))
        if user is None:
            return not_found(f"no user {args.user!r}")
        user_id = user.user_id
    if args.client is not None and await load_client(runtime, args.tenant, args.client) is None:
        return not_found(f"no client {args.client!r}")
    message = ListGrants(user_id) if args.grants_command == "list" else RevokeGrants(user_id)
    if args.client is not None:
        address = Address(args.tenant, "client", shard_key_for(args.client))
        rows = await system.ask(address, message)
        grants = [(args.client, g) for g in rows]
    else:
        grants = await each_shard(runtime, args.tenant, message)
    emails: dict[str, str] = {}
    for _client_id, g in grants:
        if g.user_id not in emails:
            found = await system.ask(directory, GetUser(g.user_id))
            emails[g.user_id] = (found.email or found.user_id) if found else g.user_id
    table = [
        (c, emails[g.user_id], g.scope or "-", g.family_id, when(g.created_at), when(g.expires_at))
        for c, g in grants
    ]
    if args.grants_command == "revoke":
        forgotten = await system.ask(directory, RevokeConsents(user_id, args.client))
        print(f"{len(grants)} grants revoked, {forgotten} consents forgotten")
    print_table(("client_id", "user", "scope", "grant", "created", "expires"), table)
    return OK


async def each_shard(
    runtime: Runtime, tenant: str, message: ListGrants | RevokeGrants
) -> list[tuple[str, GrantRow]]:
    """Ask every live client's shard in turn; (client_id, grant) for what they answer."""
    found: list[tuple[str, GrantRow]] = []
    env = runtime.env
    for shard_key in env.backend.list_clients(env.settings, tenant):
        address = Address(tenant, "client", shard_key)
        try:
            client = await runtime.system.ask(address, GetClient())
            rows = await runtime.system.ask(address, message)
        except (NotFound, InvalidClient):  # removed meanwhile, or a deleted client
            continue
        found.extend((client.client_id, g) for g in rows)
    return found
