"""SceneSpec: what a loop shows, and free text <-> spec.

The vocabulary is the seed taxonomy:

- scene (SCENE-01..08): study_room, coffee_shop, bedroom_night, rainy_window,
  balcony_sunset, library, kitchen_morning, rooftop_night
- motions (MOTION-01..08): hair_sway, rain, steam, flicker, curtain, particles,
  water_reflection, breathing
- season: winter, spring, summer, autumn, or None (no seasonal emphasis);
  theme: "christmas" or None
- weather: clear, rain, snow, fog, storm
- time_of_day: morning, day, golden_hour, sunset, night
- setting: urban, nature, indoor. For indoor scenes it is what lies outside the
  window (a city view, trees); "indoor" means nothing in particular.
- mood: the free words of the text that the fields above do not express ("jazz",
  "melancholic", "plants"), kept in order so the picture's prompt carries them.

`parse(text)` reads a music or scene prompt ("rainy night, coffee shop, jazz lofi")
into a fully resolved spec: the scene's default time, weather, setting and motions
are filled in, explicit words override them, and unknown words become mood. It never
fails on text. A spec renders itself as a Stable Diffusion prompt and negative
prompt, and has a short id that is the same in every process.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from lofid.errors import UserError

SCENES = ("study_room", "coffee_shop", "bedroom_night", "rainy_window",
          "balcony_sunset", "library", "kitchen_morning", "rooftop_night")
MOTIONS = ("hair_sway", "rain", "steam", "flicker", "curtain", "particles",
           "water_reflection", "breathing")
SEASONS = ("winter", "spring", "summer", "autumn")
THEMES = ("christmas",)
WEATHERS = ("clear", "rain", "snow", "fog", "storm")
TIMES = ("morning", "day", "golden_hour", "sunset", "night")
SETTINGS = ("urban", "nature", "indoor")
DEFAULT_SCENE = "study_room"

# The seed's ids, accepted by parse() ("SCENE-04", "motion-07").
SCENE_IDS = MappingProxyType({f"SCENE-{i:02d}": s for i, s in enumerate(SCENES, 1)})
MOTION_IDS = MappingProxyType({f"MOTION-{i:02d}": m for i, m in enumerate(MOTIONS, 1)})

# What a scene is when the text says nothing else. The scene's own motions leave out
# what its weather and time bring (rainy_window gets `rain` from its rain), so that
# "snowy window" has snow particles and no rain.
SCENE_DEFAULTS = MappingProxyType({name: MappingProxyType(d) for name, d in {
    "study_room": {"time_of_day": "day", "weather": "clear", "setting": "indoor",
                   "motions": ("hair_sway", "breathing", "steam", "flicker")},
    "coffee_shop": {"time_of_day": "day", "weather": "clear", "setting": "indoor",
                    "motions": ("steam", "flicker")},
    "bedroom_night": {"time_of_day": "night", "weather": "clear", "setting": "indoor",
                      "motions": ("flicker", "curtain")},
    "rainy_window": {"time_of_day": "day", "weather": "rain", "setting": "indoor",
                     "motions": ("water_reflection",)},
    "balcony_sunset": {"time_of_day": "sunset", "weather": "clear", "setting": "urban",
                       "motions": ("hair_sway", "particles")},
    "library": {"time_of_day": "day", "weather": "clear", "setting": "indoor",
                "motions": ("particles", "flicker")},
    "kitchen_morning": {"time_of_day": "morning", "weather": "clear", "setting": "indoor",
                        "motions": ("steam", "particles")},
    "rooftop_night": {"time_of_day": "night", "weather": "clear", "setting": "urban",
                      "motions": ("hair_sway", "breathing")},
}.items()})
WEATHER_MOTIONS = MappingProxyType({
    "clear": (), "rain": ("rain",), "storm": ("rain",),
    "snow": ("particles",), "fog": ("particles",),   # falling flakes, drifting mist
})
TIME_MOTIONS = MappingProxyType({
    "morning": (), "day": (), "golden_hour": (), "sunset": (),
    "night": ("flicker",),                             # lamps, candles, city lights
})

_FIELDS = ("scene", "motions", "season", "theme", "weather", "time_of_day", "setting",
           "mood")


class SceneSpecError(UserError, ValueError):
    """A spec field holds a value outside the vocabulary."""


def _canonical_motions(motions: Iterable[str]) -> tuple[str, ...]:
    present = set(motions)
    return tuple(m for m in MOTIONS if m in present)


def default_motions(scene: str, weather: str, time_of_day: str) -> tuple[str, ...]:
    """The motions a scene shows in this weather at this time, canonical order."""
    _check_choice("scene", scene, SCENES)
    _check_choice("weather", weather, WEATHERS)
    _check_choice("time_of_day", time_of_day, TIMES)
    return _canonical_motions(SCENE_DEFAULTS[scene]["motions"] + WEATHER_MOTIONS[weather]
                              + TIME_MOTIONS[time_of_day])


def _check_choice(field: str, value: Any, allowed: tuple[str, ...],
                  optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, str) or value not in allowed:
        expected = ", ".join(allowed) + (", or None" if optional else "")
        raise SceneSpecError(f"SceneSpec {field}={value!r} is not allowed; "
                             f"expected one of: {expected}")


def _word_list(field: str, value: Any) -> list:
    # A bare string would be read letter by letter; refuse it instead of guessing.
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise SceneSpecError(f"SceneSpec {field}={value!r} is not allowed; "
                             f"expected a list or tuple of strings")
    return list(value)


@dataclass(frozen=True)
class SceneSpec:
    """One scene as the generators see it. Equal specs compare, hash and id equal."""

    scene: str = DEFAULT_SCENE
    motions: tuple[str, ...] = ()     # canonical: MOTIONS order, unique
    season: str | None = None         # None = no seasonal emphasis
    theme: str | None = None          # "christmas" or None
    weather: str = "clear"
    time_of_day: str = "day"
    setting: str = "indoor"
    mood: tuple[str, ...] = ()        # free words, in order, lower case, unique

    def __post_init__(self):
        _check_choice("scene", self.scene, SCENES)
        _check_choice("season", self.season, SEASONS, optional=True)
        _check_choice("theme", self.theme, THEMES, optional=True)
        _check_choice("weather", self.weather, WEATHERS)
        _check_choice("time_of_day", self.time_of_day, TIMES)
        _check_choice("setting", self.setting, SETTINGS)
        motions = _word_list("motions", self.motions)
        for m in motions:
            _check_choice("motions", m, MOTIONS)
        mood = []
        for w in _word_list("mood", self.mood):
            word = " ".join(w.lower().split()) if isinstance(w, str) else ""
            if not word:
                raise SceneSpecError(f"SceneSpec mood word {w!r} is not allowed; "
                                     f"expected a non-empty string")
            mood.append(word)
        # Canonical forms, so that specs built in any order compare and hash equal.
        object.__setattr__(self, "motions", _canonical_motions(motions))
        object.__setattr__(self, "mood", tuple(dict.fromkeys(mood)))

    # --- conversion -----------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"scene": self.scene, "motions": list(self.motions), "season": self.season,
                "theme": self.theme, "weather": self.weather,
                "time_of_day": self.time_of_day, "setting": self.setting,
                "mood": list(self.mood)}

    @classmethod
    def from_dict(cls, d: Mapping) -> SceneSpec:
        """The spec a to_dict() describes. Missing fields take their defaults."""
        if not isinstance(d, Mapping):
            raise SceneSpecError(f"SceneSpec.from_dict needs a dict, got {d!r}")
        unknown = [k for k in d if k not in _FIELDS]
        if unknown:
            raise SceneSpecError(f"SceneSpec has no field {unknown[0]!r}; "
                                 f"expected fields: {', '.join(_FIELDS)}")
        return cls(**d)

    def with_changes(self, **changes) -> SceneSpec:
        """A copy with some fields replaced, validated like a new spec.

        Motions are taken as given: changing the weather does not change them (use
        default_motions() for the motions a weather brings).
        """
        unknown = [k for k in changes if k not in _FIELDS]
        if unknown:
            raise SceneSpecError(f"SceneSpec has no field {unknown[0]!r}; "
                                 f"expected fields: {', '.join(_FIELDS)}")
        return dataclasses.replace(self, **changes)

    @property
    def id(self) -> str:
        """10 hex chars of sha256 over canonical JSON: the same in every process."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()[:10]

    # --- words ----------------------------------------------------------------------

    def label(self) -> str:
        """Short human text, e.g. "coffee shop, rain, night"."""
        parts = [self.scene.replace("_", " ")]
        if self.weather != "clear":
            parts.append(self.weather)
        parts.append(self.time_of_day.replace("_", " "))
        parts += [p for p in (self.season, self.theme) if p]
        return ", ".join(parts)

    def has_figure(self) -> bool:
        """Whether a character is in the picture: the motions that move one say so."""
        return "hair_sway" in self.motions or "breathing" in self.motions

    def prompt(self) -> str:
        """Stable Diffusion prompt in the seed's style."""
        look = _SCENE_LOOK[self.scene]
        view = look["view"]
        parts = ["lofi style", look["place"]]
        used = set()
        if self.has_figure():
            who = next((w for w in self.mood if w in FIGURE_NOUNS), "girl")
            used.add(who)
            parts.append(look["figure"].format(who=who))
        else:
            parts.append("no people")
        parts += look["elements"]
        parts += [p for p in (self._motion_phrase(m) for m in self.motions) if p]
        parts.append(_WEATHER_LOOK[self.weather][view])
        time_words = _TIME_LOOK[self.time_of_day]
        parts.append(time_words[1] if view == "outdoor" and self.weather == "clear"
                     else time_words[0])
        if self.season:
            parts.append(_SEASON_LOOK[self.season])
        if self.theme:
            parts.append(_THEME_LOOK[self.theme])
        setting = _SETTING_LOOK[self.setting][view]
        if setting:
            parts.append(setting)
        # The last feeling named sets the tone, as "..., melancholic mood" ends a prompt.
        feeling = next((w for w in reversed(self.mood) if w in MOOD_FEELINGS), "peaceful")
        used.add(feeling)
        suffix = ["anime illustration style", "soft colors", f"{feeling} atmosphere"]
        # Mood words already said elsewhere in the prompt would only repeat it.
        said = set(re.findall(r"[^\W_]+", ", ".join(parts + suffix)))
        parts += [w for w in self.mood if w not in used and w not in said]
        return ", ".join(parts + suffix)

    def negative_prompt(self) -> str:
        parts = list(_NEGATIVE)
        if not self.has_figure():
            parts.insert(0, "people, person, character")
        return ", ".join(parts)

    def _motion_phrase(self, motion: str) -> str:
        if motion == "rain":
            # The weather already says it when it rains.
            return "" if self.weather in ("rain", "storm") else "rain drops"
        if motion == "particles":
            if self.weather in ("snow", "fog"):
                return ""          # the weather says it: falling snow, fog
            if self.season == "autumn":
                return "falling leaves"
            if self.season == "spring":
                return "drifting petals"
            return "floating dust particles"
        if motion == "water_reflection":
            if self.scene == "rainy_window":
                return "reflections on glass"
            if self.weather in ("rain", "storm"):
                return "reflections in puddles"
            return "soft reflections"
        return _MOTION_LOOK[motion]


