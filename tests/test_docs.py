"""Every fenced code block of README.md and docs/*.md runs as written.

A user copies a block into a file and runs it; so does this module, one test per
block (``README.md:42`` is the block whose fence opens on line 42).  How a block
runs is decided by its language and by HTML comments (GitHub does not show them)
on the lines directly above its opening fence:

- ```python: run as a script with this interpreter, in a fresh directory, with
  ``POSTHOG_API_KEY=phc_test`` and ``POSTHOG_HOST`` at a :class:`CaptureServer` of
  the test.  Model providers are answered by :class:`ModelServer` (a local HTTP
  server answering as ``examples/fake_models.py`` does): ``OPENAI_BASE_URL``,
  ``ANTHROPIC_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL`` and their API keys point the
  SDKs at it, so a block calls ``OpenAI()`` exactly as a user does.  It must exit
  with status 0.
- ```bash (or sh, shell, console): run with ``bash`` when its first command starts
  with ``posthog-logging `` or ``python``, with the same environment, stdin empty.
  Blocks run in a fresh directory holding the repository's ``examples/`` (a link), so
  ``python examples/workflow.py`` works as it does in a clone.
- ``<!-- expect: $ai_generation x1, $ai_trace x1 -->``: what the block sends,
  exactly (every event name it sends is listed, with its count).
  ``<!-- expect: events -->``: at least one event; ``<!-- expect: nothing sent -->``:
  none.  Optional: without it a block that runs must exit with 0, nothing more.
- ``<!-- users: u1 -->``: the distinct ids of the events it sends, all of them (a
  personless event's is its trace id, so this catches one).
- ``<!-- not run: <reason> -->``: the block is not run (a config fragment, a
  command that installs packages or runs forever); the reason is required.
- ``<!-- file: NAME -->``: the block is not run itself but saved as NAME in the
  directory of every block of the same page that runs (a YAML configuration the
  next block loads, a WSGI app a command serves).
- ``<!-- continue -->``: the python block runs after the page's previous python
  block (and what that one continues), as one script: a page building one
  example step by step.

A ```text block (or one with no language) is output shown to the reader (a trace
tree), not code, and is not run.  Any other block (yaml, toml, ini, a shell command
that installs or serves...) needs ``not run`` or ``file``:
:func:`test_every_block_runs_or_says_why` fails on a block with neither, so no code
goes untested silently.  :func:`test_relative_links_resolve` checks that
every relative link and ``#anchor`` of those pages points at something.
"""

from __future__ import annotations

import ast
import inspect
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fake_models import anthropic_http_client, gemini_transport, openai_http_client
from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer

from .conftest import BEHAVIOUR_VARIABLES
from .helpers import free_port, get

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Pages other developers are writing in parallel, linked from these pages before
#: they exist.  The lead empties this when their branches are merged.
PAGES_BEING_WRITTEN = frozenset(
    {
        "docs/durability.md",
    }
)
PYTHON = {"python", "py"}
OUTPUT = {"text", ""}
SHELL = {"bash", "sh", "shell", "console"}
#: What a shell block's first command must start with to be run.
RUNNABLE_COMMANDS = ("posthog-logging ", "python")
#: What the model server answers, to every provider.
MODEL_REPLY = "It is sunny in Paris."

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)\s*(?P<info>[\w+-]*)")
_MARKER = re.compile(
    r"^\s*<!--\s*(?P<kind>expect|users|not run|file|continue)\s*:?\s*(?P<value>.*?)\s*-->\s*$"
)
_EXPECTED_EVENT = re.compile(r"^(?P<event>\$\w+) x(?P<count>\d+)$")


