"""Settings from the environment, and what production refuses to start with."""

from __future__ import annotations

import pytest

from omnistream.config import DEFAULT_JWT_SECRET, SettingsError, load_settings

SECRET = "k" * 32
PRODUCTION = {
    "OMNISTREAM_ENV": "production",
    "OMNISTREAM_JWT_SECRET": SECRET,
    "OMNISTREAM_COOKIE_SECURE": "true",
    "DATABASE_URL": "postgresql://omnistream_api:pw@db/omnistream",
    "REDIS_URL": "redis://cache:6379/0",
    "OMNISTREAM_ENCRYPTION_KEYS": "Y2hhbm5lbC1zZWNyZXRzLWtleS0wMDAwMDAwMDAwMDA=",
}


def test_a_complete_production_environment_is_accepted() -> None:
    settings = load_settings(environ=PRODUCTION)
    assert settings.is_production
    assert (settings.jwt_secret, settings.cookie_secure) == (SECRET, True)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"OMNISTREAM_JWT_SECRET": ""}, "OMNISTREAM_JWT_SECRET"),  # unset: the development default
        ({"OMNISTREAM_JWT_SECRET": DEFAULT_JWT_SECRET}, "OMNISTREAM_JWT_SECRET"),
        ({"OMNISTREAM_JWT_SECRET": "k" * 31}, "OMNISTREAM_JWT_SECRET"),
        ({"OMNISTREAM_COOKIE_SECURE": ""}, "OMNISTREAM_COOKIE_SECURE"),
        ({"OMNISTREAM_COOKIE_SECURE": "false"}, "OMNISTREAM_COOKIE_SECURE"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"OMNISTREAM_ENCRYPTION_KEYS": ""}, "OMNISTREAM_ENCRYPTION_KEYS"),
        ({"OMNISTREAM_ENCRYPTION_KEYS": "not-a-fernet-key"}, "OMNISTREAM_ENCRYPTION_KEYS"),
    ],
)
def test_production_refuses_an_unsafe_setting_naming_it(change: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ=PRODUCTION | change)


@pytest.mark.parametrize("env", ["development", "test"])
def test_outside_production_the_defaults_are_allowed(env: str) -> None:
    settings = load_settings(environ={"OMNISTREAM_ENV": env})
    assert (settings.jwt_secret, settings.cookie_secure) == (DEFAULT_JWT_SECRET, False)


@pytest.mark.parametrize(
    "variable",
    [
        "OMNISTREAM_LOGIN_MAX_FAILURES_PER_IP",
        "OMNISTREAM_LOGIN_MAX_FAILURES_PER_IP_AND_EMAIL",
        "OMNISTREAM_LOGIN_SLOWDOWN_AFTER_FAILURES_PER_EMAIL",
    ],
)
def test_a_sign_in_limit_below_one_is_refused_naming_it(variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        load_settings(environ={variable: "0"})


def test_a_negative_slowdown_is_refused() -> None:
    with pytest.raises(SettingsError, match="OMNISTREAM_LOGIN_SLOWDOWN_SECONDS"):
        load_settings(environ={"OMNISTREAM_LOGIN_SLOWDOWN_SECONDS": "-1"})


def test_a_value_of_the_wrong_type_names_its_variable() -> None:
    with pytest.raises(SettingsError, match="OMNISTREAM_LOGIN_SLOWDOWN_SECONDS"):
        load_settings(environ={"OMNISTREAM_LOGIN_SLOWDOWN_SECONDS": "soon"})
