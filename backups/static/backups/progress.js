// Polls running jobs' progress bars (backups, restores) and swaps in the new bar; reloads
// once a job ends so the page shows its final state without a manual refresh.
(function () {
  "use strict";
  var ACTIVE = '.run-progress[data-status="running"], .run-progress[data-status="queued"]';
  function poll() {
    var bars = document.querySelectorAll(ACTIVE);
    if (!bars.length) { return; }
    var pending = bars.length, finished = false;
    bars.forEach(function (bar) {
      fetch(bar.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.status === "succeeded" || data.status === "partial" || data.status === "failed") { finished = true; }
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
