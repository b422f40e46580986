// The code screen: the local time ticking, a fresh code before the last one
// expires, and offline the last code kept until it expires.
(function () {
  "use strict";

  var panel = document.getElementById("code");
  if (!panel) {
    return;
  }
  var zone = document.querySelector('meta[name="healthcode-zone"]').content;
  var locale = panel.dataset.lang === "zh" ? "zh-CN" : "en-GB";
  // The device clock may be wrong; times are compared on the server's clock,
  // as far as the last answer told it.
  var skew = Date.parse(panel.dataset.serverNow) - Date.now();
  var storageKey = "hc:code:" + panel.dataset.subject;
  var clock = document.getElementById("clock");
  var qr = document.getElementById("qr");
  var validText = document.getElementById("valid-until");
  var offlineNote = document.getElementById("offline-note");
  var expiredNote = document.getElementById("expired-note");
  var maskedName = document.getElementById("masked-name");
  var refreshTimer = null;

  var full = new Intl.DateTimeFormat(locale, {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });
  var short = new Intl.DateTimeFormat(locale, {
    timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false
  });

  function now() {
    return Date.now() + skew;
  }

  var current = {
    text: panel.dataset.code,
    colour: panel.dataset.colour,
    issuedAt: panel.dataset.issuedAt,
    validUntil: panel.dataset.validUntil,
    maskedName: maskedName.textContent,
    svg: qr.innerHTML
  };

  function remember(code) {
    try {
      localStorage.setItem(storageKey, JSON.stringify(code));
    } catch (ignored) {
      // A full or disabled storage only costs the offline copy.
    }
  }

  function show(code) {
    current = code;
    qr.innerHTML = code.svg;
    panel.dataset.code = code.text;
    panel.dataset.validUntil = code.validUntil;
    panel.dataset.issuedAt = code.issuedAt;
    validText.textContent = short.format(new Date(code.validUntil));
    maskedName.textContent = code.maskedName;
    panel.classList.remove("expired");
    expiredNote.hidden = true;
    panel.dataset.refreshes = String(Number(panel.dataset.refreshes || "0") + 1);
  }

  function expired() {
    return now() >= Date.parse(current.validUntil);
  }

  function tick() {
    clock.textContent = full.format(new Date(now()));
    if (expired() && !panel.classList.contains("expired")) {
      panel.classList.add("expired");
      expiredNote.hidden = false;
      refresh();
    }
  }

  function schedule(delay) {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, Math.max(1000, delay));
  }

  function scheduleFromCode() {
    var until = Date.parse(current.validUntil);
    var lifetime = until - Date.parse(current.issuedAt);
    var margin = Math.min(60000, lifetime / 3);
    schedule(until - margin - now());
  }

  function refresh() {
    fetch(panel.dataset.source, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (answer.status === 401) {
          window.location.assign("/app/sign-in");
          return null;
        }
        if (!answer.ok) {
          throw new Error("status " + answer.status);
        }
        return answer.json();
      })
      .then(function (code) {
        if (code === null) {
          return;
        }
        skew = Date.parse(code.serverNow) - Date.now();
        delete code.serverNow;
        remember(code);
        offlineNote.hidden = true;
        if (code.colour !== current.colour) {
          // A new colour brings new reasons: show the whole page again.
          window.location.reload();
          return;
        }
        show(code);
        scheduleFromCode();
      })
      .catch(function () {
        offlineNote.hidden = expired();
        schedule(10000);
      });
  }

  // A page shown from the offline copy may be older than the last code the
  // phone fetched; show whichever was issued last.
  try {
    var kept = JSON.parse(localStorage.getItem(storageKey) || "null");
    if (kept && Date.parse(kept.issuedAt) > Date.parse(current.issuedAt) &&
        kept.colour === current.colour) {
      show(kept);
      panel.dataset.refreshes = "0";
    } else {
      remember(current);
    }
  } catch (ignored) {
    remember(current);
  }

  tick();
  setInterval(tick, 250);
  scheduleFromCode();

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {
      // Without the worker the page still works while online.
    });
  }
})();
