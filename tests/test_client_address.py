"""The client's address behind trusted proxies, and the limits that count by it: failed sign-ins
per address, per address and email, the slowdown per email, and the public rate limit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from omnistream.app import create_app
from omnistream.config import Settings, SettingsError, load_settings
from omnistream.security.proxies import client_address, parse_networks, throttle_key
from omnistream.security.rate_limits import LoginThrottle
from tests.conftest import PASSWORD, Tenant, create_agent, from_address, problem, register

PROXY = "10.0.0.7"
PROXIES = "10.0.0.0/8, 2001:db8:ffff::1"


async def sign_in(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD, forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return await http.post("/api/auth/login", json={"email": email, "password": password}, headers=headers)


@pytest.fixture
async def proxied(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """The app behind the trusted proxies PROXIES."""
    behind = msgspec.structs.replace(settings, trusted_proxies=PROXIES)
    async with AsyncTestClient(app=create_app(behind)) as test_client:
        yield test_client


# ------------------------------------------------------------------ which address is the client's

TRUSTED = parse_networks(PROXIES)


@pytest.mark.parametrize(
    ("peer_host", "forwarded", "expected"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("198.51.100.9", ["203.0.113.1"], "198.51.100.9"),
        ("198.51.100.9", ["10.0.0.1, 10.0.0.2"], "198.51.100.9"),
        # A trusted proxy: the right-most hop that is not a trusted proxy.
        (PROXY, ["203.0.113.1"], "203.0.113.1"),
        (PROXY, ["1.1.1.1, 203.0.113.1"], "203.0.113.1"),  # the left hop was written by the client
        (PROXY, ["1.1.1.1", "203.0.113.1, 10.0.0.3"], "203.0.113.1"),  # several headers, a chain of proxies
        (PROXY, ["10.0.0.1, 10.0.0.2"], "10.0.0.1"),  # all trusted: the left-most
        (PROXY, [], PROXY),  # no header: the proxy itself (a health check)
        (PROXY, ["garbage, 203.0.113.1"], "203.0.113.1"),
        (PROXY, ["203.0.113.1, garbage"], PROXY),  # nothing past a hop that is not an address
        (PROXY, ["203.0.113.1:4711"], "203.0.113.1"),
        (PROXY, ["[2001:db8::5]:443"], "2001:db8::5"),
        (PROXY, ["::ffff:203.0.113.1"], "203.0.113.1"),
        ("2001:db8:ffff::1", ["2001:db8::5"], "2001:db8::5"),
        ("::ffff:10.0.0.7", ["203.0.113.1"], "203.0.113.1"),
        ("testclient", ["203.0.113.1"], "testclient"),  # a peer that is not an address is not trusted
    ],
)
def test_the_client_is_the_right_most_untrusted_address(peer_host: str, forwarded: list[str], expected: str) -> None:
    assert client_address(peer_host, forwarded, TRUSTED) == expected


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert client_address(PROXY, ["203.0.113.1"], ()) == PROXY


def test_ipv6_clients_are_counted_by_their_64() -> None:
    assert throttle_key("2001:db8:0:0:1::1") == throttle_key("2001:db8::ffff") == "2001:db8::/64"
    assert throttle_key("2001:db8:0:1::1") != throttle_key("2001:db8::1")
    assert throttle_key("203.0.113.1") == "203.0.113.1"
    assert throttle_key("203.0.113.1") != throttle_key("203.0.113.2")
    assert throttle_key(None) == throttle_key("testclient") == "unknown"


@pytest.mark.parametrize("value", ["10.0.0.0/33", "proxy.internal", "10.0.0.1/8/8", "::g"])
def test_a_bad_trusted_proxy_setting_is_refused_naming_it(value: str) -> None:
    with pytest.raises(SettingsError, match="OMNISTREAM_TRUSTED_PROXIES"):
        load_settings(environ={"OMNISTREAM_TRUSTED_PROXIES": value})


def test_trusted_proxies_are_read_from_the_environment() -> None:
    settings = load_settings(environ={"OMNISTREAM_TRUSTED_PROXIES": "10.0.0.0/8 192.0.2.1,2001:db8::/32"})
    assert [str(n) for n in settings.trusted_proxy_networks] == ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]


async def recorded_sign_in_addresses(client: AsyncTestClient | httpx.AsyncClient, tenant: Tenant) -> list[str]:
    response = await client.get("/api/activity-logs", params={"action": "auth.login"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [entry["ip"] for entry in response.json()["activity_logs"]]


async def test_a_spoofed_header_from_an_untrusted_peer_is_ignored(client: AsyncTestClient, tenant: Tenant) -> None:
    async with from_address(client, "198.51.100.9") as http:
        assert (await sign_in(http, tenant.admin_email, forwarded_for="203.0.113.1")).status_code == 200
    assert await recorded_sign_in_addresses(client, tenant) == ["198.51.100.9"]


async def test_behind_a_trusted_proxy_the_forwarded_client_is_recorded(proxied: AsyncTestClient) -> None:
    tenant = await register(proxied)
    async with from_address(proxied, PROXY) as http:
        assert (await sign_in(http, tenant.admin_email, forwarded_for="1.1.1.1, 203.0.113.1")).status_code == 200
    async with from_address(proxied, "198.51.100.9") as http:  # not a proxy of ours
        assert (await sign_in(http, tenant.admin_email, forwarded_for="203.0.113.2")).status_code == 200
    assert await recorded_sign_in_addresses(proxied, tenant) == ["198.51.100.9", "203.0.113.1"]


# ------------------------------------------------------------------ failed sign-ins


async def test_failures_from_one_address_lock_out_that_address_only(client: AsyncTestClient, tenant: Tenant) -> None:
    async with from_address(client, "198.51.100.1") as attacker, from_address(client, "198.51.100.2") as owner:
        for n in range(20):  # the settings' default, each for a different email
            problem(await sign_in(attacker, f"guess-{n}-{uuid4().hex[:6]}@example.com", "wrong password!"), 401)
        refused = await sign_in(attacker, tenant.admin_email)
        problem(refused, 429)
        assert int(refused.headers["retry-after"]) > 0
        assert (await sign_in(owner, tenant.admin_email)).status_code == 200


async def test_spoofed_forwarded_addresses_do_not_escape_the_per_address_limit(
    proxied: AsyncTestClient,
) -> None:
    tenant = await register(proxied)
    async with from_address(proxied, "198.51.100.1") as attacker:  # not a trusted proxy
        for n in range(20):
            response = await sign_in(attacker, f"g{n}@example.com", "wrong password!", forwarded_for=f"203.0.113.{n}")
            problem(response, 401)
        problem(await sign_in(attacker, tenant.admin_email, forwarded_for="203.0.113.200"), 429)


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(proxied: AsyncTestClient) -> None:
    tenant = await register(proxied)
    async with from_address(proxied, PROXY) as http:
        for _ in range(5):
            problem(await sign_in(http, tenant.admin_email, "wrong password!", forwarded_for="203.0.113.1"), 401)
        problem(await sign_in(http, tenant.admin_email, forwarded_for="203.0.113.1"), 429)
        # Another client through the same proxy, and the proxy's own address, are not affected.
        assert (await sign_in(http, tenant.admin_email, forwarded_for="203.0.113.2")).status_code == 200
        assert (await sign_in(http, tenant.admin_email)).status_code == 200


async def test_failures_for_an_email_lock_out_that_address_for_that_email_only(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    colleague = await create_agent(client, tenant)
    async with from_address(client, "198.51.100.1") as attacker, from_address(client, "198.51.100.2") as owner:
        for _ in range(5):
            problem(await sign_in(attacker, tenant.admin_email, "wrong password!"), 401)
        # Refused even with the right password, however the email is spelt: from that address.
        problem(await sign_in(attacker, tenant.admin_email), 429)
        problem(await sign_in(attacker, tenant.admin_email.upper()), 429)
        # The owner, from their own address, is not locked out; the attacker's address may still
        # sign in to another account.
        assert (await sign_in(owner, tenant.admin_email)).status_code == 200
        assert (await sign_in(attacker, colleague["email"])).status_code == 200


async def test_a_success_forgives_that_address_its_failures_for_that_email_only(
    client: AsyncTestClient, tenant: Tenant
) -> None:
    async with from_address(client, "198.51.100.1") as http:
        for _ in range(4):
            problem(await sign_in(http, tenant.admin_email, "wrong password!"), 401)
        assert (await sign_in(http, tenant.admin_email)).status_code == 200
        for _ in range(4):
            problem(await sign_in(http, tenant.admin_email, "wrong password!"), 401)
        assert (await sign_in(http, tenant.admin_email)).status_code == 200
        # The address's failures (8 so far) are not forgiven: 12 more for other emails and it is refused.
        for n in range(12):
            problem(await sign_in(http, f"other-{n}@example.com", "wrong password!"), 401)
        problem(await sign_in(http, tenant.admin_email), 429)


async def test_ipv6_addresses_of_one_network_share_a_budget(client: AsyncTestClient, tenant: Tenant) -> None:
    for n in range(5):
        async with from_address(client, f"2001:db8::{n + 1}") as http:
            problem(await sign_in(http, tenant.admin_email, "wrong password!"), 401)
    async with from_address(client, "2001:db8::99") as same_network:
        problem(await sign_in(same_network, tenant.admin_email), 429)
    async with from_address(client, "2001:db8:0:1::1") as elsewhere:
        assert (await sign_in(elsewhere, tenant.admin_email)).status_code == 200


@pytest.fixture
async def slowed(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    tuned = msgspec.structs.replace(settings, login_slowdown_after_failures_per_email=6, login_slowdown_seconds=1.0)
    async with AsyncTestClient(app=create_app(tuned)) as test_client:
        yield test_client


async def test_guesses_from_many_addresses_slow_the_email_down_but_never_lock_out_its_owner(
    slowed: AsyncTestClient,
) -> None:
    tenant = await register(slowed)
    for n in range(12):  # two from each of six addresses: none reaches its own limit
        async with from_address(slowed, f"198.51.100.{n % 6 + 1}") as attacker:
            problem(await sign_in(attacker, tenant.admin_email, "wrong password!"), 401)
    async with from_address(slowed, "192.0.2.50") as owner:
        started = time.monotonic()
        response = await sign_in(owner, tenant.admin_email)
        assert response.status_code == 200, response.text
        assert time.monotonic() - started >= 1.0
        # A wrong guess waits as long, and is a wrong password, not a refusal.
        started = time.monotonic()
        problem(await sign_in(owner, tenant.admin_email, "wrong password!"), 401)
        assert time.monotonic() - started >= 1.0


async def test_the_slowdown_begins_at_its_mark(settings: Settings) -> None:
    throttle = LoginThrottle(
        settings.redis_url,
        f"{settings.redis_prefix}-unit",
        per_ip=100,
        per_ip_and_email=100,
        slow_after_per_email=3,
        slowdown_seconds=2.5,
        window_seconds=60,
    )
    email = f"slow-{uuid4().hex[:6]}@example.com"
    for n in range(3):
        assert await throttle.check(email, f"198.51.100.{n}") == 0.0
        await throttle.failed(email, f"198.51.100.{n}")
    assert await throttle.check(email, "192.0.2.1") == 2.5
    assert await throttle.check(f"other-{email}", "192.0.2.1") == 0.0


# ------------------------------------------------------------------ the public rate limit


async def public(http: httpx.AsyncClient | AsyncTestClient, slug: str, forwarded_for: str | None = None) -> Any:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return await http.get(f"/api/public/working-hours/{slug}", headers=headers)


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    tuned = msgspec.structs.replace(
        settings,
        public_requests_per_minute=3,
        trusted_proxies=PROXIES,
        redis_prefix=f"{settings.redis_prefix}-limited",
    )
    async with AsyncTestClient(app=create_app(tuned)) as test_client:
        yield test_client


async def test_the_public_rate_limit_counts_each_client_address(limited: AsyncTestClient, tenant: Tenant) -> None:
    async with from_address(limited, "198.51.100.1") as first, from_address(limited, "198.51.100.2") as second:
        for _ in range(3):
            assert (await public(first, tenant.slug)).status_code == 200
        problem(await public(first, tenant.slug), 429)
        assert (await public(second, tenant.slug)).status_code == 200


async def test_the_public_rate_limit_behind_a_proxy(limited: AsyncTestClient, tenant: Tenant) -> None:
    async with from_address(limited, PROXY) as proxy, from_address(limited, "198.51.100.1") as spoofer:
        for _ in range(3):
            assert (await public(proxy, tenant.slug, forwarded_for="203.0.113.1")).status_code == 200
        problem(await public(proxy, tenant.slug, forwarded_for="203.0.113.1"), 429)
        assert (await public(proxy, tenant.slug, forwarded_for="203.0.113.2")).status_code == 200
        # An untrusted peer naming a new address each time is still one address.
        for n in range(3):
            assert (await public(spoofer, tenant.slug, forwarded_for=f"192.0.2.{n}")).status_code == 200
        problem(await public(spoofer, tenant.slug, forwarded_for="192.0.2.99"), 429)
