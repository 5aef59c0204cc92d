// The page: the live picture (fragmented MP4 into Media Source Extensions), the
// controls, and the library; kept current by the daemon's events.
"use strict";

const $ = (id) => document.getElementById(id);
const { call, el } = lofid;
let status = null;

// ---------------------------------------------------------------- the picture

// The stream comes in fragments of at most half a second: the page plays a little
// over one behind the newest, and jumps forward when it has fallen further behind
// (a busy tab, a slow machine).
const BEHIND_MAX = 3.5, BEHIND_AIM = 1.2, KEEP_S = 20;

async function play() {
  const video = $("video");
  for (;;) {
    try {
      const res = await fetch("/stream", { headers: lofid.headers(), cache: "no-store" });
      if (res.status === 401 || res.status === 403) return;
      if (!res.ok) throw new Error(res.statusText);
      const type = res.headers.get("Content-Type");
      if (!window.MediaSource || !MediaSource.isTypeSupported(type)) {
        $("live").textContent = "this browser cannot play " + type;
        return;
      }
      const source = new MediaSource();
      video.src = URL.createObjectURL(source);
      await new Promise((r) => source.addEventListener("sourceopen", r, { once: true }));
      const buffer = source.addSourceBuffer(type);
      const waiting = [];
      const pump = () => {
        if (buffer.updating || !waiting.length || source.readyState !== "open") return;
        const ranges = buffer.buffered;
        if (ranges.length && ranges.start(0) < video.currentTime - KEEP_S) {
          buffer.remove(ranges.start(0), video.currentTime - KEEP_S / 2);
          return;
        }
        const size = waiting.reduce((n, c) => n + c.length, 0);
        const data = new Uint8Array(size);
        let at = 0;
        for (const c of waiting.splice(0)) { data.set(c, at); at += c.length; }
        buffer.appendBuffer(data);
      };
      buffer.addEventListener("updateend", () => {
        const ranges = buffer.buffered;
        if (ranges.length) {
          const end = ranges.end(ranges.length - 1);
          if (video.currentTime < ranges.start(0) || end - video.currentTime > BEHIND_MAX) {
            video.currentTime = Math.max(ranges.start(ranges.length - 1), end - BEHIND_AIM);
          }
          // A little behind (after a stall): catch up by playing 5% faster, unheard.
          video.playbackRate = end - video.currentTime > BEHIND_AIM + 0.8 ? 1.05 : 1.0;
          $("live").textContent = `live, ${(end - video.currentTime).toFixed(1)} s buffered`;
        }
        if (video.paused) video.play().catch(() => {});
        pump();
      });
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        waiting.push(value);
        pump();
      }
    } catch (e) { /* the stream ended: the daemon restarts, or went away */ }
    $("live").textContent = "reconnecting…";
    await new Promise((r) => setTimeout(r, 1000));
  }
}

$("sound").addEventListener("click", () => {
  const video = $("video");
  video.muted = !video.muted;
  $("sound").textContent = video.muted ? "Sound on" : "Sound off";
  video.play().catch(() => {});
});

// ---------------------------------------------------------------- controls

function nice(name) { return name.replace(/_/g, " "); }

function say(where, text, bad) {
  $(where).textContent = text;
  $(where).classList.toggle("error", !!bad);
}

async function act(where, method, ...params) {
  try {
    const result = await call(method, ...params);
    if (result && result.action) {
      say(where, result.action === "showing" ? `${result.scene}: showing`
        : result.action === "scheduled" ? `${result.scene}: in ${result.due_in} s`
        : `${result.scene}: crossing now`);
    } else if (where) say(where, "");
    return result;
  } catch (e) {
    if (where) say(where, e.message, true);
    if (e.status === 401 || e.status === 403) askToken();
  }
}

function sceneButtons(scenes) {
  const box = $("scenes");
  box.replaceChildren(...scenes.map((name) => {
    const b = el("button", { type: "button", textContent: nice(name), className: "scene" });
    b.dataset.scene = name;
    b.addEventListener("click", () => act("scene-answer", "scene.set", name));
    return b;
  }));
}

