"""`lofid run`: the config and flags checked, then a Daemon plays."""

from __future__ import annotations

from .common import BadInput
from .generate import _animatediff_options, _check_loop, _pick_generator, _ray_generator

def _loop_size(out_w: int, out_h: int) -> tuple[int, int]:
    """Loops are painted at the output size, at most 1280 wide: the player scales them up,
    and painting (and storing) at 1080p would cost twice as much for little gain."""
    from lofid.generators.painter import MIN_SIZE   # the painter's smallest picture
    scale = min(1.0, 1280 / out_w)
    return (max(MIN_SIZE, round(out_w * scale / 2) * 2),
            max(MIN_SIZE, round(out_h * scale / 2) * 2))


def _loop_maker(cfg, size: tuple[int, int]):
    """How `lofid run` makes loops: the generator the config names (or the one `auto`
    picks) and the loop shape it can make for an output of `size`."""
    from lofid import generators
    from lofid.settings import size_of
    from lofid.daemon.app import LoopMaker
    name = _pick_generator(cfg.generator)
    loop_size, loop_frames = _loop_size(*size), cfg.loop_frames
    shape = name
    if name == "ray":
        # Made on the cluster; painted here while it cannot be reached.
        generate, shape = _ray_generator(cfg)
    else:
        generate = generators.get(name)
    if shape == "animatediff":
        import functools

        from lofid.generators.animatediff import loop_shape
        if name == "animatediff":
            generate = functools.partial(generate, **_animatediff_options(cfg))
        loop_size, loop_frames = loop_shape(size, loop_frames)
    if cfg.loop_size:
        loop_size = size_of(cfg.loop_size, "loop_size")
    _check_loop(shape, loop_size, loop_frames, "loop_size", "loop_frames")
    return LoopMaker(name, generate, loop_size, loop_frames, auto=cfg.generator == "auto")


def cmd_run(args) -> int:
    from lofid.daemon.app import Daemon
    from lofid.settings.run import ConfigError, default_path, load, overrides_from_args, size_of

    overrides = overrides_from_args(args)
    config = args.config or (default_path() if default_path().exists() else None)
    try:
        cfg = load(config, overrides)
        size = size_of(cfg.size)
    except ConfigError as e:
        raise BadInput(str(e)) from None
    # Everything the user gave is checked before any output opens or any loop is made.
    maker = _loop_maker(cfg, size)
    return Daemon(cfg, maker, config_path=config, overrides=overrides).run()
