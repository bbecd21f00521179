"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (OIDC Discovery 1.0).

Each endpoint module contributes the members it really implements, so the documents never
advertise more than works. The documents are built once, as bytes, when the server starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "Contribution",
    "DocumentPaths",
    "build_metadata",
    "document_paths",
    "render_metadata",
]

AS_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
AUTH_METHODS_SUFFIX = "_auth_methods_supported"
JWT_AUTH_METHODS = frozenset({"private_key_jwt", "client_secret_jwt"})


@dataclass(frozen=True, slots=True)
class Contribution:
    """Members an endpoint adds; `oidc` members are OpenID Provider metadata (OIDC Discovery
    §3). Both documents carry both: RFC 8414 §2 allows further members, and clients that read
    only the RFC 8414 document (JWT libraries verifying ID tokens) need the OIDC ones too."""

    members: Mapping[str, Any] = field(default_factory=dict)
    oidc: Mapping[str, Any] = field(default_factory=dict)


def build_metadata(
    issuer: str,
    contributions: Iterable[Contribution],
    client_assertion_algorithms: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(RFC 8414 document, OpenID document) for `issuer` from the endpoints' contributions:
    the same members in both (see `Contribution`).

    RFC 8414 §2 defaults an absent `grant_types_supported` to authorization_code and implicit,
    and OIDC Discovery §3 defaults `request_uri_parameter_supported` to true, so both are
    always stated explicitly rather than left to over-claiming defaults.

    `client_assertion_algorithms` are the algorithms a client's JWT may be signed with at any
    endpoint that authenticates clients: one verifier checks them everywhere."""
    base: dict[str, Any] = {
        "issuer": issuer,  # RFC 8414 §2: identical to the configured issuer, byte for byte
        "response_types_supported": [],
        "grant_types_supported": [],
    }
    oidc: dict[str, Any] = {
        "request_uri_parameter_supported": False,
        "request_parameter_supported": False,
        "claims_parameter_supported": False,
    }
    for contribution in contributions:
        _merge(base, contribution.members)
        _merge(oidc, contribution.oidc)
    document = {**base, **oidc}
    _add_signing_algorithms(document, client_assertion_algorithms)
    return dict(sorted(document.items())), dict(sorted(document.items()))


def _merge(target: dict[str, Any], members: Mapping[str, Any]) -> None:
    for name, value in members.items():
        if isinstance(value, list) and isinstance(target.get(name), list):
            target[name] = sorted(set(target[name]) | set(value))
        elif name in target and target[name] != value:
            raise ValueError(f"two endpoints disagree on metadata member {name!r}")
        else:
            target[name] = value


def _add_signing_algorithms(document: dict[str, Any], algorithms: Sequence[str]) -> None:
    """RFC 8414 §2: `<endpoint>_auth_signing_alg_values_supported` MUST be present when
    private_key_jwt or client_secret_jwt is in `<endpoint>_auth_methods_supported`, and MUST
    NOT hold "none" (Authlib clients refuse a document that breaks this)."""
    for name, methods in list(document.items()):
        if not name.endswith(AUTH_METHODS_SUFFIX) or not JWT_AUTH_METHODS & set(methods):
            continue
        if not algorithms or "none" in algorithms:
            raise ValueError(f"{name} lists a JWT method but no signing algorithms are given")
        endpoint = name.removesuffix(AUTH_METHODS_SUFFIX)
        document[f"{endpoint}_auth_signing_alg_values_supported"] = list(algorithms)


def render_metadata(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class DocumentPaths:
    authorization_server: tuple[str, ...]
    openid: tuple[str, ...]


def document_paths(issuer: str) -> DocumentPaths:
    """Where the documents are served for this issuer.

    RFC 8414 §3.1 inserts the well-known segment before the issuer's path; OIDC Discovery §4
    appends it after. MCP clients try both forms for path issuers, so both are served."""
    path = urlsplit(issuer).path.rstrip("/")
    if not path:
        return DocumentPaths((AS_WELL_KNOWN,), (OIDC_WELL_KNOWN,))
    return DocumentPaths(
        (AS_WELL_KNOWN + path,),
        (OIDC_WELL_KNOWN + path, path + OIDC_WELL_KNOWN),
    )
