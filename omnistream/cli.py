"""`omnistream dev | serve | worker | migrate | create-tenant | inbound`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, get_args
from uuid import uuid4

from omnistream.config import Settings, SettingsError, load_settings
from omnistream.contacts.schemas import Channel
from omnistream.db import APP_ROLE, ensure_app_login, ensure_database, migrate, with_database

DATABASE_NAME = "omnistream"
T = TypeVar("T")


def _say(message: str) -> None:
    print(f"omnistream: {message}", flush=True)


def embedded_settings(settings: Settings) -> tuple[Settings, object]:
    """Start (or reuse) the embedded servers, migrate, and return settings pointing at them."""
    warnings.filterwarnings("ignore", module="platformdirs")
    from omnistream.embedded import EmbeddedServers

    servers = EmbeddedServers(settings.data_dir)
    need_pg = not settings.database_url
    urls = servers.start(with_postgres=need_pg, with_redis=not settings.redis_url)
    database_url, migrations_url = settings.database_url, settings.migrations_database_url
    if need_pg:
        admin_server_url = urls.database_url
        migrations_url = with_database(admin_server_url, DATABASE_NAME)
        asyncio.run(ensure_database(admin_server_url, DATABASE_NAME))
        asyncio.run(migrate(migrations_url))
        app_password = str(servers.state.get_or_make("app_password", lambda: secrets.token_urlsafe(24)))
        asyncio.run(ensure_app_login(admin_server_url, app_password))
        database_url = with_database(admin_server_url, DATABASE_NAME, user=APP_ROLE, password=app_password)
    return settings.with_urls(database_url, settings.redis_url or urls.redis_url, migrations_url), servers


def _environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "MIGRATIONS_DATABASE_URL": settings.migrations_database_url,
            "REDIS_URL": settings.redis_url,
            "OMNISTREAM_ENV": settings.env,
        }
    )
    return env


def _die_with_parent() -> None:
    # Linux: children get SIGTERM if the launcher dies, even by SIGKILL, so no orphan keeps the port.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _granian_command(settings: Settings, workers: int, reload: bool = False) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "omnistream.app:app",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--no-ws",
        "--log-level",
        "warning",
    ]
    if reload:
        command.append("--reload")
    return command


def _supervise(commands: dict[str, list[str]], env: dict[str, str], on_started: Callable[[], None]) -> int:
    """Run the processes, restart one that dies, stop them all on Ctrl-C or SIGTERM."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    start = {
        name: (lambda c=command: subprocess.Popen(c, env=env, preexec_fn=_die_with_parent))
        for name, command in commands.items()
    }
    processes = {name: launch() for name, launch in start.items()}
    on_started()
    restarts: dict[str, list[float]] = {name: [] for name in commands}
    while not stopping:
        time.sleep(0.2)
        for name, process in list(processes.items()):
            if stopping or process.poll() is None:
                continue
            recent = [t for t in restarts[name] if t > time.monotonic() - 60]
            if len(recent) >= 5:
                _say(f"{name} keeps exiting (code {process.returncode}); stopping")
                stopping = True
                break
            _say(f"{name} exited with code {process.returncode}; restarting it")
            restarts[name] = [*recent, time.monotonic()]
            processes[name] = start[name]()
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        if process.poll() is None:
            process.kill()
    return 0


def _hold_data_dir(data_dir: str) -> object | None:
    """An exclusive lock on the data folder for the life of `dev`, or None if another has it."""
    import fcntl

    os.makedirs(data_dir, exist_ok=True)
    handle = open(os.path.join(data_dir, "dev.lock"), "a+")  # noqa: SIM115 - held until exit
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _wait_until_serving(host: str, port: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.1)
    return False