# --- how a spec is drawn in words -------------------------------------------------------

# view: where the weather is seen from: through a window, on the window, or around us.
_SCENE_LOOK = {
    "study_room": {"place": "cozy study room", "view": "indoor",
                   "figure": "{who} studying at desk",
                   "elements": ["warm lamp light", "books stacked on desk"]},
    "coffee_shop": {"place": "coffee shop interior", "view": "indoor",
                    "figure": "{who} sitting by the window",
                    "elements": ["wooden tables", "warm lighting"]},
    "bedroom_night": {"place": "cozy bedroom", "view": "indoor",
                      "figure": "{who} resting in bed",
                      "elements": ["bed with soft blankets", "fairy lights"]},
    "rainy_window": {"place": "close up window", "view": "window",
                     "figure": "{who} gazing outside",
                     "elements": ["blurred interior", "warm interior glow"]},
    "balcony_sunset": {"place": "balcony", "view": "outdoor",
                       "figure": "{who} leaning on the railing",
                       "elements": ["city skyline", "potted plants"]},
    "library": {"place": "cozy library", "view": "indoor",
                "figure": "{who} reading in an armchair",
                "elements": ["tall bookshelves", "reading nook"]},
    "kitchen_morning": {"place": "cozy kitchen", "view": "indoor",
                        "figure": "{who} making breakfast",
                        "elements": ["coffee brewing", "plants on windowsill"]},
    "rooftop_night": {"place": "city rooftop", "view": "outdoor",
                      "figure": "{who} relaxing on the rooftop",
                      "elements": ["city lights", "city skyline"]},
}
_WEATHER_LOOK = {
    "clear": {"indoor": "clear sky outside", "window": "clear sky outside",
              "outdoor": "clear sky"},
    "rain": {"indoor": "rain outside window", "window": "rain drops on glass",
             "outdoor": "rain falling"},
    "snow": {"indoor": "snow falling outside window", "window": "snowflakes on glass",
             "outdoor": "snow falling"},
    "fog": {"indoor": "fog outside window", "window": "fogged glass",
            "outdoor": "misty fog"},
    "storm": {"indoor": "thunderstorm outside window",
              "window": "thunderstorm, rain on glass",
              "outdoor": "thunderstorm, dark clouds"},
}
# (indoors or in any weather, outdoors under a clear sky)
_TIME_LOOK = {
    "morning": ("soft morning sunlight", "early morning sky"),
    "day": ("daytime", "daytime, blue sky"),
    "golden_hour": ("golden hour light", "golden hour light"),
    "sunset": ("sunset, orange glow", "sunset, orange and pink sky"),
    "night": ("night time", "night time, starry sky"),
}
_SEASON_LOOK = {"winter": "winter", "spring": "spring", "summer": "summer",
                "autumn": "autumn colors"}
