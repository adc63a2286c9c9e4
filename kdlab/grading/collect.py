"""An LMS's bulk download of submissions -> the grader's layout and the roster the exports need.

    python -m kdlab.grading collect --from canvas|moodle|gradescope DOWNLOAD -o subs/
        [--roster roster.csv] [--identities the LMS's gradebook export .csv]

DOWNLOAD is the zip the LMS gives (or the folder it was extracted to); it is only read.
Each student's notebooks go to ``subs/<folder>/`` under the name the student gave them (the
LMS's prefix removed), and the roster (``folder`` plus the LMS's identity columns) is
written or updated, so collecting each lab's download into the same ``subs/`` builds one
roster for the term. The file-name patterns read:

- Canvas ("Download Submissions"): ``<lastfirst>_[LATE_]<user id>_<attachment id>_<file>``,
  the user id being Canvas's student ID. Folder: ``<lastfirst>_<user id>``.
- Moodle ("Download all submissions"): ``<Full Name>_<participant id>_assignsubmission_file/<file>``
  (folders, the default since Moodle 3.1) or ``<Full Name>_<participant id>_assignsubmission_file_<file>``.
  The participant id is not a user id: pass ``--identities`` (Moodle's grade export, with
  First name, Last name, Email address, ID number) to fill in the identifier Moodle's import
  maps by; names found twice or not at all are reported.
- Gradescope ("Export Submissions"): ``submission_<id>/<files>`` and
  ``submission_metadata.yml`` naming each submission's submitters (name, sid, email); a
  group submission goes to each member's folder.

``--identities`` with a Canvas gradebook export (Student, ID, SIS User ID, SIS Login ID,
Section) fills the roster's SIS ids, section and full name by ID, and adds the students who
submitted nothing (so that ``export --missing zero`` gives them 0). Canvas's own "Test
Student" is left out. A re-uploaded file's ``-1`` suffix (Canvas's) is dropped.
"""
from __future__ import annotations

import csv
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

ROSTER_COLUMNS = ["folder", "name", "canvas_id", "sis_user_id", "sis_login_id", "section",
                  "first_name", "last_name", "sid", "email", "username", "moodle_participant"]
SOURCES = ("canvas", "moodle", "gradescope")
_CANVAS = re.compile(r"^(?P<name>[^_/]+)_(?:LATE_|late_)?(?P<uid>\d+)_(?P<att>\d+)_(?P<file>.+)$")
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_file(?:_?/|_)(?P<file>.+)$")


class CollectError(ValueError):
    """The download is not one of the source's bulk downloads."""


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    return s or "student"


