"""A varied corpus of records and the events the mapping makes of them (the golden file).

``tests/test_mapping_golden.py`` checks that the mapping still turns this corpus
into exactly the events of ``tests/data/mapping_golden.json``: the same JSON
text, key order included, and the same rejections.  It guards optimisations of
the mapping path (issue 19), which must change no output.

The corpus is the conformance scenarios' records (replayed in compat mode with
each scenario's options, and again in default mode) plus spans drawn by a
seeded ``random.Random`` from pools of field values: every usage shape of
``usage.py``, every message shape of §1.11, error infos, tools, costs, and the
values Part 3 makes JSON-safe (NaN, datetimes, sets, tuples, bytes, enums,
``str`` subclasses, non-string keys, nesting, cycles).  Random draws, not
hypothesis: the file must not depend on a library's version.

When the mapping changes on purpose, regenerate the file with the code that
makes the intended output (before any optimisation is applied on top of it):

    python -m tests.mapping_corpus        # writes tests/data/mapping_golden.json

and review the diff.  Changing the corpus below also needs a regeneration.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from posthog_logging.contract import SpanEvent
from posthog_logging.encoding import encode_event
from posthog_logging.mapping import Event, EventMapper, MappingOptions, RecordRejected
from posthog_logging.redaction import StripPrivateContent
from posthog_logging.values import time_ms

GOLDEN_FILE = Path(__file__).parent / "data" / "mapping_golden.json"
FIXTURES_FILE = Path(__file__).parent / "conformance" / "fixtures.json"
SEED = 19
RANDOM_SPANS = 400
#: Event uuids are random for feedback without an id: written as this instead.
RANDOM_UUID = "<random uuid4>"
#: The library's version changes with every release, the mapping does not.
VERSION = "<version>"
MAPPING_OPTIONS = ("mastra_compat", "default_distinct_id")
#: The random parts: (name, mapping options, privacy mode, seed).  The seeds are fixed
#: text (they were the options' repr when the file was first written), so a new
#: mapping option neither renames nor reshuffles a part.
RANDOM_PARTS = (
    (
        "random default",
        MappingOptions(mastra_compat=False),
        False,
        "MappingOptions(mastra_compat=False, privacy_mode=False, default_distinct_id=None, "
        "capture_exceptions=False, redact_media=True)",
    ),
    (
        "random compat",
        MappingOptions(mastra_compat=True),
        False,
        "MappingOptions(mastra_compat=True, privacy_mode=False, default_distinct_id=None, "
        "capture_exceptions=False, redact_media=True)",
    ),
    (
        "random default, privacy mode, default distinct id",
        MappingOptions(mastra_compat=False, default_distinct_id="svc"),
        True,
        "MappingOptions(mastra_compat=False, privacy_mode=True, default_distinct_id='svc', "
        "capture_exceptions=False, redact_media=True)",
    ),
)


# ------------------------------------------------------------ odd values


class Colour(enum.Enum):
    RED = "red"


class Label(str, enum.Enum):
    GOLD = "gold"


class Text(str):
    """A str subclass (Part 3 sends its plain text)."""


class Number(int):
    pass


class Named:
    """An object with a ``__str__`` of its own."""

    def __str__(self) -> str:
        return "named-object"


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("no text")


@dataclasses.dataclass
class UsageObject:
    """An SDK usage object read through its attributes (no ``model_dump``)."""

    prompt_tokens: int
    completion_tokens: int


class DumpedUsage:
    """An SDK usage object with ``model_dump()`` (pydantic's way)."""

    def __str__(self) -> str:  # passed through as text: not a memory address
        return "DumpedUsage()"

    def model_dump(self) -> dict[str, Any]:
        return {"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 3}


def _cycle() -> dict[str, Any]:
    looped: dict[str, Any] = {"name": "loop"}
    looped["self"] = looped
    return looped


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**60,
    0.0,
    1.5,
    3.0,
    1e21,
    -2.5e-7,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "plain",
    "ünïcødé ✓ \u2028 \x00",
    Text("sub"),
    Number(5),
    Colour.RED,
    Label.GOLD,
    b"bytes",
    bytearray(b"ba"),
    (1, "two", None),
    {3, 1, 2},
    frozenset({"x"}),
    [],
    {},
    [1, [2, [3, {"four": 4.0}]]],
    {1: "int key", None: "none key", 2.5: "float key", False: "bool key"},
    {"nested": {"tuple": (1.0, 2.0), "when": dt.datetime(2025, 1, 1, 12, 0, 0, 123456)}},
    dt.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc),
    dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    dt.date(2024, 2, 29),
    uuid.UUID(int=12345),
    Named(),
    Broken(),
    _cycle(),
    _deep(70),
]

