"""Free-text answers: exported for teaching assistants, and their scores imported back.

    python -m kdlab.grading answers SUBMISSIONS --out answers.csv [--lab L]
    python -m kdlab.grading merge gradebook.csv --manual scores.csv --out gradebook.csv

Each lab ends with numbered questions (a markdown cell) and a markdown cell for the answers
(``YOUR ANSWER HERE`` in labs/). ``export_answers`` reads, in the notebook the grader grades
(pick.py), the student's answers cell (by its id) and splits it at the question numbers
("1." at the start of a line): one row per student, lab and question (student, lab,
question, text; the whole cell under question "all" when it is not numbered). A teaching
assistant scores them in a CSV with the columns student, lab, item, points, max_points and
optionally comment; ``read_manual`` turns it into gradebook rows (check ``manual: <item>``,
status ``manual``), which merge, feedback and the exports count like the checks.
"""
from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

from . import report
from .course import SubmissionError, read_submission
from .pick import choose
from .scoring import Row

PLACEHOLDER = "YOUR ANSWER HERE"
_ITEM = re.compile(r"^\s*(\d+)[.)]\s*", re.M)


def _text(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def questions(lab_nb: dict) -> tuple:
    """(answers cell id, {number: question's first line}) of a lab notebook."""
    cells = lab_nb["cells"]
    for i, c in enumerate(cells):
        if c.get("cell_type") == "markdown" and PLACEHOLDER in _text(c):
            qs = {}
            for prev in reversed(cells[:i]):
                if prev.get("cell_type") == "markdown" and _ITEM.search(_text(prev)):
                    for m in re.finditer(r"^\s*(\d+)[.)]\s*(.+)$", _text(prev), re.M):
                        qs[m.group(1)] = m.group(2).strip()
                    break
            return c.get("id"), qs
    return None, {}


def split(text: str, numbers) -> dict:
    """{question number: answer} from an answers cell ("all" if it is not numbered)."""
    text = text.replace("**Your answers**", "").strip()
    if not text or text == PLACEHOLDER:
        return {}
    marks = [m for m in _ITEM.finditer(text) if m.group(1) in numbers]
    if not marks:
        return {"all": text}
    out = {}
    for m, nxt in zip(marks, marks[1:] + [None]):
        out[m.group(1)] = text[m.end():nxt.start() if nxt else len(text)].strip()
    return out


def export_answers(submissions, labs_dir, out, lab_names=None, log=print) -> int:
    """Write answers.csv (student, lab, question, text); return the number of rows."""
    submissions, labs_dir = Path(submissions), Path(labs_dir)
    labs = {p.stem: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(labs_dir.glob("[0-9][0-9]_*.ipynb"))}
    chosen = list(lab_names) if lab_names else list(labs)
    unknown = [n for n in chosen if n not in labs]
    if unknown:
        raise ValueError(f"unknown lab(s) {unknown}; {labs_dir} has {sorted(labs)}")
    rows = []
    for folder in sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for lab in chosen:
            cid, qs = questions(labs[lab])
            c = choose(folder, lab, list(labs))
            if c.path is None or c.error or cid is None:
                continue
            try:
                nb = json.loads(read_submission(c.path).decode("utf-8"))
                cell = next((x for x in nb.get("cells", []) if x.get("id") == cid), None)
            except (SubmissionError, ValueError, AttributeError) as e:
                log(f"warning: {folder.name} {lab}: cannot read {c.file} ({e})")
                continue
            answers = split(_text(cell), set(qs)) if cell is not None else {}
            for number, text in answers.items():
                question = f"{number}. {qs[number]}" if number in qs else number
                rows.append([report.display_name(folder.name), lab, question, text])
    Path(out).resolve().parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "lab", "question", "text"])
        w.writerows([[report.neutral(x) for x in r] for r in rows])
    log(f"wrote {out}: {len(rows)} answers")
    return len(rows)


def read_manual(path) -> list:
    """The gradebook rows of a teaching assistant's scores CSV (student, lab, item, points,
    max_points[, comment]); ValueError listing every bad line."""
    rows, bad = [], []
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        need = ["student", "lab", "item", "points", "max_points"]
        if not reader.fieldnames or any(k not in reader.fieldnames for k in need):
            raise ValueError(f"{path}: the manual scores need the columns {need} (and optionally "
                             f"comment); found {reader.fieldnames}")
        for line, r in enumerate(reader, start=2):
            try:
                points, most = int(r["points"]), int(r["max_points"])
            except ValueError:
                bad.append(f"line {line}: points {r['points']!r} / {r['max_points']!r} are not whole numbers")
                continue
            if not (0 <= points <= most) or not r["student"].strip() or not r["lab"].strip():
                bad.append(f"line {line}: needs a student, a lab and 0 <= points <= max_points")
                continue
            rows.append(Row(r["student"].strip(), r["lab"].strip(), f"manual: {r['item'].strip()}",
                            points, most, "manual", (r.get("comment") or "").strip(), graded_at=when))
    if bad:
        raise ValueError(f"{path}: {len(bad)} bad lines, nothing imported:\n  " + "\n  ".join(bad))
    return rows
