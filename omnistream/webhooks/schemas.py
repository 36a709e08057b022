"""What the webhooks accept and answer. The Meta payload Structs document the bodies Meta sends
(the OpenAPI document shows them with examples); the endpoints read the raw bytes, which the
signature covers, and parse them leniently: fields not described here are kept, never refused."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from omnistream.kit.schema import Schema


class WebhookReceipt(Schema):
    received: int
    """Items the delivery held (messages, statuses, account updates, and what was skipped)."""
    queued: int
    """Items routed to an organisation and queued for ingestion."""
    ignored: int
    """Items skipped: for an account nobody connected, or of a kind that is not handled."""


class _Open(msgspec.Struct, kw_only=True):
    """A part of a provider's payload: fields beyond those listed are allowed and kept."""


class WhatsAppMetadata(_Open, kw_only=True):
    display_phone_number: str | None = None
    phone_number_id: str


class WhatsAppMessage(_Open, kw_only=True):
    id: str
    from_: str = msgspec.field(name="from")
    timestamp: str | None = None
    type: str
    """text, image, audio, video, document, sticker, location, contacts, interactive, button,
    reaction, order, system, unsupported, or a kind of a later API version."""
    text: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    referral: dict[str, Any] | None = None


class WhatsAppStatus(_Open, kw_only=True):
    id: str
    status: str
    """sent, delivered, read, played or failed."""
    timestamp: str
    recipient_id: str | None = None
    errors: list[dict[str, Any]] | None = None
    conversation: dict[str, Any] | None = None
    pricing: dict[str, Any] | None = None


class WhatsAppValue(_Open, kw_only=True):
    messaging_product: str | None = None
    metadata: WhatsAppMetadata | None = None
    contacts: list[dict[str, Any]] | None = None
    messages: list[WhatsAppMessage] | None = None
    statuses: list[WhatsAppStatus] | None = None


class WhatsAppChange(_Open, kw_only=True):
    field: str
    """messages; or news of the business account: message_template_status_update, phone_number_quality_update, ..."""
    value: WhatsAppValue | dict[str, Any]


class MetaEntry(_Open, kw_only=True):
    id: str
    """The business account (WhatsApp), the page (Messenger) or the Instagram account."""
    time: int | str | None = None
    changes: list[dict[str, Any]] | None = None
    messaging: list[dict[str, Any]] | None = None
    """Messenger and Instagram events: message, postback, reaction, delivery, read, referral."""
    standby: list[dict[str, Any]] | None = None


class MetaWebhook(_Open, kw_only=True):
    """A delivery of Meta's webhooks: WhatsApp Cloud API, Messenger or Instagram."""

    object: str
    """whatsapp_business_account, page or instagram."""
    entry: list[MetaEntry]


Address = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]


class EmailAttachment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    filename: Annotated[str, msgspec.Meta(max_length=255)] = ""
    content_type: Annotated[str, msgspec.Meta(max_length=255)] = "application/octet-stream"
    content: str
    """The file, base64-encoded."""


class InboundEmail(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An email received by a mailbox, as a mail provider's inbound webhook posts it. Signed with
    `X-OmniStream-Signature: sha256=<hex HMAC-SHA256 of the raw body with the mailbox's webhook secret>`."""

    from_: Address = msgspec.field(name="from")
    """The sender: `Name <address>` or a bare address."""
    to: Annotated[list[Address], msgspec.Meta(min_length=1, max_length=100)]
    cc: Annotated[list[Address], msgspec.Meta(max_length=100)] = []
    subject: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    text: str | None = None
    html: str | None = None
    message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=998)]
    in_reply_to: Annotated[str, msgspec.Meta(max_length=998)] | None = None
    references: Annotated[list[Annotated[str, msgspec.Meta(max_length=998)]], msgspec.Meta(max_length=200)] = []
    attachments: Annotated[list[EmailAttachment], msgspec.Meta(max_length=50)] = []


WHATSAPP_TEXT_EXAMPLE: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "Does it come in another color?"},
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

WHATSAPP_STATUS_EXAMPLE: dict[str, Any] = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                        "statuses": [
                            {
                                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA",
                                "status": "read",
                                "timestamp": "1750263773",
                                "recipient_id": "16505551234",
                                "pricing": {
                                    "billable": False,
                                    "pricing_model": "PMP",
                                    "category": "utility",
                                    "type": "free_customer_service",
                                },
                            }
                        ],
                    },
                    "field": "messages",
                }
            ],
        }
    ],
}

MESSENGER_TEXT_EXAMPLE: dict[str, Any] = {
    "object": "page",
    "entry": [
        {
            "id": "101011101011101",
            "time": 1750263773123,
            "messaging": [
                {
                    "sender": {"id": "6543210987654321"},
                    "recipient": {"id": "101011101011101"},
                    "timestamp": 1750263772998,
                    "message": {"mid": "m_AbCdEf0123456789", "text": "Hi, is my order on its way?"},
                }
            ],
        }
    ],
}

INSTAGRAM_TEXT_EXAMPLE: dict[str, Any] = {
    "object": "instagram",
    "entry": [
        {
            "id": "17841400000000001",
            "time": 1750263773123,
            "messaging": [
                {
                    "sender": {"id": "987654321098765"},
                    "recipient": {"id": "17841400000000001"},
                    "timestamp": 1750263772998,
                    "message": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx", "text": "Love this! Price?"},
                }
            ],
        }
    ],
}

EMAIL_EXAMPLE: dict[str, Any] = {
    "from": "Ana Lima <ana@example.org>",
    "to": ["support@shop.example"],
    "subject": "Re: Your order 1042",
    "text": "It has not arrived yet.",
    "message_id": "<CAF=abc123@mail.example.org>",
    "in_reply_to": "<omni.6f1c@shop.example>",
    "references": ["<omni.6f1c@shop.example>"],
}
