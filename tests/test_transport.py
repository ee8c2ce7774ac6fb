"""The transport reads the environment as ``requests`` does: proxies, NO_PROXY, CA bundle.

It posts through a ``requests`` adapter with a request prepared once (not through
``Session.post``, which merges the environment for every call), so what a
session would have taken from the environment is checked here against a real
server playing the proxy.
"""

from __future__ import annotations

import pytest

from posthog_logging.devserver import CaptureServer
from posthog_logging.encoding import encode_event
from posthog_logging.transport import AI_BATCH_PATH, Transport

from .conftest import DUMMY_KEY
from .helpers import dead_url

EVENT = {"event": "$ai_span", "distinct_id": "u1", "properties": {"$ai_span_id": "s1"}}
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*PROXY_VARIABLES, *NO_PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_posts_through_the_proxy_the_environment_names(
    capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", capture_server.url)
    transport = Transport(DUMMY_KEY, "http://posthog.invalid")
    result = transport.post([encode_event(EVENT)])
    transport.close()
    assert result.ok, result.describe()
    [request] = capture_server.requests
    assert request.path == "http://posthog.invalid" + AI_BATCH_PATH  # the proxy's form
    assert request.gzipped
    assert request.api_key == DUMMY_KEY
    assert [event["properties"] for event in request.batch] == [EVENT["properties"]]


def test_no_proxy_sends_directly(
    capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_url())  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    transport = Transport(DUMMY_KEY, capture_server.url)
    result = transport.post([encode_event(EVENT)])
    transport.close()
    assert result.ok, result.describe()
    assert [request.path for request in capture_server.requests] == [AI_BATCH_PATH]


def test_a_dead_proxy_is_a_failed_attempt_not_an_exception(
    capture_server: CaptureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", dead_url())
    transport = Transport(DUMMY_KEY, capture_server.url)
    result = transport.post([encode_event(EVENT)], timeout=5)
    assert result.status is None and result.retryable
    assert capture_server.requests == []


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_bundle_of_the_environment_verifies_https(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, "/etc/ssl/certs/ca-certificates.crt")
    assert Transport(DUMMY_KEY, "https://posthog.invalid").route().verify == (
        "/etc/ssl/certs/ca-certificates.crt"
    )
