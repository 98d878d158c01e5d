// Live status: /status.json every 2 s; every value goes in with textContent.
(function () {
  "use strict";
  var root = document.getElementById("status");
  if (!root) { return; }
  var live = document.getElementById("live");
  var offset = 0;
  var lines = [];
  var calls = [];

  function duration(since) {
    var s = Math.max(0, Math.round(Date.now() / 1000 + offset - since));
    if (s < 60) { return s + " s"; }
    var m = Math.floor(s / 60);
    if (m < 60) { return m + " min " + (s % 60) + " s"; }
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function td(tr, value, cls) {
    var cell = document.createElement("td");
    if (cls) {
      var span = document.createElement("span");
      span.className = cls;
      span.textContent = value;
      cell.appendChild(span);
    } else {
      cell.textContent = (value === null || value === undefined || value === "") ? "—" : value;
    }
    tr.appendChild(cell);
    return cell;
  }

  function fill(id, items, make) {
    var body = document.querySelector("#" + id + " tbody");
    while (body.firstChild) { body.removeChild(body.firstChild); }
    items.forEach(function (item) { body.appendChild(make(item)); });
    document.getElementById(id + "-empty").hidden = items.length > 0;
  }

  function render() {
    fill("lines", lines, function (l) {
      var tr = document.createElement("tr");
      tr.dataset.line = l.line;
      td(tr, l.line);
      td(tr, l.label, "state " + l.state);
      td(tr, duration(l.since));
      td(tr, l.call_id);
      return tr;
    });
    fill("calls", calls, function (c) {
      var tr = document.createElement("tr");
      td(tr, c.line);
      td(tr, c.service);
      td(tr, duration(c.started) + " ago");
      td(tr, c.step);
      td(tr, c.customer_name ? c.customer_name + " (" + (c.customer_id_masked || "—") + ")" : c.customer_id_masked);
      td(tr, c.ani_masked);
      return tr;
    });
  }

  function refresh() {
    fetch(root.dataset.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("signed out"); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        offset = data.now - Date.now() / 1000;
        lines = data.lines;
        calls = data.in_progress;
        Object.keys(data.today || {}).forEach(function (key) {
          var el = document.getElementById("today-" + key);
          var v = data.today[key];
          if (el) { el.textContent = (v === null || v === undefined) ? "–" : String(v); }
        });
        render();
        live.dataset.state = "live";
        live.textContent = "live";
      })
      .catch(function () { live.dataset.state = "lost"; live.textContent = "no answer from the device"; })
      .then(function () { setTimeout(refresh, 2000); });
  }

  setInterval(render, 1000);
  refresh();
})();
