/*
 * ClinicDesk's small enhancements, served as a static file (the CSP allows no inline script).
 * The pages work without it: the sidebar then stacks above the content on narrow screens.
 */
(function () {
  "use strict";

  document.documentElement.classList.add("cd-js");

  /* The sidebar becomes a drawer on tablets: a button opens it, Escape or a tap outside closes it. */
  function setUpMenu() {
    var toggle = document.querySelector("[data-cd-menu-toggle]");
    var sidebar = toggle && document.getElementById(toggle.getAttribute("aria-controls"));
    if (!sidebar) {
      return;
    }
    var backdrop = document.querySelector("[data-cd-backdrop]");

    function isOpen() {
      return toggle.getAttribute("aria-expanded") === "true";
    }

    function open() {
      toggle.setAttribute("aria-expanded", "true");
      sidebar.classList.add("is-open");
      var first = sidebar.querySelector(".cd-nav a[href]");
      if (first) {
        first.focus();
      }
    }

    function close(returnFocus) {
      if (!isOpen()) {
        return;
      }
      toggle.setAttribute("aria-expanded", "false");
      sidebar.classList.remove("is-open");
      if (returnFocus) {
        toggle.focus();
      }
    }

    toggle.addEventListener("click", function () {
      if (isOpen()) {
        close(true);
      } else {
        open();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && isOpen()) {
        close(true);
      }
    });
    if (backdrop) {
      backdrop.addEventListener("click", function () {
        close(true);
      });
    }
    sidebar.addEventListener("focusout", function (event) {
      var next = event.relatedTarget;
      if (isOpen() && next && !sidebar.contains(next) && next !== toggle) {
        close(false);
      }
    });
    var wide = window.matchMedia("(min-width: 62em)");
    wide.addEventListener("change", function () {
      close(false);
    });
  }

  /*
   * FAB's forms print a field's help and errors next to it but do not tie them to the field:
   * link them (aria-describedby, aria-invalid) and put the cursor in the first field to fix.
   */
  function describeFormFields() {
    var forms = document.querySelectorAll(".cd-content form");
    var firstInvalid = null;
    Array.prototype.forEach.call(forms, function (form) {
      var fields = form.querySelectorAll("input:not([type=hidden]), select, textarea");
      Array.prototype.forEach.call(fields, function (field) {
        var cell = field.parentElement;
        if (!field.id || !cell) {
          return;
        }
        var ids = [];
        var help = cell.querySelector(":scope > .help-block");
        if (help && help.textContent.trim()) {
          help.id = help.id || field.id + "-help";
          ids.push(help.id);
        }
        var error = cell.querySelector(":scope > .alert-danger");
        if (error) {
          error.id = error.id || field.id + "-error";
          ids.unshift(error.id);
          field.setAttribute("aria-invalid", "true");
          cell.classList.add("cd-has-error");
          firstInvalid = firstInvalid || field;
        }
        if (ids.length) {
          field.setAttribute("aria-describedby", ids.join(" "));
        }
      });
    });
    if (firstInvalid) {
      firstInvalid.focus();
    }
  }

  function ready() {
    setUpMenu();
    describeFormFields();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
