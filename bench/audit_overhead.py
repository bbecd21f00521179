"""Micro-benchmark: what the audit line costs on the hot token path.

client_credentials tokens are issued through the real runtime (ask -> ClientActor -> sign ->
INSERT -> COMMIT -> audit line) with logging set up as `oauthd serve` does it (buffered
stderr, here redirected to /dev/null), once with the `oauthd.audit` logger at info (lines
written) and once at warning (lines skipped), in alternating rounds. Prints the medians.

    .venv/bin/python bench/audit_overhead.py [tokens_per_round] [rounds]
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import trio

from oauthd.actors import RegisterClient, client_address, directory_address
from oauthd.actors.client_tokens import IssueClientToken
from oauthd.actors.enrol import enrol
from oauthd.logs import flush_logs, setup_logging
from oauthd.oauth.rfc6749_client_auth import ClientCredentials
from oauthd.oauth.rfc7591_registration import parse_metadata
from oauthd.server import Runtime, open_runtime
from oauthd.settings import LogSettings, settings_for_tests

LOGS = LogSettings(level="info", format="text")


async def main(per_round: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for_tests(issuer="http://127.0.0.1:1", data_dir=Path(tmp))
        async with trio.open_nursery() as nursery:
            runtime: Runtime = await nursery.start(partial(open_runtime, settings, janitor=False))
            meta = parse_metadata(
                {"grant_types": ["client_credentials"], "redirect_uris": []}, lambda _s: True
            )
            new = enrol(meta, int(time.time()), source="cli")
            await runtime.system.ask(directory_address("default"), RegisterClient(new.record))
            client_id = new.record.client_id
            assert new.client_secret is not None
            creds = ClientCredentials(client_id, "client_secret_basic", new.client_secret)
            message = IssueClientToken(creds, None, ())
            address = client_address("default", client_id)
            audit = logging.getLogger("oauthd.audit")
            timings: dict[str, list[float]] = {"audit on": [], "audit off": []}
            for _ in range(rounds):
                for label, level in (("audit on", logging.INFO), ("audit off", logging.WARNING)):
                    audit.setLevel(level)
                    setup_logging(LOGS)  # picks the direct writer, or none, for this level
                    start = time.perf_counter()
                    for _ in range(per_round):
                        await runtime.system.ask(address, message)
                    timings[label].append((time.perf_counter() - start) / per_round * 1e6)
                    flush_logs()
            nursery.cancel_scope.cancel()
    on, off = (statistics.median(timings[k]) for k in ("audit on", "audit off"))
    print(f"{'tokens issued per round':<26} {per_round} x {rounds} rounds", file=sys.__stdout__)
    print(f"{'audit off (us/token)':<26} {off:.1f}", file=sys.__stdout__)
    print(f"{'audit on (us/token)':<26} {on:.1f}", file=sys.__stdout__)
    print(f"{'overhead':<26} {on - off:+.1f} us ({(on - off) / off:+.1%})", file=sys.__stdout__)


if __name__ == "__main__":
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # the log lines are written and flushed, to nowhere
    setup_logging(LOGS)
    args = [int(a) for a in sys.argv[1:3]]
    trio.run(main, *(args + [2000, 7][len(args) :]))
