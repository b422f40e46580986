// The service worker: pages that must work offline (the code screen and the
// scanner) are kept from their last visit, and the static files they need
// are kept too. Everything else goes to the network as usual.
"use strict";

var STATIC = "hc-static-v1";
var PAGES = "hc-pages";
var SHELL = [
  "/static/css/app.css",
  "/static/js/code.js",
  "/static/js/forget.js",
  "/static/js/scanner.js",
  "/static/vendor/jsQR.js"
];
var OFFLINE_PAGES = [/^\/app$/, /^\/app\/family\/[0-9]+$/, /^\/checkpoint$/];

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(STATIC).then(function (cache) {
      // One missing file must not stop the others from being kept.
      return Promise.all(SHELL.map(function (path) {
        return cache.add(path).catch(function () {});
      }));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf("hc-static-") === 0 && name !== STATIC;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function offlinePage(url) {
  return OFFLINE_PAGES.some(function (pattern) { return pattern.test(url.pathname); });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") {
    return;
  }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) {
    return;
  }
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(
      caches.open(STATIC).then(function (cache) {
        return fetch(request).then(function (answer) {
          if (answer.ok) {
            cache.put(request, answer.clone());
          }
          return answer;
        }).catch(function () {
          return cache.match(request).then(function (kept) {
            return kept || Response.error();
          });
        });
      })
    );
    return;
  }
  if (request.mode === "navigate" && offlinePage(url)) {
    event.respondWith(
      fetch(request).then(function (answer) {
        if (answer.ok && !answer.redirected) {
          var copy = answer.clone();
          caches.open(PAGES).then(function (cache) { cache.put(url.pathname, copy); });
        }
        return answer;
      }).catch(function () {
        return caches.open(PAGES).then(function (cache) {
          return cache.match(url.pathname);
        }).then(function (kept) {
          return kept || Response.error();
        });
      })
    );
  }
});
