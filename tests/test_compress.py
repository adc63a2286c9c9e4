"""kdlab.compress: global pruning, fake-quantized fine-tuning, storage, timing.

The lab's exercises (prune_mask, fake_quantize) are the student's: the known-right versions
here are the answer keys' references (kdlab.grading.keys.lab05), passed in as a student's are.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdlab import compress as C
from kdlab import models
from kdlab.grading.keys import lab05 as K


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))


def _train(model, steps: int) -> torch.Tensor:
    """A few SGD steps of cross-entropy on a fixed random batch; return its inputs (32, 12)
    after one more forward pass (which applies the pruning masks again)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(32, 12), torch.randint(0, 5, (32,))
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model(x)
    return x


def test_the_exercises_are_not_in_compress():
    for name in ("prune_mask", "fake_quantize", "quantize_int"):
        assert not hasattr(C, name)


def test_prune_mask_counts_and_errors():
    w = torch.randn(7, 9)
    for s in (0.0, 0.31, 0.5, 0.99, 1.0):
        m = K.prune_mask(w, s)
        assert m.dtype == torch.bool and m.shape == w.shape
        assert int((~m).sum()) == round(s * w.numel())
        if 0 < s < 1:  # every kept |w| is larger than every removed one
            assert w.abs()[m].min() > w.abs()[~m].max()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        K.prune_mask(w, 1.2)


def test_prune_mask_uses_the_count_of_torch_prune():
    w = torch.randn(5, 7)  # 35 entries: 0.3 * 35 = 10.5, Python's round gives 10
    ref = nn.Linear(7, 5)
    ref.weight.data.copy_(w)
    torch.nn.utils.prune.l1_unstructured(ref, "weight", 0.3)
    assert torch.equal(K.prune_mask(w, 0.3), ref.weight_mask.bool())


def test_fake_quantize_levels_and_straight_through_gradient():
    w = torch.randn(4, 6) * torch.tensor([[0.01], [1.0], [10.0], [0.0]])
    for b in (8, 4, 2):
        q = K.fake_quantize(w, b)
        qmax = 2 ** (b - 1) - 1
        scale = w.abs().amax(1, keepdim=True) / qmax
        levels = q[:3] / scale[:3]
        assert torch.allclose(levels, levels.round(), atol=1e-4)
        assert levels.abs().max() <= qmax + 1e-4
        assert torch.equal(q[3], torch.zeros(6))
    leaf = w.clone().requires_grad_()
    g = torch.randn_like(w)
    (K.fake_quantize(leaf, 3) * g).sum().backward()
    assert torch.allclose(leaf.grad, g)
    for bad in (1, 0, 2.5, True):
        with pytest.raises(ValueError, match="bits"):
            K.fake_quantize(w, bad)


def test_global_prune_one_threshold_and_masks_survive_training():
    model = mlp()
    per_layer = C.global_prune(model, 0.75, K.prune_mask)
    assert set(per_layer) == {"1", "3"}
    assert C.sparsity(model) == pytest.approx(0.75, abs=1 / 272)
    kept = torch.cat([(m.weight_orig * m.weight_mask)[m.weight_mask.bool()].abs() for m in (model[1], model[3])])
    removed = torch.cat([m.weight_orig[~m.weight_mask.bool()].abs() for m in (model[1], model[3])])
    assert kept.min() >= removed.max()  # one threshold across layers
    x = _train(model, steps=3)
    for m in (model[1], model[3]):
        assert bool((m.weight[~m.weight_mask.bool()] == 0).all())
    twin = C.copy_model(model)  # also right after a training step
    assert torch.equal(twin(x), model(x))


