// The operator console's live updates (src/http/console). No framework, no
// other origin: one EventSource on /console/events. Rows arrive rendered and
// escaped by the server; this script only places them, filters the table,
// keeps the overview's counts in step, swaps the QR code and copies values.
(function () {
  "use strict";
  var strings = JSON.parse((document.getElementById("strings") || {}).textContent || "{}");
  var table = document.querySelector("#sessions tbody");
  var search = document.getElementById("search");
  var filter = document.getElementById("state-filter");
  var company = (document.getElementById("company") || {}).dataset;

  function applyFilter() {
    if (!table) return;
    var q = search ? search.value.trim() : "";
    var st = filter ? filter.value : "";
    var shown = 0;
    table.querySelectorAll("tr").forEach(function (tr) {
      var ok = tr.dataset.company.indexOf(q) !== -1 && (!st || tr.dataset.state === st);
      tr.hidden = !ok;
      if (ok) shown++;
    });
    var none = document.getElementById("no-sessions");
    if (none) none.hidden = shown > 0;
  }

  function recount() {
    var counts = document.querySelectorAll("[data-count]");
    if (!counts.length || !table) return;
    var rows = table.querySelectorAll("tr");
    counts.forEach(function (dd) {
      var n = 0;
      rows.forEach(function (tr) { if (tr.dataset.state === dd.dataset.count) n++; });
      dd.textContent = String(n);
    });
    var total = document.getElementById("count-total");
    if (total) total.textContent = String(rows.length);
  }

  function placeRow(data) {
    if (!table) return;
    var holder = document.createElement("tbody");
    holder.innerHTML = data.row;
    var row = holder.firstElementChild;
    var old = table.querySelector('tr[data-company="' + CSS.escape(data.company) + '"]');
    if (old) {
      table.replaceChild(row, old);
    } else {
      var next = Array.prototype.find.call(table.children, function (tr) {
        return tr.dataset.company > data.company;
      });
      table.insertBefore(row, next || null);
    }
  }

  function placeStatus(data) {
    if (!company || company.company !== data.company) return;
    var badge = document.querySelector("#company-state .state");
    if (badge) {
      badge.className = "state state-" + data.state;
      badge.dataset.state = data.state;
      badge.textContent = data.words;
    }
    var reason = document.getElementById("reason");
    if (reason) reason.textContent = data.reason;
    var link = document.getElementById("link");
    if (link) link.hidden = data.state === "connected";
  }

  if (search) search.addEventListener("input", applyFilter);
  if (filter) filter.addEventListener("change", applyFilter);
  applyFilter();

  document.addEventListener("click", function (e) {
    var button = e.target.closest("[data-copy]");
    if (!button) return;
    var value = document.getElementById(button.dataset.copy).textContent;
    navigator.clipboard.writeText(value).then(function () {
      button.textContent = strings.copied;
    });
  });

  if (!window.EventSource || (!table && !company)) return;
  var lost = document.getElementById("live-lost");
  var source = new EventSource("/console/events");
  // Closed when the page goes, so it never holds one of the browser's few
  // connections to this host while the next page loads.
  window.addEventListener("pagehide", function () { source.close(); });
  source.addEventListener("open", function () { if (lost) lost.hidden = true; });
  source.addEventListener("error", function () { if (lost) lost.hidden = false; });
  source.addEventListener("status", function (e) {
    var data = JSON.parse(e.data);
    placeRow(data);
    placeStatus(data);
    applyFilter();
    recount();
  });
  source.addEventListener("qr", function (e) {
    var data = JSON.parse(e.data);
    var qr = document.getElementById("qr");
    if (qr && qr.dataset.company === data.company) qr.innerHTML = data.svg;
  });
})();
