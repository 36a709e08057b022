"""Every operation of the OpenAPI document, fuzzed by schemathesis with all of its checks, as an
organisation's admin: no 5xx, every status and content type documented, every response as its
schema says, data the schema refuses refused, data the schema allows never refused as malformed
(a rule may still refuse it: 404, 409, 422), and credentials required where the document says.

The operations come from the document itself, so a route added later is fuzzed without being
listed here. The budget per operation is small; the run is deterministic (seeded per operation).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import schemathesis
from litestar.testing import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import AcceptedNegativeData

from omnistream.app import create_app
from omnistream.config import load_settings
from omnistream.db import APP_ROLE, Database, with_database
from tests.conftest import APP_PASSWORD, PASSWORD, TEMPLATE, Servers, Tenant, ingest

EXAMPLES_PER_OPERATION = 12

CONFIG: dict[str, Any] = {
    "seed": 20261202,
    # Credentials are the API key the cases send; values made up for the security schemes would
    # ride along beside it, and a request carrying a valid key is rightly served.
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "with-security-parameters": False},
    "phases": {
        "examples": {"enabled": True},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},  # needs links between operations, which the document does not declare
    },
    "checks": {
        "enabled": True,
        # Data the schema allows may still break a rule the schema cannot state (an agent id that
        # names nobody, a range running backwards): 422 is such a refusal. Never 400.
        "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]},
        # The ids schemathesis makes up name no object here, so this check has nothing to follow.
        "use_after_free": {"enabled": False},
        "ensure_resource_availability": {"enabled": False},
    },
}


def _fresh_database(servers: Servers) -> str:
    async def create() -> str:
        name = f"fuzz_{uuid4().hex[:12]}"
        admin = await asyncpg.connect(servers.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        finally:
            await admin.close()
        return with_database(servers.admin_url, name, user=APP_ROLE, password=APP_PASSWORD)

    return asyncio.run(create())


async def _a_customer_writes(database_url: str, tenant: Tenant) -> None:
    db = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        await ingest(db, tenant, "hello, is my order on its way?")
    finally:
        await db.close()


@pytest.fixture(scope="module")
def api_schema(servers: Servers) -> Any:
    """The document as the app serves it, and an organisation whose admin's API key the cases use."""
    database_url = _fresh_database(servers)
    settings = load_settings(
        environ={},
        env="test",
        database_url=database_url,
        redis_url=servers.redis_url,
        redis_prefix=f"fuzz-{uuid4().hex[:12]}",
        jwt_secret=secrets.token_urlsafe(32),
        # Fuzzing signs up and signs in hundreds of times from one address.
        public_requests_per_minute=100_000,
        login_max_failures_per_ip=100_000,
        login_max_failures_per_email=100_000,
    )
    with TestClient(create_app(settings)) as client:
        registered = client.post(
            "/api/auth/register",
            json={"organization_name": "Fuzz Co", "name": "Ada", "email": "ada@fuzz.test", "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        session = registered.json()
        key = client.post(
            "/api/api-keys", json={"name": "fuzz"}, headers={"Authorization": f"Bearer {session['access_token']}"}
        )
        assert key.status_code == 201, key.text
    tenant = Tenant(
        id=session["agent"]["tenant"]["id"],
        slug=session["agent"]["tenant"]["slug"],
        admin_id=session["agent"]["id"],
        admin_email="ada@fuzz.test",
        token=session["access_token"],
    )
    asyncio.run(_a_customer_writes(database_url, tenant))
    # A fresh app for the fuzzer, whose lifespan schemathesis runs itself.
    loaded = schemathesis.openapi.from_asgi(
        "/schema/openapi.json", create_app(settings), config=SchemathesisConfig.from_dict(CONFIG)
    )
    # An API key, not the session: a fuzzed sign-out would end a session for every later case.
    loaded.auth_headers = {"X-API-Key": key.json()["key"]}
    return loaded


UNHYPHENATED_UUID = re.compile(r"[0-9a-fA-F]{32}")


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """The one exclusion: a UUID written without its hyphens (32 hex digits) is read as that UUID,
    where JSON Schema's `uuid` format wants the hyphens; accepting the same id spelt another way
    is no contract a client can trip over."""
    if not isinstance(failure, AcceptedNegativeData) or "'uuid' format" not in failure.message:
        return True
    sent = [*(case.query or {}).values(), *(case.path_parameters or {}).values()]
    return not any(isinstance(value, str) and UNHYPHENATED_UUID.fullmatch(value) for value in sent)


schema = schemathesis.pytest.from_fixture("api_schema")


# One test holds every operation's cases (schemathesis runs them as subtests): the suite-wide
# limit is per test, so this one gets room for all of them.
@pytest.mark.timeout(900)
@schema.parametrize()
def test_every_operation_keeps_its_contract(case: Any, api_schema: Any) -> None:
    case.call_and_validate(headers=api_schema.auth_headers)
