"""`{{contact.name}}`-style variables in the texts of automation actions.

A variable is a name between double braces, spaces allowed inside: `Hi {{ contact.name }}!`.
The names are fixed (`VARIABLES`); a text naming another is refused when its rule is saved.
When the action runs, each variable becomes its value, or nothing when the value is unknown
(a contact without a name): `render("Hi {{contact.name}}!", {})` is "Hi !". Braces that do not
form a variable are left as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

VARIABLES: dict[str, str] = {
    "contact.name": "the contact's name",
    "contact.phone": "the contact's phone number",
    "contact.email": "the contact's email address",
    "conversation.id": "the conversation's id",
    "conversation.channel": "the conversation's channel",
    "conversation.status": "the conversation's status",
    "conversation.priority": "the conversation's priority",
    "agent.name": "the name of the agent assigned to the conversation",
    "message.text": "the text of the message that triggered the rule",
}

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")


def variables_in(text: str) -> list[str]:
    """The variable names a text uses, in order of first use."""
    return list(dict.fromkeys(_VARIABLE.findall(text)))


def unknown_variables(text: str) -> list[str]:
    return [name for name in variables_in(text) if name not in VARIABLES]


def render(text: str, values: Mapping[str, str | None]) -> str:
    """The text with each variable replaced by its value ("" when unknown)."""
    return _VARIABLE.sub(lambda m: values.get(m.group(1)) or "", text)
