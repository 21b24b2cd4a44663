// sag-bench listening test client. No dependencies; works offline against the study server.
// The session (rater id + token) and any answer not yet acknowledged live in localStorage, so a reload or a
// crash resumes where the rater stopped and an answer is only forgotten once the server has stored it.
"use strict";

const $ = (id) => document.getElementById(id);
const RETRY_MS = 2000;
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
}

function status(text) { $("status").textContent = text; }

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

async function submitHeadphone(answers) {
  try {
    await api("POST", `/api/sessions/${session.rater_id}/headphone`, { answers });
  } catch (error) {
    if (!(error instanceof HttpError) || error.status >= 500) {
      status("Could not save, retrying...");
      return setTimeout(() => submitHeadphone(answers), RETRY_MS);
    }
  }
  session.headphone_done = true;
  route();
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
async function sendPending() {
  const pending = session.pending;
  if (!pending) return route();
  try {
    await api("POST", `/api/sessions/${session.rater_id}/ratings`, pending);
  } catch (error) {
    if (!(error instanceof HttpError) || error.status >= 500) {
      status("Could not save your answer (connection?). Retrying...");
      return setTimeout(sendPending, RETRY_MS);
    }
    if (error.status !== 409) status("The server refused this answer: " + error.message);
  }
  session.answers[pending.item_id] = pending.score;
  session.pending = null;
  saveLocal();
  route();
}

async function finish() {
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
    status("Could not finish (connection?). Retrying...");
    setTimeout(finish, RETRY_MS);
  }
}

async function resume(saved) {
  session = { rater_id: saved.rater_id, token: saved.token };
  try {
    const fresh = await api("GET", `/api/sessions/${saved.rater_id}`);
    session = { ...fresh, token: saved.token, pending: saved.pending };
    return true;
  } catch (error) {
    if (error instanceof HttpError && error.status < 500) {
      localStorage.removeItem(storageKey);  // a session this server does not know: start afresh
      session = null;
      return false;
    }
    throw error;
  }
}

async function boot() {
  try {
    study = await api("GET", "/api/study");
  } catch (error) {
    status("The study could not be loaded: " + error.message);
    return;
  }
  document.title = study.title;
  $("title").textContent = study.title;
  storageKey = "sag-bench-session/" + study.study_id;
  const saved = JSON.parse(localStorage.getItem(storageKey) || "null");
  try {
    if (saved && (await resume(saved))) return session.pending ? sendPending() : route();
  } catch (error) {
    status("Could not reach the server, retrying...");
    return setTimeout(boot, RETRY_MS);
  }
  renderWelcome();
}

boot();
