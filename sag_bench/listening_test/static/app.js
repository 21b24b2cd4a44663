// sag-bench listening test client. No dependencies; works offline against the study server.
// The session (rater id + token) and any answer not yet acknowledged live in localStorage, so a reload or a
// crash resumes where the rater stopped and an answer is only forgotten once the server has stored it.
// Every refusal is handled explicitly: a connection problem or server error is retried a bounded number of times
// and then left to the rater ("Try again"), a refused answer is explained and the item stays open, and a saved
// session the server does not accept is never discarded without asking.
"use strict";

const $ = (id) => document.getElementById(id);
const RETRY_MS = 2000;
const MAX_ATTEMPTS = 10;
const CROWD_ID_PARAMS = ["PROLIFIC_PID", "workerId", "participant", "pid"];

let study = null;
let session = null;
let storageKey = "";
let currentAudio = null;

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (session && session.token) headers.Authorization = "Bearer " + session.token;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new HttpError(response.status, data.error || response.statusText);
  return data;
}

function show(page) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== "page-" + page;
  $("status").textContent = "";
  $("problem").hidden = true;
}

function status(text) { $("status").textContent = text; }

// Worth sending again: no answer from the server, a server error, or "too many requests".
function transient(error) { return !(error instanceof HttpError) || error.status >= 500 || error.status === 429; }

// Stop and tell the rater; each action is {label, run}. Nothing stored in this browser is dropped.
function problem(text, actions) {
  $("problem-text").textContent = text;
  const box = $("problem-actions");
  box.innerHTML = "";
  for (const action of actions) {
    const button = document.createElement("button");
    button.textContent = action.label;
    button.onclick = () => { $("problem").hidden = true; action.run(); };
    box.appendChild(button);
  }
  $("status").textContent = "";
  $("problem").hidden = false;
}

// Retry ``task(attempt)`` after a transient failure, at most MAX_ATTEMPTS times, then ask the rater.
function retryLater(task, attempt, what, error) {
  if (attempt + 1 >= MAX_ATTEMPTS) {
    return problem(`${what} did not work (${error.message}). Your answers are kept in this browser.`,
                   [{ label: "Try again", run: () => task(0) }]);
  }
  status(`${what} did not work (${error.message}); retrying (${attempt + 1} of ${MAX_ATTEMPTS - 1})...`);
  return setTimeout(() => task(attempt + 1), RETRY_MS);
}

function saveLocal() {
  localStorage.setItem(storageKey, JSON.stringify({ rater_id: session.rater_id, token: session.token,
                                                     pending: session.pending || null }));
}

// One audio element per page. onEnded fires once per full play; returns a function giving playback stats.
function player(button, url, onEnded) {
  if (currentAudio) currentAudio.pause();
  const audio = new Audio(url);
  currentAudio = audio;
  audio.preload = "auto";
  const label = button.innerHTML;
  const stats = { plays: 0, seconds: 0, last: 0 };
  audio.addEventListener("timeupdate", () => {
    const step = audio.currentTime - stats.last;
    if (step > 0 && step < 1) stats.seconds += step;
    stats.last = audio.currentTime;
  });
  audio.addEventListener("ended", () => {
    stats.plays += 1;
    stats.last = 0;
    button.classList.remove("playing");
    button.innerHTML = "&#8635; Play again";
    onEnded();
  });
  audio.addEventListener("error", () => status("This sound could not be loaded. Check your connection and press Play again."));
  button.onclick = () => {
    if (audio.paused) {
      audio.play().catch((e) => status("Playback failed: " + e.message));
      button.classList.add("playing");
      button.innerHTML = "&#10073;&#10073; Pause";
    } else {
      audio.pause();
      button.classList.remove("playing");
      button.innerHTML = label;
    }
  };
  return { audio, stats };
}

function renderWelcome() {
  $("instructions").innerHTML = "";
  for (const paragraph of study.instructions) {
    const p = document.createElement("p");
    p.textContent = paragraph;
    $("instructions").appendChild(p);
  }
  if (study.estimated_minutes) {
    $("duration").textContent = `The test takes about ${study.estimated_minutes} minutes.`;
    $("duration").hidden = false;
  }
  $("consent-text").textContent = study.consent;
  $("consent").onchange = () => { $("start").disabled = !$("consent").checked; };
  $("start").onclick = startSession;
  show("welcome");
}

