"""HAProxy in front of several `oauthd serve` processes, for the multi-host tests.

Debian's `haproxy` package (installed by `.ci/run`) runs in the foreground (`-db`) from a
config written into a temporary directory: one HTTP frontend on a free port of 127.0.0.1,
balancing each request round-robin over the given backends, with an HTTP health check on
/healthz every 100 ms so a backend that dies (its port refuses) is taken out of the rotation
within a few checks; a busy one may take up to 5 s to answer its check before it counts as
down (a check waits its turn behind the requests in flight). A request HAProxy cannot
connect to a backend for is sent to another one (`option redispatch`): it never reached
oauthd, so nothing is sent twice. A request that
reached a backend that then died is answered 502 by HAProxy and not retried.

No HAProxy: the tests that need it skip with a message, except under CI=true, where they fail.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.components import missing
from tests.interop.test_cli import wait_until

INSTALL = "install it with `apt-get install haproxy` (as .ci/run does)"
CHECK_MS = 100


def binary() -> str:
    """The haproxy program; a skip (a failure under CI) when there is none."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found is None:
        missing("HAProxy", f"no haproxy found; {INSTALL}")
    assert found is not None
    return found


def config(port: int, backends: list[int]) -> str:
    servers = "".join(
        f"  server host{i} 127.0.0.1:{backend} check\n" for i, backend in enumerate(backends)
    )
    return (
        "global\n"
        "  maxconn 512\n"
        "defaults\n"
        "  mode http\n"
        "  timeout connect 1s\n"
        "  timeout client 30s\n"
        "  timeout server 30s\n"
        "  timeout check 5s\n"
        "  retries 3\n"
        "  option redispatch 1\n"
        "frontend oauthd\n"
        f"  bind 127.0.0.1:{port}\n"
        "  default_backend hosts\n"
        "backend hosts\n"
        "  balance roundrobin\n"
        "  option httpchk GET /healthz\n"
        "  http-check expect status 200\n"
        f"  default-server inter {CHECK_MS}ms fall 2 rise 1\n"
        f"{servers}"
    )


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Balancer:
    url: str
    pid: int


@contextmanager
def balancer(root: Path, port: int, backends: list[int]) -> Iterator[Balancer]:
    """HAProxy on `port` in front of `backends` until the block ends."""
    program = binary()
    root.mkdir(parents=True, exist_ok=True)
    path = root / "haproxy.cfg"
    path.write_text(config(port, backends), encoding="utf-8")
    checked = subprocess.run([program, "-c", "-f", str(path)], capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr.decode()
    log = (root / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [program, "-db", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT
    )
    try:

        def ready() -> bool:
            assert process.poll() is None, (root / "haproxy.log").read_text()
            return _accepting(port)

        wait_until(ready, 15, "HAProxy to listen")
        yield Balancer(f"http://127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
