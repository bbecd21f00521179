"""The page rules that need no server: which CSP source lets a form's redirect reach a client,
and which label colour reads on a branded button."""

from __future__ import annotations

import pytest

from oauthd.settings import contrast_ratio
from oauthd.web.pages import BLACK, WHITE, form_action_source, text_on


@pytest.mark.parametrize(
    ("uri", "source"),
    [
        ("http://127.0.0.1:5555/cb", "http://127.0.0.1:5555"),
        ("http://localhost/cb?x=1", "http://localhost"),
        ("https://App.Example/cb", "https://app.example"),
        ("https://app.example:8443/a/b", "https://app.example:8443"),
        ("http://[::1]:8080/cb", "http:"),
        ("com.example.app:/oauth2redirect", "com.example.app:"),
        ("", None),
        ("http://127.0.0.1:99999/cb", None),
        ("bad scheme://x/", None),
    ],
    ids=[
        "loopback-port",
        "localhost",
        "https-lowercased",
        "https-port",
        "ipv6-loopback-scheme-only",
        "private-use-scheme",
        "device-request-no-uri",
        "impossible-port",
        "impossible-scheme",
    ],
)
def test_html_1_form_action_source_of_a_redirect_uri(uri: str, source: str | None) -> None:
    """HTML-1: form-action names the redirect's origin (CSP3 host-source), or only its scheme
    where no host-source can name it, and never anything that could break the policy."""
    assert form_action_source(uri) == source


@pytest.mark.parametrize("color", ["#2952cc", "#7b9cff", "#ffd166", "#0b6e4f", "#c00", "#777777"])
def test_button_labels_take_the_more_readable_of_black_and_white(color: str) -> None:
    """Branded buttons: the label is black or white, whichever contrasts more."""
    label = text_on(color)
    other = WHITE if label == BLACK else BLACK
    assert contrast_ratio(color, label) >= contrast_ratio(color, other)
    assert contrast_ratio(color, label) >= 4.5