$("scene-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("scene-text").value.trim();
  if (text) act("scene-answer", "scene.set", text);
});
$("next").addEventListener("click", () => act(null, "next"));
$("pause").addEventListener("click", () =>
  act(null, status && status.paused ? "resume" : "pause").then(refresh));
$("output-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const target = $("output-target").value.trim();
  if (target && await act("output-answer", "output.add", target)) $("output-target").value = "";
});

// ---------------------------------------------------------------- what the daemon says

function show(doc) {
  status = doc;
  $("scene").textContent = doc.scene.label;
  $("state").textContent = doc.paused ? "rotation paused" : "";
  $("pause").textContent = doc.paused ? "Resume rotation" : "Pause rotation";
  for (const b of document.querySelectorAll("button.scene")) {
    b.classList.toggle("on", b.dataset.scene === doc.scene.scene);
  }
  for (const tile of document.querySelectorAll(".tile")) {
    tile.classList.toggle("on", tile.dataset.key === doc.loop);
  }
  const audio = doc.audio || {};
  const now = audio.now_playing;
  $("track").textContent = now ? "♪ " + lofid.trackName(now) : "silence";
  $("playlist").replaceChildren(...(audio.playlist || []).map((p) => {
    const item = el("li", { textContent: p.split("/").pop() });
    if (now && now.path === p) item.className = "on";
    return item;
  }));
  $("outputs").replaceChildren(...doc.outputs.map((o) => {
    const remove = el("button", { type: "button", textContent: "Remove", className: "small" });
    remove.addEventListener("click", () => act("output-answer", "output.remove", o.name));
    const state = el("span", { className: "badge " + o.state, textContent: o.state });
    const name = el("span", { className: "target", textContent: o.name, title: o.error || "" });
    return el("li", {}, state, name, remove);
  }));
}

async function refresh() {
  const doc = await act(null, "status");
  if (doc) show(doc);
}

const thumbs = new Map();     // key -> blob URL: each still is fetched once

async function library() {
  const loops = await act(null, "library.list");
  if (!loops) return;
  $("library-count").textContent = `${loops.length} loop${loops.length === 1 ? "" : "s"}`;
  $("library").replaceChildren(...loops.map((loop) => {
    const img = el("img", { alt: nice(loop.scene), loading: "lazy" });
    const tile = el("button", { type: "button", className: "tile", title: "play this loop" },
      img, el("span", { textContent: nice(loop.scene) }));
    tile.dataset.key = loop.key;
    if (status && status.loop === loop.key) tile.classList.add("on");
    tile.addEventListener("click", () => act("scene-answer", "loop.play", loop.key));
    still(loop.key).then((url) => { if (url) img.src = url; });
    return tile;
  }));
}

async function still(key) {
  if (!thumbs.has(key)) {
    thumbs.set(key, fetch(`/thumb/${key}.jpg`, { headers: lofid.headers() })
      .then((r) => (r.ok ? r.blob() : null))
      .then((b) => (b ? URL.createObjectURL(b) : null))
      .catch(() => null));
  }
  return thumbs.get(key);
}

// ---------------------------------------------------------------- the token

function askToken() {
  $("login").hidden = false;
  $("main").hidden = true;
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  localStorage.setItem("lofid-token", $("token").value.trim());
  const res = await fetch("/api/info", { headers: lofid.headers() });
  if (!res.ok) { say("login-error", "That is not this lofid's token.", true); return; }
  location.reload();
});

// ---------------------------------------------------------------- start

async function start() {
  if (!lofid.token()) return askToken();
  const res = await fetch("/api/info", { headers: lofid.headers() });
  if (!res.ok) return askToken();
  const info = await res.json();
  sceneButtons(info.scenes);
  lofid.events((name, doc) => {
    if (name === "status") show(doc);
    else if (name === "loop_ready") library();
  }, (state) => {
    if (state === "token") askToken();
    $("state").textContent = state === "offline" ? "lofid is not answering" : "";
  });
  library();
  play();
}

start();
