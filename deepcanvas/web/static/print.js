// deepcanvas studio: "Print" on a finished style picture (POST /api/jobs/{id}/print). A small picker: a few
// longest sides above the working size, or a print size with its dpi; the print is queued like any job.
"use strict";

const PRINT_SIDES = [1024, 2048, 4096];

function canPrint(job) {
  return job && job.technique === "style" && job.state === "done" && job.results && job.results.length > 0;
}

function printButton(job, cls = "secondary small") {
  return canPrint(job) ? h("button", { type: "button", class: `${cls} print`, text: "Print", onclick: () => openPrint(job) }) : null;
}

function openPrint(job) {
  const dlg = $("#print-dialog");
  const working = Number(job.params.working_size) || 512;
  const r = job.results[0];
  const sides = PRINT_SIDES.filter((s) => s > working);
  $("#print-sides").replaceChildren(...sides.map((s, i) => h("label", { class: "print-side" },
    h("input", { type: "radio", name: "print-side", value: String(s), checked: i === Math.min(1, sides.length - 1) }),
    ` ${s} px`)));
  $("#print-from").textContent = `From the finished ${r.width}×${r.height} picture; refined at each larger size (working size ${working} px).`;
  $("#print_size").value = "";
  $("#print_dpi").value = "";
  $("#print-error").hidden = true;
  dlg.dataset.job = job.id;
  dlg.showModal();
}

async function submitPrint(e) {
  e.preventDefault();
  const dlg = $("#print-dialog");
  const printSize = $("#print_size").value.trim();
  const dpi = $("#print_dpi").value.trim();
  const body = {};
  if (printSize) body.print_size = printSize;
  else body.size = Number((document.querySelector("input[name=print-side]:checked") || {}).value) || null;
  if (dpi) body.dpi = Number(dpi);
  try {
    const j = await api(`/api/jobs/${dlg.dataset.job}/print`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    dlg.close();
    watch(j.id, j);
    refreshJobs();
  } catch (err) {
    const el = $("#print-error");
    el.textContent = err.message;
    el.hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#print-form").addEventListener("submit", submitPrint);
  $("#print-cancel").addEventListener("click", () => $("#print-dialog").close());
  $("#print-current").addEventListener("click", () => S.current && openPrint(S.current));
});