def _members(download: Path, work: Path) -> list:
    """[(relative posix path, file path)] of the download (a zip is extracted to `work`; a
    member that would land outside it is refused)."""
    if download.is_dir():
        return sorted((p.relative_to(download).as_posix(), p) for p in download.rglob("*")
                      if p.is_file() and not p.is_symlink())
    if not zipfile.is_zipfile(download):
        raise CollectError(f"{download} is neither a folder nor a zip file")
    out = []
    with zipfile.ZipFile(download) as z:
        for info in z.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir():
                continue
            if name.is_absolute() or ".." in name.parts:
                raise CollectError(f"{download}: member {info.filename!r} points outside the archive")
            target = work / Path(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            out.append((name.as_posix(), target))
    return sorted(out)


def _strip_top(members: list) -> list:
    """Drop one folder level that holds everything (an export wrapped in a folder)."""
    tops = {m.split("/", 1)[0] for m, _ in members}
    if len(tops) == 1 and all("/" in m for m, _ in members):
        top = tops.pop()
        if not _MOODLE.match(top + "/x") and not top.startswith("submission_"):
            return [(m.split("/", 1)[1], p) for m, p in members]
    return members


def _canvas(members) -> list:
    out, skipped = [], []
    for rel, path in members:
        m = _CANVAS.match(PurePosixPath(rel).name)
        if not m:
            skipped.append(rel)
            continue
        # Canvas names a re-uploaded file of the same name "<stem>-1.<ext>": the same file
        name = re.sub(r"-\d+(\.ipynb)$", r"\1", m["file"], flags=re.I)
        out.append(({"folder": f"{m['name']}_{m['uid']}", "name": m["name"],
                     "canvas_id": m["uid"]}, name, path))
    return out, skipped


def _moodle(members) -> list:
    out, skipped = [], []
    for rel, path in members:
        m = _MOODLE.match(rel)
        if not m:
            skipped.append(rel)
            continue
        out.append(({"folder": f"{_slug(m['name'])}_{m['pid']}", "name": m["name"],
                     "moodle_participant": m["pid"]}, PurePosixPath(m["file"]).name, path))
    return out, skipped


def _gradescope(members) -> list:
    import yaml

    meta = [p for rel, p in members if PurePosixPath(rel).name == "submission_metadata.yml"]
    if not meta:
        raise CollectError("no submission_metadata.yml: not a Gradescope 'Export Submissions' download")
    data = yaml.safe_load(meta[0].read_text(encoding="utf-8")) or {}
    people = {}
    for sub, d in data.items():
        subs = (d or {}).get(":submitters") or (d or {}).get("submitters") or []
        people[str(sub)] = [{k.lstrip(":"): ("" if v is None else str(v)) for k, v in s.items()}
                            for s in subs]
    out, skipped = [], []
    for rel, path in members:
        parts = PurePosixPath(rel).parts
        sub = next((p for p in parts if p.startswith("submission_") and p in people), None)
        if sub is None:
            if PurePosixPath(rel).name != "submission_metadata.yml":
                skipped.append(rel)
            continue
        for s in people[sub]:
            ident = s.get("sid") or s.get("email", "").split("@")[0] or sub
            out.append(({"folder": f"{_slug(s.get('name', ''))}_{_slug(ident)}",
                         "name": s.get("name", ""), "sid": s.get("sid", ""),
                         "email": s.get("email", "")}, parts[-1], path))
    return out, skipped


def _identities(path, source, roster, log) -> None:
    """Fill the roster from the LMS's gradebook export (`source`'s columns)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.DictReader(f)]
    if source == "canvas":
        by_id = {(r.get("ID") or "").strip(): r for r in rows if (r.get("ID") or "").strip().isdigit()}
        have = {info.get("canvas_id") for info in roster.values()}
        for cid, r in by_id.items():  # the class: students who submitted nothing too
            name = r.get("Student", "")
            if cid in have or name == "Test Student":  # Canvas's own student view user
                continue
            last, _, first = name.partition(",")
            folder = re.sub(r"[^a-z0-9]", "", (last + first).lower()) + f"_{cid}"
            roster[folder] = {c: "" for c in ROSTER_COLUMNS} | {"folder": folder, "canvas_id": cid}
        for info in roster.values():
            r = by_id.get(info.get("canvas_id", ""))
            if r is None:
                continue
            info.update({"name": r.get("Student", info["name"]),
                         "sis_user_id": r.get("SIS User ID", ""),
                         "sis_login_id": r.get("SIS Login ID", ""), "section": r.get("Section", "")})
        return
    by_name = {}
    for r in rows:
        full = " ".join(f"{r.get('First name', '')} {r.get('Last name', '')}".split())
        by_name.setdefault(full, []).append(r)
    for info in roster.values():
        if source == "gradescope" or info.get("email"):
            continue
        found = by_name.get(" ".join(info.get("name", "").split()), [])
        if len(found) != 1:
            log(f"warning: {info['name']!r} is {'in' if found else 'not in'} {path} "
                f"{'twice' if found else ''}: fill in the roster's email for folder {info['folder']!r}")
            continue
        r = found[0]
        info.update({"first_name": r.get("First name", ""), "last_name": r.get("Last name", ""),
                     "email": r.get("Email address", ""), "sid": r.get("ID number", ""),
                     "username": r.get("Username", "")})


def collect(source: str, download, out, roster=None, identities=None, log=print) -> dict:
    """Copy each student's notebooks of `download` into ``out/<folder>/`` and write the roster.

    source: "canvas", "moodle" or "gradescope"; roster: the roster CSV to write or update
    (default: roster.csv beside `out`); identities: the LMS's gradebook export, to fill in
    identifiers the download lacks. Returns {folder: [notebook names]}. A notebook collected
    from an earlier download under the same name is replaced by this download's (the LMS
    keeps only a student's latest submission in a download), and reported; two files of one
    download that land on the same name are both kept (the second with a suffix) and
    reported, and the grader then names them (see pick.py).
    """
    if source not in SOURCES:
        raise CollectError(f"--from must be one of {list(SOURCES)}")
    download, out = Path(download), Path(out)
    if not download.exists():
        raise FileNotFoundError(f"{download} does not exist")
    roster_path = Path(roster) if roster else out.resolve().parent / "roster.csv"
    with tempfile.TemporaryDirectory(prefix="kdlab-collect-") as tmp:
        members = _strip_top(_members(download, Path(tmp)))
        found, skipped = {"canvas": _canvas, "moodle": _moodle, "gradescope": _gradescope}[source](members)
        if not found:
            raise CollectError(f"{download}: no file named as a {source} bulk download names them "
                               f"(see python -m kdlab.grading collect --help); found {[m for m, _ in members][:5]}")
        table = _read_roster(roster_path)
        got, written = {}, set()
        for info, name, path in found:
            row = table.setdefault(info["folder"], {c: "" for c in ROSTER_COLUMNS})
            row.update({k: v for k, v in info.items() if v and not row.get(k)})
            if not name.lower().endswith(".ipynb"):
                skipped.append(f"{info['folder']}/{name}")
                continue
            dest = out / info["folder"] / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = path.read_bytes()
            k = 1
            while dest in written and dest.read_bytes() != data:
                dest = dest.with_name(f"{Path(name).stem}.collected-{k}.ipynb")
                k += 1
            if dest.name != name:
                log(f"warning: this download holds two notebooks {info['folder']}/{name}: the "
                    f"second is {dest.name}")
            elif dest.exists() and dest not in written and dest.read_bytes() != data:
                log(f"{info['folder']}/{name}: replaced by this download's newer copy")
            dest.write_bytes(data)
            written.add(dest)
            got.setdefault(info["folder"], []).append(dest.name)
    if identities:
        _identities(identities, source, table, log)
    roster_path.parent.mkdir(parents=True, exist_ok=True)
    with open(roster_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=ROSTER_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for folder in sorted(table):
            w.writerow(table[folder])
    for s in skipped:
        log(f"not collected (not a notebook, or not named as {source} names submissions): {s}")
    log(f"collected {sum(map(len, got.values()))} notebooks of {len(got)} students into {out}/; "
        f"roster: {roster_path}")
    return got


def _read_roster(path: Path) -> dict:
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        return {r["folder"]: {c: r.get(c, "") or "" for c in ROSTER_COLUMNS} for r in csv.DictReader(f)}
