"""Request parameters as OAuth reads them (OAuth 2.1 §3.1, §3.2): a parameter sent without a
value is treated as omitted, and a defined parameter may not be repeated."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oauthd.errors import InvalidRequest

__all__ = ["Params"]


@dataclass(frozen=True, slots=True)
class Params:
    """Parameters from a query string or a form body, as (name, value) pairs."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Params:
        return cls(tuple((k, v) for k, v in pairs if v != ""))

    def get(self, name: str) -> str | None:
        """The single value of `name`, None if absent; InvalidRequest if repeated."""
        values = [v for k, v in self.pairs if k == name]
        if len(values) > 1:
            raise InvalidRequest(f"parameter {name} is repeated")
        return values[0] if values else None

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of a parameter that may repeat (RFC 8707 `resource`)."""
        return tuple(v for k, v in self.pairs if k == name)

    def repeated(self, names: Iterable[str]) -> str | None:
        """The first of `names` that is repeated, if any (one pass over the pairs)."""
        seen: set[str] = set()
        twice: set[str] = set()
        for k, _ in self.pairs:
            (twice if k in seen else seen).add(k)
        return next((name for name in names if name in twice), None) if twice else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise InvalidRequest(f"parameter {name} is required")
        return value
