"""The OBS script in a real OBS Studio (Debian's obs-studio, with its Python scripting
and obs-websocket 5) under Xvfb, driven the way a streamer's tools drive OBS: over
obs-websocket.

OBS loads the script from its scene collection file, as it does after a user added
it in Tools -> Scripts. obs-websocket cannot press a script's properties button (its
PressInputPropertiesButton reaches only sources' own properties, and a Python script
cannot register a vendor request, which takes a C callback), so the test presses the
script's hotkey "lofid: add the lofid source" with TriggerHotkeyByName: the hotkey
and the button run the same code (both queue the same request for the script's link).

One OBS and one lofid for the module: OBS takes seconds to start on a software GL.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import reap, start_daemon, wait_for, xvfb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("obs") is None,
                       reason="OBS Studio is not installed (Debian package obs-studio)"),
    pytest.mark.skipif(shutil.which("Xvfb") is None,
                       reason="Xvfb is not installed (Debian package xvfb)"),
]

websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")

SCRIPT = Path(__file__).resolve().parent.parent / "plugins" / "obs" / "lofid_obs.py"
PASSWORD = "lofid-test-password"
SIZE = (320, 180)
SCENE_AT_START = "study room"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ObsWebSocket:
    """A small obs-websocket 5 client (protocol: Hello, Identify with the
    authentication string, Request / RequestResponse, Event)."""

    MEDIA_INPUTS = 1 << 8        # EventSubscription::MediaInputs

    def __init__(self, port: int, password: str, events: int = 0):
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}", timeout=30)
        hello = json.loads(self.ws.recv())
        assert hello["op"] == 0, hello
        identify = {"rpcVersion": 1, "eventSubscriptions": events}
        auth = hello["d"].get("authentication")
        if auth:
            secret = base64.b64encode(hashlib.sha256(
                (password + auth["salt"]).encode()).digest()).decode()
            identify["authentication"] = base64.b64encode(hashlib.sha256(
                (secret + auth["challenge"]).encode()).digest()).decode()
        self.ws.send(json.dumps({"op": 1, "d": identify}))
        identified = json.loads(self.ws.recv())
        assert identified["op"] == 2, identified
        self.events: list[dict] = []
        self._ids = 0

    def request(self, kind: str, data: dict | None = None, ok: bool = True) -> dict:
        self._ids += 1
        rid = str(self._ids)
        self.ws.send(json.dumps({"op": 6, "d": {"requestType": kind, "requestId": rid,
                                                "requestData": data or {}}}))
        while True:
            message = json.loads(self.ws.recv())
            if message["op"] == 5:
                self.events.append(message["d"])
            elif message["op"] == 7 and message["d"]["requestId"] == rid:
                status = message["d"]["requestStatus"]
                if ok:
                    assert status["result"], f"{kind}: {status}"
                return message["d"].get("responseData") or {"status": status}

    def wait_event(self, kind: str, timeout: float, **fields) -> dict:
        """The first event `kind` with these data fields, kept or still to come."""
        def match(e):
            return e["eventType"] == kind and all(e.get("eventData", {}).get(k) == v
                                                  for k, v in fields.items())
        deadline = time.monotonic() + timeout
        self.ws.settimeout(1)
        try:
            while True:
                found = [e for e in self.events if match(e)]
                if found:
                    return found[0]
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {kind} {fields} within {timeout} s; "
                                         f"saw {[e['eventType'] for e in self.events]}")
                try:
                    message = json.loads(self.ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                if message["op"] == 5:
                    self.events.append(message["d"])
        finally:
            self.ws.settimeout(30)

    def close(self):
        self.ws.close()


def obs_home(root: Path, ws_port: int | None, scripts: list[dict]) -> Path:
    """An OBS config folder as OBS 29 writes one: global.ini (with obs-websocket's own
    section, [OBSWebSocket], which 5.1 keeps there; ws_port None: no server), a profile
    with a small canvas, and a scene collection whose scripts-tool module holds the
    scripts (path and settings) OBS loads with it."""
    config = root / "obs-studio"
    (config / "basic" / "profiles" / "lofid").mkdir(parents=True)
    (config / "basic" / "scenes").mkdir(parents=True)
    (config / "global.ini").write_text(
        "[General]\nFirstRun=true\n"          # no auto-configuration wizard
        "[Basic]\nProfile=lofid\nProfileDir=lofid\n"
        "SceneCollection=lofid\nSceneCollectionFile=lofid\n"
        "[OBSWebSocket]\nFirstLoad=false\nAlertsEnabled=false\nAuthRequired=true\n"
        f"ServerEnabled={'true' if ws_port else 'false'}\nServerPort={ws_port or 4455}\n"
        f"ServerPassword={PASSWORD}\n")
    (config / "basic" / "profiles" / "lofid" / "basic.ini").write_text(
        "[General]\nName=lofid\n"
        f"[Video]\nBaseCX={SIZE[0]}\nBaseCY={SIZE[1]}\nOutputCX={SIZE[0]}\n"
        f"OutputCY={SIZE[1]}\nFPSType=1\nFPSInt=30\n")
    collection = {
        "name": "lofid", "current_scene": "Scene", "current_program_scene": "Scene",
        "scene_order": [{"name": "Scene"}],
        "sources": [{"id": "scene", "versioned_id": "scene", "name": "Scene",
                     "settings": {"items": [], "id_counter": 0, "custom_size": False}}],
        "modules": {"scripts-tool": scripts},
    }
    (config / "basic" / "scenes" / "lofid.json").write_text(json.dumps(collection))
    return config


def launch_obs(folder: Path, display: str, ws_port: int | None, scripts: list[dict]):
    """OBS Studio with its own HOME under `folder`, on `display`, software GL; its log
    (stdout) in folder/obs.log. (process, log path)"""
    home = folder / "home"
    runtime = folder / "runtime"
    runtime.mkdir(mode=0o700, parents=True)
    obs_home(home / ".config", ws_port, scripts)
    env = {**{k: v for k, v in os.environ.items() if k != "WAYLAND_DISPLAY"},
           "DISPLAY": display, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_RUNTIME_DIR": str(runtime), "LIBGL_ALWAYS_SOFTWARE": "1",
           "QT_QPA_PLATFORM": "xcb", "PYTHONDONTWRITEBYTECODE": "1"}
    log = folder / "obs.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["obs", "--multi", "--disable-updater",
                                 "--disable-missing-files-check"],
                                env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    return proc, log


def crashed_after_its_scripts(log: Path) -> bool:
    """Whether OBS's log ends where OBS has unloaded its scripts and released every
    source: what failed after that was OBS's own."""
    lines = log.read_text(errors="replace").splitlines()
    return ("info: ==== Shutting down" in "\n".join(lines)
            and any("Unloaded python script" in line for line in lines)
            and any("All scene data cleared" in line for line in lines[-3:]))


