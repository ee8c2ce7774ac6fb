"""The event encoders give the text ``json.dumps`` gives, to the byte.

``encode_event`` takes orjson's text where it is the same (most events, ten
times faster) and the standard library's otherwise; both are checked against
``json.dumps(event, separators=(",", ":"), default=str)``, what the library
sent before either was used, on generated values and on the golden corpus's
1,400 events.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from posthog_logging import encoding
from posthog_logging.encoding import encode_event, encode_with_json, encode_with_orjson
from posthog_logging.values import json_safe

from .test_mapping_golden import GOLDEN


def reference(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


#: Floats of every magnitude, the small ones orjson writes its own way included.
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.builds(
        lambda mantissa, exponent: mantissa * 10.0**exponent,
        st.floats(min_value=-9.99, max_value=9.99, allow_nan=False),
        st.integers(min_value=-12, max_value=-3),
    ),
)
#: Any code point, lone surrogates included, and ASCII text that looks like those floats.
texts = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["e-5]", "0.00001", "price:1e-5,", "\ud83d", "naïve — “quotes” 😀"]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63), floats, texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=5)),
    max_leaves=30,
)


@given(json_values)
def test_orjson_gives_the_same_text_or_declines(value: Any) -> None:
    encoded = encode_with_orjson(value)
    assert encoded is None or encoded == reference(value)


@given(json_values)
def test_the_json_encoder_gives_the_same_text(value: Any) -> None:
    assert encode_with_json(value) == reference(value)
    assert encode_event(value) == reference(value)


@pytest.mark.parametrize(
    ("value", "declined"),
    [
        ({"cost": 2.5e-05}, True),  # orjson: 0.000025
        ({"latency": 3e-07}, True),  # orjson: 3e-7
        (3e-07, True),  # a property's value alone (fit_event), the exponent last
        ({"tiny": 1e-10, "small": 0.0001}, False),  # written as Python writes them
        ({"huge": 2**64}, True),  # over 64 bits
        ({"text": "\ud800"}, True),  # a lone surrogate
        ({1: "key"}, True),  # not a string key
        ({"text": "naïve 😀 中文", "cost": 0.0001, "big": 1e22}, False),
        ({"at": dt.datetime(2025, 1, 2, tzinfo=dt.timezone.utc)}, False),  # default=str
    ],
)
def test_what_orjson_declines(value: Any, declined: bool) -> None:
    assert (encode_with_orjson(value) is None) is declined
    assert encode_event(value) == reference(value)


def test_nesting_and_cycles_go_to_json_with_its_result_or_error() -> None:
    deep: list[Any] = []
    for _ in range(400):
        deep = [deep]
    assert encode_event(deep) == reference(deep)
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    with pytest.raises(ValueError, match="Circular reference"):
        encode_event(cycle)


def test_the_installed_orjson_is_used() -> None:
    # The test extra installs orjson (the [fast] extra); its floats pass the probe.
    assert encoding._ORJSON_WRITES_FLOATS_AS_PYTHON


def golden_texts() -> list[str]:
    return [line for lines in GOLDEN.values() for line in lines if isinstance(line, str)]


def test_without_orjson_json_encodes_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module loaded afresh where ``import orjson`` fails, as without the [fast] extra.
    monkeypatch.setitem(sys.modules, "orjson", None)
    spec = importlib.util.spec_from_file_location("encoding_without_orjson", encoding.__file__)
    assert spec is not None and spec.loader is not None
    without = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(without)
    assert without.orjson is None
    assert not without._ORJSON_WRITES_FLOATS_AS_PYTHON
    for text in golden_texts():
        assert without.encode_event(json.loads(text)) == text


def test_golden_events_encode_to_their_golden_text_with_either_encoder() -> None:
    texts = golden_texts()
    by_orjson = 0
    for text in texts:
        event = json.loads(text)
        assert encode_with_json(event) == text
        fast = encode_with_orjson(event)
        assert fast is None or fast == text
        by_orjson += fast is not None
    assert len(texts) > 1000
    # The corpus is full of odd values on purpose (98 % by orjson when written).
    assert by_orjson >= 0.95 * len(texts), "orjson should encode nearly every event"


def test_nan_is_never_in_an_event_so_the_encoders_agree() -> None:
    # json_safe turns NaN and infinities into null before any encoder sees them
    # (orjson writes null for NaN where json writes the invalid NaN).
    value = json_safe({"a": math.nan, "b": [math.inf, -math.inf]})
    assert encode_with_orjson(value) == reference(value) == '{"a":null,"b":[null,null]}'
