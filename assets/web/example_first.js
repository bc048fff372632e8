// Picking an example fills the inputs through a round trip to the server (Gradio's example event
// is not queued: a POST to .../run/predict). A Transcribe, Spot or Answer pressed before that
// answer lands sends the inputs as they were: no audio ("No audio was received"), or the previous
// question. So while such a request is in flight, a press on one of the page's buttons, or Enter in
// a text box, waits until its answer has been applied (at most HOLD_MS), then goes through.
(() => {
  if (window.exampleFirst) return;
  const HOLD_MS = 15000;
  const APPLIED_MS = 60; // after the response body is read: Gradio applies it in the same turn
  let inFlight = 0;
  let waiting = [];
  const release = () => {
    if (inFlight > 0) return;
    const now = waiting;
    waiting = [];
    now.forEach((go) => go());
  };
  const unqueued = (resource, options) => {
    const method = (options && options.method) || (resource instanceof Request ? resource.method : "GET");
    const url = resource instanceof Request ? resource.url : String(resource);
    return method.toUpperCase() === "POST" && new URL(url, location.href).pathname.endsWith("/run/predict");
  };
  const original = window.fetch;
  window.fetch = function (resource, options) {
    const answer = original.apply(this, arguments);
    if (!unqueued(resource, options)) return answer;
    inFlight += 1;
    const done = () => setTimeout(() => { inFlight -= 1; release(); }, APPLIED_MS);
    answer.then((response) => response.clone().arrayBuffer()).then(done, done);
    return answer;
  };
  // Held once: the replayed event passes, whatever is in flight by then.
  const hold = (event, replay) => {
    if (inFlight === 0 || event.replayed) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    let gone = false;
    const go = () => {
      if (gone) return;
      gone = true;
      replay();
    };
    waiting.push(go);
    setTimeout(go, HOLD_MS);
  };
  const BUTTONS = "button.primary, button.secondary, button.stop";
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element && event.target.closest(BUTTONS);
    if (!button || button.closest(".gallery-item, [role=tab]")) return;
    hold(event, () => {
      const again = new MouseEvent("click", { bubbles: true, cancelable: true });
      again.replayed = true;
      button.dispatchEvent(again);
    });
  }, true);
  document.addEventListener("keypress", (event) => {
    const box = event.target;
    if (event.key !== "Enter" || event.shiftKey || !(box instanceof HTMLTextAreaElement || box instanceof HTMLInputElement)) return;
    hold(event, () => {
      const again = new KeyboardEvent("keypress", { key: "Enter", code: "Enter", bubbles: true, cancelable: true });
      again.replayed = true;
      box.dispatchEvent(again);
    });
  }, true);
  window.exampleFirst = { pending: () => inFlight }; // for tests and the curious
})();
