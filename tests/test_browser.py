"""The explorers as a student uses them: a real JupyterLab, headless Chromium, mouse and keys.

Each test copies a solution notebook (outputs stripped) into a temporary folder, starts
JupyterLab there on 127.0.0.1 (free port, token chosen here), opens the notebook in the
system Chromium through Playwright, runs all cells from the Run menu, then moves the widgets
and checks what is on screen: the numbers in the text and the bars in the picture (read from
its pixels). Screenshots go to a folder named in every failure message (set
KDLAB_BROWSER_ARTIFACTS to choose it).

Needs Chromium from the system's packages (`make browser-deps`, i.e. `apt-get install chromium
chromium-driver`; a browser downloaded by Playwright is not used). Without it the tests are
skipped, except under CI (CI=true), where they fail and say what is missing.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB01 = ROOT / "solutions" / "01_softmax_temperature.ipynb"
LAB02 = ROOT / "solutions" / "02_dark_knowledge.ipynb"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
INSTALL_HINT = ("install the system Chromium with `make browser-deps` (Debian/Ubuntu, as root or "
                "with sudo: apt-get install chromium chromium-driver), or set KDLAB_CHROMIUM to "
                "a Chromium/Chrome executable")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# JupyterLab user settings for the test server: start the notebook's kernel without asking,
# no news pop-up, every cell in the DOM (no virtual scrolling).
LAB_SETTINGS = {
    "notebook-extension/tracker": {"autoStartDefaultKernel": True, "windowingMode": "none"},
    "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
SERVER_START_S = 90      # JupyterLab up and answering
PAGE_S = 120             # the notebook open and its kernel idle
RUN_ALL_S = 300          # all cells executed (quick budget)
UPDATE_S = 60            # one widget update (kernel round trip + new picture)
BAR_COLORS = {"lab01_blue": (0x6B, 0xAE, 0xD6), "lab01_red": (0xD6, 0x27, 0x28),
              "tab_blue": (0x1F, 0x77, 0xB4), "tab_orange": (0xFF, 0x7F, 0x0E)}


def _unavailable(why: str):
    """Fail under CI, skip elsewhere; either way say what is missing and how to install it."""
    msg = f"browser test cannot run: {why}; {INSTALL_HINT}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: the browser tests must run here)", pytrace=False)
    pytest.skip(msg)


def _chromium_path() -> str:
    """KDLAB_CHROMIUM if set, else the system Chromium; `_unavailable` if there is none."""
    chosen = os.environ.get("KDLAB_CHROMIUM")
    if chosen:
        if not os.access(chosen, os.X_OK):
            _unavailable(f"KDLAB_CHROMIUM={chosen} is not an executable file")
        return chosen
    for cand in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and os.access(cand, os.X_OK):
            return cand
    _unavailable("no Chromium found (looked for /usr/bin/chromium, and chromium and "
                 "chromium-browser on PATH)")


# ---------------------------------------------------------------- fixtures: browser, server


@pytest.fixture(scope="module")
def browser():
    """The system Chromium, headless, driven by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is missing (pip install -e '.[test]')")
    exe = _chromium_path()
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
    except Exception as e:  # noqa: BLE001 - any launch error means: no usable browser
        pw.stop()
        _unavailable(f"{exe} did not start: {str(e).splitlines()[0]}")
    yield b
    b.close()
    pw.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_without_outputs(src: Path, dst: Path) -> None:
    """A copy whose widgets can only come from a live kernel: no outputs, no saved widget state."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, dst)


class LabServer:
    """A JupyterLab server on 127.0.0.1 serving `root`; stopped by `stop()` (kernels too)."""

    def __init__(self, root: Path, work: Path):
        self.root, self.port, self.token = root, _free_port(), secrets.token_hex(16)
        for name, val in LAB_SETTINGS.items():
            f = work / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(val))
        env = dict(os.environ, KDLAB_QUICK=os.environ.get("KDLAB_QUICK", "1"),
                   JUPYTER_CONFIG_DIR=str(work / "config"),
                   JUPYTER_RUNTIME_DIR=str(work / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(work / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(work / "workspaces"))
        self.log_path = work / "jupyterlab.log"
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}:\n"
                                   + self.log_tail())
            try:
                self.api("GET", "status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s:\n"
                                       + self.log_tail()) from None
                time.sleep(0.25)

    def api(self, method: str, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def url(self, notebook: str) -> str:
        """The notebook alone in a fresh workspace of its own (no tabs left from other tests)."""
        ws = re.sub(r"\W", "-", Path(notebook).stem)
        return (f"http://127.0.0.1:{self.port}/lab/workspaces/{ws}/tree/{notebook}"
                f"?reset&token={self.token}")

    def log_tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def shutdown_kernels(self) -> None:
        with contextlib.suppress(Exception):
            for k in self.api("GET", "kernels"):
                self.api("DELETE", f"kernels/{k['id']}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.shutdown_kernels()
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory, browser):
    """JupyterLab on copies of the Lab 01 and Lab 02 solutions (solutions/ is never touched)."""
    root = tmp_path_factory.mktemp("notebooks")
    for nb in (LAB01, LAB02):
        if nb.exists():
            _copy_without_outputs(nb, root / nb.name)
    server = LabServer(root, tmp_path_factory.mktemp("jupyter"))
    yield server
    server.stop()


@pytest.fixture
def page(browser, lab_server):
    """A fresh browser tab; afterwards it is closed and the test's kernel shut down."""
    p = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield p
    p.close()
    lab_server.shutdown_kernels()


