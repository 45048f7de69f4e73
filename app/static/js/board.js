/*
 * The pipeline board's drag and drop. The board works without this file: every card has its
 * own "Move to" form. Dropping a card on another column chooses that stage in the card's form
 * and submits it; "Lost" needs a reason, so a card dropped there has its reason box focused and
 * highlighted instead, and the person presses Move once they chose one.
 */
(function () {
  "use strict";

  var board = document.querySelector("[data-cd-board]");
  if (!board || !("draggable" in document.createElement("li"))) {
    return;
  }
  var dragged = null;

  function formOf(card) {
    return card.querySelector("form.cd-lead-card__move");
  }

  function accepts(card, stage) {
    var form = card && formOf(card);
    if (!form) {
      return false;
    }
    var select = form.querySelector("[data-cd-move-stage]");
    return Array.prototype.some.call(select.options, function (option) {
      return option.value === stage;
    });
  }

  var help = document.querySelector(".cd-board-help--drag");
  if (help) {
    help.hidden = false;
  }

  board.querySelectorAll(".cd-lead-card").forEach(function (card) {
    if (!formOf(card)) {
      return;
    }
    card.setAttribute("draggable", "true");
    card.addEventListener("dragstart", function (event) {
      // Dragging from inside a field or a link keeps its own behaviour.
      if (event.target.closest && event.target.closest("select, input, button")) {
        event.preventDefault();
        return;
      }
      dragged = card;
      card.classList.add("is-dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.getAttribute("data-lead"));
    });
    card.addEventListener("dragend", function () {
      card.classList.remove("is-dragging");
      dragged = null;
      board.querySelectorAll(".is-drop-target").forEach(function (column) {
        column.classList.remove("is-drop-target");
      });
    });
  });

  board.querySelectorAll(".cd-board__col").forEach(function (column) {
    var stage = column.getAttribute("data-stage");
    column.addEventListener("dragover", function (event) {
      if (accepts(dragged, stage)) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "move";
        column.classList.add("is-drop-target");
      }
    });
    column.addEventListener("dragleave", function (event) {
      if (!column.contains(event.relatedTarget)) {
        column.classList.remove("is-drop-target");
      }
    });
    column.addEventListener("drop", function (event) {
      column.classList.remove("is-drop-target");
      if (!accepts(dragged, stage)) {
        return;
      }
      event.preventDefault();
      var card = dragged;
      var form = formOf(card);
      form.querySelector("[data-cd-move-stage]").value = stage;
      var reason = form.querySelector("[data-cd-lost-reason]");
      if (stage === "lost" && reason && !reason.value) {
        card.classList.add("needs-reason");
        reason.setAttribute("aria-invalid", "true");
        reason.focus();
        return;
      }
      if (form.requestSubmit) {
        form.requestSubmit();
      } else {
        form.submit();
      }
    });
  });

  board.addEventListener("change", function (event) {
    if (event.target.matches("[data-cd-lost-reason]") && event.target.value) {
      event.target.removeAttribute("aria-invalid");
      var card = event.target.closest(".cd-lead-card");
      if (card) {
        card.classList.remove("needs-reason");
      }
    }
  });
})();