_THEME_LOOK = {"christmas": "christmas decorations"}
_SETTING_LOOK = {
    "urban": {"indoor": "city view outside", "window": "city lights outside",
              "outdoor": ""},          # balcony and rooftop already show the city
    "nature": {"indoor": "trees outside", "window": "trees outside",
               "outdoor": "surrounded by nature"},
    "indoor": {"indoor": "", "window": "", "outdoor": ""},
}
_MOTION_LOOK = {
    "hair_sway": "",                   # the figure says these two
    "breathing": "",
    "steam": "steam rising from cup",
    "flicker": "flickering lights",
    "curtain": "drifting curtains",
}
_NEGATIVE = ("text, watermark, logo, signature", "blurry, lowres, low quality",
             "worst quality, jpeg artifacts", "deformed, disfigured, bad anatomy",
             "extra limbs, extra fingers", "cropped, out of frame",
             "oversaturated, harsh lighting", "photorealistic, 3d render")

# Who the figure is when the text names them ("boy studying" draws a boy).
FIGURE_NOUNS = frozenset({"girl", "boy", "woman", "man", "student", "kid", "child",
                          "guy", "lady", "couple"})
# A feeling among the mood words sets the atmosphere ("melancholic atmosphere").
MOOD_FEELINGS = frozenset({
    "peaceful", "melancholic", "melancholy", "nostalgic", "dreamy", "calm", "cozy",
    "chill", "relaxing", "relaxed", "serene", "lonely", "sad", "moody", "gloomy",
    "romantic", "happy", "cheerful", "quiet", "tranquil", "mellow", "wistful"})


