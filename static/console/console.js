// The console's behaviour: draw the server-built Plotly figures, expand ledger rows, and the
// Live switch that streams newly ingested events over a WebSocket. Every user-supplied value
// is written with textContent, never as HTML.
(function () {
  "use strict";

  // --- figures ------------------------------------------------------------------------------
  function drawFigures() {
    if (typeof Plotly === "undefined") return;
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.dataset.figure);
      if (!source) return;
      var fig = JSON.parse(source.textContent);
      Plotly.newPlot(el, fig.data, fig.layout || {}, {
        responsive: true, displaylogo: false, displayModeBar: false,
      }).then(function () { el.dataset.rendered = "true"; });
    });
  }

  // --- money, as the server writes a per-event amount (usd_exact): six decimals at most,
  // two significant digits below that; never a tiny amount as $0.00 ----------------------------
  function usd(text) {
    if (text === null || text === undefined || text === "") return "—";
    var n = Number(text);
    if (n === 0) return "$0.00";
    var sign = n < 0 ? "−" : "";
    n = Math.abs(n);
    var out;
    if (n >= 1) {
      out = n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
    } else {
      var decimals = n >= 0.000001 ? 6 : Math.min(9, Math.floor(-Math.log10(n)) + 2);
      var parts = n.toFixed(decimals).split(".");
      var fraction = parts[1].replace(/0+$/, "");
      while (fraction.length < 2) fraction += "0";
      out = parts[0] + "." + fraction;
    }
    return sign + "$" + out;
  }

  // --- expandable ledger rows -----------------------------------------------------------------
  function toggle(button) {
    var detail = document.getElementById(button.getAttribute("aria-controls"));
    if (!detail) return;
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", open ? "true" : "false");
    button.textContent = open ? "▾" : "▸";
    detail.hidden = !open;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.expand");
    if (button) toggle(button);
  });

  // --- the live ledger ------------------------------------------------------------------------
  var liveCount = 0;

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function liveRows(event) {
    liveCount += 1;
    var id = "tx-live-" + liveCount;
    var row = document.createElement("tr");
    row.className = "tx live-new";
    row.dataset.eventId = event.eventId;
    var first = document.createElement("td");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "expand";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", id);
    button.setAttribute("aria-label", "Show the cost split of event " + event.eventId);
    button.textContent = "▸";
    first.appendChild(button);
    row.appendChild(first);
    var timeCell = document.createElement("td");
    var time = document.createElement("time");
    time.setAttribute("datetime", event.occurredAt);
    time.textContent = event.occurredAt.replace("T", " ").replace("Z", "");
    timeCell.appendChild(time);
    row.appendChild(timeCell);
    cell(row, event.customerId || "—");
    cell(row, event.productId || "—");
    var model = cell(row, (event.provider || "—") + " ");
    var muted = document.createElement("span");
    muted.className = "muted";
    muted.textContent = event.model || "";
    model.appendChild(muted);
    cell(row, usd(event.cogsUsd), "num");
    var revenue = cell(row, "", "num");
    var badge = document.createElement("span");
    badge.className = "settling-badge";
    badge.title = "Revenue fills in after the next attribution run";
    badge.textContent = "settling";
    revenue.appendChild(badge);
    cell(row, "—", "num");
    cell(row, "—", "num");

    var detail = document.createElement("tr");
    detail.className = "tx-detail";
    detail.id = id;
    detail.hidden = true;
    detail.appendChild(document.createElement("td"));
    var body = document.createElement("td");
    body.colSpan = 8;
    var list = document.createElement("dl");
    list.className = "split";
    [["AI inference", usd(event.aiCogsUsd), "ai"],
     ["Infrastructure", usd(event.infraCogsUsd), "infra"],
     ["Gateway fees", usd(event.feeCogsUsd), "fee"],
     ["Unclassified", usd(event.unclassifiedCogsUsd), "unclassified"],
     ["Event", event.eventId, null],
     ["Source", (event.sourceType || "—") + (event.toolName ? " · tool " + event.toolName : "")
       + " · " + (event.productType || "—"), null],
     ["Revenue", "settling (attributed after the next run)", null]].forEach(function (item) {
      var pair = document.createElement("div");
      var dt = document.createElement("dt");
      dt.textContent = item[0];
      var dd = document.createElement("dd");
      dd.textContent = item[1];
      if (item[2]) dd.dataset.split = item[2];
      pair.appendChild(dt);
      pair.appendChild(dd);
      list.appendChild(pair);
    });
    body.appendChild(list);
    detail.appendChild(body);
    return [row, detail];
  }

  function matches(table, event) {
    var product = table.dataset.filterProduct, provider = table.dataset.filterProvider,
        customer = table.dataset.filterCustomer;
    return (!product || event.productId === product) && (!provider || event.provider === provider)
      && (!customer || event.customerId === customer);
  }

  function startLive() {
    var toggleEl = document.getElementById("live-switch");
    var table = document.getElementById("ledger");
    var tbody = document.getElementById("ledger-rows");
    var status = document.getElementById("live-status");
    if (!toggleEl || !table || !tbody) return;
    var socket = null;
    var received = 0;
    var limit = Math.max(Number(table.dataset.size) || 25, 25);

    function say(text, state) {
      status.textContent = text;
      toggleEl.dataset.state = state;
    }

    function add(events) {
      var empty = document.getElementById("ledger-empty");
      events.forEach(function (event) {
        if (!matches(table, event)) return;
        if (tbody.querySelector('tr.tx[data-event-id="' + CSS.escape(event.eventId) + '"]')) return;
        var rows = liveRows(event);
        tbody.insertBefore(rows[1], tbody.firstChild);
        tbody.insertBefore(rows[0], tbody.firstChild);
        received += 1;
        if (empty) empty.hidden = true;
      });
      // Keep the page at its size: drop the oldest rows (and their detail rows).
      var rowsNow = tbody.querySelectorAll("tr.tx");
      for (var i = limit; i < rowsNow.length; i++) {
        var detail = document.getElementById(
          rowsNow[i].querySelector("button.expand").getAttribute("aria-controls"));
        if (detail) detail.remove();
        rowsNow[i].remove();
      }
      say("Live: " + received + " new event" + (received === 1 ? "" : "s") + " since switched on",
          "open");
    }

    function open() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      say("Connecting…", "connecting");
      socket = new WebSocket(scheme + window.location.host + toggleEl.dataset.wsPath);
      socket.onmessage = function (message) {
        var payload = JSON.parse(message.data);
        if (payload.type === "hello") say("Live: waiting for new events", "open");
        if (payload.type === "events") add(payload.events);
      };
      socket.onclose = function (event) {
        if (!toggleEl.checked) return;
        toggleEl.checked = false;
        say(event.code === 4401 || event.code === 4403 || event.code === 1006
          ? "Disconnected: sign in again or reload the page to resume live events"
          : "Disconnected", "closed");
      };
    }

    function close() {
      if (socket) { var s = socket; socket = null; s.close(); }
      say("Off: switch on to stream new events as they are ingested", "off");
    }

    toggleEl.addEventListener("change", function () {
      if (toggleEl.checked) open(); else close();
    });
    if (new URLSearchParams(window.location.search).get("live") === "1" && !toggleEl.disabled) {
      toggleEl.checked = true;
      open();
    }
  }

  function ready() {
    drawFigures();
    startLive();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
