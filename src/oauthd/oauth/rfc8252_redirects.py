"""Redirect URIs: what may be registered (RFC 7591 §2, OAuth 2.1 §2.3, RFC 8252 §7), how a
requested URI matches a registered one (exact string, except the port of a loopback IP or
localhost redirect: RFC 8252 §7.3, OAuth 2.1 §4.1.1), and which may receive errors from
/authorize without the person having seen them (RFC 9700 §4.11.2)."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from oauthd.errors import InvalidRedirectUri

__all__ = [
    "InvalidRedirectUri",
    "check_registrable",
    "consent_target",
    "errors_redirectable",
    "is_loopback_redirect",
    "is_private_use_redirect",
    "matches_registered",
]

LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost")
_DANGEROUS_SCHEMES = ("javascript", "data", "vbscript", "file", "blob", "about")


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    return parts


def _host(parts: SplitResult) -> str:
    """The host as written in the URI, without userinfo or port; IPv6 keeps its brackets."""
    netloc = parts.netloc.rpartition("@")[2]
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1]
    return netloc.partition(":")[0]


def is_loopback_redirect(uri: str) -> bool:
    parts = _split(uri)
    return (
        parts is not None
        and parts.scheme == "http"
        and "@" not in parts.netloc
        and _host(parts) in LOOPBACK_HOSTS
    )


def is_private_use_redirect(uri: str) -> bool:
    """A native app's private-use URI scheme in reverse-domain form (RFC 8252 §7.1)."""
    parts = _split(uri)
    if parts is None:
        return False
    scheme = parts.scheme.lower()
    return "." in scheme and scheme not in _DANGEROUS_SCHEMES


def errors_redirectable(redirect_uri: str, *, self_asserted: bool) -> bool:
    """Whether an error at /authorize goes to the validated `redirect_uri` (OAuth 2.1
    §4.1.2.1: MUST) or is shown on an error page instead (RFC 9700 §4.11.2: an untrusted URI
    is not redirected to automatically; AUTHZ-17). Trusted: every URI of a client the
    operator registered, and a loopback (RFC 8252 §7.3) or private-use-scheme (§7.1) URI,
    which leads back to an app on the person's own device. An https URI that a client
    asserted itself (RFC 7591, or its metadata document) is nobody's word: a page, with or
    without a session, or an attacker's registration would be an open redirector."""
    if not self_asserted:
        return True
    return is_loopback_redirect(redirect_uri) or is_private_use_redirect(redirect_uri)


def check_registrable(uri: str) -> None:
    """Raise InvalidRedirectUri unless `uri` may be registered."""
    parts = _split(uri)
    # OAuth 2.1 §2.3: absolute, no fragment.
    if parts is None or not parts.scheme or "#" in uri:
        raise InvalidRedirectUri("redirect URIs must be absolute and have no fragment")
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in uri):
        raise InvalidRedirectUri("redirect URIs must not contain spaces or control characters")
    scheme = parts.scheme.lower()
    if scheme in _DANGEROUS_SCHEMES:
        raise InvalidRedirectUri(f"the {scheme}: scheme is not allowed")
    if scheme == "https":
        if not parts.hostname or "@" in parts.netloc:
            raise InvalidRedirectUri("https redirect URIs need a host and no userinfo")
        return
    if scheme == "http":
        # OAuth 2.1 §2.3.1 and RFC 8252 §7.3: http only for loopback.
        if not is_loopback_redirect(uri):
            raise InvalidRedirectUri("http redirect URIs are allowed only for loopback hosts")
        return
    # RFC 8252 §7.1: a private-use scheme for native apps, in reverse-domain form.
    if "." not in scheme:
        raise InvalidRedirectUri("private-use schemes must be reverse domain names (RFC 8252)")


def matches_registered(requested: str, registered: tuple[str, ...]) -> bool:
    """Exact match (RFC 3986 §6.2.1 simple comparison), or a loopback redirect that differs
    only in its port (RFC 8252 §7.3). The port is cut out of the string as written, so
    nothing that `urlsplit` forgives (a fragment, tabs and newlines it strips, leading
    spaces) can make a different string match."""
    if requested in registered:
        return True
    wanted = _without_port(requested)
    if wanted is None:
        return False
    return any(_without_port(r) == wanted for r in registered)


def _without_port(uri: str) -> str | None:
    """A loopback redirect with its port removed, or None if `uri` is not one (OAuth 2.1
    §2.3: no fragment; no space or control character)."""
    if "#" in uri or any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in uri):
        return None
    if not is_loopback_redirect(uri):
        return None
    parts = urlsplit(uri)
    authority = f"http://{parts.netloc}"
    if not uri.startswith(authority):
        return None  # e.g. "HTTP://...": not the string that was registered
    return f"http://{_host(parts)}{uri[len(authority) :]}"


def consent_target(uri: str) -> str:
    """Where a consent sends the person, for remembering consent per redirect URI (HTML-5):
    a loopback redirect without its port, since native apps listen on a new port each run."""
    return _without_port(uri) or uri