# --- parsing ------------------------------------------------------------------------------
#
# Text is cut into clauses at punctuation, clauses into lower-case, accent-free words,
# and each clause is matched against the lexicon longest phrase first ("coffee shop"
# before "coffee"); a phrase whose last word is plural also matches its singular.
# Each phrase has effects; words with none become mood unless they are stop-words.
#
# Precedence when several words compete:
# - scene: by tier, then first mention. Tier 0 is a seed id ("SCENE-03"); tier 1 names
#   a place ("study room", "café", "rooftop", "close up window"); tier 2 a thing or
#   activity that belongs to one ("desk", "studying", "bed", "breakfast"); tier 3 a weak
#   hint ("window", "books", "skyline"). So "study room ... rain outside window" is a
#   study room, "close up window, rain drops on glass" a rainy window, and "window"
#   alone a rainy window. "skyline" is a rooftop at night and a balcony otherwise.
# - weather: storm > snow > rain > fog > clear, the most visible wins ("rain and
#   thunder" is a storm); without a weather word the scene's default holds.
# - time: the first time word ("evening" is night, "early evening" sunset); without
#   one the scene's default, unless a hint contradicts it ("stars" makes a balcony
#   night, "sunny" makes a bedroom day).
# - season: the first season word; christmas brings winter when no season is named.
# - setting: urban or nature (first mentioned) over indoor, over the scene's default.
# - "no", "not", "without" negate the rest of their clause (up to "but", "and", ...):
#   negated words are dropped, and their motions and weather are removed ("no people"
#   takes the figure out, "rainy window, no rain" is clear).

_TIER_ID, _TIER_PLACE, _TIER_THING, _TIER_HINT = 0, 1, 2, 3

_LEXICON: dict[tuple[str, ...], tuple[tuple[tuple, ...], bool]] = {}
_MAX_PHRASE = 1


