/* Live job progress: every element with data-job-progress-url polls it (JSON from
   portal.jobs.job_progress) and updates its bar, counts and failure links without a reload.
   Served by the portal itself; no third-party code. */
(function () {
  "use strict";
  var POLL_MS = 1000;
  var MAX_POLLS = 3600; // an hour at most per page view

  function setText(root, field, value) {
    var el = root.querySelector('[data-field="' + field + '"]');
    if (el) { el.textContent = String(value); }
  }

  function render(root, data) {
    setText(root, "status_label", data.status_label);
    setText(root, "done", data.done);
    setText(root, "failed", data.failed);
    setText(root, "total", data.total);
    setText(root, "percent", data.percent);
    var bar = root.querySelector(".portal-job-bar");
    var fill = root.querySelector(".portal-job-fill");
    if (bar) { bar.setAttribute("aria-valuenow", data.percent); }
    if (fill) {
      fill.style.width = data.percent + "%";
      fill.classList.toggle("has-failures", data.failed > 0);
    }
    root.setAttribute("data-status", data.status);
    var list = root.querySelector(".portal-job-failures");
    if (list && data.failures) {
      while (list.firstChild) { list.removeChild(list.firstChild); }
      data.failures.forEach(function (f) {
        var li = document.createElement("li");
        var label = document.createElement(f.url ? "a" : "span");
        if (f.url) { label.setAttribute("href", f.url); }
        label.textContent = f.label;
        li.appendChild(label);
        if (f.message) { li.appendChild(document.createTextNode(": " + f.message)); }
        list.appendChild(li);
      });
    }
    var links = root.querySelector(".portal-job-links");
    if (links && data.links) {
      while (links.firstChild) { links.removeChild(links.firstChild); }
      data.links.forEach(function (l) {
        var li = document.createElement("li");
        var a = document.createElement("a");
        a.setAttribute("href", l.url);
        a.textContent = l.label;
        li.appendChild(a);
        links.appendChild(li);
      });
    }
    var summary = root.querySelector(".portal-job-summary");
    var shown = {};
    Object.keys(data.result || {}).forEach(function (k) { if (k !== "links") { shown[k] = data.result[k]; } });
    if (summary && Object.keys(shown).length) {
      summary.textContent = JSON.stringify(shown, null, 2);
      summary.hidden = false;
    }
    if (data.finished) {
      var at = root.querySelector(".portal-job-finished-at");
      if (at && data.finished_at) {
        setText(root, "finished_at", data.finished_at.replace("T", " ").slice(0, 19));
        at.hidden = false;
      }
      root.setAttribute("data-finished", "1");
      root.classList.add("is-finished");
      // A page whose result is rendered by the server (a provisioning request's serials) asks
      // for one reload when the work ends.
      if (root.getAttribute("data-reload-when-finished") === "1") {
        root.setAttribute("data-reload-when-finished", "0");
        window.location.reload();
      }
    }
  }

  function poll(root, url, count) {
    if (count > MAX_POLLS) { return; }
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        render(root, data);
        if (!data.finished) { setTimeout(function () { poll(root, url, count + 1); }, POLL_MS); }
      })
      .catch(function () { setTimeout(function () { poll(root, url, count + 1); }, POLL_MS * 3); });
  }

  function start() {
    document.querySelectorAll("[data-job-progress-url]").forEach(function (root) {
      if (root.getAttribute("data-polling") === "1") { return; }
      root.setAttribute("data-polling", "1");
      poll(root, root.getAttribute("data-job-progress-url"), 0);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
