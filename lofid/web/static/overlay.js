// The OBS overlay: the scene and the track, live, on a transparent page.
"use strict";

const sceneEl = document.getElementById("scene");
const trackEl = document.getElementById("track");

lofid.events((name, doc) => {
  if (name === "status") {
    sceneEl.textContent = doc.scene ? doc.scene.label : "";
    const now = doc.audio && doc.audio.now_playing;
    trackEl.textContent = now ? "♪ " + lofid.trackName(now) : "";
  } else if (name === "scene_changed") {
    sceneEl.textContent = doc.scene;
  }
}, () => {});