def test_global_prune_uses_the_given_mask_fn_and_checks_its_result():
    calls = []

    def mask_fn(w, s):
        calls.append((tuple(w.shape), s))
        return K.prune_mask(w, s)

    model = mlp()
    C.global_prune(model, 0.5, mask_fn)
    assert calls == [((12 * 16 + 16 * 5,), 0.5)]
    with pytest.raises(ValueError, match="bool tensor"):
        C.global_prune(mlp(), 0.5, lambda w, s: K.prune_mask(w, s).float())
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        C.global_prune(nn.ReLU(), 0.5, K.prune_mask)
    with pytest.raises(TypeError):  # the student's mask function is required
        C.global_prune(mlp(), 0.5)
    with pytest.raises(TypeError, match="your prune_mask"):
        C.global_prune(mlp(), 0.5, None)


def test_apply_masks_per_layer_masks_survive_training_and_are_checked():
    model = mlp()
    masks = {n: K.prune_mask(m.weight, s) for (n, m), s in zip(C.prunable(model), (0.25, 0.8))}
    per_layer = C.apply_masks(model, masks)
    assert per_layer == pytest.approx({"1": 0.25, "3": 0.8})
    for (n, m) in C.prunable(model):
        assert torch.equal(m.weight_mask.bool(), masks[n])
    x = _train(model, steps=2)
    assert bool((model[3].weight[~masks["3"]] == 0).all())
    only = mlp()  # a layer left out of the dict is not pruned
    C.apply_masks(only, {"3": masks["3"]})
    assert not hasattr(only[1], "weight_mask") and hasattr(only[3], "weight_mask")
    with pytest.raises(ValueError, match="no conv or linear layer named"):
        C.apply_masks(mlp(), {"fc9": masks["1"]})
    with pytest.raises(ValueError, match="bool tensor of shape"):
        C.apply_masks(mlp(), {"1": masks["1"].float()})
    with pytest.raises(ValueError, match="bool tensor of shape"):
        C.apply_masks(mlp(), {"1": masks["3"]})


def test_global_prune_equals_apply_masks_of_its_slices():
    a, b = mlp(), mlp()
    C.global_prune(a, 0.6, K.prune_mask)
    flat = K.prune_mask(torch.cat([m.weight.reshape(-1) for _, m in C.prunable(b)]), 0.6)
    C.apply_masks(b, {"1": flat[:192].reshape(16, 12), "3": flat[192:].reshape(5, 16)})
    x = torch.randn(4, 12)
    assert torch.equal(a(x), b(x))


