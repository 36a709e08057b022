"""`python -m benchmarks`: every benchmark, one after another."""

from __future__ import annotations

import shutil
import subprocess
import sys

SUITES = [
    "benchmarks.rule_matching",
    "benchmarks.ingestion",
    "benchmarks.automation",
    "benchmarks.outgoing_webhooks",
    "benchmarks.http",
]

if __name__ == "__main__":
    failed = 0
    for suite in SUITES:
        if suite == "benchmarks.http" and shutil.which("wrk") is None:
            print("http: skipped, wrk is not installed (apt-get install wrk)")
            continue
        failed |= subprocess.run([sys.executable, "-m", suite], check=False).returncode
    raise SystemExit(failed)
