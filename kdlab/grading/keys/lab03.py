"""Answer keys of Lab 03 (to be written)."""
KEYS = {}
