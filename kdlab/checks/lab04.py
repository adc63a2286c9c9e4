"""Checks of Lab 04 (hint learning, FitNets): the hint regressor and the hint loss.

``check_hint_regressor(HintRegressor)`` builds the student's regressor for five kinds of
(student map, teacher map) shape pairs and checks its output shape, that it owns trainable
parameters that a gradient reaches (no module of the teacher, none shared between two
regressors) and that the output is a map of the input: it depends on every input channel and
region, a local change of the input moves it at the corresponding place, and each output
position sees a neighbourhood of the student's map (the lab's 3x3 convolution), not only the
positions the resizing brings to it.

``check_hint_loss(fn)`` compares the value and the gradients of ``fn(student_features,
teacher_features, regressor)`` with the answer key (the mean squared error between the
regressed student map and the detached teacher map) and names the common mistakes.
"""
from __future__ import annotations

import torch
from torch import nn

from . import _probe as _p
from ._common import (Mistake, close, recorded, fail, paired, raised, result,
                      short, type_name, unchanged)
from ._registry import Check
from ._scalar import ScalarLoss

# ------------------------------------------------------------------ HintRegressor

REGRESSOR_MISTAKES = [
    Mistake("channels", "the output of {where} does not depend on input channel{s} {dead} of "
                        "the student's {cs}",
            "every channel of the student's map carries part of what it computed: map all "
            "student_channels to teacher_channels (nn.Conv2d(student_channels, teacher_channels, "
            "3, padding=1)), do not select or slice channels", keyed=False),
    Mistake("crop", "the output of {where} ignores part of the student's {hs}x{ws} map: {n} of "
                    "its {total} regions (one per output position), e.g. {rows}, {cols}, change "
                    "nothing in the output; cropping the map to hint_size keeps only its top-left "
                    "corner",
            "bring the WHOLE map to hint_size: F.adaptive_avg_pool2d(x, hint_size) averages every "
            "region into its output position; do not crop (x[..., :H, :W])", keyed=False),
    Mistake("summary", "{head}; instead the change is spread evenly over every output position: "
                       "the output is built from a summary of the whole input (such as x.mean()), "
                       "not position by position", "{hint}", keyed=False),
    Mistake("displaced", "{head}; only {share:.0%} of the change lies within {R:g} positions of "
                         "that place (is the map flipped, transposed or shifted?)", "{hint}", keyed=False),
    Mistake("no_neighbourhood",
            "{where} regresses each output position from its own place only: the output at "
            "({i}, {j}) depends on {rows}, {cols} of the student's {hs}x{ws} map (the place it "
            "stands for) and on nothing around them{convs}. The lab asks for a "
            "3x3 convolution, so that each regressed position sees a neighbourhood of the "
            "student's features",
            "apply nn.Conv2d(student_channels, teacher_channels, kernel_size=3, padding=1) to the "
            "student's map, then bring the result to hint_size (F.adaptive_avg_pool2d(x, "
            "hint_size)); a 1x1 convolution, before or after the pooling, only mixes the channels "
            "at each position", keyed=False),
]
_LAYOUT_HINT = ("each position of the hint must come from the same place of the student's map: "
                "use convolutions and pooling (they keep the layout), not global means, "
                "flattening, a fully connected layer or constant maps")

# (student_channels, teacher_channels, hint_size, student map shape)
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


def _draws(g: torch.Generator):
    """r(lo, hi): a whole number drawn from g, lo <= r <= hi."""
    return lambda lo, hi: int(torch.randint(lo, hi + 1, (1,), generator=g))


def _fresh_cases(g: torch.Generator) -> list:
    """Shape pairs of the same five kinds as REGRESSOR_CASES, with other numbers."""
    r = _draws(g)
    h, s, hs, f, fewer_cs, n = r(5, 8), r(8, 14), r(7, 11), r(5, 7), r(6, 12), r(7, 10)
    ht = r(3, hs - 2)
    while hs % ht == 0:
        ht -= 1
    kinds = [(r(8, 24), r(32, 64), (h, h), (r(2, 3), 2 * h)),     # the lab's 2h -> h
             (r(4, 12), r(16, 32), (s, s), (r(1, 3), s)),         # same size
             (r(16, 32), r(48, 96), (ht, ht), (r(2, 3), hs)),     # a non-integer ratio
             (fewer_cs, r(2, fewer_cs - 2), (f, f), (1, f)),      # fewer teacher channels
             (r(3, 8), r(4, 12), None, (r(1, 3), n))]             # no hint_size
    return [(cs, ct, size, (nb, cs, hw, hw)) for cs, ct, size, (nb, hw) in kinds]


