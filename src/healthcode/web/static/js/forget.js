// On the sign-in page nobody is signed in: the codes kept for offline use
// and the cached pages of whoever used this phone before are removed.
// The checkpoint's trust material and its queue of check-ins are kept.
(function () {
  "use strict";
  try {
    var doomed = [];
    for (var i = 0; i < localStorage.length; i += 1) {
      var key = localStorage.key(i);
      if (key && key.indexOf("hc:code:") === 0) {
        doomed.push(key);
      }
    }
    doomed.forEach(function (key) { localStorage.removeItem(key); });
  } catch (ignored) {
    // Nothing was kept.
  }
  if (window.caches) {
    caches.delete("hc-pages").catch(function () {});
  }
})();