@dataclass
class Block:
    """One fenced block of a page, with the markers written above it."""

    page: Path
    line: int  # of the opening fence, counting from 1
    language: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)
    continues: Block | None = None

    @property
    def name(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"

    @property
    def runs(self) -> bool:
        """Whether this module runs the block (else it needs ``not run`` or ``file``)."""
        if "not run" in self.markers or "file" in self.markers:
            return False
        if self.language in PYTHON:
            return True
        first = next((line for line in self.code.splitlines() if line.strip()), "")
        return self.language in SHELL and first.startswith(RUNNABLE_COMMANDS)

    def script(self) -> str:
        """The code that runs: what this block continues, then the block."""
        before = self.continues.script() + "\n" if self.continues is not None else ""
        return before + self.code


def read_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order (indented fences in lists included)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = [line[indent:] for line in lines[index + 1 : end]]
        block = Block(page, index + 1, opening["info"].lower(), "\n".join(body) + "\n")
        above = index - 1
        while above >= 0 and (marker := _MARKER.match(lines[above])):
            block.markers[marker["kind"]] = marker["value"]
            above -= 1
        if "continue" in block.markers:
            block.continues = next((b for b in reversed(blocks) if b.language in PYTHON), None)
        blocks.append(block)
        index = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def test_every_block_runs_or_says_why() -> None:
    unmarked = [b.name for b in ALL_BLOCKS if not b.runs and not _says_why_it_is_not_run(b)]
    assert unmarked == [], "blocks neither run nor marked <!-- not run: reason -->"
    lonely = [b.name for b in ALL_BLOCKS if "continue" in b.markers and b.continues is None]
    assert lonely == [], "<!-- continue --> with no python block before it"


def _says_why_it_is_not_run(block: Block) -> bool:
    reason = block.markers.get("not run") or block.markers.get("file")
    return bool(reason) or (block.language in OUTPUT and "not run" not in block.markers)


def test_blocks_are_read_with_the_markers_above_them(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nprint(1)\n```\n\n"
        "- item\n\n  <!-- continue -->\n  <!-- expect: $ai_trace x1 -->\n  <!-- users: u1 -->\n"
        "  ```python\n  print(2)\n  ```\n\n"
        "```yaml\nversion: 1\n```\n\n"
        "<!-- not run:  -->\n```bash\npip install x\n```\n\n"
        "```bash\nposthog-logging send -\n```\n\n"
        "```text\ntrace 4bf9...\n```\n"
    )
    first, second, config, install, send, output = read_blocks(page)
    assert second.markers == {"continue": "", "expect": "$ai_trace x1", "users": "u1"}
    assert second.script() == "print(1)\n\nprint(2)\n"
    assert [b.runs for b in (first, second, config, install, send)] == [
        True,
        True,
        False,
        False,
        True,
    ]
    assert not _says_why_it_is_not_run(config) and not _says_why_it_is_not_run(
        install
    )  # an empty reason
    assert not output.runs and _says_why_it_is_not_run(output)  # output, not code


# ------------------------------------------------------------------ model server
class ModelServer(ThreadingHTTPServer):
    """OpenAI, Anthropic and Gemini on 127.0.0.1, answering as the examples' fakes do.

    Each request is handed to the ``httpx.MockTransport`` of ``examples/fake_models.py``
    for its provider (a fresh one: every call gets :data:`MODEL_REPLY`), so the
    documented blocks and the examples see the same model.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ModelRequest)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def environment(self) -> dict[str, str]:
        """Where each provider's SDK finds this server, and a key it accepts."""
        return {
            "OPENAI_BASE_URL": f"{self.url}/v1",
            "OPENAI_API_KEY": "sk-test",
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-ant-test",
            "GOOGLE_GEMINI_BASE_URL": self.url,
            "GOOGLE_API_KEY": "gemini-test",
        }


class _ModelRequest(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = f"http://model{self.path}"
        headers = {"content-type": "application/json"}
        answer: Any
        if ":generateContent" in self.path:
            with httpx.Client(transport=gemini_transport([MODEL_REPLY])) as gemini:
                answer = gemini.post(url, content=body, headers=headers)
        elif self.path.endswith("/messages"):
            with anthropic_http_client([MODEL_REPLY]) as anthropic:
                answer = anthropic.post(url, content=body, headers=headers)
        else:
            with openai_http_client([MODEL_REPLY]) as openai:
                answer = openai.post(url, content=body, headers=headers)
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers["content-type"])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a block's output is what the test shows."""


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    server = ModelServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------ running blocks
def block_environment(server: CaptureServer, models: ModelServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in BEHAVIOUR_VARIABLES}
    env.update(models.environment(), POSTHOG_API_KEY="phc_test", POSTHOG_HOST=server.url)
    # `posthog-logging` and `python` as this interpreter's environment has them.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def write_page_files(block: Block, directory: Path) -> None:
    """What ``block`` finds where it runs, as in a clone of the repository: ``examples/``
    (``python examples/workflow.py`` runs), and the page's ``<!-- file: NAME -->`` blocks."""
    (directory / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    for other in ALL_BLOCKS:
        if other.page == block.page and "file" in other.markers:
            (directory / other.markers["file"]).write_text(other.code)


def expected_events(block: Block) -> Counter[str] | str | None:
    """The block's expectation: exact event counts, ``"events"`` (at least one), or
    None (no marker: exiting with 0 is all)."""
    text = block.markers.get("expect")
    if text is None or text == "events":
        return text
    counts: Counter[str] = Counter()
    if text == "nothing sent":
        return counts
    for item in text.split(","):
        match = _EXPECTED_EVENT.match(item.strip())
        assert match, f"{block.name}: unreadable expectation {item!r} (want '$ai_trace x1')"
        counts[match["event"]] = int(match["count"])
    return counts


def unique_events(server: CaptureServer) -> list[dict[str, Any]]:
    """The events that arrived, once per ``uuid`` as PostHog counts them (a batch
    retried after a slow answer may arrive twice)."""
    return list({event["uuid"]: event for event in server.events}.values())


def events_by_name(server: CaptureServer) -> Counter[str]:
    return Counter(event["event"] for event in unique_events(server))


@pytest.mark.slow  # each block runs in a subprocess
@pytest.mark.parametrize("block", [b for b in ALL_BLOCKS if b.runs], ids=lambda b: b.name)
def test_block_runs_as_written(
    block: Block, capture_server: CaptureServer, model_server: ModelServer, tmp_path: Path
) -> None:
    expected = expected_events(block)  # an unreadable marker fails before anything runs
    write_page_files(block, tmp_path)
    if block.language in PYTHON:
        # A file, not ``-c``: spawn and forkserver children import the main module by path.
        script = tmp_path / "block.py"
        script.write_text(block.script())
        command = [sys.executable, str(script)]
    else:
        command = ["bash", "-eo", "pipefail", "-c", block.script()]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=block_environment(capture_server, model_server),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{block.name} failed:\n{result.stdout}\n{result.stderr}"
    if isinstance(expected, Counter):
        if expected:
            capture_server.wait_for_events(sum(expected.values()), timeout=30)
        sent = events_by_name(capture_server)
        assert sent == expected, f"{block.name} sent {dict(sent)}:\n{result.stderr}"
    elif expected == "events":
        assert capture_server.events, f"{block.name} sent nothing:\n{result.stderr}"
    if "users" in block.markers:
        users = {event["distinct_id"] for event in unique_events(capture_server)}
        assert users == set(block.markers["users"].replace(",", " ").split()), block.name


# ------------------------------------------------------------------ the options listed
def test_readme_lists_every_handler_option_with_its_default() -> None:
    """The README's ``PosthogLogHandler(...)`` block names each parameter once, with the
    default the code has: an option added, renamed or changed shows here."""
    (listing,) = (
        node
        for block in ALL_BLOCKS
        if block.page.name == "README.md" and block.language in PYTHON
        for node in ast.walk(ast.parse(block.code))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "PosthogLogHandler"
    )
    listed = {
        keyword.arg: eval(
            compile(ast.Expression(keyword.value), "README", "eval"), {"logging": logging}
        )
        for keyword in listing.keywords
    }
    parameters = inspect.signature(PosthogLogHandler).parameters
    assert listed == {name: parameter.default for name, parameter in parameters.items()}


# ------------------------------------------------------------------ gunicorn
def page_file(page: str, name: str) -> str:
    """The ``<!-- file: name -->`` block of ``page``."""
    (block,) = (b for b in ALL_BLOCKS if b.name.startswith(page) and b.markers.get("file") == name)
    return block.code


@pytest.mark.slow
def test_gunicorn_recipe_delivers_on_graceful_stop(
    capture_server: CaptureServer, model_server: ModelServer, tmp_path: Path
) -> None:
    """docs/recipes.md's gunicorn.conf.py and app.py, served by real gunicorn: it starts
    (a logconfig_dict with handlers but no root made it exit at once), and its sync
    workers deliver every request's trace when the arbiter gets SIGTERM."""
    for name in ("gunicorn.conf.py", "app.py"):
        (tmp_path / name).write_text(page_file("docs/recipes.md", name))
    address = f"127.0.0.1:{free_port()}"
    gunicorn = Path(sys.executable).parent / "gunicorn"
    server = subprocess.Popen(
        [str(gunicorn), "-c", "gunicorn.conf.py", "-b", address, "-w", "2", "app:app"],
        cwd=tmp_path,
        env=block_environment(capture_server, model_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    answers: list[bytes] = []
    try:
        deadline = time.monotonic() + 60
        answers = [get(f"http://{address}/", deadline) for _ in range(6)]
    except OSError:
        pass  # gunicorn never served: its output below says why
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert answers == [b"ok"] * 6, f"{out}\n{err}"
    assert server.returncode == 0, err
    capture_server.wait_for_events(6, timeout=30)
    assert events_by_name(capture_server) == {"$ai_trace": 6}


# ------------------------------------------------------------------ links
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*#*\s*$")


def prose_lines(page: Path) -> Iterator[tuple[int, str]]:
    """The page's lines outside fenced blocks, with inline code spans blanked."""
    fence: str | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        opening = _FENCE.match(line)
        if fence is None and opening is not None:
            fence = opening["fence"]
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is None:
            yield number, re.sub(r"`[^`]*`", "``", line)


def anchors(page: Path) -> set[str]:
    """The ``#anchor`` of each heading of ``page``, as GitHub makes them."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    fence: str | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        opening = _FENCE.match(line)
        if opening is not None and (fence is None or line.strip() == fence):
            fence = None if fence is not None else opening["fence"]
            continue
        heading = _HEADING.match(line)
        if fence is not None or heading is None:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading["text"])
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for number, line in prose_lines(page):
        for link in _LINK.finditer(line):
            target = link["target"]
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            linked = (page.parent / path_part).resolve() if path_part else page
            relative = linked.relative_to(ROOT).as_posix() if linked.is_relative_to(ROOT) else ""
            if relative in PAGES_BEING_WRITTEN and not linked.exists():
                continue
            if not linked.exists():
                broken.append(f"{page.name}:{number}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.name}:{number}: {target} (no such heading)")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    assert broken_links(page) == []


def test_link_check_sees_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Two words\n\n[ok](#two-words) [bad](#three-words) [gone](other.md)\n")
    assert broken_links(page) == [
        "page.md:3: #three-words (no such heading)",
        "page.md:3: other.md (no such file)",
    ]
