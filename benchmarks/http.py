"""GET /api/conversations against a bare asyncpg list, on one granian server, loaded by wrk.

    python -m benchmarks.http [--conversations 100000] [--seconds 10] [--connections 32]

The API request is the real thing: a session JWT, the tenant transaction with row-level
security, the visibility rules, a keyset cursor into a tenant of 100,000 conversations and
the (first page's) total. The bare route returns the same 20 rows straight from asyncpg. Their ratio is
the share of the ceiling the API keeps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from uuid import UUID

import asyncpg
import psutil

from benchmarks._servers import BenchServers, servers

SEED = """
WITH people AS (
  INSERT INTO contacts (tenant_id, name, phone, created_at)
  SELECT $1, 'Customer ' || n, '+62812' || lpad(n::text, 7, '0'), now() - make_interval(secs => n)
    FROM generate_series(1, $2) n
  RETURNING id, created_at
)
INSERT INTO conversations (tenant_id, contact_id, channel, status, last_activity_at, last_message_at,
                           last_message_preview, message_count, unread_count, created_at)
SELECT $1, id, 'whatsapp', (ARRAY['open', 'pending', 'resolved'])[1 + (extract(epoch FROM created_at)::bigint % 3)],
       created_at, created_at, 'hello from a customer', 3, 1, created_at
  FROM people
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(url: str, body: dict | None = None, headers: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, data=data, headers={"content-type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback only
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


class Load:
    """A wrk run: requests per second, and the CPU the server and PostgreSQL spent per request.

    On a shared machine the rate of either side swings with the neighbours; the CPU each request
    costs the server process and the database backends does not, so its ratio is the steadier
    measure of what the API costs beside the bare route."""

    def __init__(self, server: psutil.Process, postmaster: psutil.Process) -> None:
        self.server, self.postmaster = server, postmaster

    def _cpu(self) -> float:
        total = 0.0
        for process in [self.server, *self.server.children(recursive=True), *self.postmaster.children()]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def run(self, url: str, headers: dict[str, str], seconds: int, connections: int) -> tuple[float, float]:
        """Requests per second, and microseconds of server and database CPU per request."""
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        before = self._cpu()
        output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
        spent = self._cpu() - before
        if "Non-2xx" in output:
            raise RuntimeError(f"errors while loading {url}:\n{output}")
        requests = int(re.search(r"(\d+) requests in", output).group(1))
        return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), spent / requests * 1e6


async def _seed(bench: BenchServers, base: str, count: int) -> tuple[str, str, dict]:
    session = _request(
        f"{base}/api/auth/register",
        {
            "organization_name": "Benchmark Co",
            "name": "Bench Admin",
            "email": "admin@bench.test",
            "password": "benchmark password",
        },
    )
    tenant_id = session["agent"]["tenant"]["id"]
    conn = await asyncpg.connect(bench.admin_url)
    try:
        await conn.execute(SEED, UUID(tenant_id), count)
        await conn.execute("ANALYZE contacts; ANALYZE conversations")
        postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
    finally:
        await conn.close()
    return tenant_id, session["access_token"], postmaster


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    with servers("omnistream_http_bench") as bench:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = dict(os.environ) | {
            "DATABASE_URL": bench.app_url,
            "REDIS_URL": bench.redis_url,
            "BENCH_OWNER_URL": bench.admin_url,
            "OMNISTREAM_ENV": "production",
            "OMNISTREAM_JWT_SECRET": "b" * 48,
            "OMNISTREAM_COOKIE_SECURE": "true",
            "OMNISTREAM_LOG_JSON": "true",
            "OMNISTREAM_LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="omni-prom-"),
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "benchmarks.http_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--loop",
                "uvloop",
                "--no-ws",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            _wait_for(f"{base}/api/health")
            tenant_id, token, postmaster = asyncio.run(_seed(bench, base, args.conversations))
            load = Load(psutil.Process(server.pid), postmaster)
            auth = {"Authorization": f"Bearer {token}"}
            first = _request(f"{base}/api/conversations?per_page=20", headers=auth)
            assert first["total"] == args.conversations, first["total"]
            cursor = first["next_cursor"]
            at, after = cursor.split("|")
            api_url = f"{base}/api/conversations?per_page=20&cursor={urllib.parse.quote(cursor)}"
            bare_url = f"{base}/bench/bare-conversations?tenant={tenant_id}&at={urllib.parse.quote(at)}&after={after}"
            api_rows = [c["id"] for c in _request(api_url, headers=auth)["conversations"]]
            bare_rows = [c["id"] for c in _request(bare_url)["conversations"]]
            assert len(api_rows) == 20, "the API must serve a full page"
            assert api_rows == bare_rows, "both must serve the same 20 rows"
            load.run(api_url, auth, 2, args.connections)
            load.run(bare_url, {}, 2, args.connections)
            api, bare, api_cpu, bare_cpu = [], [], [], []
            for _ in range(args.rounds):
                rate, cpu = load.run(api_url, auth, args.seconds, args.connections)
                api.append(rate)
                api_cpu.append(cpu)
                rate, cpu = load.run(bare_url, {}, args.seconds, args.connections)
                bare.append(rate)
                bare_cpu.append(cpu)
        finally:
            server.terminate()
            server.wait(timeout=15)
    api_rps, bare_rps = max(api), max(bare)
    print(f"http: GET /api/conversations, 20 rows after a cursor, tenant of {args.conversations:,} conversations")
    print(f"  granian 1 worker, wrk {args.connections} connections, best of {args.rounds} x {args.seconds}s each")
    print(f"  API (JWT session, RLS, visibility, cursor):        {api_rps:8,.0f} req/s   runs {api}")
    print(f"  bare asyncpg list, same server:                   {bare_rps:8,.0f} req/s   runs {bare}")
    # Each round loads the API and then the bare route under the same conditions; on a shared
    # 2-core machine one noisy round can lift either best, so the paired ratios are shown too.
    paired = sorted(a / b for a, b in zip(api, bare, strict=True))
    print(
        f"  ratio API / bare: {api_rps / bare_rps:.0%} of the bests; per round {', '.join(f'{r:.0%}' for r in paired)}"
    )
    # CPU per request (server process and PostgreSQL backends), the least of the rounds: what a
    # request costs when nothing else intrudes. Its ratio is the share of the bare route's
    # throughput the API keeps when the machine is the limit.
    print(
        f"  CPU per request: API {min(api_cpu):,.0f} us, bare {min(bare_cpu):,.0f} us;"
        f" ratio bare / API {min(bare_cpu) / min(api_cpu):.0%}"
    )


if __name__ == "__main__":
    main()
