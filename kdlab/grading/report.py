"""Report grades: the gradebook CSV, one feedback file per student, and LMS exports.

gradebook.csv columns: student, lab, check, points, max_points, status, reason, seeds,
check_sha256, submission_sha256, file, graded_at, other_notebooks (see ``scoring``). Totals
are rows of the same file: check=TOTAL for each student and lab (its reason gives the
grading time; it repeats the lab's file, digest and time), and lab=ALL, check=TOTAL for each
student's grand total. ``merge`` combines gradebooks (the latest grading of each student's
lab wins). Every cell that a spreadsheet would read as a
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

TOTAL, ALL, MANUAL = "TOTAL", "ALL", "manual"
OLD_COLUMNS = COLUMNS[:10]  # gradebooks written before the graded file was recorded
REGRADE = ("To ask for a regrade of this lab, write to your instructor within a week, naming the "
           "lab and the first 12 characters of the graded file's digest above.")
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
            first = lab_rows[0]
            out.append(Row(student, lab, TOTAL, sum(r.points for r in lab_rows),
                           sum(r.max_points for r in lab_rows), "",
                           f"graded in {secs:.1f} s" if secs else "",
                           submission_sha256=first.submission_sha256, file=first.file,
                           graded_at=first.graded_at, other_notebooks=first.other_notebooks))
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
        if header not in (COLUMNS, COLUMNS[:len(OLD_COLUMNS)]):
            raise ValueError(f"{path} is not a gradebook of this grader (columns {header})")
        for cells in reader:
            d = dict(zip(header, cells))
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


def write_feedback(rows: list, folder, students=None, regrade: str = REGRADE) -> None:
    """One markdown file per student: per lab a section naming the graded file (name, digest,
    time), the folder's other notebooks, a table of checks, each failure message and how to
    ask for a regrade.

    students: only these students' files are (re)written (default: everyone in `rows`);
    regrade: the sentence that ends each lab's section.
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
            md += [f"## {_md(lab)}: {sub.points} / {sub.max_points}", ""]
            if sub.file:
                digest = f" (sha256 {sub.submission_sha256[:12]})" if sub.submission_sha256 else ""
                md.append(f"Graded file: {_md(sub.file)}{digest}, graded {_md(sub.graded_at)}.")
            else:
                md.append("Graded file: none" + (f", graded {_md(sub.graded_at)}." if sub.graded_at else "."))
            if sub.other_notebooks:
                md.append(f"Other notebooks in your folder, not graded for this lab: "
                          f"{_md(sub.other_notebooks)}.")
            md += ["", "| check | points | status |", "|---|---|---|"]
            md += [f"| {_md(r.check)} | {r.points} / {r.max_points} | {_md(r.status)} |" for r in lab_rows]
            md.append("")
            for r in lab_rows:
                if r.reason:
                    md += [f"### {_md(r.check)}: {_md(r.status)}", "", _fence(r.reason), ""]
            md += [_md(regrade), ""]
        (folder / file_name(student)).write_text("\n".join(md), encoding="utf-8")


def merge(paths, out, manual=(), log=print) -> list:
    """Combine gradebooks (e.g. one per week) into `out`: for each student and lab, the rows
    of its latest grading (``graded_at``; on a tie, the gradebook named last) win, and every
    replaced grading is reported. Manually scored rows (status ``manual``, e.g. free-text
    answers; see answers.py) are kept per item, the later file winning, and `manual` rows
    (``answers.read_manual``) are added last. Returns the check rows written."""
    if not paths:
        raise ValueError("merge needs at least one gradebook")
    best, hand = {}, {}  # (student, lab) -> (graded_at, index, rows); (student, lab, item) -> row
    for i, path in enumerate(paths):
        rows = read_csv(path)
        for r in rows:
            if r.status == MANUAL:
                hand[(r.student, r.lab, r.check)] = r
        rows = [r for r in rows if r.status != MANUAL]
        for key in dict.fromkeys((r.student, r.lab) for r in rows):
            mine = [r for r in rows if (r.student, r.lab) == key]
            cand = (mine[0].graded_at, i, mine)
            if key in best:
                old = best[key]
                win, lose = (cand, old) if cand[:2] >= old[:2] else (old, cand)
                log(f"{key[0]} {key[1]}: kept the grading of {win[0] or 'an unknown time'} "
                    f"({paths[win[1]]}), not that of {lose[0] or 'an unknown time'} ({paths[lose[1]]})")
                cand = win
            best[key] = cand
    known = {k[0] for k in best} | {k[0] for k in hand}
    unknown = sorted({f"{r.student} ({r.lab})" for r in manual if r.student not in known})
    if unknown:
        raise ValueError(f"manual scores for students in no gradebook: {unknown} (a typo? the "
                         "student column must be the submission folder's name)")
    for r in manual:
        hand[(r.student, r.lab, r.check)] = r
    merged = []
    for s in sorted(known):
        for lab in sorted({k[1] for k in best if k[0] == s} | {k[1] for k in hand if k[0] == s}):
            merged += best[(s, lab)][2] if (s, lab) in best else []
            merged += [r for k, r in sorted(hand.items()) if k[:2] == (s, lab)]
    Path(out).resolve().parent.mkdir(parents=True, exist_ok=True)
    write_csv(merged, out)
    return merged


# ------------------------------------------------------------------ the roster (lms.py exports)

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
