"""A day that follows the clock: the `[[schedule]]` entries, `time_of_day = "follow"`,
checked as values and in a running Daemon whose wall clock the test moves, so a whole
day passes in seconds."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import av
import numpy as np
import pytest

from lofid import generators
from lofid.control.client import Client
from lofid.daemon.app import Daemon, LoopMaker
from lofid.scene import at_time_of_day, parse
from lofid.schedule import Schedule, next_time_of_day_change, time_of_day_at, zone_of
from lofid.settings import ConfigError
from lofid.settings.run import load
from helpers import holds_for, lofid, wait_for
from test_audio import write_tone

UTC = zone_of("UTC", "timezone")
DAY = [{"at": "07:00", "scene": "kitchen morning"},
       {"at": "12:00", "scene": "study room"},
       {"at": "18:00", "scene": "balcony sunset"},
       {"at": "21:00", "scene": "rainy window night"}]


def at(hhmm: str, day: int = 5) -> float:
    """Unix time of HH:MM UTC on 2026-12-`day`."""
    h, m = map(int, hhmm.split(":"))
    return datetime(2026, 12, day, h, m, tzinfo=timezone.utc).timestamp()


# --- the values ------------------------------------------------------------------------

def test_the_entry_holding_is_the_last_begun_and_the_day_wraps_past_midnight():
    s = Schedule.from_config(DAY, "UTC")
    cases = [("06:59", "21:00", "07:00"), ("07:00", "07:00", "12:00"), ("11:59", "07:00", "12:00"),
             ("20:00", "18:00", "21:00"), ("23:30", "21:00", "07:00"), ("00:10", "21:00", "07:00")]
    for now, current, coming in cases:
        entry, began = s.current(at(now))
        nxt, starts = s.next(at(now))
        assert (entry.time, nxt.time) == (current, coming), now
        assert began <= at(now) < starts
    # 06:59 is still yesterday's 21:00 entry, which began 9 h 59 min before.
    assert s.current(at("06:59"))[1] == at("21:00", day=4)


def test_entry_times_are_read_in_their_zone_across_daylight_saving():
    # New York leaves daylight saving on 2026-11-01: 07:00 there is 11:00 UTC before, 12:00 after.
    s = Schedule.from_config([{"at": "07:00", "scene": "kitchen", "timezone": "America/New_York"},
                              {"at": "12:00", "scene": "library"}], "UTC")
    before = datetime(2026, 10, 31, 10, 59, tzinfo=timezone.utc).timestamp()
    assert s.next(before)[1] == datetime(2026, 10, 31, 11, 0, tzinfo=timezone.utc).timestamp()
    after = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc).timestamp()
    entry, starts = s.next(after)
    assert entry.scene == "kitchen"
    assert starts == datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc).timestamp()


def test_time_of_day_follows_the_clock_hours():
    expect = {"04:59": "night", "05:00": "morning", "09:59": "morning", "10:00": "day",
              "16:59": "day", "17:00": "golden_hour", "18:30": "sunset", "19:59": "sunset",
              "20:00": "night", "23:59": "night"}
    for now, name in expect.items():
        assert time_of_day_at(at(now), UTC) == name, now
    assert next_time_of_day_change(at("12:00"), UTC) == at("17:00")
    assert next_time_of_day_change(at("21:00"), UTC) == at("05:00", day=6)
    # A study room at 21:00 is a study room at night: the lamps flicker.
    room = parse("study room")
    night = at_time_of_day(room, "night")
    assert (night.scene, night.time_of_day) == ("study_room", "night")
    assert "flicker" in night.motions
    assert at_time_of_day(parse("rooftop at night"), "day").motions == parse("rooftop, day").motions


@pytest.mark.parametrize("raw, says", [
    ([{"at": "25:00", "scene": "study"}], "schedule[0].at = '25:00'"),
    ([{"at": "7am", "scene": "study"}], "HH:MM"),
    ([{"scene": "study"}], "schedule[0]: no time"),
    ([{"at": "07:00", "scene": "  "}], "schedule[0].scene"),
    ([{"at": "07:00"}], "schedule[0].scene"),
    ([{"at": "07:00", "scene": "a", "timezone": "Mars/Olympus"}], "unknown time zone"),
    ([{"at": "07:00", "scene": "a"}, {"at": "07:00", "scene": "b"}], "same time"),
    ([{"at": "07:00", "scene": "a", "colour": "red"}], "unknown key 'colour'"),
    ([{"at": "07:00", "scene": "a", "rotate": 0}], "schedule[0].rotate"),
    ([{"at": "07:00", "scene": "a", "overlays": [{"kind": "marquee"}]}], "marquee"),
    ([{"at": "07:00", "scene": "a", "overlays": "golden hour"}], "schedule[0].overlays"),
    ("07:00 study", "[[schedule]]"),
])
def test_bad_schedules_are_refused_naming_the_entry(raw, says):
    with pytest.raises(ConfigError) as e:
        load(None, {"schedule": raw})
    assert says in str(e.value)
    assert "\n" not in str(e.value)


# --- a day in a running daemon -----------------------------------------------------------

class FakeDay:
    """The daemon's wall clock, moved by the test."""

    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