@pytest.fixture
def artifacts(request, tmp_path_factory) -> Path:
    base = os.environ.get("KDLAB_BROWSER_ARTIFACTS")
    if base:
        d = Path(base) / request.node.name
        shutil.rmtree(d, ignore_errors=True)  # no stale screenshots from an earlier run
        d.mkdir(parents=True)
        return d
    return tmp_path_factory.mktemp(request.node.name)


# ---------------------------------------------------------------- driving the notebook


@contextlib.contextmanager
def diagnosed(page, server: LabServer, art: Path):
    """Turn any error into one that names the screenshots, the page's errors and the server log."""
    try:
        yield
    except BaseException as e:
        if isinstance(e, (KeyboardInterrupt, pytest.skip.Exception)):
            raise
        with contextlib.suppress(Exception):
            page.screenshot(path=str(art / "failure.png"), full_page=True)
        errors = ""
        with contextlib.suppress(Exception):
            errors = "\n".join(page.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            ).all_inner_texts())[-3000:]
        raise AssertionError(
            f"{type(e).__name__}: {e}\n\nscreenshots: {art}\n"
            f"--- error output in the notebook ---\n{errors or '(none)'}\n"
            f"--- JupyterLab log (last lines) ---\n{server.log_tail()}") from e


def open_and_run_all(page, server: LabServer, notebook: str) -> dict:
    """Open the notebook, wait for its kernel, Run > Run All Cells, wait until all have run.

    Returns the seconds each phase took: {"open": ..., "run_all": ...}.
    """
    t0 = time.perf_counter()
    page.goto(server.url(notebook), timeout=PAGE_S * 1000)
    page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(timeout=PAGE_S * 1000)
    page.wait_for_function(  # the kernel is connected and idle (not "No Kernel | Initializing")
        """() => { const t = document.querySelector('.jp-StatusBar-Widget')?.innerText || '';
                   return /\\| Idle/.test(t) && !/No Kernel/.test(t); }""",
        timeout=PAGE_S * 1000, polling=250)
    t1 = time.perf_counter()
    for attempt in range(2):  # a Run All sent while the kernel reconnects can get lost: retry
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu").get_by_text("Run All Cells", exact=True).click()
        try:
            page.wait_for_function(  # some cell is queued, running or done
                """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                          .some(p => /\\[(\\*|\\d+)\\]/.test(p.innerText))""",
                timeout=30_000, polling=250)
            break
        except Exception:
            if attempt:
                raise
    # Done when no cell is queued or running and every code cell has a count, or one failed.
    state = page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                .map(p => p.innerText.trim());
            if (!prompts.length || prompts.some(p => p.includes('*'))) return null;
            const err = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]';
            const failed = document.querySelector(
                `${err} .ansi-red-fg, ${err} .ansi-red-intense-fg`);
            const missing = prompts.filter(p => !/\\[\\d+\\]/.test(p)).length;
            if (missing && !failed) return null;
            return {cells: prompts.length, missing};
        }""", timeout=RUN_ALL_S * 1000, polling=500).json_value()
    assert state["missing"] == 0, (
        f"Run All stopped: {state['missing']} of {state['cells']} code cells did not run "
        "(a cell raised an error)")
    return {"open": round(t1 - t0, 1), "run_all": round(time.perf_counter() - t1, 1)}


def wait_idle(page) -> None:
    """Wait until the status bar says the kernel is idle."""
    page.wait_for_function(
        "() => /\\| Idle/.test(document.querySelector('.jp-StatusBar-Widget')?.innerText || '')",
        timeout=UPDATE_S * 1000, polling=100)


def bar_pixels(page, selector: str, colors: dict) -> dict:
    """Per-column pixel rows of each bar colour in the picture `selector` (an <img>).

    Returns {"width", "height", "ink": (H, W) 0/1 rows of dark pixels as strings, and per
    colour name: {"top": [W], "bottom": [W], "count": [W]} (-1 / 0 where absent)}.
    """
    return page.locator(selector).first.evaluate(
        """async (el, colors) => {
            const img = el.tagName === 'IMG' ? el : el.querySelector('img');
            await img.decode();
            const W = img.naturalWidth, H = img.naturalHeight;
            const cv = document.createElement('canvas'); cv.width = W; cv.height = H;
            const g = cv.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, W, H).data;
            const out = {width: W, height: H, src: img.src, ink: []};
            const names = Object.keys(colors);
            for (const n of names) out[n] = {top: Array(W).fill(-1), bottom: Array(W).fill(-1),
                                             count: Array(W).fill(0)};
            for (let y = 0; y < H; y++) {
                let row = '';
                for (let x = 0; x < W; x++) {
                    const i = 4 * (y * W + x), r = d[i], gg = d[i + 1], b = d[i + 2];
                    row += (r + gg + b < 384) ? '1' : '0';
                    for (const n of names) {
                        const c = colors[n];
                        if (Math.abs(r - c[0]) + Math.abs(gg - c[1]) + Math.abs(b - c[2]) < 40) {
                            const o = out[n];
                            if (o.top[x] < 0) o.top[x] = y;
                            o.bottom[x] = y; o.count[x]++;
                        }
                    }
                }
                out.ink.push(row);
            }
            return out;
        }""", colors)


def bars(px: dict, color: str) -> list[dict]:
    """The bars of one colour, left to right: {"x": centre column, "height": pixels}.

    A bar is a run of >= 3 adjacent columns holding the colour whose bottom sits on the common
    baseline (the x axis), which leaves out legend patches and coloured text.
    """
    col = px[color]
    runs, start = [], None
    for x, n in enumerate(col["count"] + [0]):
        if n and start is None:
            start = x
        elif not n and start is not None:
            if x - start >= 3:
                runs.append((start, x))
            start = None
    if not runs:
        return []
    bottoms = [max(col["bottom"][a:b]) for a, b in runs]
    base = max(set(bottoms), key=bottoms.count)
    out = []
    for (a, b), bot in zip(runs, bottoms):
        if abs(bot - base) <= 2:
            mid = range(a + (b - a) // 4, b - (b - a) // 4)  # the middle, away from the edges
            out.append({"x": (a + b) / 2,
                        "height": max(col["bottom"][x] - col["top"][x] + 1 for x in mid)})
    return out


def readout(page, slider: str) -> float:
    """The number shown at the right of a slider."""
    return float(page.locator(f"{slider} .widget-readout").first.inner_text().strip())


def wait_readout(page, slider: str, value: float) -> None:
    """Wait until the slider shows `value` (within 0.5%)."""
    page.wait_for_function(
        """([sel, v]) => { const r = document.querySelector(sel + ' .widget-readout');
                           return r && Math.abs(parseFloat(r.innerText) - v) <= 0.005 * v; }""",
        arg=[slider, value], timeout=UPDATE_S * 1000, polling=100)


def drag_handle(page, slider: str, to_end: bool) -> None:
    """Drag the slider's handle with the mouse past the right (to_end) or left end of its track."""
    handle = page.locator(f"{slider} .noUi-handle").first
    handle.scroll_into_view_if_needed()
    h, track = handle.bounding_box(), page.locator(f"{slider} .noUi-target").first.bounding_box()
    y = h["y"] + h["height"] / 2
    page.mouse.move(h["x"] + h["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] + 30 if to_end else track["x"] - 30, y, steps=12)
    page.mouse.up()


def press_on_handle(page, slider: str, key: str) -> None:
    """Focus the slider's handle (as a Tab would) and press a key: End, Home, ArrowRight..."""
    handle = page.locator(f"{slider} .noUi-handle").first
    handle.focus()
    page.keyboard.press(key)


# ---------------------------------------------------------------- Lab 01: temperature explorer


def _softmax(z: list[float], T: float) -> list[float]:
    m = max(z)
    e = [math.exp((v - m) / T) for v in z]
    return [v / sum(e) for v in e]


def _entropy(p: list[float]) -> float:
    return -sum(v * math.log(v) for v in p if v > 0)


def _value(page, selector: str) -> float:
    """The full-precision number a text widget shows (its <span class="kd-value" data-value>)."""
    return float(page.locator(f"{selector} .kd-value").first.get_attribute("data-value"))


def lab01_view(page, z: list[float], T: float, shot: Path) -> dict:
    """Wait until the explorer shows temperature T, screenshot it, read numbers and bars."""
    want = _entropy(_softmax(z, T))
    page.wait_for_function(  # the kernel has answered for this T: the entropy text matches it
        """([want]) => { const s = document.querySelector('.kd-entropy .kd-value');
                         return s && Math.abs(parseFloat(s.dataset.value) - want) < 1e-4; }""",
        arg=[want], timeout=UPDATE_S * 1000, polling=100)
    wait_idle(page)
    page.locator(".kd-temperature-explorer").first.screenshot(path=str(shot))
    px = bar_pixels(page, ".kd-temperature-figure", BAR_COLORS)
    found = sorted(bars(px, "lab01_blue") + bars(px, "lab01_red"), key=lambda b: b["x"])
    total = sum(b["height"] for b in found)
    return {"T": T, "readout": readout(page, ".kd-temperature"),
            "entropy": _value(page, ".kd-entropy"), "max_prob": _value(page, ".kd-max-prob"),
            "bars": [b["height"] for b in found],
            "tallest_share": max(b["height"] for b in found) / total,
            "spread": (max(b["height"] for b in found) - min(b["height"] for b in found)) / total,
            "n_bars": len(found), "expected": _softmax(z, T)}


@pytest.mark.skipif(not LAB01.exists(), reason=f"{LAB01.name} not written yet")
def test_lab01_temperature_slider_flattens_the_bars(page, lab_server, artifacts):
    with diagnosed(page, lab_server, artifacts):
        timings = open_and_run_all(page, lab_server, LAB01.name)
        t0 = time.perf_counter()
        slider = ".kd-temperature"
        page.locator(f"{slider} .noUi-handle").first.wait_for(timeout=UPDATE_S * 1000)
        box = page.locator(".kd-logits input").first
        z = [float(v) for v in box.input_value().replace(",", " ").split()]
        start = readout(page, slider)
        views = {"start": lab01_view(page, z, start, artifacts / "1_start.png")}

        drag_handle(page, slider, to_end=False)  # the mouse, to the lowest temperature
        wait_readout(page, slider, 0.1)
        views["low"] = lab01_view(page, z, 0.1, artifacts / "2_low_T.png")

        press_on_handle(page, slider, "End")  # the keyboard, to the highest temperature
        wait_readout(page, slider, 100.0)
        views["high"] = lab01_view(page, z, 100.0, artifacts / "3_high_T.png")

        timings["interact"] = round(time.perf_counter() - t0, 1)
        report = json.dumps({"seconds": timings, "load": os.getloadavg()[0],
                             **{k: {kk: v[kk] for kk in ("T", "readout", "entropy", "max_prob",
                                                         "bars", "tallest_share")}
                                for k, v in views.items()}}, indent=1)
        (artifacts / "views.json").write_text(report)
        low, mid, high = views["low"], views["start"], views["high"]
        # The text: entropy grows and the top probability falls as T rises.
        assert low["entropy"] < mid["entropy"] < high["entropy"], report
        assert low["max_prob"] > mid["max_prob"] > high["max_prob"], report
        assert high["entropy"] == pytest.approx(_entropy(_softmax(z, 100.0)), abs=1e-4), report
        # The picture: at T = 0.1 one bar holds (nearly) everything; at T = 100 all C bars are
        # visible and nearly level; the tallest bar's share matches the max probability shown.
        assert low["n_bars"] < len(z) and low["tallest_share"] > 0.95, report
        assert high["n_bars"] == len(z), report
        assert high["spread"] < 0.5 * mid["spread"] and high["spread"] < 0.05, report
        assert low["tallest_share"] > mid["tallest_share"] > high["tallest_share"], report
        for v in views.values():
            assert v["tallest_share"] == pytest.approx(max(v["expected"]), abs=0.03), report
            assert v["max_prob"] == pytest.approx(max(v["expected"]), abs=1e-4), report


# ---------------------------------------------------------------- Lab 02: soft-target explorer


def _info(page) -> dict:
    """Digit, label, prediction, wrong-class mass and T from the explorer's text line."""
    t = page.locator(".kd-digit-info").first.inner_text()
    m = re.search(r"#(\d+) · label (\d+) · teacher predicts (\d+).*?wrong-class mass "
                  r"([\d.]+) at T = 1, ([\d.]+) at T = ([\d.]+)", t)
    assert m, f"unexpected text in .kd-digit-info: {t!r}"
    i, y, pred, mass1, mass_t, T = m.groups()
    return {"index": int(i), "label": int(y), "pred": int(pred), "mass1": float(mass1),
            "T": float(T), "text": t}


def _digit_mask(px: dict) -> list[list[bool]]:
    """The dark pixels of the digit panel (left of the bars), below its caption, cropped.

    The caption is the first band of rows with ink; the digit is everything under it.
    """
    rows = [[c == "1" for c in r[: int(0.16 * px["width"])]] for r in px["ink"]]
    inked = [any(r) for r in rows]
    assert any(inked), "no digit in the picture"
    top = inked.index(True)
    below = top + inked[top:].index(False)  # the first blank row under the caption
    return _crop(rows[below:])


def _crop(mask: list[list[bool]], n: int = 20) -> list[list[bool]]:
    """Crop a mask to its ink's bounding box and resample it to n x n (nearest)."""
    ys = [y for y, r in enumerate(mask) if any(r)]
    xs = [x for x in range(len(mask[0])) if any(r[x] for r in mask)]
    assert ys and xs, "no digit in the picture"
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    return [[mask[y0 + (y1 - y0) * (2 * a + 1) // (2 * n)][x0 + (x1 - x0) * (2 * b + 1) // (2 * n)]
             for b in range(n)] for a in range(n)]


def _iou(a, b) -> float:
    inter = sum(p and q for ra, rb in zip(a, b) for p, q in zip(ra, rb))
    union = sum(p or q for ra, rb in zip(a, b) for p, q in zip(ra, rb))
    return inter / union


def lab02_view(page, shot: Path, index: int | None = None, T: float | None = None) -> dict:
    """Wait until the explorer shows digit `index` at temperature T, screenshot it, read it."""
    page.wait_for_function(
        """([i, t]) => { const e = document.querySelector('.kd-digit-info');
            if (!e) return false; const s = e.innerText;
            return (i === null || s.includes('#' + i + ' ·')) &&
                   (t === null || s.includes('at T = ' + t.toFixed(2))); }""",
        arg=[index, T], timeout=UPDATE_S * 1000, polling=100)
    wait_idle(page)
    page.locator(".kd-soft-target-explorer").first.screenshot(path=str(shot))
    px = bar_pixels(page, ".kd-soft-figure", {k: BAR_COLORS[k] for k in ("tab_blue", "tab_orange")})
    blue, orange = bars(px, "tab_blue"), bars(px, "tab_orange")
    assert len(blue) == 10, f"expected 10 bars at T = 1 in the picture, found {len(blue)}: {shot}"
    hb, ho = [b["height"] for b in blue], [b["height"] for b in orange]
    return {**_info(page), "digit": _digit_mask(px), "blue": hb, "orange": ho,
            "tallest_blue": hb.index(max(hb)), "blue_spread": max(hb) - min(hb),
            "orange_spread": (max(ho) - min(ho)) if ho else None, "src": px["src"]}


@pytest.mark.skipif(not LAB02.exists(), reason=f"{LAB02.name} not written yet")
def test_lab02_pick_a_digit_and_a_temperature(page, lab_server, artifacts):
    import kdlab as kd

    x_test, y_test = kd.data.mnist("test", normalize=False)
    with diagnosed(page, lab_server, artifacts):
        timings = open_and_run_all(page, lab_server, LAB02.name)
        t0 = time.perf_counter()
        page.locator(".kd-digit-info").first.wait_for(timeout=UPDATE_S * 1000)
        first = lab02_view(page, artifacts / "1_start.png")
        i = first["index"]
        assert first["label"] == int(y_test[i]), first["text"]
        assert first["tallest_blue"] == first["pred"], first  # the tallest T = 1 bar: the guess

        # Type another digit's number into the box, as a student would, and press Enter.
        j = next(k for k in range(len(y_test)) if int(y_test[k]) != first["label"])
        box = page.locator(".kd-digit-index input").first
        box.fill(str(j))
        box.press("Enter")
        typed = lab02_view(page, artifacts / "2_typed_digit.png", index=j)
        assert typed["label"] == int(y_test[j]), typed["text"]
        assert typed["tallest_blue"] == typed["pred"], typed["text"]
        assert typed["blue"] != first["blue"], "the bars did not change with the digit"
        mnist = {k: _crop([[v > 0.5 for v in row] for row in x_test[k].reshape(28, 28).tolist()])
                 for k in (i, j)}
        # The digit panel now shows digit j: it overlaps j's pixels more than i's.
        fit = {k: round(_iou(v["digit"], mnist[d]), 3)
               for k, v, d in [("typed~j", typed, j), ("typed~i", typed, i),
                               ("first~i", first, i), ("first~j", first, j)]}
        assert fit["typed~j"] > 0.5 and fit["typed~j"] > fit["typed~i"] + 0.1, (
            f"the picture does not show the typed digit #{j}: overlap with MNIST pixels {fit}")
        assert fit["first~i"] > fit["first~j"] + 0.1, f"overlap with MNIST pixels {fit}"

        # "next ambiguous" from a digit outside the list goes to the first one, then the second.
        page.locator(".kd-next-ambiguous").first.click()
        back = lab02_view(page, artifacts / "3_next_ambiguous.png", index=i)
        assert back["blue"] == first["blue"] and back["digit"] == first["digit"], (
            "the first ambiguous digit looks different the second time")
        page.locator(".kd-next-ambiguous").first.click()
        page.wait_for_function(f"() => !document.querySelector('.kd-digit-info')"
                               f".innerText.includes('#{i} ·')", timeout=UPDATE_S * 1000)
        second = lab02_view(page, artifacts / "4_next_ambiguous.png")
        assert second["index"] != i and "ambiguous 2 of" in second["text"], second["text"]
        assert second["mass1"] <= first["mass1"], "the list should go from most ambiguous down"
        assert second["digit"] != first["digit"], "the digit did not change"

        # The temperature: T = 0.5 sharpens the second group of bars, T = 20 levels them
        # (heights on a log axis: the spread is the log-range of the soft targets).
        slider = ".kd-soft-T"
        press_on_handle(page, slider, "Home")
        wait_readout(page, slider, 0.5)
        cold = lab02_view(page, artifacts / "5_T_0.5.png", index=second["index"], T=0.5)
        drag_handle(page, slider, to_end=True)
        wait_readout(page, slider, 20.0)
        hot = lab02_view(page, artifacts / "6_T_20.png", index=second["index"], T=20.0)
        timings["interact"] = round(time.perf_counter() - t0, 1)
        report = {"seconds": timings, "load": os.getloadavg()[0],
                  **{k: {kk: v[kk] for kk in ("index", "T", "blue", "orange")}
                     for k, v in dict(first=first, typed=typed, cold=cold, hot=hot).items()}}
        (artifacts / "views.json").write_text(json.dumps(report, indent=1))
        assert hot["blue"] != cold["blue"] or hot["orange"] != cold["orange"]
        assert len(hot["orange"]) == 10, report["hot"]
        assert cold["orange_spread"] > cold["blue_spread"], report
        assert hot["orange_spread"] < 0.3 * hot["blue_spread"], report
