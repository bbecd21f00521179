"""The real components some tests need (Chromium, PostgreSQL, HAProxy), installed from Debian
by `.ci/run` and the README: missing one is a skip on a developer's machine and a failure in CI,
where every test must run."""

from __future__ import annotations

import os

import pytest


def missing(component: str, reason: str, *, module: bool = False) -> None:
    """`component` cannot run here: skip, or fail under CI=true, saying why."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{component} tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"{component} tests skipped: {reason}", allow_module_level=module)
