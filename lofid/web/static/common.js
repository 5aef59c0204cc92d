// Shared by the page and the overlay: the token, requests, and the daemon's events.
"use strict";

const lofid = (() => {
  // The token: carried by the page on 127.0.0.1, else asked for once and kept in this
  // browser; the overlay may take it from the address's #token=... (never sent).
  function token() {
    const meta = document.querySelector('meta[name="lofid-token"]');
    if (meta && meta.content) return meta.content;
    const hash = new URLSearchParams(location.hash.slice(1)).get("token");
    if (hash) return hash;
    return localStorage.getItem("lofid-token") || "";
  }

  function headers(extra) {
    return Object.assign({ "Authorization": "Bearer " + token() }, extra || {});
  }

  async function call(method, ...params) {
    const res = await fetch("/api/" + method, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify(params),
    });
    const doc = await res.json().catch(() => ({ error: res.statusText }));
    if (!res.ok) {
      const err = new Error(doc.error || res.statusText);
      err.status = res.status;
      throw err;
    }
    return doc.result;
  }

  // Server-sent events read through fetch, so the token goes in a header (an
  // EventSource cannot send one). Reconnects after a second when the daemon goes.
  function events(onEvent, onState) {
    let stopped = false;
    async function run() {
      while (!stopped) {
        try {
          const res = await fetch("/events", { headers: headers(), cache: "no-store" });
          if (res.status === 401 || res.status === 403) { onState("token"); return; }
          if (!res.ok) throw new Error(res.statusText);
          onState("live");
          const reader = res.body.getReader();
          const text = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += text.decode(value, { stream: true });
            let cut;
            while ((cut = buf.indexOf("\n\n")) >= 0) {
              const block = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              let name = "message", data = "";
              for (const line of block.split("\n")) {
                if (line.startsWith("event: ")) name = line.slice(7);
                else if (line.startsWith("data: ")) data += line.slice(6);
              }
              if (data) onEvent(name, JSON.parse(data));
            }
          }
        } catch (e) { /* the daemon went away: try again */ }
        onState("offline");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    run();
    return () => { stopped = true; };
  }

  function trackName(now) {
    if (!now || !now.path) return "";
    const file = now.path.split("/").pop();
    return now.prompt ? `${now.prompt}` : file.replace(/\.[a-z0-9]+$/i, "");
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const c of children) node.append(c);
    return node;
  }

  return { token, headers, call, events, trackName, el };
})();
