// Resumable uploads (tus 1.0.0, tus-js-client): each <input type=file data-tus> sends its files
// to /uploads as soon as they are picked, in parts, retrying and resuming where a dropped
// connection stopped; then puts intake's attachment id in the form as a hidden
// `doc.<document type>` field (replacing those kept from an earlier attempt) and disables the
// file input, so the form posts the ids, not the files again. Without JavaScript, or without
// tus support, the input stays a plain multipart file field.
(function () {
  "use strict";
  var PART_BYTES = 512 * 1024; // a part lost to a buffering proxy costs at most this much
  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000];
  var texts = {};

  function text(key, values) {
    var out = texts[key] || key;
    Object.keys(values || {}).forEach(function (name) {
      out = out.split("{" + name + "}").join(String(values[name]));
    });
    return out;
  }

  function csrfToken(form) {
    var field = form && form.querySelector("input[name=csrf_token]");
    if (field) return field.value;
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRF-Token"] || "";
    } catch (e) {
      return "";
    }
  }

  function procedureOf(input) {
    var form = input.form;
    var code = input.dataset.procedure || (form && form.dataset.procedure);
    if (code) return code;
    var match = /\/procedures\/([^/]+)\/apply/.exec(form ? form.getAttribute("action") || "" : "");
    return match ? decodeURIComponent(match[1]) : "";
  }

  function documentTypeOf(input) {
    return input.dataset.documentType || (input.name || "").replace(/^file\./, "");
  }

  function problemDetail(error) {
    var response = error && error.originalResponse;
    if (response) {
      try {
        var body = JSON.parse(response.getBody() || "{}");
        if (body.detail) return body.detail;
      } catch (e) { /* not JSON: the generic message below */ }
    }
    return error && error.message ? error.message : String(error);
  }

  function Row(input, file) {
    this.box = document.createElement("p");
    this.box.className = "upload-progress";
    this.bar = document.createElement("progress");
    this.bar.max = 100;
    this.bar.value = 0;
    this.label = document.createElement("span");
    this.label.setAttribute("role", "status");
    this.label.setAttribute("aria-live", "polite");
    this.label.textContent = file.name + ": " + text("progress", { percent: 0 });
    this.box.appendChild(this.bar);
    this.box.appendChild(document.createTextNode(" "));
    this.box.appendChild(this.label);
    input.parentNode.insertBefore(this.box, input.nextSibling);
    this.name = file.name;
  }
  Row.prototype.show = function (message, percent) {
    if (percent !== undefined) this.bar.value = percent;
    this.label.textContent = this.name + ": " + message;
  };

  // The file is complete; intake may still be storing it (busy: 409) or briefly unreachable
  // (5xx, a dropped connection): ask again a few times before telling the citizen it failed.
  var ATTACHMENT_TRIES = 8;

  function attachmentOf(url, tries) {
    function again(error) {
      if (tries <= 1) throw error;
      return new Promise(function (wait) { setTimeout(wait, 500 * (ATTACHMENT_TRIES - tries + 1)); })
        .then(function () { return attachmentOf(url, tries - 1); });
    }
    return fetch(url + "/attachment", { credentials: "same-origin" }).then(
      function (answer) {
        return answer.json().then(function (body) {
          if (answer.ok) return body;
          var error = new Error(body.detail || answer.statusText);
          if (answer.status === 409 || answer.status >= 500) return again(error);
          throw error;
        });
      },
      again
    );
  }

  function uploadOne(input, file, pending) {
    var row = new Row(input, file);
    return new Promise(function (resolve, reject) {
      var upload = new tus.Upload(file, {
        endpoint: "/uploads",
        chunkSize: PART_BYTES,
        retryDelays: RETRY_DELAYS,
        removeFingerprintOnSuccess: true,
        headers: { "X-CSRF-Token": csrfToken(input.form) },
        metadata: {
          procedure: procedureOf(input),
          document_type: documentTypeOf(input),
          filename: file.name,
          filetype: file.type === "image/jpg" ? "image/jpeg" : file.type,
        },
        onProgress: function (sent, total) {
          var percent = total ? Math.floor((sent / total) * 100) : 0;
          row.show(text("progress", { percent: percent }), percent);
        },
        onShouldRetry: function (error, attempt, options) {
          row.show(text("retrying"));
          var status = error.originalResponse ? error.originalResponse.getStatus() : 0;
          return !status || status >= 500 || status === 409 || status === 423 || status === 429;
        },
        onError: function (error) {
          if (!navigator.onLine) { // resume when the network returns, from where it stopped
            row.show(text("retrying"));
            window.addEventListener("online", function () { upload.start(); }, { once: true });
            return;
          }
          row.show(text("failed", { detail: problemDetail(error) }));
          reject(error);
        },
        onSuccess: function () {
          attachmentOf(upload.url, ATTACHMENT_TRIES)
            .then(function (attachment) {
              row.show(text("done", { name: file.name }), 100);
              resolve(attachment);
            })
            .catch(function (error) {
              row.show(text("failed", { detail: error.message }));
              reject(error);
            });
        },
      });
      pending.push(upload);
      upload.findPreviousUploads().then(function (previous) {
        if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      });
    });
  }

  function improve(input) {
    input.addEventListener("change", function () {
      var files = Array.prototype.slice.call(input.files || []);
      if (!files.length) return;
      var field = input.closest(".field") || input.parentNode;
      field.querySelectorAll(".upload-progress").forEach(function (old) { old.remove(); });
      var pending = [];
      input.form.dataset.uploading = String(Number(input.form.dataset.uploading || 0) + 1);
      Promise.all(files.map(function (file) { return uploadOne(input, file, pending); }))
        .then(function (attachments) {
          var name = "doc." + documentTypeOf(input);
          field.querySelectorAll("input[type=hidden]").forEach(function (kept) {
            if (kept.name === name) kept.remove(); // new files replace the kept ones
          });
          attachments.forEach(function (attachment) {
            var hidden = document.createElement("input");
            hidden.type = "hidden";
            hidden.name = name;
            hidden.value = attachment.id;
            input.parentNode.insertBefore(hidden, input);
          });
          input.dataset.tusAttachments = attachments.map(function (a) { return a.id; }).join(",");
          input.disabled = true; // the ids are posted, not the files again
          input.dispatchEvent(new CustomEvent("tus:done", { bubbles: true, detail: attachments }));
        })
        .catch(function () { /* shown beside the input; the plain form still works */ })
        .then(function () {
          var note = input.form.querySelector(".upload-wait");
          if (note && Number(input.form.dataset.uploading) <= 1) note.remove();
          input.form.dataset.uploading = String(Number(input.form.dataset.uploading) - 1);
        });
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset && Number(form.dataset.uploading || 0) > 0) {
      event.preventDefault();
      event.stopImmediatePropagation();
      var note = form.querySelector(".upload-wait");
      if (!note) {
        note = document.createElement("p");
        note.className = "upload-wait problem";
        note.setAttribute("role", "alert");
        var button = form.querySelector("button[type=submit]");
        (button ? button.parentNode : form).insertBefore(note, button);
      }
      note.textContent = text("wait");
    }
  }, true);

  function start() {
    if (typeof tus === "undefined" || !tus.isSupported) return;
    var meta = document.querySelector("meta[name=motcua-uploads]");
    try { texts = JSON.parse(meta ? meta.getAttribute("content") : "{}"); } catch (e) { texts = {}; }
    document.querySelectorAll("input[type=file][data-tus]").forEach(function (input) {
      if (input.form && !input.dataset.tusReady) {
        input.dataset.tusReady = "true";
        improve(input);
      }
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
