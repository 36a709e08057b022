"""Real servers on loopback standing in for the outside: Meta's Graph API (our own stand-in,
`omnistream.fake_meta`, run by granian as a user would run it), an SMTP sink (aiosmtpd) and an
S3-compatible store (moto in server mode)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the stand-in exited with {process.returncode}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


class GraphStandIn:
    """The running Graph API stand-in, and what tests ask of it over its control endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def reset(self) -> None:
        self.http.post("/_stand-in/reset").raise_for_status()

    def requests(self, path_contains: str = "", method: str = "") -> list[dict[str, Any]]:
        response = self.http.get("/_stand-in/requests", params={"path_contains": path_contains, "method": method})
        response.raise_for_status()
        return list(response.json())

    def fail(
        self,
        error: str,
        path_contains: str = "",
        *,
        times: int = 1,
        method: str = "",
        retry_after: int | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        """Answer the next `times` matching requests with one of Meta's errors: rate_limit (130429),
        reengagement (131047), invalid_parameter (100), expired_token (190), server_error, unavailable."""
        body = {
            "error": error,
            "path_contains": path_contains,
            "times": times,
            "method": method,
            "retry_after": retry_after,
            "delay_seconds": delay_seconds,
        }
        self.http.post("/_stand-in/failures", json=body).raise_for_status()

    def configure(self, **config: Any) -> None:
        """webhook_url, app_secret, statuses, status_delay_seconds: status webhooks after each send."""
        self.http.post("/_stand-in/config", json=config).raise_for_status()

    def add_media(self, data: bytes, mime_type: str) -> str:
        """Bytes Meta holds for an inbound media id; returns the id."""
        response = self.http.post("/_stand-in/media", params={"mime_type": mime_type}, content=data)
        response.raise_for_status()
        return str(response.json()["id"])

    def set_templates(self, business_account_id: str, templates: list[dict[str, Any]]) -> None:
        self.http.post(f"/_stand-in/templates/{business_account_id}", json=templates).raise_for_status()


def start_graph_stand_in() -> Iterator[GraphStandIn]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "omnistream.fake_meta.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-ws",
            "--log-level",
            "warning",
        ],
    )
    try:
        wait_for_port(port, process)
        yield GraphStandIn(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


class SmtpSink:
    """An SMTP server (aiosmtpd) that keeps what it is sent, with the sign-ins it saw; it accepts
    any user and password, and refuses recipients when told to."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.host = "127.0.0.1"
        self.port = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.received: list[dict[str, Any]] = []
            self.logins: list[tuple[str, str]] = []
            self.refusals: list[tuple[int, str]] = []

    def refuse(self, code: int = 550, text: str = "5.1.1 No such user here", *, times: int = 1) -> None:
        """Answer the next `times` RCPT commands with `code text`."""
        with self.lock:
            self.refusals += [(code, text)] * times

    def messages(self) -> list[Any]:
        """What arrived, parsed: email.message.EmailMessage each, with `envelope_to`."""
        import email
        import email.policy

        with self.lock:
            received = list(self.received)
        parsed = []
        for item in received:
            message = email.message_from_bytes(item["data"], policy=email.policy.default)
            message.envelope_from, message.envelope_to = item["mail_from"], item["rcpt_tos"]  # type: ignore[attr-defined]
            parsed.append(message)
        return parsed

    # aiosmtpd's handler hooks
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        with self.lock:
            if self.refusals:
                code, text = self.refusals.pop(0)
                return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos), "data": envelope.content}
            )
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        with self.lock:
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


def start_smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink()
    controller = Controller(
        sink,
        hostname=sink.host,
        port=free_port(),
        authenticator=sink.authenticate,
        auth_require_tls=False,  # loopback, no certificate: the client signs in over plain SMTP
    )
    controller.start()
    sink.port = controller.port
    try:
        yield sink
    finally:
        controller.stop()


class S3StandIn:
    """moto's S3 in server mode on loopback, and the settings that point the service at it."""

    ACCESS_KEY_ID = "testing-access-key"
    SECRET_ACCESS_KEY = "testing-secret-key"
    REGION = "us-east-1"

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def settings(self, bucket: str) -> dict[str, str]:
        return {
            "s3_endpoint_url": self.url,
            "s3_bucket": bucket,
            "s3_region": self.REGION,
            "s3_access_key_id": self.ACCESS_KEY_ID,
            "s3_secret_access_key": self.SECRET_ACCESS_KEY,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=self.REGION,
            aws_access_key_id=self.ACCESS_KEY_ID,
            aws_secret_access_key=self.SECRET_ACCESS_KEY,
        )


def start_s3_stand_in() -> Iterator[S3StandIn]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port(port)
        yield S3StandIn(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
