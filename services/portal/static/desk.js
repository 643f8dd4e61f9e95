// Desk submission: one click sends the form once. Only an improvement: the server's
// Idempotency-Key is what makes a second sending file no second dossier.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!form.classList || !form.classList.contains("desk-form")) return;
  if (form.dataset.sent === "true") { event.preventDefault(); return; }
  form.dataset.sent = "true";
  var button = form.querySelector("button[type=submit]");
  if (button) {
    button.setAttribute("aria-disabled", "true");
    if (form.dataset.busy) button.textContent = form.dataset.busy;
  }
});
window.addEventListener("pageshow", function () {
  // Back to a page from the cache: let it be sent again (the key still guards it).
  document.querySelectorAll("form.desk-form").forEach(function (form) {
    form.dataset.sent = "";
    var button = form.querySelector("button[type=submit]");
    if (button) button.removeAttribute("aria-disabled");
  });
});
// A refused form: take the keyboard and the screen reader to the list of what to correct.
document.addEventListener("DOMContentLoaded", function () {
  var errors = document.getElementById("form-errors");
  if (errors) errors.focus();
});
