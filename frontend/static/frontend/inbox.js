/* Inbox: live updates, composer (byte counter, saved replies, emoji, attachments, quick
   replies), keyboard shortcuts and the contact panel. The pages work without this file. */
(function () {
  "use strict";

  var POLL_MS = 1000;
  var HIDDEN_POLL_MS = 6000;
  var root, thread, composer, text, count, limit, canned = [];
  var tokens = { list: null, thread: null };
  var polling = false;

  function $(selector, scope) { return (scope || document).querySelector(selector); }
  function $$(selector, scope) { return Array.prototype.slice.call((scope || document).querySelectorAll(selector)); }
  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  function newKey() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return String(Date.now()) + Math.random().toString(16).slice(2);
  }

  // -- thread scrolling ------------------------------------------------------------------------
  var stickToBottom = true;
  function nearBottom() {
    return !thread || thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
  }
  function toBottom() { if (thread) thread.scrollTop = thread.scrollHeight; }

  // -- live updates ----------------------------------------------------------------------------
  function setTitle(unread) {
    var base = root.getAttribute("data-title") || document.title;
    document.title = (unread > 0 ? "(" + unread + ") " : "") + base;
  }

  function refreshList() {
    var search = $("#inbox-search");
    if (search && search.value.trim()) {
      htmx.trigger(search.form, "submit");
      return;
    }
    htmx.ajax("GET", root.getAttribute("data-list-url"), { target: "#conv-list", swap: "innerHTML" });
  }

  // While the agent reads older messages, a change does not yank the thread away: a
  // "New messages" button appears instead and brings them in.
  var threadPending = false;
  function refreshThread(force) {
    var url = root.getAttribute("data-thread-url");
    if (!url) return;
    if (!force && thread && !nearBottom()) {
      threadPending = true;
      var pill = $("#thread-new");
      if (pill) pill.hidden = false;
      return;
    }
    threadPending = false;
    var pill2 = $("#thread-new");
    if (pill2) pill2.hidden = true;
    htmx.ajax("GET", url, { target: "#thread-messages", swap: "innerHTML" });
  }

  function poll() {
    if (polling) return;
    polling = true;
    fetch(root.getAttribute("data-poll-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        setTitle(data.unread || 0);
        if (tokens.list !== null && data.list !== tokens.list) refreshList();
        tokens.list = data.list;
        if ("thread" in data) {
          if (tokens.thread !== null && data.thread !== tokens.thread) refreshThread();
          tokens.thread = data.thread;
        }
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ })
      .then(function () {
        polling = false;
        window.setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
      });
  }

  // -- composer --------------------------------------------------------------------------------
  var encoder = window.TextEncoder ? new TextEncoder() : null;
  function bytes(value) { return encoder ? encoder.encode(value).length : unescape(encodeURIComponent(value)).length; }

  function updateCount() {
    if (!text || !count) return;
    var n = bytes(text.value);
    count.textContent = n + " / " + limit;
    count.classList.toggle("is-near", n > limit * 0.9 && n <= limit);
    count.classList.toggle("is-over", n > limit);
    var send = $(".composer__send", composer);
    var banner = $("#window-banner");
    var allowed = !banner || banner.getAttribute("data-can-send") === "1";
    if (send) send.disabled = !allowed || n > limit;
    text.style.height = "auto";
    text.style.height = Math.min(text.scrollHeight, 220) + "px";
  }

  function applyWindow() {
    var banner = $("#window-banner");
    if (!composer || !banner) return;
    var allowed = banner.getAttribute("data-can-send") === "1";
    var quick = banner.getAttribute("data-quick-replies") === "1";
    composer.classList.toggle("is-disabled", !allowed);
    if (text) text.disabled = !allowed;
    $$("[data-toggle]", composer).forEach(function (b) {
      b.disabled = !allowed || (b.classList.contains("composer__qr-toggle") && !quick);
    });
    updateCount();
  }

  function insertAtCursor(value) {
    if (!text || text.disabled) return;
    var start = text.selectionStart, end = text.selectionEnd;
    text.value = text.value.slice(0, start) + value + text.value.slice(end);
    text.selectionStart = text.selectionEnd = start + value.length;
    text.focus();
    updateCount();
  }

  // Saved replies: "/" at the start of a word opens the list; arrows, Enter or Tab pick one.
  var cannedList, cannedIndex = 0, cannedMatches = [];
  function slashWord() {
    var upto = text.value.slice(0, text.selectionStart);
    var m = /(^|\s)\/([\w-]*)$/.exec(upto);
    return m ? { query: m[2].toLowerCase(), start: upto.length - m[2].length - 1 } : null;
  }
  function closeCanned() { if (cannedList) { cannedList.hidden = true; cannedMatches = []; } }
  function renderCanned() {
    var word = slashWord();
    if (!word) { closeCanned(); return; }
    cannedMatches = canned.filter(function (c) {
      return c.shortcut.indexOf(word.query) === 0 || c.body.toLowerCase().indexOf(word.query) !== -1;
    }).slice(0, 8);
    cannedIndex = Math.min(cannedIndex, Math.max(cannedMatches.length - 1, 0));
    cannedList.innerHTML = "";
    if (!cannedMatches.length) {
      var none = document.createElement("li");
      none.className = "canned__empty";
      none.textContent = canned.length ? "No saved reply starts with /" + word.query : "No saved replies yet: add them in Settings";
      cannedList.appendChild(none);
    }
    cannedMatches.forEach(function (c, i) {
      var li = document.createElement("li");
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === cannedIndex ? "true" : "false");
      li.setAttribute("data-testid", "canned-option");
      var key = document.createElement("span"); key.className = "canned__key"; key.textContent = "/" + c.shortcut;
      var body = document.createElement("span"); body.className = "canned__body"; body.textContent = c.body;
      li.appendChild(key); li.appendChild(body);
      li.addEventListener("mousedown", function (e) { e.preventDefault(); pickCanned(i); });
      cannedList.appendChild(li);
    });
    cannedList.hidden = false;
  }
  function pickCanned(i) {
    var word = slashWord(), chosen = cannedMatches[i];
    if (!word || !chosen) return;
    var before = text.value.slice(0, word.start), after = text.value.slice(text.selectionStart);
    text.value = before + chosen.body + after;
    text.selectionStart = text.selectionEnd = (before + chosen.body).length;
    closeCanned();
    updateCount();
  }

  function resetComposer() {
    if (!composer) return;
    text.value = "";
    $$(".composer__extra", composer).forEach(function (el) { el.hidden = true; $$("input", el).forEach(function (i) { i.value = ""; }); });
    $$("[data-toggle]", composer).forEach(function (b) { b.setAttribute("aria-expanded", "false"); });
    var key = $("[data-idempotency]", composer);
    if (key) key.value = newKey();
    updateCount();
    stickToBottom = true;
  }

  function setupComposer() {
    composer = $("[data-composer]");
    if (!composer) return;
    text = $("#composer-text");
    count = $("#composer-count");
    cannedList = $("#canned-list");
    limit = parseInt(composer.getAttribute("data-limit"), 10) || 1000;
    var key = $("[data-idempotency]", composer);
    if (key) key.value = newKey();
    var data = document.getElementById("canned-replies");
    try { canned = data ? JSON.parse(data.textContent) : []; } catch (e) { canned = []; }

    text.addEventListener("input", function () { updateCount(); renderCanned(); });
    text.addEventListener("click", renderCanned);
    text.addEventListener("blur", function () { window.setTimeout(closeCanned, 150); });
    text.addEventListener("keydown", function (e) {
      if (cannedList && !cannedList.hidden && cannedMatches.length) {
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
          e.preventDefault();
          cannedIndex = (cannedIndex + (e.key === "ArrowDown" ? 1 : cannedMatches.length - 1)) % cannedMatches.length;
          renderCanned();
          return;
        }
        if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); pickCanned(cannedIndex); return; }
      }
      if (e.key === "Escape") {
        if (cannedList && !cannedList.hidden) { closeCanned(); e.stopPropagation(); return; }
        text.blur();
      }
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        var send = $(".composer__send", composer);
        if (send && !send.disabled) htmx.trigger(composer, "submit");
      }
    });

    composer.addEventListener("click", function (e) {
      var toggle = e.target.closest("[data-toggle]");
      if (toggle && !toggle.disabled) {
        var panel = $(toggle.getAttribute("data-toggle"));
        panel.hidden = !panel.hidden;
        toggle.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
        if (!panel.hidden) { var input = $("input", panel); if (input) input.focus(); }
      }
      var emoji = e.target.closest("[data-emoji]");
      if (emoji) {
        insertAtCursor(emoji.getAttribute("data-emoji"));
        var details = emoji.closest("details");
        if (details) details.removeAttribute("open");
      }
    });
    applyWindow();
  }

  // Instagram's media links expire: a picture that no longer loads says so instead of breaking.
  document.addEventListener("error", function (e) {
    var img = e.target;
    if (!img || img.tagName !== "IMG" || !img.classList.contains("msg__media")) return;
    var gone = document.createElement("span");
    gone.className = "msg__media-gone";
    gone.setAttribute("role", "img");
    gone.setAttribute("aria-label", "Media no longer available");
    gone.textContent = "Media no longer available";
    var holder = img.closest("a") || img;
    holder.replaceWith(gone);
  }, true);

  // -- keyboard shortcuts ----------------------------------------------------------------------
  function go(step) {
    var rows = $$("#conv-list [data-testid='conversation-row']");
    if (!rows.length) return;
    var at = rows.findIndex(function (r) { return r.classList.contains("is-current"); });
    var next = at === -1 ? rows[0] : rows[at + step];
    if (next) window.location.href = next.getAttribute("href");
  }

  function openHelp() {
    var help = $("#shortcut-help");
    if (help && !help.open) { if (help.showModal) help.showModal(); else help.setAttribute("open", ""); }
  }

  function onKey(e) {
    if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
    if (typing(document.activeElement)) return;
    if ($("#shortcut-help[open]") && e.key !== "?") return;
    var key = e.key;
    if (key === "j") { go(1); }
    else if (key === "k") { go(-1); }
    else if (key === "r" && text && !text.disabled) { text.focus(); }
    else if (key === "e") { var b = $("[data-shortcut-resolve]"); if (b) b.click(); }
    else if (key === "a") { var me = $("[data-testid='assign-me']"); if (me) me.click(); else { var s = $("[data-shortcut-assign]"); if (s) s.focus(); } }
    else if (key === "n") { var note = $("#note-body"); if (note) { document.body.classList.add("panel-open"); note.focus(); } }
    else if (key === "/") { var search = $("#inbox-search"); if (search) search.focus(); }
    else if (key === "?") { openHelp(); }
    else { return; }
    e.preventDefault();
  }

  // -- wiring ----------------------------------------------------------------------------------
  function init() {
    root = $("[data-inbox]");
    document.addEventListener("click", function (e) {
      if (e.target.closest("[data-help-open]")) { document.body.classList.remove("nav-open"); openHelp(); }
      if (e.target.closest("[data-help-close]")) { var h = $("#shortcut-help"); if (h) h.close(); }
      var toggle = e.target.closest("[data-panel-toggle]");
      if (toggle) {
        var open = document.body.classList.toggle("panel-open");
        $$("[data-panel-toggle][aria-expanded]").forEach(function (b) { b.setAttribute("aria-expanded", open ? "true" : "false"); });
      }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape") document.body.classList.remove("panel-open");
    });
    if (!root) return;
    document.addEventListener("keydown", onKey);
    thread = $("#thread-messages");
    if (thread) {
      toBottom();
      thread.addEventListener("scroll", function () {
        stickToBottom = nearBottom();
        if (stickToBottom && threadPending) refreshThread(true);
      });
      var pill = $("#thread-new");
      if (pill) pill.addEventListener("click", function () { stickToBottom = true; refreshThread(true); });
      // Images load after the first paint: keep the newest message in view while they do.
      $$("img", thread).forEach(function (img) { img.addEventListener("load", function () { if (stickToBottom) toBottom(); }); });
    }
    var current = $("#conv-list .is-current");
    if (current && current.scrollIntoView) current.scrollIntoView({ block: "nearest" });
    setupComposer();
    // A refresh that started before one of the agent's own changes must not land after it and
    // put the older state back: such a stale answer is dropped (the change brought its own).
    var writes = 0;
    document.body.addEventListener("htmx:beforeRequest", function (e) {
      var verb = (e.detail.requestConfig && e.detail.requestConfig.verb) || "get";
      if (verb !== "get") writes += 1;
      else e.detail.xhr._inboxWrites = writes;
    });
    document.body.addEventListener("htmx:beforeSwap", function (e) {
      var seen = e.detail.xhr && e.detail.xhr._inboxWrites;
      if (seen !== undefined && seen !== writes) e.detail.shouldSwap = false;
    });
    document.body.addEventListener("htmx:afterSwap", function (e) {
      if (e.detail.target && e.detail.target.id === "thread-messages") {
        applyWindow();
        if (stickToBottom) toBottom();
      }
    });
    document.body.addEventListener("htmx:afterSettle", function () { applyWindow(); });
    document.body.addEventListener("inbox:sent", function () { resetComposer(); window.setTimeout(toBottom, 0); });
    document.body.addEventListener("inbox:changed", function () { refreshList(); });
    tokens.list = root.getAttribute("data-list-token");
    tokens.thread = root.getAttribute("data-thread-token");
    setTitle(parseInt(root.getAttribute("data-unread"), 10) || 0);
    window.setTimeout(poll, POLL_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
