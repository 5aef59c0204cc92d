"""`lofid models list|verify|pull`: the command-line face of lofid.models.

Exit codes: 0 fine, 1 a download failed, 2 bad input (unknown name, missing file,
wrong kind or shape).
"""
from __future__ import annotations

import sys

from lofid import models as M


def add_parser(sub) -> None:
    """Add the `models` command to an argparse subparsers object."""
    p = sub.add_parser("models", help="find, check and download model weights")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True
    ls = msub.add_parser("list", help="list the checkpoints, motion adapters and LoRAs found")
    ls.add_argument("--kind", choices=M.KINDS, help="only this kind")
    ls.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                    help="a folder to search first (repeatable)")
    ve = msub.add_parser("verify", help="check models by path or name (headers only)")
    ve.add_argument("targets", nargs="*", metavar="PATH_OR_NAME",
                    help="models to check (default: every model found)")
    ve.add_argument("--kind", choices=M.KINDS, help="the kind each target must be")
    ve.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                    help="a folder to search first (repeatable)")
    ve.add_argument("--ray", metavar="ADDRESS",
                    help="check on every worker of the Ray cluster at ADDRESS instead "
                         "(ray_* keys from the config file)")
    pu = msub.add_parser("pull", help="download the default model set (or the named ones)")
    pu.add_argument("names", nargs="*", metavar="NAME",
                    help=f"what to download (default: {' '.join(M.DEFAULT_SET)}; known: {' '.join(M.PULLABLE)})")
    p.set_defaults(func=run)


def run(args, config_dirs=None) -> int:
    """Entry point for parsed `lofid models ...` arguments."""
    dirs = list(config_dirs or []) + list(getattr(args, "models_dir", []) or [])
    action = args.models_command
    if action == "list":
        return list_command(dirs, kind=args.kind)
    if action == "verify" and getattr(args, "ray", None):
        return verify_on_cluster(args.ray, args.targets, args.kind)
    if action == "verify":
        return verify_command(args.targets, kind=args.kind, config_dirs=dirs)
    if action == "pull":
        return pull_command(args.names or list(M.DEFAULT_SET))
    print(f"lofid models: unknown action {action!r}; expected list, verify or pull", file=sys.stderr)
    return 2


def _table(refs, out) -> None:
    rows = [(r.kind, r.name, r.format, str(r.path)) for r in refs]
    head = ("KIND", "NAME", "FORMAT", "PATH")
    widths = [max(len(x[i]) for x in rows + [head]) for i in range(3)]
    for row in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3], file=out)


def list_command(config_dirs=None, kind=None, out=None) -> int:
    out = out or sys.stdout
    refs = [r for r in M.list_models(config_dirs) if kind is None or r.kind == kind]
    if not refs:
        where = ", ".join(str(p) for p in M.search_paths(config_dirs)) or "no existing folders"
        print(f"no models found (searched: {where}); `lofid models pull` downloads the default set", file=out)
        return 0
    _table(refs, out)
    return 0


def find_any(path_or_name: str, config_dirs=None) -> M.ModelRef:
    """A model of whatever kind by path or name; ModelError naming the search if none."""
    if M._looks_like_path(path_or_name):
        return M.describe(path_or_name)
    for kind in M.KINDS:
        try:
            return M.find(kind, path_or_name, config_dirs)
        except M.ModelError:
            continue
    roots = ", ".join(str(p) for p in M.search_paths(config_dirs)) or "(no search folders exist)"
    raise M.ModelError(f"no model named {path_or_name!r} in {roots}")


def verify_command(targets, kind=None, config_dirs=None, out=None, err=None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    status = 0
    if targets:
        refs = []
        for t in targets:
            try:
                refs.append(M.find(kind, t, config_dirs) if kind else find_any(t, config_dirs))
            except M.ModelError as e:
                print(f"FAIL  {t}: {e}", file=err)
                status = 2
    else:
        refs = M.list_models(config_dirs)
        if not refs:
            print("no models found to verify", file=out)
    for ref in refs:
        problems = M.verify(ref)
        if problems:
            status = 2
            print(f"FAIL  {ref.kind} {ref.name}", file=out)
            for p in problems:
                print(f"      {p}", file=out)
        else:
            print(f"ok    {ref.kind} {ref.name} ({ref.format}) {ref.path}", file=out)
    return status


def pull_command(names, out=None, err=None, progress=True) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    unknown = [n for n in names if n not in M.PULLABLE]
    if unknown:
        print(f"lofid models pull: unknown model {unknown[0]!r}; expected one of: {', '.join(M.PULLABLE)}", file=err)
        return 2
    for n in names:
        p = M.PULLABLE[n]
        print(f"pulling {n}: {p.repo_id} ({p.what})", file=out)
    try:
        paths = M.pull(names, progress=progress)
    except M.ModelError as e:
        print(f"lofid models pull: {e}", file=err)
        return 1
    for n, path in zip(names, paths):
        print(f"ok    {n} -> {path}", file=out)
    return 0


def verify_on_cluster(address: str, targets, kind=None, out=None) -> int:
    """`lofid models verify` on every worker of a Ray cluster (where the weights are
    loaded): 0 when all is well, 2 when a model is missing or wrong on any worker."""
    from lofid.generators.cluster import Cluster
    from lofid.settings.run import ConfigError, default_path, load
    out = out or sys.stdout
    try:
        cfg = load(default_path() if default_path().exists() else None, {})
    except ConfigError as e:
        print(f"lofid: error: {e}", file=sys.stderr)
        return 2
    cluster = Cluster(address, namespace=cfg.ray_namespace, workers=cfg.ray_workers,
                      gpus=cfg.ray_worker_gpus)
    cluster.connect()
    try:
        answers = cluster.verify(list(targets), kind)
    finally:
        cluster.close()
    status = 0
    for a in answers:
        for ok, text in a["rows"]:
            status = status if ok else 2
            print(f"{a['name']}@{a['host']}  {'ok  ' if ok else 'FAIL'}  {text}", file=out)
    return status
