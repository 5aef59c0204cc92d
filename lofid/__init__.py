"""lofid: cozy, subtly animated lofi scenes that never stop."""

__version__ = "0.1.0"
