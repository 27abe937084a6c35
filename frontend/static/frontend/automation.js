// Automation rule form: show the fields of the chosen trigger, match mode and action types.
(function () {
  "use strict";

  function words(value) {
    return (value || "").split(" ").filter(Boolean);
  }

  function setShown(element, shown) {
    element.hidden = !shown;
    element.querySelectorAll("input, select, textarea").forEach(function (input) {
      input.disabled = !shown;
    });
  }

  function refreshRule(form) {
    var trigger = form.querySelector("[data-au-trigger]").value;
    var match = form.querySelector("[data-au-match]").value;
    form.querySelectorAll("[data-au-when]").forEach(function (element) {
      var shown = words(element.dataset.auWhen).indexOf(trigger) >= 0;
      if (shown && element.dataset.auMode) {
        shown = words(element.dataset.auMode).indexOf(match) >= 0;
      }
      setShown(element, shown);
    });
    var scope = trigger === "comment" ? "comment" : "conversation";
    form.querySelectorAll("[data-au-slot]").forEach(function (slot) {
      var select = slot.querySelector("[data-au-action-type]");
      select.querySelectorAll("option[data-au-scope]").forEach(function (option) {
        option.hidden = option.dataset.auScope !== scope;
        option.disabled = option.hidden;
      });
      if (select.selectedOptions[0] && select.selectedOptions[0].disabled) {
        select.value = "";
      }
      slot.querySelectorAll("[data-au-action]").forEach(function (element) {
        setShown(element, words(element.dataset.auAction).indexOf(select.value) >= 0);
      });
    });
  }

  function countBytes(textarea) {
    var help = textarea.parentElement.querySelector("[data-au-bytes-count]");
    if (!help) return;
    var bytes = new TextEncoder().encode(textarea.value).length;
    help.textContent = bytes + " of 1000 bytes (emoji count as several).";
    help.classList.toggle("au-over", bytes > 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-au-rule-form]").forEach(function (form) {
      if (form.querySelector("fieldset[disabled]")) {
        return;
      }
      form.addEventListener("change", function () {
        refreshRule(form);
      });
      form.addEventListener("input", function (event) {
        if (event.target.matches("[data-au-bytes]")) countBytes(event.target);
      });
      form.querySelectorAll("[data-au-bytes]").forEach(countBytes);
      refreshRule(form);
    });
  });
})();
