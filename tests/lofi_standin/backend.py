"""A stand-in for lofi.nvim's backend (`lofi-daemon --daemon`), for tests: JSON-RPC 2.0
over stdin/stdout, one message a line, with the real one's order and values.

As the real backend does: `generate` is handled synchronously. It sends
generation_progress (every 5 %) and generation_complete (with the WAV's path) and only
then answers (status "generating"); a track asked for again (same prompt, seed,
duration) is in its cache: generation_complete at once, then the answer (status
"complete"). Without a seed it draws a random u64 (most are beyond 2^53). The track is
a 32-bit float stereo WAV at 32 kHz (MusicGen's rate), the same samples in both
channels, in $LOFI_CACHE_PATH. A failure sends generation_error, then an error answer.

For the tests, $LOFI_STANDIN_ORDER makes other orders lofi.nvim's Lua could see:
  start_first    answer first (as a backend generating in the background would),
                 then progress and complete
  start_error    answer first, then generation_error
  complete_only  progress and complete, then an error answer (so no generation_start)
  fail           generation_error, then an error answer (the real failure order)
$LOFI_STANDIN_SEED fixes the seed drawn when none is given; $LOFI_STANDIN_PACE is
seconds between two progress notifications (a model takes its time).
"""

import hashlib
import json
import math
import os
import random
import sys
import time

# Run as a script: the tests' folder holds media.py, whose float WAV is the one format
# lofi.nvim's tracks come in; one writer, so the stand-in and the tests cannot drift.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from media import write_float_wav  # noqa: E402

RATE = 32000
VERSION = "musicgen-small-standin"
cache = {}


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def notify(method, params):
    send({"jsonrpc": "2.0", "method": method, "params": params})


def write_wav(path, seconds, seed):
    """A soft chord, starting at full level as generated music may."""
    n = int(seconds * RATE)
    base = 110.0 * (1 + (seed % 7) / 7)
    samples = [0.3 * math.cos(2 * math.pi * base * i / RATE)
               + 0.1 * math.cos(2 * math.pi * base * 1.5 * i / RATE) for i in range(n)]
    write_float_wav(path, samples, RATE)


def generate(rid, params):
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return send({"jsonrpc": "2.0", "id": rid,
                     "error": {"code": -32006, "message": "Invalid prompt"}})
    duration = params.get("duration_sec") or 30
    seed = params.get("seed")
    if seed is None:
        fixed = os.environ.get("LOFI_STANDIN_SEED")
        seed = int(fixed) if fixed else random.getrandbits(64)
    track_id = hashlib.sha256(f"musicgen:{prompt}:{seed}:{float(duration)}:{VERSION}"
                              .encode()).hexdigest()[:16]
    order = os.environ.get("LOFI_STANDIN_ORDER", "real")
    answer = {"track_id": track_id, "status": "generating", "position": 0, "seed": seed,
              "backend": "musicgen"}
    if track_id in cache and order == "real":
        notify("generation_complete", cache[track_id])
        return send({"jsonrpc": "2.0", "id": rid, "result": {**answer, "status": "complete"}})
    if order in ("start_first", "start_error"):
        send({"jsonrpc": "2.0", "id": rid, "result": answer})
    if order in ("start_error", "fail"):
        notify("generation_error", {"track_id": track_id, "code": "MODEL_INFERENCE_FAILED",
                                    "message": "the model ran out of memory"})
        if order == "fail":
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32003,
                  "message": "Model inference failed"}})
        return
    for percent in range(5, 101, 5):
        time.sleep(float(os.environ.get("LOFI_STANDIN_PACE") or 0))
        notify("generation_progress", {"track_id": track_id, "percent": percent,
                                       "tokens_generated": percent * 5, "tokens_estimated": 500,
                                       "eta_sec": (100 - percent) / 50})
    folder = os.environ.get("LOFI_CACHE_PATH") or os.path.expanduser("~/.cache/lofi.nvim/musicgen")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{track_id}.wav")
    write_wav(path, duration, seed)
    done = {"track_id": track_id, "path": path, "duration_sec": float(duration),
            "sample_rate": RATE, "prompt": prompt, "seed": seed, "generation_time_sec": 0.25,
            "model_version": VERSION, "backend": "musicgen"}
    cache[track_id] = done
    notify("generation_complete", done)
    if order == "real":
        send({"jsonrpc": "2.0", "id": rid, "result": answer})
    elif order == "complete_only":
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32003,
              "message": "Model inference failed"}})


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as e:
            send({"jsonrpc": "2.0", "id": None,
                  "error": {"code": -32700, "message": f"Invalid JSON: {e}"}})
            continue
        method, rid = request.get("method"), request.get("id")
        if method == "generate":
            generate(rid, request.get("params") or {})
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": rid, "result": {"status": "ok"}})
        elif method == "shutdown":
            send({"jsonrpc": "2.0", "id": rid, "result": {"status": "shutting_down"}})
            return
        else:
            send({"jsonrpc": "2.0", "id": rid,
                  "error": {"code": -32601, "message": f"Method not found: {method}"}})


if __name__ == "__main__":
    main()
