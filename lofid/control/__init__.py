"""The control socket: protocol (framing, shared by both ends), server, client, the
API methods (api.py) and the event names (events.py)."""
