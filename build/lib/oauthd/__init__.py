"""oauthd: an OAuth 2.1 + OpenID Connect authorization server on trio."""

__version__ = "0.1.0"
