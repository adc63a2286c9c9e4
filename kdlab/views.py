"""Jittered views of the digits: on-the-fly shifts, and fixed views with cached teacher logits.

Consistent teaching (Beyer et al. 2022, "Knowledge distillation: a good teacher is patient and
consistent") shows the student and the teacher the *same* augmented view of an image. A live
teacher on fresh views costs one teacher forward pass per student step. The cheap version
here: the teacher sees K fixed jittered views of every training image once; the student then
trains on a random one of the K views of each image per epoch, with the logits of that view.
The views are shifts of up to 2 px, or elastic distortions and shifts (``elastic``).

    views = kd.views.jittered(x, k=8, pixels=2, seed=0)        # (8, N, 1, 28, 28)
    logits = kd.views.teacher_logits(teacher, views)           # (8 * N, 10): row k * N + i
    batches = kd.views.ViewBatches(views, y, batch_size=128, seed=0)  # yields x, y, k * N + i
    kd.train.fit(student, batches, kd_loss, epochs, teacher_logits=logits)

``ViewBatches`` yields the flat row ``k * N + i`` of the view it picked as the batch's index,
so ``kd.train.fit`` looks up the logits of exactly the view the student saw, with its one loop.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import data, evaluation


def _black() -> float:
    """The normalised value of a black pixel (the background after a shift)."""
    return -data.MEAN / data.STD


def _sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """x (N, 1, H, W) read bilinearly at grid (N, H, W, 2) in [-1, 1] coordinates; black outside."""
    return F.grid_sample(x - _black(), grid, align_corners=False) + _black()


def shift(x: torch.Tensor, pixels: float, generator: torch.Generator,
          integer: bool = False) -> torch.Tensor:
    """Translate each image by its own random offset of up to `pixels` in x and y.

    Inputs:
    - x: (N, 1, H, W) normalised images
    - pixels: the largest offset; >= 0
    - generator: the torch.Generator that draws the offsets (seeded: repeatable)
    - integer: whole-pixel offsets in -pixels..pixels (exact, no blur); otherwise uniform
      real offsets with bilinear interpolation
    Returns: (N, 1, H, W), the background filled with black.
    """
    if pixels < 0:
        raise ValueError(f"pixels must be >= 0, got {pixels}")
    n, _, h, w = x.shape
    if integer:
        p = int(pixels)
        offs = torch.randint(-p, p + 1, (n, 2), generator=generator)
        return shift_by(x, offs)
    offs = (torch.rand(n, 2, generator=generator) * 2 - 1) * pixels
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = offs[:, 0] * 2 / w
    theta[:, 1, 2] = offs[:, 1] * 2 / h
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    return _sample(x, grid)


def elastic(x: torch.Tensor, generator: torch.Generator, alpha: float = 34.0, sigma: float = 4.0,
            pixels: float = 2) -> torch.Tensor:
    """Distort each image by its own random elastic field, then shift it (Simard et al. 2003).

    The field: a displacement uniform in [-1, 1] px per pixel and axis, smoothed by a Gaussian
    of width `sigma` px and scaled by `alpha`; each image is also shifted by a real offset of up
    to `pixels` in x and y. Sampled bilinearly, the border black.

    Inputs:
    - x: (N, 1, H, W) normalised images
    - generator: the torch.Generator of the fields and offsets (seeded: repeatable)
    - alpha > 0: the field's scale; sigma > 0: its smoothness; pixels >= 0: the largest shift
    Returns: (N, 1, H, W).
    """
    if not (alpha > 0 and sigma > 0 and pixels >= 0):
        raise ValueError(f"elastic needs alpha > 0, sigma > 0 and pixels >= 0, "
                         f"got alpha={alpha}, sigma={sigma}, pixels={pixels}")
    n, _, h, w = x.shape
    field = torch.rand(n * 2, 1, h, w, generator=generator) * 2 - 1
    r = int(2 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    field = F.conv2d(field, g.view(1, 1, 1, -1), padding=(0, r))
    field = F.conv2d(field, g.view(1, 1, -1, 1), padding=(r, 0)).view(n, 2, h, w) * alpha
    offs = (torch.rand(n, 2, generator=generator) * 2 - 1) * pixels
    field = field + offs.view(n, 2, 1, 1)
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                                torch.arange(w, dtype=torch.float32), indexing="ij")
    src_x, src_y = cols + field[:, 0], rows + field[:, 1]  # pixel (r, c) reads from here, as in shift
    grid = torch.stack([(2 * src_x + 1) / w - 1, (2 * src_y + 1) / h - 1], dim=-1)
    return _sample(x, grid)


def shift_by(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Translate image i by the whole-pixel offset offsets[i] = (dx, dy); dx > 0 moves right.

    Inputs: x (N, 1, H, W) normalised; offsets (N, 2) integers. Returns (N, 1, H, W), the
    uncovered border black.
    """
    if offsets.shape != (len(x), 2):
        raise ValueError(f"offsets must have shape ({len(x)}, 2) for x {tuple(x.shape)}, "
                         f"got {tuple(offsets.shape)}")
    if len(x) == 0:
        return x.clone()
    h, w = x.shape[-2:]
    p = int(offsets.abs().max())
    padded = F.pad(x, (p, p, p, p), value=_black())
    out = torch.empty_like(x)
    pairs, which = torch.unique(offsets, dim=0, return_inverse=True)
    for j, (dx, dy) in enumerate(pairs.tolist()):
        m = which == j
        out[m] = padded[m, :, p - dy:p - dy + h, p - dx:p - dx + w]
    return out


