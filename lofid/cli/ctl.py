"""`lofid ctl ...`: talk to a running lofid."""

from __future__ import annotations

import os
import sys

from .common import BadInput

def _ctl_client(args):
    """A client of the daemon the ctl arguments name: --tcp (with a token from
    --token-file or $LOFID_TOKEN), else the Unix socket."""
    from lofid.settings import ConfigError, address_of, read_token
    from lofid.control.client import Client
    from lofid.control.server import default_socket_path
    if args.tcp is None:
        if args.token_file:
            raise BadInput("--token-file goes with --tcp HOST:PORT; the Unix socket needs no token")
        return Client(args.socket or default_socket_path())
    if args.socket:
        raise BadInput("--socket and --tcp name two ways in; give one")
    try:
        address = address_of(args.tcp, "--tcp")
        if args.token_file:
            token = read_token(args.token_file, "--token-file")
        elif os.environ.get("LOFID_TOKEN"):
            token = os.environ["LOFID_TOKEN"].strip()
        else:
            raise ConfigError("--tcp needs the daemon's token: --token-file FILE, or $LOFID_TOKEN")
    except ConfigError as e:
        raise BadInput(str(e)) from None
    return Client(tcp=address, token=token)


# `lofid ctl ACTION ...` -> the control method it calls
_CTL_METHODS = {"status": "status", "scene": "scene.set", "prompt": "audio.prompt",
                "next": "next", "pause": "pause", "resume": "resume", "reload": "config.reload",
                "stop": "shutdown", "events": "subscribe", "output": None, "overlay": None}
_OUTPUT_USAGE = ("ctl output takes: list, add TARGET (a file, udp://, tcp://...?listen, "
                 "rtmp://..., window or null), or remove NAME")


_OVERLAY_USAGE = ("ctl overlay takes: list, set KEY=VALUE... [now] (kind=now_playing|clock|"
                  "scene|text, name=, text=, position=, font=, size=, colour=, ...), "
                  "or clear [NAME] [now]")
# Keys whose values are numbers or true/false; every other value is text as typed.
_OVERLAY_INTS = ("size", "outline")
_OVERLAY_FLOATS = ("margin", "opacity", "fade")
_OVERLAY_BOOLS = ("shadow", "now")


def _overlay_request(words: list[str]) -> tuple[str, list]:
    """`ctl overlay ...` words as the method and params it calls; a layer with a kind
    is checked here (font, format, zone) so that a mistake needs no daemon to name it."""
    from lofid.overlays import OverlayError, parse_layer
    verb, rest = (words[0], words[1:]) if words else ("", [])
    now = "now" in rest
    rest = [w for w in rest if w != "now"]
    if verb == "list" and not rest and not now:
        return "overlay.list", []
    if verb == "clear" and len(rest) <= 1 and all("=" not in w for w in rest):
        return "overlay.clear", [rest[0] if rest else None, {"now": now}]
    if verb != "set" or not rest:
        raise BadInput(f"{_OVERLAY_USAGE}; got {' '.join(words) or 'nothing'}")
    table: dict = {}
    for word in rest:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise BadInput(f"ctl overlay set: {word!r} is not KEY=VALUE (e.g. kind=clock, "
                           f"\"text=Back in five\")")
        try:
            if key in _OVERLAY_INTS:
                table[key] = int(value)
            elif key in _OVERLAY_FLOATS:
                table[key] = float(value)
            elif key in _OVERLAY_BOOLS:
                table[key] = {"true": True, "false": False}[value.lower()]
            else:
                table[key] = value
        except (ValueError, KeyError):
            raise BadInput(f"ctl overlay set: {key} {value!r}: expected "
                           f"{'true or false' if key in _OVERLAY_BOOLS else 'a number'}") from None
    if "kind" in table:
        try:
            parse_layer({k: v for k, v in table.items() if k != "now"})
        except OverlayError as e:
            raise BadInput(str(e)) from None
    if now:
        table["now"] = True
    return "overlay.set", [table]


