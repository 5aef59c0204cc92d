"""`lofid ...`: a thin face over the rest of the package.

Only argparse is imported at module level so that `lofid --help` starts at once; each
command imports what it uses. Bad input ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from lofid.errors import LofidError

from .common import EXIT_BAD_INPUT, BadInput, _Parser, parse_byte_size, parse_size  # noqa: F401
from .config import cmd_config
from .ctl import _CTL_METHODS, cmd_ctl
from .generate import DEFAULT_FPS, DEFAULT_FRAMES, DEFAULT_SIZE, cmd_generate
from .library import (cmd_library_add, cmd_library_fill, cmd_library_list, cmd_library_preview,
                      cmd_library_prune, cmd_library_show)
from .run import cmd_run
from .service import cmd_service_install


def build_parser() -> argparse.ArgumentParser:
    from lofid import __version__
    p = _Parser(prog="lofid", description="Cozy, subtly animated lofi scenes that never stop.")
    p.add_argument("--version", action="version", version=f"lofid {__version__}")
    p.add_argument("--library", metavar="DIR",
                   help="where loops are kept (default: $LOFID_LIBRARY or $XDG_DATA_HOME/lofid/loops)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    g = sub.add_parser("generate", help="make one seamless loop and write it to a file",
                       description="Make one seamless loop from a text such as "
                                   "'rainy night, coffee shop' and write it as MP4, WebM or GIF.")
    g.add_argument("text", nargs="?",
                   help="what to show, in words (scene, weather, time of day, mood)")
    g.add_argument("-o", "--output", metavar="FILE", help="FILE.mp4, .webm or .gif")
    g.add_argument("--batch", metavar="PROMPTS.txt",
                   help="make loops of every prompt of a file (one a line) into the library "
                        "instead; resumable")
    g.add_argument("--count", type=int, default=1,
                   help="with --batch: loops of each prompt (default 1)")
    g.add_argument("--ray", metavar="ADDRESS",
                   help="make the loops on the Ray cluster at ADDRESS (ray://HOST:10001)")
    g.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                   help=f"frames in the loop (default {DEFAULT_FRAMES})")
    g.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames per second (default {DEFAULT_FPS:g})")
    g.add_argument("--size", metavar="WxH",
                   help=f"picture size (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}, or the --image's size)")
    g.add_argument("--seed", type=int, help="seed for a reproducible loop (default: a new one)")
    g.add_argument("--generator",
                   help="auto (default: animatediff when weights and a GPU are found, else "
                        "procedural), procedural or animatediff")
    ad = g.add_argument_group("AnimateDiff")
    ad.add_argument("--model", metavar="PATH_OR_NAME", help="SD1.5 or SDXL checkpoint (folder or file)")
    ad.add_argument("--motion-adapter", metavar="PATH_OR_NAME", help="motion module / adapter")
    ad.add_argument("--lora", action="append", default=[], metavar="FILE_OR_NAME[:WEIGHT]",
                    help="a style LoRA (repeatable)")
    ad.add_argument("--motion-lora", action="append", default=[], metavar="FILE_OR_NAME[:WEIGHT]",
                    help="a motion LoRA (repeatable)")
    ad.add_argument("--steps", type=int, help="denoising steps (default 25; 4-8 few-step)")
    ad.add_argument("--guidance", type=float, help="guidance scale (default 7.5; 1-2 few-step)")
    ad.add_argument("--scheduler", help="ddim (default), euler (Lightning) or lcm (AnimateLCM)")
    ad.add_argument("--loop-method", help="circular (default), circular+blend or none")
    ad.add_argument("--preset", help="standard, lcm (AnimateLCM weights) or lightning")
    g.add_argument("--image", metavar="PICTURE", help="animate your own still picture (weather and light)")
    g.add_argument("--repeat", type=int, default=1, help="write the loop N times (default 1)")
    g.add_argument("--no-library", action="store_true", help="do not keep the loop in the library")
    g.add_argument("--config", metavar="FILE",
                   help="a TOML file whose generator and AnimateDiff keys are the defaults")
    g.set_defaults(run=cmd_generate)

    r = sub.add_parser("run", help="play loops as one endless picture to outputs",
                       description="Play loops of a scene as one endless picture: each loop repeats, "
                                   "then crossfades into the next, to files, streams and a window.")
    from lofid.settings import run as run_settings
    run_settings.add_flags(r)
    r.add_argument("--config", metavar="FILE", help="a TOML file with any of these options as keys")
    r.set_defaults(run=cmd_run)

    c = sub.add_parser("ctl", help="talk to a running lofid over its control socket",
                       description="Talk to a running lofid: status, scene TEXT, prompt TEXT, "
                                   "next, pause, resume, reload, stop, events [NAME...], "
                                   "output list|add TARGET|remove NAME, "
                                   "overlay list|set KEY=VALUE... [now]|clear [NAME] [now].")
    c.add_argument("--socket", metavar="PATH", help="the socket (default $XDG_RUNTIME_DIR/lofid/lofid.sock)")
    c.add_argument("--tcp", metavar="HOST:PORT",
                   help="reach lofid's TCP listener (its control_tcp) instead of the socket")
    c.add_argument("--token-file", metavar="FILE",
                   help="with --tcp: the file holding the token (default: $LOFID_TOKEN)")
    c.add_argument("--json", action="store_true", help="machine-readable output")
    c.add_argument("action", choices=tuple(_CTL_METHODS))
    c.add_argument("text", nargs="*", help="scene, prompt: what to show, in words; events: "
                   "event names (default all); output: list, add TARGET or remove NAME; "
                   "overlay: list, set KEY=VALUE... [now], clear [NAME] [now]")
    c.set_defaults(run=cmd_ctl)

    from . import models, training
    models.add_parser(sub)
    training.add_parsers(sub)

    cf = sub.add_parser("config", help="where the config file is, or a commented default one")
    cf.add_argument("--print-default", action="store_true",
                    help="write a config with every key at its default, commented")
    cf.set_defaults(run=cmd_config)
    sv = sub.add_parser("service", help="the systemd user service")
    svs = sv.add_subparsers(dest="service_command", metavar="ACTION", parser_class=_Parser,
                            required=True)
    svs.add_parser("install", help="write ~/.config/systemd/user/lofid.service").set_defaults(
        run=cmd_service_install)

    lib = sub.add_parser("library", help="the loops kept on disk")
    lsub = lib.add_subparsers(dest="library_command", metavar="ACTION", parser_class=_Parser,
                              required=True)
    ls_ = lsub.add_parser("list", help="list the loops")
    ls_.add_argument("--scene", help="only this scene (e.g. coffee_shop)")
    ls_.add_argument("--json", action="store_true", help="machine-readable output")
    ls_.set_defaults(run=cmd_library_list)
    sh = lsub.add_parser("show", help="a loop's metadata")
    sh.add_argument("key", help="a key or a unique prefix of one")
    sh.set_defaults(run=cmd_library_show)
    pr = lsub.add_parser("prune", help="evict the least recently played loops down to a size")
    pr.add_argument("--max-size", required=True, metavar="SIZE", help="for example 2G or 500M")
    pr.set_defaults(run=cmd_library_prune)
    ad_ = lsub.add_parser("add", help="keep a loop made elsewhere (MP4, WebM, GIF, PNG frames)",
                          description="Keep a loop made elsewhere in the library: a video, a "
                                      "GIF, or PNG frames (a folder, or a quoted pattern such "
                                      "as 'out/loop_*.png'). Through the running lofid when "
                                      "one answers on its socket, else straight into the "
                                      "library folder.")
    ad_.add_argument("file", metavar="FILE", help="the loop: .mp4, .webm, .gif, a folder or pattern of .png")
    ad_.add_argument("--prompt", required=True, metavar="TEXT",
                     help="what it shows, in words: its scene in the library")
    ad_.add_argument("--fps", type=float, help="its frame rate (default: the file's own; "
                                               "PNG frames need it)")
    ad_.add_argument("--play", action="store_true", help="cross to it now (a running lofid)")
    ad_.add_argument("--socket", metavar="PATH", help="the running lofid's socket "
                                                      "(default $XDG_RUNTIME_DIR/lofid/lofid.sock)")
    ad_.set_defaults(run=cmd_library_add)
    pv = lsub.add_parser("preview", help="write a contact sheet PNG of a loop's frames")
    pv.add_argument("key", help="a key or a unique prefix of one")
    pv.add_argument("-o", "--output", required=True, metavar="FILE.png")
    pv.add_argument("--count", type=int, default=12, help="frames shown, evenly spaced (default 12)")
    pv.add_argument("--columns", type=int, default=None, help="frames per row")
    pv.set_defaults(run=cmd_library_preview)
    fi = lsub.add_parser("fill", help="make loops of every prompt of a file into the library "
                                      "(on a Ray cluster with --ray); resumable")
    fi.add_argument("batch", metavar="PROMPTS.txt", help="one prompt a line")
    fi.add_argument("--count", type=int, default=1, help="loops of each prompt (default 1)")
    fi.add_argument("--ray", metavar="ADDRESS",
                    help="the Ray cluster (default: ray_address of the config)")
    fi.add_argument("--config", metavar="FILE",
                    help="a TOML file: generator, ray_* and AnimateDiff keys, loop_size, "
                         "loop_frames, loop_fps (default: the config file)")
    fi.set_defaults(run=cmd_library_fill)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "run", None) or getattr(args, "func", None)
    if command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return command(args)
    except LofidError as e:
        # The one map from error to exit code: 2 for what the user gave (UserError),
        # 1 for what the machine did (Failure); one line either way.
        print(f"lofid: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        # Not the user's input but the machine (a full disk, a folder gone).
        print(f"lofid: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lofid: interrupted", file=sys.stderr)
        return 130

