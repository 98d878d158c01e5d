// The agent's screen-pop: history on load, then transfers pushed by server-sent events.
// Everything from the server goes in with textContent (names come from a CRM).
(function () {
  "use strict";
  var root = document.getElementById("agent");
  if (!root || !root.dataset.ext) { return; }
  var query = "?ext=" + encodeURIComponent(root.dataset.ext);
  var pop = document.getElementById("pop");
  var live = document.getElementById("live");
  var body = document.querySelector("#history tbody");
  var empty = document.getElementById("history-empty");
  var offset = 0;          // server clock minus ours, in seconds
  var shownAt = null;      // the `at` of the transfer in the big badge
  var lastId = 0;
  var seen = {};
  var source = null;
  var FRESH_S = 600;       // on load, the latest transfer is shown big if this recent

  function text(id, value) {
    document.getElementById(id).textContent = (value === null || value === undefined || value === "") ? "—" : value;
  }

  function ago(at) {
    var s = Math.max(0, Math.round(Date.now() / 1000 + offset - at));
    if (s < 60) { return s + " s ago"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + " min " + (s % 60) + " s ago"; }
    return Math.floor(m / 60) + " h " + (m % 60) + " min ago";
  }

  function show(t, fresh) {
    pop.dataset.status = t.status || "not_identified";
    text("badge", t.badge);
    var reason = document.getElementById("reason");
    reason.hidden = !t.reason_text;
    reason.textContent = t.reason_text || "";
    text("pop-name", t.customer_name);
    text("pop-id", t.customer_id_masked);
    text("pop-ani", t.ani_masked || "withheld or unavailable");
    text("pop-how", t.how || "not identified");
    text("pop-ext", t.extension);
    text("pop-menu", t.menu_choice);
    var route = document.getElementById("pop-route");
    var notes = [t.hours_text, t.fallback_text].filter(function (x) { return x; });
    route.hidden = !notes.length;
    route.textContent = notes.join(" · ");
    shownAt = t.at;
    text("pop-ago", ago(t.at));
    pop.classList.remove("fresh");
    if (fresh) { void pop.offsetWidth; pop.classList.add("fresh"); }
  }

  function cell(tr, value) {
    var td = document.createElement("td");
    if (value instanceof Node) { td.appendChild(value); } else { td.textContent = value || "—"; }
    tr.appendChild(td);
  }

  function row(t) {
    var tr = document.createElement("tr");
    tr.dataset.id = t.id;
    cell(tr, new Date(t.at * 1000).toLocaleTimeString());
    var chip = document.createElement("span");
    chip.className = "chip " + (t.status || "not_identified");
    chip.textContent = t.badge + (t.reason_text ? " · " + t.reason_text : "") +
      (t.hours_text ? " · " + t.hours_text : "");
    cell(tr, chip);
    cell(tr, t.customer_name);
    cell(tr, t.customer_id_masked);
    cell(tr, t.ani_masked);
    cell(tr, t.how);
    cell(tr, t.extension);
    return tr;
  }

  function remember(t, atTop) {
    if (seen[t.id]) { return false; }
    seen[t.id] = true;
    lastId = Math.max(lastId, t.id);
    if (atTop) { body.insertBefore(row(t), body.firstChild); } else { body.appendChild(row(t)); }
    while (body.rows.length > 10) { body.deleteRow(body.rows.length - 1); }
    empty.hidden = body.rows.length > 0;
    return true;
  }

  function state(s, label) { live.dataset.state = s; live.textContent = label; }

  // a stream ends every minute and the browser reconnects at once: only call it lost
  // when no new stream has said hello for a few seconds
  var lostTimer = null;
  function connected() {
    clearTimeout(lostTimer);
    lostTimer = null;
    state("live", "live");
  }
  function maybeLost() {
    if (lostTimer === null) {
      lostTimer = setTimeout(function () { state("lost", "reconnecting…"); }, 3000);
    }
  }

  function signedOut() { window.location.reload(); }

  function connect() {
    if (source) { source.close(); }
    source = new EventSource(root.dataset.streamUrl + query + "&after=" + lastId);
    source.addEventListener("hello", function (e) {
      offset = JSON.parse(e.data).now - Date.now() / 1000;
      connected();
    });
    source.addEventListener("transfer", function (e) {
      var t = JSON.parse(e.data);
      if (remember(t, true)) { show(t, true); }
    });
    source.addEventListener("signedout", signedOut);
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        // refused (signed out, or the server went away): find out which, then retry
        state("lost", "reconnecting…");
        setTimeout(load, 3000);
      } else {
        maybeLost();
      }
    });
  }

  function load() {
    fetch(root.dataset.historyUrl + query, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { signedOut(); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        offset = data.now - Date.now() / 1000;
        lastId = Math.max(lastId, data.last_id);
        var fresh = data.history.length && shownAt === null &&
                    Date.now() / 1000 + offset - data.history[0].at < FRESH_S;
        data.history.forEach(function (t) { remember(t, false); });
        if (fresh) { show(data.history[0], false); }
        connect();
      })
      .catch(function () { state("lost", "reconnecting…"); setTimeout(load, 5000); });
  }

  setInterval(function () { if (shownAt !== null) { text("pop-ago", ago(shownAt)); } }, 1000);
  load();
})();
