// The incident pages: on "Add incident", suggest a scenario from the title (the server matches it, see
// incidents/services/opening.py) and let any scenario be picked in one click.
"use strict";
(function () {
  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  function pick(select, id) {
    select.value = String(id);
    select.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function pickButton(select, id, label, prefix) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button scenario-pick";
    button.textContent = prefix + label;
    button.addEventListener("click", () => pick(select, id));
    return button;
  }

  ready(function () {
    const help = document.getElementById("scenario-help");
    const title = document.getElementById("id_title");
    const select = document.getElementById("id_scenario");
    if (!help || !title || !select) return;
    // Beside the scenario field, where the commander looks for it.
    const row = select.closest(".form-row") || select.parentNode;
    row.appendChild(help);
    help.querySelectorAll("button[data-scenario]").forEach((b) =>
      b.addEventListener("click", () => pick(select, b.dataset.scenario))
    );
    const box = document.getElementById("scenario-suggestion");
    let timer = null;
    let asked = "";
    function suggest() {
      const text = title.value.trim();
      if (text === asked) return;
      asked = text;
      if (!text) { box.replaceChildren(); return; }
      const url = help.dataset.suggestUrl + "?title=" + encodeURIComponent(text);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : { scenarios: [] }))
        .then((data) => {
          if (text !== asked) return; // an older answer arriving late
          box.replaceChildren();
          if (!data.scenarios.length) return;
          const label = document.createElement("span");
          label.className = "help";
          label.textContent = "Suggested from the title: ";
          box.appendChild(label);
          data.scenarios.forEach((s) => box.appendChild(pickButton(select, s.id, s.label, "Use ")));
        })
        .catch(() => box.replaceChildren());
    }
    title.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(suggest, 250); });
    suggest();
  });
})();

// The working area's "next on the checklist" boxes mirror the checklist's own "done" boxes further down,
// which are part of the same form: ticked at the top, saved with everything else.
(function () {
  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    document.querySelectorAll("input[data-mirror]").forEach(function (box) {
      const target = document.getElementById(box.dataset.mirror);
      if (!target) { box.disabled = true; return; }
      box.checked = target.checked;
      box.addEventListener("change", () => { target.checked = box.checked; });
      target.addEventListener("change", () => { box.checked = target.checked; });
    });
  });
})();
