"""WhatsApp message templates in Meta's own component shapes (as POST /{waba_id}/message_templates
takes them), with Meta's documented limits as the schema's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from omnistream.kit.schema import NO_NUL, Input, Schema, pattern
from omnistream.messages.schemas import LANGUAGE_PATTERN, TEMPLATE_NAME_PATTERN

Category = Literal["MARKETING", "UTILITY", "AUTHENTICATION"]
Status = Literal[
    "PENDING",
    "APPROVED",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "PENDING_DELETION",
    "DELETED",
    "LIMIT_EXCEEDED",
    "ARCHIVED",
]
HeaderFormat = Literal["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"]
MEDIA_FORMATS = frozenset({"IMAGE", "VIDEO", "DOCUMENT"})

TemplateName = Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=TEMPLATE_NAME_PATTERN)]
Language = Annotated[str, msgspec.Meta(min_length=2, max_length=15, pattern=LANGUAGE_PATTERN)]
MetaId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=pattern(r"^[0-9]+$", "must be Meta's id (digits)"))
]
ButtonText = Annotated[str, msgspec.Meta(min_length=1, max_length=25, pattern=NO_NUL)]
ExampleValue = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=NO_NUL)]
HTTPS_URL = pattern(r"^https://[^\x00-\x20/?#]+[^\x00-\x20]*$", "must be an https:// URL")
HttpsUrl = Annotated[str, msgspec.Meta(max_length=2000, pattern=HTTPS_URL)]
WEB_URL = pattern(r"^https?://[^\x00-\x20/?#]+[^\x00-\x20]*$", "must be an http:// or https:// URL")


class HeaderExample(Input):
    header_text: Annotated[list[ExampleValue], msgspec.Meta(min_length=1, max_length=1)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    """TEXT headers with a variable: its sample value."""
    header_handle: (
        Annotated[
            list[Annotated[str, msgspec.Meta(min_length=1, max_length=4096, pattern=NO_NUL)]],
            msgspec.Meta(min_length=1, max_length=1),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    """IMAGE, VIDEO and DOCUMENT headers: the handle of a sample uploaded to Meta (Resumable Upload API)."""


class HeaderComponent(Input, tag_field="type", tag="HEADER"):
    format: HeaderFormat
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=NO_NUL)] | msgspec.UnsetType = msgspec.UNSET
    """TEXT headers only: at most 60 characters and one variable, {{1}}."""
    example: HeaderExample | msgspec.UnsetType = msgspec.UNSET


class BodyExample(Input):
    body_text: Annotated[
        list[Annotated[list[ExampleValue], msgspec.Meta(min_length=1, max_length=100)]],
        msgspec.Meta(min_length=1, max_length=1),
    ]
    """One list with a sample value for each variable, in order."""


class BodyComponent(Input, tag_field="type", tag="BODY"):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=NO_NUL)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    """Variables are {{1}}, {{2}}, ... numbered from 1 without gaps. AUTHENTICATION templates have no
    text of their own (Meta writes it)."""
    example: BodyExample | msgspec.UnsetType = msgspec.UNSET
    add_security_recommendation: bool | msgspec.UnsetType = msgspec.UNSET
    """AUTHENTICATION only."""


class FooterComponent(Input, tag_field="type", tag="FOOTER"):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=60, pattern=NO_NUL)] | msgspec.UnsetType = msgspec.UNSET
    code_expiration_minutes: Annotated[int, msgspec.Meta(ge=1, le=90)] | msgspec.UnsetType = msgspec.UNSET
    """AUTHENTICATION only, instead of text."""


class QuickReplyButton(Input, tag_field="type", tag="QUICK_REPLY"):
    text: ButtonText


class UrlButton(Input, tag_field="type", tag="URL"):
    text: ButtonText
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=WEB_URL)]
    """May end with one variable, {{1}}: `https://shop.example/orders/{{1}}`."""
    example: (
        Annotated[
            list[Annotated[str, msgspec.Meta(max_length=2000, pattern=WEB_URL)]],
            msgspec.Meta(min_length=1, max_length=1),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    """With a variable: the full URL with a sample value in its place."""


class PhoneNumberButton(Input, tag_field="type", tag="PHONE_NUMBER"):
    text: ButtonText
    phone_number: Annotated[
        str, msgspec.Meta(min_length=4, max_length=20, pattern=pattern(r"^\+?[0-9]{3,19}$", "must be a phone number"))
    ]


class CopyCodeButton(Input, tag_field="type", tag="COPY_CODE"):
    example: Annotated[str, msgspec.Meta(min_length=1, max_length=15, pattern=NO_NUL)]
    """A sample of the code the button copies (at most 15 characters)."""


class OtpButton(Input, tag_field="type", tag="OTP"):
    otp_type: Literal["COPY_CODE", "ONE_TAP", "ZERO_TAP"]
    text: ButtonText | msgspec.UnsetType = msgspec.UNSET
    autofill_text: ButtonText | msgspec.UnsetType = msgspec.UNSET
    package_name: Annotated[str, msgspec.Meta(max_length=224, pattern=NO_NUL)] | msgspec.UnsetType = msgspec.UNSET
    signature_hash: Annotated[str, msgspec.Meta(min_length=11, max_length=11, pattern=NO_NUL)] | msgspec.UnsetType = (
        msgspec.UNSET
    )


Button = QuickReplyButton | UrlButton | PhoneNumberButton | CopyCodeButton | OtpButton


class ButtonsComponent(Input, tag_field="type", tag="BUTTONS"):
    buttons: Annotated[list[Button], msgspec.Meta(min_length=1, max_length=10)]


Component = HeaderComponent | BodyComponent | FooterComponent | ButtonsComponent


class WaTemplateCreate(Input):
    name: TemplateName
    """Lowercase letters, digits and underscores."""
    language: Language
    category: Category
    components: Annotated[list[Component], msgspec.Meta(min_length=1, max_length=4)]
    business_account_id: MetaId | None = None
    """The WhatsApp business account (WABA); by default that of the default WhatsApp number."""


class WaTemplateSync(Input):
    business_account_id: MetaId | None = None
    """By default, the business account of the default WhatsApp number."""


class HeaderMediaUpdate(Input):
    header_media_url: HttpsUrl | None
    """The image, video or document sent as the header when a message does not name one; null clears it."""


class WaTemplate(Schema):
    id: UUID
    business_account_id: str
    provider_template_id: str | None
    name: str
    language: str
    category: Category
    status: Status
    rejected_reason: str | None
    components: list[dict[str, Any]]
    header_media_url: str | None
    quality_score: str | None
    created_at: datetime
    updated_at: datetime
    synced_at: datetime | None


class WaTemplateList(Schema):
    templates: list[WaTemplate]
    next_cursor: str | None
    total: int


class SyncResult(Schema):
    business_account_id: str
    created: int
    updated: int
    unchanged: int
    total: int
    """Templates Meta listed."""
