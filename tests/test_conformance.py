"""Compat mode against the scenarios recorded from @mastra/posthog 1.3.11.

Each scenario is replayed through a real handler into a real capture server
over HTTP (gzip on), with the clock frozen as the fixtures' README says.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import time_machine

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import CONFORMANCE_FIXTURES, DUMMY_KEY, RecordCollector, at, span_logger

FIXTURES = json.loads(CONFORMANCE_FIXTURES.read_text())
IGNORED = set(FIXTURES["_meta"]["ignored_properties"])


def _with_datetimes(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$date"}:
            return at(value["$date"])
        return {key: _with_datetimes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_datetimes(item) for item in value]
    return value


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    properties = {k: v for k, v in event["properties"].items() if k not in IGNORED}
    return {
        "event": event["event"],
        "distinct_id": event["distinct_id"],
        "timestamp": event["timestamp"],
        "properties": properties,
    }


def replay(
    scenario: dict[str, Any],
    server: CaptureServer,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: Any,
) -> None:
    """Replay one scenario.

    The recorded requests are split by ``flush_at`` and the scenario's flushes only;
    the flush timer (its real-time interval, 10 s or 2 s when ``serverless``) is
    held off, unless the scenario sets it, so a slow machine splits no batch by time.
    """
    config = dict(scenario["config"])
    if "api_key" in config and config["api_key"] is None:
        monkeypatch.delenv("POSTHOG_API_KEY", raising=False)
    else:
        config.setdefault("api_key", DUMMY_KEY)
    config.setdefault("flush_interval", 3600.0)
    config.update(overrides)
    now = scenario.get("now") or FIXTURES["default_now"]
    with time_machine.travel(at(now), tick=False) as traveller:
        handler = PosthogLogHandler(host=server.url, **config)
        log = span_logger(f"conformance.{scenario['name']}", handler)
        for step in scenario["steps"]:
            action = step.get("action")
            if action == "flush":
                handler.flush()
            elif action == "set_now":
                traveller.move_to(at(step["now"]))
            elif step["type"] == "feedback":
                log.info("feedback", extra={"feedback": _with_datetimes(step["feedback"])})
            else:
                span = _with_datetimes(step["span"])
                log.info(step["type"], extra={"span": span, "span_event": step["type"]})
        handler.close()


SCENARIOS = FIXTURES["scenarios"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_scenario_reproduces_recorded_events(
    scenario: dict[str, Any],
    capture_server: CaptureServer,
    library_logs: RecordCollector,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replay(scenario, capture_server, monkeypatch, mastra_compat=True)
    expected = scenario["expected_events"]
    # Requests in flight at once may arrive in any order (not part of the contract):
    # each request keeps the emission order, and the requests are put back in it.
    batches = [[comparable(event) for event in r.batch] for r in capture_server.requests]
    batches.sort(key=lambda batch: expected.index(batch[0]) if batch[0] in expected else -1)
    received = [event for batch in batches for event in batch]
    assert received == expected

    for request in capture_server.requests:
        assert request.path == "/i/v0/ai/batch/"
        assert request.gzipped
    if "expected_requests" in scenario:
        sizes = [len(batch) for batch in batches]
        assert sizes == scenario["expected_requests"]["batch_sizes"]
        assert len(sizes) == scenario["expected_requests"]["count"]
    if "expected_logs" in scenario:
        logged = [
            {"level": r.levelname, "message": r.getMessage()}
            for r in library_logs.records
            if r.levelno >= 30
        ]
        assert logged == scenario["expected_logs"]
        assert capture_server.requests == []
    for record in library_logs.records:
        assert DUMMY_KEY not in record.getMessage()
