"""Answer keys of Lab 04 (to be written)."""
KEYS = {}
