"""Scripted faults: how the capture server answers a POST, for the reliability tests.

A test scripts the answers of the next POSTs (statuses, ``Retry-After``,
delays, hung requests, dropped connections) and the server also enforces a
body-size limit with 413, so the failure paths are reached over real HTTP
without mocking the transport.  :func:`verdict` is the one place that decides
an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: ``ReceivedRequest.status`` of a request whose connection was closed unanswered.
DROPPED = 0

#: The answer of a POST when nothing is scripted (PostHog's own success body).
ACCEPTED_BODY = '{"status": 1}'


@dataclass
class ScriptedResponse:
    """How to answer one upcoming POST (fault injection, consumed in order).

    ``delay`` holds the answer that much longer than the server's ``latency``;
    ``hang`` never answers: the request is recorded (as ``DROPPED``) and its
    connection held open until the server stops.  A 429 storm is
    ``script(*[ScriptedResponse(429, headers={"Retry-After": "1"})] * n)``; a
    server that hangs on every request is ``answer_by_default(ScriptedResponse(hang=True))``.
    """

    status: int = 200
    body: str = ACCEPTED_BODY
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop_connection: bool = False
    hang: bool = False


def verdict(
    scripted: ScriptedResponse, body_bytes: int, parsed: bool, max_body_bytes: int | None
) -> tuple[int, str, Mapping[str, str]]:
    """Status, body and headers of the answer to one POST.

    A dropped connection has no answer at all.  Otherwise the size limit wins
    (PostHog refuses an oversize body whatever it holds), then an injected
    error status, then a body that cannot be read.
    """
    if scripted.drop_connection or scripted.hang:
        return DROPPED, "", {}
    if max_body_bytes is not None and body_bytes > max_body_bytes:
        return 413, '{"detail": "payload too large"}', {}
    if 200 <= scripted.status < 300 and not parsed:
        return 400, '{"detail": "body is not JSON"}', {}
    return scripted.status, scripted.body, scripted.headers