def cmd_dev(args: argparse.Namespace) -> int:
    settings = load_settings()
    servers = None
    lock = _hold_data_dir(settings.data_dir) if settings.embedded else True
    if lock is None:
        _say(
            f"another `omnistream dev` is using {os.path.abspath(settings.data_dir)}; stop it first, "
            "or give this one its own folder with OMNISTREAM_DATA_DIR"
        )
        return 1
    if settings.embedded:
        _say(f"starting embedded PostgreSQL and Redis in {os.path.abspath(settings.data_dir)} ...")
        settings, servers = embedded_settings(settings)
    else:
        asyncio.run(migrate(settings.migrations_database_url or settings.database_url))
    port = args.port or settings.port
    if not _port_free(settings.host, port):
        if args.port or "OMNISTREAM_PORT" in os.environ:
            _say(f"port {port} is in use; choose another with --port or OMNISTREAM_PORT")
            return 1
        port = _free_port(settings.host)
        _say(f"port {settings.port} is in use, so using {port}")
    settings = load_settings_with(settings, port=port)
    base = f"http://{settings.host}:{port}"

    def announce() -> None:
        # Said once the API answers, so that whoever reads it can use it straight away.
        if _wait_until_serving(settings.host, port):
            _say(f"API on {base}/api  ·  docs at {base}/schema  ·  health at {base}/api/health")
            _say("press Ctrl-C to stop (data is kept for the next start)")
        else:
            _say(f"the API did not start listening on {base}; see the messages above")

    processes = {
        "api": _granian_command(settings, workers=args.workers, reload=args.reload),
        "worker": [sys.executable, "-m", "omnistream.cli", "worker"],
    }
    environment = _environment(settings) | {"OMNISTREAM_PORT": str(port)} | _shared_metrics(settings.data_dir)
    if args.fake_meta:
        fake_meta_port = _free_port(settings.host)
        processes["fake-meta"] = _fake_meta_command(settings.host, fake_meta_port)
        app_secret = settings.meta_app_secret or FAKE_META_APP_SECRET
        environment |= {
            "OMNISTREAM_GRAPH_API_URL": f"http://{settings.host}:{fake_meta_port}",
            "OMNISTREAM_META_APP_SECRET": app_secret,
            "FAKE_META_WEBHOOK_URL": f"{base}/api/webhooks/meta",
            "FAKE_META_APP_SECRET": app_secret,
        }
        announced = announce

        def announce() -> None:
            announced()
            _say(
                f"Graph API stand-in on http://{settings.host}:{fake_meta_port} (sends go there; its status "
                f"webhooks come back signed with {app_secret!r}); a customer writes with "
                f"POST http://{settings.host}:{fake_meta_port}/_stand-in/customer-message"
            )

    try:
        return _supervise(processes, environment, on_started=announce)
    finally:
        if servers is not None:
            _say("stopping embedded servers ...")
            servers.stop()  # type: ignore[attr-defined]  # dev holds the folder's lock: they are its own
            _say("stopped; data kept in " + os.path.abspath(settings.data_dir))


FAKE_META_APP_SECRET = "fake-meta-app-secret"  # the stand-in signs with it; for local work only


