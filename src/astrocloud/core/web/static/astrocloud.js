// AstroCloud's own small script (no libraries; the page's CSP allows only files from 'self').
//   [data-toggle="id"]  a button that shows or hides the element `id` (the phone menu)
//   form[data-confirm]  asks before the form is sent
//   [data-back]         goes back in the history when there is one (else follows its href)
//   [data-copy]         gets a "Copy" button next to it
//   .table-wrap         becomes keyboard-scrollable when the table is wider than the screen
//   .subnav             scrolls its current tab into view
(() => {
  "use strict";

  const zh = () => (document.documentElement.lang || "").toLowerCase().startsWith("zh");
  const text = (en, chinese) => (zh() ? chinese : en);

  function setUpToggles() {
    document.querySelectorAll("[data-toggle]").forEach((button) => {
      const target = document.getElementById(button.dataset.toggle);
      if (!target) return;
      const show = (open) => {
        target.classList.toggle("open", open);
        button.setAttribute("aria-expanded", String(open));
      };
      button.addEventListener("click", () => show(!target.classList.contains("open")));
      // Escape closes the menu and gives the focus back to its button.
      document.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && target.classList.contains("open")) {
          show(false);
          button.focus();
        }
      });
    });
  }

  function setUpConfirmations() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function setUpBackLinks() {
    document.querySelectorAll("[data-back]").forEach((link) => {
      link.addEventListener("click", (event) => {
        // Only go back to a page of this site; otherwise follow the link.
        let sameSite = false;
        try { sameSite = document.referrer && new URL(document.referrer).origin === location.origin; }
        catch (e) { sameSite = false; }
        if (sameSite && window.history.length > 1) {
          event.preventDefault();
          window.history.back();
        }
      });
    });
  }

  function setUpCopyButtons() {
    document.querySelectorAll("[data-copy]").forEach((el) => {
      const label = text("Copy", "复制");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small secondary copy-button";
      button.textContent = label;
      const status = document.createElement("span");
      status.className = "sr-only";
      status.setAttribute("role", "status");
      let timer = 0;
      button.addEventListener("click", async () => {
        const value = el.textContent.trim();
        let done = false;
        try {
          await navigator.clipboard.writeText(value);
          done = true;
        } catch (e) {
          // No clipboard access (plain http, old browser): select the text for Ctrl+C.
          const range = document.createRange();
          range.selectNodeContents(el);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          try { done = document.execCommand("copy"); } catch (e2) { done = false; }
        }
        const message = done ? text("Copied", "已复制") : text("Press Ctrl+C to copy", "请按 Ctrl+C 复制");
        button.textContent = done ? "✓ " + message : label;
        status.textContent = message;
        clearTimeout(timer);
        timer = setTimeout(() => { button.textContent = label; status.textContent = ""; }, 2500);
      });
      el.after(button, status);
    });
  }

  function setUpScrollingTables() {
    const wraps = document.querySelectorAll(".table-wrap");
    if (!wraps.length) return;
    const update = () => wraps.forEach((wrap) => {
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        if (!wrap.hasAttribute("aria-label")) {
          // Name the region after the table's caption, its folded section or its panel.
          const named = wrap.querySelector("caption") || wrap.closest("details")?.querySelector("summary") ||
            wrap.closest("section")?.querySelector("h2, h3") || document.querySelector("h1");
          wrap.setAttribute("aria-label", named ? named.textContent.trim() : document.title);
        }
      } else if (wrap.getAttribute("tabindex") === "0") {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
      }
    });
    update();
    document.addEventListener("toggle", update, true);   // a <details> opened or closed
    let pending = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(pending);
      pending = requestAnimationFrame(update);
    });
  }

  // On a phone the admin tabs scroll sideways: bring the current one into view.
  function showCurrentTab() {
    document.querySelectorAll(".subnav").forEach((nav) => {
      const current = nav.querySelector("[aria-current='page']");
      if (!current || nav.scrollWidth <= nav.clientWidth) return;
      const offset = current.getBoundingClientRect().left - nav.getBoundingClientRect().left;
      nav.scrollLeft += offset - (nav.clientWidth - current.offsetWidth) / 2;
    });
  }

  // <time datetime="…" data-local>: also show the moment in the reader's own time zone (the
  // server writes UTC, and where it matters the site's local time, beside it).
  function showLocalTimes() {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
    var lang = document.documentElement.lang || undefined;
    document.querySelectorAll("time[datetime][data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime()) || el.nextElementSibling &&
          el.nextElementSibling.classList.contains("local-time")) return;
      var span = document.createElement("span");
      span.className = "local-time";
      span.textContent = " · " + when.toLocaleString(lang, {dateStyle: "medium",
        timeStyle: "medium"}) + (zone ? " (" + zone + ")" : "");
      el.insertAdjacentElement("afterend", span);
    });
  }

  function start() {
    document.documentElement.classList.add("js");
    showLocalTimes();
    setUpToggles();
    setUpConfirmations();
    setUpBackLinks();
    setUpCopyButtons();
    setUpScrollingTables();
    showCurrentTab();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
