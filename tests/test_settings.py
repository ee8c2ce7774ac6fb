"""Settings: resolved once, frozen, shared by the handler and the command line."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from posthog_logging import PosthogLogHandler
from posthog_logging.settings import Settings


def test_settings_come_from_the_environment_frozen_and_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTHOG_SERVERLESS", "1")
    handler = PosthogLogHandler(api_key="phc_secret_key", host="http://127.0.0.1:9")
    try:
        settings = handler.settings
        assert (settings.flush_at, settings.flush_interval) == (10, 2.0)
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.flush_at = 5  # type: ignore[misc]
        assert "phc_secret_key" not in repr(settings)
    finally:
        handler.close()


def test_the_command_line_spells_its_options_in_errors() -> None:
    with pytest.raises(ValueError, match="--mask: cannot import"):
        Settings.resolve(
            "phc_x", "http://127.0.0.1:9", mask="no_such_mod:f", labels={"mask": "--mask"}
        )
    with pytest.raises(ValueError, match=r"^mask: cannot import"):
        Settings.resolve("phc_x", "http://127.0.0.1:9", mask="no_such_mod:f")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"overflow": "spill"}, "overflow='spill' needs spill_dir"),
        ({"flush_at": 0}, "flush_at must be at least 1"),
        ({"shutdown_timeout": float("nan")}, "shutdown_timeout must be a positive number"),
    ],
)
def test_handler_and_settings_refuse_the_same_values(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.resolve("phc_x", "http://127.0.0.1:9", **arguments)
    with pytest.raises(ValueError, match=message):
        PosthogLogHandler(api_key="phc_x", host="http://127.0.0.1:9", **arguments)
