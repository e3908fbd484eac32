// floom-git dashboard: small enhancements over pages that work without JavaScript.
// Live run pages follow the API's SSE stream (GET /api/runs/{id}/events); log lines are added
// as text nodes, never as HTML.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function onReady(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  const TONES = {completed: "ok", failed: "bad", running: "live", queued: "wait",
    pending_approval: "wait", cancelled: "muted"};

  function setStatus(status) {
    document.querySelectorAll("[data-run-status]").forEach(function (el) {
      el.textContent = status.replace("_", " ");
      el.className = "badge " + (TONES[status] || "muted");
    });
  }

  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toISOString().slice(11, 19);
  }

  function appendLog(box, line) {
    const row = document.createElement("div");
    row.className = "line " + (line.level || "info");
    [["t", clock(line.timestamp)], ["lv", line.level || ""], ["m", line.message || ""]].forEach(function (p) {
      const span = document.createElement("span");
      span.className = p[0];
      span.textContent = p[1];
      row.appendChild(span);
    });
    const empty = box.querySelector(".none");
    if (empty) empty.remove();
    const atEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.appendChild(row);
    if (atEnd) box.scrollTop = box.scrollHeight;
  }

  function refreshSummary(live) {
    if (window.htmx) {
      window.htmx.ajax("GET", live.dataset.page, {target: "#run-summary", select: "#run-summary",
        swap: "outerHTML"});
    }
  }

  function followRun(live) {
    const box = document.getElementById("run-log");
    const source = new EventSource(live.dataset.events);
    live.dataset.following = "yes";
    source.onmessage = function (ev) {
      let data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data.type === "log") appendLog(box, data);
      else if (data.type === "status") { setStatus(data.status); refreshSummary(live); }
      else if (data.type === "approval_decided") refreshSummary(live);
      else if (data.type === "close") {
        setStatus(data.status);
        source.close();
        live.dataset.following = "done";
        const label = document.getElementById("live-label");
        if (label) label.remove();
        refreshSummary(live);
      }
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) live.dataset.following = "done";
    };
  }

  onReady(function () {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
      });
    });
    document.querySelectorAll("[data-events]").forEach(followRun);
    const log = document.getElementById("run-log");
    if (log) log.scrollTop = log.scrollHeight;
  });
})();
