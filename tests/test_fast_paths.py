"""The mapping's fast paths give exactly what the general path gives (issue 19).

Each fast path is a shortcut for the inputs it recognises; the general path
stays in the code for every other input, so hypothesis can compare the two on
inputs drawn to sit on the edge of what the shortcut recognises.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from posthog_logging import usage

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
