"""The command line as an operator or a newcomer uses it: create an organisation, deliver a message."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest

from omnistream.cli import main
from omnistream.config import Settings


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("OMNISTREAM_ENV", "test")
    return settings


def stored(database: str, query: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database)
        try:
            return await conn.fetch(query)
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_create_a_tenant_then_deliver_messages_to_it(
    environment: Settings, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create-tenant", "--name", "Cli Co", "--email", "ops@cli.test", "--slug", "cli-co"]) == 0
    printed = capsys.readouterr().out
    assert "slug cli-co" in printed
    assert re.search(r"password: \S{8,}", printed)

    sender = ["inbound", "--tenant", "cli-co", "--from", "+628111", "--name", "Dewi"]
    assert main([*sender, "--text", "hello", "--message-id", "wamid.1"]) == 0
    first = capsys.readouterr().out
    assert "(new)" in first
    assert main([*sender, "--text", "hello", "--message-id", "wamid.1"]) == 0  # a redelivery
    assert "(already delivered)" in capsys.readouterr().out
    assert main([*sender, "--text", "are you there?"]) == 0
    assert "(new)" not in capsys.readouterr().out

    [conversation] = stored(database, "SELECT message_count, status FROM conversations")
    assert (conversation["message_count"], conversation["status"]) == (2, "open")
    [contact] = stored(database, "SELECT name, phone FROM contacts")
    assert (contact["name"], contact["phone"]) == ("Dewi", "+628111")


def test_bad_command_line_input_is_refused(
    environment: Settings, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inbound", "--tenant", "no-such-org", "--from", "+628", "--text", "hi"]) == 1
    assert "no active organisation" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["inbound", "--tenant", "x", "--from", "+628", "--text", "hi", "--channel", "fax"])
    assert main(["inbound", "--tenant", "x", "--from", "+628", "--text", "  "]) == 2
    assert "--text must say something" in capsys.readouterr().out
    assert main(["create-tenant", "--name", "Cli Co", "--email", "ops@cli.test", "--slug", "cli-co"]) == 0
    capsys.readouterr()
    assert main(["inbound", "--tenant", "cli-co", "--from", "", "--text", "hi"]) == 2
    assert "not delivered:" in capsys.readouterr().out
    assert main(["create-tenant", "--name", "Bad", "--email", "not-an-email"]) == 2
    assert "invalid input" in capsys.readouterr().out
    # Only the organisation made above: the refused one stored nothing, nor did the blank sender.
    assert stored(database, "SELECT slug FROM tenants")[0]["slug"] == "cli-co"
    assert stored(database, "SELECT count(*) AS n FROM tenants")[0]["n"] == 1
    assert stored(database, "SELECT count(*) AS n FROM messages")[0]["n"] == 0
