"""The one way the library's emitters log a record, and the one handler-chain walk."""

from __future__ import annotations

import logging

from posthog_logging.records import log_payload, reached_handlers

from .conftest import RecordCollector


def test_log_payload_logs_one_info_record_carrying_its_payload() -> None:
    collector = RecordCollector()
    logger = logging.getLogger("tests.emitters.payload")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(collector)
    try:
        log_payload(logger, "/lib/tracing.py", {"span": {"id": "a"}}, "%s %s", "span_ended", "x")
    finally:
        logger.removeHandler(collector)
    [record] = collector.records
    assert (record.levelno, record.getMessage()) == (logging.INFO, "span_ended x")
    assert record.pathname == "/lib/tracing.py" and record.span == {"id": "a"}  # type: ignore[attr-defined]


def test_reached_handlers_walks_up_while_propagate_is_set() -> None:
    top, middle, leaf = (RecordCollector() for _ in range(3))
    logging.getLogger("tests.emitters").addHandler(top)
    logging.getLogger("tests.emitters.chain").addHandler(middle)
    child = logging.getLogger("tests.emitters.chain.leaf")
    child.addHandler(leaf)
    try:
        assert reached_handlers(child)[:3] == [leaf, middle, top]
        logging.getLogger("tests.emitters.chain").propagate = False
        assert reached_handlers(child) == [leaf, middle]
    finally:
        logging.getLogger("tests.emitters.chain").propagate = True
        for name, handler in (("tests.emitters", top), ("tests.emitters.chain", middle)):
            logging.getLogger(name).removeHandler(handler)
        child.removeHandler(leaf)
