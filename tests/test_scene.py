"""SceneSpec: the parser, defaults, prompt text, ids, round trips and validation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lofid.scene import (DEFAULT_SCENE, MOTIONS, SCENE_DEFAULTS, SCENES, SEASONS, SETTINGS,
                         THEMES, TIMES, WEATHERS, SceneSpec, default_motions, parse)

SEED_STUDY = """lofi style, cozy study room, girl studying at desk, warm lamp light,
rain outside window, books stacked, plants on windowsill, night time,
anime illustration style, soft colors, peaceful atmosphere"""
SEED_COFFEE = """lofi style, coffee shop interior, steam rising from cup, rainy day outside,
wooden tables, warm lighting, cozy atmosphere, no people, anime background style"""
SEED_WINDOW = """lofi style, close up window, rain drops on glass, blurred city lights outside,
warm interior glow, night time, melancholic mood, anime style"""


# --- the seed's prompts and music prompts --------------------------------------------------

def test_seed_study_room_prompt():
    spec = parse(SEED_STUDY)
    assert spec.scene == "study_room"          # not rainy_window: the room is named
    assert spec.weather == "rain"
    assert spec.time_of_day == "night"
    assert spec.setting == "indoor"
    assert {"hair_sway", "breathing", "steam", "flicker", "rain"} <= set(spec.motions)
    assert {"cozy", "girl", "plants", "peaceful"} <= set(spec.mood)
    # style and glue words are not mood
    assert not {"lofi", "style", "anime", "illustration", "at", "time"} & set(spec.mood)


def test_seed_coffee_shop_prompt():
    spec = parse(SEED_COFFEE)
    assert spec.scene == "coffee_shop"
    assert spec.weather == "rain"
    assert spec.time_of_day == "day"
    assert set(spec.motions) == {"steam", "flicker", "rain"}
    # "no people": no figure, and the prompt says so
    assert not spec.has_figure()
    assert "people" not in spec.mood
    assert "no people" in spec.prompt()
    assert "people" in spec.negative_prompt()
    assert {"wooden", "tables", "cozy"} <= set(spec.mood)


def test_seed_rainy_window_prompt():
    spec = parse(SEED_WINDOW)
    assert spec.scene == "rainy_window"
    assert spec.weather == "rain"
    assert spec.time_of_day == "night"
    assert spec.setting == "urban"             # city lights outside
    assert {"rain", "water_reflection", "flicker"} <= set(spec.motions)
    assert "melancholic" in spec.mood
    assert "melancholic atmosphere" in spec.prompt()


@pytest.mark.parametrize("text, expected", [
    ("rainy night, coffee shop, jazz lofi",
     dict(scene="coffee_shop", weather="rain", time_of_day="night", mood=("jazz",))),
    ("chill study beats",
     dict(scene="study_room", weather="clear", time_of_day="day", mood=("chill",))),
    ("snowy winter evening by the fireplace",
     dict(weather="snow", season="winter", time_of_day="night", mood=("fireplace",))),
    ("sunset rooftop, summer, chillhop",
     dict(scene="rooftop_night", time_of_day="sunset", season="summer", setting="urban",
          mood=("chillhop",))),
    ("lofi hip hop radio - beats to relax/study to",
     dict(scene="study_room", mood=("relax",))),
])
def test_music_prompts(text, expected):
    spec = parse(text)
    for field, value in expected.items():
        assert getattr(spec, field) == value, (text, field, spec)


def test_music_prompt_motions():
    cafe = parse("rainy night, coffee shop, jazz lofi")
    assert {"rain", "steam", "flicker"} <= set(cafe.motions)
    fireplace = parse("snowy winter evening by the fireplace")
    assert {"particles", "flicker"} <= set(fireplace.motions)
    assert "snow falling" in fireplace.prompt() and "fireplace" in fireplace.prompt()


# --- synonyms ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, field, value", [
    ("café", "scene", "coffee_shop"), ("Cafe", "scene", "coffee_shop"),
    ("coffee shop", "scene", "coffee_shop"), ("COFFEE-SHOP!!", "scene", "coffee_shop"),
    ("coffeehouse", "scene", "coffee_shop"), ("cozy coffeehouses", "scene", "coffee_shop"),
    ("Cafés", "scene", "coffee_shop"),
    ("drizzle", "weather", "rain"), ("rainy", "weather", "rain"),
    ("raining", "weather", "rain"), ("downpour", "weather", "rain"),
    ("snowy", "weather", "snow"), ("snowflakes", "weather", "snow"),
    ("thunder", "weather", "storm"), ("lightning", "weather", "storm"),
    ("foggy", "weather", "fog"), ("misty", "weather", "fog"),
    ("dusk", "time_of_day", "sunset"), ("golden hour", "time_of_day", "golden_hour"),
    ("Golden-Hour", "time_of_day", "golden_hour"),
    ("midnight", "time_of_day", "night"), ("late night", "time_of_day", "night"),
    ("late-night", "time_of_day", "night"), ("nighttime", "time_of_day", "night"),
    ("sunrise", "time_of_day", "morning"), ("dawn", "time_of_day", "morning"),
    ("afternoon", "time_of_day", "day"), ("early evening", "time_of_day", "sunset"),
    ("fall", "season", "autumn"), ("autumnal", "season", "autumn"),
    ("springtime", "season", "spring"), ("sakura", "season", "spring"),
    ("summertime", "season", "summer"), ("wintry", "season", "winter"),
    ("xmas", "theme", "christmas"), ("X-MAS", "theme", "christmas"),
    ("Christmas", "theme", "christmas"),
    ("city", "setting", "urban"), ("downtown", "setting", "urban"),
    ("forest", "setting", "nature"), ("mountains", "setting", "nature"),
])
def test_synonyms(text, field, value):
    assert getattr(parse(text), field) == value


def test_xmas_is_christmas_in_winter():
    spec = parse("xmas")
    assert (spec.theme, spec.season) == ("christmas", "winter")
    # a named season wins over the one christmas brings
    assert parse("christmas in summer").season == "summer"


@pytest.mark.parametrize("text, motions", [
    ("candles", {"flicker"}), ("fairy lights", {"flicker"}), ("fairy light", {"flicker"}),
    ("steam", {"steam"}), ("coffee", {"steam"}), ("cup of tea", {"steam"}),
    ("snowfall", {"particles"}), ("curtains", {"curtain"}), ("breeze", {"curtain"}),
    ("puddles", {"water_reflection"}), ("reflection", {"water_reflection"}),
    ("dust motes", {"particles"}), ("falling leaves", {"particles"}),
    ("hair", {"hair_sway"}), ("sleeping", {"breathing"}),
    ("girl studying", {"hair_sway", "breathing"}), ("figure", {"hair_sway", "breathing"}),
    ("person", {"hair_sway", "breathing"}), ("MOTION-07", {"water_reflection"}),
])
def test_motion_words_add_motions(text, motions):
    # on a scene with no figure and no such motions by default
    spec = parse("close up window, clear, " + text)
    assert motions <= set(spec.motions), (text, spec.motions)


def test_motion_words_are_added_not_replacing():
    spec = parse("coffee shop, curtains")
    assert set(spec.motions) == {"steam", "flicker", "curtain"}
    snow = parse("snowfall")
    assert snow.weather == "snow" and "particles" in snow.motions


@pytest.mark.parametrize("text, scene", [
    ("desk", "study_room"), ("studying", "study_room"), ("homework", "study_room"),
    ("bedroom", "bedroom_night"), ("bed", "bedroom_night"),
    ("window", "rainy_window"), ("balcony", "balcony_sunset"),
    ("library", "library"), ("bookshelves", "library"), ("reading nook", "library"),
    ("kitchen", "kitchen_morning"), ("breakfast", "kitchen_morning"),
    ("rooftop", "rooftop_night"), ("roof", "rooftop_night"),
    ("skyline at night", "rooftop_night"), ("skyline", "balcony_sunset"),
    ("city skyline, stars", "rooftop_night"),
    ("SCENE-06", "library"), ("scene-2", "coffee_shop"),
])
def test_scene_words(text, scene):
    assert parse(text).scene == scene


@pytest.mark.parametrize("scene", SCENES)
def test_scene_names_parse_to_themselves(scene):
    # "rainy_window" and "rainy window" alike
    assert parse(scene).scene == scene
    assert parse(scene.replace("_", " ").upper()).scene == scene


@pytest.mark.parametrize("text, scene", [
    ("study room, rain outside window", "study_room"),
    ("close up window, rain drops on glass", "rainy_window"),
    ("desk by the window", "study_room"),
    ("girl studying in a café", "coffee_shop"),       # a place beats an activity
    ("study room with books", "study_room"),           # books only hint at a library
    ("girl studying in the library", "library"),
    ("bedroom, coffee shop", "bedroom_night"),         # equal rank: first named
    ("coffee shop, bedroom", "coffee_shop"),
    ("breakfast in bed", "bedroom_night"),
    ("rain on the roof, bedroom", "bedroom_night"),
    ("SCENE-08, coffee shop", "rooftop_night"),        # a seed id beats words
])
def test_scene_precedence(text, scene):
    assert parse(text).scene == scene


def test_weather_precedence():
    assert parse("rain and thunder").weather == "storm"
    assert parse("sunny, then snow").weather == "snow"
    assert parse("rainy window, snowy").weather == "snow"
    snowy_window = parse("snowy window")
    assert snowy_window.scene == "rainy_window"
    # snow replaces the window's rain: flakes, no rain drops
    assert "rain" not in snowy_window.motions and "particles" in snowy_window.motions


def test_time_precedence_and_hints():
    assert parse("night, morning").time_of_day == "night"       # first named
    assert parse("rooftop at sunset").time_of_day == "sunset"    # overrides the scene
    assert parse("balcony, stars").time_of_day == "night"        # hint moves day to night
    assert parse("bedroom, sunny").time_of_day == "day"          # and night to day
    assert parse("kitchen, sunlight").time_of_day == "morning"   # morning is daylight
    assert parse("balcony at dawn, stars").time_of_day == "morning"  # words beat hints


def test_setting_precedence():
    assert parse("cabin interior in the forest").setting == "nature"
    assert parse("rooftop").setting == "urban"
    assert parse("rooftop, indoors").setting == "indoor"
    assert parse("coffee shop").setting == "indoor"


def test_negation():
    spec = parse("study room, no people")
    assert not spec.has_figure()
    assert "no people" in spec.prompt()
    assert parse("rainy window, no rain").weather == "clear"
    assert parse("no rain but snow").weather == "snow"
    assert parse("without curtains").motions == parse("").motions
    # negated unknown words are not mood either
    assert parse("coffee shop without customers").mood == ()


# --- unknown words, empty text ---------------------------------------------------------------

def test_unknown_words_are_mood_in_order():
    spec = parse("Vaporwave dreams, Nostalgic synths & a purple cat")
    assert spec.mood == ("vaporwave", "dreams", "nostalgic", "synths", "purple", "cat")
    assert spec.scene == DEFAULT_SCENE
    assert "vaporwave" in spec.prompt() and "nostalgic atmosphere" in spec.prompt()


def test_repeated_mood_words_once():
    assert parse("jazz, jazz, JAZZ").mood == ("jazz",)


def test_accents_and_scripts():
    assert parse("crème brûlée").mood == ("creme", "brulee")
    # marks on other scripts are part of their words and stay
    assert parse("ガラス").mood == ("ガラス",)


@pytest.mark.parametrize("text", ["", "   ", "\n\t", ",,,", "the and with"])
def test_empty_text_gives_default_scene(text):
    spec = parse(text)
    assert spec.scene == DEFAULT_SCENE
    assert spec.mood == ()
    assert spec == parse("")
    d = SCENE_DEFAULTS[DEFAULT_SCENE]
    assert (spec.weather, spec.time_of_day, spec.setting) == (
        d["weather"], d["time_of_day"], d["setting"])
    assert spec.motions == default_motions(DEFAULT_SCENE, d["weather"], d["time_of_day"])


def test_parse_refuses_non_text():
    with pytest.raises(ValueError, match="str"):
        parse(None)


# --- defaults and motions ---------------------------------------------------------------------

@pytest.mark.parametrize("scene, time, weather, setting", [
    ("study_room", "day", "clear", "indoor"),
    ("coffee_shop", "day", "clear", "indoor"),
    ("bedroom_night", "night", "clear", "indoor"),
    ("rainy_window", "day", "rain", "indoor"),
    ("balcony_sunset", "sunset", "clear", "urban"),
    ("library", "day", "clear", "indoor"),
    ("kitchen_morning", "morning", "clear", "indoor"),
    ("rooftop_night", "night", "clear", "urban"),
])
def test_scene_defaults(scene, time, weather, setting):
    spec = parse(scene)
    assert (spec.time_of_day, spec.weather, spec.setting) == (time, weather, setting)
    assert set(SCENE_DEFAULTS[scene]["motions"]) <= set(spec.motions)


@pytest.mark.parametrize("scene, motions", [
    ("study_room", {"hair_sway", "breathing", "steam", "flicker"}),
    ("coffee_shop", {"steam", "flicker"}),
    ("bedroom_night", {"flicker", "curtain"}),
    ("rainy_window", {"rain", "water_reflection"}),
    ("balcony_sunset", {"hair_sway", "particles"}),
])
def test_scene_default_motions(scene, motions):
    assert set(parse(scene).motions) == motions


def test_weather_and_time_add_motions():
    assert "rain" in parse("library, rain").motions
    assert "rain" in parse("library, storm").motions
    assert "particles" in parse("coffee shop, snow").motions
    assert "flicker" in parse("balcony, night").motions
    assert "flicker" not in parse("balcony").motions
    assert "rain" not in parse("library").motions


def test_default_motions_checks_its_arguments():
    with pytest.raises(ValueError, match="weather"):
        default_motions("library", "hail", "day")


# --- prompt text ------------------------------------------------------------------------------

@pytest.mark.parametrize("scene, key", [
    ("study_room", "desk"), ("coffee_shop", "coffee shop"), ("bedroom_night", "bed"),
    ("rainy_window", "window"), ("balcony_sunset", "balcony"),
    ("library", "bookshelves"), ("kitchen_morning", "kitchen"), ("rooftop_night", "rooftop"),
])
def test_prompt_has_scene_elements(scene, key):
    prompt = parse(scene).prompt()
    assert prompt.startswith("lofi style, ")
    assert key in prompt
    assert "anime illustration style" in prompt and "soft colors" in prompt


@pytest.mark.parametrize("weather, word", [
    ("rain", "rain"), ("snow", "snow"), ("fog", "fog"), ("storm", "thunderstorm"),
    ("clear", "clear sky")])
@pytest.mark.parametrize("scene", ["study_room", "rainy_window", "balcony_sunset"])
def test_prompt_says_weather(scene, weather, word):
    assert word in SceneSpec(scene=scene, weather=weather).prompt()


@pytest.mark.parametrize("time, word", [
    ("morning", "morning"), ("day", "daytime"), ("golden_hour", "golden hour"),
    ("sunset", "sunset"), ("night", "night")])
def test_prompt_says_time(time, word):
    assert word in SceneSpec(time_of_day=time).prompt()


def test_prompt_says_season_theme_setting_and_mood():
    prompt = parse("kitchen, autumn, christmas, tokyo, jazz").prompt()
    for word in ("autumn", "christmas", "city", "tokyo", "jazz"):
        assert word in prompt


def test_prompt_figure_follows_the_text():
    assert "boy studying at desk" in parse("boy studying").prompt()
    assert "girl studying at desk" in parse("study room").prompt()


def test_prompt_fits_clip_context_without_mood():
    # CLIP reads 77 tokens; the style words at the end must not be cut off. Words and
    # commas undercount its tokens a little, hence the margin.
    longest = max(
        len(SceneSpec(scene=s, weather=w, time_of_day=t, season="autumn",
                      theme="christmas", setting="nature",
                      motions=MOTIONS).prompt().replace(",", " , ").split())
        for s in SCENES for w in WEATHERS for t in TIMES)
    assert longest <= 68


def test_negative_prompt():
    negative = parse("").negative_prompt()
    for word in ("text", "watermark", "logo", "blurry", "lowres", "deformed"):
        assert word in negative
    assert "people" not in negative        # the default study room has its figure


def test_label():
    assert parse("rainy night, coffee shop").label() == "coffee shop, rain, night"
    assert SceneSpec(season="winter", theme="christmas").label() == (
        "study room, day, winter, christmas")


# --- ids, equality, round trips ---------------------------------------------------------------

def test_id_is_short_hex_and_distinguishes_specs():
    a = parse("rainy night, coffee shop, jazz")
    assert len(a.id) == 10 and int(a.id, 16) >= 0
    assert a.id == parse("Rainy night — coffee shop — jazz").id
    others = {parse(t).id for t in ("rainy night, coffee shop", "snowy night, coffee shop",
                                    "rainy day, coffee shop", "rainy night, library")}
    assert a.id not in others and len(others) == 4


@pytest.mark.slow
def test_id_same_in_another_process():
    texts = [SEED_STUDY, SEED_COFFEE, SEED_WINDOW, "", "café, xmas, crème"]
    here = [parse(t).id for t in texts]
    code = ("import json, sys; from lofid.scene import parse; "
            "print(json.dumps([parse(t).id for t in json.load(sys.stdin)]))")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts),
                         capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out) == here


def test_motions_and_mood_are_canonical():
    a = SceneSpec(motions=["rain", "steam", "rain", "hair_sway"], mood=["Jazz", "jazz", "cat"])
    b = SceneSpec(motions=("hair_sway", "steam", "rain"), mood=("jazz", "cat"))
    assert a.motions == ("hair_sway", "rain", "steam")
    assert a.mood == ("jazz", "cat")
    assert a == b and hash(a) == hash(b) and a.id == b.id
    assert len({a, b}) == 1


def test_round_trip_through_json():
    spec = parse(SEED_STUDY)
    d = json.loads(json.dumps(spec.to_dict()))
    assert SceneSpec.from_dict(d) == spec
    assert SceneSpec.from_dict(d).to_dict() == spec.to_dict()
    # key order does not matter to the id
    assert SceneSpec.from_dict(dict(reversed(list(d.items())))).id == spec.id


def test_from_dict_fills_missing_fields():
    assert SceneSpec.from_dict({"scene": "library"}) == SceneSpec(scene="library")


specs = st.builds(
    SceneSpec,
    scene=st.sampled_from(SCENES),
    motions=st.lists(st.sampled_from(MOTIONS)),
    season=st.none() | st.sampled_from(SEASONS),
    theme=st.none() | st.sampled_from(THEMES),
    weather=st.sampled_from(WEATHERS),
    time_of_day=st.sampled_from(TIMES),
    setting=st.sampled_from(SETTINGS),
    mood=st.lists(st.text(min_size=1, max_size=8).filter(str.strip), max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(specs)
def test_any_spec_round_trips(spec):
    again = SceneSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.id == spec.id
    assert again.to_dict() == spec.to_dict()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_any_text_parses_to_a_valid_spec(text):
    spec = parse(text)
    assert spec.scene in SCENES and spec.weather in WEATHERS
    assert spec.time_of_day in TIMES and spec.setting in SETTINGS
    assert list(spec.motions) == [m for m in MOTIONS if m in spec.motions]
    assert all(w and w == w.lower() and not w.isspace() for w in spec.mood)
    assert SceneSpec.from_dict(spec.to_dict()) == spec
    assert spec.prompt() and spec.negative_prompt() and spec.label()
    assert parse(text) == spec


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(
    ["rainy", "night", "coffee shop", "jazz", "study", "window", "snow", "xmas", "dusk",
     "candles", "no people", "rooftop", "library", "fog", "golden hour", "cat"]),
    max_size=6))
def test_prompt_vocabulary_parses_to_a_valid_spec(words):
    spec = parse(", ".join(words))
    assert SceneSpec.from_dict(spec.to_dict()) == spec


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, allowed", [
    ("scene", "garage", "study_room"), ("weather", "hail", "storm"),
    ("time_of_day", "noon", "golden_hour"), ("setting", "space", "nature"),
    ("season", "monsoon", "autumn"), ("theme", "halloween", "christmas"),
    ("motions", ["rain", "wobble"], "water_reflection"),
])
def test_unknown_values_are_refused(field, value, allowed):
    for make in (lambda: SceneSpec(**{field: value}),
                 lambda: SceneSpec.from_dict({field: value}),
                 lambda: SceneSpec().with_changes(**{field: value})):
        with pytest.raises(ValueError) as err:
            make()
        message = str(err.value)
        bad = value[-1] if isinstance(value, list) else value
        assert field in message and repr(bad) in message and allowed in message


@pytest.mark.parametrize("d, field", [
    ({"scene": "library", "lighting": "warm"}, "lighting"),
    ({"motions": "rain"}, "motions"),            # a string, not a list
    ({"mood": ["jazz", ""]}, "mood"),
    ({"weather": None}, "weather"),
])
def test_from_dict_refuses_bad_fields(d, field):
    with pytest.raises(ValueError, match=field):
        SceneSpec.from_dict(d)


def test_from_dict_refuses_non_dict():
    with pytest.raises(ValueError, match="dict"):
        SceneSpec.from_dict(["scene", "library"])


def test_with_changes():
    spec = parse("coffee shop")
    night = spec.with_changes(time_of_day="night", mood=["jazz"])
    assert (night.scene, night.time_of_day, night.mood) == ("coffee_shop", "night", ("jazz",))
    assert night.motions == spec.motions          # taken as given
    assert spec.time_of_day == "day"              # the original is untouched
    with pytest.raises(ValueError, match="colour"):
        spec.with_changes(colour="blue")


def test_spec_is_frozen():
    with pytest.raises(AttributeError):
        SceneSpec().scene = "library"
