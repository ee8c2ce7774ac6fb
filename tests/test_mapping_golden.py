"""The mapping turns a varied corpus into exactly the events of the golden file.

The golden file (``tests/data/mapping_golden.json``) was written by the mapping
before issue 19's optimisations; how the corpus is built and how to regenerate
the file after an intended change of the mapping: ``tests/mapping_corpus.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .mapping_corpus import GOLDEN_FILE, corpus_output

GOLDEN: dict[str, list[Any]] = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def output() -> dict[str, list[Any]]:
    return corpus_output()


def test_the_corpus_has_the_golden_parts(output: dict[str, list[Any]]) -> None:
    assert list(output) == list(GOLDEN)


@pytest.mark.parametrize("part", list(GOLDEN))
def test_mapping_reproduces_the_golden_events(part: str, output: dict[str, list[Any]]) -> None:
    expected, produced = GOLDEN[part], output.get(part, [])
    for line, (want, got) in enumerate(zip(expected, produced, strict=False)):
        assert got == want, f"{part}, line {line}: the mapping's output changed"
    assert len(produced) == len(expected)
