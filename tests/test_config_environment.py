"""Environment settings and hooks by name: arguments win, bad values fail at configuration."""

from __future__ import annotations

from typing import Any

import pytest

from posthog_logging.config import (
    PRIVACY_MODE_ENV,
    SAMPLE_RATE_ENV,
    SERVERLESS_ENV,
    flag_setting,
    hook_setting,
    sample_rate_setting,
)
from posthog_logging.values import json_safe


@pytest.mark.parametrize("variable", [PRIVACY_MODE_ENV, SERVERLESS_ENV])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        (" TRUE ", True),
        ("yes", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
        ("", False),
        ("  ", False),
        (None, False),
    ],
)
def test_flags_read_the_usual_spellings(variable: str, raw: str | None, expected: bool) -> None:
    environ = {} if raw is None else {variable: raw}
    assert flag_setting(None, "flag", variable, environ) is expected


@pytest.mark.parametrize("variable", [PRIVACY_MODE_ENV, SERVERLESS_ENV])
@pytest.mark.parametrize("argument", [True, False])
def test_an_argument_wins_over_the_variable(variable: str, argument: bool) -> None:
    for raw in ("1", "0", "nonsense"):
        assert flag_setting(argument, "flag", variable, {variable: raw}) is argument


@pytest.mark.parametrize("variable", [PRIVACY_MODE_ENV, SERVERLESS_ENV])
@pytest.mark.parametrize("raw", ["2", "maybe", "enabled", "tru"])
def test_an_unreadable_flag_is_an_error_naming_the_variable(variable: str, raw: str) -> None:
    with pytest.raises(ValueError, match=f"environment variable {variable} must be one of"):
        flag_setting(None, "flag", variable, {variable: raw})


def test_a_flag_argument_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="privacy_mode must be True or False"):
        flag_setting("yes", "privacy_mode", PRIVACY_MODE_ENV, {})


@pytest.mark.parametrize(
    ("argument", "raw", "expected"),
    [
        (None, None, None),
        (None, "", None),
        (None, "0.25", 0.25),
        (None, " 1 ", 1.0),
        (None, "1e-3", 0.001),
        (0.5, "0.25", 0.5),  # the argument wins
        (0.5, "garbage", 0.5),
        (1, None, 1.0),
    ],
)
def test_sample_rate_from_argument_else_environment(
    argument: float | None, raw: str | None, expected: float | None
) -> None:
    environ = {} if raw is None else {SAMPLE_RATE_ENV: raw}
    assert sample_rate_setting(argument, environ) == expected


@pytest.mark.parametrize("raw", ["abc", "0", "-0.5", "1.5", "nan", "inf", "30%"])
def test_an_unusable_sample_rate_variable_is_an_error_naming_it(raw: str) -> None:
    with pytest.raises(ValueError, match=f"environment variable {SAMPLE_RATE_ENV} must be"):
        sample_rate_setting(None, {SAMPLE_RATE_ENV: raw})


@pytest.mark.parametrize("argument", [0, 1.5, -1])
def test_an_unusable_sample_rate_argument_is_an_error_naming_it(argument: float) -> None:
    with pytest.raises(ValueError, match=r"sample_rate must be in \(0, 1\]"):
        sample_rate_setting(argument, {SAMPLE_RATE_ENV: "0.5"})


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SAMPLE_RATE_ENV, "0.125")
    monkeypatch.setenv(PRIVACY_MODE_ENV, "yes")
    assert sample_rate_setting(None) == 0.125
    assert flag_setting(None, "privacy_mode", PRIVACY_MODE_ENV) is True


@pytest.mark.parametrize(
    "name", ["posthog_logging.values:json_safe", "posthog_logging.values.json_safe"]
)
def test_hooks_by_dotted_name_resolve_at_configuration(name: str) -> None:
    assert hook_setting(name, "mask") is json_safe


def test_hooks_pass_through_callables_and_none() -> None:
    assert hook_setting(json_safe, "mask") is json_safe
    assert hook_setting(None, "mask") is None


@pytest.mark.parametrize(
    ("argument", "error", "message"),
    [
        ("no_such_module_xyz:fn", ValueError, "mask: cannot import 'no_such_module_xyz:fn'"),
        ("posthog_logging.values:no_such_fn", ValueError, "cannot import"),
        ("posthog_logging.redaction:CONTENT_PROPERTIES", TypeError, "mask must be callable"),
        (42, TypeError, "mask must be callable"),
    ],
)
def test_a_hook_that_is_not_a_callable_fails_at_configuration(
    argument: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        hook_setting(argument, "mask")
