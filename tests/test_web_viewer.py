"""The dev server's trace viewer, in a real browser: headless Chromium through Selenium.

The traces go through the real handler to the dev server the command runs
(:func:`posthog_logging.devserver.dev_server`), and the page is read as a
user reads it: list, trace, waterfall rows, a generation's messages and
tokens, a failed span, a span's own address, and a prompt holding ``<script>``.
Chromium comes from the system (Debian's ``chromium`` and ``chromium-driver``,
installed by ``.ci/run``); nothing downloads a browser.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from posthog_logging import PosthogLogHandler
from posthog_logging.devserver import CaptureServer, TraceStore, dev_server
from posthog_logging.transport import AI_BATCH_PATH

from .conftest import DUMMY_KEY, span_logger
from .helpers import run_example

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: Where the run's screenshot is kept (git-ignored); docs/dev-server.md names it.
SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "dev-server.png"
#: How long the page may take to show something (generous: the machine may be busy).
WAIT = 30

TRACE = "c0ffee" + "0" * 26
ROOT, PLAN, TOOL, RETRY, ANSWER = (f"{n:016x}" for n in (1, 2, 3, 4, 5))
PROMPT = "Weather in Paris? <script>window.__injected = 1</script><b>bold?</b>"
T = TypeVar("T")
DASH = "\N{EN DASH}"  # between the first and last trace shown


def _chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium = _chromium()
    if chromium is None or not Path(CHROMEDRIVER).exists():
        pytest.skip(
            "no Chromium on this machine (apt-get install chromium chromium-driver; .ci/run does)"
        )
    profile = tempfile.mkdtemp(prefix="posthog-logging-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1440,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def viewer() -> Iterator[CaptureServer]:
    """The dev server as the command builds it (store, printer, viewer), on a free port."""
    server, _printer = dev_server(io.StringIO())
    with server:
        yield server


def wait_for(driver: WebDriver, find: Callable[[WebDriver], T | None]) -> T:
    """``find``'s first truthy answer, polled for up to :data:`WAIT` seconds."""
    wait = WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,))
    result = wait.until(lambda d: find(d) or None)
    assert result is not None
    return result


def at(seconds: float) -> str:
    return f"2025-01-01T00:00:{seconds:06.3f}Z"


def agent_spans() -> list[dict[str, Any]]:
    """An agent run of four steps: two generations, a failed tool call and a retried one."""

    def span(span_id: str, name: str, kind: str, start: float, end: float, **more: Any) -> Any:
        return {
            "id": span_id,
            "traceId": TRACE,
            "parentSpanId": ROOT,
            "name": name,
            "type": kind,
            "startTime": at(start),
            "endTime": at(end),
            "metadata": {"userId": "user-7", "sessionId": "session-9"},
            **more,
        }

    messages = [
        {"role": "system", "content": "You answer weather questions."},
        {"role": "user", "content": PROMPT},
    ]
    weather_tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    return [
        span(
            PLAN,
            "llm: plan",
            "model_generation",
            0.1,
            1.6,
            input=messages,
            output={"text": "Let me look that up."},
            attributes={
                "model": "gpt-4o-mini",
                "provider": "openai",
                "usage": {"inputTokens": 120, "outputTokens": 45},
                "parameters": {"temperature": 0.2},
                "tools": [weather_tool],
            },
        ),
        span(
            TOOL,
            "tool: get_weather",
            "tool_call",
            1.7,
            2.2,
            input={"city": "Atlantis"},
            errorInfo={"message": "no weather station in 'Atlantis'"},
        ),
        span(
            RETRY,
            "tool: get_weather",
            "tool_call",
            2.25,
            2.6,
            input={"city": "Paris"},
            output={"tempC": 22},
        ),
        span(
            ANSWER,
            "llm: answer",
            "model_generation",
            2.7,
            4.8,
            input=[*messages, {"role": "tool", "content": '{"tempC": 22}'}],
            output={"text": "It is 22 °C in Paris."},
            attributes={
                "model": "gpt-4o",
                "provider": "openai",
                "usage": {"inputTokens": 200, "outputTokens": 30},
            },
        ),
        {
            "id": ROOT,
            "traceId": TRACE,
            "name": "agent run: weather",
            "type": "agent_run",
            "isRootSpan": True,
            "startTime": at(0),
            "endTime": at(5),
            "input": PROMPT,
            "output": "It is 22 °C in Paris.",
            "metadata": {"userId": "user-7", "sessionId": "session-9"},
        },
    ]


