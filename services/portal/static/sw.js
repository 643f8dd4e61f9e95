// Motcua's service worker (served at /sw.js, scope /): sends the offline outbox's kept forms
// when the network returns (Background Sync), then tells the open pages where the receipt is.
importScripts("/static/outbox.js");

self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (event) { event.waitUntil(self.clients.claim()); });

self.addEventListener("sync", function (event) {
  if (event.tag !== MotcuaOutbox.TAG) return;
  event.waitUntil(MotcuaOutbox.flush().then(function (results) {
    return self.clients.matchAll({ type: "window" }).then(function (clients) {
      results.forEach(function (sent) {
        if (!sent) return;
        clients.forEach(function (client) {
          client.postMessage({ type: "outbox-sent", key: sent.key, url: sent.url, redirected: sent.redirected });
        });
      });
      if (results.some(function (r) { return r === null; })) throw new Error("still offline");
    });
  }));
});