async function startSession() {
  $("start").disabled = true;
  const params = new URLSearchParams(location.search);
  const externalId = CROWD_ID_PARAMS.map((name) => params.get(name)).find((value) => value);
  try {
    session = await api("POST", "/api/sessions", externalId ? { external_id: externalId } : {});
  } catch (error) {
    status("Could not start: " + error.message);
    $("start").disabled = false;
    return;
  }
  session.pending = null;
  saveLocal();
  route();
}

function route() {
  if (!session.headphone_done) return renderVolume();
  const next = session.items.findIndex((item) => !(item.id in session.answers));
  if (next >= 0) return renderTrial(next);
  return finish();
}

function renderVolume() {
  player($("volume-play"), "/" + study.calibration_audio, () => {});
  $("volume-done").onclick = () => renderHeadphone(0, []);
  show("volume");
}

function renderHeadphone(trial, answers) {
  const trials = study.headphone_check;
  if (trial >= trials.length) return submitHeadphone(answers);
  $("hp-progress").textContent = `(${trial + 1} of ${trials.length})`;
  const buttons = $("hp-choices").querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  $("hp-play").innerHTML = "&#9654; Play tones";
  player($("hp-play"), "/" + trials[trial].audio, () => buttons.forEach((b) => { b.disabled = false; }));
  buttons.forEach((b) => { b.onclick = () => renderHeadphone(trial + 1, answers.concat([Number(b.dataset.answer)])); });
  show("headphone");
}

async function submitHeadphone(answers, attempt = 0) {
  try {
    await api("POST", `/api/sessions/${session.rater_id}/headphone`, { answers });
  } catch (error) {
    if (transient(error)) return retryLater((n) => submitHeadphone(answers, n), attempt, "Saving the check", error);
    return sessionProblem(error);
  }
  session.headphone_done = true;
  route();
}

// The server does not accept this session or request: say so, and let the rater decide.
function sessionProblem(error) {
  problem(`The server refused this step: ${error.message}.`, [
    { label: "Try again", run: () => location.reload() },
    { label: "Start a new session", run: discardSession },
  ]);
}

// Keep the refused session under another key (never silently deleted), then start afresh.
function discardSession() {
  const saved = localStorage.getItem(storageKey);
  if (saved) localStorage.setItem(`${storageKey}/set-aside/${Date.now()}`, saved);
  localStorage.removeItem(storageKey);
  session = null;
  renderWelcome();
}

async function resync(then) {
  try {
    const fresh = await api("GET", `/api/sessions/${session.rater_id}`);
    session = { ...fresh, token: session.token, pending: null };
    saveLocal();
  } catch (error) {
    return transient(error) ? retryLater(() => resync(then), 0, "Loading your progress", error) : sessionProblem(error);
  }
  return then();
}

function renderTrial(index) {
  const item = session.items[index];
  const total = session.items.length;
  const done = Object.keys(session.answers).length;
  $("progress-text").textContent = `Clip ${done + 1} of ${total}`;
  $("progress-bar").style.width = `${(100 * done) / total}%`;
  $("prompt").textContent = item.prompt || study.question;
  $("prompt").classList.toggle("trap", Boolean(item.prompt));
  $("hint").textContent = study.hint;
  $("comment").value = "";
  const scale = $("scale");
  scale.disabled = true;
  scale.querySelectorAll(".option").forEach((node) => node.remove());
  for (const value of Object.keys(study.scale).map(Number).sort((a, b) => b - a)) {
    const label = document.createElement("label");
    label.className = "option";
    label.innerHTML = `<input type="radio" name="score" value="${value}"> <span>${value} - </span>`;
    label.querySelector("span").textContent += study.scale[value];
    scale.appendChild(label);
  }
  $("submit").disabled = true;
  $("submit").dataset.item = item.id;
  scale.onchange = () => { $("submit").disabled = false; };
  $("listen-note").hidden = false;
  $("trial-play").innerHTML = "&#9654; Play";
  const { stats } = player($("trial-play"), "/" + item.audio, () => {
    scale.disabled = false;
    $("listen-note").hidden = true;
  });
  $("submit").onclick = () => {
    const chosen = scale.querySelector("input:checked");
    if (!chosen) return;
    session.pending = { item_id: item.id, score: Number(chosen.value), comment: $("comment").value.trim(),
                        listen_seconds: Math.round(stats.seconds * 100) / 100, plays: stats.plays };
    saveLocal();
    $("submit").disabled = true;
    sendPending();
  };
  prefetch(index + 1);
  show("trial");
}

