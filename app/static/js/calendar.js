/*
 * Small enhancements for the calendar, the day list and the walk-in screen. Every page works
 * without this file: the forms have their own buttons and the radios their own labels.
 */
(function () {
  "use strict";

  /* Choosing a branch or a doctor shows the result at once (the Show button still works). */
  function setUpAutoSubmit() {
    document.querySelectorAll("form[data-cd-autosubmit]").forEach(function (form) {
      form.querySelectorAll("select").forEach(function (select) {
        select.addEventListener("change", function () {
          form.requestSubmit ? form.requestSubmit() : form.submit();
        });
      });
    });
  }

  /* Typing a new patient's details chooses "New patient" (no need to tick the radio first). */
  function setUpNewPatient() {
    var details = document.querySelector("[data-cd-new-patient]");
    var radio = document.getElementById("patient-new");
    if (!details || !radio) {
      return;
    }
    details.addEventListener("input", function (event) {
      if (event.target.type !== "checkbox" && event.target.value) {
        radio.checked = true;
      }
    });
  }

  /* Arrow keys move between the calendar's cells, as in a spreadsheet; Tab still goes in order. */
  function setUpGridKeys() {
    var table = document.querySelector(".cd-cal");
    if (!table) {
      return;
    }
    function targets() {
      return Array.prototype.slice.call(table.querySelectorAll("tbody a[href]"));
    }
    function centre(element) {
      var box = element.getBoundingClientRect();
      return { x: box.left + box.width / 2, y: box.top + box.height / 2 };
    }
    table.addEventListener("keydown", function (event) {
      var keys = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
      var step = keys[event.key];
      if (!step || !event.target.matches("a[href]")) {
        return;
      }
      var from = centre(event.target);
      var best = null;
      var bestScore = Infinity;
      targets().forEach(function (link) {
        if (link === event.target) {
          return;
        }
        var to = centre(link);
        var along = (to.x - from.x) * step[0] + (to.y - from.y) * step[1];
        if (along <= 1) {
          return;
        }
        var across = Math.abs((to.x - from.x) * step[1]) + Math.abs((to.y - from.y) * step[0]);
        var score = along + across * 3;
        if (score < bestScore) {
          bestScore = score;
          best = link;
        }
      });
      if (best) {
        event.preventDefault();
        best.focus();
        best.scrollIntoView({ block: "nearest", inline: "nearest" });
      }
    });
  }

  setUpAutoSubmit();
  setUpNewPatient();
  setUpGridKeys();
})();
