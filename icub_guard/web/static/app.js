// icub_guard teacher page: no build step, no external code. Talks to teacher_web_node over one WebSocket.
// Frames arrive as binary JPEG messages; each is acknowledged after it is shown, so the node sends no more
// than the browser keeps up with. Every list on the page is bounded and updated in place, so a page left
// open for hours keeps a flat memory footprint.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  ws: null, classes: [], decision: null, questions: new Map(), learning: null, retry: 500, frameUrl: null,
  correcting: null, teacher: localStorage.getItem("icub_guard.teacher") || "",
};
const HISTORY_MAX = 20;

function say(text, ok) {
  const m = $("message");
  m.textContent = text;
  m.className = "message " + (ok ? "ok" : "error");
  m.hidden = false;
  clearTimeout(say.timer);
  if (ok) say.timer = setTimeout(() => { m.hidden = true; }, 4000);
}

function send(body) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) { say("not connected: the label was not sent", false); return false; }
  state.ws.send(JSON.stringify(body));
  return true;
}

function teacher() { return $("teacher").value.trim() || "web"; }

function answer(queryId, label) {
  label = label.trim();
  if (!label) { say("type a label first", false); return; }
  send({ type: "answer", query_id: queryId, label: label, teacher: teacher() });
}

function correct(decisionId, label, forget) {
  label = label.trim();
  if (!label) { say("type the right label first", false); return; }
  send({ type: "correct", decision_id: decisionId, label: label, teacher: teacher(), forget: Boolean(forget) });
}

// ------------------------------------------------------------------ connection
function connect() {
  const token = new URLSearchParams(location.search).get("token");
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
    (token ? "?token=" + encodeURIComponent(token) : "");
  const ws = new WebSocket(url);
  ws.binaryType = "blob";
  state.ws = ws;
  let opened = false;
  ws.onopen = () => { opened = true; state.retry = 500; setConn("connected", "up"); };
  ws.onmessage = (ev) => (typeof ev.data === "string" ? onJson(JSON.parse(ev.data)) : onFrame(ev.data));
  ws.onclose = (ev) => {
    state.ws = null;
    if (ev.code === 1009) say("the last message was too large and the server closed the connection", false);
    if (ev.code === 1008) say("too many messages: the server closed the connection", false);
    const wait = state.retry;
    state.retry = Math.min(5000, state.retry * 2);
    if (!opened) {
      // a refused handshake looks like any other failure: ask the server why
      fetch(location.href, { cache: "no-store" }).then((r) => {
        setConn(r.status === 403 ? "access refused: wrong or missing token" : `offline — retrying in ${wait / 1000} s`,
          r.status === 403 ? "refused" : "down");
      }).catch(() => setConn(`offline — retrying in ${wait / 1000} s`, "down"));
    } else {
      setConn(`disconnected — retrying in ${wait / 1000} s`, "down");
    }
    setTimeout(connect, wait);
  };
}

function setConn(text, cls) { const c = $("conn"); c.textContent = text; c.className = "conn " + cls; }

function onFrame(blob) {
  const url = URL.createObjectURL(blob);
  const img = $("live");
  img.onload = img.onerror = () => {
    if (state.frameUrl && state.frameUrl !== url) URL.revokeObjectURL(state.frameUrl);
    state.frameUrl = url;
    send({ type: "ack" });
  };
  img.src = url;
}

function onJson(m) {
  switch (m.type) {
    case "hello":
      if (!$("teacher").value) $("teacher").value = state.teacher || m.teacher;
      break;
    case "state":
      setClasses(m.classes || []);
      for (const el of $("questions").querySelectorAll(".question")) el.remove();
      state.questions.clear();
      for (const q of m.questions || []) addQuestion(q);
      $("history").replaceChildren();
      for (const e of (m.history || []).slice().reverse()) addHistory(e);
      if (m.decision) showDecision(m.decision);
      showStatus(m.status || {});
      break;
    case "decision": showDecision(m.decision); break;
    case "status": showStatus(m.status); break;
    case "classes": setClasses(m.classes); break;
    case "question": addQuestion(m.question); break;
    case "question_image": {
      const el = state.questions.get(m.query_id);
      if (el) el.querySelector(".crop").src = m.image;
      break;
    }
    case "closed": removeQuestion(m.query_id); break;
    case "history": addHistory(m.entry); break;
    case "result": say(m.message, m.ok); break;
    case "error": say(m.message, false); break;
  }
}

// ------------------------------------------------------------------ rendering
function fmt(x) { return typeof x === "number" ? x.toFixed(2) : "–"; }

function showDecision(d) {
  state.decision = d;
  const verdict = d.accepted ? "accepted" : `rejected (${d.reason})`;
  $("decision").textContent = `#${d.id}: ${d.label} — ${verdict}, margin ${fmt(d.margin)}`;
  $("decision").className = "decision " + (d.accepted ? "accepted" : "rejected");
  $("wrong").disabled = false;
  drawScores(d.scores || {}, d.thresholds || {});
}

