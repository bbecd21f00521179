"""What a registry change costs each process (issue 16): `RegistryReader.refresh` after one
change, over a registry of COUNT tenants.

    .venv/bin/python bench/registry_refresh.py [COUNT]      # default 10,000

Writes COUNT path-tenant rows into a fresh registry (as `oauthd tenants add` does, without
their key shards), reads it whole once as a starting process does, then 50 times changes one
tenant's row through another connection and times the reader's refresh (process CPU time).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from coldclients import percentile
from oauthd.actors.registry import RegistryReader
from oauthd.settings import settings_for_tests
from oauthd.storage import SQLITE
from oauthd.storage.registry import TenantRow, insert_tenant, open_registry, update_tenant

ISSUER = "https://auth.bench.example"
CHANGES = 50


def main(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="oauthd-bench-registry-") as name:
        data = Path(name)
        writer = open_registry(data)
        rows = [
            TenantRow(f"t{i:06d}", f"{ISSUER}/t/t{i:06d}", "active", "", 1, 1) for i in range(count)
        ]
        with writer.transaction():
            for row in rows:
                insert_tenant(writer, row)
        reader = RegistryReader(settings_for_tests(data_dir=data), SQLITE)
        started = time.process_time()
        reader.refresh()
        first_ms = (time.process_time() - started) * 1000
        times = []
        for i in range(CHANGES):
            with writer.transaction():
                update_tenant(writer, replace(rows[i * 97 % count], updated_at=2 + i))
            started = time.process_time()
            changed = reader.refresh()
            times.append((time.process_time() - started) * 1000)
            assert len(changed) == 1, changed
        writer.close()
        reader.close()
    print(f"{count:,} tenants: first whole read {first_ms:.1f} ms; refresh after one change")
    p50, p99 = statistics.median(times), percentile(times, 99)
    print(f"  p50 {p50:.3f} ms  p99 {p99:.3f} ms  (n={CHANGES}, CPU)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
