// MyVOSpace's file browser: uploads that show their progress (each file is PUT to the JSON API
// as it is read, so nothing big is held in memory), drag and drop, and sorting the listed page.
// Without JavaScript the same upload form posts multipart/form-data and the page reloads.
(() => {
  "use strict";

  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const encodePath = (path) => path.split("/").map(encodeURIComponent).join("/");
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, key) => (key in values ? values[key] : m));

  function humanSize(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
  }

  // ---- sorting the rows of this page ----------------------------------------------------------
  function sortable(table) {
    if (!table) return;
    const body = table.tBodies[0];
    const heads = table.querySelectorAll("th[data-sort]");
    const collator = new Intl.Collator(document.documentElement.lang || undefined,
      { numeric: true, sensitivity: "base" });
    const keyOf = (row, key) => (key === "size" ? Number(row.dataset.size) : row.dataset[key] || "");
    heads.forEach((th) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", () => {
        const key = th.dataset.sort;
        const descending = th.getAttribute("aria-sort") === "ascending";
        heads.forEach((other) => other.removeAttribute("aria-sort"));
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        const rows = Array.from(body.querySelectorAll("tr[data-name]"));
        rows.sort((a, b) => {
          const x = keyOf(a, key);
          const y = keyOf(b, key);
          let order = typeof x === "number" ? x - y : collator.compare(x, y);
          if (order === 0 && key !== "name") order = collator.compare(a.dataset.name, b.dataset.name);
          return descending ? -order : order;
        });
        rows.forEach((row) => body.appendChild(row));
      });
    });
  }

  // ---- refreshing the listing and the usage after uploads -------------------------------------
  async function refresh(fresh) {
    try {
      const response = await fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      ["listing", "usage"].forEach((id) => {
        const now = document.getElementById(id);
        const next = doc.getElementById(id);
        if (now && next) now.replaceWith(document.importNode(next, true));
      });
      const table = document.getElementById("files-table");
      sortable(table);
      if (table) {
        table.querySelectorAll("tr[data-name]").forEach((row) => {
          if (fresh.has(row.dataset.name)) row.classList.add("fresh");
        });
      }
    } catch (e) {
      // the uploads are done either way; a reload shows them
    }
  }

  // ---- uploading ------------------------------------------------------------------------------
  function uploader(form) {
    const input = form.querySelector('input[type="file"]');
    const list = document.getElementById("upload-list");
    const status = document.getElementById("upload-status");
    const drop = form.querySelector(".upload-drop");
    const msg = form.dataset;
    let busy = false;

    function existing(name) {
      const rows = document.querySelectorAll("#files-table tr[data-name]");
      for (const row of rows) if (row.dataset.name === name) return row;
      return null;
    }

    function freeSpace() {
      const usage = document.getElementById("usage");
      if (!usage) return null; // someone else's folder: their quota is checked by the server
      return Number(usage.dataset.quota) - Number(usage.dataset.used);
    }

    function item(file) {
      const li = document.createElement("li");
      li.className = "upload-item";
      li.dataset.name = file.name;
      const name = document.createElement("span");
      name.className = "upload-name";
      name.textContent = file.name + " (" + humanSize(file.size) + ")";
      const pct = document.createElement("span");
      pct.className = "upload-pct";
      pct.textContent = "0 %";
      const bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", file.name);
      const message = document.createElement("p");
      message.className = "upload-message";
      message.textContent = msg.msgUploading;
      li.append(name, pct, bar, message);
      list.appendChild(li);
      return {
        li,
        progress(fraction) {
          const value = Math.max(0, Math.min(100, Math.round(fraction * 100)));
          bar.value = value;
          pct.textContent = value + " %";
        },
        finish(state, text) {
          li.classList.add(state);
          message.textContent = text;
          if (state === "failed") message.setAttribute("role", "alert");
        },
      };
    }

    function problemOf(xhr) {
      try {
        const problem = JSON.parse(xhr.responseText);
        if (problem && (problem.title || problem.detail)) {
          return [problem.title, problem.detail].filter(Boolean).join(": ");
        }
      } catch (e) { /* not JSON */ }
      return xhr.status + " " + (xhr.statusText || msg.msgFailed);
    }

    function send(file, row) {
      return new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        xhr.open("PUT", msg.api + encodePath(msg.folder + "/" + file.name));
        xhr.setRequestHeader("X-CSRF-Token", csrf());
        xhr.setRequestHeader("Accept", "application/json");
        // the server names the type from the file name (FITS, VOTable, ...); browsers guess less well
        xhr.setRequestHeader("Content-Type", "application/octet-stream");
        xhr.upload.addEventListener("progress", (event) => {
          if (event.lengthComputable && event.total) row.progress(event.loaded / event.total);
        });
        xhr.addEventListener("load", () => {
          if (xhr.status >= 200 && xhr.status < 300) {
            row.progress(1);
            row.finish("done", msg.msgDone);
            resolve(true);
          } else {
            row.finish("failed", msg.msgFailed + " — " + problemOf(xhr));
            resolve(false);
          }
        });
        xhr.addEventListener("error", () => { row.finish("failed", msg.msgFailed + " — " + msg.msgNetwork); resolve(false); });
        xhr.addEventListener("abort", () => { row.finish("failed", msg.msgFailed + " — " + msg.msgNetwork); resolve(false); });
        xhr.send(file);
      });
    }

    async function uploadAll(files) {
      if (busy) return;
      if (!files.length) { status.textContent = msg.msgNone; return; }
      busy = true;
      status.textContent = "";
      const fresh = new Set();
      let done = 0;
      let free = freeSpace();
      for (const file of files) {
        const row = item(file);
        const there = existing(file.name);
        if (there && there.dataset.kind !== "data") { row.finish("failed", msg.msgFailed + " — " + msg.msgFolder); continue; }
        if (there && !window.confirm(fill(msg.msgReplace, { name: file.name }))) { row.finish("skipped", msg.msgSkipped); continue; }
        const replaced = there ? Math.max(0, Number(there.dataset.size)) : 0;
        if (free !== null && file.size - replaced > free) {
          row.finish("failed", msg.msgFailed + " — " + fill(msg.msgQuota, { size: humanSize(file.size), free: humanSize(Math.max(0, free)) }));
          continue;
        }
        if (await send(file, row)) {
          done += 1;
          fresh.add(file.name);
          if (free !== null) free -= file.size - replaced;
        }
      }
      status.textContent = fill(msg.msgSummary, { done, total: files.length });
      input.value = "";
      busy = false;
      if (fresh.size) await refresh(fresh);
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      uploadAll(Array.from(input.files));
    });
    if (drop) {
      ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
        event.preventDefault();
        drop.classList.add("dragging");
      }));
      ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("dragging")));
      drop.addEventListener("drop", (event) => {
        event.preventDefault();
        if (event.dataTransfer && event.dataTransfer.files.length) uploadAll(Array.from(event.dataTransfer.files));
      });
    }
  }

  function start() {
    sortable(document.getElementById("files-table"));
    const form = document.getElementById("upload-form");
    if (form && window.XMLHttpRequest && window.FormData) uploader(form);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
