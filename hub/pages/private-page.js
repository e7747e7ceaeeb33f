// The resident's private page (hub/pages/private.py serves it). The owner token comes in the address after
// '#token=', which browsers never send to a server; it is taken out of the address bar at once, and kept in this
// tab's sessionStorage only, so that a reload still works. It is sent to the hub's API only, as a Bearer header.
"use strict";

(function () {
  const page = document.getElementById("page");
  const device = page.dataset.device;
  const words = JSON.parse(document.getElementById("words").textContent);
  const api = "/api/v1/devices/" + encodeURIComponent(device);
  const storeKey = "sensing-owner-token:" + device;
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const SAY = {
    noToken: "This page needs the key printed on your label. Open this page from the QR code on your label.",
    refused: "This key does not open this device's page. Scan the QR code on your label again; if that does " +
      "not work, ask the people who ran your workshop.",
    unknown: "This hub has no sensor called " + device + ". Check the address against the one on your label.",
    unreachable: "The hub cannot be reached just now. Check that your phone is online (on the hub's network, " +
      "if it is a local one), then try again.",
  };

  class Problem extends Error {}

  function $(id) {
    return document.getElementById(id);
  }

  function storage() {
    try {
      return window.sessionStorage;
    } catch (e) {
      return null; // storage switched off: the page still works until it is reloaded
    }
  }

  function takeToken() {
    const found = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    const store = storage();
    if (found) {
      const token = decodeURIComponent(found[1]);
      if (store) store.setItem(storeKey, token);
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
      return token;
    }
    return store ? store.getItem(storeKey) : null;
  }

  function forgetToken() {
    const store = storage();
    if (store) store.removeItem(storeKey);
  }

  let token = takeToken();

  async function call(method, path) {
    let response;
    try {
      response = await fetch(api + path, {
        method: method,
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new Problem(SAY.unreachable);
    }
    if (response.status === 401 || response.status === 403) {
      forgetToken();
      throw new Problem(SAY.refused);
    }
    if (response.status === 404) throw new Problem(SAY.unknown);
    if (!response.ok) {
      throw new Problem("The hub could not do this just now (it answered " + response.status + "). Try again later.");
    }
    return response.json();
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, name) {
      return String(values[name]);
    });
  }

  function two(n) {
    return String(n).padStart(2, "0");
  }

  // A time on this phone's clock, e.g. "28 Nov 2026, 15:04".
  function when(iso) {
    const t = new Date(iso);
    return t.getDate() + " " + MONTHS[t.getMonth()] + " " + t.getFullYear() + ", " + two(t.getHours()) + ":" +
      two(t.getMinutes());
  }

  // The same sentences as hub/agreement_words.py's agreed(), from the same wording.
  function agreed(a, area) {
    const sentences = [words.sharing[a.sharing]];
    if (a.sharing === "open") {
      sentences.push(fill(words.location[a.location_release], { area: area, size: a.location_h3_resolution }));
      sentences.push(words.time[a.time_release]);
    }
    const uses = a.purposes.map(function (p) { return words.purposes[p] || p; }).join("; ");
    sentences.push(fill(words.uses, { uses: uses }));
    if (a.sharing !== "private") {
      sentences.push(a.retention_days ? fill(words.retention.days, { days: a.retention_days })
        : words.retention.until_withdrawn);
    }
    sentences.push(fill(words.given, { date: a.granted_at.slice(0, 10), version: a.consent_version,
      collected_by: a.collected_by }));
    return sentences;
  }

  function list(element, lines) {
    element.replaceChildren.apply(element, lines.map(function (line) {
      const item = document.createElement("li");
      item.textContent = line;
      return item;
    }));
  }

  function showDevice(d) {
    const where = (d.placement === "indoor" ? "Indoors" : "Outdoors") + ", in " + d.area;
    $("where").textContent = d.label ? where + " (" + d.label + ")" : where;
    $("registered-by").textContent = d.registered_by;
  }

  function showAgreement(d, agreements) {
    const newest = agreements[agreements.length - 1];
    const state = $("consent-state");
    if (!newest) {
      state.textContent = "No consent is recorded for this sensor: the hub does not share its readings.";
      list($("agreed"), []);
      $("withdraw-choice").hidden = true;
      return;
    }
    const withdrawn = newest.status === "withdrawn";
    state.textContent = withdrawn
      ? "You withdrew your consent on " + when(newest.withdrawn_at) + ". Your readings have left every page, " +
        "download and feed of the hub, and it refuses new readings from your sensor."
      : "Your consent is in force.";
    state.className = withdrawn ? "state withdrawn" : "state active";
    list($("agreed"), agreed(newest, d.area));
    $("withdraw-choice").hidden = withdrawn;
  }

  function showStatus(status) {
    if (!status) {
      $("status").textContent = "Your sensor has not told the hub how it is doing yet.";
      list($("faults"), []);
      return;
    }
    let said = (words.status[status.state] || status.state) + " Last heard from: " + when(status.received_at) + ".";
    if (status.message) said += " It said: " + status.message;
    if (status.dropped) said += " " + status.dropped + " readings were lost because its memory was full.";
    if (status.battery_voltage !== null && status.battery_voltage !== undefined) {
      said += " Battery: " + status.battery_voltage + " V.";
    }
    $("status").textContent = said;
    list($("faults"), status.faults.map(function (f) {
      return "Sensor " + f.sensor + " did not give a good reading (" + (f.message || f.fault) + ").";
    }));
  }

  function showReadings(readings) {
    const rows = readings.map(function (r) {
      const row = document.createElement("tr");
      [words.quantities[r.quantity] || r.quantity, String(r.value), r.unit, when(r.measured_at)].forEach(
        function (text, i) {
          const cell = document.createElement(i === 0 ? "th" : "td");
          if (i === 0) cell.scope = "row";
          cell.textContent = text;
          row.appendChild(cell);
        });
      return row;
    });
    const body = $("readings").tBodies[0];
    body.replaceChildren.apply(body, rows);
    $("readings").hidden = rows.length === 0;
    $("no-readings").hidden = rows.length !== 0;
  }

  function showProblem(message) {
    $("loading").hidden = true;
    $("content").hidden = true;
    $("problem").textContent = message;
    $("problem").hidden = false;
  }

  async function load() {
    const d = await call("GET", "/private");
    const agreements = await call("GET", "/agreements");
    const readings = await call("GET", "/readings?order=newest&limit=20");
    showDevice(d);
    showAgreement(d, agreements);
    showStatus(d.status);
    showReadings(readings.readings);
    $("loading").hidden = true;
    $("content").hidden = false;
  }

  function say(message, problem) {
    const result = $("result");
    result.textContent = message;
    result.className = problem ? "result problem" : "result done";
    result.focus();
  }

  function confirmation(name, act) {
    const ask = $(name + "-confirm");
    const button = $(name);
    button.addEventListener("click", function () {
      ask.hidden = false;
      button.hidden = true;
      $(name + "-yes").focus();
    });
    $(name + "-no").addEventListener("click", function () {
      ask.hidden = true;
      button.hidden = false;
      button.focus();
    });
    $(name + "-yes").addEventListener("click", async function () {
      ask.hidden = true;
      button.hidden = false;
      try {
        const message = await act();
        await load();
        say(message, false);
      } catch (e) {
        say(e instanceof Problem ? e.message : "Something went wrong on this page: " + e, true);
      }
    });
  }

  confirmation("withdraw", async function () {
    const answer = await call("POST", "/withdraw");
    return answer.withdrawn ? "Your consent is withdrawn. Your readings have left every page, download and feed " +
      "of the hub." : "Your consent was already withdrawn.";
  });
  confirmation("erase", async function () {
    const answer = await call("DELETE", "/readings");
    return answer.erased === 1 ? "1 reading erased." : answer.erased + " readings erased.";
  });

  function start() {
    if (!token) {
      showProblem(SAY.noToken);
      return;
    }
    $("problem").hidden = true;
    $("loading").hidden = false;
    load().catch(function (e) {
      showProblem(e instanceof Problem ? e.message : "Something went wrong on this page: " + e);
    });
  }

  // A label scanned again while the page is open changes only the address's fragment: the page does not reload.
  window.addEventListener("hashchange", function () {
    const scanned = takeToken();
    if (scanned && scanned !== token) {
      token = scanned;
      start();
    }
  });
  start();
})();