function prefetch(index) {
  const next = session.items[index];
  if (next) fetch("/" + next.audio).catch(() => {});
}

// Send the answer waiting in localStorage until the server acknowledges it; only then move on.
async function sendPending(attempt = 0) {
  const pending = session.pending;
  if (!pending) return route();
  try {
    await api("POST", `/api/sessions/${session.rater_id}/ratings`, pending);
  } catch (error) {
    if (transient(error)) return retryLater(sendPending, attempt, "Saving your answer", error);
    if (error.status === 409) {  // answered differently before (another tab): the first answer stands
      return resync(() => { route(); status("This clip was already answered earlier; that answer is kept."); });
    }
    if (error.status === 422) return refusedAnswer(pending, error);
    return sessionProblem(error);
  }
  session.answers[pending.item_id] = pending.score;
  session.pending = null;
  saveLocal();
  route();
}

// The server refused the answer itself (e.g. a character it does not accept): explain, and keep the item open.
function refusedAnswer(pending, error) {
  session.pending = null;
  saveLocal();
  const onPage = !$("page-trial").hidden && $("submit").dataset.item === pending.item_id;
  if (!onPage) route();
  $("submit").disabled = false;
  status("This answer was not accepted: " + error.message + ". Please change it and save again.");
}

async function finish(attempt = 0, synced = false) {
  try {
    const result = await api("POST", `/api/sessions/${session.rater_id}/complete`);
    $("code").textContent = result.completion_code;
    if (study.completion_url) {
      $("code-link").href = study.completion_url.replace("{code}", encodeURIComponent(result.completion_code));
      $("code-link").hidden = false;
    }
    $("progress-bar").style.width = "100%";
    show("done");
  } catch (error) {
    if (transient(error)) return retryLater((n) => finish(n, synced), attempt, "Finishing", error);
    if (error.status === 409 && !synced) {  // the server misses something: load its view once and continue
      return resync(() => (session.headphone_done && session.items.every((i) => i.id in session.answers)
        ? finish(0, true) : route()));
    }
    problem(`The study could not be finished: ${error.message}.`, [{ label: "Try again", run: () => finish(0) }]);
  }
}

async function resume(saved, attempt = 0) {
  session = { rater_id: saved.rater_id, token: saved.token };
  try {
    const fresh = await api("GET", `/api/sessions/${saved.rater_id}`);
    session = { ...fresh, token: saved.token, pending: saved.pending };
  } catch (error) {
    if (transient(error)) return retryLater((n) => resume(saved, n), attempt, "Loading your session", error);
    session = saved;
    return problem(`This browser holds a session the server does not accept (${error.message}). ` +
                   "Starting a new session keeps the old one set aside in this browser.", [
      { label: "Try again", run: () => location.reload() },
      { label: "Start a new session", run: discardSession },
    ]);
  }
  return session.pending ? sendPending() : route();
}

async function boot(attempt = 0) {
  try {
    study = await api("GET", "/api/study");
  } catch (error) {
    return transient(error) ? retryLater(boot, attempt, "Loading the study", error)
      : status("The study could not be loaded: " + error.message);
  }
  document.title = study.title;
  $("title").textContent = study.title;
  storageKey = "sag-bench-session/" + study.study_id;
  const saved = JSON.parse(localStorage.getItem(storageKey) || "null");
  if (saved) return resume(saved);
  renderWelcome();
}

boot();
