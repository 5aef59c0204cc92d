"""One settings schema (lofid.settings): the run command's flags, the config file, the
defaults text, the live keys and the player take their limits from the same table."""

from __future__ import annotations

import argparse
import re

import pytest

from lofid.settings.run import RunConfig, default_text, load, validate
from lofid.settings import ConfigError
from lofid.player import PlayerSettings
from lofid.settings import run as run_settings


def _config_takes(**values) -> bool:
    try:
        validate(RunConfig(**values))
        return True
    except ConfigError:
        return False


def _player_takes(**values) -> bool:
    try:
        PlayerSettings(**values)
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("seconds", [0, 3, 30, 30.5, 45, 60])
def test_crossfade_limit_is_the_same_for_the_config_and_the_player(seconds):
    # It was at most 30 in the config and at most 60 in the player.
    assert _config_takes(crossfade=seconds) == _player_takes(crossfade=seconds)


@pytest.mark.parametrize("kbps", [100, 299, 300, 4500, 50000, 50001, 100000])
def test_bitrate_limit_is_the_same_for_the_config_and_the_encoder(kbps):
    # The config took 300..50000 kb/s and the encoder 100..100000.
    assert _config_takes(bitrate=kbps) == _player_takes(bitrate=kbps * 1000)
    assert _config_takes(bitrate=kbps) == (300 <= kbps <= 50000)


@pytest.mark.parametrize("size", [(7680, 4320), (8000, 1080), (1920, 4400), (8192, 8192),
                                  (16, 16), (14, 16)])
def test_size_limits_are_the_same_for_the_config_the_player_and_generate(size):
    # The player took up to 8192 on either side; the config and --size 7680 x 4320.
    from lofid.cli import BadInput, parse_size
    text = f"{size[0]}x{size[1]}"
    try:
        parse_size(text)
        generate_takes = True
    except BadInput:
        generate_takes = False
    assert _config_takes(size=text) == _player_takes(size=size) == generate_takes


def _run_parser():
    from lofid.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def test_every_run_flag_sets_the_config_key_of_its_option():
    parser = _run_parser()
    given = {"outputs": ["-o", "a.mp4", "-o", "b.mp4"], "duration": ["--duration", "2"],
             "scene": ["--scene", "rain"], "rotate": ["--rotate", "60"],
             "crossfade": ["--crossfade", "2"], "fps": ["--fps", "24"],
             "size": ["--size", "640x360"], "audio": ["--audio", "m"],
             "generate": ["--no-generate"], "realtime": ["--realtime"], "fit": ["--fit", "blur"],
             "bitrate": ["--bitrate", "900"], "fullscreen": ["--fullscreen"],
             "borderless": ["--borderless"], "socket": ["--socket"],
             "max_session": ["--max-session", "47h"], "web": ["--web", "8088"],
             "stop_timeout": ["--stop-timeout", "4"]}
    flagged = {o.name for o in run_settings.OPTIONS if o.flag}
    assert set(given) == flagged
    argv = [word for words in given.values() for word in words]
    over = run_settings.overrides_from_args(parser.parse_args(argv))
    cfg = load(None, over)
    assert cfg.outputs == ["a.mp4", "b.mp4"] and cfg.duration == 2 and cfg.scene == "rain"
    assert (cfg.rotate, cfg.crossfade, cfg.fps, cfg.size) == (60, 2, 24, "640x360")
    assert cfg.generate is False and cfg.realtime and cfg.fullscreen and cfg.borderless
    assert (cfg.fit, cfg.bitrate, cfg.audio, cfg.socket) == ("blur", 900, ["m"], "")
    assert cfg.max_session == "47h"
    assert cfg.web == "8088" and cfg.stop_timeout == 4
    # Flags not given leave the config file's values alone.
    assert run_settings.overrides_from_args(parser.parse_args([])) == {}


def test_the_defaults_text_has_every_key_with_a_comment():
    text = default_text()
    for option in run_settings.OPTIONS:
        match = re.search(rf"^# (.*)\n# {option.name} = ", text, re.M)
        assert match and match.group(1).strip(), option.name   # motion_adapter, guidance had none


def test_the_live_keys_are_the_options_marked_live():
    from lofid.daemon.app import Daemon
    assert Daemon.LIVE_KEYS == {o.name for o in run_settings.OPTIONS if o.live}
    assert {"scene", "crossfade", "outputs"} <= Daemon.LIVE_KEYS
    assert not {"fps", "size", "socket"} & Daemon.LIVE_KEYS


def test_the_trainers_describe_their_options_with_the_same_schema():
    from lofid.settings.schema import Option
    from lofid.training import common, motion, style
    assert common.Option is Option
    assert all(isinstance(o, Option) for o in style.SCHEMA + motion.SCHEMA)


def test_config_messages_name_the_key_the_value_and_what_was_expected():
    with pytest.raises(ConfigError, match=r"^crossfade = 31: expected seconds, 0\.\.30$"):
        validate(RunConfig(crossfade=31))
    with pytest.raises(ConfigError, match=r"^fps = 23: expected one of 24, 25, 30, 50, 60$"):
        validate(RunConfig(fps=23))
    with pytest.raises(ConfigError, match=r"^scheduler = 'bogus': expected ddim"):
        validate(RunConfig(scheduler="bogus"))
    assert validate(RunConfig(max_seam_ratio=float("inf"))).max_seam_ratio == float("inf")
    with pytest.raises(ConfigError, match="max_seam_ratio"):
        validate(RunConfig(max_seam_ratio=float("nan")))


def test_a_whole_number_written_as_a_float_is_that_number(tmp_path):
    """`fps = 30.0` in a config file is thirty, as it always was; 29.5 is still refused."""
    from lofid.settings.run import load
    from lofid.settings import ConfigError
    good = tmp_path / "good.toml"
    good.write_text("fps = 30.0\nloop_frames = 48.0\n")
    cfg = load(good, {})
    assert cfg.fps == 30 and cfg.loop_frames == 48
    bad = tmp_path / "bad.toml"
    bad.write_text("fps = 29.5\n")
    with pytest.raises(ConfigError, match="fps"):
        load(bad, {})
