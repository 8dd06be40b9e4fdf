// Polls running backups' progress and swaps in the new bar; reloads once a run ends,
// so the page shows the final state (artifacts, checksum, error) without a manual refresh.
(function () {
  "use strict";
  function poll() {
    var bars = document.querySelectorAll('.run-progress[data-status="running"], .run-progress[data-status="queued"]');
    if (!bars.length) { return; }
    var base = window.location.pathname.replace(/\/backuprun\/.*$/, "/backuprun/");
    var pending = bars.length, finished = false;
    bars.forEach(function (bar) {
      fetch(base + bar.dataset.run + "/progress/", {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.status !== bar.dataset.status && (data.status === "succeeded" || data.status === "failed")) {
            finished = true;
          }
          if (data.html) { bar.outerHTML = data.html; }
        })
        .catch(function () {})
        .finally(function () {
          pending -= 1;
          if (pending === 0) {
            if (finished) { window.location.reload(); } else { window.setTimeout(poll, 1000); }
          }
        });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(poll, 1000); });
})();