def _words(text: str) -> list[str]:
    """Lower-case words with accents on latin letters removed ("Café" -> "cafe")."""
    text = unicodedata.normalize("NFKD", text.lower().replace("'", "").replace("’", ""))
    out = []
    for ch in text:
        # Strip marks only from ascii letters: a mark on a kana or a devanagari letter
        # is part of the word, not an accent.
        if unicodedata.category(ch) == "Mn" and out and out[-1].isascii():
            continue
        out.append(ch)
    text = unicodedata.normalize("NFC", "".join(out)).lower()
    return re.findall(r"[^\W_]+", text)


def _lex(phrases: str, *effects: tuple, keep: bool = False) -> None:
    """Add each ";"-separated phrase with these effects. keep: also stays in mood."""
    global _MAX_PHRASE
    for phrase in phrases.split(";"):
        key = tuple(_words(phrase))
        assert key and key not in _LEXICON, phrase
        _LEXICON[key] = (effects, keep)
        _MAX_PHRASE = max(_MAX_PHRASE, len(key))


def _scene(name: str, tier: int) -> tuple:
    return ("scene", name, tier)


def _m(*motions: str) -> tuple:
    return ("motion",) + motions


_STOP = ("stop",)
_NEGATE = ("negate",)
_FIGURE = _m("hair_sway", "breathing")

# stop-words and words that say nothing about the picture
_lex("a;an;the;and;or;with;at;in;on;by;of;to;for;from;into;onto;near;under;over;"
     "through;while;during;is;are;its;it;this;that;these;those;some;very;just;plus;"
     "my;our;your;her;his;their;as;be;so;up;out;outside;off;around;behind;next;"
     "beside;then;but;only;yet;instead", _STOP)
_lex("lofi;lo fi;lowfi;low fi;style;styled;anime;illustration;illustrated;art;artwork;"
     "drawing;background;wallpaper;scene;scenery;atmosphere;aesthetic;vibe;vibes;mood;"
     "moods;beats;beat;music;song;track;playlist;radio;mix;hip hop;hiphop;"
     "instrumental;loop;looping;animated;animation;high quality;best quality;"
     "masterpiece;4k;8k;hd;detailed;time;view;close up;closeup;focus;looking;"
     "live;stream", _STOP)
_lex("no;not;without;never;zero;non", _NEGATE)

# seed ids and canonical names
for _i, _name in enumerate(SCENES, 1):
    _lex(f"scene {_i:02d};scene {_i}", _scene(_name, _TIER_ID))
for _i, _name in enumerate(MOTIONS, 1):
    _lex(f"motion {_i:02d};motion {_i}", _m(_name))

# scenes
_lex("study room;home office;office;workspace;workstation",
     _scene("study_room", _TIER_PLACE))
_lex("study;studying;studies;homework;desk;exam;exams;notebook;textbook;coding;"
     "programming;programmer;working;writing", _scene("study_room", _TIER_THING))
_lex("coffee shop;coffeeshop;coffee house;coffeehouse;cafe;caffe;cafeteria;tea house;"
     "teahouse;tea room;tearoom;bistro;diner;jazz cafe;jazz bar",
     _scene("coffee_shop", _TIER_PLACE))
_lex("barista;espresso;latte;cappuccino;espresso machine",
     _scene("coffee_shop", _TIER_THING), _m("steam"))
_lex("bedroom;bed room;bedroom night", _scene("bedroom_night", _TIER_PLACE))
_lex("lying in bed;in bed", _scene("bedroom_night", _TIER_PLACE))
_lex("bed;pillow;pillows", _scene("bedroom_night", _TIER_THING))
_lex("bedtime;bed time", _scene("bedroom_night", _TIER_THING), ("time", "night"))
_lex("blanket;blankets;duvet", _scene("bedroom_night", _TIER_HINT), keep=True)
_lex("rainy window", _scene("rainy_window", _TIER_PLACE), ("weather", "rain"))
_lex("rain window;close up window;closeup window;window close up;window closeup;"
     "window pane;windowpane;window glass", _scene("rainy_window", _TIER_PLACE))
_lex("rain on glass;rain drops on glass;raindrops on glass;rain on the window;"
     "rain on window;rain on the glass;rain drops on the window;"
     "raindrops on the window;rain drops on window;raindrops on window;"
     "rain against the window;rain against window",
     _scene("rainy_window", _TIER_PLACE), ("weather", "rain"))
