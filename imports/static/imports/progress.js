// Follows an import on its admin page: asks the progress view for the import's status body
// every second and shows what it says in place, until the import has ended. No page reload.
"use strict";

(function () {
  const panel = document.getElementById("import-progress");
  if (!panel) {
    return;
  }
  const EVERY_MS = 1000;
  const OPEN = ["pending", "active"];

  function show(name, value) {
    const shown = value === null || value === undefined || value === "" ? "–" : String(value);
    panel.querySelectorAll(`[data-field="${name}"]`).forEach((element) => {
      element.textContent = shown;
    });
  }

  function durationWords(seconds) {
    if (seconds === null || seconds === undefined) {
      return null;
    }
    const whole = Math.round(seconds);
    const hours = Math.floor(whole / 3600);
    const minutes = Math.floor((whole % 3600) / 60);
    if (hours) {
      return `${hours} h ${minutes} min`;
    }
    return minutes ? `${minutes} min ${whole % 60} s` : `${whole % 60} s`;
  }

  function note(words) {
    const element = panel.querySelector('[data-field="note"]');
    element.textContent = words;
    element.hidden = false;
  }

  // Shows the body; true once the import has ended.
  function render(body) {
    show("status", body.status);
    show("phase", body.phase);
    show("progress", Number(body.progress).toFixed(1));
    panel.querySelector('[data-field="bar"]').value = body.progress;
    for (const name of ["processed_rows", "imported_rows", "skipped_rows", "failed_rows"]) {
      show(name, body[name]);
    }
    show("total_rows", body.total_rows === null ? "?" : body.total_rows);
    show("rows_per_second", body.rows_per_second);
    show("eta", durationWords(body.eta_seconds));
    show("stale", body.stale ? "yes" : "no");
    show("recovered_batches", body.recovered_batches);
    const ended = !OPEN.includes(body.status);
    if (ended && OPEN.includes(panel.dataset.status)) {
      note("The import has ended: reload the page to see every field as it ended.");
    }
    panel.dataset.status = body.status;
    panel.querySelectorAll("[data-when-ended]").forEach((element) => {
      element.hidden = !ended;
    });
    if (ended) {
      // An ended import cannot be cancelled; what it can do now shows once the page is reloaded.
      document.querySelectorAll('[data-change="cancel"]').forEach((element) => {
        element.hidden = true;
      });
    }
    return ended;
  }

  async function poll() {
    let answer;
    try {
      answer = await fetch(panel.dataset.progressUrl, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (error) {
      window.setTimeout(poll, EVERY_MS); // the network, for a moment: ask again
      return;
    }
    if (answer.redirected || !answer.ok) {
      note("The progress cannot be read any more (logged out?): reload the page.");
      return;
    }
    if (!render(await answer.json())) {
      window.setTimeout(poll, EVERY_MS);
    }
  }

  poll();
})();