def cmd_ctl(args) -> int:
    import json

    from lofid.control.client import ControlError, NoDaemon

    method = _CTL_METHODS[args.action]
    params: list = []
    if args.action in ("scene", "prompt"):
        if not args.text:
            raise BadInput(f"ctl {args.action} needs a text, e.g. "
                           f"lofid ctl {args.action} rainy night, coffee shop")
        params = [" ".join(args.text)]
    elif args.action == "events":
        params = [args.text or ["*"]]
    elif args.action == "output":
        words = args.text
        if words[:1] == ["list"] and len(words) == 1:
            method = "output.list"
        elif words[:1] in (["add"], ["remove"]) and len(words) == 2:
            target = words[1]
            if words[0] == "add" and target not in ("window", "null") and "://" not in target:
                target = os.path.abspath(os.path.expanduser(target))   # the daemon's cwd is not ours
            method, params = f"output.{words[0]}", [target]
        else:
            raise BadInput(f"{_OUTPUT_USAGE}; got {' '.join(words) or 'nothing'}")
    elif args.action == "overlay":
        method, params = _overlay_request(args.text)
    try:
        client = _ctl_client(args)
    except NoDaemon as e:
        print(f"lofid: {e}", file=sys.stderr)
        return 1
    except ControlError as e:             # TCP: the token was refused
        raise BadInput(str(e)) from None
    try:
        result = client.call(method, *params)
        if args.action == "events":
            # Until interrupted: one line per event, however long the quiet between them
            # (the timeout was for the answer to subscribe).
            client.sock.settimeout(None)
            while True:
                _, name, payload = client.receive()
                print(json.dumps({"event": name, **(payload[0] if payload else {})})
                      if args.json else f"{name}: {payload[0] if payload else ''}", flush=True)
    except ControlError as e:
        raise BadInput(str(e)) from None
    except NoDaemon as e:
        print(f"lofid: {e}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.json:
        print(json.dumps(result, indent=2))
    elif args.action == "status":
        r = result
        print(f"{r['scene']['label']}  (loop {r['loop']}){'  paused' if r['paused'] else ''}")
        print(f"clock {r['clock']['seconds']:.1f} s at {r['clock']['fps']:g} fps, "
              f"up {r['uptime_s']:.0f} s, lofid {r['version']}")
        _print_outputs(r["outputs"])
        print(f"library {r['library']['loops']} loops, {r['library']['bytes'] / 1e6:.1f} MB; "
              f"{r['generator']['ready']} ready ahead, {r['generator']['failures']} failed")
        day = r.get("day")
        if day and day.get("current"):
            now, nxt = day["current"], day["next"]
            print(f"schedule {now['at']} {now['scene']}, next {nxt['at']} {nxt['scene']} "
                  f"in {nxt['in_s'] / 60:.0f} min")
        if day and day.get("time_of_day"):
            print(f"time of day {day['time_of_day'].replace('_', ' ')} (follows the clock)")
        cluster = r["generator"].get("cluster")
        if cluster:
            print(f"ray cluster {cluster['address']}: {cluster['state']}"
                  + (f", {len(cluster['workers'])} worker(s)" if cluster["workers"] else "")
                  + (f" ({cluster['error']})" if cluster["error"] else "")
                  + ("; painting here meanwhile" if cluster["state"] != "connected" else "")
                  + f"; {cluster['remote_loops']} loops made there, {cluster['local_loops']} here")
    elif args.action in ("scene", "prompt"):
        print(f"moving to {result['scene']}")
    elif args.action == "output":
        if method == "output.list":
            _print_outputs(result)
        elif method == "output.add":
            print(f"added output {result['name']}")
        else:
            print(f"removing output {result['name']} (it is finalised first)")
    elif args.action == "overlay":
        if method == "overlay.list":
            for layer in result:
                print(f"{layer['name']}: {layer['kind']} at {layer['position']}"
                      + (f", {layer['text']!r}" if layer["text"] else ""))
            if not result:
                print("no overlays")
        elif method == "overlay.set":
            print(f"overlay {result['name']} set" + (" (now)" if result["now"] else ""))
        else:
            print("cleared " + (", ".join(result["cleared"]) or "nothing"))
    elif args.action == "reload":
        if not result["ok"]:
            print(f"lofid: config not reloaded: {result['error']}", file=sys.stderr)
            return 2
        print("reloaded: " + (", ".join(result["changed"]) or "no change")
              + (f"; needs a restart: {', '.join(result['needs_restart'])}"
                 if result["needs_restart"] else ""))
    else:
        print("ok")
    return 0


def _print_outputs(outputs: list[dict]) -> None:
    for o in outputs:
        print(f"output {o['name']}: {o['state']}"
              + (f", {o['dropped']} dropped" if o["dropped"] else "")
              + (f" ({o['error']})" if o["error"] else ""))
    if not outputs:
        print("no outputs")
