"""Bring the JSON files of benchmarks/results/ to the format the benchmarks write now.

``python -m benchmarks.migrate [--results DIR]`` rewrites in place every ``*.json`` under DIR
(default benchmarks/results/, sub-folders included) that an older script wrote, and leaves
the others untouched; a second run changes nothing. A field is filled only from what the file
itself holds:

- ``env.cpu_model``, for runs made before the scripts recorded the CPU model: the model cannot
  be recovered, so it says so (the conditions line then reads "CPU model not recorded (...)");
- ``env.cpu_capability`` and ``env.cpu_flags`` (torch's CPU capability, the instruction-set
  flags), for runs made before the scripts recorded them: ``null``, never guessed from the
  model string (one model name covers machines 2x apart); the conditions line then reads
  "capability not recorded";
- ``load_note``: judged again by ``_common.load_note`` from the file's loads at start and end,
  threads and CPU count (older scripts ignored the load at the end of a run);
- ``settings.cache`` of course.json: ``course.USER_CACHE``, the only kdlab cache a course run
  used before ``--fresh-cache`` existed.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

from . import course
from ._common import RESULTS, load_note, own_threads, write

CPU_NOT_RECORDED = "model not recorded (run before the scripts recorded it)"


def _put(d: dict, key: str, value, after: str) -> dict:
    """`d` with `key` set to `value` right after the key `after` (last if `after` is missing);
    the other keys keep their order."""
    out = {}
    for k, v in d.items():
        out[k] = v
        if k == after:
            out[key] = value
    out.setdefault(key, value)
    return out


def migrate(d: dict) -> tuple[dict, list[str]]:
    """One parsed results JSON in the current format.

    Inputs: d, the parsed JSON of any benchmark (not modified).
    Returns: (the migrated copy, keys in the order the benchmarks write them; the fields it
    changed, e.g. ["env.cpu_model", "load_note"], empty if `d` was already current).
    """
    d, changed = copy.deepcopy(d), []
    e = d["env"]
    if "cpu_model" not in e:
        d["env"] = e = _put(e, "cpu_model", CPU_NOT_RECORDED, after="processor")
        changed.append("env.cpu_model")
    for key in ("cpu_flags", "cpu_capability"):  # null: not recorded by the script that ran
        if key not in e:
            d["env"] = e = _put(e, key, None, after="cpu_model")
            changed.append(f"env.{key}")
    note = load_note(d["load"]["start"], d["load"]["end"],
                     own_threads(d["benchmark"], e["threads"]), cores=e["cpu_count"])
    if d["load_note"] != note:
        d["load_note"] = note
        changed.append("load_note")
    if d["benchmark"] == "course" and "cache" not in d["settings"]:
        d["settings"] = _put(d["settings"], "cache", course.USER_CACHE, after="kernel_threads")
        changed.append("settings.cache")
    return d, changed


def migrate_folder(results: Path = RESULTS) -> dict[Path, list[str]]:
    """Rewrite every JSON file under `results` that is not current; return {path: fields changed}
    for the files rewritten."""
    done = {}
    for path in sorted(Path(results).rglob("*.json")):
        new, changed = migrate(json.loads(path.read_text()))
        if changed:
            write(path.parent, path.stem, new)
            done[path] = changed
    return done


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=RESULTS,
                   help=f"folder of the JSON files (default {RESULTS})")
    a = p.parse_args(argv)
    done = migrate_folder(a.results)
    for path, changed in done.items():
        print(f"migrated {path}: {', '.join(changed)}")
    if not done:
        print(f"every JSON file under {a.results} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
