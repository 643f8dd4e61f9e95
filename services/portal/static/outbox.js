// The offline outbox: a form submitted while offline (or whose sending fails on the network)
// is kept in IndexedDB with its Idempotency-Key and files, and sent again — with the same key,
// so intake files it once — when the network returns: by Background Sync in the service
// worker where there is one, else on the `online` event and every 30 s while the page is open.
// Loaded by the form page and imported by /sw.js (no `document` there). Only an improvement:
// without JavaScript the form posts as plain HTML.
var MotcuaOutbox = (function () {
  var DB = "motcua-outbox", STORE = "forms", TAG = "motcua-outbox";

  function open() {
    return new Promise(function (resolve, reject) {
      var request = indexedDB.open(DB, 1);
      request.onupgradeneeded = function () { request.result.createObjectStore(STORE, { keyPath: "key" }); };
      request.onsuccess = function () { resolve(request.result); };
      request.onerror = function () { reject(request.error); };
    });
  }

  function run(mode, work) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var tx = db.transaction(STORE, mode), store = tx.objectStore(STORE), result;
        var request = work(store);
        if (request) request.onsuccess = function () { result = request.result; };
        tx.oncomplete = function () { db.close(); resolve(result); };
        tx.onerror = function () { db.close(); reject(tx.error); };
      });
    });
  }

  function keep(entry) { return run("readwrite", function (s) { return s.put(entry); }); }
  function drop(key) { return run("readwrite", function (s) { return s.delete(key); }); }
  function all() { return run("readonly", function (s) { return s.getAll(); }); }

  function body(entry) {
    var data = new FormData();
    entry.fields.forEach(function (f) {
      if (f[2] !== null) data.append(f[0], f[1], f[2]); else data.append(f[0], f[1]);
    });
    return data;
  }

  // Send one kept form; resolves with the answer's address (the receipt) once sent, rejects on
  // the network. An answer that is not a receipt (the form refused) is an answer too: shown.
  var sending = {};
  function send(entry) {
    if (sending[entry.key]) return sending[entry.key];
    sending[entry.key] = fetch(entry.action, {
      method: "POST", body: body(entry), credentials: "same-origin", redirect: "follow"
    }).then(function (response) {
      return drop(entry.key).then(function () { return response; });
    }).finally(function () { delete sending[entry.key]; });
    return sending[entry.key];
  }

  function flush() {
    return all().then(function (entries) {
      return Promise.all((entries || []).map(function (entry) {
        return send(entry).then(function (response) {
          return { key: entry.key, url: response.url, redirected: response.redirected };
        }, function () { return null; });
      }));
    });
  }

  return { keep: keep, drop: drop, all: all, send: send, flush: flush, TAG: TAG };
})();

if (typeof document !== "undefined") (function () {
  var RETRY_MS = 30000;

  function state(form, text) {
    var shown = document.querySelector(".outbox-state");
    if (!shown) return;
    shown.textContent = text;
    shown.hidden = !text;
    if (text && shown.scrollIntoView) shown.scrollIntoView({ block: "center" });
  }

  function entryOf(form) {
    var fields = [];
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string") fields.push([name, value, null]);
      else if (value.size > 0) fields.push([name, value, value.name]);
    });
    var key = form.querySelector("input[name=idempotency_key]").value;
    return { key: key, action: form.action, fields: fields, saved: Date.now() };
  }

  function show(response) {
    if (response.redirected) { location.assign(response.url); return Promise.resolve(); }
    return response.text().then(function (html) { document.open(); document.write(html); document.close(); });
  }

  function waitFor(form, entry) {
    state(form, form.dataset.waiting);
    var done = false;
    function retry() {
      if (done) return;
      MotcuaOutbox.all().then(function (kept) {
        if (!kept.some(function (k) { return k.key === entry.key; })) return null;
        return MotcuaOutbox.send(entry).then(function (response) { done = true; return show(response); },
          function () { state(form, form.dataset.waiting); });
      });
    }
    window.addEventListener("online", retry);
    setInterval(retry, RETRY_MS);
    if ("serviceWorker" in navigator) {
      navigator.serviceWorker.addEventListener("message", function (event) {
        var data = event.data || {};
        if (data.type === "outbox-sent" && data.key === entry.key && !done) {
          done = true;
          if (data.redirected) location.assign(data.url); else location.reload();
        }
      });
      navigator.serviceWorker.ready.then(function (registration) {
        if (registration.sync) return registration.sync.register(MotcuaOutbox.TAG);
        return null;
      }).catch(function () { /* no Background Sync: the page retries */ });
    }
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || form.dataset.outbox !== "true" || !window.indexedDB || !window.fetch) return;
    event.preventDefault();
    if (form.dataset.sent === "true") return;
    form.dataset.sent = "true";
    var entry = entryOf(form);
    MotcuaOutbox.keep(entry).then(function () {
      if (!navigator.onLine) return waitFor(form, entry);
      state(form, form.dataset.sending);
      return MotcuaOutbox.send(entry).then(show, function () { waitFor(form, entry); });
    }).catch(function () {
      // No IndexedDB here (a private window): let the browser post the form itself.
      form.dataset.outbox = "false";
      form.submit();
    });
  });

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () { /* none */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var errors = document.getElementById("form-errors");
    if (errors) errors.focus();
  });
})();