SIZE = "320x180"


def _config_text(tmp, out, sock, extra: str = "", day=DAY) -> str:
    entries = "".join(f'[[schedule]]\nat = "{e["at"]}"\nscene = "{e["scene"]}"\n'
                      + (f'audio = "{tmp / "noon"}"\n' if e["at"] == "12:00" else "")
                      + ('overlays = [{ kind = "text", text = "golden hour", '
                         'position = "top-left", size = 14 }]\n' if e["at"] == "18:00" else "")
                      + "\n" for e in day)
    return (f'outputs = ["{out}"]\nlibrary = "{tmp / "lib"}"\nsize = "{SIZE}"\nfps = 24\n'
            f'socket = "{sock}"\nrealtime = true\nloop_frames = 12\ncrossfade = 0.5\n'
            f'min_scene = 0\ntimezone = "UTC"\n{extra}\n{entries}')


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A daemon at 320x180 writing a file, its wall clock at 06:00 UTC, with the
    four-entry schedule; every event it sends is recorded."""
    tmp = tmp_path_factory.mktemp("day")
    out, sock, config = tmp / "day.mp4", tmp / "lofid.sock", tmp / "lofid.toml"
    (tmp / "noon").mkdir()
    write_tone(tmp / "noon" / "noon.wav", 660, 1.0)     # the 12:00 entry's music
    config.write_text(_config_text(tmp, out, sock))
    clock = FakeDay(at("06:00"))
    cfg = load(config, {})
    daemon = Daemon(cfg, LoopMaker("procedural", generators.get("procedural"), (320, 180), 12),
                    config_path=config, wall_clock=clock)
    events: list = []
    lock = threading.Lock()
    forward = daemon._event

    def record(name, payload):
        with lock:
            events.append((name, dict(payload)))
        forward(name, payload)
    daemon._event = record
    runner = threading.Thread(target=lambda: daemon.run(handle_signals=False), name="day daemon")
    runner.start()
    wait_for(lambda: sock.exists() or not runner.is_alive(), timeout=60)
    assert runner.is_alive(), "the daemon ended before its socket opened"
    client = Client(sock)

    class Day:
        pass
    d = Day()
    d.daemon, d.clock, d.client, d.out, d.config, d.tmp = daemon, clock, client, out, config, tmp

    def seen(name, **match):
        with lock:
            return [p for n, p in events if n == name
                    and all(p.get(k) == v for k, v in match.items())]
    d.seen = seen
    d.status = lambda: client.call("status")
    try:
        wait_for(lambda: d.status()["clock"]["frame"] > 12, timeout=60)
        yield d
    finally:
        client.sock.close()
        daemon.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()


def _move_to(d, when: float, label: str, reason: str) -> dict:
    """Set the clock; wait for the scene `label` to be changed to for `reason`, and for
    the crossfade into its loop. Returns that crossfade event."""
    before, changes = len(d.seen("crossfade")), len(d.seen("scene_changed"))
    d.clock.t = when
    change = wait_for(lambda: [p for p in d.seen("scene_changed")[changes:]
                               if p["reason"] == reason and p["scene"] == label], timeout=90)[-1]
    fade = wait_for(lambda: [p for p in d.seen("crossfade")[before:] if p["to"] == change["loop"]],
                    timeout=30)[-1]
    return fade


def _label(text: str) -> str:
    return parse(text).label()


@pytest.mark.slow
def test_a_schedule_moves_through_a_day_in_seconds(day):
    d = day
    status = d.status()
    # At 06:00 the day began at yesterday's 21:00 entry: the rainy window at night.
    assert status["scene"]["label"] == _label("rainy window night")
    assert status["day"]["current"]["at"] == "21:00"
    assert status["day"]["next"]["at"] == "07:00"
    assert status["day"]["next"]["in_s"] == pytest.approx(3600, abs=1)

    # One second before an entry nothing moves; at its time the picture crosses to it.
    d.clock.t = at("06:59") + 59
    assert holds_for(lambda: not d.seen("scene_changed", reason="schedule"), 1.0)
    fades = [_move_to(d, at("07:00"), _label("kitchen morning"), "schedule")]
    status = d.status()
    assert (status["day"]["current"]["at"], status["day"]["next"]["at"]) == ("07:00", "12:00")
    assert status["day"]["current"]["label"] == status["scene"]["label"]
    shown = lofid("ctl", "--socket", d.daemon.cfg.socket, "status")
    assert "schedule 07:00 kitchen morning, next 12:00 study room in 300 min" in shown.stdout

    # A request wins until the next entry, even hours later...
    d.client.call("scene.set", "library")
    wait_for(lambda: d.seen("scene_changed", reason="request"), timeout=90)
    d.clock.t = at("11:59")
    assert holds_for(lambda: d.status()["scene"]["label"] == _label("library"), 1.0)
    # ... and the next entry wins over it.
    fades.append(_move_to(d, at("12:00"), _label("study room"), "schedule"))
    # The noon entry's music is the playlist from now on.
    wait_for(lambda: d.status()["audio"]["playlist"] == [str(d.tmp / "noon" / "noon.wav")],
             timeout=10)
    assert d.client.call("overlay.list") == []
    fades.append(_move_to(d, at("18:00"), _label("balcony sunset"), "schedule"))
    # The 18:00 entry's own text shows while it holds, and goes with the next entry.
    assert [(l["kind"], l["text"]) for l in d.client.call("overlay.list")] == [("text", "golden hour")]
    fades.append(_move_to(d, at("21:00"), _label("rainy window night"), "schedule"))
    assert d.client.call("overlay.list") == []
    # Past midnight the 21:00 entry still holds; the next morning comes round again.
    d.clock.t = at("03:00", day=6)
    assert holds_for(lambda: len(d.seen("scene_changed", reason="schedule")) == 4, 1.0)
    assert d.status()["day"]["current"]["since"] == at("21:00")
    fades.append(_move_to(d, at("07:00", day=6), _label("kitchen morning"), "schedule"))

    # Each change was a crossfade of the configured length, and the picture changed.
    assert all(f["seconds"] == pytest.approx(0.5, abs=0.05) for f in fades)
    # The file is fragmented MP4, readable while it grows: once the last crossfade is
    # a few fragments behind, every change is in it.
    wait_for(lambda: d.status()["clock"]["frame"] > fades[-1]["frame"] + 72, timeout=30)
    frames = _frames(d)
    assert len(frames) > fades[-1]["frame"] + 24
    for f in fades:
        start, end = f["frame"], f["frame"] + f["frames"]
        diff = np.abs(frames[start - 1].astype(int) - frames[end + 2].astype(int)).mean()
        assert diff > 8, f"the picture did not change at frame {start}: {diff:.1f}"


def _frames(d) -> list[np.ndarray]:
    """The frames written to the file so far."""
    with av.open(str(d.out)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.slow
def test_time_of_day_follows_the_clock_and_bad_schedules_do_not_stop_the_daemon(day):
    d = day
    d.clock.t = at("07:30", day=6)
    # Live from the config: the schedule goes, the time of day follows the clock.
    d.config.write_text(_config_text(d.tmp, d.out, d.daemon.cfg.socket, 'time_of_day = "follow"',
                                     day=[]))
    result = d.daemon.reloader.reload()
    assert result["ok"], result
    assert {"schedule", "time_of_day"} <= set(result["changed"]) and not result["needs_restart"]
    status = d.status()
    assert status["day"] == {"time_of_day": "morning", "current": None, "next": None}
    # Whatever is asked for is shown in the clock's light...
    d.client.call("scene.set", "study room")
    wait_for(lambda: d.status()["scene"]["label"] == _label("study room, morning"), timeout=90)
    # ... and when the light changes, so does the picture: a study room at 21:00 is a
    # study room at night.
    fade = _move_to(d, at("21:00", day=6), _label("study room, night"), "clock")
    status = d.status()
    assert status["scene"]["scene"] == "study_room" and status["scene"]["time_of_day"] == "night"
    assert status["day"]["time_of_day"] == "night"
    wait_for(lambda: d.status()["clock"]["frame"] > fade["frame"] + 72, timeout=30)
    frames = _frames(d)
    day_room, night_room = frames[fade["frame"] - 1], frames[fade["frame"] + fade["frames"] + 2]
    assert night_room.mean() < day_room.mean() - 5, "the night room is not darker"

    # A bad schedule read while running: reported, the old config stays, the picture goes on.
    for entry, says in ((("at", "24:61"),), "schedule[0].at"), \
                       ((("at", "08:00"), ("timezone", "Mars/Olympus")), "unknown time zone"):
        fields = "".join(f'{k} = "{v}"\n' for k, v in entry)
        d.config.write_text(_config_text(d.tmp, d.out, d.daemon.cfg.socket,
                                         'time_of_day = "follow"', day=[])
                            + f'[[schedule]]\n{fields}scene = "library"\n')
        result = d.daemon.reloader.reload()
        assert not result["ok"] and says in result["error"], result
        frame = d.status()["clock"]["frame"]
        wait_for(lambda: d.status()["clock"]["frame"] > frame + 24, timeout=30)
        assert d.status()["config"]["error"] == result["error"]
        assert d.status()["day"]["current"] is None


def test_an_entrys_music_follows_the_track_playing_now(tmp_path):
    from lofid.audio import AudioTrack
    write_tone(tmp_path / "night.wav", 220, 0.5)
    (tmp_path / "morning").mkdir()
    for name in ("a.wav", "b.wav"):
        write_tone(tmp_path / "morning" / name, 440, 0.5)
    with AudioTrack([tmp_path / "night.wav"], crossfade=0.0, max_wait=2.0) as track:
        track.read(4800)
        assert track.now_playing()["path"] == str(tmp_path / "night.wav")
        track.replace(tmp_path / "morning")
        assert track.playlist == [tmp_path / "morning" / "a.wav", tmp_path / "morning" / "b.wav"]
        # The night track plays to its end; the morning's follow, in order, looped.
        heard = []
        for _ in range(30):
            track.read(4800)
            path = track.now_playing()["path"]
            if not heard or heard[-1] != path:
                heard.append(path)
        assert [p.rsplit("/", 1)[-1] for p in heard[:4]] == ["night.wav", "a.wav", "b.wav", "a.wav"]
        (tmp_path / "empty").mkdir()
        with pytest.raises(ValueError, match="no audio files"):
            track.replace(tmp_path / "empty")
        assert len(track.playlist) == 2          # a folder without music changes nothing
