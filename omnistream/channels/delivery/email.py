"""Email over SMTP (aiosmtplib): the mailbox's own server, else the platform's, threaded under the
contact's latest email in the conversation."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage
from typing import Any

import aiosmtplib
import msgspec

from omnistream.channels import DeliveryError, OutboundMessage, SendResult
from omnistream.channels.delivery.common import invalid_content, location_of, location_text, unsupported
from omnistream.config import Settings
from omnistream.integrations.service import ProviderAccount

IMPLICIT_TLS_PORT = 465


class SmtpServer(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    username: str | None
    password: str | None
    from_address: str
    starttls: bool


def smtp_server(settings: Settings, account: ProviderAccount) -> SmtpServer:
    """The mailbox's SMTP settings: `settings.smtp` {host, port, username, password_encrypted,
    from_address, starttls} as the integrations area stores them (or the same keys flat, prefixed
    `smtp_`), else the platform's OMNISTREAM_SMTP_* server."""
    stored = account.settings.get("smtp")
    own: dict[str, Any] = (
        dict(stored)
        if isinstance(stored, dict)
        else {key[5:]: value for key, value in account.settings.items() if key.startswith("smtp_")}
    )
    for key in ("from_address", "starttls"):
        if key not in own and key in account.settings:
            own[key] = account.settings[key]
    sealed = own.get("password_encrypted")
    from_address = str(own.get("from_address") or account.external_id)
    if own.get("host"):
        return SmtpServer(
            host=str(own["host"]),
            port=int(own.get("port") or 587),
            username=own.get("username") or None,
            password=settings.secrets.open(sealed) if sealed else (own.get("password") or None),
            from_address=from_address,
            starttls=bool(own.get("starttls", True)),
        )
    if not settings.smtp_host:
        raise DeliveryError(
            "smtp_not_configured",
            f"the mailbox {account.external_id} has no SMTP server and no default server is set",
            retryable=False,
        )
    return SmtpServer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        from_address=from_address,
        starttls=settings.smtp_starttls,
    )


def body_text(message: OutboundMessage) -> str:
    kind = message.type
    if kind == "text":
        if not message.text:
            raise invalid_content(message, "text")
        return message.text
    if kind in ("image", "audio", "video", "document", "sticker"):
        media = message.content.get("media")
        if not isinstance(media, dict) or not media.get("url"):
            raise invalid_content(message, "media url")
        link = f"{media.get('filename') or 'Attachment'}: {media['url']}"
        return f"{message.text}\n\n{link}" if message.text else link
    if kind == "location":
        return location_text(location_of(message))
    raise unsupported(message)


def compose(message: OutboundMessage, account: ProviderAccount, server: SmtpServer) -> EmailMessage:
    """The email, its Message-ID made here (it is the provider id replies name in In-Reply-To)."""
    answering = message.answering or {}
    mail = EmailMessage()
    mail["From"] = email.utils.formataddr((account.display_name, server.from_address))
    mail["To"] = message.recipient
    mail["Subject"] = _subject(message, account, answering)
    mail["Date"] = email.utils.formatdate(localtime=False)
    domain = server.from_address.rpartition("@")[2] or None
    mail["Message-ID"] = email.utils.make_msgid(domain=domain)
    answered = answering.get("message_id")
    if answered:
        mail["In-Reply-To"] = answered
        earlier = [str(r) for r in answering.get("references") or [] if r]
        mail["References"] = " ".join([*earlier, answered][-20:])  # the thread's tail: headers stay short
    mail.set_content(body_text(message))
    return mail


def _subject(message: OutboundMessage, account: ProviderAccount, answering: dict[str, Any]) -> str:
    own = (
        (message.content.get("email") or {}).get("subject") if isinstance(message.content.get("email"), dict) else None
    )
    if own:
        return str(own)
    subject = str(answering.get("subject") or "").strip()
    if subject:
        return subject if subject.lower().startswith("re:") else f"Re: {subject}"
    return f"Message from {account.display_name or account.external_id}"


async def send(settings: Settings, account: ProviderAccount, message: OutboundMessage) -> SendResult:
    server = smtp_server(settings, account)
    mail = compose(message, account, server)
    implicit_tls = server.port == IMPLICIT_TLS_PORT
    try:
        await aiosmtplib.send(
            mail,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=implicit_tls,
            start_tls=server.starttls and not implicit_tls,
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as refused:
        (first, *_) = refused.recipients
        raise _refusal(first.code, first.message) from refused
    except aiosmtplib.SMTPResponseException as answer:
        raise _refusal(answer.code, answer.message) from answer
    except (aiosmtplib.SMTPException, OSError) as failure:
        # No connection, a timeout, a server that hung up: the server may be back in a moment.
        raise DeliveryError("smtp_unavailable", str(failure) or type(failure).__name__, retryable=True) from failure
    return SendResult(provider_message_id=str(mail["Message-ID"]))


def _refusal(code: int, text: str) -> DeliveryError:
    """SMTP's own answer: 4xx is "try again later", 5xx is final (no such mailbox, refused sender)."""
    return DeliveryError(f"smtp_{code}", text, retryable=400 <= code < 500)
