/* Buy Me That Look — the shop's small progressive enhancements (no dependencies). */
(function () {
  "use strict";

  // Product gallery: a thumbnail click shows its photo in the main frame, without a page load.
  function initGallery(gallery) {
    var main = gallery.querySelector("[data-gallery-main]");
    if (!main) return;
    gallery.querySelectorAll("[data-gallery-thumb]").forEach(function (thumb) {
      thumb.addEventListener("click", function () {
        main.src = thumb.dataset.src;
        if (thumb.dataset.width) { main.width = thumb.dataset.width; main.height = thumb.dataset.height; }
        gallery.querySelectorAll("[data-gallery-thumb]").forEach(function (other) {
          other.removeAttribute("aria-current");
        });
        thumb.setAttribute("aria-current", "true");
      });
    });
    // Arrow keys move between thumbnails.
    gallery.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      var thumbs = Array.prototype.slice.call(gallery.querySelectorAll("[data-gallery-thumb]"));
      var index = thumbs.indexOf(document.activeElement);
      if (index < 0) return;
      var next = thumbs[(index + (event.key === "ArrowRight" ? 1 : thumbs.length - 1)) % thumbs.length];
      next.focus();
      next.click();
      event.preventDefault();
    });
  }

  // Filter and sort forms submit as soon as a select changes.
  function initAutosubmit(form) {
    form.querySelectorAll("select").forEach(function (select) {
      select.addEventListener("change", function () { form.submit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-gallery]").forEach(initGallery);
    document.querySelectorAll("form[data-autosubmit]").forEach(initAutosubmit);
    // On small screens the filter panel starts folded (unless filters are active).
    var filters = document.querySelector("[data-filters]");
    if (filters && window.matchMedia("(max-width: 960px)").matches && !filters.querySelector(".filters__count")) {
      filters.removeAttribute("open");
    }
  });
})();