_lex("window seat;by the window", _scene("rainy_window", _TIER_THING))
_lex("window;windows;glass;window view", _scene("rainy_window", _TIER_HINT))
_lex("balcony;balcony sunset;terrace;veranda;verandah;patio;porch",
     _scene("balcony_sunset", _TIER_PLACE))
_lex("skyline;city skyline", ("skyline",), ("setting", "urban"))
_lex("library;reading nook;reading room;reading corner;bookstore;bookshop;"
     "book store;book shop;archive", _scene("library", _TIER_PLACE))
_lex("bookshelf;bookshelves;book shelf;book shelves;bookcase;bookcases;shelves",
     _scene("library", _TIER_THING))
_lex("book;books;reading;reading a book;novel", _scene("library", _TIER_HINT))
_lex("kitchen;kitchen morning", _scene("kitchen_morning", _TIER_PLACE))
_lex("breakfast", _scene("kitchen_morning", _TIER_THING), ("hint_time", "morning"))
_lex("coffee brewing;brewing coffee;coffee maker;coffee machine;cooking;baking;"
     "toast;pancakes", _scene("kitchen_morning", _TIER_THING), _m("steam"))
_lex("rooftop;rooftops;roof;roof top;rooftop night;on the roof",
     _scene("rooftop_night", _TIER_PLACE))
_lex("stargazing", _scene("rooftop_night", _TIER_THING), ("hint_time", "night"))
# a cozy sound, not a place to sit
_lex("rain on the roof;rain on roof;rain on the rooftop", ("weather", "rain"))

# weather
_lex("rain;rainy;raining;rains;rained;rainfall;rain fall;drizzle;drizzly;drizzling;"
     "downpour;pouring;pouring rain;showers;rain showers;monsoon;wet;raindrop;"
     "raindrops;rain drops;rain drop;umbrella;umbrellas;rainy season",
     ("weather", "rain"))
_lex("rainy day", ("weather", "rain"), ("time", "day"))
_lex("ripples;puddle ripples;rain ripples", ("weather", "rain"), _m("water_reflection"))
_lex("snow;snowy;snowing;snows;snowed;snowfall;snow fall;falling snow;snowflake;"
     "snowflakes;snowstorm;snow storm;blizzard;flurries;snow falling",
     ("weather", "snow"), _m("particles"))
_lex("fog;foggy;mist;misty;haze;hazy;smog", ("weather", "fog"))
_lex("storm;stormy;storms;thunder;thunderstorm;thunderstorms;thundering;lightning;"
     "rainstorm;rain storm;tempest;typhoon;hurricane", ("weather", "storm"))
_lex("clear;clear sky;clear skies;clear weather;cloudless;blue sky;blue skies",
     ("weather", "clear"))
_lex("sunny;sunshine;sunlight;sunlit;sun;sunbeam;sunbeams;sun rays",
     ("weather", "clear"), ("hint_time", "day"))
_lex("sunny day", ("weather", "clear"), ("time", "day"))

# time of day
_lex("morning;mornings;dawn;sunrise;daybreak;early morning;morning light;sun rise",
     ("time", "morning"))
_lex("day;days;daytime;day time;daylight;noon;midday;afternoon;afternoons;"
     "during the day", ("time", "day"))
_lex("golden hour;golden hours;golden light;magic hour;late afternoon",
     ("time", "golden_hour"))
_lex("sunset;sunsets;dusk;twilight;sundown;early evening;setting sun;sun setting;"
     "nightfall;blue hour", ("time", "sunset"))
_lex("night;nights;nighttime;night time;midnight;late night;tonight;nocturnal;"
     "evening;evenings;after dark;after hours;1am;2am;3am;4am",
     ("time", "night"))
_lex("stars;starry;starry sky;moon;moonlight;moonlit;full moon;night sky",
     ("hint_time", "night"))

# seasons and theme
_lex("winter;wintry;wintery;wintertime;winter time;december;january;february;"
     "frost;frosty", ("season", "winter"))
_lex("spring;springtime;spring time;april;blossom;blossoms", ("season", "spring"))
_lex("cherry blossom;cherry blossoms;sakura;petals;falling petals",
     ("season", "spring"), _m("particles"), keep=True)
_lex("summer;summertime;summer time;summery;june;july;august;summer holiday;"
     "summer holidays;summer vacation", ("season", "summer"))
