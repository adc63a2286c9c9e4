"""Pruning and quantization for Lab 05: masks, fake-quantized fine-tuning, true sizes, latency.

- ``global_prune(model, sparsity, mask_fn)``: one magnitude threshold across all conv and
  linear weights, applied with ``torch.nn.utils.prune`` so the masks stay applied while the
  network is fine-tuned (the optimizer updates ``weight_orig``; ``weight = weight_orig * mask``).
- ``quantize_weights(model, bits, quant_fn)``: fake-quantized (simulated) weights in every
  forward pass, for quantization-aware fine-tuning; composes with ``global_prune``.
- ``pack`` / ``unpack`` (``PackedTensor``): real storage of an already fake-quantized weight as
  b-bit integers packed into bytes plus one float scale per output channel, dense or CSR-style
  sparse, to measure the true size; ``storage_bytes(model, ...)`` sums it over a model.
- ``sparse_model`` and ``latency``: run the pruned weights with a sparse (CSR) kernel and time
  a forward pass per image.

``mask_fn`` and ``quant_fn`` are the student's own ``prune_mask`` and ``fake_quantize``: the
course ships no reference version of the lab's exercises. Nothing here uses
``torch.ao.quantization`` (deprecated).
"""
from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

PRUNABLE = (nn.Linear, nn.Conv2d)


# ------------------------------------------------------------------ pruning with torch.nn.utils.prune