def leaks(log: Path) -> int | None:
    """What OBS counted as never released, in the last line it logs on a clean exit."""
    found = re.findall(r"Number of memory leaks: (\d+)", log.read_text(errors="replace"))
    return int(found[-1]) if found else None


class Studio:
    def __init__(self, proc, log: Path, ws: ObsWebSocket, port: int, baseline, display: str):
        self.proc, self.log, self.ws, self.port = proc, log, ws, port
        self.baseline = baseline      # (process, log) of an OBS without the script
        self.display = display

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("obs")


@pytest.fixture(scope="module")
def stream_port():
    return free_port()


@pytest.fixture(scope="module")
def lofid(tmp, stream_port):
    """A lofid with its socket and no network output: the script adds one. A holder,
    so a test can restart lofid and the others see the new one."""
    holder = {"daemon": start_daemon(tmp, "-o", "null", "--realtime", "--size",
                                     f"{SIZE[0]}x{SIZE[1]}", "--scene", SCENE_AT_START)}
    yield holder
    holder["daemon"].close()


def script_for(lofid, stream_port) -> dict:
    """The scripts-tool entry of lofid's script, set to reach this test's lofid."""
    return {"path": str(SCRIPT), "settings": {
        "socket": str(lofid["daemon"].sock),
        "output": f"tcp://127.0.0.1:{stream_port}?listen",
        "text_format": "{scene}\n{track}"}}


def connected(proc, log: Path, port: int) -> ObsWebSocket:
    """Waits for OBS to answer on obs-websocket and for the script to reach lofid."""
    def identified():
        assert proc.poll() is None, f"OBS exited with {proc.returncode}:\n{log.read_text()}"
        try:
            return ObsWebSocket(port, PASSWORD, events=ObsWebSocket.MEDIA_INPUTS)
        except (OSError, websocket.WebSocketException):
            return None
    ws = wait_for(identified, 90, every=0.5)
    wait_for(lambda: "lofid: connected" in log.read_text(errors="replace"), 60)
    return ws


