"""Report grades: the gradebook CSV, one feedback file per student, and LMS exports.

gradebook.csv columns: student, lab, check, points, max_points, status, reason, seeds,
check_sha256, submission_sha256 (see ``scoring``). Totals are rows of the same file:
check=TOTAL for each student and lab (its reason gives the grading time), and lab=ALL,
check=TOTAL for each student's grand total. Every cell that a spreadsheet would read as a
formula (starting with = + - @, a tab or a carriage return) is written with a leading ``'``.

Student names come from folder names, which may hold anything a file system allows: the CSV
shows them as readable text (``display_name``), and feedback files get a collision-free,
length-capped, portable file name (``file_name``).
"""
from __future__ import annotations

import csv
import hashlib
import re
import unicodedata
from pathlib import Path

from .scoring import COLUMNS, Row

TOTAL, ALL = "TOTAL", "ALL"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
MAX_FILE_NAME = 80


_SHOWN_DIGEST = re.compile(r"~[0-9a-f]{10}$")  # what display_name adds
_FILE_DIGEST = re.compile(r"-[0-9a-f]{12}$")  # what file_name adds


def display_name(folder_name: str) -> str:
    """A folder name as readable one-line text: undecodable bytes and control characters
    replaced, with a short digest of the original when anything had to be replaced, or when
    the name itself ends like such a digest (so that no folder is shown as another one is:
    the mapping is one-to-one)."""
    raw = folder_name.encode("utf-8", "surrogateescape")
    text = raw.decode("utf-8", "replace")
    clean = "".join(ch if unicodedata.category(ch)[0] != "C" else "?" for ch in text)
    if clean != folder_name or _SHOWN_DIGEST.search(folder_name):
        clean += "~" + hashlib.sha256(raw).hexdigest()[:10]
    return clean


def file_name(student: str, suffix: str = ".md") -> str:
    """A portable file name for a student's feedback: letters, digits, - _ . only, at most
    80 characters, and distinct for distinct students (a digest is added whenever the name
    had to be changed, and to a name that already ends like such a digest, so that no folder
    is given the file of another)."""
    raw = student.encode("utf-8", "surrogateescape")
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in student)
    safe = safe.lstrip(".") or "_"
    if safe != student or len(safe) > MAX_FILE_NAME or _FILE_DIGEST.search(safe):
        safe = safe[:MAX_FILE_NAME - 13] + "-" + hashlib.sha256(raw).hexdigest()[:12]
    return safe + suffix


def neutral(value):
    """A CSV cell that no spreadsheet runs as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def totals(rows: list) -> list:
    """The gradebook's rows in file order: per student, each lab's check rows then its TOTAL
    row, then the student's lab=ALL TOTAL row."""
    out = []
    for student in dict.fromkeys(r.student for r in rows):
        mine = [r for r in rows if r.student == student]
        for lab in dict.fromkeys(r.lab for r in mine):
            lab_rows = [r for r in mine if r.lab == lab]
            secs = max((r.seconds for r in lab_rows), default=0.0)
            out += lab_rows
            out.append(Row(student, lab, TOTAL, sum(r.points for r in lab_rows),
                           sum(r.max_points for r in lab_rows), "",
                           f"graded in {secs:.1f} s" if secs else ""))
        out.append(Row(student, ALL, TOTAL, sum(r.points for r in mine),
                       sum(r.max_points for r in mine), ""))
    return out


def write_csv(rows: list, path, shown: bool = False) -> None:
    """Write the gradebook: the check rows of `rows` with their totals (see ``totals``).

    shown: the rows' student names are already display names (rows of ``read_csv``)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in totals(rows):
            w.writerow([neutral(display_name(c) if k == "student" and not shown else c)
                        for k, c in zip(COLUMNS, r.cells())])


def read_csv(path) -> list:
    """The check rows (not the totals) of a gradebook written by ``write_csv``."""
    out, seconds = [], {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != COLUMNS:
            raise ValueError(f"{path} is not a gradebook of this grader (columns {header})")
        for cells in reader:
            d = dict(zip(COLUMNS, cells))
            d = {k: (v[1:] if isinstance(v, str) and v.startswith("'") and v[1:].startswith(_FORMULA)
                     else v) for k, v in d.items()}
            if d["check"] == TOTAL:
                m = re.fullmatch(r"graded in ([0-9.]+) s", d["reason"])
                if m:
                    seconds[(d["student"], d["lab"])] = float(m.group(1))
                continue
            d["points"], d["max_points"] = int(d["points"]), int(d["max_points"])
            out.append(Row(**d))
    for r in out:  # the grading time lives in each lab's TOTAL row
        r.seconds = seconds.get((r.student, r.lab), 0.0)
    return out


def _fence(text: str) -> str:
    """A code block that shows `text` as it is: its fence is longer than any run of backticks
    in it, so a reason cannot close the block and forge headings."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _md(text: str) -> str:
    """Text for a markdown heading or table cell: one line, markup characters escaped."""
    text = " ".join(str(text).split())
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>])", r"\\\1", text)


