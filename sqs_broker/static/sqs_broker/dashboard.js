/* sqs_broker dashboard behaviour. A static file with no inline handlers, so the pages run
   under a strict Content-Security-Policy (script-src 'self'). No framework. */
(function () {
  "use strict";

  /* Selects marked data-autosubmit send their form on change (window, language). */
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  /* Typed confirmation: the submit button stays disabled until the expected text is typed.
     The server checks the same text; this only saves a round trip. */
  document.querySelectorAll("input[data-confirm-text]").forEach(function (input) {
    var button = document.getElementById(input.dataset.confirmButton);
    if (!button) { return; }
    function check() { button.disabled = input.value.trim() !== input.dataset.confirmText; }
    input.addEventListener("input", check);
    check();
  });

  function setText(node, value) {
    if (node) { node.textContent = value === null || value === undefined ? "—" : String(value); }
  }

  /* In-place refresh from stats.json: the figures change, the page does not reload. */
  function applyStats(data) {
    (data.queues || []).forEach(function (q) {
      var row = document.querySelector('tr[data-queue="' + CSS.escape(q.name) + '"]');
      if (!row) { return; }
      setText(row.querySelector("td.visible"), q.visible);
      setText(row.querySelector("td.in-flight"), q.in_flight);
      setText(row.querySelector("td.delayed"), q.delayed);
      var dlq = row.querySelector(".dlq-visible");
      if (dlq && q.dlq) {
        setText(dlq, q.dlq.visible === null ? "?" : q.dlq.visible);
        dlq.classList.toggle("sqs-dlq-full", (q.dlq.visible || 0) > 0);
        dlq.classList.toggle("sqs-dlq-empty", !(q.dlq.visible || 0));
      }
    });
    var health = data.health;
    if (health) {
      var strip = document.getElementById("sqs-health");
      if (strip) {
        strip.dataset.level = health.level;
        strip.querySelectorAll("[data-health]").forEach(function (item) {
          var key = item.dataset.health, value = health[key];
          var count = Array.isArray(value) ? value.length : value;
          setText(item.querySelector(".figure"), count);
          var level = !count ? "ok" : item.dataset.severity;
          item.classList.remove("sqs-sev-ok", "sqs-sev-warning", "sqs-sev-error");
          item.classList.add("sqs-sev-" + level);
        });
      }
      var clear = document.getElementById("sqs-all-clear");
      if (clear) { clear.hidden = !health.all_clear; }
    }
    var stamp = document.getElementById("sqs-generated");
    if (stamp && data.generated_at) {
      stamp.setAttribute("datetime", data.generated_at);
      stamp.setAttribute("title", new Date(data.generated_at).toLocaleString());
      stamp.textContent = stamp.dataset.now || data.generated_at;
    }
  }

  var box = document.getElementById("sqs-refresh");
  if (box) {
    var seconds = parseInt(box.dataset.seconds, 10), url = box.dataset.url;
    var key = "sqsBrokerRefresh", memory = "on", timer = null, busy = false;
    var button = document.getElementById("sqs-refresh-toggle");
    box.dataset.refreshes = "0";
    var paused = function () {
      try { return (localStorage.getItem(key) || memory) === "off"; } catch (e) { return memory === "off"; }
    };
    var schedule = function () {
      if (timer) { clearTimeout(timer); timer = null; }
      // A hidden tab asks nothing: the visibilitychange handler resumes on return.
      if (paused() || !(seconds > 0) || document.visibilityState === "hidden") { return; }
      timer = setTimeout(refresh, seconds * 1000);
    };
    var refresh = function () {
      timer = null;
      if (paused() || document.visibilityState === "hidden") { return; }
      if (!url) { location.reload(); return; }  // no JSON face routed: the page itself
      if (busy) { schedule(); return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          applyStats(data);
          box.dataset.refreshes = String(parseInt(box.dataset.refreshes, 10) + 1);
          box.classList.remove("sqs-error");
        })
        .catch(function () { box.classList.add("sqs-error"); })
        .then(function () { busy = false; schedule(); });
    };
    var show = function () {
      var off = paused();
      box.querySelector(".sqs-refresh-on").hidden = off;
      box.querySelector(".sqs-refresh-off").hidden = !off;
      button.textContent = off ? button.dataset.resume : button.dataset.pause;
      schedule();
    };
    button.addEventListener("click", function () {
      memory = paused() ? "on" : "off";
      try { localStorage.setItem(key, memory); } catch (e) {}
      show();
    });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") {
        if (timer) { clearTimeout(timer); timer = null; }
      } else {
        refresh();  // back on the tab: fresh figures at once, then the usual rhythm
      }
    });
    show();
  }

  /* A dead-letter move in bounded steps: each POST moves what fits in a few seconds and
     answers the progress; the page posts again until the move is done or cancelled. */
  var move = document.getElementById("sqs-move");
  if (move && move.dataset.stepUrl && move.dataset.state === "running") {
    var token = move.querySelector("input[name=csrfmiddlewaretoken]");
    var step = function () {
      var body = new FormData();
      body.append("csrfmiddlewaretoken", token ? token.value : "");
      fetch(move.dataset.stepUrl, { method: "POST", credentials: "same-origin", body: body,
                                    headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (record) {
          ["moved", "skipped", "succeeded", "failed", "not_deleted", "to_move"].forEach(function (name) {
            setText(move.querySelector('[data-field="' + name + '"]'), record[name]);
          });
          setText(move.querySelector('[data-field="state"]'), record.state_label || record.state);
          move.dataset.state = record.state;
          var bar = move.querySelector("progress");
          if (bar && record.to_move) { bar.max = record.to_move; bar.value = record.moved; }
          if (record.state === "running") { setTimeout(step, 500); }
          else { var done = move.querySelector(".sqs-move-cancel"); if (done) { done.hidden = true; } }
        })
        .catch(function () { setTimeout(step, 5000); });
    };
    setTimeout(step, 200);
  }
})();