def regressor_inputs(seed=None, channels=None, batch=None) -> dict:
    """Inputs of the regressor check: shape pairs, student maps, probe positions.

    seed None: the notebook's fixed shape pairs (REGRESSOR_CASES); an int: fresh numbers of
    the same five kinds (an integer downsampling as in the lab, same size, a non-integer
    ratio, fewer teacher channels, no hint_size). params: channels = (Cs, Ct) of the first
    (the lab's) pair; batch = N of every student map.
    Returns {"cases": [{"case": (Cs, Ct, hint_size, (N, Cs, Hs, Ws)), "x": (N, Cs, Hs, Ws),
    "xs": (B, Cs, Hs, Ws), "rs": weights (B, Ct, H, W) of the output, "positions": [(p, q), ...]
    of the student's map to change, "reach_at": (i, j) of the output}, ...]}.
    """
    g = check_hint_regressor.rng(seed)
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
    for cs, ct, size, shp in cases:
        hs, ws = shp[2], shp[3]
        H, W = tuple(size) if size is not None else (hs, ws)
        positions = [(1, 1), (hs - 2, ws - 2), (hs - 2, 1)]
        if seed is not None:
            positions.append((int(torch.randint(0, hs, (1,), generator=g)),
                              int(torch.randint(0, ws, (1,), generator=g))))
        out.append({"case": (cs, ct, size, tuple(shp)), "x": torch.randn(shp, generator=g).abs(),
                    "xs": torch.randn((SPATIAL_BATCH,) + tuple(shp[1:]), generator=g),
                    "rs": torch.randn(SPATIAL_BATCH, ct, H, W, generator=g),
                    "positions": positions if min(H, W) >= 5 else [], "reach_at": (H // 2, W // 2)})
    return {"cases": out}


def _call(seed: int, fn, *args, **kwargs):
    """_p.call(fn, ...) from a fixed random state: initial weights and dropout masks repeat."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _p.call(fn, *args, **kwargs)


def _module_facts(reg) -> dict:
    from kdlab.models import BasicBlock, Teacher
    facts = {"module": isinstance(reg, nn.Module)}
    if not facts["module"]:
        return facts
    try:
        mods = list(reg.named_modules())
        facts["teacher_modules"] = [[n, type(m).__name__] for n, m in mods
                                    if isinstance(m, (Teacher, BasicBlock))][:5]
        facts["convs"] = [[n, list(m.kernel_size)] for n, m in mods if isinstance(m, nn.Conv2d)][:6]
        params = list(reg.parameters())
        facts["n_trainable"] = sum(p.numel() for p in params if p.requires_grad)
        facts["n_frozen"] = sum(p.numel() for p in params if not p.requires_grad)
    except Exception as e:  # noqa: BLE001 - a module whose parameters cannot be listed
        facts["error"] = f"{type(e).__name__}: {_p.text(e)}"
    return facts


def _grad_facts(out, params, x, weights) -> dict:
    """|d sum(out * weights) / d x| summed over the batch (Cs, Hs, Ws), and |grad| of each parameter."""
    try:
        gs = torch.autograd.grad((out * weights).sum(), params + [x], allow_unused=True,
                                 retain_graph=True)
    except Exception as e:  # noqa: BLE001 - an output cut off from autograd
        return {"error": f"{type(e).__name__}: {_p.text(e)}"}
    return {"x": _p.tensor(gs[-1].abs().sum(0)) if gs[-1] is not None else None,
            "params": [float(g.abs().sum()) if g is not None else None for g in gs[:-1]]}


def _outcome(out: dict) -> dict:
    """A recorded call without its returned values (the probe keeps only what it measured)."""
    return {**out, "value": {k: v for k, v in out.get("value", {}).items() if k != "values"}}


def _probe_case(cls, c) -> dict:
    """Build the regressor of one shape pair and record its facts (see regressor_probe)."""
    cs, ct, size, _ = c["case"]
    d = {}
    d["build"], reg = _call(0, cls, cs, ct, hint_size=size)
    d.update(_module_facts(reg))
    if not d["module"] or "error" in d:
        return d
    d["forward"] = _call(1, reg, c["x"].clone())[0]
    _p.call(reg.eval)  # the layout in eval mode: batch norm's statistics do not mix positions
    xs = c["xs"].clone().requires_grad_(True)
    out, y = _call(1, reg, xs)
    d["spatial_forward"] = _outcome(out)
    if not (torch.is_tensor(y) and tuple(y.shape) == tuple(c["rs"].shape)):
        return d
    params = [p for p in reg.parameters() if p.requires_grad]
    i, j = c["reach_at"]
    at = torch.zeros_like(c["rs"])
    at[:, :, i, j] = c["rs"][:, :, i, j]  # what one output position depends on
    d["grads"], d["reach"] = (_grad_facts(y, params, xs, w) for w in (c["rs"], at))
    d["moves"], base = [], _call(1, reg, c["xs"].clone())[1]
    for p, q in c["positions"]:  # where the output changes when one input position does
        xp = c["xs"].clone()
        xp[:, :, p, q] += BUMP
        out, moved = _call(1, reg, xp)
        d["moves"].append({"call": _outcome(out)})
        if torch.is_tensor(base) and torch.is_tensor(moved) and moved.shape == base.shape:
            d["moves"][-1]["change"] = _p.tensor((moved.detach().double() - base.detach().double())
                                                 .abs().sum((0, 1)))  # (H, W)
    return d


def regressor_probe(cls, inp) -> dict:
    """Build the student's class for every shape pair, call each instance, record the facts.

    Per pair: the build and forward calls, module facts (teacher modules, convolutions,
    trainable and frozen parameters), on a batch of SPATIAL_BATCH maps the gradient of the
    output w.r.t. the map (Cs, Hs, Ws) and the parameters, that of the output position
    reach_at (Cs, Hs, Ws), and the (H, W) change of the output for each bumped position. It
    stops after the first pair that already fails; then whether two regressors share parameters.
    """
    kind = {"module_instance": isinstance(cls, nn.Module),
            "module_class": isinstance(cls, type) and issubclass(cls, nn.Module),
            "repr": _p.text(_p._repr(cls), 200)}
    data = {"kind": kind, "cases": []}
    if not kind["module_class"]:
        return data
    for c in inp["cases"]:
        data["cases"].append(_probe_case(cls, c))
        if "moves" not in data["cases"][-1]:
            return data
    cs, ct, size, _ = inp["cases"][0]["case"]  # two regressors of the lab's pair
    a, b = (_call(0, cls, cs, ct, hint_size=size)[1] for _ in range(2))
    if isinstance(a, nn.Module) and isinstance(b, nn.Module):
        ptrs = {p.data_ptr() for p in a.parameters()}
        data["shared"] = [n for n, p in b.named_parameters() if p.data_ptr() in ptrs][:3]
    return data


def _mistake(check, name: str, **fields) -> None:
    """Fail with the mistake `name` of the check's mistakes table, its fields filled in."""
    m = check.mistake(name)
    fail(check.title, m.what.format(**fields), m.hint.format(**fields))


def _span(word: str, a: int, b: int) -> str:
    """Rows or columns [a, b) for a message: 'rows 4-5', or 'row 4' for one."""
    return f"{word} {a}" if b - a == 1 else f"{word}s {a}-{b - 1}"


def _layout_verdict(check, c, k, d: dict, where: str) -> None:
    """Fail if the output ignores an input channel or region, does not follow the layout of
    the input, or sees no neighbourhood of the student's map."""
    cs, _, _, (_, _, hs, ws) = c["case"]
    gx = recorded(d["grads"]["x"]).double()  # (Cs, Hs, Ws)
    total = float(gx.sum())
    dead = [ch for ch, g in enumerate(gx.sum((1, 2)).tolist()) if not g > 1e-9 * total]
    if dead:
        _mistake(check, "channels", where=where, cs=cs, s="s" if len(dead) > 1 else "",
                 dead=", ".join(map(str, dead[:6])) + (" ..." if len(dead) > 6 else ""))
    spatial = gx.sum(0)
    missed = [(rows, cols) for rows in k["rows"] for cols in k["cols"]
              if not spatial[rows[0]:rows[1], cols[0]:cols[1]].sum() > 1e-9 * total]
    if missed:
        rows, cols = missed[-1]
        _mistake(check, "crop", where=where, hs=hs, ws=ws, n=len(missed), total=len(k["rows"]) * len(k["cols"]),
                 rows=_span("row", *rows), cols=_span("column", *cols))
    H, W = len(k["rows"]), len(k["cols"])
    for (p, q), (ci, cj), m in paired(c["positions"], k["centres"], d["moves"]):
        raised(check.title, m["call"])
        unchanged(check.title, m["call"], ["student map"])
        if "change" not in m:
            fail(check.title, f"{where} returned {type_name(m['call']['value'])} of another "
                              "shape when called again on a slightly changed map",
                 "return the same kind of tensor, of the same shape, for every input")
        change = recorded(m["change"]).double()  # (H, W)
        tot = float(change.sum())
        at = f"position ({p}, {q}) of the student's {hs}x{ws} map"
        if not 0 < tot < float("inf"):
            fail(check.title, f"changing the {at} does not change the output of {where}",
                 "every position of the student's map must reach the output: convolve and "
                 "pool the whole map, do not crop or drop positions")
        head = (f"the output of {where} does not follow the layout of the input: changing the "
                f"{at} should move the {H}x{W} output near ({ci:.1f}, {cj:.1f})")
        if float(change.std() / change.mean()) < 0.05:
            _mistake(check, "summary", head=head, hint=_LAYOUT_HINT)
        R = max(2.0, 0.25 * min(H, W))
        ii, jj = torch.arange(H, dtype=torch.float64)[:, None], torch.arange(W, dtype=torch.float64)
        share = float(change[((ii - ci).abs() <= R) & ((jj - cj).abs() <= R)].sum()) / tot
        if share < MIN_LOCAL:
            _mistake(check, "displaced", head=head, hint=_LAYOUT_HINT, share=share, R=R)
    i, j = c["reach_at"]
    (r0, r1), (c0, c1) = k["rows"][i], k["cols"][j]
    reach = recorded(d["reach"]["x"]).double().sum(0)  # (Hs, Ws): what output (i, j) depends on
    own = torch.zeros_like(reach, dtype=torch.bool)
    own[r0:r1, c0:c1] = True
    if not own.all() and reach.sum() > 0 and not reach[~own].sum() > 1e-6 * reach.sum():
        ones = [n or "the module" for n, ks in d["convs"] if max(ks) == 1]
        _mistake(check, "no_neighbourhood", where=where, i=i, j=j, rows=_span("row", r0, r1),
                 cols=_span("column", c0, c1), hs=hs, ws=ws,
                 convs=f" (its convolutions are 1x1: {', '.join(ones)})"
                 if ones and len(ones) == len(d["convs"]) else "")


def _case_verdict(check, c, k, d, where: str) -> None:
    """Fail unless the regressor of one shape pair is a trainable module of its own that maps
    the student's map to the key's shape, with gradients and the input's layout."""
    title = check.title
    in_shape = c["case"][3]
    r = d["build"].get("raised")
    if r and r["type"] == "TypeError":
        fail(title, f"{where} raised TypeError: {r['message']}",
             "keep the signature HintRegressor(student_channels, teacher_channels, hint_size=None)")
    raised(title, d["build"], where=where)
    if not d.get("module"):
        fail(title, f"{where} gave {type_name(d['build']['value'])}, not a torch.nn.Module",
             "define `class HintRegressor(nn.Module)` and call super().__init__() first")
    if "error" in d:
        fail(title, f"the parameters of {where} cannot be listed: {d['error']}",
             "call super().__init__() first and assign layers as attributes")
    if d["teacher_modules"]:
        name, typ = d["teacher_modules"][0]
        fail(title, f"{where} contains a module of the teacher ({name or 'itself'}: {typ})",
             "the regressor is a new, small layer of the student (e.g. one nn.Conv2d); the "
             "teacher stays frozen and outside it")
    if not d["n_trainable"]:
        fail(title, f"{where} has no trainable parameters ({d['n_frozen']} frozen ones)",
             "the regressor must learn the mapping: use a layer such as nn.Conv2d(student_channels, "
             "teacher_channels, 3, padding=1), and do not set requires_grad=False or register the "
             "weights as buffers")
    out = result(title, d["forward"], f"{where}(x)", shapes=str(tuple(in_shape)))
    unchanged(title, d["forward"], ["student map"])
    if tuple(out.shape) != tuple(k["shape"]):
        fail(title, f"{where} maps a student map of shape {tuple(in_shape)} to {tuple(out.shape)}, "
                    f"expected {tuple(k['shape'])}",
             "the channels come from the conv layer; the spatial size must match the teacher's "
             "hint: pool the result to hint_size (F.adaptive_avg_pool2d) or use a strided "
             "convolution, and leave the size alone when hint_size is None")
    if not torch.isfinite(out).all():
        fail(title, f"{where} returned nan or inf: {short(out)}", "look for a division by zero")
    raised(title, d["spatial_forward"])
    unchanged(title, d["spatial_forward"], ["student map"])
    sv = d["spatial_forward"]["value"]
    if sv.get("kind") != "tensor" or tuple(sv.get("shape", ())) != tuple(k["batch_shape"]):
        fail(title, f"{where} maps a batch of {SPATIAL_BATCH} student maps of shape "
                    f"{tuple(c['xs'].shape)} to {tuple(sv.get('shape', ())) or type_name(sv)}, "
                    f"expected {tuple(k['batch_shape'])}",
             "treat every example of the batch alike: the output's first dimension is the batch "
             "size N, whatever N is")
    grads = d["grads"]
    if "error" in grads or grads["x"] is None or not recorded(grads["x"]).abs().sum() > 0:
        fail(title, f"the output of {where} does not depend on its input",
             "apply the layers to x in forward and do not detach it")
    if all(g is None or not g > 0 for g in grads["params"]):
        fail(title, f"no gradient reaches the parameters of {where}",
             "use the trainable layers in forward (not only in __init__), without torch.no_grad()")
    _layout_verdict(check, c, k, d, where)


def regressor_verdict(check, data, inp, key) -> str:
    """Check the class HintRegressor(student_channels, teacher_channels, hint_size=None).

    An instance maps a student map (N, Cs, Hs, Ws) to (N, Ct, *hint_size) (or (N, Ct, Hs, Ws)
    when hint_size is None) with trainable parameters of its own; the output depends on every
    input channel and region, a local change of the input moves the output at the corresponding
    place, and each output position sees a neighbourhood of the student's map (3x3 conv).
    """
    kind = data["kind"]
    if kind.get("module_instance"):
        fail(check.title, "got an instance of a module; expected the class itself",
             "pass the class: kd.checks.check_hint_regressor(HintRegressor)")
    if not kind.get("module_class"):
        fail(check.title, f"expected a subclass of torch.nn.Module, got {kind.get('repr', '?')}",
             "define `class HintRegressor(nn.Module)` with __init__ and forward")
    recorded = data["cases"]
    for n, (c, k) in enumerate(paired(inp["cases"], key["cases"])):
        if not isinstance(recorded, list) or len(recorded) <= n:  # it stops only after a failing pair
            fail(check.title, f"the check's probe returned incomplete data (shape pair {n + 1} of "
                              f"{len(inp['cases'])})", "run the check cell as it is in the lab")
        cs, ct, size, _ = c["case"]
        _case_verdict(check, c, k, recorded[n], f"HintRegressor({cs}, {ct}, hint_size={size})")
    if not isinstance(data.get("shared"), list):
        fail(check.title, "two HintRegressor instances of the lab's shape pair could not be built "
                          "and compared", "make HintRegressor(...) return an nn.Module every time")
    if data["shared"]:
        fail(check.title, f"two HintRegressor instances share the parameters {data['shared']}: "
                          "the regressor reuses a module created outside it (for example a layer "
                          "of the teacher)",
             "create fresh layers inside __init__; training the regressor must never change the "
             "teacher, and each student needs its own regressor")
    cs, ct = inp["cases"][0]["case"][:2]
    return (f"output shapes right for {len(inp['cases'])} shape pairs, the output follows the "
            f"input's layout, uses every channel and sees a neighbourhood of each position, "
            f"{recorded[0]['n_trainable']} trainable parameters of its own for {cs} -> {ct} channels")


check_hint_regressor = Check("hint_regressor", regressor_inputs, regressor_probe,
                                regressor_verdict, REGRESSOR_MISTAKES)

# ------------------------------------------------------------------ hint_loss

HINT_MISTAKES = [
    Mistake("unregressed", "the loss compares the student's features with the teacher's "
                           "directly: the regressor is not applied",
            "compare regressor(student_features) with teacher_features; without the regressor "
            "the shapes generally differ and the student would have to copy the teacher's channels"),
    Mistake("reversed", "the regressor is applied to the teacher's features and compared with "
                        "the student's: wrong direction",
            "the regressor maps the STUDENT's map to the teacher's shape: "
            "F.mse_loss(regressor(student_features), teacher_features.detach())"),
    Mistake("sum", "the squared errors are summed instead of averaged (reduction='sum'), so the "
                   "loss grows with the batch and the map size",
            "average over every element: F.mse_loss's default reduction='mean'"),
    Mistake("sum_per_example", "the squared errors are summed over channels and positions "
                               "(averaged only over the batch), so the loss grows with the size "
                               "of the map",
            "average over every element: F.mse_loss(regressed, target) with its default reduction"),
    Mistake("half", "the loss is half the mean squared error",
            "this lab uses the plain mean squared error, F.mse_loss, without the factor 1/2"),
    Mistake("norm", "the loss is the Euclidean norm of the difference (a square root), not the "
                    "mean squared error",
            "square the differences and average: F.mse_loss(regressor(student_features), "
            "teacher_features)"),
]
_CMP_HINT = ("hint_loss = F.mse_loss(regressor(student_features), teacher_features.detach()), "
             "the mean over every element")


def _conv_spec(g, cin: int, cout: int, stride: int) -> dict:
    return {"weight": torch.randn(cout, cin, 3, 3, generator=g) / (3 * cin ** 0.5),
            "bias": torch.randn(cout, generator=g) * 0.1, "stride": stride}


def fixed_regressor(spec: dict) -> nn.Conv2d:
    """The hint-loss check's regressor: a 3x3 conv (padding 1) with the weights of `spec`.

    spec: {"weight": (Ct, Cs, 3, 3), "bias": (Ct,), "stride": 1 or 2}. Returns a fresh
    nn.Conv2d mapping (N, Cs, H, W) to (N, Ct, H, W) (stride 1) or (N, Ct, H/2, W/2) (stride 2).
    """
    w = spec["weight"]
    conv = nn.Conv2d(w.shape[1], w.shape[0], 3, stride=int(spec["stride"]), padding=1)
    with torch.no_grad():
        conv.weight.copy_(w)
        conv.bias.copy_(spec["bias"])
    return conv


def hint_inputs(seed=None, batch=None, channels=None) -> dict:
    """Inputs of the hint-loss check: case A with equal shapes, case B as in the lab.

    seed None: the notebook's fixed shapes: A student/teacher (3, 4, 5, 5); B student
    (2, 6, 8, 8), teacher (2, 10, 4, 4). An int: fresh numbers of the same kinds (A: equal
    shapes, so the un-regressed and reversed mistakes run and can be named; B: other
    channels and half the size). params: batch = N of both cases; channels = (Cs, Ct) of B.
    Returns {"cases": [(what, student (N, Cs, Hs, Ws), teacher (N, Ct, H, W), regressor spec
    (see ``fixed_regressor``: stride 1 for A, 2 for B)), ...]}.
    """
    g = check_hint_loss.rng(seed)
    if seed is None:
        na, ca, ha, nb, cs, ct, hb = 3, 4, 5, 2, 6, 10, 4
    else:
        r = _draws(g)
        na, ca, ha, nb, hb, cs = r(2, 4), r(3, 6), r(4, 6), r(2, 3), r(3, 5), r(3, 8)
        ct = cs + r(2, 6)
    if batch is not None:
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        na = nb = int(batch)
    if channels is not None:
        cs, ct = (int(c) for c in channels)
        if cs < 1 or ct < 1:
            raise ValueError(f"channels must be two whole numbers >= 1, got {channels}")
    a = (torch.randn(na, ca, ha, ha, generator=g), torch.randn(na, ca, ha, ha, generator=g).relu())
    b = (torch.randn(nb, cs, 2 * hb, 2 * hb, generator=g),
         torch.randn(nb, ct, hb, hb, generator=g).relu())
    return {"cases": [(f"student and teacher maps {tuple(a[0].shape)}", *a, _conv_spec(g, ca, ca, 1)),
                      (f"a student map {tuple(b[0].shape)} regressed to the teacher's "
                       f"{tuple(b[1].shape)}", *b, _conv_spec(g, cs, ct, 2))]}


def hint_probe(fn, inp) -> dict:
    """Call fn(student, teacher, regressor) on fresh leaves; record value, gradients, changes."""
    cases = []
    for _, s, t, spec in inp["cases"]:
        s = s.clone().requires_grad_(True)
        t = t.clone().requires_grad_(True)  # the teacher must not receive a gradient
        reg = fixed_regressor(spec)
        params = list(reg.parameters())
        before = [_p.snapshot(p) for p in params]
        out, loss = _p.call(fn, s, t, reg)
        d = {"call": out, "regressor_changed": sorted({w for p, snap in zip(params, before)
                                                      for w in _p.changes(snap, p)})}
        if torch.is_tensor(loss) and loss.dim() == 0 and loss.requires_grad and not out["raised"]:
            d["grads"] = _p.grads(loss, [s, t] + params)
        cases.append(d)
    return {"cases": cases}


def _nonzero(g: dict) -> bool:
    return g.get("kind") == "tensor" and bool(recorded(g).abs().sum() > 0)


HINT = ScalarLoss(("student features", "teacher features"),
                  "reduce with the mean over every element (F.mse_loss's default)",
                  no_gradient="the loss does not depend on the student's features (no gradient "
                              "flows back)")


def hint_verdict(check, data, inp, key) -> str:
    """Check ``fn(student_features, teacher_features, regressor)`` = the hint loss.

    student_features (N, Cs, Hs, Ws), teacher_features (N, Ct, H, W), regressor: a module
    mapping the first to the shape of the second. Returns: a scalar tensor, the mean over every
    element of (regressor(student_features) - teacher_features)^2, with no gradient into the
    teacher's features and no change to the regressor.
    """
    title = check.title
    for (what, s, t, _), k, d in paired(inp["cases"], key["cases"], data["cases"]):
        got, _, _ = HINT.outcome(check, d["call"], f"for {what}", grads=False)
        if d["regressor_changed"]:
            fail(title, f"your function changed the regressor's parameters "
                        f"({', '.join(d['regressor_changed'])})",
                 "only compute the loss: no optimizer step, no in-place change, no backward() "
                 "inside hint_loss (the training loop does that)")
        if not close(got, k["expected"], rtol=1e-4, atol=1e-6):
            HINT.named(check, got, k["expected"], k["mistakes"], what, rtol=1e-4, atol=1e-6)
            fail(title, f"wrong value for {what}: got {got.item():.6g}, expected "
                        f"{k['expected'].item():.6g}", _CMP_HINT)
        grads = d.get("grads")
        if not isinstance(grads, list) or len(grads) != 4:
            fail(title, "the check's probe returned incomplete data (gradients)",
                 "run the check cell as it is in the lab")
        gs, gt, *gp = grads
        HINT.no_teacher_gradient(check, recorded(gt) if gt.get("kind") == "tensor" else None,
                                 "a gradient flows into the teacher's features: the teacher is "
                                 "not detached", "the hint is a fixed target: use "
                                 "teacher_features.detach() (otherwise a live teacher would be "
                                 "trained towards the student)")
        if not _nonzero(gs):
            fail(title, "no gradient reaches the student's features",
                 "do not detach student_features; the hint must train the student's lower layers")
        if not any(_nonzero(p) for p in gp):
            fail(title, "no gradient reaches the regressor's parameters",
                 "call the regressor on the student's features inside the loss, without "
                 "torch.no_grad()")
        got_g, want_g = recorded(gs).double(), k["grad"]
        if not close(got_g, want_g, rtol=1e-3, atol=1e-7):
            diff = ((got_g - want_g).abs().max().item() if got_g.shape == want_g.shape
                    else float("nan"))
            fail(title, f"the value is right but the gradient with respect to the student's "
                        f"features is not (max abs difference {diff:.3g}): part of the loss is "
                        "computed outside autograd",
                 "compute the whole loss with torch operations on regressor(student_features)")
    (_, sb, tb, _), kb = inp["cases"][-1], key["cases"][-1]
    return (f"mean squared error of regressed student vs detached teacher map "
            f"({kb['expected'].item():.4f} on a {tuple(sb.shape)} -> {tuple(tb.shape)} example)")


check_hint_loss = Check("hint_loss", hint_inputs, hint_probe, hint_verdict, HINT_MISTAKES)
