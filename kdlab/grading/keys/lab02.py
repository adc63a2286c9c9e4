"""Answer keys of Lab 02 (to be written)."""
KEYS = {}