def prunable(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs whose ``weight`` is pruned and quantized: conv and linear layers."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE)]


def _weight(m: nn.Module) -> torch.Tensor:
    """The weight a module computes with now (``weight_orig * mask`` if pruned)."""
    return m.weight_orig * m.weight_mask if hasattr(m, "weight_mask") else m.weight


def global_prune(model: nn.Module, sparsity: float, mask_fn) -> dict:
    """Prune the smallest-|w| fraction of ALL conv and linear weights together (one threshold).

    Inputs:
    - model: changed in place: each layer gets ``weight_orig`` (the trained parameter) and a
      buffer ``weight_mask``; ``torch.nn.utils.prune`` recomputes weight = weight_orig * mask
      before every forward, so pruned weights stay zero while the model is fine-tuned
    - sparsity: fraction of the weights to remove, in [0, 1] (biases are kept)
    - mask_fn: your ``prune_mask(weight, sparsity) -> bool mask`` (the lab's exercise), applied
      to all weights concatenated into one 1-D tensor
    Returns: {layer name: fraction of its weights removed}.
    """
    if not callable(mask_fn):
        raise TypeError(f"mask_fn must be your prune_mask(weight, sparsity), got {mask_fn!r}")
    layers = prunable(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to prune")
    with torch.no_grad():
        flat = torch.cat([_weight(m).detach().reshape(-1) for _, m in layers])
        mask = mask_fn(flat, sparsity)
    if not torch.is_tensor(mask) or mask.dtype != torch.bool or mask.shape != flat.shape:
        raise ValueError(f"mask_fn must return a bool tensor of shape {tuple(flat.shape)}, got "
                         f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
    out, i = {}, 0
    for name, m in layers:
        n = m.weight.numel() if not hasattr(m, "weight_orig") else m.weight_orig.numel()
        part = mask[i:i + n].reshape(_weight(m).shape).to(_weight(m).device)
        i += n
        prune.custom_from_mask(m, "weight", part)  # combines with an earlier mask (AND)
        out[name] = 1 - m.weight_mask.float().mean().item()
        _refresh(m)
    return out


def sparsity(model: nn.Module) -> float:
    """Fraction of zeros among all conv and linear weights (as the model computes with them)."""
    ws = [effective_weight(m).detach() for _, m in prunable(model)]
    return sum(int((w == 0).sum()) for w in ws) / max(1, sum(w.numel() for w in ws))


# ------------------------------------------------------------------ fake-quantized fine-tuning

class _FakeQuantHook:
    """Forward pre-hook: replace module.weight by quant_fn(module.weight, bits) before forward."""

    def __init__(self, bits: int, quant_fn):
        self.bits, self.quant_fn = bits, quant_fn

    def __call__(self, module, inputs):
        module.weight = self.quant_fn(module.weight, self.bits)


def _refresh(m: nn.Module) -> None:
    """Recompute a layer's weight through its pre-hooks without autograd (so it can be deep-copied)."""
    with torch.no_grad():
        for hook in list(m._forward_pre_hooks.values()):
            hook(m, None)


def _fq_hook(m: nn.Module):
    """The fake-quantization hook of a layer, or None."""
    return next((h for h in m._forward_pre_hooks.values() if isinstance(h, _FakeQuantHook)), None)


def quantize_weights(model: nn.Module, bits: int, quant_fn) -> nn.Module:
    """Simulate b-bit weights in every forward pass (quantization-aware training, QAT).

    Inputs:
    - model: changed in place and returned. Each conv/linear layer computes with
      quant_fn(weight, bits), where weight is the float weight (times its pruning mask if
      ``global_prune`` ran first). The optimizer keeps updating the float weights: with a
      straight-through quant_fn the gradient reaches them as if no rounding happened
    - bits: bit width, e.g. 8, 4, 3, 2
    - quant_fn: your ``fake_quantize(w, bits) -> fake-quantized w`` (the lab's exercise)
    Returns: the model. Activations stay float (weight-only quantization).
    """
    if not callable(quant_fn):
        raise TypeError(f"quant_fn must be your fake_quantize(w, bits), got {quant_fn!r}")
    for _, m in prunable(model):
        if _fq_hook(m) is not None:
            raise ValueError("quantize_weights was already applied to this model; build a new one")
        if not hasattr(m, "weight_orig"):
            prune.identity(m, "weight")  # weight becomes weight_orig * 1, recomputed per forward
        m.register_forward_pre_hook(_FakeQuantHook(bits, quant_fn))
        _refresh(m)
    return model


def effective_weight(m: nn.Module) -> torch.Tensor:
    """The weight a conv/linear layer computes with: masked and fake-quantized if set up so."""
    w = _weight(m)
    hook = _fq_hook(m)
    return hook.quant_fn(w, hook.bits) if hook is not None else w


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of a (pruned, fake-quantized) model, also right after a training step.

    After a forward pass with autograd, a pruned layer's ``weight`` is a computed tensor, which
    ``copy.deepcopy`` refuses; it is recomputed without autograd first.
    """
    import copy

    for _, m in prunable(model):
        if hasattr(m, "weight_orig"):
            _refresh(m)
    return copy.deepcopy(model)


def finalize(model: nn.Module) -> nn.Module:
    """Bake masks and fake quantization into plain ``weight`` parameters (no hooks left).

    Input: a model after ``global_prune`` and/or ``quantize_weights`` (changed in place).
    Returns: the model, computing exactly what it computed before, as an ordinary module.
    """
    for _, m in prunable(model):
        if hasattr(m, "weight_orig"):
            with torch.no_grad():
                w = effective_weight(m).detach().clone()
            for k, h in list(m._forward_pre_hooks.items()):
                if isinstance(h, _FakeQuantHook):
                    del m._forward_pre_hooks[k]
            prune.remove(m, "weight")
            with torch.no_grad():
                m.weight.copy_(w)
    return model


# ------------------------------------------------------------------ real storage

@dataclass
class PackedTensor:
    """A weight stored as b-bit integers packed into bytes, one scale per output channel.

    Fields: shape (C_out, ...); bits (2..8, or 32 for float32 values); data: uint8 bytes of the
    packed integers (or float32 values); scales: (C_out,) float32 (empty for float32);
    sparse: if True only the nonzero entries are stored, CSR-style over the (C_out, K) matrix:
    indptr (C_out + 1,) and indices (nnz,) in the smallest unsigned dtype that holds them.
    """
    shape: tuple
    bits: int
    data: np.ndarray
    scales: np.ndarray
    sparse: bool = False
    indptr: np.ndarray | None = None
    indices: np.ndarray | None = None
    nnz: int = 0

    @property
    def nbytes(self) -> int:
        """The bytes this tensor takes: packed values, scales and (if sparse) CSR indices."""
        n = self.data.nbytes + self.scales.nbytes
        if self.sparse:
            n += self.indptr.nbytes + self.indices.nbytes
        return int(n)


def _uint_for(n: int):
    """The smallest numpy unsigned dtype holding 0..n."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if n <= np.iinfo(dt).max:
            return dt
    return np.uint64


def _pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack integers in [0, 2**bits) into a uint8 stream, `bits` bits each: (n,) -> (ceil(n*bits/8),)."""
    v = values.astype(np.uint8)
    planes = np.unpackbits(v[:, None], axis=1, bitorder="little")[:, :bits]  # (n, bits)
    return np.packbits(planes.reshape(-1), bitorder="little")


def _unpack_bits(data: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of ``_pack_bits``: (bytes,) uint8 -> (n,) uint8 integers."""
    planes = np.unpackbits(data, bitorder="little")[:n * bits].reshape(n, bits)
    full = np.zeros((n, 8), dtype=np.uint8)
    full[:, :bits] = planes
    return np.packbits(full, axis=1, bitorder="little").reshape(n)


def _grid(mat: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The integers q (int8) and row scales (float32) of a (C_out, K) weight that is already
    on the symmetric b-bit grid: mat = q * scale, scale = max|w| of the row / qmax."""
    if not (isinstance(bits, (int, np.integer)) and 2 <= bits <= 8):
        raise ValueError(f"bits must be 2..8 (packed integers) or 32 (float32), got {bits!r}")
    qmax = 2 ** (bits - 1) - 1
    amax = mat.abs().amax(1, keepdim=True) if mat.shape[1] else torch.zeros(mat.shape[0], 1)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    q = torch.round(mat / scale)
    off = (mat / scale - q).abs().amax(1) if mat.shape[1] else torch.zeros(mat.shape[0])
    if bool((off > 1e-3).any()):  # float32 rounding of a fake-quantized weight stays below 1e-4
        r = int((off > 1e-3).nonzero()[0])
        raise ValueError(f"pack(w, bits={bits}) stores a weight already fake-quantized to {bits} "
                         f"bits, but w is not on that grid: in channel {r}, w / (max|w| / {qmax}) "
                         f"is {off[r].item():.3g} away from an integer. Call your "
                         f"fake_quantize(w, {bits}) first and pack its result")
    return q.to(torch.int8), scale.reshape(-1)


def pack(w: torch.Tensor, bits: int = 32, sparse: bool = False) -> PackedTensor:
    """Store a weight for real: b-bit integers (offset to unsigned) packed into bytes.

    Inputs: w (C_out, ...) float weight; bits: 32 (float32 values of any weight) or 2..8, then
    w must already be fake-quantized to `bits` bits (symmetric per output channel, e.g. by your
    ``fake_quantize``): pack infers each channel's scale max|w| / (2**(bits-1) - 1), recovers
    the integers and raises ValueError if w is not on that grid; sparse: store only nonzeros
    (CSR over the (C_out, K) matrix, K = numel / C_out).
    Returns: a ``PackedTensor``; ``unpack`` gives the weight back exactly (as float32).
    """
    w = w.detach().cpu().float()
    shape = tuple(w.shape)
    mat = w.reshape(shape[0], -1)
    if bits == 32:
        vals, scales = mat, np.zeros(0, dtype=np.float32)
    else:
        vals, s = _grid(mat, bits)
        scales = s.numpy()
    offset = 0 if bits == 32 else 2 ** (bits - 1) - 1

    def encode(x: torch.Tensor) -> np.ndarray:
        if bits == 32:
            return x.numpy().astype(np.float32)
        return _pack_bits((x.to(torch.int16) + offset).numpy(), bits)

    if not sparse:
        return PackedTensor(shape, bits, encode(vals.reshape(-1)), scales)
    keep = (vals != 0) if bits != 32 else (mat != 0)
    rows, cols = keep.nonzero(as_tuple=True)
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.add.at(indptr, rows.numpy() + 1, 1)
    indptr = np.cumsum(indptr).astype(_uint_for(int(keep.sum())))
    indices = cols.numpy().astype(_uint_for(max(0, mat.shape[1] - 1)))
    return PackedTensor(shape, bits, encode(vals[keep]), scales, True, indptr, indices,
                        int(keep.sum()))


def unpack(p: PackedTensor) -> torch.Tensor:
    """The float32 weight a ``PackedTensor`` stores: (C_out, ...)."""
    rows = p.shape[0]
    k = int(np.prod(p.shape[1:])) if len(p.shape) > 1 else 1
    n = p.nnz if p.sparse else rows * k
    if p.bits == 32:
        vals = torch.from_numpy(p.data.astype(np.float32).copy())
    else:
        ints = _unpack_bits(p.data, p.bits, n).astype(np.int16) - (2 ** (p.bits - 1) - 1)
        vals = torch.from_numpy(ints.astype(np.float32))
    if p.sparse:
        mat = torch.zeros(rows, k)
        counts = np.diff(p.indptr.astype(np.int64))
        r = torch.from_numpy(np.repeat(np.arange(rows), counts))
        mat[r, torch.from_numpy(p.indices.astype(np.int64))] = vals
    else:
        mat = vals.reshape(rows, k)
    if p.bits != 32:
        mat = mat * torch.from_numpy(p.scales).reshape(-1, 1)
    return mat.reshape(p.shape)


def storage_bytes(model: nn.Module, bits: int = 32, sparse: bool = False) -> dict:
    """The true size of a model stored with ``pack``: conv/linear weights packed, rest float32.

    Inputs: model (pruned and fake-quantized or not); bits: 2..8 or 32; sparse: CSR-style
    storage of the nonzeros. The bytes depend only on the shapes, the bits and (sparse) which
    weights are nonzero: a model fake-quantized to `bits` gets the size of its packed weights
    exactly; a float model gets the size of its current nonzero weights stored in `bits` bits.
    Returns: {"weights": bytes of packed weights, "other": bytes of biases and buffers
    (float32, e.g. batch-norm statistics), "total": their sum, "nnz": nonzero weights}.
    """
    # sign(w) is on every grid and has w's nonzeros: its packed size is that of w quantized
    packed = {name: pack(torch.sign(effective_weight(m).detach()), bits, sparse)
              for name, m in prunable(model)}
    weight_ids = set()
    for _, m in prunable(model):
        for t in (getattr(m, "weight_orig", None), getattr(m, "weight", None),
                  getattr(m, "weight_mask", None)):
            if torch.is_tensor(t):
                weight_ids.add(id(t))
    other = sum(t.numel() * 4 for t in list(model.parameters()) + list(model.buffers())
                if id(t) not in weight_ids and t.is_floating_point())
    w = sum(p.nbytes for p in packed.values())
    nnz = sum(int((effective_weight(m) != 0).sum()) for _, m in prunable(model))
    return {"weights": w, "other": int(other), "total": int(w + other), "nnz": nnz}


# ------------------------------------------------------------------ running sparse, timing

class SparseLinear(nn.Module):
    """A linear layer that multiplies with a CSR sparse weight (``torch.sparse.mm``).

    Built from a dense (out, in) weight with zeros. Input (N, in) -> output (N, out).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support", category=UserWarning)
            self.weight = weight.detach().to_sparse_csr()
        self.bias = None if bias is None else bias.detach().clone()

    def forward(self, x):
        y = torch.sparse.mm(self.weight, x.t()).t()
        return y if self.bias is None else y + self.bias


def sparse_model(model: nn.Module) -> nn.Module:
    """A copy of `model` with every nn.Linear replaced by a ``SparseLinear`` of its weight.

    Conv layers stay dense. Input/outputs as the model's; meant for timing (no training).
    """
    m = finalize(copy_model(model)).eval()
    for name, child in list(m.named_modules()):
        for cname, c in list(child.named_children()):
            if isinstance(c, nn.Linear):
                setattr(child, cname, SparseLinear(c.weight, c.bias))
    return m


@torch.no_grad()
def latency(model: nn.Module, x: torch.Tensor, repeats: int = 50, warmup: int = 5) -> dict:
    """Wall-clock time of model(x) on the CPU: median and spread over `repeats` runs.

    Inputs: model; x (B, ...) one batch (B = 1 for the latency of a single image).
    Returns: {"median_ms": per forward pass, "per_image_ms": median / B, "iqr_ms": the
    interquartile range of the runs, "repeats": int, "threads": torch threads}.
    """
    was = model.training
    model.eval()
    try:
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    med = statistics.median(times)
    return {"median_ms": med, "per_image_ms": med / len(x), "iqr_ms": q[2] - q[0],
            "repeats": repeats, "threads": torch.get_num_threads()}


def mean_std(xs) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of a list of numbers (std 0 for one)."""
    xs = [float(v) for v in xs]
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)