_lex("autumn;autumnal;fall;fall season;september;october;november;thanksgiving",
     ("season", "autumn"))
_lex("autumn leaves;falling leaves;fall leaves", ("season", "autumn"), _m("particles"))
_lex("halloween;pumpkin;pumpkins", ("season", "autumn"), keep=True)
_lex("christmas;xmas;x mas;christmas eve;christmas time;christmastime;holiday season;"
     "holidays;yule;yuletide;noel;santa;christmas tree", ("theme", "christmas"))
_lex("christmas lights;christmas light", ("theme", "christmas"), _m("flicker"))

# setting
_lex("city;urban;downtown;cityscape;metropolis;city view;city lights;street;streets;"
     "skyscraper;skyscrapers;town", ("setting", "urban"))
_lex("tokyo;new york;paris;london;seoul;osaka;kyoto;shibuya", ("setting", "urban"),
     keep=True)
_lex("neon;neon lights;neon sign;neon signs", ("setting", "urban"), _m("flicker"),
     keep=True)
_lex("wet street;wet streets;wet pavement", ("setting", "urban"),
     ("weather", "rain"), _m("water_reflection"))
_lex("nature;natural;outdoors;wilderness;countryside;rural", ("setting", "nature"))
_lex("forest;forests;woods;mountain;mountains;garden;gardens;meadow;field;fields;"
     "beach;ocean;sea;seaside;jungle;cabin;village;park;hills;trees",
     ("setting", "nature"), keep=True)
_lex("lake;pond;river", ("setting", "nature"), _m("water_reflection"), keep=True)
_lex("indoor;indoors;inside;interior;cozy indoor", ("setting", "indoor"))

# motions
_lex("hair;hair sway;hair swaying;swaying hair;flowing hair;wind in hair",
     _m("hair_sway"))
_lex("steam;steaming;steamy;steam rising;rising steam;coffee;cup;mug;cup of coffee;"
     "coffee cup;hot coffee;"
     "smoke;smoking", _m("steam"))
_lex("tea;cup of tea;kettle;incense;ramen;noodles;soup;cocoa;hot chocolate",
     _m("steam"), keep=True)
_lex("flicker;flickering;flickering light;flickering lights;twinkling;fairy light;"
     "fairy lights;string lights;string light", _m("flicker"))
_lex("candle;candles;candlelight;candle light;candlelit;lantern;lanterns;fireplace;"
     "fire place;fire;campfire;hearth;monitor;monitors;screen;computer;laptop;tv;"
     "television;embers", _m("flicker"), keep=True)
_lex("curtain;curtains;drapes;breeze;wind;windy;curtain drift;drifting curtains",
     _m("curtain"))
_lex("particles;particle;particle float;dust;dust motes;motes;dust particles;"
     "floating dust;leaves;pollen;sparkles", _m("particles"))
_lex("fireflies;firefly", _m("particles"), ("hint_time", "night"), keep=True)
_lex("reflection;reflections;reflective;reflecting;water reflection;"
     "water reflections;mirror;mirrors", _m("water_reflection"))
_lex("puddle;puddles", _m("water_reflection"), keep=True)
_lex("breathing;breath;breathe;sleeping;asleep;napping;nap;falling asleep;"
     "fall asleep", _m("breathing"))
_lex("person;figure;character;someone;somebody;people;lofi girl;human",
     _FIGURE)
_lex("girl;boy;woman;man;student;kid;child;guy;lady;couple;girls;boys;women;men",
     _FIGURE, keep=True)

_STOP_WORDS = frozenset(k[0] for k, (effects, _) in _LEXICON.items()
                        if len(k) == 1 and effects == (_STOP,))

# words that end a negation ("no people, just rain"; "no rain but snow")
_NEGATION_ENDS = frozenset({"but", "just", "only", "instead", "and", "with", "yet"})
_CLAUSE = re.compile(r"[,.;:!?\n\r\t|/()\[\]{}<>\"]+")


def _singulars(word: str) -> list[str]:
    """The forms a plural may come from ("libraries", "beaches", "houses")."""
    if len(word) < 4 or not word.endswith("s") or word.endswith("ss"):
        return []
    out = [word[:-1]]
    if word.endswith("es"):
        out.append(word[:-2])
    if word.endswith("ies"):
        out.append(word[:-3] + "y")
    return out


def _lookup(words: list[str]):
    key = tuple(words)
    found = _LEXICON.get(key)
    for singular in _singulars(key[-1]) if found is None else ():
        found = _LEXICON.get(key[:-1] + (singular,))
        if found is not None:
            break
    return found


