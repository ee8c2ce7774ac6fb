"""The mapping's fast paths give exactly what the general path gives (issue 19).

Each fast path is a shortcut for the inputs it recognises; the general path
stays in the code for every other input (or is the standard library's: uuid5,
datetime's ISO format), so hypothesis can compare the two on inputs drawn to sit
on the edge of what the shortcut recognises.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posthog_logging import usage, values
from posthog_logging.mapping import media, messages
from posthog_logging.mapping.envelope import EVENT_UUID_NAMESPACE, event_uuid5
from posthog_logging.mapping.layers import LIBRARY, Layer, merge_layers, passthrough
from posthog_logging.mapping.spans import SpanEventBuilder

from .mapping_corpus import Colour, Label, Named, Number, Text

COUNTS = st.one_of(
    st.integers(0, 1000),
    st.integers(-5, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["12", "", math.nan]),
)
NESTED_KEYS = ["total", "cacheRead", "cacheWrite", "cacheWrite5m", "cacheWrite1h", "reasoning"]
NESTED = st.dictionaries(st.sampled_from(NESTED_KEYS), COUNTS, min_size=1, max_size=4)
MASTRA_SHAPED = st.dictionaries(
    st.sampled_from([*sorted(usage._MASTRA_KEYS), "totalTokens", "raw"]),
    st.one_of(COUNTS, NESTED, NESTED, st.just([1, 2])),
    max_size=5,
)


@settings(max_examples=500)
@given(MASTRA_SHAPED)
def test_mastra_usage_reads_as_every_shape_does(source: dict[str, Any]) -> None:
    assert usage.normalize_usage(source) == usage._from_any_shape(source)


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from([Text("sub"), Number(3), Colour.RED, Label.GOLD, b"raw", Named()]),
    st.datetimes(timezones=st.just(dt.timezone.utc)),
    st.dates(),
)
KEYS = st.one_of(st.text(max_size=3), st.integers(-3, 3), st.none(), st.booleans(), st.just(1.5))
VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
        st.dictionaries(st.text(max_size=3), children, max_size=4),
        st.tuples(children, children),
        st.frozensets(st.integers(0, 5), max_size=3),
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(VALUES)
def test_one_pass_conversion_converts_as_the_marking_one(value: Any) -> None:
    """What json_safe returns for a value without cycles or deep nesting is what its
    cycle-cutting conversion (for every other value) makes of it, key order included."""
    expected = json.dumps(values._convert_marking(value, set(), 0))
    assert json.dumps(values.json_safe(value)) == expected
    assert json.dumps(json.loads(values.json_text(value))) == expected


def _plain_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=3), children, max_size=4)
    )


PLAIN_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.floats(0.5, 0.75))


@given(st.recursive(PLAIN_LEAVES, _plain_containers, max_leaves=20))
def test_json_safe_values_are_returned_as_they_are(value: Any) -> None:
    assert values.json_safe(value) is value


@given(st.text())
def test_event_uuids_are_uuid5_of_the_identity(identity: str) -> None:
    assert event_uuid5(identity) == str(uuid.uuid5(EVENT_UUID_NAMESPACE, identity))


@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)))
def test_timestamps_are_formatted_as_datetime_does(moment: dt.datetime) -> None:
    millis = values.time_ms(moment)
    assert millis is not None
    expected = moment.isoformat(sep="T", timespec="milliseconds") + "Z"
    assert values.format_timestamp_ms(millis) == expected


class _MappingSubclass(dict[str, Any]):
    pass


MAPPINGS = st.builds(
    lambda kind, items: kind(items),
    st.sampled_from([dict, OrderedDict, Counter, MappingProxyType, _MappingSubclass]),
    st.dictionaries(st.text(max_size=3), LEAVES, max_size=3),
)


@given(st.one_of(VALUES, MAPPINGS))
def test_is_mapping_is_the_abstract_check(value: Any) -> None:
    assert values.is_mapping(value) == isinstance(value, Mapping)


@given(st.one_of(VALUES, MAPPINGS))
def test_plain_keeps_data_as_it_is(value: Any) -> None:
    """Types told by their exact type or by isinstance: data is never read through methods."""
    if value is None or isinstance(value, (str, int, list, tuple, Mapping)):
        assert values.plain(value) is value


MEDIA_TEXT = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["data:", "data:image/png;base64,iVBORw0KGgo=", "data:text/plain,hi"]),
    st.builds(lambda size: "QUJD" * size, st.integers(45, 55)),
    st.builds(lambda size: "not base64! " * size, st.integers(15, 20)),
)
MEDIA_KEYS = st.sampled_from(["data", "image", "inline_data", "audio", "text", "mime_type", "type"])
CONTENT = st.recursive(
    st.one_of(MEDIA_TEXT, st.none(), st.integers(), st.booleans()),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(MEDIA_KEYS, children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(CONTENT)
def test_media_scan_finds_all_the_walk_replaces(content: Any) -> None:
    """Content the scan passes as it is would come out of the copying walk unchanged."""
    assert media.redact_media(content) == media._walk(content, None, None)


PROPERTY_KEYS = st.sampled_from(["plain", "other", "$ai_trace_id", "$ai_session_id", "$custom"])
LAYERS = st.lists(
    st.tuples(st.booleans(), st.dictionaries(PROPERTY_KEYS, st.integers(0, 3), max_size=4)),
    max_size=5,
).filter(lambda drawn: any(not is_passthrough for is_passthrough, _ in drawn))


def _merged(drawn: list[tuple[bool, dict[str, int]]], compat: bool, split: bool) -> Any:
    """``merge_layers`` of the drawn layers, the library's split into one layer a key
    when ``split``; the properties as JSON text (key order counts) and the keys dropped."""
    layers: list[Layer] = []
    for is_passthrough, properties in drawn:
        if is_passthrough:
            layers.append(passthrough(properties))
        elif split:
            layers.extend((LIBRARY, {key: value}) for key, value in properties.items())
        else:
            layers.append((LIBRARY, dict(properties)))
    dropped: list[str] = []
    return json.dumps(merge_layers(layers, compat, dropped.append)), dropped


@given(LAYERS, st.booleans())
def test_library_layers_merge_into_one_dict_as_apart(
    drawn: list[tuple[bool, dict[str, int]]], compat: bool
) -> None:
    """Default mode merges the library's layers into the first one's dict (returned as it
    is when no passthrough key comes first): the same as merging them one by one."""
    assert _merged(drawn, compat, split=False) == _merged(drawn, compat, split=True)


@given(st.one_of(VALUES, st.sampled_from(["", "x", Text(""), Text("sub"), [], {}, 0, math.nan])))
def test_truthy_text_is_js_string_of_a_truthy_value(value: Any) -> None:
    expected = values.js_string(value) if values.is_truthy(value) else None
    assert values.truthy_text(value) == expected


@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_passthrough_takes_plain_keys_and_values_as_json_safe_does(source: dict[Any, Any]) -> None:
    expected = {values.js_string(key): values.json_safe(value) for key, value in source.items()}
    assert json.dumps(passthrough(source)[1]) == json.dumps(expected)


@given(st.one_of(VALUES, st.sampled_from(["", "model", Text(""), Text("sub")])))
def test_model_and_provider_strings_are_taken_as_json_safe_takes_them(value: Any) -> None:
    expected = values.json_safe(value) if values.is_truthy(value) else "fallback"
    assert json.dumps(SpanEventBuilder._or_default(value, "fallback")) == json.dumps(expected)


@given(st.one_of(VALUES, st.sampled_from(["user", Text("assistant"), Label.GOLD])))
def test_a_message_role_is_taken_as_json_safe_takes_it(role: Any) -> None:
    formatted = messages._message({"role": role, "content": "hi"})
    assert json.dumps(formatted["role"]) == json.dumps(values.json_safe(role))


@given(st.lists(st.one_of(st.none(), st.integers(0, 5)), min_size=4, max_size=4))
def test_usage_without_cache_counts_has_no_input_details(cache: list[int | None]) -> None:
    cache_read, cache_write, write_5m, write_1h = cache
    normalized = usage._normalized(
        input_tokens=1,
        output_tokens=2,
        cache_read=cache_read,
        cache_write=cache_write,
        write_5m=write_5m,
        write_1h=write_1h,
    )
    names = ["cacheRead", "cacheWrite", "cacheWrite5m", "cacheWrite1h"]
    expected = {name: count for name, count in zip(names, cache, strict=True) if count is not None}
    assert normalized.get("inputDetails", {}) == expected
    assert ("inputDetails" in normalized) == bool(expected)
