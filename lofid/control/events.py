"""The names of the events lofid pushes to subscribers ([2, name, [payload]]), once.

Modules that emit an event name it by one of these constants; the Neovim plugin's list
(`require("lofi_vision").events`) is checked against ALL by a test.
"""

SCENE_CHANGED = "scene_changed"              # {scene, loop, seed, reason}
LOOP_STARTED = "loop_started"                # a loop begins to show
CROSSFADE = "crossfade"                      # {from, to, frame, ...}
LOOP_READY = "loop_ready"                    # a loop was made into the library
LOOP_REJECTED = "loop_rejected"              # a loop made did not pass its checks
GENERATION_STARTED = "generation_started"
GENERATION_PROGRESS = "generation_progress"
GENERATION_FAILED = "generation_failed"
OUTPUT_CHANGED = "output_changed"            # {output, state, detail}
CONFIG_RELOADED = "config_reloaded"          # {ok, error, changed, needs_restart}
PLAYER_ERROR = "player_error"
# A request could not be met; also how the server says why it closes a connection
# it will not serve ([2, "error", [message]]).
ERROR = "error"

ALL = (SCENE_CHANGED, LOOP_STARTED, CROSSFADE, LOOP_READY, LOOP_REJECTED,
       GENERATION_STARTED, GENERATION_PROGRESS, GENERATION_FAILED, OUTPUT_CHANGED,
       CONFIG_RELOADED, PLAYER_ERROR, ERROR)

# Subscribing to this one hears every event.
EVERY = "*"