@pytest.fixture(scope="module")
def studio(tmp, lofid, stream_port):
    """OBS with the script, and beside it, started at the same time, the same OBS
    without the script: what that one leaks on exit is OBS's own (this OBS build
    under Xvfb leaks one allocation with no script at all)."""
    with xvfb(1024, 768) as display:
        port = free_port()
        proc, log = launch_obs(tmp / "with-script", display, port,
                               [script_for(lofid, stream_port)])
        baseline = launch_obs(tmp / "without-script", display, None, [])
        ws = None
        try:
            ws = connected(proc, log, port)
            yield Studio(proc, log, ws, port, baseline, display)
        finally:
            if ws is not None:
                ws.close()
            for p in (proc, baseline[0]):
                reap(p, timeout=15)


def within(studio, predicate, timeout: float, what: str, every: float = 0.2):
    """wait_for, failing with what was awaited and the end of OBS's log."""
    try:
        return wait_for(predicate, timeout, every)
    except AssertionError:
        raise AssertionError(f"{what}: not within {timeout} s; OBS's log ends:\n"
                             + "\n".join(studio.text().splitlines()[-25:])) from None


def screenshot(studio, name: str) -> np.ndarray | None:
    """The source's picture; None while it has none (obs-websocket cannot render a
    source of size 0: no frame yet, or cleared when its stream ended)."""
    answer = studio.ws.request("GetSourceScreenshot", {"sourceName": name, "imageFormat": "png",
                                                       "imageWidth": SIZE[0]}, ok=False)
    if "status" in answer:
        assert answer["status"]["code"] == 702, answer     # "Failed to render screenshot."
        return None
    png = base64.b64decode(answer["imageData"].split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def input_settings(studio, name: str) -> dict | None:
    answer = studio.ws.request("GetInputSettings", {"inputName": name}, ok=False)
    return None if "status" in answer else answer


def test_the_scripts_hotkeys_are_in_obs(studio):
    names = studio.ws.request("GetHotkeyList")["hotkeys"]
    assert {"lofid_add_source", "lofid_next", "lofid_pause"} <= set(names)


def test_add_lofid_source_makes_the_media_source_the_readme_describes(studio, lofid,
                                                                     stream_port):
    assert input_settings(studio, "lofid") is None
    studio.ws.request("TriggerHotkeyByName", {"hotkeyName": "lofid_add_source"})
    made = wait_for(lambda: input_settings(studio, "lofid"), 30, every=0.2)
    assert made["inputKind"] == "ffmpeg_source"
    settings = made["inputSettings"]
    assert settings["is_local_file"] is False
    assert settings["input"] == f"tcp://127.0.0.1:{stream_port}"
    assert settings["input_format"] == "mpegts"
    assert settings["buffering_mb"] == 0
    assert settings["reconnect_delay_sec"] == 1
    assert settings["restart_on_activate"] is True
    # lofid had no network output: the script added the one it reads.
    targets = [o["target"] for o in lofid["daemon"].call("output.list")]
    assert f"tcp://127.0.0.1:{stream_port}?listen" in targets
    items = studio.ws.request("GetSceneItemList", {"sceneName": "Scene"})["sceneItems"]
    assert {"lofid", "lofid scene"} <= {i["sourceName"] for i in items}


def shows_a_picture(studio, name: str, tmp: Path) -> bool:
    shot = screenshot(studio, name)
    if shot is None:
        return False
    Image.fromarray(shot).save(tmp / f"{name}.png")     # to look at
    # lofid's picture has shapes and colours; an empty source is flat (all one value).
    return shot.shape[:2] == (SIZE[1], SIZE[0]) and float(shot.std()) > 10.0


def test_the_media_source_shows_lofids_picture(studio, tmp):
    wait_for(lambda: input_settings(studio, "lofid"), 30, every=0.2)
    wait_for(lambda: shows_a_picture(studio, "lofid", tmp), 60, every=0.5)


def test_the_text_source_shows_the_scene_and_follows_lofid(studio, lofid, tmp):
    wait_for(lambda: input_settings(studio, "lofid scene"), 30, every=0.2)

    def text():
        return input_settings(studio, "lofid scene")["inputSettings"].get("text", "")
    wait_for(lambda: text().startswith(SCENE_AT_START), 30, every=0.2)
    result = lofid["daemon"].ctl("scene", "rainy night, coffee shop")
    assert result.returncode == 0, result.stderr
    wait_for(lambda: text().startswith("coffee shop, rain, night"), 60, every=0.2)
    # The whole scene, picture and text, as viewers see it (kept to look at).
    wait_for(lambda: shows_a_picture(studio, "Scene", tmp), 30, every=0.5)


def test_the_pause_hotkey_pauses_and_resumes_lofid(studio, lofid):
    daemon = lofid["daemon"]
    assert not daemon.status()["paused"]
    studio.ws.request("TriggerHotkeyByName", {"hotkeyName": "lofid_pause"})
    wait_for(lambda: daemon.status()["paused"], 30, every=0.1)
    studio.ws.request("TriggerHotkeyByName", {"hotkeyName": "lofid_pause"})
    wait_for(lambda: not daemon.status()["paused"], 30, every=0.1)


def test_the_next_loop_hotkey_moves_lofid_to_another_loop(studio, lofid):
    daemon = lofid["daemon"]
    before = wait_for(lambda: daemon.status()["loop"], 30)
    studio.ws.request("TriggerHotkeyByName", {"hotkeyName": "lofid_next"})
    # The next loop of the scene crosses in as soon as one is painted.
    wait_for(lambda: daemon.status()["loop"] not in (None, before), 60, every=0.2)


def test_when_lofids_output_comes_back_the_source_shows_it_again(studio, lofid, tmp,
                                                                 stream_port):
    """The output removed and added again while lofid runs: OBS's own reconnecting may
    give up (an open refused at once is not retried by OBS 29); the script sees the
    output wait for a client and restarts the source."""
    target = f"tcp://127.0.0.1:{stream_port}?listen"
    within(studio, lambda: shows_a_picture(studio, "lofid", tmp), 60, "a picture", 0.5)
    assert lofid["daemon"].ctl("output", "remove", target).returncode == 0
    within(studio, lambda: not shows_a_picture(studio, "lofid", tmp), 30, "cleared", 0.5)
    assert lofid["daemon"].ctl("output", "add", target).returncode == 0
    within(studio, lambda: shows_a_picture(studio, "lofid", tmp), 30, "the picture is back", 0.5)


def test_when_lofid_restarts_its_output_comes_back_and_the_source_restarts(studio, lofid,
                                                                            tmp, stream_port):
    """A new lofid, started without a network output: the script adds the output
    again and restarts the Media Source, which shows the picture again."""
    wait_for(lambda: input_settings(studio, "lofid"), 30, every=0.2)
    old = lofid["daemon"]
    assert old.stop() == 0
    studio.ws.events.clear()
    within(studio, lambda: "lofid went away" in studio.text(), 30, "the script noticed")
    # The stream ended: the source is cleared, so a picture later is a new one.
    within(studio, lambda: not shows_a_picture(studio, "lofid", tmp), 30, "cleared", 0.5)
    lofid["daemon"] = start_daemon(tmp, "-o", "null", "--realtime", "--size",
                                   f"{SIZE[0]}x{SIZE[1]}", "--scene", SCENE_AT_START,
                                   sock=old.sock)
    studio.ws.wait_event("MediaInputActionTriggered", 30, inputName="lofid",
                         mediaAction="OBS_WEBSOCKET_MEDIA_INPUT_ACTION_RESTART")
    within(studio, lambda: f"tcp://127.0.0.1:{stream_port}?listen" in
           [o["target"] for o in lofid["daemon"].call("output.list")], 30, "the output is back")
    within(studio, lambda: shows_a_picture(studio, "lofid", tmp), 60, "the picture is back", 0.5)


def test_obs_quits_cleanly_with_every_object_released(studio, tmp, lofid, stream_port):
    """Last: OBS closes on Ctrl-C (SIGINT) as from its Exit menu, unloading the script,
    whose threads end; OBS then counts what was never released: no more than the same
    OBS counts without the script."""
    studio.ws.close()
    base_proc, base_log = studio.baseline
    wait_for(lambda: "Loaded scenes:" in base_log.read_text(errors="replace"), 60)
    for proc in (studio.proc, base_proc):
        proc.send_signal(signal.SIGINT)
    assert base_proc.wait(60) == 0, base_log.read_text(errors="replace")[-3000:]
    assert leaks(base_log) is not None, base_log.read_text(errors="replace")[-2000:]
    proc, log = studio.proc, studio.log
    if proc.wait(60) == -signal.SIGSEGV and crashed_after_its_scripts(log):
        # This OBS (29.0.2, Qt 5.15) now and then crashes on its way out, after every
        # script is unloaded and every source released: Qt repainting a volume meter
        # of OBS's audio mixer that OBS had already deleted (seen in a core dump: the
        # freed widget in Qt's list of widgets to repaint). Nothing of the script runs
        # then; whether it quits cleanly is asked again of a second OBS with the script.
        port = free_port()
        proc, log = launch_obs(tmp / "with-script-again", studio.display, port,
                               [script_for(lofid, stream_port)])
        try:
            connected(proc, log, port).close()
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        finally:
            reap(proc, timeout=15)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, f"OBS exited with {proc.returncode}; its log ends:\n{text[-3000:]}"
    assert "Unloaded python script: lofid_obs.py" in text
    assert leaks(log) == leaks(base_log), text[-2000:]