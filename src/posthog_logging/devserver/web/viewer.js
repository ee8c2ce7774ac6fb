// The posthog-logging dev server's trace viewer: no build step, no dependencies.
//
// Two views, chosen by the address: "/" lists the traces (newest first, one
// page at a time, polled while events arrive); "/traces/<id>?span=<key>" shows
// one trace as a waterfall with the selected span's details.  Every element is
// built with createElement and textContent: nothing an event holds is ever
// parsed as HTML.
"use strict";

(function () {
  const POLL_MS = 1500;
  const POINT_KINDS = new Set(["$ai_feedback", "$ai_metric"]);
  const app = document.getElementById("app");
  const statusLine = document.getElementById("status");
  let pollTimer = null;
  let viewToken = 0; // a view's polls stop once another view is shown

  // ------------------------------------------------------------ helpers
  function el(tag, options, ...children) {
    const node = document.createElement(tag);
    const opts = options || {};
    if (opts.cls) node.className = opts.cls;
    if (opts.text !== undefined && opts.text !== null) node.textContent = String(opts.text);
    if (opts.href) node.setAttribute("href", opts.href);
    if (opts.title) node.setAttribute("title", opts.title);
    for (const [name, value] of Object.entries(opts.data || {})) {
      node.setAttribute("data-" + name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function isNumber(value) {
    return typeof value === "number" && Number.isFinite(value);
  }

  function formatDuration(seconds) {
    if (!isNumber(seconds)) return "–";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(2) + " s";
    return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s";
  }

  function formatTime(ms) {
    if (!isNumber(ms)) return "–";
    const date = new Date(ms);
    const pad = (n, width) => String(n).padStart(width || 2, "0");
    return (
      date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) +
      "." + pad(date.getMilliseconds(), 3)
    );
  }

  function formatTokens(input, output) {
    if (!isNumber(input) && !isNumber(output)) return "–";
    const show = (n) => (isNumber(n) ? n.toLocaleString("en-US") : "–");
    return show(input) + " → " + show(output);
  }

  function formatCost(cost) {
    return isNumber(cost) ? "$" + cost.toFixed(6).replace(/0+$/, "").replace(/\.$/, "") : "";
  }

  function kindLabel(kind) {
    return String(kind || "?").replace(/^\$ai_/, "");
  }

  function pretty(value) {
    if (typeof value === "string") return value;
    try {
      return JSON.stringify(value, null, 2);
    } catch (error) {
      return String(value);
    }
  }

  function setStatus(text) {
    statusLine.textContent = text;
  }

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok && response.status !== 404) throw new Error(url + ": HTTP " + response.status);
    return { status: response.status, body: await response.json() };
  }

  function schedule(token, poll) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(() => {
      if (token === viewToken) poll();
    }, POLL_MS);
  }

  function navigate(href) {
    history.pushState(null, "", href);
    route();
  }

  // Plain links everywhere (they can be opened in a new tab or pasted in a bug
  // report); a plain left click stays on the page.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-route]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    if (link.hasAttribute("data-span")) {
      history.pushState(null, "", link.getAttribute("href"));
      selectFromAddress();
    } else {
      navigate(link.getAttribute("href"));
    }
  });
  window.addEventListener("popstate", route);

  function route() {
    viewToken += 1;
    clearTimeout(pollTimer);
    const match = location.pathname.match(/^\/traces\/([^/]+)\/?$/);
    if (match) showTrace(decodeURIComponent(match[1]), viewToken);
    else showList(viewToken);
  }

  // ------------------------------------------------------------ trace list
  function showList(token) {
    const params = new URLSearchParams(location.search);
    const state = {
      offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0),
      limit: 50,
      q: params.get("q") || "",
      shown: null,
    };
    document.title = "Traces · posthog-logging dev server";
    const search = el("input", { cls: "search" });
    search.type = "search";
    search.placeholder = "Filter: name, user, session, model, trace id";
    search.value = state.q;
    const counts = el("span", { cls: "counts", data: { testid: "trace-count" } });
    const newer = el("button", { cls: "pager", text: "← Newer" });
    const older = el("button", { cls: "pager", text: "Older →" });
    const body = el("tbody");
    const table = el(
      "table",
      { cls: "traces" },
      el(
        "thead",
        null,
        el(
          "tr",
          null,
          ...["Trace", "Started", "Duration", "Tokens (in → out)", "Models", "User / session", ""].map(
            (title) => el("th", { text: title })
          )
        )
      ),
      body
    );
    app.replaceChildren(
      el("div", { cls: "toolbar" }, search, counts, el("span", { cls: "spacer" }), newer, older),
      table
    );

    function remember() {
      const query = new URLSearchParams();
      if (state.offset) query.set("offset", String(state.offset));
      if (state.q) query.set("q", state.q);
      const text = query.toString();
      history.replaceState(null, "", "/" + (text ? "?" + text : ""));
    }
    function reload() {
      state.shown = null;
      remember();
      poll();
    }
    search.addEventListener("input", () => {
      state.q = search.value;
      state.offset = 0;
      reload();
    });
    newer.addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - state.limit);
      reload();
    });
    older.addEventListener("click", () => {
      state.offset += state.limit;
      reload();
    });

    async function poll() {
      const query = new URLSearchParams({ offset: state.offset, limit: state.limit, q: state.q });
      try {
        const { body: page } = await getJson("/api/traces?" + query);
        if (token !== viewToken) return;
        const key = page.version + "|" + page.offset + "|" + query;
        if (key !== state.shown) {
          state.shown = key;
          renderRows(page);
        }
        setStatus("live · " + page.held.toLocaleString("en-US") + " traces held");
      } catch (error) {
        setStatus("cannot reach the dev server: " + error.message);
      }
      schedule(token, poll);
    }

    function renderRows(page) {
      const first = page.total ? page.offset + 1 : 0;
      const last = page.offset + page.traces.length;
      counts.textContent =
        first + "–" + last + " of " + page.total.toLocaleString("en-US") + " traces" +
        (page.dropped_traces ? " (" + page.dropped_traces + " oldest dropped)" : "");
      newer.disabled = page.offset === 0;
      older.disabled = last >= page.total;
      if (!page.traces.length) {
        body.replaceChildren(
          el(
            "tr",
            null,
            el("td", {
              cls: "empty",
              text: page.held
                ? "No trace matches."
                : "No traces yet. Point POSTHOG_HOST at " + location.origin + " and run your app.",
            })
          )
        );
        body.firstChild.firstChild.colSpan = 7;
        return;
      }
      body.replaceChildren(...page.traces.map(traceRow));
    }
    poll();
  }

  function traceRow(trace) {
    const href = "/traces/" + encodeURIComponent(trace.trace_id);
    const cost = formatCost(trace.cost_usd);
    return el(
      "tr",
      { cls: trace.error ? "trace-row has-error" : "trace-row", data: { "trace-id": trace.trace_id } },
      el(
        "td",
        { cls: "name" },
        el("a", { href: href, text: trace.name, data: { route: "" } }),
        el("div", { cls: "muted mono", text: trace.trace_id })
      ),
      el("td", { cls: "mono", text: formatTime(trace.start_ms) }),
      el("td", { cls: "num", text: formatDuration(trace.duration_s) }),
      el(
        "td",
        { cls: "num" },
        formatTokens(trace.input_tokens, trace.output_tokens),
        cost ? el("div", { cls: "muted", text: cost }) : null
      ),
      el("td", { text: trace.models.join(", ") || "–" }),
      el(
        "td",
        null,
        el("div", { text: trace.user || "–" }),
        trace.session ? el("div", { cls: "muted", text: trace.session }) : null
      ),
      el(
        "td",
        null,
        trace.error ? el("span", { cls: "badge error", text: "error" }) : null,
        trace.complete ? null : el("span", { cls: "badge open", text: "no root yet" })
      )
    );
  }

  // ------------------------------------------------------------ one trace
  let shownTrace = null; // {detail, rows by key}

  function showTrace(traceId, token) {
    shownTrace = null;
    app.replaceChildren(el("p", { cls: "empty", text: "Loading trace " + traceId + "…" }));
    let shownEvents = -1;
    async function poll() {
      try {
        const { status, body } = await getJson("/api/traces/" + encodeURIComponent(traceId));
        if (token !== viewToken) return;
        if (status === 404) {
          app.replaceChildren(
            el("p", { cls: "empty", text: "No trace " + traceId + " is held by this dev server. " },
              el("a", { href: "/", text: "All traces", data: { route: "" } }))
          );
        } else if (body.summary.events !== shownEvents) {
          shownEvents = body.summary.events;
          renderTrace(body);
        }
        setStatus("live");
      } catch (error) {
        setStatus("cannot reach the dev server: " + error.message);
      }
      schedule(token, poll);
    }
    poll();
  }

  function renderTrace(detail) {
    const summary = detail.summary;
    document.title = summary.name + " · posthog-logging dev server";
    const rows = detail.rows;
    // The axis spans the spans; a feedback or metric sent later sits at its right end.
    const timed = rows.filter(
      (row) => !POINT_KINDS.has(row.kind) && isNumber(row.start_ms) && isNumber(row.end_ms)
    );
    const t0 = timed.length ? Math.min(...timed.map((row) => row.start_ms)) : 0;
    const t1 = timed.length ? Math.max(...timed.map((row) => row.end_ms)) : 1;
    const span = Math.max(t1 - t0, 1);

    const facts = el(
      "dl",
      { cls: "facts" },
      ...fact("Trace id", summary.trace_id, "mono"),
      ...fact("Started", formatTime(summary.start_ms)),
      ...fact("Duration", formatDuration(summary.duration_s)),
      ...fact("Tokens", formatTokens(summary.input_tokens, summary.output_tokens)),
      ...(summary.cost_usd !== null ? fact("Cost", formatCost(summary.cost_usd)) : []),
      ...fact("Models", summary.models.join(", ") || "–"),
      ...fact("User", summary.user || "–"),
      ...fact("Session", summary.session || "–")
    );
    const heading = el(
      "div",
      { cls: "trace-head" },
      el("a", { href: "/", text: "← All traces", data: { route: "" } }),
      el("h1", { text: summary.name }, summary.error ? el("span", { cls: "badge error", text: "error" }) : null),
      facts
    );

    const axis = el("div", { cls: "axis" });
    for (let i = 0; i <= 4; i += 1) {
      const tick = el("span", { cls: "tick", text: formatDuration((span * i) / 4 / 1000) });
      tick.style.left = i * 25 + "%";
      axis.append(tick);
    }
    const waterfall = el(
      "div",
      { cls: "waterfall", data: { testid: "waterfall" } },
      el("div", { cls: "wf-head" }, el("span", { cls: "wf-name", text: "Span" }), el("span", { cls: "wf-bars" }, axis))
    );
    const byKey = new Map();
    for (const row of rows) {
      byKey.set(row.key, row);
      waterfall.append(waterfallRow(detail.trace_id, row, t0, span));
    }
    const details = el("section", { cls: "details", data: { testid: "details" } });
    app.replaceChildren(heading, el("div", { cls: "trace-body" }, waterfall, details));
    shownTrace = { detail: detail, byKey: byKey, details: details, waterfall: waterfall };
    selectFromAddress();
  }

  function fact(name, value, cls) {
    return [el("dt", { text: name }), el("dd", { cls: cls || "", text: value })];
  }

  function spanHref(traceId, key) {
    return "/traces/" + encodeURIComponent(traceId) + "?span=" + encodeURIComponent(key);
  }

  function waterfallRow(traceId, row, t0, span) {
    const kind = kindLabel(row.kind);
    const name = el(
      "span",
      { cls: "wf-name" },
      el("span", { cls: "kind kind-" + kind, text: kind }),
      el("span", { cls: "label", text: row.name }),
      row.error ? el("span", { cls: "badge error", text: "error", title: row.error_message || "error" }) : null
    );
    name.style.paddingLeft = 8 + row.depth * 16 + "px";
    const bars = el("span", { cls: "wf-bars" });
    if (isNumber(row.start_ms) && isNumber(row.end_ms)) {
      const point = row.end_ms - row.start_ms <= 0;
      const bar = el("span", { cls: (point ? "marker " : "bar ") + "bar-" + kind + (row.error ? " bar-error" : "") });
      const left = Math.min(Math.max((row.start_ms - t0) / span, 0), 1);
      bar.style.left = left * 100 + "%";
      if (!point) bar.style.width = Math.max(((row.end_ms - row.start_ms) / span) * 100, 0.4) + "%";
      bars.append(bar);
    }
    const duration = el("span", {
      cls: "wf-duration",
      text: POINT_KINDS.has(row.kind) ? "" : formatDuration(row.latency_s),
    });
    return el(
      "a",
      {
        cls: "wf-row" + (row.error ? " has-error" : ""),
        href: spanHref(traceId, row.key),
        data: { route: "", span: row.key, kind: kind, depth: row.depth },
      },
      name,
      bars,
      duration
    );
  }

  function selectFromAddress() {
    if (!shownTrace) return;
    const wanted = new URLSearchParams(location.search).get("span");
    const rows = shownTrace.detail.rows;
    let row = wanted === null ? null : shownTrace.byKey.get(wanted);
    if (!row && wanted !== null) {
      row = rows.find((candidate) => candidate.node_id === wanted || candidate.uuid === wanted) || null;
    }
    if (!row) row = rows[0] || null;
    for (const link of shownTrace.waterfall.querySelectorAll(".wf-row")) {
      const selected = row !== null && link.getAttribute("data-span") === row.key;
      link.classList.toggle("selected", selected);
      link.setAttribute("aria-current", selected ? "true" : "false");
    }
    shownTrace.details.replaceChildren(...(row ? spanDetails(shownTrace.detail.trace_id, row) : []));
  }

  // ------------------------------------------------------------ span details
  const SHOWN_APART = new Set([
    "$ai_input", "$ai_output_choices", "$ai_output", "$ai_tools", "$ai_model_parameters",
    "$ai_error", "$ai_input_state", "$ai_output_state", "$ai_model", "$ai_provider",
    "$ai_span_name", "$ai_trace_id", "$ai_span_id", "$ai_generation_id", "$ai_parent_id",
    "$ai_is_error", "$ai_latency", "error_message",
  ]);
  const USAGE = [
    "$ai_input_tokens", "$ai_output_tokens", "$ai_cache_read_input_tokens",
    "$ai_cache_creation_input_tokens", "$ai_reasoning_tokens", "$ai_input_cost_usd",
    "$ai_output_cost_usd", "$ai_total_cost_usd", "$ai_input_token_price",
    "$ai_output_token_price", "$ai_cache_read_token_price", "$ai_cache_write_token_price",
    "$ai_cache_reporting_exclusive",
  ];
  const PARAMETERS = ["$ai_temperature", "$ai_max_tokens", "$ai_stream", "$ai_stop_reason", "$ai_time_to_first_token"];

  function section(title, testid, ...content) {
    return el("section", { cls: "block", data: { testid: testid } }, el("h3", { text: title }), ...content);
  }

  function keyValues(entries) {
    return el(
      "table",
      { cls: "kv" },
      el("tbody", null, ...entries.map(([key, value]) =>
        el("tr", null, el("th", { text: key }), el("td", { cls: "mono", text: typeof value === "object" && value !== null ? JSON.stringify(value) : String(value) }))))
    );
  }

  function spanDetails(traceId, row) {
    const event = row.event || {};
    const props = event.properties || {};
    const out = [];
    const kind = kindLabel(row.kind);
    const address = location.origin + spanHref(traceId, row.key);
    out.push(
      el(
        "header",
        { cls: "span-head" },
        el("h2", null, el("span", { cls: "kind kind-" + kind, text: kind }), " ", el("span", { text: row.name })),
        el(
          "div",
          { cls: "muted" },
          formatTime(row.start_ms) + " · " + formatDuration(row.latency_s) +
            (props.$ai_model ? " · " + props.$ai_model : "") +
            (props.$ai_provider ? " (" + props.$ai_provider + ")" : "")
        ),
        el("a", { cls: "permalink mono", href: address, text: address, title: "This span's own address" })
      )
    );
    if (row.error || props.$ai_error !== undefined) {
      out.push(
        section(
          "Error",
          "error",
          el("pre", { cls: "error-text", text: row.error_message || pretty(props.$ai_error) }),
          props.$ai_error !== undefined && typeof props.$ai_error !== "string"
            ? el("pre", { text: pretty(props.$ai_error) })
            : null
        )
      );
    }
    if (props.$ai_input !== undefined) out.push(section("Input messages", "input", messages(props.$ai_input)));
    if (props.$ai_output_choices !== undefined) out.push(section("Output", "output", messages(props.$ai_output_choices)));
    else if (props.$ai_output !== undefined) out.push(section("Output", "output", messages(props.$ai_output)));
    const calls = toolCalls(props.$ai_output_choices !== undefined ? props.$ai_output_choices : props.$ai_output);
    if (calls.length) {
      out.push(
        section("Tool calls", "tool-calls", ...calls.map((call) =>
          el("div", { cls: "tool-call" }, el("strong", { text: call.name }), el("pre", { text: pretty(call.args) }))))
      );
    }
    if (props.$ai_input_state !== undefined) out.push(section("Input", "input-state", el("pre", { text: pretty(props.$ai_input_state) })));
    if (props.$ai_output_state !== undefined) out.push(section("Output", "output-state", el("pre", { text: pretty(props.$ai_output_state) })));
    if (Array.isArray(props.$ai_tools) && props.$ai_tools.length) {
      out.push(section("Tool definitions", "tools", ...props.$ai_tools.map(toolDefinition)));
    } else if (props.$ai_tools !== undefined) {
      out.push(section("Tool definitions", "tools", el("pre", { text: pretty(props.$ai_tools) })));
    }
    const parameters = [];
    if (props.$ai_model_parameters && typeof props.$ai_model_parameters === "object") {
      for (const [key, value] of Object.entries(props.$ai_model_parameters)) parameters.push([key, value]);
    }
    for (const key of PARAMETERS) if (props[key] !== undefined) parameters.push([key, props[key]]);
    if (parameters.length) out.push(section("Model parameters", "parameters", keyValues(parameters)));
    const usage = USAGE.filter((key) => props[key] !== undefined).map((key) => [key, props[key]]);
    if (usage.length) out.push(section("Tokens and costs (as sent)", "usage", keyValues(usage)));
    const rest = Object.entries(props).filter(
      ([key]) => !SHOWN_APART.has(key) && !USAGE.includes(key) && !PARAMETERS.includes(key)
    );
    if (rest.length) out.push(section("Other properties", "properties", keyValues(rest)));
    const raw = el("details", { cls: "raw" }, el("summary", { text: "Raw event JSON" }), el("pre", { text: pretty(event) }));
    out.push(section("Event", "raw", raw));
    return out;
  }

  function messages(value) {
    if (!Array.isArray(value)) return el("pre", { cls: "message-text", text: pretty(value) });
    return el("div", { cls: "messages" }, ...value.map((message) => {
      if (!message || typeof message !== "object") return el("pre", { cls: "message-text", text: pretty(message) });
      const role = message.role || "message";
      return el(
        "div",
        { cls: "message role-" + String(role).replace(/[^a-z]/gi, ""), data: { role: role } },
        el("div", { cls: "role", text: role }),
        ...contentParts(message.content !== undefined ? message.content : message)
      );
    }));
  }

  function contentParts(content) {
    if (typeof content === "string") return [el("pre", { cls: "message-text", text: content })];
    if (!Array.isArray(content)) return [el("pre", { cls: "message-text", text: pretty(content) })];
    return content.map((part) => {
      if (part && typeof part === "object" && typeof part.text === "string") {
        return el("pre", { cls: "message-text", text: part.text });
      }
      const call = asToolCall(part);
      if (call) return el("div", { cls: "tool-call" }, el("strong", { text: "→ " + call.name }), el("pre", { text: pretty(call.args) }));
      return el("pre", { cls: "message-text", text: pretty(part) });
    });
  }

  function asToolCall(part) {
    if (!part || typeof part !== "object") return null;
    const type = String(part.type || "");
    if (!/tool|function/i.test(type) && !part.function) return null;
    if (/result/i.test(type)) return null;
    const fn = part.function && typeof part.function === "object" ? part.function : {};
    const name = fn.name || part.name || part.toolName || "tool";
    const args = fn.arguments !== undefined ? fn.arguments : part.arguments !== undefined ? part.arguments : part.args !== undefined ? part.args : part.input;
    return { name: String(name), args: args === undefined ? {} : args };
  }

  function toolCalls(output) {
    const calls = [];
    const visit = (message) => {
      if (!message || typeof message !== "object") return;
      if (Array.isArray(message.tool_calls)) for (const call of message.tool_calls) { const found = asToolCall(call); if (found) calls.push(found); }
      if (Array.isArray(message.content)) for (const part of message.content) { const found = asToolCall(part); if (found) calls.push(found); }
    };
    if (Array.isArray(output)) output.forEach(visit);
    else visit(output);
    return calls;
  }

  function toolDefinition(tool) {
    if (!tool || typeof tool !== "object") return el("pre", { text: pretty(tool) });
    const fn = tool.function && typeof tool.function === "object" ? tool.function : tool;
    return el(
      "div",
      { cls: "tool-def" },
      el("strong", { text: fn.name || "tool" }),
      fn.description ? el("div", { cls: "muted", text: fn.description }) : null,
      el("pre", { text: pretty(fn.parameters !== undefined ? fn.parameters : fn.input_schema !== undefined ? fn.input_schema : tool) })
    );
  }

  route();
})();
