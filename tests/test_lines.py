"""posthog_logging.lines: lines from a pipe or a followed file (signals: see test_send)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from posthog_logging import lines
from posthog_logging.lines import TOO_LONG, StopSignals, TooLong, follow_lines, pipe_lines

from .helpers import PATIENCE, blocked_in, wait_until


def in_thread(work: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def piped_lines(chunks: list[bytes], pause: float) -> list[bytes | TooLong]:
    """What ``pipe_lines`` reads from a pipe written ``chunks``, ``pause`` apart, then closed."""
    read_fd, write_fd = os.pipe()

    def write() -> None:
        for chunk in chunks:
            os.write(write_fd, chunk)
            time.sleep(pause)
        os.close(write_fd)

    writer = in_thread(write)
    with StopSignals() as stop:
        got = list(pipe_lines(read_fd, stop))
    writer.join()
    os.close(read_fd)
    return got


def test_pipe_lines_across_chunks_and_a_last_line_without_newline() -> None:
    chunks = [b'{"a": 1}\n{"b"', b": 2}\n", b"\n", b"x" * 70_000 + b"\n", b"last"]
    got = piped_lines(chunks, pause=0.01)
    assert got == [b'{"a": 1}', b'{"b": 2}', b"", b"x" * 70_000, b"last"]


def test_an_over_long_line_is_skipped_up_to_its_newline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lines, "MAX_LINE_BYTES", 100)
    got = piped_lines([b"ok\n" + b"y" * 150, b"y" * 150 + b"\nnext\n"], pause=0.02)
    assert got == [b"ok", TOO_LONG, b"next"]


def collect(source: Iterator[object], into: list[object]) -> None:
    into.extend(source)


def test_follow_waits_for_the_file_then_follows_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    got: list[object] = []
    with StopSignals() as stop:
        reader = in_thread(lambda: collect(follow_lines(str(path), stop, poll=0.02), got))

        def until(count: int) -> None:
            wait_until(lambda: len(got) >= count, f"{count} lines")
            assert len(got) == count, got

        # The file does not exist yet: the reader waits for it.
        wait_until(lambda: blocked_in(reader, StopSignals.wait), "the reader to wait")
        with open(path, "ab") as handle:
            handle.write(b"1\n2\n3")
        until(2)
        with open(path, "ab") as handle:
            handle.write(b"\n4\n")
        until(4)
        path.rename(tmp_path / "app.jsonl.1")  # rotation: the old file ends with "5"
        with open(tmp_path / "app.jsonl.1", "ab") as handle:
            handle.write(b"5")
        with open(path, "wb") as handle:
            handle.write(b"666666\n")
        until(6)
        # copytruncate, then new writes: shorter than what was read, so the file is
        # seen to have shrunk whenever the reader looks, before or after the write
        # (a file that grew past the reading position in between cannot be told
        # from one that grew, by any follower that goes by size, tail -F included).
        os.truncate(path, 0)
        with open(path, "ab") as handle:
            handle.write(b"7\n")
        until(7)
        stop.stopped = True
        reader.join(timeout=PATIENCE)
    assert not reader.is_alive()
    assert got == [b"1", b"2", b"3", b"4", b"5", b"666666", b"7"]


def test_a_file_renamed_away_is_still_read_until_its_successor_appears(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    path.write_bytes(b"1\n")
    got: list[object] = []
    with StopSignals() as stop:
        reader = in_thread(lambda: collect(follow_lines(str(path), stop, poll=0.02), got))
        wait_until(lambda: got, "the first line")
        path.rename(tmp_path / "app.jsonl.1")
        time.sleep(0.2)  # polls with no file at the path (none at all passes too)
        with open(tmp_path / "app.jsonl.1", "ab") as handle:
            handle.write(b"2\n")  # its writer has not reopened yet
        time.sleep(0.1)  # (likewise)
        path.write_bytes(b"3\n")
        wait_until(lambda: len(got) >= 3, "three lines")
        stop.stopped = True
        reader.join(timeout=PATIENCE)
    assert got == [b"1", b"2", b"3"]