function drawScores(scores, thresholds) {
  const box = $("scores");
  const names = Object.keys(scores);
  const values = names.map((n) => scores[n]).concat(Object.values(thresholds)).filter((v) => typeof v === "number");
  const span = Math.max(1e-6, ...values.map(Math.abs));
  while (box.children.length > names.length) box.lastChild.remove();
  names.forEach((name, i) => {
    let row = box.children[i];
    if (!row) {
      row = document.createElement("div");
      row.className = "score";
      row.innerHTML = '<span class="name"></span><span class="track"><span class="bar"></span>' +
        '<span class="thr"></span><span class="zero"></span></span><span class="val"></span>';
      box.appendChild(row);
    }
    const s = scores[name], t = thresholds[name];
    const pos = (v) => 50 + 50 * v / span;
    row.querySelector(".name").textContent = name;
    row.querySelector(".val").textContent = fmt(s);
    const bar = row.querySelector(".bar");
    const v = typeof s === "number" ? s : 0;
    bar.style.left = Math.min(pos(0), pos(v)) + "%";
    bar.style.width = Math.abs(pos(v) - pos(0)) + "%";
    bar.className = "bar " + (typeof t === "number" && v >= t ? "above" : "below");
    const thr = row.querySelector(".thr");
    thr.hidden = typeof t !== "number";
    if (typeof t === "number") { thr.style.left = pos(t) + "%"; thr.title = "threshold " + fmt(t); }
  });
}

function showStatus(s) {
  const on = s.learning === "True" ? true : s.learning === "False" ? false : null;
  state.learning = on;
  $("learning").textContent = "learning: " + (on === null ? "?" : on ? "on" : "off");
  $("learning").className = on ? "on" : "off";
  const part = (k, name) => (s[k] !== undefined ? `${s[k]} ${name}` : null);
  $("stats").textContent = [part("classes", "classes"), part("examples", "examples"), part("learned", "learned"),
    part("queries", "questions"), part("rejected_input.feedback", "labels refused")].filter(Boolean).join(" · ");
}

function setClasses(classes) {
  state.classes = classes.slice();
  for (const el of state.questions.values()) fillClasses(el);
}

function fillClasses(el) {
  const box = el.querySelector(".classes");
  box.replaceChildren();
  state.classes.forEach((name, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "cls";
    b.textContent = (i < 9 ? `${i + 1} ` : "") + name;
    b.dataset.label = name;
    b.onclick = () => answer(Number(el.dataset.qid), name);
    box.appendChild(b);
  });
}

function addQuestion(q) {
  removeQuestion(q.query_id);
  const el = $("question-template").content.firstElementChild.cloneNode(true);
  el.dataset.qid = q.query_id;
  el.id = "q" + q.query_id;
  if (q.image) el.querySelector(".crop").src = q.image;
  const top = (q.top || []).map((t) => `${t[0]} ${fmt(t[1])}`).join(", ");
  el.querySelector(".what").textContent = q.reason === "confirm"
    ? `Is this “${q.label}”? (label from ${q.teacher}, held by the guard; asking ${q.ask || "anyone"})`
    : `Question ${q.query_id}: what is this? (${q.reason}${top ? "; guesses " + top : ""})`;
  fillClasses(el);
  el.querySelector("form").onsubmit = (ev) => {
    ev.preventDefault();
    const input = ev.target.elements.label;
    answer(q.query_id, input.value);
  };
  $("questions").prepend(el);
  state.questions.set(q.query_id, el);
  $("nq").textContent = `(${state.questions.size})`;
}

function removeQuestion(qid) {
  const el = state.questions.get(qid);
  if (el) el.remove();
  state.questions.delete(qid);
  $("nq").textContent = state.questions.size ? `(${state.questions.size})` : "";
}

function addHistory(e) {
  const li = document.createElement("li");
  const who = e.kind === "label" ? `label from ${e.teacher || "?"}` : "the robot decided";
  const ref = e.decision_id !== null && e.decision_id !== undefined ? ` (decision ${e.decision_id})` : "";
  li.textContent = `${e.label} — ${who}${ref} `;
  if (typeof e.decision_id === "number") {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "that was wrong";
    b.onclick = () => startCorrection(e.decision_id, e.label, e.kind === "label");
    li.appendChild(b);
  }
  $("history").prepend(li);
  while ($("history").children.length > HISTORY_MAX) $("history").lastChild.remove();
}

// ------------------------------------------------------------------ corrections
// a robot's decision is corrected by teaching the right label for it; a label a teacher gave is
// forgotten first (the guard's ~/forget), then the right one is taught
function startCorrection(decisionId, label, taught) {
  const what = taught ? `was taught “${label}”` : `said “${label}”`;
  const input = window.prompt(`Decision ${decisionId} ${what}. What is it really?`, "");
  if (input !== null) correct(decisionId, input, taught);
}

// ------------------------------------------------------------------ controls
function init() {
  $("teacher").addEventListener("change", () => localStorage.setItem("icub_guard.teacher", $("teacher").value.trim()));
  $("learning").onclick = () => { if (state.learning !== null) send({ type: "learning", on: !state.learning }); };
  $("save").onclick = () => send({ type: "save" });
  $("wrong").onclick = () => { if (state.decision) startCorrection(state.decision.id, state.decision.label); };
  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const n = Number(ev.key);
    if (Number.isInteger(n) && n >= 1 && n <= 9 && state.classes[n - 1] !== undefined) {
      const first = $("questions").querySelector(".question");
      if (first) { ev.preventDefault(); answer(Number(first.dataset.qid), state.classes[n - 1]); }
    }
  });
  connect();
}

init();
