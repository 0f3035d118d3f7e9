/* "Buy the look": hovering or tapping an article's box highlights its row, and the reverse.
   Every box, row and card carries data-btl-key; elements sharing a key light up together. */
(function () {
  "use strict";
  function setActive(look, key, on) {
    look.querySelectorAll("[data-btl-key]").forEach(function (el) {
      if (el.classList.contains("btl__box") || el.classList.contains("btl__row")) {
        el.classList.toggle("is-active", on && el.getAttribute("data-btl-key") === key);
      }
    });
  }
  function bind(look) {
    if (look.dataset.btlBound) return;
    look.dataset.btlBound = "1";
    var pinned = null;
    look.addEventListener("mouseover", function (event) {
      var el = event.target.closest("[data-btl-key]");
      if (el && look.contains(el)) setActive(look, el.getAttribute("data-btl-key"), true);
    });
    look.addEventListener("mouseleave", function () { setActive(look, pinned, pinned !== null); });
    look.addEventListener("focusin", function (event) {
      var el = event.target.closest("[data-btl-key]");
      if (el) setActive(look, el.getAttribute("data-btl-key"), true);
    });
    look.addEventListener("click", function (event) {
      var box = event.target.closest(".btl__box");
      if (!box) return;
      var key = box.getAttribute("data-btl-key");
      pinned = pinned === key ? null : key;
      setActive(look, key, pinned !== null);
      if (pinned) {
        var row = look.querySelector('.btl__row[data-btl-key="' + key + '"]');
        if (row && row.scrollIntoView && window.matchMedia("(max-width: 720px)").matches) {
          row.scrollIntoView({ behavior: "smooth", block: "nearest" });
        }
      }
    });
  }
  function init() { document.querySelectorAll(".btl__look").forEach(bind); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
})();
