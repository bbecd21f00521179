"""The results table: rows of text cells, targets judged as ratios, never failing the run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields

from loadgen import HttpResult

__all__ = ["Row", "at_least", "at_most", "fmt_int", "fmt_us", "http_row", "render"]


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    rps: str = ""
    p50: str = ""
    p99: str = ""
    cpu: str = ""
    value: str = ""
    target: str = ""
    result: str = ""


HEADERS = Row("scenario", "req/s", "p50", "p99", "CPU/req", "value", "target", "result")
RIGHT = {"rps", "p50", "p99", "cpu", "value"}


def fmt_us(us: float) -> str:
    return f"{us:.1f} us" if us < 1000 else f"{us / 1000:.2f} ms"


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def http_row(
    scenario: str, r: HttpResult, rss_mib: float, target: str = "", result: str = ""
) -> Row:
    value = f"RSS {rss_mib:.0f} MB"
    if r.errors:
        value += f", {r.errors} errors"
    return Row(
        scenario,
        fmt_int(r.rps),
        fmt_us(r.p50_us),
        fmt_us(r.p99_us),
        fmt_us(r.cpu_us_per_request),
        value,
        target,
        result,
    )


def at_least(actual: float, required: float, unit: str = "") -> str:
    """'ok' or 'MISS', with actual/required (higher is better)."""
    ratio = actual / required if required else float("inf")
    return f"{'ok' if ratio >= 1 else 'MISS'} ({ratio:.2f}x{unit})"


def at_most(actual: float, limit: float, unit: str = "") -> str:
    """'ok' or 'MISS', with actual/limit (lower is better)."""
    ratio = actual / limit if limit else float("inf")
    return f"{'ok' if ratio <= 1 else 'MISS'} ({ratio:.2f}x{unit})"


def render(rows: Sequence[Row]) -> str:
    """A markdown table with aligned columns."""
    names = [f.name for f in fields(Row)]
    cells = [astuple(HEADERS), *(astuple(r) for r in rows)]
    widths = [max(len(str(line[i])) for line in cells) for i in range(len(names))]

    def line(values: tuple[str, ...]) -> str:
        padded = [
            v.rjust(w) if n in RIGHT else v.ljust(w)
            for v, w, n in zip(values, widths, names, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if n in RIGHT else "-" * (w + 2)
            for w, n in zip(widths, names, strict=True)
        )
        + "|"
    )
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])