def test_quantize_weights_composes_with_pruning_and_finalize_keeps_outputs():
    model = mlp()
    C.global_prune(model, 0.5, K.prune_mask)
    C.quantize_weights(model, 3, K.fake_quantize)
    w = C.effective_weight(model[1])
    assert bool((w[~model[1].weight_mask.bool()] == 0).all())  # zeros stay zero
    assert torch.unique(w[0]).numel() <= 7
    x = torch.randn(8, 12)
    before = model(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    F.cross_entropy(model(x), torch.zeros(8, dtype=torch.long)).backward()
    assert model[1].weight_orig.grad.abs().sum() > 0  # the gradient passes the rounding (STE)
    opt.step()
    after = model(x)
    assert not torch.equal(before, after)
    plain = C.finalize(C.copy_model(model))
    assert not any(hasattr(m, "weight_orig") for m in plain.modules())
    assert torch.allclose(plain(x), after, atol=1e-6)
    with pytest.raises(ValueError, match="already"):
        C.quantize_weights(model, 4, K.fake_quantize)
    with pytest.raises(TypeError):  # the student's quantizer is required
        C.quantize_weights(mlp(), 4)
    with pytest.raises(TypeError, match="your fake_quantize"):
        C.quantize_weights(mlp(), 4, None)


@pytest.mark.parametrize("bits", [32, 8, 4, 3, 2])
@pytest.mark.parametrize("sparse", [False, True])
def test_pack_round_trip_and_size(bits, sparse):
    w = torch.randn(10, 3, 3, 3)
    w[w.abs() < 0.8] = 0
    w[4] = 0
    target = w if bits == 32 else K.fake_quantize(w, bits)
    p = C.pack(target, bits, sparse)
    assert torch.allclose(C.unpack(p), target, atol=1e-6)
    n, rows = w.numel(), w.shape[0]
    if not sparse:
        assert p.nbytes == (n * 4 if bits == 32 else -(-n * bits // 8) + rows * 4)
    else:
        nnz = int((target != 0).sum())
        value_bytes = nnz * 4 if bits == 32 else -(-nnz * bits // 8)
        assert p.nbytes == value_bytes + (0 if bits == 32 else rows * 4) + (rows + 1) + nnz  # uint8 indptr, indices
    with pytest.raises(ValueError, match="bits must be 2..8"):
        C.pack(K.fake_quantize(w, 8), 9)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_pack_stores_a_fake_quantized_weight_exactly_and_is_no_quantizer(bits):
    torch.manual_seed(bits)
    scales = torch.logspace(-2, 1, 6, dtype=torch.float64).reshape(-1, 1, 1, 1)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64) * scales
    w[2] = 0
    wq = K.fake_quantize(w, bits)
    q, scale = K.quantize_int(w, bits)
    p = C.pack(wq, bits)
    assert torch.allclose(torch.from_numpy(p.scales), scale, rtol=1e-6)  # the quantizer's scales
    assert torch.allclose(C.unpack(p).double(), wq, rtol=1e-6, atol=1e-12)
    assert torch.equal(C.unpack(C.pack(C.unpack(p), bits)), C.unpack(p))  # packing again changes nothing
    # a straight-through result (w + (w_q - w).detach()) in float32 is a few ulps off the grid
    leaf = w.float().requires_grad_()
    assert torch.allclose(C.unpack(C.pack(K.fake_quantize(leaf, bits), bits)), wq.float(), atol=1e-6)
    with pytest.raises(ValueError, match=rf"not on that grid.*your fake_quantize\(w, {bits}\) first"):
        C.pack(w, bits)  # a float weight: pack does not quantize it
    with pytest.raises(ValueError, match="not on that grid"):
        C.pack(K.fake_quantize(w, bits + 1 if bits < 8 else 7), bits)  # another grid


def test_storage_bytes_of_a_model():
    model = models.HintonMLP(hidden=20)
    dense = C.storage_bytes(model)
    assert dense["total"] == sum(p.numel() for p in model.parameters()) * 4
    dense4 = C.storage_bytes(model, bits=4)  # a float model: the size of its weights in 4 bits
    n = 784 * 20 + 20 * 20 + 200
    packed_levels = sum(-(-n_w * 4 // 8) for n_w in (784 * 20, 20 * 20, 200))
    assert dense4["weights"] == packed_levels + (20 + 20 + 10) * 4  # levels and one scale per row
    C.global_prune(model, 0.9, K.prune_mask)
    C.quantize_weights(model, 4, K.fake_quantize)
    small = C.storage_bytes(model, bits=4, sparse=True)
    packed = sum(C.pack(C.effective_weight(m), 4, sparse=True).nbytes for _, m in C.prunable(model))
    assert small["weights"] == packed  # a model quantized to 4 bits: exactly its packed weights
    assert small["nnz"] == pytest.approx(0.1 * n, abs=3)
    assert small["other"] == (20 + 20 + 10) * 4  # biases stay float32
    assert small["total"] < dense["total"] / 5


def test_sparse_model_matches_and_latency_reports():
    model = models.HintonMLP(hidden=32)
    C.global_prune(model, 0.9, K.prune_mask)
    x = torch.randn(5, 1, 28, 28)
    sp = C.sparse_model(model)
    assert any(isinstance(m, C.SparseLinear) for m in sp.modules())
    assert torch.allclose(sp(x), model(x), atol=1e-5)
    lat = C.latency(sp, x[:1], repeats=3, warmup=1)
    assert lat["median_ms"] > 0 and lat["per_image_ms"] == lat["median_ms"]
    batch = C.latency(model, x, repeats=3)  # one call: two calls' timings differ under load
    assert batch["per_image_ms"] == pytest.approx(batch["median_ms"] / 5)


def test_mean_std():
    assert C.mean_std([1, 2, 3]) == (2.0, 1.0)
    assert C.mean_std([4]) == (4.0, 0.0)
