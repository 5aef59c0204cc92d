"""The painter's colours: sky, ambient light and far city per time of day, the
weather's tint, lamp light, and the muted palettes of books, walls, wood, hair,
sweaters, facades and leaves."""

from __future__ import annotations

from .canvas import rgb


# Sky from zenith to horizon, per time of day.
SKY = {
    "morning": [rgb("#9fc3e6"), rgb("#cfe0ee"), rgb("#f8dcc0")],
    "day": [rgb("#6fa6dc"), rgb("#a9cdec"), rgb("#dcebf5")],
    "golden_hour": [rgb("#7d9cc9"), rgb("#e8b27a"), rgb("#ffd590")],
    "sunset": [rgb("#2e2a66"), rgb("#b4507c"), rgb("#f49660")],
    "night": [rgb("#070b22"), rgb("#111a44"), rgb("#2b3470")],
}


# Light that fills a room at that hour (multiplies surface colours).
AMBIENT = {
    "morning": rgb("#ecd8c0"),
    "day": rgb("#eeeeea"),
    "golden_hour": rgb("#f0c490"),
    "sunset": rgb("#b88a9a"),
    "night": rgb("#363e6c"),
}


# Lamp light, warm at every hour.
WARM = rgb("#ffb866")


# Far buildings against the sky, per time.
CITY = {
    "morning": rgb("#9aa6bc"),
    "day": rgb("#8fa0b8"),
    "golden_hour": rgb("#9a7f86"),
    "sunset": rgb("#4c3560"),
    "night": rgb("#141a3a"),
}


WEATHER_AMBIENT = {
    "clear": (1.0, 1.0, 1.0),
    "rain": (0.72, 0.76, 0.86),
    "snow": (0.95, 0.98, 1.05),
    "fog": (0.88, 0.9, 0.93),
    "storm": (0.5, 0.53, 0.65),
}


# Book spines: muted, harmonious.
BOOKS = [rgb(h) for h in ("#b5543c", "#d08c4a", "#e3b85c", "#6d8f6a", "#3f6f86",
                           "#8a5a7a", "#c9b79c", "#5a4a6e", "#a3413d", "#7d9b9a",
                           "#e0d2b8", "#2f4f5f")]


WALLS = [rgb(h) for h in ("#e9dcc6", "#d9c8a9", "#c7d1c0", "#e3c9b3", "#cfd4d8", "#d8c2a0")]


WOOD = [rgb(h) for h in ("#8a5a3c", "#9c6b45", "#6e4a33", "#a77c55")]


HAIR = [rgb(h) for h in ("#2a1e1c", "#3b2a22", "#5a3a28", "#1d1b26", "#6b4a3a")]


SWEATER = [rgb(h) for h in ("#c96f4a", "#d9a05b", "#6f8fa6", "#8f6f9a", "#7c9a6a", "#e0c9a6")]


FACADES = [rgb(h) for h in ("#c98f6f", "#d8c3a0", "#8f9fb4", "#b7a08c", "#a7b4b8", "#c7a8a0", "#9a8a7e")]


def season_leaf(season, k=0):
    if season == "autumn":
        return [rgb("#c8642e"), rgb("#d98c38"), rgb("#a8452a")][k % 3]
    if season == "spring":
        return [rgb("#7fb45a"), rgb("#9ccc6a"), rgb("#5f9a48")][k % 3]
    if season == "winter":
        return [rgb("#4f7a5c"), rgb("#5e8466"), rgb("#466e58")][k % 3]
    if season == "summer":
        return [rgb("#3f9a4a"), rgb("#4fae52"), rgb("#2f8a44")][k % 3]
    return [rgb("#5f8f58"), rgb("#74a060"), rgb("#4c7c4a")][k % 3]


def pick(rng, choices):
    """One of `choices`, drawn with rng (one draw, whatever the choices)."""
    return choices[int(rng.integers(len(choices)))]
