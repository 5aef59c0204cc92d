"""`lofid prepare images|clips` and `lofid train style|motion`: argparse glue.

Each command lives in its own module, which provides `add_arguments(parser)` and
`run(args) -> int`. Bad input is raised as `lofid.errors.UserError` (one line, exit 2).
"""

from __future__ import annotations

import importlib

PREPARE = (
    ("images", "prepare_images", "style-LoRA data: filter, crop and caption a folder of images"),
    ("clips", "prepare_clips", "motion-LoRA data: cut videos into short, captioned clips"),
)
TRAIN = (
    ("style", "style", "train a style LoRA (SD1.5 UNet attention, optionally the text encoder)"),
    ("motion", "motion", "train a motion LoRA (the motion module's temporal attention)"),
)


def _add_group(sub, name: str, help_: str, dest: str, commands) -> None:
    group = sub.add_parser(name, help=help_)
    gsub = group.add_subparsers(dest=dest, metavar="KIND")
    gsub.required = True
    for command, module_name, command_help in commands:
        module = importlib.import_module(f"lofid.training.{module_name}")
        p = gsub.add_parser(command, help=command_help, description=command_help)
        module.add_arguments(p)
        p.set_defaults(run=module.run)


def add_parsers(sub) -> None:
    """Add `prepare` and `train` to the `lofid` subparsers object."""
    _add_group(sub, "prepare", "turn images or videos into training data", "prepare_command",
               PREPARE)
    _add_group(sub, "train", "train a style or motion LoRA", "train_command", TRAIN)
