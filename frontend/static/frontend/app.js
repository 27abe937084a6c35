/* Relay web UI: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  var root = document.documentElement;
  root.classList.remove("no-js");
  root.classList.add("js");

  function closest(el, selector) {
    return el && el.closest ? el.closest(selector) : null;
  }

  // Dropdowns are <details data-dropdown>: one open at a time, closed by outside click or Esc.
  function closeDropdowns(except) {
    document.querySelectorAll("details[data-dropdown][open]").forEach(function (d) {
      if (d !== except) d.removeAttribute("open");
    });
  }

  document.addEventListener("toggle", function (event) {
    var target = event.target;
    if (target.matches && target.matches("details[data-dropdown]") && target.open) {
      closeDropdowns(target);
    }
  }, true);

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!closest(target, "details[data-dropdown]")) closeDropdowns(null);

    // Copy a field's value: <button data-copy="#field-id">.
    var copyButton = closest(target, "[data-copy]");
    if (copyButton) {
      var field = document.querySelector(copyButton.getAttribute("data-copy"));
      if (field) copyValue(field, copyButton);
    }

    var dismiss = closest(target, "[data-dismiss]");
    if (dismiss) {
      var flash = closest(dismiss, "[data-flash]");
      if (flash) flash.remove();
    }

    if (closest(target, "[data-nav-open]")) document.body.classList.add("nav-open");
    if (closest(target, "[data-nav-close]")) document.body.classList.remove("nav-open");
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      closeDropdowns(null);
      document.body.classList.remove("nav-open");
    }
  });

  function copyValue(field, button) {
    var label = button.querySelector("[data-copy-label]");
    var original = label ? label.textContent : "";
    function done() {
      button.classList.add("is-copied");
      if (label) label.textContent = "Copied";
      window.setTimeout(function () {
        button.classList.remove("is-copied");
        if (label) label.textContent = original;
      }, 1800);
    }
    field.focus();
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () {
        if (document.execCommand("copy")) done();
      });
    } else if (document.execCommand("copy")) {
      done();
    }
  }

  // Forms that destroy something ask first: <form data-confirm="Remove …?">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // Select the whole secret when its field is focused, so it is easy to copy by hand.
  document.addEventListener("focusin", function (event) {
    var el = event.target;
    if (el.matches && el.matches(".copy-field input")) el.select();
  });
})();