IDS: list[Any] = [
    "a1b2c3d4e5f6a7b8",
    "0123456789abcdef0123456789abcdef",
    42,
    7.0,
    uuid.UUID(int=99),
    Text("sub-id"),
    Named(),
    True,
    {"id": 1},
    [1, 2],
    b"raw",
    math.nan,
    "",
    None,
    Broken(),
]

TIMES: list[Any] = [
    1735689600.0,
    1735689600.123456,
    1735689600,
    "2025-01-01T00:00:00.000Z",
    "2025-01-01T00:00:00.5+02:00",
    "2025-01-01 00:00:01",
    "2025-13-01T00:00:00Z",
    "not a time",
    dt.datetime(2025, 1, 1, 0, 0, 2),
    dt.datetime(2025, 1, 1, 0, 0, 2, 999999, tzinfo=dt.timezone.utc),
    dt.date(2025, 1, 1),
    None,
    math.nan,
    True,
]

USAGES: list[Any] = [
    {"inputTokens": 420, "outputTokens": 96},
    {"inputTokens": 100, "outputTokens": 20, "inputDetails": {"cacheRead": 40, "cacheWrite": 5}},
    {
        "inputTokens": 100,
        "outputTokens": 20,
        "inputDetails": {"cacheRead": 1, "cacheWrite5m": 2, "cacheWrite1h": 3},
        "outputDetails": {"reasoning": 7},
    },
    {"inputTokens": 50, "outputTokens": 9, "cachedInputTokens": 10, "reasoningTokens": 3},
    {
        "inputTokens": {"total": 80, "noCache": 60, "cacheRead": 15, "cacheWrite": 5},
        "outputTokens": {"total": 30, "text": 20, "reasoning": 10},
    },
    {
        "prompt_tokens": 200,
        "completion_tokens": 50,
        "total_tokens": 250,
        "prompt_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 12},
    },
    {
        "input_tokens": 300,
        "output_tokens": 40,
        "input_tokens_details": {"cached_tokens": 100},
        "output_tokens_details": {"reasoning_tokens": 5},
    },
    {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_input_tokens": 500,
        "cache_creation_input_tokens": 60,
        "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 20},
    },
    {"input_tokens": 10, "output_tokens": 2},
    {
        "usage_metadata": {
            "prompt_token_count": 70,
            "candidates_token_count": 30,
            "cached_content_token_count": 20,
            "thoughts_token_count": 11,
        }
    },
    {"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "thoughtsTokenCount": 1}},
    {"promptTokenCount": 8, "candidatesTokenCount": 2, "cachedContentTokenCount": 1},
    {"usage_metadata": DumpedUsage()},
    {"inputTokens": 12.0, "outputTokens": 3.5},
    {"inputTokens": math.nan, "outputTokens": math.inf, "inputDetails": {"cacheRead": "9"}},
    {"inputTokens": "12", "outputTokens": None, "inputDetails": "none"},
    {"inputTokens": True, "outputTokens": -3},
    {"totally": "unknown"},
    {},
    None,
    "usage",
    UsageObject(5, 6),
    DumpedUsage(),
]

MESSAGES: list[Any] = [
    [{"role": "user", "content": "What's the weather?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "tool-call", "toolName": "w", "args": {}}]},
    ],
    {"messages": [{"role": "user", "content": "wrapped"}], "other": 1},
    "a plain prompt",
    {"text": "Paris is sunny."},
    {"text": "calling", "toolCalls": [{"toolCallId": "c1", "toolName": "get", "args": {"q": 1}}]},
    {"toolCalls": [{"toolName": "only-name"}, "not a mapping"]},
    {"object": {"answer": 42}},
    [{"role": "user"}],
    [],
    {},
    "",
    0,
    None,
    _cycle(),
    {"when": dt.datetime(2025, 1, 1), "tags": {"x"}},
]

TOOLS: list[Any] = [
    [{"type": "function", "name": "get_weather", "description": "d", "parameters": {"a": 1}}],
    [{"type": "function", "function": {"name": "nested", "parameters": {}}}],
    [{"type": "provider-defined", "id": "web_search"}, "odd tool"],
    {"get_weather": {"description": "weather", "inputSchema": {"type": "object"}}},
    {"search": {"parameters": {"q": "string"}}, "bare": None},
    [],
    "tools",
]

ERRORS: list[Any] = [
    None,
    {},
    {"message": "boom", "id": "E1", "category": "USER", "domain": "D"},
    {"message": "", "id": "", "category": None},
    {"id": "NO_MESSAGE", "details": {"code": 500}},
    "a bare error string",
    ["list", "error"],
    {"message": {"nested": True}},
    _cycle(),
]

PARAMETERS: list[Any] = [
    {"temperature": 0.2},
    {"temperature": 0.7, "maxOutputTokens": 1024, "topP": 0.9},
    {"maxOutputTokens": 512.0},
    {"maxOutputTokens": "lots", "temperature": math.nan},
    {},
    "params",
    None,
]

COSTS: list[Any] = [
    {"estimatedCost": 0.0123, "inputCost": 0.01, "outputCost": 0.0023, "costUnit": "USD"},
    {"estimatedCost": 1, "costUnit": "usd"},
    {"estimatedCost": 5, "costUnit": "EUR"},
    {"inputCost": math.nan, "outputCost": "0.5"},
    None,
]

METADATA: list[Any] = [
    {"userId": "user-1", "sessionId": "s-1"},
    {"userId": 17, "sessionId": 2.5, "env": "prod"},
    {"userId": "", "sessionId": None, "$groups": {"company": "acme"}, "$set": {"x": 1}},
    {"$ai_session_id": "from-metadata", "$ai_model": "override", "$ai_trace_id": "nope"},
    {"tier": "pro", "count": 3, "score": math.nan, "when": dt.date(2025, 1, 1)},
    {"odd": Colour.RED, "label": Label.GOLD, 5: "int key"},
    {},
    "metadata",
    None,
]

TAGS: list[Any] = [["production", "beta"], ("tuple-tag", 3), [], [None, True, 1.5], "tag", None]

SPAN_TYPES = [
    "model_generation",
    "MODEL_GENERATION",
    "tool_call",
    "mcp_tool_call",
    "agent_run",
    "workflow_run",
    "model_step",
    "model_chunk",
    "model_embedding",
    "processor_run",
    "generic",
    "",
    None,
    7,
]

NAMES: list[Any] = ["llm: gpt-4o-mini", "tool: get_weather", "", None, 12, Text("named")]
MODELS: list[Any] = ["gpt-4o-mini", "claude-3-5-sonnet", "", None, 4, Label.GOLD]
PROVIDERS: list[Any] = ["openai", "anthropic", "google", "", None]
FINISH_REASONS: list[Any] = ["stop", "length", "", None, 3]


def _maybe(rng: random.Random, pool: list[Any], absent: float = 0.3) -> tuple[bool, Any]:
    if rng.random() < absent:
        return False, None
    return True, rng.choice(pool)


def random_span(rng: random.Random, n: int) -> dict[str, Any]:
    """One span with fields drawn from the pools (an absent field stays absent)."""
    span: dict[str, Any] = {
        "id": f"{n:016x}" if rng.random() < 0.95 else rng.choice(IDS),
        "traceId": f"{n % 23:032x}" if rng.random() < 0.95 else rng.choice(IDS),
        "type": "model_generation" if rng.random() < 0.3 else rng.choice(SPAN_TYPES),
        "startTime": 1735689600.0 + n if rng.random() < 0.85 else rng.choice(TIMES),
        "isEvent": rng.random() < 0.1,
        "isRootSpan": rng.random() < 0.25,
    }
    if rng.random() < 0.7:
        span["endTime"] = 1735689601.25 + n if rng.random() < 0.85 else rng.choice(TIMES)
    if rng.random() < 0.6:
        span["parentSpanId"] = f"{n + 1000:016x}" if rng.random() < 0.95 else rng.choice(IDS)
    attributes: dict[str, Any] = {}
    for key, pool in (
        ("model", MODELS),
        ("provider", PROVIDERS),
        ("usage", USAGES),
        ("parameters", PARAMETERS),
        ("tools", TOOLS),
        ("costContext", COSTS),
        ("finishReason", FINISH_REASONS),
        ("completionStartTime", TIMES),
        ("streaming", ODD_VALUES),
        ("chunkType", ["text-delta", "", None]),
        ("sequenceNumber", [0, 1, "2", None]),
        ("toolType", ["function", None]),
        ("custom", ODD_VALUES),
        ("$ai_framework", ["mastra"]),
        ("$private", ["dropped in default mode"]),
    ):
        present, value = _maybe(rng, pool, absent=0.5)
        if present:
            attributes[key] = value
    if rng.random() < 0.9:
        span["attributes"] = attributes if rng.random() < 0.95 else rng.choice(ODD_VALUES)
    for key, pool in (
        ("name", NAMES),
        ("input", MESSAGES + ODD_VALUES),
        ("output", MESSAGES + ODD_VALUES),
        ("metadata", METADATA),
        ("errorInfo", ERRORS),
        ("tags", TAGS),
    ):
        present, value = _maybe(rng, pool)
        if present:
            span[key] = value
    return span


# ------------------------------------------------------------ replay


def _events_text(events: list[Event]) -> list[str]:
    texts = []
    for event in events:
        properties = event["properties"]
        if "$lib_version" in properties:
            properties["$lib_version"] = VERSION
        if event["uuid"][14] == "4":  # uuid4 (random); a deterministic one is version 5
            event["uuid"] = RANDOM_UUID
        texts.append(encode_event(event))
    return texts


class Recorder:
    """Drives one :class:`EventMapper` and writes down what each record gave (with
    privacy mode, after the outgoing chain's privacy step, as the listener sends it)."""

    def __init__(self, options: MappingOptions, *, privacy_mode: bool = False) -> None:
        self.lines: list[Any] = []
        self.mapper = EventMapper(options, on_reject=self._rejected)
        self.private = StripPrivateContent() if privacy_mode else None

    def _rejected(self, rejected: RecordRejected) -> None:
        self.lines.append({"rejected": str(rejected)})

    def span(self, span: Any, span_event: SpanEvent, now_ms: int) -> None:
        self._record(lambda: self.mapper.map_span(span, span_event, now_ms))

    def feedback(self, feedback: Any, now_ms: int) -> None:
        self._record(lambda: [self.mapper.map_feedback(feedback, now_ms)])

    def close(self, now_ms: int) -> None:
        self._record(lambda: self.mapper.abort_open_spans(now_ms))

    def _record(self, produce: Any) -> None:
        try:
            events = produce()
        except RecordRejected as rejected:
            self.lines.append({"rejected": str(rejected)})
            return
        if self.private is not None:
            events = [self.private(event) for event in events]
        self.lines.extend(_events_text(events))


def _with_datetimes(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$date"}:
            return dt.datetime.fromisoformat(value["$date"].replace("Z", "+00:00"))
        return {key: _with_datetimes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_datetimes(item) for item in value]
    return value


def _iso_ms(text: str) -> int:
    millis = time_ms(text)
    assert millis is not None
    return millis


def conformance_lines(mastra_compat: bool) -> Iterator[tuple[str, list[Any]]]:
    """The conformance scenarios' records through the mapper, one scenario at a time."""
    fixtures = json.loads(FIXTURES_FILE.read_text())
    for scenario in fixtures["scenarios"]:
        config = {k: v for k, v in scenario["config"].items() if k in MAPPING_OPTIONS}
        recorder = Recorder(
            MappingOptions(mastra_compat=mastra_compat, **config),
            privacy_mode=bool(scenario["config"].get("privacy_mode")),
        )
        now_ms = _iso_ms(scenario.get("now") or fixtures["default_now"])
        for step in scenario["steps"]:
            action = step.get("action")
            if action == "set_now":
                now_ms = _iso_ms(step["now"])
            elif action is None and step["type"] == "feedback":
                recorder.feedback(_with_datetimes(step["feedback"]), now_ms)
            elif action is None:
                recorder.span(_with_datetimes(step["span"]), SpanEvent(step["type"]), now_ms)
        recorder.close(now_ms)
        mode = "compat" if mastra_compat else "default"
        yield f"conformance {mode}: {scenario['name']}", recorder.lines


def random_lines(options: MappingOptions, privacy_mode: bool, seed: str) -> list[Any]:
    """Random spans started and ended through one mapper (so trace state plays a part)."""
    rng = random.Random(f"{SEED}:{seed}")
    recorder = Recorder(options, privacy_mode=privacy_mode)
    now_ms = 1735689700000
    for n in range(RANDOM_SPANS):
        span = random_span(rng, n)
        if rng.random() < 0.5:
            recorder.span(span, SpanEvent.STARTED, now_ms)
        if rng.random() < 0.1:
            recorder.feedback(
                {"traceId": span["traceId"], "value": rng.choice(ODD_VALUES), "feedbackId": n},
                now_ms,
            )
        if rng.random() < 0.9:
            ended = dict(span) if rng.random() < 0.8 else {**span, "input": None}
            recorder.span(ended, SpanEvent.ENDED, now_ms + n)
    recorder.close(now_ms + RANDOM_SPANS)
    return recorder.lines


def corpus_output() -> dict[str, list[Any]]:
    """Every corpus part's mapped lines: event JSON text or ``{"rejected": reason}``."""
    output: dict[str, list[Any]] = {}
    for compat in (True, False):
        output.update(conformance_lines(compat))
    for name, options, privacy_mode, seed in RANDOM_PARTS:
        output[name] = random_lines(options, privacy_mode, seed)
    return output


def write_golden() -> None:
    GOLDEN_FILE.parent.mkdir(exist_ok=True)
    text = json.dumps(corpus_output(), indent=1, ensure_ascii=False)
    GOLDEN_FILE.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    write_golden()
    print(f"wrote {GOLDEN_FILE}")
