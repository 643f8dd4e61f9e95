// The console's small improvements; every page works without them.
// After a POST the page comes back with a notice or a refusal: move the focus there, so a
// keyboard or screen-reader user hears what happened without hunting for it.
(function () {
  "use strict";
  function focusOutcome() {
    var outcome = document.querySelector("main .problem[role=alert], main .notice[role=status]");
    if (!outcome) { return; }
    outcome.setAttribute("tabindex", "-1");
    outcome.focus();
  }
  // A new date for the apology cannot be in the past: the date input says so before review does.
  function apologyMinimum() {
    var day = document.getElementById("apology-date");
    if (!day) { return; }
    var now = new Date();
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    day.min = now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate());
  }
  document.addEventListener("DOMContentLoaded", function () {
    focusOutcome();
    apologyMinimum();
  });
})();
