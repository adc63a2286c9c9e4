"""Answer keys of Lab 05 (to be written)."""
KEYS = {}
