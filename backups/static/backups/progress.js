// Follows running jobs live: polls each running or queued job's progress JSON once a second and swaps
// in its new bar, its status badge and, on its own page, the read-only fields that change (started,
// finished, error...). A backup run's page thus shows "running", its percentage and time left, then its
// final status, without a reload; then its content is fetched once more in the background and swapped
// in, so the copies and checks the end brought show too. A page without the job's badge (the dashboard,
// a restore's page) reloads once the job ends, so it shows its final state.
(function () {
  "use strict";
  var ACTIVE = '.run-progress[data-status="running"], .run-progress[data-status="queued"], ' +
    '.run-status.run-status-running[data-url], .run-status.run-status-queued[data-url]';
  var DONE = ["succeeded", "partial", "failed", "passed"];

  function swap(selector, url, html) {
    document.querySelectorAll(selector).forEach(function (node) {
      if (node.dataset.url === url) { node.outerHTML = html; }
    });
  }

  function apply(url, data) {
    if (data.html) { swap(".run-progress[data-url]", url, data.html); }
    if (data.badge) { swap(".run-status[data-url]", url, data.badge); }
    if (data.fields && document.querySelector('.run-status[data-url="' + url + '"]')) {
      Object.keys(data.fields).forEach(function (name) {
        var field = document.querySelector(".field-" + name + " .readonly");
        if (field && field.textContent !== data.fields[name]) { field.textContent = data.fields[name]; }
      });
    }
  }

  // A job's own page, once the job ended: its status is already in place; fetch the page once more and
  // swap its content, so what the end brought (copies, checks, tables) shows too, without navigating.
  function refreshContent() {
    fetch(window.location.href, {credentials: "same-origin"})
      .then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content-main");
        var current = document.getElementById("content-main");
        if (fresh && current) { current.innerHTML = fresh.innerHTML; }
      })
      .catch(function () {});
  }

  function poll() {
    var urls = [];
    document.querySelectorAll(ACTIVE).forEach(function (node) {
      if (node.dataset.url && urls.indexOf(node.dataset.url) < 0) { urls.push(node.dataset.url); }
    });
    if (!urls.length) { return; }
    var pending = urls.length, reload = false, ended = false;
    urls.forEach(function (url) {
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { return r.json(); })
        .then(function (data) {
          // A page that shows this job's badge (its own page, the runs list) shows the end in place;
          // any other (the dashboard, a restore's page) reloads once, to show what the job changed.
          var inPlace = data.badge && document.querySelector('.run-status[data-url="' + url + '"]');
          apply(url, data);
          if (DONE.indexOf(data.status) >= 0) { if (inPlace) { ended = true; } else { reload = true; } }
        })
        .catch(function () {})
        .finally(function () {
          pending -= 1;
          if (pending === 0) {
            if (reload) { window.location.reload(); return; }
            if (ended && document.body.classList.contains("change-form")) { refreshContent(); }
            window.setTimeout(poll, 1000);
          }
        });
    });
  }
  document.addEventListener("DOMContentLoaded", function () { window.setTimeout(poll, 1000); });
})();
