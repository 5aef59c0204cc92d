"""Captions for training data: trigger word + scene tags + the lofi style tags.

One template for both kinds of data (`lofid prepare images` and `lofid prepare clips`):

    lofivision, coffee shop, rain, night, steam, flicker, lofi, cozy, anime style, ...
    ^ trigger   ^ scene tags (SceneSpec vocabulary)           ^ STYLE_TAGS

The scene tags come from text about the picture: a caption file already beside it
(same stem, .txt) or else its file name ("coffee_shop-rain night_03.jpg" reads as
"coffee shop rain night 03"). The text goes through `lofid.scene.parse` and only what
it understood becomes tags, written in the vocabulary's own words with spaces for
underscores (scene, weather, time of day, season, theme, setting, motions); words it
does not know ("img", "0001", "jazz") are dropped. A file named "IMG_0001.jpg" gets
no scene tags at all, only the trigger and the style tags: parse() fills in a default
scene when the text names none, and a made-up "study room" would teach the LoRA a
wrong word.

The trainers read the caption as the plain text of the .txt file beside each image
or clip (the clips' manifest.json repeats it).
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_TRIGGER = "lofivision"

# The seed's captioning tags ("lofi, cozy, anime style, warm lighting") and the style
# words lofid's own prompts end with (lofid.scene: "soft colors").
STYLE_TAGS = ("lofi", "cozy", "anime style", "warm lighting", "soft colors")

# A weak hint for a scene other than the default one: added after the text, it changes
# the parsed scene only when the text itself names no scene at all.
_SCENE_PROBE = "books"
# Two places whose own motions, times and weathers share no motion: a motion that the
# text gives with either one added is the text's own.
_MOTION_PROBES = ("kitchen", "rainy window")


def _tag(word: str) -> str:
    return word.replace("_", " ")


def _names_a_scene(text: str, spec) -> bool:
    from lofid.scene import DEFAULT_SCENE, parse

    if spec.scene != DEFAULT_SCENE:
        return True
    # The default scene, either named ("study room", "desk") or filled in. A named one
    # outranks or precedes the probe hint; a filled-in one gives way to it.
    return parse(f"{text}, {_SCENE_PROBE}").scene == DEFAULT_SCENE


def _names_a_time(text: str, spec) -> bool:
    from lofid.scene import parse

    # The first time word wins, so a probe added after a named time changes nothing.
    probe = "night" if spec.time_of_day == "morning" else "morning"
    return parse(f"{text}, {probe}").time_of_day == spec.time_of_day


def scene_tags(text: str) -> list[str]:
    """The SceneSpec words `text` says or implies, as caption tags, in a fixed order:
    scene, weather, time of day, season, theme, setting, motions."""
    from lofid.scene import parse

    spec = parse(text)
    named_scene = _names_a_scene(text, spec)
    tags = []
    if named_scene:
        tags.append(spec.scene)
    # "clear" and "indoor" are what a picture is when nothing is said; as tags they
    # would be on almost every image and teach nothing.
    if spec.weather != "clear":
        tags.append(spec.weather)
    if named_scene or _names_a_time(text, spec):
        tags.append(spec.time_of_day)
    tags += [w for w in (spec.season, spec.theme) if w]
    if spec.setting != "indoor":
        tags.append(spec.setting)
    motions = spec.motions
    if not named_scene:
        # The filled-in scene's own motions (a figure at a desk) are not in the
        # picture; those the text names or its weather and time bring may be.
        a, b = (parse(f"{text}, {place}").motions for place in _MOTION_PROBES)
        motions = tuple(m for m in a if m in b)
    tags += motions
    return list(dict.fromkeys(_tag(t) for t in tags))


def caption(text: str, trigger: str = DEFAULT_TRIGGER) -> str:
    """The caption for a picture described by `text`: trigger, scene tags, style tags."""
    parts = [trigger.strip()] + scene_tags(text) + list(STYLE_TAGS)
    return ", ".join(dict.fromkeys(parts))


def text_about(path: Path) -> str:
    """What is known about a source file: its caption file (same stem, .txt) if there
    is one, else its file name with _ and - read as spaces."""
    beside = path.with_suffix(".txt")
    if beside != path and beside.is_file():
        try:
            return beside.read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    return path.stem.replace("_", " ").replace("-", " ")


def check_trigger(trigger: str) -> str:
    """A trigger word is one short phrase: no commas (they separate tags), no new lines."""
    from lofid.errors import UserError as BadInput

    t = trigger.strip()
    if not t or "," in t or "\n" in t or len(t) > 64:
        raise BadInput(f"--trigger {trigger!r} is not a trigger word: expected one short "
                       f"phrase without commas or new lines (for example lofivision)")
    return t