class Jittered:
    """Batches with a fresh random shift of every image at every step (seeded).

    Inputs: batches yielding (x, y, idx) such as ``kd.data.Batches``; pixels: the largest
    offset; seed; integer: whole-pixel shifts (see ``shift``). Yields (shifted x, y, idx).
    """

    def __init__(self, batches, pixels: float, seed: int, integer: bool = False):
        self.batches, self.pixels, self.integer = batches, pixels, integer
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for x, y, idx in self.batches:
            yield shift(x, self.pixels, self.g, self.integer), y, idx


def jittered(x: torch.Tensor, k: int, pixels: float = 2, seed: int = 0,
             integer: bool = False, chunk: int = 10_000, elastic_field=None) -> torch.Tensor:
    """K fixed jittered views of every image.

    Inputs: x (N, 1, H, W) normalised; k >= 1 views; pixels: the largest shift; seed: the
    views depend only on (x, k, pixels, seed, integer, chunk, elastic_field), and the first j
    views of k are the views of j; integer: whole-pixel shifts instead of bilinear ones (see
    ``shift``); chunk: images shifted at a time; elastic_field: None (shifts only) or
    (alpha, sigma), an elastic distortion before the shift (see ``elastic``).
    Returns: (k, N, 1, H, W) float32; view v of image i is [v, i].
    """
    if k < 1:
        raise ValueError(f"k (views per image) must be >= 1, got {k}")
    if elastic_field is not None and integer:
        raise ValueError("elastic views are sampled bilinearly: use integer=False")
    out = torch.empty((k, *x.shape), dtype=x.dtype)
    for v in range(k):
        g = torch.Generator().manual_seed(seed * 1_000_003 + v)
        for s in range(0, len(x), chunk):
            part = x[s:s + chunk]
            out[v, s:s + chunk] = (shift(part, pixels, g, integer) if elastic_field is None else
                                   elastic(part, g, *elastic_field, pixels=pixels))
    return out


def teacher_logits(teacher: torch.nn.Module, views: torch.Tensor,
                   progress: bool = True) -> torch.Tensor:
    """The teacher's logits for every view, in the flat order ``ViewBatches`` indexes.

    Inputs: teacher; views (K, N, ...) from ``jittered``. Returns (K * N, C) float32, row
    v * N + i for view v of image i.
    """
    if views.dim() < 3:
        raise ValueError(f"views must be (K, N, ...) from kd.views.jittered, got {tuple(views.shape)}")
    flat = views.reshape(-1, *views.shape[2:])
    return evaluation.predict_logits(teacher, flat, progress=progress).float()


class ViewBatches:
    """Mini-batches over K views per image: each epoch, every image once, in a random view.

    Inputs:
    - views: (K, N, ...) from ``jittered``; y: (N,) labels
    - batch_size; seed: the order and the view choice depend only on (seed, epoch)
    Yields: x (B, ...) the chosen views, y (B,), idx (B,) the flat rows v * N + i of the
    chosen views, which index ``teacher_logits(teacher, views)``.
    """

    def __init__(self, views: torch.Tensor, y: torch.Tensor, batch_size: int = 128, seed: int = 0):
        if views.dim() < 3 or views.shape[1] != len(y):
            raise ValueError(f"views must be (K, N, ...) with N = len(y) = {len(y)}, "
                             f"got {tuple(views.shape)}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.k, self.n = views.shape[0], views.shape[1]
        self.flat = views.reshape(self.k * self.n, *views.shape[2:])
        self.y, self.batch_size, self.seed, self.epoch = y, batch_size, seed, 0

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g)
        view = torch.randint(self.k, (self.n,), generator=g)
        self.epoch += 1
        for start in range(0, self.n, self.batch_size):
            i = order[start:start + self.batch_size]
            idx = view[i] * self.n + i
            yield self.flat[idx], self.y[i], idx