def write_feedback(rows: list, folder, students=None) -> None:
    """One markdown file per student: per lab a table of checks, then each failure message.

    students: only these students' files are (re)written (default: everyone in `rows`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = totals(rows)
    for student in dict.fromkeys(r.student for r in rows):
        if students is not None and student not in students:
            continue
        mine = [r for r in table if r.student == student]
        total = next(r for r in mine if r.lab == ALL)
        md = [f"# Feedback for {_md(display_name(student))}", "",
              f"Total: **{total.points} / {total.max_points}** points", ""]
        for lab in dict.fromkeys(r.lab for r in mine if r.lab != ALL):
            lab_rows = [r for r in mine if r.lab == lab and r.check != TOTAL]
            sub = next(r for r in mine if r.lab == lab and r.check == TOTAL)
            md += [f"## {_md(lab)}: {sub.points} / {sub.max_points}", "",
                   "| check | points | status |", "|---|---|---|"]
            md += [f"| {_md(r.check)} | {r.points} / {r.max_points} | {_md(r.status)} |" for r in lab_rows]
            md.append("")
            for r in lab_rows:
                if r.reason:
                    md += [f"### {_md(r.check)}: {_md(r.status)}", "", _fence(r.reason), ""]
        (folder / file_name(student)).write_text("\n".join(md), encoding="utf-8")


# ------------------------------------------------------------------ LMS exports

FORMATS = {
    # Canvas: Grades > Import. The first five columns identify the student; each other
    # column is an assignment; the second row gives the points possible.
    "canvas": {"ids": ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"],
               "roster": ["name", "canvas_id", "sis_user_id", "sis_login_id", "section"],
               "points_row": "    Points Possible"},
    # Gradescope: Assignment > Review Grades > Import scores: Name, SID or Email to match.
    "gradescope": {"ids": ["Name", "SID", "Email"], "roster": ["name", "sid", "email"],
                   "points_row": None},
    # Moodle: Grades > Import > CSV file: an identifier column (email address or ID number)
    # mapped to the user, one column per grade item.
    "moodle": {"ids": ["First name", "Last name", "ID number", "Email address"],
               "roster": ["first_name", "last_name", "sid", "email"], "points_row": None},
}


def read_roster(path) -> dict:
    """{folder name: {column: value}} from a roster CSV with a `folder` column (the student's
    submission folder) and the identity columns the export format needs."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "folder" not in reader.fieldnames:
            raise ValueError(f"{path}: the roster needs a 'folder' column (the name of each "
                             "student's submission folder) besides the LMS's identity columns")
        roster = {}
        for row in reader:
            key = row["folder"]
            if key in roster:
                raise ValueError(f"{path}: folder {key!r} appears twice in the roster")
            roster[key] = row
    return roster


def export(gradebook, fmt: str, roster_path, out, log=print) -> Path:
    """Write the wide CSV an LMS imports: one row per student of the roster, one column per
    lab (points), then the total. Students of the gradebook missing from the roster are
    reported and left out; roster students without grades get empty cells."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    spec = FORMATS[fmt]
    rows = read_csv(gradebook)
    roster = read_roster(roster_path)
    missing = [c for c in spec["roster"] if c not in next(iter(roster.values()), {})]
    if roster and missing:
        raise ValueError(f"{roster_path}: the {fmt} export needs the roster columns {missing}")
    labs = sorted({r.lab for r in rows})
    points = {(r.student, r.lab): 0 for r in rows}  # the gradebook holds display names
    maxima = {}
    for r in rows:
        points[(r.student, r.lab)] += r.points
        maxima[(r.lab, r.check)] = r.max_points
    lab_max = {lab: sum(v for (lb, _), v in maxima.items() if lb == lab) for lab in labs}
    graded = {s for s, _ in points}
    for s in sorted(graded - {display_name(f) for f in roster}):
        log(f"warning: {s} has grades but is not in the roster: left out of the export")
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(spec["ids"] + [f"Lab {lab}" for lab in labs] + ["Total"])
        if spec["points_row"]:
            w.writerow([spec["points_row"]] + [""] * (len(spec["ids"]) - 1)
                       + [lab_max[lab] for lab in labs] + [sum(lab_max.values())])
        for folder, info in roster.items():
            have = [points.get((display_name(folder), lab)) for lab in labs]  # as the gradebook shows it
            total = sum(p for p in have if p is not None) if any(p is not None for p in have) else ""
            w.writerow([neutral(info.get(c, "")) for c in spec["roster"]]
                       + ["" if p is None else p for p in have] + [total])
    return Path(out)