def _match(text: str):
    """Yield (position, words, effects, keep, negated) for each phrase or word."""
    pos = 0
    for clause in _CLAUSE.split(text):
        words = _words(clause)
        negated = False
        i = 0
        while i < len(words):
            for n in range(min(_MAX_PHRASE, len(words) - i), 0, -1):
                found = _lookup(words[i:i + n])
                if found is not None:
                    break
            else:
                n, found = 1, ((), False)
            effects, keep = found
            if words[i] in _NEGATION_ENDS:
                negated = False
            if _NEGATE in effects:
                negated = True
            else:
                yield pos, words[i:i + n], effects, keep, negated
            i += n
            pos += 1


def parse(text: str) -> SceneSpec:
    """Free text -> a fully resolved SceneSpec. Never fails on text; see the rules above."""
    if not isinstance(text, str):
        raise SceneSpecError(f"parse() needs text (a str), got {text!r}")
    scenes = []        # (tier, position, scene)
    weathers, times, time_hints, seasons, themes, settings = [], [], [], [], [], []
    motions, no_motions, no_weathers = set(), set(), set()
    skyline = None     # position of "skyline": its scene waits for the time
    mood = []
    for pos, words, effects, keep, negated in _match(text):
        if negated:
            for effect in effects:
                if effect[0] == "motion":
                    no_motions.update(effect[1:])
                elif effect[0] == "weather":
                    no_weathers.add(effect[1])
            continue
        for effect in effects:
            kind = effect[0]
            if kind == "scene":
                scenes.append((effect[2], pos, effect[1]))
            elif kind == "motion":
                motions.update(effect[1:])
            elif kind == "weather":
                weathers.append(effect[1])
            elif kind == "time":
                times.append(effect[1])
            elif kind == "hint_time":
                time_hints.append(effect[1])
            elif kind == "season":
                seasons.append(effect[1])
            elif kind == "theme":
                themes.append(effect[1])
            elif kind == "setting":
                settings.append(effect[1])
            elif kind == "skyline" and skyline is None:
                skyline = pos
        if not effects or keep:
            mood += [w for w in words if w not in _STOP_WORDS
                     and not (w.isascii() and len(w) < 2)
                     and any(c.isalpha() for c in w)]

    # The time may decide a skyline's scene, so the explicit time comes first.
    time = times[0] if times else None
    if skyline is not None:
        night = time == "night" or (time is None and "night" in time_hints)
        scenes.append((_TIER_HINT, skyline, "rooftop_night" if night else "balcony_sunset"))
    scene = min(scenes)[2] if scenes else DEFAULT_SCENE
    defaults = SCENE_DEFAULTS[scene]

    if time is None:
        time = defaults["time_of_day"]
        if time_hints:
            hint = time_hints[0]
            # A hint only moves the time across day and night.
            if (hint == "night") != (time == "night"):
                time = hint

    weathers = [w for w in weathers if w not in no_weathers]
    if weathers:
        weather = min(weathers, key=("storm", "snow", "rain", "fog", "clear").index)
    elif defaults["weather"] in no_weathers:
        weather = "clear"
    else:
        weather = defaults["weather"]

    outside = [s for s in settings if s != "indoor"]
    setting = outside[0] if outside else ("indoor" if settings else defaults["setting"])

    theme = themes[0] if themes else None
    season = seasons[0] if seasons else ("winter" if theme == "christmas" else None)

    motions = (set(default_motions(scene, weather, time)) | motions) - no_motions
    return SceneSpec(scene=scene, motions=tuple(motions), season=season, theme=theme,
                     weather=weather, time_of_day=time, setting=setting,
                     mood=tuple(mood))


def at_time_of_day(spec: SceneSpec, time_of_day: str) -> SceneSpec:
    """`spec` at another time of day, with the motions that time brings: a study room
    at night gets its lamps' flicker, and loses what only its old time brought."""
    _check_choice("time_of_day", time_of_day, TIMES)
    if spec.time_of_day == time_of_day:
        return spec
    new = set(default_motions(spec.scene, spec.weather, time_of_day))
    old_only = set(TIME_MOTIONS[spec.time_of_day]) - new
    motions = (set(spec.motions) - old_only) | set(TIME_MOTIONS[time_of_day])
    return spec.with_changes(time_of_day=time_of_day, motions=tuple(motions))
