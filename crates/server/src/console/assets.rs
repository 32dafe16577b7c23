//! The console's stylesheet and script, embedded in the binary.

/// Light and dark themes (the system's choice unless the user picked one),
/// state colours that also differ in shape (bold, borders) for readers who
/// do not see colour.
pub const CSS: &str = r##"
:root { --bg:#fafafa; --fg:#1d1f21; --muted:#5f6368; --line:#d9dce0; --card:#fff;
  --ok:#1e7b34; --bad:#b3261e; --warn:#9a6700; --busy:#1a5fb4; --off:#5f6368; --link:#1a5fb4; }
:root[data-theme=dark] { --bg:#16181b; --fg:#e6e6e6; --muted:#a0a4a8; --line:#33373c; --card:#1f2226;
  --ok:#5cc97b; --bad:#ff8a80; --warn:#e5b454; --busy:#8ab4f8; --off:#a0a4a8; --link:#8ab4f8; }
@media (prefers-color-scheme: dark) { :root:not([data-theme=light]) { --bg:#16181b; --fg:#e6e6e6;
  --muted:#a0a4a8; --line:#33373c; --card:#1f2226; --ok:#5cc97b; --bad:#ff8a80; --warn:#e5b454;
  --busy:#8ab4f8; --off:#a0a4a8; --link:#8ab4f8; } }
:root { color-scheme: light; } :root[data-theme=dark] { color-scheme: dark; }
@media (prefers-color-scheme: dark) { :root:not([data-theme=light]) { color-scheme: dark; } }
* { box-sizing: border-box; }
input, select { font:inherit; background:var(--bg); color:var(--fg); border:1px solid var(--line); border-radius:4px; padding:.2em .4em; }
body { margin:0; font: 14px/1.45 system-ui, sans-serif; background:var(--bg); color:var(--fg); }
a { color:var(--link); }
header nav { display:flex; gap:1em; align-items:center; padding:.5em 1em; border-bottom:1px solid var(--line);
  background:var(--card); flex-wrap:wrap; }
header .brand { font-weight:700; text-decoration:none; }
header .find { flex:1; min-width:12em; }
header .find input { width:100%; padding:.3em .5em; background:var(--bg); color:var(--fg);
  border:1px solid var(--line); border-radius:4px; }
.who { color:var(--muted); }
button { font:inherit; padding:.25em .7em; border:1px solid var(--line); border-radius:4px;
  background:var(--card); color:var(--fg); cursor:pointer; }
button:focus-visible, a:focus-visible, input:focus-visible, select:focus-visible { outline:2px solid var(--link); outline-offset:1px; }
button.op { margin:.1em; }
button.op[disabled] { opacity:.5; cursor:progress; }
main { padding:1em; max-width:90em; }
h1 { font-size:1.4em; margin:.2em 0 .6em; } h2 { font-size:1.1em; margin:1.2em 0 .4em; }
.cards { display:flex; gap:1em; flex-wrap:wrap; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:.6em 1em; min-width:11em; }
.card b { font-size:1.6em; display:block; }
table { border-collapse:collapse; background:var(--card); }
th, td { border:1px solid var(--line); padding:.25em .6em; text-align:left; vertical-align:top; }
th { font-weight:600; }
.st { font-weight:600; padding:0 .3em; border-radius:3px; white-space:nowrap; }
.st-online, .st-running, .st-connected { color:var(--ok); }
.st-faulted, .st-exited, .st-disconnected, .st-unreachable { color:var(--bad); border:1px solid var(--bad); }
.st-partial, .st-stale, .st-concurrency, .st-connecting { color:var(--warn); border:1px dashed var(--warn); }
.st-starting, .st-stopping, .st-going-online, .st-going-offline, .st-connecting { color:var(--busy); font-style:italic; }
.st-offline, .st-unknown { color:var(--off); }
.st-completed, .st-allowed { color:var(--ok); }
.st-refused, .st-denied, .st-failed, .st-timed-out { color:var(--bad); border:1px solid var(--bad); }
.st-accepted, .st-pending { color:var(--busy); font-style:italic; }
.frozen { color:var(--busy); } .disabled { color:var(--bad); }
.st-critical { color:var(--bad); border:1px solid var(--bad); } .st-warning { color:var(--warn); border:1px dashed var(--warn); }
.st-info { color:var(--busy); } .st-open { color:var(--bad); } .st-sent { color:var(--ok); }
.st-dropped, .st-suppressed { color:var(--warn); }
nav .count { background:var(--bad); color:#fff; border-radius:1em; padding:0 .45em; font-size:.85em; font-weight:600; }
svg.chart text { fill:var(--fg); font-size:12px; } svg.chart .scale { fill:var(--muted); font-size:10px; }
svg.chart .track { fill:var(--line); } svg.chart .good, svg.chart .up { fill:var(--ok); }
svg.chart .fair, svg.chart .planned { fill:var(--warn); } svg.chart .poor, svg.chart .down { fill:var(--bad); }
svg.chart .unknown { fill:var(--off); } svg.timeline { vertical-align:middle; border:1px solid var(--line); }
.pct.poor { color:var(--bad); font-weight:600; } .pct.fair { color:var(--warn); font-weight:600; }
form#period label { white-space:nowrap; }
.flapping { color:var(--warn); font-weight:600; white-space:nowrap; } .acked { white-space:nowrap; }
.muted { color:var(--muted); }
.banner { background:var(--bad); color:#fff; padding:.5em 1em; font-weight:600; }
.picker input { min-width:18em; } .picker .step { margin-left:.6em; }
.livestate { font-size:.85em; color:var(--muted); padding:0 1em; }
.livestate.lost { color:var(--bad); font-weight:600; }
.stale td .st { opacity:.55; }
.result { margin:.5em 0; padding:.4em .8em; border-left:4px solid var(--line); background:var(--card); }
.result.ok { border-color:var(--ok); } .result.bad { border-color:var(--bad); } .result.busy { border-color:var(--busy); }
#cmdlog { margin:1em; padding:.5em 1em; border:1px solid var(--line); border-radius:6px; background:var(--card); max-width:90em; }
#cmdlog h2 { margin:0; font-size:1em; } #cmdlog ol { font-family: ui-monospace, monospace; margin:.3em 0; }
#cmdlog:not(.used) { display:none; }
.pager a { margin-right:1em; }
.graph { font-family: ui-monospace, monospace; white-space:pre; background:var(--card); border:1px solid var(--line); padding:.5em 1em; display:inline-block; }
form.login { max-width:22em; margin:4em auto; background:var(--card); border:1px solid var(--line); border-radius:6px; padding:1.5em; }
form.login label { display:block; margin:.6em 0 .2em; }
form.login input { width:100%; padding:.4em; background:var(--bg); color:var(--fg); border:1px solid var(--line); border-radius:4px; }
form.login button { margin-top:1em; width:100%; }
.error { color:var(--bad); font-weight:600; }
.withheld, .notlive { color:var(--muted); font-size:.9em; }
.notlive { color:var(--warn); }
.card .count { white-space:nowrap; }
code { font-family: ui-monospace, monospace; font-size:.95em; }
dialog { background:var(--card); color:var(--fg); border:1px solid var(--line); border-radius:6px; max-width:36em; }
dialog::backdrop { background:rgba(0,0,0,.45); }
dialog .buttons { text-align:right; margin-bottom:0; }
button.danger { border-color:var(--bad); color:var(--bad); font-weight:600; }
table.settings td:first-child { white-space:nowrap; font-weight:600; }
td > time { white-space:nowrap; }
@media (max-width: 700px) { main { padding:.5em; } th, td { padding:.2em .3em; } }
.tag { display:inline-block; font-family: ui-monospace, monospace; font-size:.9em; padding:0 .4em;
  border:1px solid var(--line); border-radius:999px; background:var(--bg); white-space:nowrap; }
ul.taglist { list-style:none; padding:0; margin:.2em 0 .5em; display:flex; gap:.5em; flex-wrap:wrap; }
ul.taglist button { padding:0 .4em; }
details.help { margin:1em 0; } details.help summary { cursor:pointer; }
"##;

/// Live updates, operations with progress, the command log, the theme.
/// No framework: the server renders every page; on a change the page's
/// main part is fetched again (`?fragment=1`) and replaced.
pub const JS: &str = r##"
"use strict";
(function () {
  const root = document.documentElement;
  const saved = localStorage.getItem("haven-theme");
  if (saved) root.dataset.theme = saved;
  const $ = (sel, el) => (el || document).querySelector(sel);

  function ready(f) { if (document.readyState !== "loading") f(); else document.addEventListener("DOMContentLoaded", f); }

  ready(function () {
    const theme = $("#theme");
    if (theme) theme.addEventListener("click", function () {
      const dark = root.dataset.theme === "dark" ||
        (!root.dataset.theme && matchMedia("(prefers-color-scheme: dark)").matches);
      root.dataset.theme = dark ? "light" : "dark";
      localStorage.setItem("haven-theme", root.dataset.theme);
    });
    const logout = $("#logout");
    if (logout) logout.addEventListener("click", async function () {
      await fetch("/api/v1/logout", { method: "POST", headers: { "x-haven-csrf": "1" } });
      location.href = "/login";
    });
    showLog();
    document.addEventListener("click", onClick);
    live();
  });

  // Operations -----------------------------------------------------------
  async function onClick(ev) {
    const button = ev.target.closest("button.op");
    if (!button) return;
    const op = JSON.parse(button.dataset.op);
    const pick = button.dataset.pick && document.getElementById(button.dataset.pick);
    let cli = button.dataset.cli;
    if (pick) {
      if (pick.value) { op.to = pick.value; cli += " --to " + shellWord(pick.value); }
    }
    if (button.dataset.confirm && !await ask(button.dataset.confirm + (op.to ? " (to " + op.to + ")" : ""), cli, button)) return;
    const out = resultBox(button);
    out.className = "result busy";
    out.textContent = "⟳ " + cli + " — running…";
    button.disabled = true;
    const started = Date.now();
    const tick = setInterval(function () {
      out.textContent = "⟳ " + cli + " — running, " + Math.round((Date.now() - started) / 1000) + " s";
    }, 1000);
    try {
      op.wait = true; op.timeout_secs = 300;
      const r = await fetch("/api/v1/clusters/" + encodeURIComponent(button.dataset.cluster) + "/operations", {
        method: "POST",
        headers: { "content-type": "application/json", "x-haven-csrf": "1" },
        body: JSON.stringify(op),
      });
      const body = await r.json().catch(() => ({}));
      const outcome = body.outcome || (body.error && body.error.code) || ("HTTP " + r.status);
      const reason = body.reason || (body.error && body.error.message) || "";
      out.className = "result " + (outcome === "completed" ? "ok" : "bad");
      out.textContent = (outcome === "completed" ? "✔ " : "✘ ") + cli + " — " + outcome + (reason ? ": " + reason : "");
      log(cli, outcome);
      refresh();
    } catch (e) {
      out.className = "result bad";
      out.textContent = "✘ " + cli + " — " + e;
    } finally {
      clearInterval(tick);
      button.disabled = false;
    }
  }

  // Confirmation of disruptive actions: an in-page dialog (modal, keyboard
  // first: Cancel has the focus, Escape cancels), showing the command too.
  function ask(question, cli, from) {
    const dialog = $("#confirm");
    if (!dialog || !dialog.showModal) return Promise.resolve(confirm(question + "?"));
    $("#confirmtext").textContent = question + "?";
    $("#confirmcli").textContent = cli || "";
    dialog.returnValue = "";
    return new Promise(function (resolve) {
      dialog.addEventListener("close", function () {
        if (from && from.isConnected) from.focus();
        resolve(dialog.returnValue === "ok");
      }, { once: true });
      dialog.showModal();
      $("#confirmno").focus();
    });
  }

  // A value as one shell word (the same rule as the server's cli::word).
  function shellWord(text) {
    return /^[A-Za-z0-9_.\/:@%+=,-]+$/.test(text) ? text : "'" + text.replace(/'/g, "'\\''") + "'";
  }

  // A form's command: its data-cli, then each filled field marked data-arg
  // (a flag, or "" for a positional argument; data-bare: the flag alone;
  // data-unit: appended to the value).
  function formCli(form) {
    let cli = form.dataset.cli;
    for (const el of form.elements) {
      if (!el.hasAttribute("data-arg") || el.value === "") continue;
      if (el.type === "checkbox" && !el.checked) continue;
      const flag = el.dataset.arg;
      if (el.hasAttribute("data-bare")) { cli += " " + flag; continue; }
      const value = shellWord(el.value + (el.dataset.unit || ""));
      cli += flag ? " " + flag + " " + value : " " + value;
    }
    return cli;
  }

  function resultBox(button) {
    let out = document.getElementById("opresult");
    if (!out) {
      out = document.createElement("div");
      out.id = "opresult";
      out.setAttribute("role", "status");
      const main = $("#main");
      main.insertBefore(out, main.firstChild);
    }
    return out;
  }

  // Administration: buttons and forms that call the API -------------------
  document.addEventListener("click", async function (ev) {
    const button = ev.target.closest("button.api");
    if (!button || button.closest("form")) return;
    if (button.dataset.confirm && !await ask(button.dataset.confirm, button.dataset.cli, button)) return;
    await callApi(button, button.dataset.method, button.dataset.url, null, button.dataset.cli);
  });
  document.addEventListener("submit", async function (ev) {
    const form = ev.target.closest("form.api");
    if (!form) return;
    ev.preventDefault();
    const cli = formCli(form);
    if (form.dataset.confirm && !await ask(form.dataset.confirm, cli, null)) return;
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.value === "") continue;
      if (el.type === "checkbox") { if (el.checked) body[el.name] = true; continue; }
      if (el.hasAttribute("data-list")) { body[el.name] = [el.value.trim()]; continue; }
      body[el.name] = el.hasAttribute("data-number") ? Number(el.value) : el.value;
    }
    await callApi(form, form.dataset.method, form.dataset.url, body, cli);
  });
  async function callApi(el, method, url, body, cli) {
    const out = resultBox(el);
    out.className = "result busy";
    out.textContent = "⟳ " + (cli || url) + " — running…";
    const r = await fetch(url, {
      method: method,
      headers: Object.assign({ "x-haven-csrf": "1" }, body ? { "content-type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    let shown = text;
    try { const j = JSON.parse(text); shown = j.error ? j.error.message : JSON.stringify(j, null, 1); } catch (e) { /* not JSON */ }
    out.className = "result " + (r.ok ? "ok" : "bad");
    out.textContent = (r.ok ? "✔ " : "✘ ") + (cli || url) + (shown ? " — " + shown : "");
    log(cli || (method + " " + url), r.ok ? "ok" : "HTTP " + r.status);
    if (r.ok) refresh();
  }

  // The command log: what the console did, as `haven` commands -----------
  function log(cli, outcome) {
    const entries = JSON.parse(sessionStorage.getItem("haven-cmdlog") || "[]");
    entries.push(cli + "   # " + outcome);
    sessionStorage.setItem("haven-cmdlog", JSON.stringify(entries.slice(-50)));
    showLog();
  }
  function showLog() {
    const aside = $("#cmdlog");
    if (!aside) return;
    const entries = JSON.parse(sessionStorage.getItem("haven-cmdlog") || "[]");
    const list = $("ol", aside);
    list.textContent = "";
    for (const e of entries) { const li = document.createElement("li"); li.textContent = e; list.appendChild(li); }
    aside.classList.toggle("used", entries.length > 0);
  }

  // Live updates -----------------------------------------------------------
  let pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(async function () {
      pending = null;
      const url = new URL(location.href);
      url.searchParams.set("fragment", "1");
      try {
        const r = await fetch(url, { headers: { accept: "text/html" } });
        if (r.status === 401 || r.redirected) { location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
        if (!r.ok) return;
        const html = await r.text();
        const main = $("#main");
        const keep = document.getElementById("opresult");
        // Keep the keyboard where it was: the element with the same id, or
        // the button of the same operation.
        const active = document.activeElement;
        const focusedId = active && main.contains(active) && active.id;
        const focusedOp = active && main.contains(active) && active.matches("button.op") && active.dataset.op;
        const picks = {};
        main.querySelectorAll("select[id]").forEach(s => picks[s.id] = s.value);
        main.innerHTML = html;
        if (keep) main.insertBefore(keep, main.firstChild);
        for (const id in picks) { const s = document.getElementById(id); if (s) s.value = picks[id]; }
        let again = focusedId ? document.getElementById(focusedId) : null;
        if (!again && focusedOp) again = [...main.querySelectorAll("button.op")].find(b => b.dataset.op === focusedOp);
        if (again) again.focus();
      } catch (e) { /* the next event tries again */ }
    }, 400);
  }

  function live() {
    const url = document.body.dataset.live;
    if (!url) return;
    const state = $("#livestate");
    const mark = (text, lost) => { if (state) { state.textContent = text; state.classList.toggle("lost", !!lost); } };
    let source = null;
    function follow() {
      source = new EventSource(url);
      source.onopen = () => mark("live");
      source.onerror = () => mark("live updates lost — reconnecting; what you see may be out of date", true);
      for (const kind of ["events", "resynced", "link", "added", "removed", "lagged"]) {
        source.addEventListener(kind, function () { mark("live · updated " + new Date().toLocaleTimeString()); refresh(); });
      }
    }
    follow();
    // A page left for another (perhaps kept in the back/forward cache)
    // lets go of its stream: a browser has only a few connections per
    // server, and streams kept open by pages out of sight would starve
    // the page in front. Coming back, it follows again and catches up.
    addEventListener("pagehide", function () { if (source) { source.close(); source = null; } });
    addEventListener("pageshow", function (ev) { if (ev.persisted && !source) { follow(); refresh(); } });
  }

  // The login form ----------------------------------------------------------
  ready(function () {
    const form = document.getElementById("login");
    if (!form) return;
    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const error = document.getElementById("loginerror");
      error.textContent = "";
      const r = await fetch("/api/v1/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ user: form.user.value, password: form.password.value }),
      });
      if (r.ok) {
        const next = new URLSearchParams(location.search).get("next");
        location.href = next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
      } else {
        const body = await r.json().catch(() => ({}));
        error.textContent = (body.error && body.error.message) || ("login failed (HTTP " + r.status + ")");
        form.password.value = "";
        form.password.focus();
      }
    });
  });
})();
"##;
