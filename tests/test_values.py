"""Spec §0 conventions and Part 3 value hygiene."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest

from posthog_logging.values import (
    format_timestamp_ms,
    is_truthy,
    js_string,
    json_safe,
    json_text,
    time_ms,
)

EPOCH_2025 = 1_735_689_600_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        (math.nan, False),
        ("", False),
        (True, True),
        ([], True),
        ({}, True),
        ("0", True),
        (-1, True),
        (object(), True),
    ],
)
def test_js_truthiness(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x", "x"),
        (True, "true"),
        (False, "false"),
        (7, "7"),
        (4.0, "4"),
        (1.5, "1.5"),
        (None, "null"),
        ([1, None, "a"], "1,,a"),
        ({"a": 1}, "[object Object]"),
        (math.inf, "Infinity"),
        (math.nan, "NaN"),
    ],
)
def test_js_string(value: Any, expected: str) -> None:
    assert js_string(value) == expected


def test_json_text_is_compact_unicode_and_js_numbers() -> None:
    when = dt.datetime(2025, 1, 1, 0, 0, 5, 250999, tzinfo=dt.timezone.utc)
    value = {"b": 1.0, "a": [math.nan, "é"], "t": when}
    assert json_text(value) == '{"b":1,"a":[null,"é"],"t":"2025-01-01T00:00:05.250Z"}'


def test_json_text_of_a_cycle_is_non_serializable() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert json_text(cyclic) == "[Non-serializable dict]"
    assert json_safe(cyclic) == {"self": "[Circular]"}


def test_json_safe_never_raises() -> None:
    class BadStr:
        def __str__(self) -> str:
            raise RuntimeError("no")

    deep: list[Any] = []
    cursor = deep
    for _ in range(500):
        cursor.append([])
        cursor = cursor[0]
    value = {1: BadStr(), (1, 2): b"\xff", "deep": deep, "set": {3}}
    safe = json_safe(value)
    assert safe["1"] == "<unrepresentable BadStr>"
    assert safe["1,2"] == "/w=="  # bytes: base64 text (Part 3)
    assert safe["set"] == [3]
    assert "[Too deep]" in repr(safe["deep"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-01T00:00:07.250999Z", EPOCH_2025 + 7250),
        ("2025-01-01T05:30:00.125+05:30", EPOCH_2025 + 125),
        ("2025-01-01T00:00:00Z", EPOCH_2025),
        ("2025-01-01T00:00:00", EPOCH_2025),
        ("2025-01-01", EPOCH_2025),
        ("2024-12-31T19:00:00-05:00", EPOCH_2025),
        (dt.datetime(2025, 1, 1, 0, 0, 0, 999), EPOCH_2025),
        (dt.datetime(2025, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1))), EPOCH_2025),
        (1735689600, EPOCH_2025),
        (1735689601.005, EPOCH_2025 + 1005),
        (1e20, None),
        (-1e15, None),
        ("not a date", None),
        ("2025-13-01T00:00:00Z", None),
        (True, None),
        (math.inf, None),
        (None, None),
        ([], None),
    ],
)
def test_time_ms(value: Any, expected: int | None) -> None:
    assert time_ms(value) == expected


def test_timestamp_format_truncates_to_milliseconds() -> None:
    assert format_timestamp_ms(EPOCH_2025 + 5000) == "2025-01-01T00:00:05.000Z"
    assert format_timestamp_ms(time_ms("2025-01-01T00:00:05.9999Z") or 0).endswith("05.999Z")
