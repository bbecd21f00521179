"""The checkout explains itself: every requirement id the repository cites resolves in
docs/requirements.md, listed once under its group, and nothing points at documents that are
not in the repository."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "docs" / "requirements.md"
THIS = Path(__file__).resolve()

# Where citations may appear; generated and cached folders inside them are skipped.
SCANNED = ("src", "tests", "bench", "examples", "config", "docs", "README.md")
TEXT_SUFFIXES = frozenset({".py", ".md", ".toml", ".html", ".css", ".txt", ".cfg", ".ini", ".sh"})
# node_modules: the bench's node-oidc-provider (`npm ci --prefix bench/node`), not ours.
SKIPPED_DIRS = frozenset({"__pycache__", "artifacts", "results", "node_modules"})

# The groups of docs/requirements.md. Only these prefixes make an id, so SHA-256, UTF-8,
# ES-256, P-256 and RFC numbers are never taken for one.
PREFIXES = (
    "AUTHZ",
    "CIMD",
    "CODE",
    "CORS",
    "DEVICE",
    "DISC",
    "ERR",
    "HTML",
    "INTRO",
    "JWKS",
    "JWTAT",
    "OIDC",
    "PKCE",
    "RATE",
    "REFRESH",
    "REG",
    "RES",
    "REVOKE",
    "TENANT",
    "TOKEN",
    "USERINFO",
)
_PREFIX = "|".join(PREFIXES)
# An id, then its abbreviated company: `REG-1/3/13`, `RATE-1..7`, `AUTHZ-9, 10, 13`. Numbers
# start at 1, so the draft versions CIMD-00 and CIMD-01 are not ids.
CITATION = re.compile(
    rf"\b({_PREFIX})-([1-9][0-9]*)"
    r"((?:(?:/|\.\.)[1-9][0-9]*|,\s?[1-9][0-9]?(?![\w/.%-]))*)"
    r"(?![\w-])"
)
STEP = re.compile(r"(/|\.\.|,\s?)([0-9]+)")
ID = re.compile(rf"({_PREFIX})-([1-9][0-9]*)")
ROW = re.compile(r"^\|\s*([^|]*?)\s*\|")
HEADING = re.compile(r"^## ([A-Z]+):")
NOT_CITED = "not yet cited"
# Documents outside the repository that nothing a user reads may point to.
OUTSIDE = re.compile(r"\bDESIGN(?:\.md\b|\s+\")|\bCONFORMANCE\b|\bshared/")

Id = tuple[str, int]


def name(ident: Id) -> str:
    return f"{ident[0]}-{ident[1]}"


def cited_ids(text: str) -> set[Id]:
    found: set[Id] = set()
    for match in CITATION.finditer(text):
        prefix, last = match.group(1), int(match.group(2))
        found.add((prefix, last))
        for separator, number in STEP.findall(match.group(3)):
            n = int(number)
            if separator == "..":
                found.update((prefix, k) for k in range(last, n + 1))
            else:
                found.add((prefix, n))
            last = n
    return found


def scanned_files() -> Iterator[Path]:
    for top in SCANNED:
        path = ROOT / top
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            parts = file.relative_to(ROOT).parts
            if any(
                p in SKIPPED_DIRS or p.startswith(".") or p.endswith(".egg-info") for p in parts
            ):
                continue
            if file.is_file() and file.suffix in TEXT_SUFFIXES and file.resolve() != THIS:
                yield file


def citations() -> dict[Id, str]:
    """Each cited id, with the first file that cites it."""
    where: dict[Id, str] = {}
    for file in scanned_files():
        if file.resolve() == REQUIREMENTS.resolve():
            continue
        for ident in cited_ids(file.read_text(encoding="utf-8", errors="replace")):
            where.setdefault(ident, str(file.relative_to(ROOT)))
    return where


def listed_rows() -> list[tuple[str, str, str]]:
    """(first cell, group heading, whole line) of every table row naming a requirement."""
    rows = []
    group = ""
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        heading = HEADING.match(line)
        if heading:
            group = heading.group(1)
        row = ROW.match(line)
        if row and row.group(1) not in ("Id", "---"):
            rows.append((row.group(1), group, line))
    return rows


def listed() -> dict[Id, str]:
    out = {}
    for cell, _group, line in listed_rows():
        match = ID.fullmatch(cell)
        if match:
            out[(match.group(1), int(match.group(2)))] = line
    return out


def test_the_citation_pattern_takes_ids_and_their_abbreviations_only() -> None:
    """SHA-256, UTF-8, ES-256, P-256, RFC numbers and draft versions are not ids."""
    assert cited_ids("SHA-256, UTF-8, ES-256 (P-256), RFC-7636, CIMD-00 §6.5, CIMD-01 §4") == set()
    assert cited_ids("REG-1/3/13 and RATE-1..3") == {
        ("REG", 1),
        ("REG", 3),
        ("REG", 13),
        ("RATE", 1),
        ("RATE", 2),
        ("RATE", 3),
    }
    assert cited_ids("(TOKEN-1..2, 16; AUTHZ-9, 10: x)") == {
        ("TOKEN", 1),
        ("TOKEN", 2),
        ("TOKEN", 16),
        ("AUTHZ", 9),
        ("AUTHZ", 10),
    }


def test_every_cited_id_is_listed() -> None:
    """A citation resolves: each id cited anywhere has its line in docs/requirements.md."""
    missing = sorted(set(citations()) - set(listed()))
    where = citations()
    assert not missing, "cited but not in docs/requirements.md, add a line for each: " + ", ".join(
        f"{name(i)} ({where[i]})" for i in missing
    )


def test_listed_ids_are_well_formed_in_their_group_and_listed_once() -> None:
    """Each row names one id of a known prefix, under its prefix's heading, once."""
    rows = listed_rows()
    assert rows, "docs/requirements.md lists no requirements"
    malformed = [cell for cell, _group, _line in rows if not ID.fullmatch(cell)]
    assert not malformed, f"not a requirement id: {malformed}"
    misplaced = [cell for cell, group, _line in rows if cell.split("-")[0] != group]
    assert not misplaced, f"listed under another prefix's heading: {misplaced}"
    twice = sorted(cell for cell, count in Counter(c for c, _g, _l in rows).items() if count > 1)
    assert not twice, f"listed more than once: {twice}"


def test_not_yet_cited_marks_are_true() -> None:
    """An id is marked *not yet cited* exactly when nothing in the repository cites it."""
    cited = set(citations())
    rows = listed()
    marked = {i for i, line in rows.items() if NOT_CITED in line.lower()}
    stale = sorted(marked & cited)
    unmarked = sorted(set(rows) - cited - marked)
    assert not stale, "cited now, drop the 'not yet cited' mark in docs/requirements.md: " + (
        ", ".join(map(name, stale))
    )
    assert not unmarked, "nothing cites these, mark them 'not yet cited': " + ", ".join(
        map(name, unmarked)
    )


def test_nothing_points_outside_the_repository() -> None:
    """The architecture and the requirements are in docs/, not in files a checkout lacks."""
    found = [
        f"{file.relative_to(ROOT)}:{n}: {line.strip()}"
        for file in scanned_files()
        for n, line in enumerate(file.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, "point these to docs/architecture.md or docs/requirements.md:\n" + "\n".join(
        found
    )
