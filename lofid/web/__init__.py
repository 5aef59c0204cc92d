"""The web page lofid serves itself (`lofid run --web [HOST:]PORT`): the live picture
(fragmented MP4 for Media Source Extensions: stream.py), the controls and the library
(server.py, static/), live through server-sent events, and /overlay for OBS."""
