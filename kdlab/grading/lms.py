"""Exports of a gradebook that each LMS's own importer accepts as they are.

    export(gradebook, fmt, roster, out, missing="zero"|"leave", assignments=None, ...)

What each importer does with a file, and so what is written (sources in INSTRUCTORS.md):

- **Canvas** (Grades > Import; ``app/models/gradebook_importer.rb``): the header must start
  ``Student, ID`` and the student columns end with ``Section``; every later column that is
  not a score column Canvas computes (Current/Final/Override Score, Points, Grade) is an
  assignment, matched by ``Title (id)``, else by exact title, else **created**; a ``Total``
  column would be created as an assignment. A row whose first cell holds ``Points
  Possible`` gives the points. A blank or ``-`` cell over an existing score **clears it**.
  Students are matched by ID (Canvas user id), then SIS User ID, SIS Login ID, then name.
  No comments are imported. So: titles with ids from the assignments file, no total.
- **Moodle** (Grades > Import > CSV file; ``grade/import/csv/classes/load_data.php``): one
  column is mapped to the user (id, idnumber, email or username); a value that matches no
  user **aborts the whole import**, and a blank one makes the row's grades go to the row
  before it; a blank or ``-`` grade is "no grade" (clears). Feedback columns are imported
  when mapped to "feedback for" an item. So: identifiers checked, one feedback column per lab.
- **Gradescope** (Assignment > Review Grades > Import scores): one assignment per file;
  rows are matched by Email or SID. So: one file per lab, ``Name, SID, Email, Total Score``,
  the columns of Gradescope's own score export.

No submission (no folder, or no notebook for the lab: status ``missing``) is never a blank
cell: ``missing="zero"`` writes 0; ``missing="leave"`` leaves the LMS's grade alone by
leaving the student's row out (a row that would mix grades and left-alone cells is refused:
export those labs separately with ``labs=[...]``). Identifiers are validated before anything
is written; bad rows are refused with their list.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from .report import display_name, neutral, read_csv, read_roster

FORMATS = ("canvas", "moodle", "gradescope")
CANVAS_IDS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_ROSTER = ["name", "canvas_id", "sis_user_id", "sis_login_id", "section"]
# the columns Canvas's importer computes itself and skips (any header containing one of these)
CANVAS_COMPUTED = ["Current Score", "Current Points", "Current Grade", "Final Score",
                   "Final Points", "Final Grade", "Override Score", "Override Grade",
                   "Override Status"]
MOODLE_IDS = {"email": ("Email address", "email"), "idnumber": ("ID number", "sid"),
              "username": ("Username", "username"), "userid": ("User id", "moodle_userid")}
GRADESCOPE_IDS = ["Name", "SID", "Email"]
_EMAIL = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
_TITLE_ID = re.compile(r"^(.*\S)\s*\((\d+)\)$")


class ExportError(ValueError):
    """The export would not import as meant; nothing was written."""


def read_assignments(path, fmt: str) -> dict:
    """{lab: the LMS's column title} from a CSV with a `lab` column and a column per format
    (`canvas`: ``Title (id)``, `moodle`: the grade item's name, `gradescope`: the assignment)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "lab" not in reader.fieldnames or fmt not in reader.fieldnames:
            raise ExportError(f"{path}: the assignments file needs the columns 'lab' and '{fmt}' "
                              f"(found {reader.fieldnames})")
        return {row["lab"].strip(): row[fmt].strip() for row in reader if row[fmt].strip()}


def _titles(fmt, labs, assignments) -> dict:
    if assignments is None:
        if fmt == "canvas":
            raise ExportError("the canvas export needs --assignments FILE mapping each lab to its "
                              "Canvas assignment as 'Title (id)': a title alone may create new "
                              "assignments (the id is the number in the assignment's address)")
        return {lab: f"Lab {lab}" for lab in labs}
    unmapped = [lab for lab in labs if lab not in assignments]
    if unmapped:
        raise ExportError(f"the assignments file maps no {fmt} assignment for {unmapped}")
    titles = {lab: assignments[lab] for lab in labs}
    if fmt == "canvas":
        bad = [f"{lab}: {t!r}" for lab, t in titles.items() if not _TITLE_ID.match(t)
               or any(c in t for c in CANVAS_COMPUTED) or t.split(" (")[0] in CANVAS_IDS]
        if bad:
            raise ExportError("Canvas titles must read 'Title (id)' with the assignment's number "
                              "and not name a column Canvas computes: " + "; ".join(bad))
    if len(set(titles.values())) != len(titles):
        raise ExportError(f"two labs map to the same {fmt} assignment: {titles}")
    return titles


def _check_roster(fmt, roster, path, moodle_id) -> None:
    if not roster:
        raise ExportError(f"{path}: the roster has no students")
    bad, seen = [], {}
    for line, (folder, info) in enumerate(roster.items(), start=2):
        def get(k):
            return (info.get(k) or "").strip()
        why = ""
        if fmt == "canvas":
            if not (get("canvas_id").isdigit() or get("sis_user_id") or get("sis_login_id")):
                why = "no Canvas ID (digits), SIS User ID or SIS Login ID"
            key = get("canvas_id") or get("sis_user_id") or get("sis_login_id")
        elif fmt == "moodle":
            column = MOODLE_IDS[moodle_id][1]
            key = get(column)
            if not key:
                why = f"no {column} (the Moodle {moodle_id} the import maps the user by)"
            elif moodle_id == "email" and not _EMAIL.fullmatch(key):
                why = f"{key!r} is not an email address"
            elif moodle_id == "userid" and not key.isdigit():
                why = f"{key!r} is not a Moodle user id (digits)"
        else:
            key = get("email") or get("sid")
            if not key:
                why = "no email or sid (Gradescope matches rows by Email or SID)"
            elif get("email") and not _EMAIL.fullmatch(get("email")):
                why = f"{get('email')!r} is not an email address"
        if not why and key in seen:
            why = f"the same identifier {key!r} as folder {seen[key]!r}"
        seen.setdefault(key, folder)
        if why:
            bad.append(f"line {line} (folder {folder!r}): {why}")
    if bad:
        raise ExportError(f"{path}: {len(bad)} roster rows the {fmt} import would reject or "
                          "misassign; fix them and export again (nothing was written):\n  "
                          + "\n  ".join(bad))


def grades(rows) -> dict:
    """{(student, lab): {points, max, missing, statuses, file, sha, graded_at, failed}}."""
    out = {}
    for r in rows:
        g = out.setdefault((r.student, r.lab), {  # the gradebook holds shown names
            "points": 0, "max": 0, "statuses": set(), "file": r.file,
            "sha": r.submission_sha256, "graded_at": r.graded_at, "failed": []})
        g["points"] += r.points
        g["max"] += r.max_points
        g["statuses"].add(r.status)
        if r.status not in ("passed", "manual"):
            g["failed"].append(r.check)
    for g in out.values():
        g["missing"] = g["statuses"] == {"missing"}
    return out


def _feedback(g) -> str:
    """A short comment of one lab's grade (Moodle's feedback column)."""
    if g["missing"]:
        return "no notebook submitted"
    text = f"{g['points']}/{g['max']} points; graded file {g['file']}"
    if g["sha"]:
        text += f" (sha256 {g['sha'][:12]})"
    if g["graded_at"]:
        text += f", graded {g['graded_at']}"
    if g["failed"]:
        text += "; not passed: " + ", ".join(g["failed"])
    return text + "; details in your feedback file"


def export(gradebook, fmt: str, roster_path, out, missing: str | None = None, assignments=None,
           labs=None, total: bool = False, moodle_id: str = "email", log=print) -> list:
    """Write the file(s) `fmt`'s importer reads; return their paths.

    missing: "zero" or "leave" (required: what a student without a submission gets);
    assignments: the assignments file (``read_assignments``; required for Canvas); labs: the
    labs to export (default: all of the gradebook); total: add a total column (Moodle only;
    Canvas computes its own); moodle_id: the user field Moodle maps by.
    Gradescope writes one file per lab into the folder `out`. Raises ExportError (nothing
    written) when a row could not be imported as meant.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {list(FORMATS)}")
    if missing not in ("zero", "leave"):
        raise ExportError("say what a student without a submission gets: --missing zero (0 points) "
                          "or --missing leave (the LMS's grade is not touched); a blank cell would "
                          "clear an existing grade in Canvas and Moodle")
    if moodle_id not in MOODLE_IDS:
        raise ExportError(f"--moodle-id must be one of {list(MOODLE_IDS)}")
    if total and fmt != "moodle":
        raise ExportError("--total is for Moodle only: Canvas computes its own total and would "
                          "import a 'Total' column as a new assignment; Gradescope takes one "
                          "assignment per file")
    rows = read_csv(gradebook)
    g = grades(rows)
    all_labs = sorted({r.lab for r in rows})
    labs = list(labs) if labs else all_labs
    unknown = [lab for lab in labs if lab not in all_labs]
    if unknown:
        raise ExportError(f"{gradebook} has no grades of {unknown}; it has {all_labs}")
    roster = read_roster(roster_path)
    _check_roster(fmt, roster, roster_path, moodle_id)
    titles = _titles(fmt, labs, read_assignments(assignments, fmt) if assignments else None)
    shown = {display_name(f): f for f in roster}  # the gradebook holds display names
    for s in sorted({s for s, _ in g} - set(shown)):
        log(f"warning: {s} has grades but is not in the roster: left out of the export")
    unresolved = sorted(f"{s} {lab}" for (s, lab), v in g.items()
                        if lab in labs and s in shown and "ambiguous" in v["statuses"])
    if unresolved:
        log(f"warning: exported as graded (0 for the lab) although two notebooks matched: "
            f"{unresolved}; settle them and regrade first if a student asks")
    lab_max = {lab: max(v["max"] for (s, lb), v in g.items() if lb == lab) for lab in labs}

    def cell(folder, lab):  # a number, or None: leave alone
        v = g.get((display_name(folder), lab))
        if v is None or v["missing"]:
            return 0 if missing == "zero" else None
        return v["points"]

    table = {folder: [cell(folder, lab) for lab in labs] for folder in roster}
    if fmt != "gradescope":
        mixed = [f for f, cells in table.items() if None in cells and any(c is not None for c in cells)]
        if mixed:
            raise ExportError(
                "with --missing leave these students have grades for some labs and nothing for "
                f"others: {mixed}. A blank cell would clear their LMS grade: export one lab at a "
                "time (--lab), or use --missing zero")
    out = Path(out)
    written = []
    if fmt == "gradescope":
        out.mkdir(parents=True, exist_ok=True)
        for i, lab in enumerate(labs):
            path = out / (re.sub(r"[^A-Za-z0-9._-]+", "_", titles[lab]) + ".csv")
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(GRADESCOPE_IDS + ["Total Score"])
                for folder, info in roster.items():
                    if table[folder][i] is not None:
                        w.writerow([neutral(info.get(c, "")) for c in ("name", "sid", "email")]
                                   + [table[folder][i]])
            written.append(path)
        return written
    out.resolve().parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if fmt == "canvas":
            w.writerow(CANVAS_IDS + [titles[lab] for lab in labs])
            w.writerow(["    Points Possible"] + [""] * (len(CANVAS_IDS) - 1)
                       + [lab_max[lab] for lab in labs])
            for folder, info in roster.items():
                if all(c is None for c in table[folder]):
                    continue
                w.writerow([neutral(info.get(c, "")) for c in CANVAS_ROSTER] + table[folder])
        else:
            head, column = MOODLE_IDS[moodle_id]
            w.writerow(["First name", "Last name", head]
                       + [h for lab in labs for h in (titles[lab], f"{titles[lab]} (feedback)")]
                       + (["Total"] if total else []))
            for folder, info in roster.items():
                cells = table[folder]
                if all(c is None for c in cells):
                    continue
                fb = [_feedback(g[(folder, lab)]) if (folder, lab) in g else "no notebook submitted"
                      for lab in labs]
                w.writerow([neutral(info.get(c, "")) for c in ("first_name", "last_name", column)]
                           + [x for c, t in zip(cells, fb) for x in (c, neutral(t))]
                           + ([sum(cells)] if total else []))
    written.append(out)
    return written
