"""Checks of Lab 04 (hint learning, FitNets): the hint regressor and the hint loss.

``check_hint_regressor(HintRegressor)`` builds the student's regressor for several
(student map, teacher map) shape pairs, one with a non-integer spatial ratio, and checks the
output shape, that it has trainable parameters that a gradient reaches and that it owns them
(no module of the teacher, nothing shared between two regressors), and that the output is a
map of the input: it depends on every input channel and every region of the student's map,
and a change at one place of the input moves the output at the corresponding place.

``check_hint_loss(fn)`` calls ``fn(student_features, teacher_features, regressor)`` with a
fixed regressor and compares value and gradients with the mean squared error between the
regressed student map and the (detached) teacher map. Common mistakes are named.

Each check is a probe (builds and calls the student's code through ``_probe.call``, records
plain data) and a verdict (reads the data and computes the expected values itself).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _probe as _p
from ._common import decode, fail, raised, result, short, type_name, unchanged
from ._registry import register

REG = "check_hint_regressor"
LOSS = "check_hint_loss"

# (student_channels, teacher_channels, hint_size, student map shape) -> output (N, Ct, *hint_size)
REGRESSOR_CASES = [
    (16, 48, (7, 7), (2, 16, 14, 14)),   # the lab's pair: ThinDeepCNN stage2 -> Teacher layer2
    (8, 24, (14, 14), (2, 8, 14, 14)),   # same size, only the channels differ
    (32, 96, (4, 4), (3, 32, 7, 7)),     # 7 -> 4: not an integer ratio
    (6, 4, (5, 5), (1, 6, 5, 5)),        # fewer teacher channels than student channels
    (5, 7, None, (2, 5, 9, 9)),          # no hint_size: the size is kept
]
SPATIAL_BATCH = 3   # digits of the batch used to probe the layout (several: a ReLU may be dead)
BUMP = 2.0          # the local change added at one position of the student's map
MIN_LOCAL = 0.5     # share of the output's change that must lie near the corresponding place


def _gen(seed) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _out_shape(case) -> tuple:
    cs, ct, size, in_shape = case
    return (in_shape[0], ct) + (tuple(size) if size is not None else tuple(in_shape[2:]))


def _fresh_cases(g: torch.Generator) -> list:
    """Shape pairs of the same five kinds as REGRESSOR_CASES, with other numbers."""
    def r(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))
    h = r(5, 8)
    lab = (r(8, 24), r(32, 64), (h, h), (r(2, 3), 0, 2 * h, 2 * h))
    s = r(8, 14)
    same = (r(4, 12), r(16, 32), (s, s), (r(1, 3), 0, s, s))
    hs = r(7, 11)
    ht = r(3, hs - 2)
    while hs % ht == 0:
        ht -= 1
    odd = (r(16, 32), r(48, 96), (ht, ht), (r(2, 3), 0, hs, hs))
    f = r(5, 7)
    fewer_cs = r(6, 12)
    fewer = (fewer_cs, r(2, fewer_cs - 2), (f, f), (1, 0, f, f))
    n = r(7, 10)
    keep = (r(3, 8), r(4, 12), None, (r(1, 3), 0, n, n))
    out = []
    for cs, ct, size, shp in (lab, same, odd, fewer, keep):
        out.append((cs, ct, size, (shp[0], cs, shp[2], shp[3])))
    return out


def regressor_inputs(seed=None, channels=None, batch=None) -> dict:
    """Inputs of the regressor check: shape pairs, a student map for each, probe positions.

    seed None: the notebook's fixed shape pairs (REGRESSOR_CASES); an int: fresh numbers of
    the same five kinds (an integer downsampling as in the lab, same size, a non-integer
    ratio, fewer teacher channels, no hint_size). params: channels = (Cs, Ct) of the first
    (the lab's) pair; batch = N of every student map.
    Returns {"cases": [{"case": (Cs, Ct, hint_size, (N, Cs, Hs, Ws)), "x": (N, Cs, Hs, Ws),
    "r": weights of the output's shape, "xs": (B, Cs, Hs, Ws), "rs": (B, Ct, H, W),
    "positions": [(p, q), ...] of the student's map}, ...]}.
    """
    g = _gen(4000 if seed is None else 40_000 + int(seed))
    cases = list(REGRESSOR_CASES) if seed is None else _fresh_cases(g)
    if channels is not None:
        cs, ct = (int(c) for c in channels)
        if cs < 1 or ct < 1:
            raise ValueError(f"channels must be two whole numbers >= 1, got {channels}")
        _, _, size, shp = cases[0]
        cases[0] = (cs, ct, size, (shp[0], cs) + tuple(shp[2:]))
    if batch is not None:
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        cases = [(cs, ct, size, (int(batch),) + tuple(shp[1:])) for cs, ct, size, shp in cases]
    out = []
    for case in cases:
        cs, ct, size, shp = case
        hs, ws = shp[2], shp[3]
        H, W = _out_shape(case)[2:]
        positions = [(1, 1), (hs - 2, ws - 2), (hs - 2, 1)]
        if seed is not None:
            positions.append((int(torch.randint(0, hs, (1,), generator=g)),
                              int(torch.randint(0, ws, (1,), generator=g))))
        out.append({"case": case,
                    "x": torch.randn(shp, generator=g).abs(),
                    "r": torch.randn(_out_shape(case), generator=g),
                    "xs": torch.randn((SPATIAL_BATCH,) + tuple(shp[1:]), generator=g),
                    "rs": torch.randn(SPATIAL_BATCH, ct, H, W, generator=g),
                    "positions": positions if min(H, W) >= 5 else []})
    return {"cases": out}


# ------------------------------------------------------------------ HintRegressor: probe


def _teacher_types():
    from kdlab.models import BasicBlock, Teacher
    return (Teacher, BasicBlock)


def _build(cls, case):
    cs, ct, size, _ = case
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return _p.call(cls, cs, ct, hint_size=size)


def _forward(reg, x):
    """Call reg(x) with the same random state every time (dropout masks repeat)."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return _p.call(reg, x)


def _module_facts(reg) -> dict:
    facts = {"module": isinstance(reg, nn.Module)}
    if not facts["module"]:
        return facts
    try:
        kinds = _teacher_types()
        facts["teacher_modules"] = [[name, type(m).__name__] for name, m in reg.named_modules()
                                    if isinstance(m, kinds)][:5]
        params = list(reg.parameters())
        facts["n_trainable"] = sum(p.numel() for p in params if p.requires_grad)
        facts["n_frozen"] = sum(p.numel() for p in params if not p.requires_grad)
    except Exception as e:  # noqa: BLE001 - a module whose parameters cannot be listed
        facts["error"] = f"{type(e).__name__}: {_p.text(e)}"
    return facts


def _grad_facts(out, params, x, weights) -> dict:
    """|d sum(out * weights) / d x| summed over the batch (Cs, Hs, Ws), and |grad| of each parameter."""
    try:
        loss = (out * weights).sum()
        gs = torch.autograd.grad(loss, params + [x], allow_unused=True)
    except Exception as e:  # noqa: BLE001 - an output cut off from autograd
        return {"error": f"{type(e).__name__}: {_p.text(e)}"}
    gx = gs[-1]
    return {"x": _p.tensor(gx.abs().sum(0)) if gx is not None else None,
            "params": [float(g.abs().sum()) if g is not None else None for g in gs[:-1]]}


def _outcome(out: dict) -> dict:
    """A recorded call without its returned values (the probe keeps only what it measured)."""
    v = out.get("value", {})
    return {**out, "value": {k: v[k] for k in v if k != "values"}}


def _probe_case(cls, c) -> dict:
    cs, ct, size, shp = c["case"]
    build, reg = _build(cls, c["case"])
    d = {"build": build}
    if build["raised"] or reg is None:
        return d
    d.update(_module_facts(reg))
    if not d["module"] or "error" in d:
        return d
    params = [p for p in reg.parameters() if p.requires_grad]
    x = c["x"].clone().requires_grad_(True)
    d["forward"], out = _forward(reg, x)
    if not torch.is_tensor(out) or tuple(out.shape) != tuple(c["r"].shape):
        return d
    d["grads"] = _grad_facts(out, params, x, c["r"])
    # the layout: which input channels and regions the output depends on, and where it moves
    xs = c["xs"].clone().requires_grad_(True)
    fs, outs = _forward(reg, xs)
    d["spatial_forward"] = _outcome(fs)
    if torch.is_tensor(outs) and tuple(outs.shape) == tuple(c["rs"].shape):
        d["spatial_grads"] = _grad_facts(outs, params, xs, c["rs"])
        d["moves"] = []
        base = None
        for p, q in c["positions"]:
            if base is None:
                fb, base = _forward(reg, c["xs"].clone())
                if not torch.is_tensor(base):
                    d["moves"].append({"call": _outcome(fb)})
                    break
            xp = c["xs"].clone()
            xp[:, :, p, q] += BUMP
            fp, moved = _forward(reg, xp)
            m = {"call": _outcome(fp)}
            if torch.is_tensor(moved) and moved.shape == base.shape:
                with torch.no_grad():  # where the output changed: (H, W), summed over batch and channels
                    m["change"] = _p.tensor((moved.detach().double() - base.detach().double())
                                            .abs().sum((0, 1)))
            d["moves"].append(m)
    return d


def regressor_probe(cls, inp) -> dict:
    """Build the student's class for every shape pair, call each instance, record the facts."""
    kind = {"module_instance": isinstance(cls, nn.Module),
            "module_class": isinstance(cls, type) and issubclass(cls, nn.Module)}
    try:
        kind["repr"] = _p.text(repr(cls), 200)
    except Exception:  # noqa: BLE001 - a hostile __repr__
        kind["repr"] = "?"
    data = {"kind": kind, "cases": []}
    if not kind["module_class"]:
        return data
    for c in inp["cases"]:
        d = _probe_case(cls, c)
        data["cases"].append(d)
        if "spatial_grads" not in d:  # this case already fails: no need to go on
            return data
    # two regressors of the lab's pair must not share parameters
    a = _build(cls, inp["cases"][0]["case"])[1]
    b = _build(cls, inp["cases"][0]["case"])[1]
    if isinstance(a, nn.Module) and isinstance(b, nn.Module):
        ptrs = {p.data_ptr() for p in a.parameters()}
        data["shared"] = [n for n, p in b.named_parameters() if p.data_ptr() in ptrs][:3]
    return data


# ------------------------------------------------------------------ HintRegressor: verdict


def _where(case) -> str:
    cs, ct, size, _ = case
    return f"HintRegressor({cs}, {ct}, hint_size={size})"


def _build_verdict(case, build: dict) -> None:
    cs, ct, size, _ = case
    r = build.get("raised")
    if not r:
        return
    if r["type"] == "NotImplementedError":
        fail(REG, "not implemented yet",
             "write your code in the exercise cell above and remove `raise NotImplementedError`")
    if r["type"] == "TypeError":
        fail(REG, f"HintRegressor({cs}, {ct}, hint_size={size}) raised TypeError: {r['message']}",
             "keep the signature HintRegressor(student_channels, teacher_channels, hint_size=None)")
    if r["type"] == "AssertionError":
        raise AssertionError(r["message"])
    fail(REG, f"HintRegressor({cs}, {ct}, hint_size={size}) raised {r['type']}: {r['message']}",
         "run the exercise cell again and read the traceback of a small example")


def _regions(Hs: int, H: int) -> list:
    """The input rows [a, b) that adaptive pooling averages into each of the H output rows."""
    return [(math.floor(i * Hs / H), math.ceil((i + 1) * Hs / H)) for i in range(H)]


def _layout_verdict(c, d: dict) -> None:
    """Fail if the output ignores an input channel or region, or does not follow the layout."""
    cs, ct, size, shp = c["case"]
    where = _where(c["case"])
    _, _, Hs, Ws = shp
    H, W = c["rs"].shape[2:]
    gx = decode(d["spatial_grads"]["x"]).double()  # (Cs, Hs, Ws)
    total = float(gx.sum())
    per_channel = gx.sum((1, 2))
    dead = [k for k in range(cs) if not per_channel[k] > 1e-9 * total]
    if dead:
        fail(REG, f"the output of {where} does not depend on input channel"
                  f"{'s' if len(dead) > 1 else ''} {', '.join(map(str, dead[:6]))}"
                  f"{' ...' if len(dead) > 6 else ''} of the student's {cs}",
             "every channel of the student's map carries part of what it computed: map all "
             "student_channels to teacher_channels (nn.Conv2d(student_channels, "
             "teacher_channels, 3, padding=1)), do not select or slice channels")
    spatial = gx.sum(0)
    missed = [(rows, cols) for rows in _regions(Hs, H) for cols in _regions(Ws, W)
              if not spatial[rows[0]:rows[1], cols[0]:cols[1]].sum() > 1e-9 * total]
    if missed:
        (r0, r1), (c0, c1) = missed[-1]
        fail(REG, f"the output of {where} ignores part of the student's {Hs}x{Ws} map: "
                  f"{len(missed)} of its {H * W} regions (one per output position), e.g. rows "
                  f"{r0}-{r1 - 1}, columns {c0}-{c1 - 1}, change nothing in the output; "
                  "cropping the map to hint_size keeps only its top-left corner",
             "bring the WHOLE map to hint_size: F.adaptive_avg_pool2d(x, hint_size) averages "
             "every region into its output position; do not crop (x[..., :H, :W])")
    if not c["positions"]:
        return
    _complete(REG, d.get("moves"), len(c["positions"]), f"the layout of {where}")
    for (p, q), m in zip(c["positions"], d["moves"]):
        raised(REG, m["call"])
        unchanged(REG, m["call"], ["student map"])
        if "change" not in m:
            fail(REG, f"{where} returned {type_name(m['call']['value'])} of another shape when "
                      "called again on a slightly changed map",
                 "return the same kind of tensor, of the same shape, for every input")
        change = decode(m["change"]).double()  # (H, W)
        tot = float(change.sum())
        ci, cj = (p + 0.5) * H / Hs - 0.5, (q + 0.5) * W / Ws - 0.5
        at = f"position ({p}, {q}) of the student's {Hs}x{Ws} map"
        if not math.isfinite(tot) or tot <= 0:
            fail(REG, f"changing the {at} does not change the output of {where}",
                 "every position of the student's map must reach the output: convolve and "
                 "pool the whole map, do not crop or drop positions")
        head = (f"the output of {where} does not follow the layout of the input: changing the "
                f"{at} should move the {H}x{W} output near ({ci:.1f}, {cj:.1f})")
        hint = ("each position of the hint must come from the same place of the student's "
                "map: use convolutions and pooling (they keep the layout), not global means, "
                "flattening, a fully connected layer or constant maps")
        if float(change.std() / change.mean()) < 0.05:
            fail(REG, f"{head}; instead the change is spread evenly over every output position: "
                      "the output is built from a summary of the whole input (such as "
                      "x.mean()), not position by position", hint)
        R = max(2.0, 0.25 * min(H, W))
        ii = torch.arange(H, dtype=torch.float64)[:, None]
        jj = torch.arange(W, dtype=torch.float64)[None, :]
        near = ((ii - ci).abs() <= R) & ((jj - cj).abs() <= R)
        share = float(change[near].sum()) / tot
        if share < MIN_LOCAL:
            fail(REG, f"{head}; only {share:.0%} of the change lies within {R:g} positions of "
                      "that place (is the map flipped, transposed or shifted?)", hint)


def _complete(name: str, items, n: int, what: str) -> None:
    """Fail if the probe's data holds fewer than `n` recorded outcomes (it always records all)."""
    if not isinstance(items, list) or len(items) < n:
        fail(name, f"the check's probe returned incomplete data ({what})",
             "run the check cell again after restarting the kernel; do not change kdlab")


def regressor_verdict(data, inp) -> str:
    """Check the class HintRegressor(student_channels, teacher_channels, hint_size=None).

    An instance maps a student map (N, Cs, Hs, Ws) to (N, Ct, *hint_size) (or (N, Ct, Hs, Ws)
    when hint_size is None) with trainable parameters of its own; the output depends on every
    input channel and region, and a local change of the input moves the output at the
    corresponding place.
    """
    kind = data["kind"]
    if kind.get("module_instance"):
        fail(REG, "got an instance of a module; expected the class itself",
             "pass the class: kd.checks.check_hint_regressor(HintRegressor)")
    if not kind.get("module_class"):
        fail(REG, f"expected a subclass of torch.nn.Module, got {kind.get('repr', '?')}",
             "define `class HintRegressor(nn.Module)` with __init__ and forward")
    _complete(REG, data.get("cases"), 1, "no shape pair")
    for i, c in enumerate(inp["cases"]):
        _complete(REG, data["cases"], i + 1, f"shape pair {i + 1} of {len(inp['cases'])}")
        d = data["cases"][i]
        case = c["case"]
        cs, ct, size, in_shape = case
        where = _where(case)
        _build_verdict(case, d["build"])
        if not d.get("module"):
            fail(REG, f"{where} gave {type_name(d['build']['value'])}, not a torch.nn.Module",
                 "define `class HintRegressor(nn.Module)` and call super().__init__() first")
        if "error" in d:
            fail(REG, f"the parameters of {where} cannot be listed: {d['error']}",
                 "call super().__init__() first and assign layers as attributes")
        if d["teacher_modules"]:
            name, typ = d["teacher_modules"][0]
            fail(REG, f"{where} contains a module of the teacher ({name or 'itself'}: {typ})",
                 "the regressor is a new, small layer of the student (e.g. one nn.Conv2d); "
                 "the teacher stays frozen and outside it")
        if not d["n_trainable"]:
            fail(REG, f"{where} has no trainable parameters ({d['n_frozen']} frozen ones)",
                 "the regressor must learn the mapping: use a layer such as "
                 "nn.Conv2d(student_channels, teacher_channels, 3, padding=1), and do not set "
                 "requires_grad=False or register the weights as buffers")
        out = result(REG, d["forward"], f"{where}(x)", shapes=str(tuple(in_shape)))
        unchanged(REG, d["forward"], ["student map"])
        want = _out_shape(case)
        if tuple(out.shape) != want:
            fail(REG, f"{where} maps a student map of shape {tuple(in_shape)} to "
                      f"{tuple(out.shape)}, expected {want}",
                 "the channels come from the conv layer; the spatial size must match the "
                 "teacher's hint: pool the result to hint_size (F.adaptive_avg_pool2d) or "
                 "use a strided convolution, and leave the size alone when hint_size is None")
        if not torch.isfinite(out).all():
            fail(REG, f"{where} returned nan or inf: {short(out)}", "look for a division by zero")
        grads = d["grads"]
        if "error" in grads or grads["x"] is None or not decode(grads["x"]).abs().sum() > 0:
            fail(REG, f"the output of {where} does not depend on its input",
                 "apply the layers to x in forward and do not detach it")
        if all(g is None or not g > 0 for g in grads["params"]):
            fail(REG, f"no gradient reaches the parameters of {where}",
                 "use the trainable layers in forward (not only in __init__), without "
                 "torch.no_grad()")
        raised(REG, d["spatial_forward"])
        unchanged(REG, d["spatial_forward"], ["student map"])
        sv = d["spatial_forward"]["value"]
        want_s = tuple(c["rs"].shape)
        if sv.get("kind") != "tensor" or tuple(sv.get("shape", ())) != want_s:
            fail(REG, f"{where} maps a batch of {SPATIAL_BATCH} student maps of shape "
                      f"{tuple(c['xs'].shape)} to {tuple(sv.get('shape', ())) or type_name(sv)}, "
                      f"expected {want_s}",
                 "treat every example of the batch alike: the output's first dimension is the "
                 "batch size N, whatever N is")
        if "spatial_grads" not in d or "error" in d["spatial_grads"] or d["spatial_grads"]["x"] is None:
            fail(REG, f"the output of {where} does not depend on its input for a batch of "
                      f"{SPATIAL_BATCH} maps",
                 "apply the layers to x in forward and do not detach it")
        _layout_verdict(c, d)
    if "shared" not in data:
        fail(REG, "two HintRegressor instances of the lab's shape pair could not be built and "
                  "compared", "make HintRegressor(...) return an nn.Module every time")
    if data["shared"]:
        fail(REG, f"two HintRegressor instances share the parameters {data['shared']}: the "
                  "regressor reuses a module created outside it (for example a layer of the "
                  "teacher)",
             "create fresh layers inside __init__; training the regressor must never change "
             "the teacher, and each student needs its own regressor")
    cs, ct = inp["cases"][0]["case"][:2]
    n = data["cases"][0]["n_trainable"]
    return (f"output shapes right for {len(inp['cases'])} shape pairs, the output follows the "
            f"input's layout and uses every channel, {n} trainable parameters of its own for "
            f"{cs} -> {ct} channels")


check_hint_regressor = register("hint_regressor", regressor_inputs, regressor_probe,
                                regressor_verdict)


# ------------------------------------------------------------------ hint_loss


def _regressors(seed, a_channels: int, b_channels: tuple, b_size: int):
    """Two regressors built from a seed: same size a -> a channels, and Cs -> Ct, 2h -> h."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        same = nn.Conv2d(a_channels, a_channels, 3, padding=1)
        down = nn.Sequential(nn.Conv2d(b_channels[0], b_channels[1], 3, padding=1),
                             nn.AdaptiveAvgPool2d(b_size))
    return same, down


def hint_inputs(seed=None, batch=None, channels=None) -> dict:
    """Inputs of the hint-loss check: case A with equal shapes, case B as in the lab.

    seed None: the notebook's fixed inputs: A student/teacher (3, 4, 5, 5); B student
    (2, 6, 8, 8), teacher (2, 10, 4, 4). An int: fresh numbers of the same kinds (A: equal
    shapes, so the un-regressed and reversed mistakes run and can be named; B: other
    channels and half the size). params: batch = N of both cases; channels = (Cs, Ct) of B.
    Returns {"cases": [(what, student (N, Cs, Hs, Ws), teacher (N, Ct, H, W), regressor), ...]}.
    """
    if seed is None:
        g = _gen(7)
        na, ca, ha, nb, (cs, ct), hb = 3, 4, 5, 2, (6, 10), 4
        reg_seed = 1234
    else:
        g = _gen(70_000 + int(seed))

        def r(lo, hi):
            return int(torch.randint(lo, hi + 1, (1,), generator=g))
        na, ca, ha, nb, hb = r(2, 4), r(3, 6), r(4, 6), r(2, 3), r(3, 5)
        cs = r(3, 8)
        ct = cs + r(2, 6)
        reg_seed = 5000 + int(seed)
    if batch is not None:
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        na = nb = int(batch)
    if channels is not None:
        cs, ct = (int(c) for c in channels)
        if cs < 1 or ct < 1:
            raise ValueError(f"channels must be two whole numbers >= 1, got {channels}")
    same, down = _regressors(reg_seed, ca, (cs, ct), hb)
    a = (torch.randn(na, ca, ha, ha, generator=g), torch.randn(na, ca, ha, ha, generator=g).relu())
    b = (torch.randn(nb, cs, 2 * hb, 2 * hb, generator=g), torch.randn(nb, ct, hb, hb, generator=g).relu())
    return {"cases": [(f"student and teacher maps {tuple(a[0].shape)}", *a, same),
                      (f"a student map {tuple(b[0].shape)} regressed to the teacher's "
                       f"{tuple(b[1].shape)}", *b, down)]}


def hint_probe(fn, inp) -> dict:
    """Call fn(student, teacher, regressor) on fresh leaves; record value, gradients, changes."""
    cases = []
    for _, s, t, reg in inp["cases"]:
        s = s.clone().requires_grad_(True)
        t = t.clone().requires_grad_(True)  # the teacher must not receive a gradient
        params = list(reg.parameters())
        before = [_p.snapshot(p) for p in params]
        out, loss = _p.call(fn, s, t, reg)
        d = {"call": out, "regressor_changed": sorted({w for p, snap in zip(params, before)
                                                      for w in _p.changes(snap, p)})}
        if (torch.is_tensor(loss) and loss.dim() == 0 and loss.requires_grad
                and not out["raised"]):
            d["grads"] = _p.grads(loss, [s, t] + params)
        cases.append(d)
    return {"cases": cases}


def reference(s, t, regressor):
    """The right loss: mean over all elements of (regressor(s) - t.detach())^2."""
    return F.mse_loss(regressor(s), t.detach())


def _sq(s, t, r):
    return (r(s) - t.detach()) ** 2


# name -> (loss(s, t, regressor), what is wrong, hint); told apart on the same-shape case A
MISTAKES = {
    "unregressed": (
        lambda s, t, r: F.mse_loss(s, t),
        "the loss compares the student's features with the teacher's directly: the regressor "
        "is not applied",
        "compare regressor(student_features) with teacher_features; without the regressor the "
        "shapes generally differ and the student would have to copy the teacher's channels"),
    "reversed": (
        lambda s, t, r: F.mse_loss(r(t), s),
        "the regressor is applied to the teacher's features and compared with the student's: "
        "wrong direction",
        "the regressor maps the STUDENT's map to the teacher's shape: "
        "F.mse_loss(regressor(student_features), teacher_features.detach())"),
    "sum": (
        lambda s, t, r: _sq(s, t, r).sum(),
        "the squared errors are summed instead of averaged (reduction='sum'), so the loss grows "
        "with the batch and the map size",
        "average over every element: F.mse_loss's default reduction='mean'"),
    "sum_per_example": (
        lambda s, t, r: _sq(s, t, r).sum() / s.shape[0],
        "the squared errors are summed over channels and positions (averaged only over the "
        "batch), so the loss grows with the size of the map",
        "average over every element: F.mse_loss(regressed, target) with its default reduction"),
    "half": (
        lambda s, t, r: 0.5 * _sq(s, t, r).mean(),
        "the loss is half the mean squared error",
        "this lab uses the plain mean squared error, F.mse_loss, without the factor 1/2"),
    "norm": (
        lambda s, t, r: (r(s) - t.detach()).norm(),
        "the loss is the Euclidean norm of the difference (a square root), not the mean "
        "squared error",
        "square the differences and average: F.mse_loss(regressor(student_features), teacher_features)"),
}

_CMP_HINT = ("hint_loss = F.mse_loss(regressor(student_features), teacher_features.detach()), "
             "the mean over every element")


def _loss_value(d: dict, what: str) -> torch.Tensor:
    """The recorded loss: a scalar tensor that autograd reaches; fail otherwise."""
    out = d["call"]
    got = result(LOSS, out, "hint_loss(...)")
    unchanged(LOSS, out, ["student features", "teacher features"])
    if d["regressor_changed"]:
        fail(LOSS, f"your function changed the regressor's parameters ("
                   f"{', '.join(d['regressor_changed'])})",
             "only compute the loss: no optimizer step, no in-place change, no backward() "
             "inside hint_loss (the training loop does that)")
    if got.dim() != 0:
        fail(LOSS, f"hint_loss returned shape {tuple(got.shape)} for {what}; expected a scalar, "
                   "shape ()", "reduce with the mean over every element (F.mse_loss's default)")
    if not out["value"]["requires_grad"]:
        fail(LOSS, "the loss does not depend on the student's features (no gradient flows back)",
             "do not call .detach(), .item() or torch.no_grad() on the student's side")
    return got.double()


def _nonzero(g: dict) -> bool:
    return g.get("kind") == "tensor" and bool(decode(g).abs().sum() > 0)


def hint_verdict(data, inp) -> str:
    """Check hint_loss(student_features (N, Cs, H, W), teacher_features (N, Ct, h, w), regressor) -> ()."""
    (what_a, sa, ta, same), (what_b, sb, tb, down) = inp["cases"]
    _complete(LOSS, data.get("cases"), 2, "two cases expected")
    da, db = data["cases"][:2]
    # case A: same shapes, so the un-regressed and reversed versions also run; name the mistake
    got = _loss_value(da, what_a)
    with torch.no_grad():
        want = reference(sa, ta, same).double()
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-6):
            for loss_fn, what, hint in MISTAKES.values():
                if torch.allclose(got, loss_fn(sa, ta, same).double(), rtol=1e-4, atol=1e-6):
                    fail(LOSS, what, hint)
            fail(LOSS, f"wrong value for {what_a}: got {got.item():.6g}, expected "
                       f"{want.item():.6g}", _CMP_HINT)
    # case B: channels and size differ, as in the lab; check value and where gradients go
    got = _loss_value(db, what_b)
    s = sb.clone().requires_grad_(True)
    want = reference(s, tb, down)
    want_gs = torch.autograd.grad(want, s)[0].double()
    want = want.detach().double()
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-6):
        fail(LOSS, f"wrong value for {what_b}: got {got.item():.6g}, expected {want.item():.6g}",
             _CMP_HINT)
    _complete(LOSS, db.get("grads"), 2 + len(list(down.parameters())), "gradients")
    gs, gt, *gp = db["grads"]
    if _nonzero(gt):
        fail(LOSS, "a gradient flows into the teacher's features: the teacher is not detached",
             "the hint is a fixed target: use teacher_features.detach() (otherwise a live teacher "
             "would be trained towards the student)")
    if not _nonzero(gs):
        fail(LOSS, "no gradient reaches the student's features",
             "do not detach student_features; the hint must train the student's lower layers")
    if not any(_nonzero(p) for p in gp):
        fail(LOSS, "no gradient reaches the regressor's parameters",
             "call the regressor on the student's features inside the loss, without torch.no_grad()")
    got_gs = decode(gs).double()
    if tuple(got_gs.shape) != tuple(want_gs.shape) or not torch.allclose(got_gs, want_gs,
                                                                        rtol=1e-3, atol=1e-7):
        diff = ((got_gs - want_gs).abs().max().item()
                if tuple(got_gs.shape) == tuple(want_gs.shape) else float("nan"))
        fail(LOSS, f"the value is right but the gradient with respect to the student's features "
                   f"is not (max abs difference {diff:.3g}): part of the loss is computed "
                   "outside autograd",
             "compute the whole loss with torch operations on regressor(student_features)")
    return (f"mean squared error of regressed student vs detached teacher map "
            f"({got.item():.4f} on a {tuple(sb.shape)} -> {tuple(tb.shape)} example)")


check_hint_loss = register("hint_loss", hint_inputs, hint_probe, hint_verdict)
