"""Email and password login at /login (docs/architecture.md "Browser side"): in dev mode for the
users in the configuration file (and, with `dev.allow_any_credentials`, anyone), and with
`password_login` for the local users added by `oauthd users add`, whose passwords are argon2
hashes. Without either, there is no form (HTML-11): production logs in at the upstream.

Wrong passwords are counted per typed email and per client IP (`limits.login_failures_*`);
past either limit the form answers a 429 page with Retry-After before checking anything, the
same for an unknown email as for a known one, so the limit reveals no account (RATE-2). A
password being checked counts as wrong until it proves right, so guesses sent together cannot
all slip in under the limit."""

from __future__ import annotations

import hmac
import secrets
from functools import partial

import trio
from quart import Response, request

from oauthd.actors import GetClient
from oauthd.actors.grants import CheckPending, PreparePending
from oauthd.actors.people import EnsureUser, FindUser
from oauthd.actors.people_admin import AddUser
from oauthd.audit import audit
from oauthd.errors import TooManyRequests
from oauthd.oauth.rfc8414_metadata import Contribution
from oauthd.runtime import reserve
from oauthd.settings import DevUser
from oauthd.storage import check_password, hash_password
from oauthd.storage.people import UserRow
from oauthd.web.asks import ask_directory, ask_pending
from oauthd.web.browser import Cookies, form_params
from oauthd.web.errors import shows_error_page
from oauthd.web.interaction import SignedIn, finish_login
from oauthd.web.pages import page
from oauthd.web.routing import RouteTable
from oauthd.web.state import AppState
from oauthd.web.throttle import limiter, request_ip

__all__ = ["register"]

PATH = "/login"
WRONG = "The email or password is incorrect."
THROTTLED = "Too many failed sign-ins. Wait a while, then try again."
MAX_EMAIL = 320  # RFC 5321 §4.5.3.1: longer is not an address
# An argon2 hash no password matches: what an unknown email is checked against.
DUMMY = hash_password(secrets.token_urlsafe(32))


def register(app: RouteTable, state: AppState) -> Contribution:
    app.add_views(partial(views, state=state))  # made with the Quart app (web/routing.py)
    return Contribution()


def views(app: RouteTable, state: AppState) -> None:
    settings = state.settings
    if not (settings.dev_mode or settings.password_login):
        return  # HTML-11: no password form unless asked for (404)
    cookies = Cookies.of(state)
    dev_users = {u.email.lower(): u for u in settings.dev.users} if settings.dev_mode else {}
    method = "dev" if settings.dev_mode else "password"  # for the audit log
    limits = state.settings.limits
    per_account = limiter(state, limits.login_failures_per_account)
    per_ip = limiter(state, limits.login_failures_per_ip)

    async def render(
        request_id: str, browser: str, error: str = "", status: int = 200, email: str = ""
    ) -> Response:
        pending = await ask_pending(state, request_id, PreparePending(request_id, browser))
        client = await ask_pending(state, request_id, GetClient())
        return page(
            "login.html",
            status,
            # A login that needs no consent ends in a 303 to the client (see web/pages.py).
            form_targets=(pending.request.redirect_uri,),
            action=state.path(PATH),
            request_id=request_id,
            csrf=pending.csrf,
            client_name=client.client_name or client.client_id,
            unverified=client.self_asserted,
            login_hint=email or pending.request.login_hint or "",  # a retry keeps the email
            error=error,
            dev_mode=settings.dev_mode,
        )

    @shows_error_page()
    async def login_form() -> Response:
        return await render(request.args.get("request", ""), cookies.require_browser())

    @shows_error_page()
    async def login_submit() -> Response:
        form = await form_params()
        request_id, browser = form.get("request") or "", cookies.require_browser()
        csrf = form.get("csrf") or ""
        req = await ask_pending(state, request_id, CheckPending(request_id, browser, csrf))
        email = (form.get("email") or "")[:MAX_EMAIL]
        account, ip = f"account:{email.strip().lower()}", request_ip(state)
        # Reserved before the password is checked, so guesses in flight together count.
        attempt = await reserve((per_account, account), (per_ip, ip))
        if isinstance(attempt, int):
            raise TooManyRequests(THROTTLED, retry_after_s=attempt)
        with attempt:
            user = await authenticate(email, form.get("password") or "")
            if user is not None:
                attempt.succeeded()
        if user is None:
            audit("login_failed", method=method, email=email)
            return await render(request_id, browser, WRONG, 401, email)
        now = int(state.clock.now())
        who = SignedIn(request_id, browser, user.user_id, method, now)
        return await finish_login(state, cookies, who, (req, csrf))

    async def authenticate(email: str, password: str) -> UserRow | None:
        """Dev users by constant-time comparison; users with a password hash by argon2 (in a
        thread); with allow_any_credentials (dev mode), an unknown email is created at its
        first login. A wrong password never opens a known account, not even one a concurrent
        first login has just created (the directory decides who creates it, in its write
        transaction); an unknown email costs the same argon2 work as a known one, so timing
        does not tell them apart."""
        configured = dev_users.get(email.lower())
        if configured is not None:
            return await login_configured(configured, password)
        if "@" not in email or not password:
            return None
        found = await ask_directory(state, FindUser(email))
        if found is None and settings.dev_mode and settings.dev.allow_any_credentials:
            hashed = await trio.to_thread.run_sync(hash_password, password)
            # AddUser decides inside the directory's write transaction: None if taken.
            now = int(state.clock.now())
            created = await ask_directory(
                state, AddUser(email, email.partition("@")[0], hashed, now)
            )
            if created is not None:
                return created
            # A concurrent first login created it: this password must match that one.
            found = await ask_directory(state, FindUser(email))
        return await check_user_password(found, password)

    async def check_user_password(found: UserRow | None, password: str) -> UserRow | None:
        stored = found.password_hash if found is not None and found.password_hash else DUMMY
        ok = await trio.to_thread.run_sync(check_password, password, stored)
        return found if ok and found is not None and found.password_hash else None

    async def login_configured(configured: DevUser, password: str) -> UserRow | None:
        if not hmac.compare_digest(configured.password.encode(), password.encode()):
            return None
        user = await ask_directory(
            state, EnsureUser(configured.email, configured.name, email_verified=True)
        )
        return user

    app.add_url_rule(state.path(PATH), "login_form", login_form, methods=["GET"])
    app.add_url_rule(state.path(PATH), "login_submit", login_submit, methods=["POST"])