def log_agent_run(server: CaptureServer) -> None:
    """The agent run, through the real handler to ``server``, delivered."""
    handler = PosthogLogHandler(api_key=DUMMY_KEY, host=server.url)
    log = span_logger("test.web_viewer", handler)
    try:
        for span in agent_spans():
            log.info("span", extra={"span": span})
        feedback = {"traceId": TRACE, "value": 1, "feedbackType": "thumbs", "comment": "great"}
        log.info("feedback", extra={"feedback": feedback})
        handler.flush()
    finally:
        handler.close()
        logging.getLogger("test.web_viewer").handlers.clear()
    assert len(server.wait_for_events(6)) == 6


def rows(driver: WebDriver) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, ".waterfall .wf-row")


def row_cells(row: WebElement) -> tuple[str, str, int]:
    kind = row.find_element(By.CSS_SELECTOR, ".kind").text
    label = row.find_element(By.CSS_SELECTOR, ".label").text
    return kind, label, int(row.get_attribute("data-depth") or -1)


def details_text(driver: WebDriver, testid: str) -> str:
    found = driver.find_elements(By.CSS_SELECTOR, f'.details [data-testid="{testid}"]')
    return found[0].text if found else ""


@pytest.mark.slow  # a browser or an example in a subprocess
def test_the_viewer_shows_an_agent_run_in_chromium(
    browser: WebDriver, viewer: CaptureServer
) -> None:
    log_agent_run(viewer)

    # The list: the trace, its totals and its error flag.
    browser.get(viewer.url + "/")
    link = wait_for(browser, lambda d: d.find_elements(By.LINK_TEXT, "agent run: weather"))[0]
    listed = browser.find_element(By.CSS_SELECTOR, f'tr[data-trace-id="{TRACE}"]')
    assert "has-error" in (listed.get_attribute("class") or "")
    assert "320 → 75" in listed.text  # both generations' tokens
    assert "gpt-4o, gpt-4o-mini" in listed.text
    assert "user-7" in listed.text and "session-9" in listed.text

    # The trace: the waterfall rows in tree order, each with its type.
    link.click()
    wait_for(browser, lambda d: len(rows(d)) == 6)
    assert [row_cells(row) for row in rows(browser)] == [
        ("trace", "agent run: weather", 0),
        ("generation", "llm: plan", 1),
        ("span", "tool: get_weather", 1),
        ("span", "tool: get_weather", 1),
        ("generation", "llm: answer", 1),
        ("feedback", "feedback: great", 1),
    ]
    bars = browser.find_elements(By.CSS_SELECTOR, ".waterfall .wf-row .bar")
    lefts = [float(bar.value_of_css_property("left").removesuffix("px")) for bar in bars]
    assert lefts == sorted(lefts) and lefts[0] < lefts[-1]  # on one time axis, in order

    # The failed tool call is marked, and its error shows when it is selected.
    failed = rows(browser)[2]
    assert "has-error" in (failed.get_attribute("class") or "")
    assert failed.find_element(By.CSS_SELECTOR, ".badge.error").text == "error"
    assert [("has-error" in (row.get_attribute("class") or "")) for row in rows(browser)] == [
        False,
        False,
        True,
        False,
        False,
        False,
    ]

    # A generation: its messages (the <script> shown as text) and its tokens.
    rows(browser)[1].click()
    messages = wait_for(browser, lambda d: details_text(d, "input"))
    assert "You answer weather questions." in messages
    assert PROMPT in messages
    assert browser.execute_script("return window.__injected === undefined")
    assert browser.find_elements(By.CSS_SELECTOR, "#app script, #app b") == []
    usage = details_text(browser, "usage")
    assert "$ai_input_tokens 120" in usage and "$ai_output_tokens 45" in usage
    assert "get_weather" in details_text(browser, "tools")
    assert "temperature 0.2" in details_text(browser, "parameters")
    assert "Let me look that up." in details_text(browser, "output")
    assert f"/traces/{TRACE}?span={PLAN}" in browser.current_url

    # A span's own address opens the trace with that span selected and shown.
    browser.get(f"{viewer.url}/traces/{TRACE}?span={TOOL}")
    wait_for(browser, lambda d: details_text(d, "error"))
    selected = browser.find_elements(By.CSS_SELECTOR, ".wf-row.selected")
    assert [row.get_attribute("data-span") for row in selected] == [TOOL]
    assert "no weather station in 'Atlantis'" in details_text(browser, "error")
    assert '"city": "Atlantis"' in details_text(browser, "input-state")

    browser.get(f"{viewer.url}/traces/{TRACE}?span={PLAN}")
    wait_for(browser, lambda d: details_text(d, "usage"))
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))


