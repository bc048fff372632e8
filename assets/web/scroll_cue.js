// A table or plot wider than a phone's screen scrolls sideways, but nothing shows that it does: a
// column cut at the edge looks like the table's end. Every such scroller's parent gets
// `scroll-cue-right` while content lies past its right edge and `scroll-cue-left` once scrolled
// away from its start; page.css draws a shade there.
(() => {
  const SCROLLERS = ".virtual-table-viewport, .prose table, .scroll-x .js-plotly-plot";
  const mark = (el) => {
    const host = el.parentElement;
    if (!host) return;
    const hidden = el.scrollWidth - el.clientWidth;
    host.classList.add("scroll-cue-host");
    host.classList.toggle("scroll-cue-right", hidden > 1 && el.scrollLeft < hidden - 1);
    host.classList.toggle("scroll-cue-left", hidden > 1 && el.scrollLeft > 1);
  };
  const watched = new WeakSet();
  const sweep = () => {
    document.querySelectorAll(SCROLLERS).forEach((el) => {
      if (!watched.has(el)) {
        watched.add(el);
        el.addEventListener("scroll", () => mark(el), { passive: true });
      }
      mark(el);
    });
  };
  // Tables appear, change and become visible (tabs) long after load: look again after any change,
  // at most every 150 ms.
  let pending = null;
  const soon = () => {
    if (pending === null) pending = setTimeout(() => { pending = null; sweep(); }, 150);
  };
  const start = () => {
    new MutationObserver(soon).observe(document.body, { childList: true, subtree: true, attributes: true, attributeFilter: ["class", "style"] });
    window.addEventListener("resize", soon);
    sweep();
  };
  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
