"""`lofid generate --batch` and `lofid library fill`: many loops into the library, on
the workers of a Ray cluster (--ray) or here, resumable (lofid.generators.cluster.batch)."""

from __future__ import annotations

import sys

from .common import BadInput, _library


def fill_library(args, cfg, size: tuple[int, int], frames: int, fps: float) -> int:
    import functools

    from lofid import generators
    from lofid.generators.cluster import batch
    from .generate import _animatediff_options, _check_loop, _pick_generator, _progress_bar

    if args.count < 1 or args.count > 100000:
        raise BadInput(f"--count {args.count}: expected 1..100000 loops of each prompt")
    prompts = batch.read_prompts(args.batch)
    address = args.ray or (cfg.ray_address if cfg.generator == "ray" else None)
    cluster = None
    if address is not None:
        from lofid.generators.cluster import Cluster, job
        name = cfg.ray_generator
        _check_loop(name, size, frames, "--size", "--frames")
        options = _animatediff_options(cfg, here=False) if name == "animatediff" else {}
        cluster = Cluster(address, namespace=cfg.ray_namespace, workers=cfg.ray_workers,
                          gpus=cfg.ray_worker_gpus)
        workers = cluster.connect()
        print(f"ray cluster {address}: {len(workers)} worker(s) on "
              f"{', '.join(sorted({w.info['host'] for w in workers}))}", file=sys.stderr)

        def make(spec, seed):
            return cluster.make(job(spec, seed, size, frames, fps, name, options))
        makers = len(workers)
    else:
        name = _pick_generator(cfg.generator if cfg.generator != "ray" else "auto")
        _check_loop(name, size, frames, "--size", "--frames")
        options = _animatediff_options(cfg) if name == "animatediff" else {}
        generate = functools.partial(generators.get(name), **options)

        def make(spec, seed):
            return generate(spec, seed, size, frames, fps)
        makers = 1

    library = _library(args)
    todo = batch.wanted(prompts, args.count)
    bar = _progress_bar("loops")

    def made(w, key, loop):
        by = getattr(loop, "made_by", None)
        where = f"  by {by['worker']} on {by['host']} in {by['seconds']:.1f}s" if by else ""
        print(f"{key}  [{w.spec.label()}]  seed {w.seed}{where}", flush=True)

    try:
        result = batch.fill(library, todo, make, makers, name, on_loop=made,
                            on_progress=bar)
    finally:
        if cluster is not None:
            cluster.close()
    for error in result["errors"]:
        print(f"lofid: loop failed: {error}", file=sys.stderr)
    print(f"{result['made']} loops made, {result['skipped']} already in the library, "
          f"{result['failed']} failed", file=sys.stderr)
    return 1 if result["failed"] else 0
