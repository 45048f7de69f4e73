/*
 * Prescriptions: the items editor adds and removes medicine rows in place, and the printed page
 * gets a Print button. Without this file both still work: the row buttons submit the form and
 * the server shows it again with everything typed; the browser's own print command prints.
 */
(function () {
  "use strict";

  var INDEX = /^items-(\d+)-/;

  function rowIndex(row) {
    var input = row.querySelector("[name^='items-']");
    var match = input && INDEX.exec(input.name);
    return match ? parseInt(match[1], 10) : 0;
  }

  /* Legends and button labels carry the row's number ("Medicine 2"): keep them in order. */
  function renumber(list) {
    var rows = list.querySelectorAll("[data-rx-item]");
    Array.prototype.forEach.call(rows, function (row, position) {
      var number = String(position + 1);
      var legend = row.querySelector("legend");
      var remove = row.querySelector("[data-rx-remove]");
      if (legend) {
        legend.textContent = legend.textContent.replace(/\d+/, number);
      }
      if (remove) {
        remove.lastChild.textContent = remove.lastChild.textContent.replace(/\d+/, number);
      }
    });
  }

  function clear(row) {
    row.classList.remove("cd-field--error");
    Array.prototype.forEach.call(row.querySelectorAll(".cd-field__error"), function (error) {
      error.remove();
    });
    Array.prototype.forEach.call(row.querySelectorAll(".cd-field"), function (field) {
      field.classList.remove("cd-field--error", "cd-has-error");
    });
    Array.prototype.forEach.call(row.querySelectorAll("input"), function (input) {
      input.value = "";
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    });
  }

  function setIndex(row, index) {
    Array.prototype.forEach.call(row.querySelectorAll("[name], [id], [for]"), function (node) {
      ["name", "id", "for"].forEach(function (attribute) {
        var value = node.getAttribute(attribute);
        if (value && INDEX.test(value)) {
          node.setAttribute(attribute, value.replace(INDEX, "items-" + index + "-"));
        }
      });
    });
    var remove = row.querySelector("[data-rx-remove]");
    if (remove) {
      remove.value = String(index);
    }
  }

  function setUpEditor() {
    var list = document.querySelector("[data-rx-items]");
    var add = document.querySelector("[data-rx-add]");
    if (!list || !add) {
      return;
    }
    add.addEventListener("click", function (event) {
      var rows = list.querySelectorAll("[data-rx-item]");
      var last = rows[rows.length - 1];
      if (!last) {
        return;
      }
      event.preventDefault();
      var next = 0;
      Array.prototype.forEach.call(rows, function (row) {
        next = Math.max(next, rowIndex(row) + 1);
      });
      var row = last.cloneNode(true);
      clear(row);
      setIndex(row, next);
      list.appendChild(row);
      renumber(list);
      var first = row.querySelector("input");
      if (first) {
        first.focus();
      }
    });
    list.addEventListener("click", function (event) {
      var remove = event.target.closest("[data-rx-remove]");
      if (!remove) {
        return;
      }
      event.preventDefault();
      var row = remove.closest("[data-rx-item]");
      if (list.querySelectorAll("[data-rx-item]").length > 1) {
        row.remove();
        renumber(list);
      } else {
        clear(row);
      }
      add.focus();
    });
  }

  function setUpPrint() {
    var button = document.querySelector("[data-rx-print]");
    if (!button) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      window.print();
    });
  }

  function start() {
    setUpEditor();
    setUpPrint();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
