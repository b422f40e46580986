// The checkpoint scanner: reads codes from the camera and decides at the door
// without the server. A code is checked against the code keys of a signed
// trust list, a paper code's colour is read from its region's signed status
// list (docs/code-format.md gives every byte of all three), and each scan
// that verifies is queued and uploaded when the server answers.
(function () {
  "use strict";

  var STORE = {
    key: "hc:cp:key",
    anchors: "hc:cp:anchors",
    material: "hc:cp:material",
    queue: "hc:cp:queue"
  };
  var LEEWAY = 300; // seconds of clock difference allowed, as the service does
  var MAX_SCREEN = 86400;
  var MAX_PAPER = 31 * 86400;
  var ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
  var COLOURS = { 1: "green", 2: "yellow", 3: "red", 4: "grey" };
  var LISTED = ["yellow", "red", "grey"];
  var TRUST_CONTEXT = "HCZ-TRUST-LIST-1\u0000";

  var messages = JSON.parse(document.getElementById("messages").textContent);
  var lang = document.documentElement.lang;
  var clockFormat = new Intl.DateTimeFormat(lang, {
    timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hour12: false
  });

  function say(name, values) {
    var text = messages[name] || name;
    Object.keys(values || {}).forEach(function (key) {
      text = text.split("%(" + key + ")s").join(String(values[key]));
    });
    return text;
  }

  function Refusal(code) {
    this.code = code;
  }

  // Bytes

  function base45(text) {
    if (text.length % 3 === 1) {
      throw new Refusal("invalid_code");
    }
    var out = [];
    for (var i = 0; i < text.length; i += 3) {
      var digits = [];
      for (var j = i; j < Math.min(i + 3, text.length); j += 1) {
        var value = ALPHABET.indexOf(text[j]);
        if (value < 0) {
          throw new Refusal("invalid_code");
        }
        digits.push(value);
      }
      if (digits.length === 3) {
        var word = digits[0] + digits[1] * 45 + digits[2] * 2025;
        if (word > 0xffff) {
          throw new Refusal("invalid_code");
        }
        out.push(word >> 8, word & 0xff);
      } else {
        var last = digits[0] + digits[1] * 45;
        if (last > 0xff) {
          throw new Refusal("invalid_code");
        }
        out.push(last);
      }
    }
    return new Uint8Array(out);
  }

  function base64url(text) {
    var plain = text.replace(/-/g, "+").replace(/_/g, "/");
    while (plain.length % 4) {
      plain += "=";
    }
    var binary = atob(plain);
    var out = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) {
      out[i] = binary.charCodeAt(i);
    }
    return out;
  }

  function hex(bytes) {
    return Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? "0" : "") + b.toString(16);
    }).join("");
  }

  function u32(bytes, at) {
    return ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
  }

  function u24(bytes, at) {
    return (bytes[at] << 16) + (bytes[at + 1] << 8) + bytes[at + 2];
  }

  function concat(a, b) {
    var out = new Uint8Array(a.length + b.length);
    out.set(a, 0);
    out.set(b, a.length);
    return out;
  }

  function ascii(text) {
    return new TextEncoder().encode(text);
  }

  function seconds(iso) {
    return iso ? Date.parse(iso) / 1000 : null;
  }

  function nowSeconds() {
    return Date.now() / 1000;
  }

  // Ed25519: WebCrypto where the browser has it, else the noble library.

  var nobleLoaded = null;

  function verifyEd25519(publicKey, signature, message) {
    return crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"])
      .then(function (key) {
        return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
      })
      .catch(function (error) {
        if (error && error.name === "NotSupportedError") {
          nobleLoaded = nobleLoaded || import("/static/vendor/noble-ed25519.js");
          return nobleLoaded.then(function (ed) {
            return ed.verifyAsync(signature, message, publicKey);
          });
        }
        return false;
      });
  }

  // The trust material

  function recordOf(json) {
    return {
      region: json.region,
      keyId: json.key_id,
      role: json.role,
      publicKey: base64url(json.public_key),
      validFrom: seconds(json.valid_from),
      signUntil: seconds(json.sign_until),
      acceptUntil: seconds(json.accept_until),
      revokedAt: seconds(json.revoked_at)
    };
  }

  function loadTrustList(documentText, anchors, at) {
    var outer = JSON.parse(documentText);
    if (outer.format !== "healthcode-trust-list/1") {
      return Promise.reject(new Refusal("no_trust_list"));
    }
    var anchor = anchors.map(recordOf).filter(function (a) {
      return a.role === "trust-list" && a.region === outer.signer.region &&
        a.keyId === outer.signer.key_id;
    })[0];
    if (!anchor || (anchor.revokedAt !== null && at >= anchor.revokedAt)) {
      return Promise.reject(new Refusal("no_trust_list"));
    }
    var payload = base64url(outer.payload);
    return verifyEd25519(anchor.publicKey, base64url(outer.signature),
      concat(ascii(TRUST_CONTEXT), payload)).then(function (good) {
      if (!good) {
        throw new Refusal("no_trust_list");
      }
      var body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
      var issued = seconds(body.issued_at);
      var until = seconds(body.valid_until);
      if (body.version !== 1 || issued > at + LEEWAY || at >= until) {
        throw new Refusal("no_trust_list");
      }
      if (anchor.signUntil !== null && issued > anchor.signUntil) {
        throw new Refusal("no_trust_list");
      }
      var keys = {};
      body.keys.forEach(function (json) {
        var record = recordOf(json);
        if (record.role === "code") {
          keys[record.region + "-" + record.keyId] = record;
        }
      });
      return { issuedAt: issued, validUntil: until, keys: keys };
    });
  }

  function varints(bytes) {
    var position = 0;
    return function () {
      var value = 0;
      var shift = 0;
      for (;;) {
        if (position >= bytes.length || shift > 35) {
          throw new Refusal("stale_status_list");
        }
        var byte = bytes[position];
        position += 1;
        value += (byte & 0x7f) * Math.pow(2, shift);
        if (byte < 0x80) {
          return value;
        }
        shift += 7;
      }
    };
  }

  function inflate(bytes) {
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buffer) {
      return new Uint8Array(buffer);
    });
  }

  function loadStatusList(bytes, trust, at) {
    if (bytes.length < 24 + 64 + 8 || String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]) !== "HCZS" || bytes[4] !== 1) {
      return Promise.reject(new Refusal("stale_status_list"));
    }
    var region = String(u24(bytes, 5));
    var key = trust.keys[region + "-" + hex(bytes.slice(8, 12))];
    var issued = u32(bytes, 12);
    var until = u32(bytes, 16);
    var space = u32(bytes, 20);
    if (!key || (key.revokedAt !== null && at >= key.revokedAt) || issued > at + LEEWAY) {
      return Promise.reject(new Refusal("stale_status_list"));
    }
    var signed = bytes.slice(0, bytes.length - 64);
    return verifyEd25519(key.publicKey, bytes.slice(bytes.length - 64), signed)
      .then(function (good) {
        if (!good) {
          throw new Refusal("stale_status_list");
        }
        return inflate(signed.slice(24));
      })
      .then(function (entries) {
        var next = varints(entries);
        var colours = {};
        LISTED.forEach(function (colour) {
          var count = next();
          var previous = -1;
          for (var i = 0; i < count; i += 1) {
            previous += next() + 1;
            if (previous >= space) {
              throw new Refusal("stale_status_list");
            }
            colours[previous] = colour;
          }
        });
        return { region: region, issuedAt: issued, validUntil: until, space: space, colours: colours };
      });
  }

  var material = null; // { trust, lists: {region: list}, fetchedAt }

  function readMaterial(raw, at) {
    var anchors = JSON.parse(localStorage.getItem(STORE.anchors) || "null") || raw.anchors;
    return loadTrustList(raw.trustList, anchors, at).then(function (trust) {
      var regions = Object.keys(raw.statusLists || {});
      return Promise.all(regions.map(function (region) {
        return loadStatusList(base64url(raw.statusLists[region]), trust, at)
          .catch(function () { return null; });
      })).then(function (lists) {
        var byRegion = {};
        lists.forEach(function (list) {
          if (list) {
            byRegion[list.region] = list;
          }
        });
        return { trust: trust, lists: byRegion, names: raw.regionNames || {} };
      });
    });
  }

  function showMaterial() {
    var state = document.getElementById("material-state");
    if (!material) {
      state.textContent = say("no_trust_list");
      return;
    }
    state.textContent = say("material", {
      time: clockFormat.format(new Date(material.trust.issuedAt * 1000)),
      lists: Object.keys(material.lists).length
    });
  }

  function fetchMaterial() {
    return fetch("/checkpoint/trust.json", { cache: "no-store" })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("status " + answer.status);
        }
        return answer.json();
      })
      .then(function (raw) {
        var kept = localStorage.getItem(STORE.anchors);
        if (!kept) {
          localStorage.setItem(STORE.anchors, JSON.stringify(raw.anchors));
        } else if (kept !== JSON.stringify(raw.anchors)) {
          document.getElementById("material-state").textContent = say("anchors_changed");
        }
        return readMaterial(raw, nowSeconds()).then(function (loaded) {
          localStorage.setItem(STORE.material, JSON.stringify(raw));
          material = loaded;
          showMaterial();
          setOnline(true);
        });
      })
      .catch(function () {
        setOnline(false);
      });
  }

  function restoreMaterial() {
    var raw = JSON.parse(localStorage.getItem(STORE.material) || "null");
    if (!raw) {
      return Promise.resolve();
    }
    return readMaterial(raw, nowSeconds()).then(function (loaded) {
      material = loaded;
      showMaterial();
    }).catch(function () {
      material = null;
      showMaterial();
    });
  }

  // Verifying one code, in the order and with the outcomes the service uses.

  function parseCode(text) {
    if (typeof text !== "string" || text.indexOf("HCZ1:") !== 0) {
      throw new Refusal(text && text.indexOf("HCV1:") === 0 ? "venue_poster" : "invalid_code");
    }
    var raw = base45(text.slice(5));
    if (raw.length < 33 + 64 + 1) {
      throw new Refusal("invalid_code");
    }
    var body = raw.slice(0, raw.length - 64);
    var purpose = body[1] >> 4;
    var wire = body[1] & 0x0f;
    if (body[0] !== 1 || (purpose !== 1 && purpose !== 2)) {
      throw new Refusal("invalid_code");
    }
    var content = {
      purpose: purpose === 1 ? "screen" : "paper",
      colour: null,
      region: String(u24(body, 2)),
      keyId: hex(body.slice(5, 9)),
      issuedAt: u32(body, 9),
      validUntil: u32(body, 13),
      statusIndex: null
    };
    var offset = 33;
    if (purpose === 2) {
      if (wire !== 0 || body.length < offset + 5) {
        throw new Refusal("invalid_code");
      }
      content.statusIndex = u32(body, offset);
      offset += 4;
    } else {
      content.colour = COLOURS[wire];
      if (!content.colour) {
        throw new Refusal("invalid_code");
      }
    }
    var name = body.slice(offset);
    if (name.length < 1 || name.length > 64 || content.validUntil <= content.issuedAt) {
      throw new Refusal("invalid_code");
    }
    try {
      content.maskedName = new TextDecoder("utf-8", { fatal: true }).decode(name);
    } catch (ignored) {
      throw new Refusal("invalid_code");
    }
    content.body = body;
    content.signature = raw.slice(raw.length - 64);
    return content;
  }

  function verifyCode(text, at) {
    var content;
    try {
      content = parseCode(text);
    } catch (refusal) {
      return Promise.reject(refusal);
    }
    if (!material || at >= material.trust.validUntil) {
      return Promise.reject(new Refusal("no_trust_list"));
    }
    var key = material.trust.keys[content.region + "-" + content.keyId];
    if (!key) {
      var unknown = new Refusal("unknown_key");
      unknown.region = content.region;
      return Promise.reject(unknown);
    }
    if (key.revokedAt !== null && at >= key.revokedAt) {
      return Promise.reject(new Refusal("revoked_key"));
    }
    return verifyEd25519(key.publicKey, content.signature, concat(ascii("HCZ1:"), content.body))
      .then(function (good) {
        if (!good || content.issuedAt < key.validFrom - LEEWAY) {
          throw new Refusal("invalid_code");
        }
        if ((key.signUntil !== null && content.issuedAt > key.signUntil) ||
            (key.acceptUntil !== null && at > key.acceptUntil)) {
          throw new Refusal("retired_key");
        }
        var limit = content.purpose === "screen" ? MAX_SCREEN : MAX_PAPER;
        if (content.validUntil - content.issuedAt > limit) {
          throw new Refusal("invalid_code");
        }
        if (at + LEEWAY < content.issuedAt) {
          throw new Refusal("not_yet_valid_code");
        }
        if (at >= content.validUntil) {
          throw new Refusal("expired_code");
        }
        if (content.purpose === "paper") {
          var list = material.lists[content.region];
          if (!list || content.statusIndex >= list.space) {
            throw new Refusal("status_list_not_held");
          }
          if (at >= list.validUntil) {
            throw new Refusal("stale_status_list");
          }
          content.colour = list.colours[content.statusIndex] || "green";
          content.listIssuedAt = list.issuedAt;
        }
        return content;
      });
  }

  // The verdict, full screen

  var verdict = document.getElementById("verdict");
  var verdictTimer = null;
  var paused = false;

  function showVerdict(colour, word, name, reason, detail) {
    verdict.className = "verdict verdict-" + colour;
    verdict.dataset.colour = colour;
    var mark = document.getElementById("verdict-mark");
    mark.className = "mark mark-" + (colour === "refused" ? "red" : colour);
    mark.textContent = { green: "✓", yellow: "!", red: "✕", grey: "?", refused: "✕" }[colour];
    document.getElementById("verdict-word").textContent = word;
    document.getElementById("verdict-name").textContent = name || "";
    document.getElementById("verdict-reason").textContent = reason || "";
    document.getElementById("verdict-detail").textContent = detail || "";
    verdict.hidden = false;
    verdict.focus();
    paused = true;
    clearTimeout(verdictTimer);
    verdictTimer = setTimeout(closeVerdict, 4000);
  }

  function closeVerdict() {
    verdict.hidden = true;
    paused = false;
  }

  document.getElementById("verdict-close").addEventListener("click", closeVerdict);

  // The issuing region by its name where the trust material names it.
  function issuer(region) {
    var name = material && material.names[region];
    return say("issued_by", { region: name ? name + " " + region : region });
  }

  function judge(text) {
    var at = nowSeconds();
    return verifyCode(text, at).then(function (content) {
      var detail = content.purpose === "paper"
        ? say("paper", { time: clockFormat.format(new Date(content.listIssuedAt * 1000)) })
        : say("screen");
      showVerdict(content.colour, say(content.colour), content.maskedName,
        content.colour === "green" ? "" : say("not_green"),
        detail + " · " + issuer(content.region));
      enqueue(text, at);
    }).catch(function (refusal) {
      var code = refusal instanceof Refusal ? refusal.code : "invalid_code";
      var where = refusal instanceof Refusal && refusal.region ? issuer(refusal.region) : "";
      showVerdict("refused", say("refused"), "", say(code), where);
    });
  }

  // The queue of check-ins, uploaded when the server answers

  function queue() {
    return JSON.parse(localStorage.getItem(STORE.queue) || "[]");
  }

  function saveQueue(items) {
    localStorage.setItem(STORE.queue, JSON.stringify(items));
    document.getElementById("queue-count").textContent = String(items.length);
  }

  function newKey() {
    if (crypto.randomUUID) {
      return "cp-" + crypto.randomUUID();
    }
    return "cp-" + hex(crypto.getRandomValues(new Uint8Array(16)));
  }

  function enqueue(text, at) {
    var items = queue();
    items.push({
      code: text,
      idempotencyKey: newKey(),
      checkedInAt: new Date(at * 1000).toISOString()
    });
    saveQueue(items);
    upload();
  }

  var uploading = false;

  function setOnline(online) {
    var net = document.getElementById("net");
    net.dataset.state = online ? "online" : "offline";
    net.textContent = say(online ? "online" : "offline");
  }

  function upload() {
    var items = queue();
    var key = localStorage.getItem(STORE.key);
    if (uploading || !items.length) {
      return Promise.resolve();
    }
    if (!key) {
      document.getElementById("camera-state").textContent = say("no_key");
      return Promise.resolve();
    }
    uploading = true;
    var batch = items.slice(0, 500);
    return fetch("/v1/checkpoints/checkins", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body: JSON.stringify({ scans: batch }),
      cache: "no-store"
    }).then(function (answer) {
      setOnline(true);
      if (answer.ok) {
        // Every scan sent has its outcome now (recorded, a duplicate, or
        // refused for good), so none is sent again; the idempotency keys
        // make a repeat harmless should the answer be lost on the way.
        var sent = {};
        batch.forEach(function (item) { sent[item.idempotencyKey] = true; });
        saveQueue(queue().filter(function (item) { return !sent[item.idempotencyKey]; }));
      }
    }).catch(function () {
      setOnline(false);
    }).then(function () {
      uploading = false;
    });
  }

  // The camera

  var video = document.getElementById("video");
  var canvas = document.getElementById("frame");
  var context = canvas.getContext("2d", { willReadFrequently: true });
  var lastText = null;
  var lastAt = 0;

  function scanFrame() {
    if (!paused && video.readyState >= 2 && window.jsQR) {
      var width = Math.min(640, video.videoWidth);
      var height = Math.round(video.videoHeight * width / video.videoWidth);
      canvas.width = width;
      canvas.height = height;
      context.drawImage(video, 0, 0, width, height);
      var image = context.getImageData(0, 0, width, height);
      var found = window.jsQR(image.data, width, height, { inversionAttempts: "dontInvert" });
      if (found && found.data && (found.data !== lastText || Date.now() - lastAt > 8000)) {
        lastText = found.data;
        lastAt = Date.now();
        judge(found.data);
      }
    }
    setTimeout(scanFrame, 150);
  }

  document.getElementById("start").addEventListener("click", function () {
    var state = document.getElementById("camera-state");
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
      .then(function (stream) {
        video.srcObject = stream;
        return video.play();
      })
      .then(function () {
        state.textContent = say("scanning");
        document.body.dataset.scanning = "yes";
        scanFrame();
      })
      .catch(function () {
        state.textContent = say("camera_failed");
      });
  });

  // Device settings and the look-up

  document.getElementById("device").addEventListener("submit", function (event) {
    event.preventDefault();
    var value = document.getElementById("api-key").value.trim();
    if (value) {
      localStorage.setItem(STORE.key, value);
      document.getElementById("api-key").value = "";
      document.getElementById("camera-state").textContent = say("key_saved");
      upload();
    }
  });
  document.getElementById("refresh-material").addEventListener("click", fetchMaterial);
  document.getElementById("forget-anchors").addEventListener("click", function () {
    localStorage.removeItem(STORE.anchors);
    fetchMaterial();
  });

  document.getElementById("lookup").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var state = document.getElementById("lookup-state");
    var key = localStorage.getItem(STORE.key);
    if (!key) {
      state.textContent = say("no_key");
      return;
    }
    fetch("/v1/checkpoints/lookup", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body: JSON.stringify({ document: {
        kind: form.kind.value, number: form.number.value, country: form.country.value
      } }),
      cache: "no-store"
    }).then(function (answer) {
      return answer.json().then(function (body) {
        if (!answer.ok) {
          state.textContent = say("lookup_failed", { reason: body.message || answer.status });
          return;
        }
        state.textContent = "";
        form.number.value = "";
        showVerdict(body.colour, say(body.colour), body.maskedName,
          body.colour === "green" ? "" : say("not_green"), say("lookup"));
      });
    }).catch(function () {
      setOnline(false);
      state.textContent = say("offline");
    });
  });

  // The verifier, for the page's own tests: verify(text, atSeconds) gives
  // the checked content or the refusal's code.
  window.healthcodeScanner = {
    verify: function (text, at) {
      return verifyCode(text, at).catch(function (refusal) {
        return { refused: refusal instanceof Refusal ? refusal.code : String(refusal) };
      });
    },
    ready: function () {
      return material !== null;
    }
  };

  // Start: what was kept, then the network

  saveQueue(queue());
  restoreMaterial().then(fetchMaterial);
  setInterval(upload, 5000);
  setInterval(fetchMaterial, 10 * 60 * 1000);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
  }
})();