def _fake_meta_command(host: str, port: int) -> list[str]:
    """The Graph API stand-in (omnistream.fake_meta), for trying channels without a Meta account."""
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", "omnistream.fake_meta.app:app",
        "--host", host, "--port", str(port), "--workers", "1", "--no-ws", "--log-level", "warning",
    ]  # fmt: skip


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _shared_metrics(data_dir: str) -> dict[str, str]:
    """One folder where the API's and the worker's processes keep their Prometheus counters, so that
    /metrics shows the worker's too (prometheus_client's multiprocess mode); emptied at each start,
    as the counters of processes that have ended would otherwise be counted again."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        return {}
    folder = os.path.join(os.path.abspath(data_dir), "metrics")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    return {"PROMETHEUS_MULTIPROC_DIR": folder}


def load_settings_with(settings: Settings, **changes: object) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.embedded:
        _say("DATABASE_URL and REDIS_URL must be set for `serve`; use `omnistream dev` for local work")
        return 2
    if args.migrate:
        asyncio.run(migrate(settings.migrations_database_url or settings.database_url))
    os.execv(sys.executable, _granian_command(settings, workers=args.workers or settings.workers))
    return 0  # pragma: no cover


def cmd_worker(args: argparse.Namespace) -> int:
    from arq.worker import run_worker

    from workers.settings import WorkerSettings, worker_overrides

    settings = load_settings()
    if settings.embedded:
        _say("DATABASE_URL and REDIS_URL must be set for `worker`")
        return 2
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    run_worker(WorkerSettings, **worker_overrides(settings))  # type: ignore[arg-type]
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.embedded:
        settings, servers = embedded_settings(settings)
        servers.stop_started_here()  # type: ignore[attr-defined]
        _say("embedded database is migrated")
        return 0
    applied = asyncio.run(migrate(settings.migrations_database_url or settings.database_url))
    _say(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _run_with_database(work: Callable[[Settings, Any], Awaitable[T]]) -> T:
    """Run `work(settings, db)` against the configured database, or the embedded one (started for
    the occasion and stopped again if it was not running)."""
    from omnistream.db import Database

    settings = load_settings()
    servers = None
    if settings.embedded:
        settings, servers = embedded_settings(settings)

    async def run() -> T:
        db = await Database.from_settings(settings, min_size=1)
        try:
            return await work(settings, db)
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    finally:
        if servers is not None:
            servers.stop_started_here()  # type: ignore[attr-defined]


def cmd_create_tenant(args: argparse.Namespace) -> int:
    import msgspec

    from omnistream.auth import service as auth
    from omnistream.auth.schemas import RegisterRequest
    from omnistream.errors import AppError

    password = args.password or secrets.token_urlsafe(12)
    try:
        request = msgspec.convert(
            {
                "organization_name": args.name,
                "name": args.admin_name,
                "email": args.email,
                "password": password,
                "slug": args.slug,
                "timezone": args.timezone,
            },
            RegisterRequest,
        )
    except msgspec.ValidationError as exc:
        _say(f"invalid input: {exc}")
        return 2
    try:
        session = _run_with_database(
            lambda settings, db: auth.register(
                db, settings, request, ip=None, user_agent="omnistream-cli", request_id=str(uuid4())
            )
        )
    except AppError as exc:
        _say(f"could not create the tenant: {exc.detail}")
        return 1
    tenant = session.agent.tenant
    print(f"tenant:   {tenant.name} (slug {tenant.slug}, id {tenant.id})")
    print(f"admin:    {args.email}")
    print(f"password: {password}")
    return 0


def cmd_inbound(args: argparse.Namespace) -> int:
    """A customer's message, through the same ingestion service the channel webhooks use: for
    trying conversations locally before a channel is connected."""
    from omnistream.messages.schemas import InboundMessage
    from omnistream.messages.service import ingest_inbound
    from omnistream.tenants.service import id_by_slug

    if not args.text.strip():
        _say("--text must say something: a customer's text message is never blank")
        return 2

    async def deliver(settings: Settings, db: Any) -> object | None:
        async with db.anonymous() as conn:
            tenant_id = await id_by_slug(conn, args.tenant)
        if tenant_id is None:
            return None
        inbound = InboundMessage(
            tenant_id=tenant_id,
            channel=args.channel,
            external_id=args.sender,
            provider_message_id=args.message_id or f"cli.{uuid4().hex}",
            text=args.text,
            contact_name=args.name,
            # A WhatsApp sender is a phone number, an email sender an address: as the channels fill them in.
            contact_phone=args.sender if args.channel == "whatsapp" else None,
            contact_email=args.sender if args.channel == "email" else None,
            source="cli",
        )
        return await ingest_inbound(db, inbound)

    try:
        result = _run_with_database(deliver)
    except ValueError as refused:  # ingestion's refusal of what no channel would deliver (a blank sender)
        _say(f"not delivered: {refused}")
        return 2
    if result is None:
        _say(f"no active organisation has the slug {args.tenant!r}")
        return 1
    print(f"conversation: {result.conversation_id}" + (" (new)" if result.conversation_created else ""))
    print(f"message:      {result.message_id}" + (" (already delivered)" if result.duplicate else ""))
    return 0


def cmd_new_key(args: argparse.Namespace) -> int:
    from omnistream.security.secrets import new_key

    print(new_key())
    return 0


def cmd_rotate_secrets(args: argparse.Namespace) -> int:
    from omnistream.integrations import service as integrations

    count = _run_with_database(integrations.reseal_secrets)
    _say(f"{count} stored secret(s) sealed again with the first key of OMNISTREAM_ENCRYPTION_KEYS")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="omnistream", description="OmniStream CRM backend")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="API + worker + embedded PostgreSQL and Redis, for local work")
    dev.add_argument("--port", type=int, default=None)
    dev.add_argument("--workers", type=int, default=1)
    dev.add_argument("--reload", action="store_true", help="restart the API when code changes")
    dev.add_argument(
        "--fake-meta",
        action="store_true",
        help="also run a stand-in for Meta's Graph API, and send through it: channels without a Meta account",
    )
    dev.set_defaults(run=cmd_dev)

    serve = commands.add_parser("serve", help="the API on granian (production)")
    serve.add_argument("--workers", type=int, default=None, help="granian worker processes")
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.set_defaults(run=cmd_serve)

    commands.add_parser("worker", help="an arq worker").set_defaults(run=cmd_worker)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=cmd_migrate)
    commands.add_parser(
        "new-key", help="print a new key for OMNISTREAM_ENCRYPTION_KEYS (secrets at rest)"
    ).set_defaults(run=cmd_new_key)
    commands.add_parser(
        "rotate-secrets", help="seal every stored secret again with the first key of OMNISTREAM_ENCRYPTION_KEYS"
    ).set_defaults(run=cmd_rotate_secrets)

    tenant = commands.add_parser("create-tenant", help="create an organisation and print its admin's login")
    tenant.add_argument("--name", required=True, help="organisation name")
    tenant.add_argument("--email", required=True, help="the admin's email")
    tenant.add_argument("--admin-name", default="Admin")
    tenant.add_argument("--password", default=None, help="default: a generated one, printed")
    tenant.add_argument("--slug", default=None)
    tenant.add_argument("--timezone", default="UTC")
    tenant.set_defaults(run=cmd_create_tenant)

    inbound = commands.add_parser(
        "inbound", help="deliver a customer's message through the ingestion service (for trying things locally)"
    )
    inbound.add_argument("--tenant", required=True, help="the organisation's slug")
    inbound.add_argument("--from", dest="sender", required=True, help="the sender's id on the channel, e.g. +628123")
    inbound.add_argument("--text", required=True)
    inbound.add_argument("--channel", default="whatsapp", choices=get_args(Channel))
    inbound.add_argument("--name", default=None, help="the contact's name, when first seen")
    inbound.add_argument(
        "--message-id", default=None, help="the provider's message id (the same id twice: one message)"
    )
    inbound.set_defaults(run=cmd_inbound)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except SettingsError as exc:
        _say(f"configuration error: {exc}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
