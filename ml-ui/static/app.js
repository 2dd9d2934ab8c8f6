// The drawing pad: pointer input (mouse, touch, pen), undo and clear, and predictions that
// follow the drawing. Strokes are kept in CSS pixels and redrawn at the screen's pixel ratio,
// so the picture is sharp and the coordinates right on high-DPI screens. The bitmap fills the
// canvas's content box, inside its border: sizes and positions are measured from there.
"use strict";

(() => {
  const canvas = document.getElementById("pad");
  const ctx = canvas.getContext("2d");
  const digitEl = document.getElementById("digit");
  const statusEl = document.getElementById("status");
  const bars = Array.from(document.querySelectorAll("#bars li"));
  const feedbackEl = document.getElementById("feedback");
  const thanksEl = document.getElementById("thanks");
  const liveEl = document.getElementById("live");

  const strokes = [];
  let current = null;
  let timer = null;
  let sequence = 0;
  let last = null;

  function penWidth() {
    return Math.max(4, canvas.clientWidth / 14);
  }

  function resize() {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * ratio);
    canvas.height = Math.round(canvas.clientHeight * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    redraw();
  }

  function drawStroke(points) {
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    ctx.fillStyle = "#111";
    ctx.lineWidth = penWidth();
    if (points.length === 1) {
      ctx.beginPath();
      ctx.arc(points[0].x, points[0].y, ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(points[0].x, points[0].y);
    for (const p of points.slice(1)) ctx.lineTo(p.x, p.y);
    ctx.stroke();
  }

  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const s of strokes) drawStroke(s);
  }

  function position(event) {
    const rect = canvas.getBoundingClientRect();
    return {
      x: event.clientX - rect.left - canvas.clientLeft,
      y: event.clientY - rect.top - canvas.clientTop,
    };
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = [position(event)];
    strokes.push(current);
    redraw();
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    event.preventDefault();
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) current.push(position(e));
    redraw();
    schedule(250);
  });

  function endStroke(event) {
    if (!current) return;
    event.preventDefault();
    current = null;
    schedule(60);
  }
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  function schedule(delay) {
    if (!liveEl.checked) return;
    clearTimeout(timer);
    timer = setTimeout(predict, delay);
  }

  function reset(message) {
    // An answer still on its way is for a drawing that is gone.
    clearTimeout(timer);
    sequence++;
    digitEl.textContent = "?";
    statusEl.textContent = message;
    feedbackEl.hidden = true;
    last = null;
    for (const li of bars) show(li, 0);
    document.body.dataset.state = "idle";
  }

  function show(li, p) {
    li.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
    li.querySelector(".value").textContent = (100 * p).toFixed(0) + " %";
  }

  async function predict() {
    clearTimeout(timer);
    if (strokes.length === 0) {
      reset("Draw a digit first.");
      return;
    }
    const mine = ++sequence;
    const image = canvas.toDataURL("image/png");
    document.body.dataset.state = "busy";
    try {
      const response = await fetch("/api/predict", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image }),
      });
      const answer = await response.json();
      if (mine !== sequence) return;
      if (!response.ok) {
        reset(answer.error ? answer.error.message : "The server answered " + response.status + ".");
        return;
      }
      last = { image, answer };
      digitEl.textContent = String(answer.digit);
      answer.probabilities.forEach((p, i) => show(bars[i], p));
      const best = answer.probabilities[answer.digit];
      statusEl.textContent = "That looks like a " + answer.digit + " (" + (100 * best).toFixed(1) + " %).";
      feedbackEl.hidden = false;
      thanksEl.textContent = "";
      document.body.dataset.state = "ready";
    } catch (error) {
      if (mine === sequence) reset("The server cannot be reached: " + error.message);
    }
  }

  async function sendFeedback(label) {
    if (!last) return;
    const body = {
      image: last.image,
      label,
      predicted: last.answer.digit,
      model_version: last.answer.model_version,
    };
    try {
      const response = await fetch("/api/feedback", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      thanksEl.textContent = response.ok
        ? "Thank you: saved as a " + label + "."
        : "Could not save the correction (" + response.status + ").";
      document.body.dataset.feedback = response.ok ? "saved" : "failed";
    } catch (error) {
      thanksEl.textContent = "Could not save the correction: " + error.message;
    }
  }

  document.getElementById("undo").addEventListener("click", () => {
    strokes.pop();
    redraw();
    if (strokes.length) predict(); else reset("Draw with a mouse, a finger or a pen.");
  });
  document.getElementById("clear").addEventListener("click", () => {
    strokes.length = 0;
    redraw();
    reset("Draw with a mouse, a finger or a pen.");
  });
  document.getElementById("predict").addEventListener("click", predict);
  for (const button of document.querySelectorAll("#feedback button[data-label]")) {
    button.addEventListener("click", () => sendFeedback(Number(button.dataset.label)));
  }

  window.addEventListener("resize", resize);
  resize();
  document.body.dataset.state = "idle";
})();