@pytest.mark.slow  # a browser or an example in a subprocess
def test_the_main_example_prints_the_address_of_its_run(
    browser: WebDriver, viewer: CaptureServer
) -> None:
    printed = run_example(viewer, "agent_run.py").stdout.splitlines()
    hint = "Read this run in the dev server's trace viewer: "
    (address,) = [line.removeprefix(hint) for line in printed if line.startswith(hint)]
    assert address.startswith(f"{viewer.url}/traces/")
    browser.get(address)
    wait_for(browser, lambda d: len(rows(d)) == 5)
    assert [
        row_cells(row)[1]
        for row in rows(browser)
        if "has-error" in (row.get_attribute("class") or "")
    ] == ["tool: get_weather"]
    assert "agent run: weather-agent" in browser.find_element(By.TAG_NAME, "h1").text


def post_batch(server: CaptureServer, events: list[dict[str, Any]]) -> None:
    body = json.dumps({"api_key": DUMMY_KEY, "batch": events}).encode()
    request = urllib.request.Request(server.url + AI_BATCH_PATH, data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def trace_list(server: CaptureServer, query: str = "") -> Any:
    """``/api/traces?<query>`` (the server holds a batch before it answers it)."""
    with urllib.request.urlopen(f"{server.url}/api/traces?{query}", timeout=WAIT) as response:
        return json.load(response)


def many_traces(count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        yield {
            "event": "$ai_trace",
            "distinct_id": f"user-{n % 7}",
            "timestamp": f"2025-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
            "uuid": f"00000000-0000-4000-8000-{n:012d}",
            "properties": {"$ai_trace_id": f"{n:032x}", "$ai_span_name": f"run {n}"},
        }


@pytest.mark.slow  # a browser or an example in a subprocess
def test_the_viewer_lists_5000_traces_a_page_at_a_time(
    browser: WebDriver, viewer: CaptureServer
) -> None:
    events = list(many_traces(5000))
    for first in range(0, len(events), 1000):
        post_batch(viewer, events[first : first + 1000])

    page = trace_list(viewer)
    assert (page["held"], page["total"], len(page["traces"])) == (5000, 5000, 50)
    assert [trace["name"] for trace in page["traces"][:2]] == ["run 4999", "run 4998"]

    browser.get(viewer.url + "/")
    counts = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".counts"))[0]
    wait_for(browser, lambda d: "of 5,000 traces" in counts.text)
    assert counts.text == f"1{DASH}50 of 5,000 traces"
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.trace-row")) == 50
    browser.find_element(By.XPATH, "//button[contains(., 'Older')]").click()
    wait_for(browser, lambda d: counts.text.startswith(f"51{DASH}100"))
    first_row = browser.find_elements(By.CSS_SELECTOR, "tr.trace-row")[0]
    assert "run 4949" in first_row.text
    assert "offset=50" in browser.current_url  # the page's own address

    search = browser.find_element(By.CSS_SELECTOR, "input.search")
    search.send_keys("run 123")  # run 123, run 1230 .. run 1239
    wait_for(browser, lambda d: counts.text == f"1{DASH}11 of 11 traces")


class SlowStore(TraceStore):
    """A store that takes its time (a busy machine): each add waits for ``go``."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def add(self, events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        self.go.wait(WAIT)
        return super().add(events)


def test_an_answered_batch_is_in_the_viewer_at_once() -> None:
    # A flushed handler has its answers: the viewer must show those events now, however
    # long the server takes to hold them (the 5,000-trace test read 4,000 under load).
    store = SlowStore()
    server, _ = dev_server(io.StringIO(), store=store)
    with server:
        threading.Timer(0.5, store.go.set).start()
        post_batch(server, list(many_traces(3)))
        page = trace_list(server)
    assert (page["held"], page["total"]) == (3, 3)


def test_the_store_bounds_what_the_viewer_holds() -> None:
    store = TraceStore(max_traces=100)
    server, _ = dev_server(io.StringIO(), store=store)
    with server:
        post_batch(server, list(many_traces(250)))
        page = trace_list(server, "limit=500")
    assert (page["held"], page["dropped_traces"], len(page["traces"])) == (100, 150, 100)
    assert page["limit"] == 200  # asked for 500: a page is never larger
    assert page["traces"][-1]["name"] == "run 150"  # the oldest 150 went
