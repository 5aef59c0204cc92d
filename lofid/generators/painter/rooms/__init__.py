"""The rooms: one module per scene of the vocabulary, each with compose(ctx), which
lays the scene out in a painter Context (what stands where, which lights, which
anchors for the motions)."""

from __future__ import annotations

from . import (balcony_sunset, bedroom_night, coffee_shop, kitchen_morning, library,
               rainy_window, rooftop_night, study_room)

ROOMS = {  # one per scene of the vocabulary, in its order
    "study_room": study_room.compose,
    "coffee_shop": coffee_shop.compose,
    "bedroom_night": bedroom_night.compose,
    "rainy_window": rainy_window.compose,
    "balcony_sunset": balcony_sunset.compose,
    "library": library.compose,
    "kitchen_morning": kitchen_morning.compose,
    "rooftop_night": rooftop_night.compose,
}
