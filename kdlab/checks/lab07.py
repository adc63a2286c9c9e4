"""Checks of Lab 07 (distilling a language model): token-level KD, the KD trainer, on-policy batches.

``check_token_kd_loss(fn)`` calls ``fn(student_logits, teacher_logits, attention_mask, T,
beta)`` on a padded batch of sequences at several (T, beta) settings and on confident logits,
and compares the value and the gradient with respect to the student's logits with the answer
key's; the teacher must get no gradient; T <= 0 and beta outside [0, 1] must raise
ValueError. Common mistakes are recognised by their gradient.

``check_distill_trainer(cls)`` builds the student's ``transformers.Trainer`` subclass on two
tiny GPT-2 models (the teacher handed over in train mode), calls its ``compute_loss`` on a
padded batch, and compares the loss and its gradient with respect to every weight of the
student with the recipe's; it records the teacher's mode and grad mode during its forward
pass and checks that the teacher is left untouched.

``check_on_policy_batch(fn)`` calls ``fn(student, batch, lam, prompt_len, seed)`` on a tiny
GPT-2 student (dropout on, handed over in train mode) and a right-padded batch at several
(lam, seed) settings, and compares the returned batch with the recipe's: which rows are
continued, the prompts kept, the sampled tokens (exactly, against the answer key's samples of
the same seed), the masks and labels; it records the student's mode and grad mode in each of
its forward passes and whether torch's global random state was restored.
"""
from __future__ import annotations

import tempfile

import torch

from . import _probe as _p
from ._common import (Mistake, close, cmp, expects_value_error, fail, name_mistake, paired,
                      raised, recorded, rejects, type_name)
from ._registry import RNG_LOCK, Check  # RNG_LOCK: see _registry
from ._scalar import SCALAR_LOSS_PARTS, ScalarLoss


def _gpt2() -> tuple:
    """(GPT2Config, GPT2LMHeadModel), imported under RNG_LOCK (see ``_registry``)."""
    with RNG_LOCK:
        from transformers import GPT2Config, GPT2LMHeadModel
    return GPT2Config, GPT2LMHeadModel


# ------------------------------------------------------------------ token_kd_loss

TOKEN_FORMULA = (
    "p = softmax(teacher_logits / T), q = softmax(student_logits / T) at each position; "
    "beta = 0: KL(p || q); beta = 1: KL(q || p); else beta * KL(p || m) + (1 - beta) * KL(q || m) "
    "with m = beta * p + (1 - beta) * q (a mixture of probabilities); the logits at position t "
    "predict token t + 1, so they count where attention_mask[:, t + 1] == 1 (the last position "
    "never); loss = T**2 * (sum over those positions) / (their number)")
_ALIGN = ("the logits at position t predict token t + 1: keep positions 0 .. L-2 and weight "
          "them with attention_mask[:, 1:], as Hugging Face's own loss does with labels shifted "
          "by one")
TOKEN_MISTAKES = [
    Mistake("padding_counted", "padding positions are counted: you averaged over every "
                               "position, masked or not",
            "weight each position's divergence with the mask and divide by the number of kept "
            "positions: (div * mask).sum() / mask.sum()"),
    Mistake("mask_of_inputs", "the mask is misaligned by one position: you weighted position t "
                              "with attention_mask[:, t] (the input token) instead of "
                              "attention_mask[:, t + 1] (the token it predicts)", _ALIGN),
    Mistake("last_position_kept", "the last position is counted: its logits predict a token "
                                  "that is not in the batch", _ALIGN),
    Mistake("teacher_shifted", "the teacher's logits are shifted by one position against the "
                               "student's: you compared student position t with teacher "
                               "position t + 1",
            "both models saw the same tokens: compare the two distributions at the same "
            "position t (slice both logits alike, e.g. [:, :-1])"),
    Mistake("mean_over_vocab", "each position's divergence is averaged over the vocabulary "
                               "instead of summed (V times too small)",
            "a KL divergence sums over the vocabulary: .sum(-1), then average over the kept "
            "positions"),
    Mistake("per_sequence_mean", "you averaged within each sequence, then over the sequences: "
                                 "a short sequence's tokens weigh more than a long one's",
            "average over all kept tokens of the batch at once: (div * mask).sum() / mask.sum()"),
    Mistake("divided_by_batch", "the sum over kept tokens is divided by the number of sequences "
                                "(reduction='batchmean' on (N, L, V) logits), not by the number "
                                "of kept tokens",
            "divide by mask.sum(), the number of positions that count"),
    Mistake("direction_swapped", "the KL direction is swapped: beta = 0 gave KL(student || "
                                 "teacher) and beta = 1 KL(teacher || student)",
            "beta = 0 is the forward KL(p_teacher || q_student) (mode-covering, as in Hinton's "
            "KD); beta = 1 the reverse KL(q_student || p_teacher) (mode-seeking, as in MiniLLM). "
            "F.kl_div(input, target) computes KL(target || input)"),
    Mistake("mixture_weights_swapped", "in the interpolated JSD the mixture's weights are "
                                       "swapped: m = (1 - beta) * p_teacher + beta * q_student",
            "m = beta * p_teacher + (1 - beta) * q_student, the weights of the two KL terms "
            "(GKD's generalised JSD)"),
    Mistake("mixture_of_logs", "the mixture m is taken in log space: log m = beta * log p + "
                               "(1 - beta) * log q is not the log of a mixture of probabilities",
            "mix probabilities, in logs: torch.logsumexp(torch.stack([log_p + math.log(beta), "
            "log_q + math.log(1 - beta)]), dim=0)"),
    Mistake("mixture_of_logs_renormalised", "the mixture m is a softmax of mixed log-"
                                            "probabilities (a geometric mixture), not a mixture "
                                            "of probabilities",
            "m = beta * p + (1 - beta) * q; in logs: torch.logsumexp(torch.stack([log_p + "
            "math.log(beta), log_q + math.log(1 - beta)]), dim=0)"),
    Mistake("jsd_weights_swapped", "the two KL terms of the JSD have swapped weights: "
                                   "(1 - beta) * KL(p || m) + beta * KL(q || m)",
            "GKD's JSD(beta) = beta * KL(p_teacher || m) + (1 - beta) * KL(q_student || m)"),
    Mistake("no_T2", "the loss is missing its factor T**2",
            "softening by T shrinks the gradients by 1/T**2; multiply by T**2 as in Hinton's KD"),
    Mistake("teacher_not_softened", "the teacher's logits are not divided by T",
            "p = softmax(teacher_logits / T)"),
    Mistake("student_not_softened", "the student's logits are not divided by T",
            "q = softmax(student_logits / T)"),
]
TOKEN_SETTINGS = ((2.0, 0.0), (1.0, 1.0), (1.5, 0.3), (1.0, 0.5), (4.0, 0.9), (1.0, 0.0))
N_DIAGNOSTIC = 3  # the first settings tell every named mistake apart
TOKEN_BAD = ((0.0, 0.0), (-1.0, 0.5), (1.0, -0.1), (1.0, 1.5))  # (T, beta) that must raise
GRAD_TOL = dict(atol=1e-6, rtol=1e-3)
VALUE_TOL = dict(atol=1e-5, rtol=1e-4)


def token_kd_inputs(seed=None, N: int = 3, L: int = 7, V: int = 11) -> dict:
    """Inputs of the token_kd_loss check: logits (N, L, V) of a student and a teacher, a mask.

    seed None: the notebook's fixed inputs; an int: fresh values of the same kinds. N >= 3
    sequences of L >= 5 positions over V >= 3 symbols. The mask (N, L) has a full row, a
    right-padded row and a left-padded one (then random lengths). Also: the (T, beta)
    settings, confident logits (a softmax that underflows to 0), bad (T, beta) pairs.
    """
    N, L, V, g = int(N), int(L), int(V), check_token_kd_loss.rng(seed)
    if N < 3 or L < 5 or V < 3:
        raise ValueError(f"check_token_kd_loss needs N >= 3, L >= 5 and V >= 3, got N={N}, "
                         f"L={L}, V={V}")
    s, t = torch.randn(N, L, V, generator=g) * 1.5, torch.randn(N, L, V, generator=g) * 2.5
    mask = torch.ones(N, L, dtype=torch.long)
    for i in range(1, N):
        n = int(torch.randint(2, L - 1, (1,), generator=g))  # padding of 2 .. L - 2 positions
        if i % 2:
            mask[i, L - n:] = 0  # right padding
        else:
            mask[i, :n] = 0      # left padding
    top = torch.randint(0, V, (N, L), generator=g)
    t_conf = torch.zeros(N, L, V).scatter_(2, top[..., None], 150.0)  # softmax underflows to 0
    s_conf = torch.zeros(N, L, V).scatter_(2, torch.roll(top, 1, 1)[..., None], 120.0) + s
    return {"s": s, "t": t, "mask": mask, "settings": [tuple(x) for x in TOKEN_SETTINGS],
            "n_diagnostic": N_DIAGNOSTIC, "s_conf": s_conf, "t_conf": t_conf,
            "conf_settings": [(1.0, 0.0), (1.0, 1.0), (1.0, 0.5)],
            "bad": [tuple(x) for x in TOKEN_BAD]}


def token_kd_probe(fn, inp) -> dict:
    """Call fn at every (T, beta) setting, on confident logits and with bad (T, beta)."""
    s, t, m = inp["s"], inp["t"], inp["mask"]
    return {"settings": [_p.call_with_grads(fn, s, t, m, T, b) for T, b in inp["settings"]],
            "confident": [_p.call_with_grads(fn, inp["s_conf"], inp["t_conf"], m, T, b)
                          for T, b in inp["conf_settings"]],
            "bad": [_p.call(fn, s.clone(), t.clone(), m.clone(), T, b)[0] for T, b in inp["bad"]]}


TOKEN_KD = ScalarLoss(("student_logits", "teacher_logits", "attention_mask"),
                      "sum over the vocabulary, then average over the positions the mask keeps",
                      tensor_hint="use torch operations all the way and return the tensor (not "
                                  ".item())")


def _kd_outcome(check, out: dict, s: torch.Tensor) -> tuple:
    """(value, grad wrt student, grad wrt teacher or None) of a recorded call, or fail."""
    shape = tuple(s.shape)
    return TOKEN_KD.outcome(check, out, f"for logits of shape {shape}",
                            f"{shape}, {shape}, {shape[:2]}")


def token_kd_verdict(check, data, inp, key) -> str:
    """Check token_kd_loss(student_logits (N, L, V), teacher_logits (N, L, V), attention_mask
    (N, L), T, beta) -> () at several (T, beta), on confident logits and with bad arguments.
    Parts (``SCALAR_LOSS_PARTS``): gradient, teacher, value, stable, errors."""
    title, s = check.title, inp["s"]
    rows = [(T, b, k, *_kd_outcome(check, out, s))
            for (T, b), k, out in paired(inp["settings"], key["settings"], data["settings"])]
    with check.part("teacher"):
        for T, b, k, _, _, gt in rows:
            TOKEN_KD.no_teacher_gradient(
                check, gt, f"teacher_logits received a gradient (at T={T:g}, beta={b:g}): the "
                           "teacher is a target, not a learner",
                "use teacher_logits.detach() (or compute its log-probabilities under "
                "torch.no_grad()); with beta > 0 the teacher's side is inside the mixture too")
    with check.part("gradient"):
        diag = torch.stack([gs for *_, gs, _ in rows[:inp["n_diagnostic"]]])
        TOKEN_KD.named(check, diag, key["diagnostic"], key["mistakes"], **GRAD_TOL)
        for T, b, k, val, gs, _ in rows:
            TOKEN_KD.gradient(check, gs, k["grad"], f"at T={T:g}, beta={b:g}: the gradient of your "
                              "loss with respect to student_logits", TOKEN_FORMULA, **GRAD_TOL)
    with check.part("value"):
        for T, b, k, val, gs, _ in rows:
            TOKEN_KD.value(check, val, [k["value"]] + ([k["ce"]] if "ce" in k else []),
                           f"the gradient is right but the loss value is not, at T={T:g}, "
                           f"beta={b:g}: got {val.item():.6g}, expected {k['value'].item():.6g}"
                           + (f" (or {k['ce'].item():.6g}, the cross-entropy form)" if "ce" in k
                              else ""), "remove any constant you added; the reverse KL and the "
                           "JSD have no cross-entropy form: compute the divergences themselves",
                           **VALUE_TOL)
    with check.part("stable"):
        for (T, b), k, out in paired(inp["conf_settings"], key["confident"], data["confident"]):
            val, gs, _ = _kd_outcome(check, out, inp["s_conf"])
            TOKEN_KD.confident(
                check, val, gs, (f"the loss or its gradient is nan/inf for a confident model (logits "
                                 f"differing by 150, T={T:g}, beta={b:g}): loss "
                                 f"{val.flatten()[:1].tolist()}: a probability underflowed to 0 and "
                                 "you took its log (0 * log 0 = nan)",
                                 "work with log-probabilities from F.log_softmax (never torch.log("
                                 "softmax)); F.kl_div(..., log_target=True) or p * (log_p - log_q) "
                                 "with exp(log_p) handles 0 * log 0; mix in log space with "
                                 "torch.logsumexp"))
            TOKEN_KD.gradient(check, gs, k, f"for a confident model (T={T:g}, beta={b:g}) the "
                              "gradient", "compute log-probabilities with F.log_softmax, not "
                              "log(softmax) or clamping", **GRAD_TOL)
    with check.part("errors"):
        for (T, b), out in paired(inp["bad"], data["bad"]):
            bad = "T" if not T > 0 else "beta"
            rejects(title, [T if bad == "T" else b], [out], bad, "T <= 0" if bad == "T" else
                    "not 0 <= beta <= 1", "T must be > 0" if bad == "T" else "beta must be in [0, 1]")
    return (f"value and gradient match GKD's divergence at {len(rows)} (T, beta) settings on "
            "a padded batch, confident logits stay finite, the teacher gets no gradient, bad "
            "T and beta are rejected")


check_token_kd_loss = Check("token_kd_loss", token_kd_inputs, token_kd_probe,
                            token_kd_verdict, TOKEN_MISTAKES, parts=SCALAR_LOSS_PARTS)


# ------------------------------------------------------------------ distill_trainer

TRAINER_FORMULA = ("loss = (1 - alpha) * (the model's own next-token loss, outputs.loss with the "
                   "batch's labels) + alpha * token_kd_loss(student_logits, teacher_logits, "
                   "attention_mask, T, beta), the teacher's logits computed in eval mode under "
                   "torch.no_grad()")
TRAINER_MISTAKES = [
    Mistake("alpha_swapped", "alpha weights the wrong term: alpha multiplies the next-token "
                             "loss and (1 - alpha) the distillation term",
            "(1 - alpha) * outputs.loss + alpha * token_kd_loss(...): alpha = 1 is pure "
            "distillation, as in Lab 03"),
    Mistake("labels_only", "your loss is the model's own next-token loss only: the teacher "
                           "plays no part", "add alpha * token_kd_loss(student_logits, "
                                            "teacher_logits, attention_mask, T, beta)"),
    Mistake("kd_only", "your loss is the distillation term only: the next-token loss on the "
                       "labels is missing", "add (1 - alpha) * outputs.loss"),
    Mistake("kd_args_swapped", "the distillation term gives the student no gradient: you "
                               "called token_kd_loss(teacher_logits, student_logits, ...), so "
                               "it detached the student's logits",
            "the student's logits come first: token_kd_loss(outputs.logits, teacher_logits, "
            "inputs['attention_mask'], self.T, self.beta)"),
    Mistake("mask_ignored", "the distillation term counts the padding: the batch's "
                            "attention_mask did not reach token_kd_loss",
            "pass inputs['attention_mask'] to token_kd_loss"),
    Mistake("T_ignored", "the distillation term is computed at T = 1, not at the trainer's T",
            "use self.T (set in __init__) in the call of token_kd_loss"),
    Mistake("beta_ignored", "the distillation term is the forward KL (beta = 0), not the "
                            "trainer's beta", "use self.beta in the call of token_kd_loss"),
    Mistake("lm_loss_unshifted", "your next-token loss compares the logits at position t with "
                                 "token t, not t + 1 (the labels are not shifted)",
            "let the model compute it: outputs = model(**inputs) with inputs['labels'] gives "
            "outputs.loss, shifted and with padding (-100) left out"),
    Mistake("lm_loss_padding", "your next-token loss counts the padding positions",
            "use the labels (-100 where padded): outputs = model(**inputs) gives outputs.loss "
            "without them"),
]
_TINY = {"student": dict(n_embd=16, n_layer=1, n_head=2), "teacher": dict(n_embd=24, n_layer=2,
                                                                         n_head=2)}
_TINY_V, _TINY_L = 13, 12
_SCALE = {"student": 4.0, "teacher": 30.0}  # embeddings (tied to the output): confident models


def trainer_models(inp) -> tuple:
    """Fresh (student, teacher) GPT-2 models with the inputs' weights, both in train mode."""
    GPT2Config, GPT2LMHeadModel = _gpt2()

    out = []
    for who in ("student", "teacher"):
        cfg = GPT2Config(vocab_size=_TINY_V, n_positions=_TINY_L, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
                         pad_token_id=None, **_TINY[who])
        with RNG_LOCK:
            model = GPT2LMHeadModel(cfg)
        model.load_state_dict(inp[who])
        out.append(model.train())
    return tuple(out)


def trainer_inputs(seed=None, N: int = 3) -> dict:
    """Inputs of the distill_trainer check: two tiny GPT-2 models' weights and a padded batch.

    seed None: the notebook's fixed inputs; an int: fresh weights and tokens. N >= 2 sequences
    of 12 tokens over 13 symbols; row 0 full, the others right-padded (labels -100 there).
    Also the trainer's (alpha, T, beta).
    """
    N, g = int(N), check_distill_trainer.rng(seed)
    if N < 2:
        raise ValueError(f"check_distill_trainer needs N >= 2 sequences, got N={N}")
    GPT2Config, GPT2LMHeadModel = _gpt2()

    weights = {}
    for who in ("student", "teacher"):
        with RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
            model = GPT2LMHeadModel(GPT2Config(vocab_size=_TINY_V, n_positions=_TINY_L,
                                               bos_token_id=None, eos_token_id=None,
                                               pad_token_id=None, **_TINY[who]))
        tied = ("wte.weight", "lm_head.weight")  # confident models: their outputs differ
        weights[who] = {k: (v * _SCALE[who] if k.endswith(tied) else v).detach().clone()
                        for k, v in model.state_dict().items()}
    ids = torch.randint(0, _TINY_V, (N, _TINY_L), generator=g)
    mask = torch.ones(N, _TINY_L, dtype=torch.long)
    for i in range(1, N):
        mask[i, int(torch.randint(4, _TINY_L - 2, (1,), generator=g)):] = 0
    labels = ids.masked_fill(mask == 0, -100)
    return {**weights, "input_ids": ids, "attention_mask": mask, "labels": labels,
            "alpha": 0.6, "T": 2.0, "beta": 0.3}


def _batch(inp) -> dict:
    return {k: inp[k].clone() for k in ("input_ids", "attention_mask", "labels")}


def trainer_probe(cls, inp) -> dict:
    """Build cls(model=student, args=..., teacher=teacher, alpha, T, beta) with the teacher in
    train mode; call compute_loss twice (return_outputs False, then True); record the loss, its
    gradients for the student's weights, the teacher's mode and grad mode during its forward
    passes, its weights and .grad afterwards."""
    from transformers import TrainingArguments

    student, teacher = trainer_models(inp)
    seen = {"teacher_modes": [], "teacher_grad_modes": []}

    def hook(module, args):
        seen["teacher_modes"].append(module.training)
        seen["teacher_grad_modes"].append(torch.is_grad_enabled())

    teacher.transformer.register_forward_pre_hook(hook)
    args = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="kdlab-trainer-"), report_to=[],
                             use_cpu=True, disable_tqdm=True, save_strategy="no",
                             logging_strategy="no", per_device_train_batch_size=len(inp["input_ids"]))
    built, trainer = _p.call(cls, model=student, args=args, teacher=teacher, alpha=inp["alpha"],
                             T=inp["T"], beta=inp["beta"])
    data = {"built": built}
    if trainer is None:
        return data
    params = [p for _, p in student.named_parameters()]
    teacher.train()  # as handed over, whatever the constructor did
    plain, loss = _p.call(getattr(trainer, "compute_loss", None), student, _batch(inp))
    if torch.is_tensor(loss) and loss.dim() == 0 and loss.requires_grad:
        plain["grads"] = _p.grads(loss, params)
    data.update({"loss": plain, **{k: list(v) for k, v in seen.items()}})
    pair, _ = _p.call(getattr(trainer, "compute_loss", None), student, _batch(inp),
                      return_outputs=True)
    data["pair"] = pair
    data["teacher"] = {k: _p.tensor(v) for k, v in teacher.state_dict().items()}
    data["teacher_grads"] = [n for n, p in teacher.named_parameters() if p.grad is not None
                             and bool(p.grad.abs().max() > 0)]
    data["names"] = [n for n, _ in student.named_parameters()]
    return data


def _flat_grads(title: str, out: dict, names) -> torch.Tensor:
    """The recorded gradients as one vector; fail if the loss has none for the student."""
    grads = out.get("grads")
    if not grads or any(g.get("kind") == "error" for g in grads):
        fail(title, "the loss does not depend on the student's weights (no gradient flows back)",
             "compute the student's outputs with gradients on: outputs = model(**inputs), not "
             "under torch.no_grad() and not detached")
    parts = [recorded(g).flatten() if g.get("kind") == "tensor" else None for g in grads]
    missing = [n for n, p in paired(names, parts) if p is None]
    if missing:
        fail(title, f"the student's {', '.join(missing[:3])} get no gradient from your loss",
             TRAINER_FORMULA)
    return torch.cat([p.to(torch.float64) for p in parts])


def trainer_verdict(check, data, inp, key) -> str:
    """Check a transformers.Trainer subclass cls(..., teacher=, alpha=, T=, beta=) whose
    compute_loss(model, inputs, return_outputs=False) mixes the model's next-token loss with
    token_kd_loss on the teacher's logits (teacher in eval mode, under torch.no_grad())."""
    title = check.title
    built = data["built"]
    if built.get("raised", {}) and built["raised"].get("type") == "TypeError":
        fail(title, f"building the trainer raised TypeError: {built['raised']['message']}",
             "keep the lab's __init__: DistillationTrainer(model=..., args=..., teacher=teacher, "
             "alpha=..., T=..., beta=...) stores them as self.teacher, self.alpha, self.T, "
             "self.beta and passes everything else to Trainer.__init__")
    raised(title, built)
    out = data["loss"]
    raised(title, out, where="compute_loss(model, inputs)")
    v = out["value"]
    if v.get("kind") != "tensor" or tuple(v.get("shape", [-1])) != ():
        shape = f" of shape {tuple(v['shape'])}" if v.get("kind") == "tensor" else ""
        fail(title, f"compute_loss(model, inputs) should return the loss, a scalar tensor; got "
                    f"{type_name(v)}{shape}",
             "return loss when return_outputs is False, (loss, outputs) when it is True")
    if not data["teacher_modes"]:
        fail(title, "compute_loss never ran the teacher", "teacher_logits = self.teacher("
             "input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask']).logits")
    if any(data["teacher_modes"]):
        fail(title, "the teacher ran in train mode: the check handed it over in train mode "
                    "and compute_loss did not call self.teacher.eval()",
             "call self.teacher.eval() before its forward pass: dropout and batch statistics "
             "(if the teacher has them) must not change its targets")
    if any(data["teacher_grad_modes"]):
        fail(title, "the teacher's forward pass ran with gradient tracking on: autograd kept "
                    "the whole teacher's graph for a backward pass that never comes",
             "with torch.no_grad(): teacher_logits = self.teacher(...).logits")
    if data["teacher_grads"]:
        fail(title, f"gradients reached the teacher ({', '.join(data['teacher_grads'][:3])})",
             "compute the teacher's logits under torch.no_grad()")
    for k, t in inp["teacher"].items():
        got = data["teacher"].get(k)
        if not isinstance(got, dict) or not close(recorded(got), t, atol=0, rtol=0):
            fail(title, f"the teacher's weights changed ({k})", "only the student learns")
    g = _flat_grads(title, out, data["names"])
    if not close(g, key["grad"], **TRAINER_TOL):
        name_mistake(check, g, key["mistakes"], **TRAINER_TOL)
        cmp(title, g, key["grad"], "the gradient of your loss with respect to the student's "
            "weights", hint=TRAINER_FORMULA, **TRAINER_TOL)
    val = recorded(v)
    if not close(val, key["loss"], **TRAINER_TOL):
        fail(title, f"the gradient is right but the loss value is not: got {val.item():.6g}, "
                    f"expected {key['loss'].item():.6g}", "remove any constant you added")
    pair = data["pair"]
    raised(title, pair, where="compute_loss(model, inputs, return_outputs=True)")
    pv = pair["value"]
    if pv.get("kind") not in ("tuple", "list") or len(pv.get("items", [])) != 2 \
            or pv["items"][0].get("kind") != "tensor":
        fail(title, f"compute_loss(model, inputs, return_outputs=True) returned {type_name(pv)}; "
                    "Trainer's evaluation expects (loss, outputs)",
             "end with: return (loss, outputs) if return_outputs else loss")
    return (f"the loss and its gradient for every weight of the student equal the recipe's "
            f"(alpha={inp['alpha']}, T={inp['T']}, beta={inp['beta']}, padded batch); the "
            "teacher ran in eval mode under no_grad and is unchanged")


TRAINER_TOL = dict(atol=1e-6, rtol=1e-3)
check_distill_trainer = Check("distill_trainer", trainer_inputs, trainer_probe,
                                 trainer_verdict, TRAINER_MISTAKES)


# ------------------------------------------------------------------ on_policy_batch

ON_POLICY_RECIPE = (
    "k = round(lam * N); the first k rows: their first prompt_len tokens, then student.generate"
    "(prompts, attention_mask=torch.ones_like(prompts), do_sample=True, top_k=0, "
    "max_new_tokens=L - prompt_len, pad_token_id=0) run in eval mode right after "
    "torch.manual_seed(seed) inside torch.random.fork_rng(devices=[]); attention_mask 1 on "
    "those rows; labels: the prompt's tokens, -100 on the generated ones; the other rows as "
    "given")
_EXACT_CALL = ("one call for the k on-policy rows: with torch.random.fork_rng(devices=[]): "
               "torch.manual_seed(seed); out = student.generate(prompts, attention_mask="
               "torch.ones_like(prompts), do_sample=True, top_k=0, max_new_tokens=L - prompt_len, "
               "pad_token_id=0)")
ON_POLICY_MISTAKES = [
    Mistake("greedy", "the continuations are the student's greedy (argmax) choices, not "
                      "samples: on-policy distillation learns from what the student would "
                      "actually write, a sample of its distribution",
            "pass do_sample=True (and top_k=0) to student.generate"),
    Mistake("top_k_default", "the continuations are sampled from the student's 50 likeliest "
                             "tokens only: generate() keeps its default top_k=50 unless told "
                             "otherwise",
            "pass top_k=0 to student.generate: sample from the whole distribution"),
    Mistake("all_rows_sampled", "you sampled continuations for all N rows and kept the first "
                                "k: the random draws are then spread over N rows, not the k "
                                "the recipe samples (and N - k continuations are wasted work)",
            "sample only the k on-policy rows: student.generate(input_ids[:k, :prompt_len], ...)"),
    Mistake("row_by_row", "you sampled one row per generate() call: the random draws are "
                          "consumed in another order than one call for the k rows",
            _EXACT_CALL),
]
_OP = {"V": 65, "L": 16, "P": 5, "dims": dict(n_embd=16, n_layer=1, n_head=2), "dropout": 0.2}
OP_KEYS = ("input_ids", "attention_mask", "labels")


def on_policy_model(inp):
    """A fresh tiny GPT-2 student with the inputs' weights (dropout on), in train mode."""
    GPT2Config, GPT2LMHeadModel = _gpt2()

    d = _OP["dropout"]
    cfg = GPT2Config(vocab_size=_OP["V"], n_positions=_OP["L"], resid_pdrop=d, embd_pdrop=d,
                     attn_pdrop=d, bos_token_id=None, eos_token_id=None, pad_token_id=None,
                     **_OP["dims"])
    with RNG_LOCK:
        model = GPT2LMHeadModel(cfg)
    model.load_state_dict(inp["student"])
    return model.train()


def on_policy_settings(N: int) -> tuple:
    """(lam_a, lam_b): lam_a * N = N - 1.3 and lam_b * N = 1.4, so that round, int, ceil and
    1 - lam give different numbers of on-policy rows over the two (for N >= 3)."""
    return (N - 1.3) / N, 1.4 / N


def on_policy_inputs(seed=None, N: int = 4) -> dict:
    """Inputs of the on_policy_batch check: a tiny GPT-2 student's weights and a padded batch.

    seed None: the notebook's fixed inputs; an int: fresh weights, tokens and seeds. N >= 3
    rows of 16 tokens over 65 symbols, row 0 full, the others right-padded (at least
    prompt_len + 2 real tokens each; labels -100 on padding); prompt_len 5. Calls: (lam, seed)
    pairs; the first two share their seed, the third has another; then lam 1 and lam 0; bad:
    lam outside [0, 1].
    """
    N, g = int(N), check_on_policy_batch.rng(seed)
    if not 3 <= N <= 12:
        raise ValueError(f"check_on_policy_batch needs 3 <= N <= 12 rows, got N={N}")
    GPT2Config, GPT2LMHeadModel = _gpt2()

    with RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        model = GPT2LMHeadModel(GPT2Config(vocab_size=_OP["V"], n_positions=_OP["L"],
                                           bos_token_id=None, eos_token_id=None,
                                           pad_token_id=None, **_OP["dims"]))
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    L, P = _OP["L"], _OP["P"]
    ids = torch.randint(0, _OP["V"], (N, L), generator=g)
    mask = torch.ones(N, L, dtype=torch.long)
    for i in range(1, N):
        mask[i, int(torch.randint(P + 2, L - 1, (1,), generator=g)):] = 0
    labels = ids.masked_fill(mask == 0, -100)
    seeds = [int(s) for s in torch.randint(0, 2**31 - 1, (5,), generator=g)]
    lam_a, lam_b = on_policy_settings(N)
    calls = [(lam_a, seeds[0]), (lam_a, seeds[0]), (lam_a, seeds[1]), (lam_b, seeds[2]),
             (1.0, seeds[3]), (0.0, seeds[4])]
    return {"student": weights, "input_ids": ids, "attention_mask": mask, "labels": labels,
            "prompt_len": P, "calls": [tuple(c) for c in calls],
            "bad": [(-0.2, seeds[0]), (1.5, seeds[0])], "local_reference": seed is None}


def reference_samples(inp, lam: float, seed: int, model=None):
    """The student's seeded samples for one call, drawn here: (k, L - prompt_len) int64, or
    None when k = round(lam * N) is 0. The notebook's own cases compare with these, drawn on
    the machine that runs the notebook, not with tokens a shipped key drew on another CPU (a
    softmax's last bit, and so a sampled token, may differ between CPU kinds). The call is the
    one the check's hint spells out (_EXACT_CALL). model: the inputs' student in eval mode
    (``on_policy_model(inp).eval()``, made here when None)."""
    N, L = inp["input_ids"].shape
    P, k = inp["prompt_len"], round(lam * N)
    if k == 0:
        return None
    model = on_policy_model(inp).eval() if model is None else model
    prompts = inp["input_ids"][:k, :P]
    with RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                             top_k=0, max_new_tokens=L - P, pad_token_id=0)
    return out[:, P:].to(torch.int64)


def _op_batch(inp) -> dict:
    return {k: inp[k].clone() for k in OP_KEYS}


def on_policy_probe(fn, inp) -> dict:
    """Call fn(student, batch, lam, prompt_len, seed) at every (lam, seed) with the student in
    train mode; record what it returned, the student's mode and grad mode in each of its
    forward passes, its mode afterwards, whether torch's global random state and the batch
    passed in were left as they were."""
    student = on_policy_model(inp)
    seen = []

    def hook(module, args):
        seen.append([module.training, torch.is_grad_enabled()])

    student.transformer.register_forward_pre_hook(hook)
    records = []
    for lam, seed in list(inp["calls"]) + list(inp["bad"]):
        batch = _op_batch(inp)
        student.train()
        seen.clear()
        state = torch.get_rng_state()
        out, res = _p.call(fn, student, batch, lam, inp["prompt_len"], seed)
        rec = {"outcome": out, "forwards": [list(s) for s in seen],
               "train_after": bool(student.training),
               "rng_kept": bool(torch.equal(state, torch.get_rng_state())),
               "changed": [k for k in OP_KEYS if not (batch[k].shape == inp[k].shape
                                                      and torch.equal(batch[k], inp[k]))]}
        if isinstance(res, dict):
            rec["keys"] = [_p.text(k, 100) for k in res]
            rec["returned"] = {k: _p.value(res[k]) for k in OP_KEYS if k in res}
        records.append(rec)
    n = len(inp["calls"])
    if inp.get("local_reference"):  # the notebook's cases: the right samples drawn here too
        model, drawn = on_policy_model(inp).eval(), {}  # a repeated (lam, seed) draws once
        for rec, (lam, seed) in zip(records[:n], inp["calls"]):
            if (lam, seed) not in drawn:
                ref = reference_samples(inp, lam, seed, model)
                drawn[lam, seed] = None if ref is None else _p.value(ref)
            rec["reference"] = drawn[lam, seed]
    return {"calls": records[:n], "bad": [r["outcome"] for r in records[n:]]}


def _op_returned(title: str, rec: dict, where: str, N: int, L: int) -> dict:
    """The three returned tensors (int64, (N, L)) of one recorded call, or fail."""
    out = rec["outcome"]
    raised(title, out, where=where)
    if "returned" not in rec:
        fail(title, f"{where}: on_policy_batch returned {type_name(out['value'])}; expected a "
                    "dict with 'input_ids', 'attention_mask' and 'labels'",
             "return {'input_ids': ..., 'attention_mask': ..., 'labels': ...}, a new batch "
             "for the trainer")
    got = {}
    for k in OP_KEYS:
        v = rec["returned"].get(k)
        if v is None or v.get("kind") != "tensor":
            fail(title, f"{where}: the returned batch has no tensor under {k!r} (its keys: "
                        f"{rec.get('keys')})",
                 "return all three of 'input_ids', 'attention_mask' and 'labels'")
        if tuple(v["shape"]) != (N, L):
            extra = (" generate() returns the prompt followed by the new tokens: ask for "
                     "max_new_tokens = L - prompt_len and take its output as the whole row"
                     if k == "input_ids" else " keep every tensor of the batch (N, L)")
            fail(title, f"{where}: the returned {k} has shape {tuple(v['shape'])}, expected "
                        f"{(N, L)} (the batch's own shape)", extra.strip())
        if v.get("dtype") not in ("int64", "int32"):
            fail(title, f"{where}: the returned {k} has dtype {v.get('dtype')}; token ids, "
                        "masks and labels are integers (int64)",
                 "keep the batch's dtype: build the new rows from the batch's own tensors and "
                 "generate()'s output (both int64)")
        got[k] = recorded(v).to(torch.int64)
    return got


def _count_rule(counts, lams, N) -> str | None:
    """The name of the rule that gave these numbers of on-policy rows, if a known wrong one."""
    import math
    rules = {"int": lambda x: int(x * N), "ceil": lambda x: math.ceil(x * N - 1e-9),
             "inverted": lambda x: round((1 - x) * N), "all": lambda x: N if x > 0 else 0}
    for name, rule in rules.items():
        if [rule(x) for x in lams] == counts:
            return name
    return None


_COUNT_MESSAGES = {
    "int": ("you rounded lam * N down (int(lam * N)): {got} rows where round(lam * N) gives "
            "{want}", "k = round(lam * N)"),
    "ceil": ("you rounded lam * N up (math.ceil): {got} rows where round(lam * N) gives {want}",
             "k = round(lam * N)"),
    "inverted": ("lambda is inverted: {got} rows are on-policy, round((1 - lam) * N); lam is "
                 "the share of rows continued by the student ({want})",
                 "k = round(lam * N) rows continued by the student, the other N - k from the "
                 "dataset: lam = 0 is plain off-policy distillation, lam = 1 fully on-policy"),
    "all": ("every row was continued by the student whatever lam was: {got} rows where "
            "round(lam * N) gives {want}", "k = round(lam * N): only the first k rows"),
}


def on_policy_verdict(check, data, inp, key) -> str:
    """Check on_policy_batch(student, batch, lam, prompt_len, seed) -> a new batch whose first
    round(lam * N) rows keep their prompt and continue it with the student's seeded samples
    (eval mode, no gradients), the rest from the dataset, masks and labels to match."""
    title = check.title
    ids0, mask0, lab0 = inp["input_ids"], inp["attention_mask"], inp["labels"]
    N, L = ids0.shape
    P = inp["prompt_len"]
    calls = list(paired(inp["calls"], key["calls"], data["calls"]))
    got = []
    for (lam, seed), k, rec in calls:
        where = f"lam={lam:.3g}, seed={seed}"
        got.append(_op_returned(title, rec, where, N, L))
        if rec["changed"]:
            fail(title, f"{where}: your function changed batch[{rec['changed'][0]!r}] passed to "
                        "it: the trainer's batch is not yours to edit",
                 "build the new batch from clones: ids = batch['input_ids'].clone(), ...")
    lams = [lam for (lam, _), _, _ in calls]
    rows = [sorted(i for i in range(N) if not torch.equal(g["input_ids"][i], ids0[i]))
            for g in got]  # the rows the student continued (masks and labels: judged below)
    counts, want = [len(r) for r in rows], [k["k"] for _, k, _ in calls]
    if counts != want:
        rule = _count_rule(counts, lams, N)
        pairs = ", ".join(f"lam={x:.3g}: {c} (expected {w})" for x, c, w in zip(lams, counts, want))
        if rule:
            what, hint = _COUNT_MESSAGES[rule]
            fail(title, what.format(got=counts, want=want) + f" (N={N}; {pairs})", hint)
        fail(title, f"the number of rows your batch changed is not round(lam * N) (N={N}; "
                    f"{pairs})",
             "exactly the first k = round(lam * N) rows are continued by the student (not a "
             "random share of them); the other rows are returned as they were")
    for ((lam, seed), k, rec), r in zip(calls, rows):
        where = f"lam={lam:.3g}, seed={seed}"
        fwd = rec["forwards"]
        if r and not fwd:
            fail(title, f"{where}: the student passed in never ran, so the continuations do "
                        "not come from it: did you sample from the teacher (sequence-level "
                        "KD) or from another model of the notebook?",
                 "on-policy means the student writes: student.generate(...) on the model "
                 "passed as the first argument")
        if any(t for t, _ in fwd):
            fail(title, f"{where}: the student sampled in train mode (dropout on): its samples "
                        "are not what it writes when used",
                 "was_training = student.training; student.eval(); ...generate...; "
                 "student.train(was_training)")
        if any(gr for _, gr in fwd):
            fail(title, f"{where}: the student's forward passes ran with gradient tracking on: "
                        "no gradient flows through sampling (the tokens are discrete), so "
                        "autograd only keeps a graph that is never used",
                 "sample under torch.no_grad() (student.generate does it for you)")
        if not rec["train_after"]:
            fail(title, f"{where}: the student was handed over in train mode and left in eval "
                        "mode: the trainer's forward pass that follows would run without "
                        "dropout",
                 "remember student.training before student.eval() and restore it with "
                 "student.train(was_training) after sampling")
    for ((lam, seed), k, _), r in zip(calls, rows):
        if r != list(range(k["k"])):
            fail(title, f"lam={lam:.3g}: the on-policy rows are {r}; expected the first "
                        f"{k['k']}, rows {list(range(k['k']))}",
                 "continue rows 0 .. k-1 (input_ids[:k]) and return rows k .. N-1 as they were")
    for ((lam, seed), k, _), g in zip(calls, got):
        n = k["k"]
        if n and not torch.equal(g["input_ids"][:n, :P], ids0[:n, :P]):
            fail(title, f"lam={lam:.3g}, seed={seed}: the on-policy rows do not start with their "
                        f"prompt (the row's first prompt_len={P} tokens)",
                 "take generate()'s whole output as the row: it returns the prompt followed "
                 "by the new tokens")
    gen = [g["input_ids"][:k["k"], P:] for (_, k, _), g in zip(calls, got)]
    if not torch.equal(gen[0], gen[1]):
        fail(title, f"two calls with the same seed ({calls[0][0][1]}) gave different "
                    "continuations: your sampling ignores the seed it was given",
             "seed torch's generator right before sampling: with torch.random.fork_rng("
             "devices=[]): torch.manual_seed(seed); out = student.generate(...)")
    for ((lam, seed), k, rec), g in zip(calls, gen):
        want = k["tokens"].to(torch.int64) if k["k"] else None
        if k["k"] and inp.get("local_reference") and isinstance(rec.get("reference"), dict):
            # the notebook's own cases (never a grading's: its inputs come with a seed): the
            # samples this machine draws, not the shipped key's (drawn on another CPU)
            want = recorded(rec["reference"]).to(torch.int64)
        if k["k"] and not torch.equal(g, want):
            for name, ref, fields in k["mistakes"]:
                if torch.equal(g, ref.to(torch.int64)):
                    m = check.mistake(name)
                    fail(title, f"lam={lam:.3g}, seed={seed}: " + m.what.format(**fields),
                         m.hint.format(**fields))
            if torch.equal(gen[0], gen[2]):
                fail(title, f"two calls with different seeds ({calls[0][0][1]} and "
                            f"{calls[2][0][1]}) gave the same continuations: the seed passed in "
                            "is not the one used",
                     "torch.manual_seed(seed) with the function's argument, not a constant")
            fail(title, f"lam={lam:.3g}, seed={seed}: the continuations are not the student's "
                        f"samples for this seed\n    got      {g[0].tolist()}\n    expected "
                        f"{want[0].tolist()} (row 0)", _EXACT_CALL)
    for ((lam, seed), k, rec) in calls:
        if k["k"] and not rec["rng_kept"]:
            fail(title, f"lam={lam:.3g}, seed={seed}: torch's global random state was left "
                        "reseeded: every on-policy batch would reset the randomness of the "
                        "whole training run (data order, dropout) to the same point",
                 "seed inside with torch.random.fork_rng(devices=[]): ..., which restores the "
                 "global state when the block ends")
    for ((lam, seed), k, _), g in zip(calls, got):
        n, where = k["k"], f"lam={lam:.3g}, seed={seed}"
        if not bool((g["attention_mask"][:n] == 1).all()):
            fail(title, f"{where}: the attention_mask of the on-policy rows is not all ones: the "
                        "row's old padding was kept over the generated tokens",
                 "every token of a continued row is real: attention_mask[:k] = 1")
        lab = g["labels"][:n]
        if n and bool((lab[:, P:] != -100).any()):
            same = bool((lab[:, P:] == g["input_ids"][:n, P:]).all())
            fail(title, f"{where}: " + ("the labels of the generated tokens are the tokens "
                                        "themselves: the next-token loss would train the "
                                        "student to imitate its own samples" if same else
                                        "the labels of the generated tokens are not -100"),
                 "labels[:k, prompt_len:] = -100: on generated text only the teacher teaches "
                 "(the distillation term); the next-token loss learns from real text")
        if n and not torch.equal(lab[:, :P], ids0[:n, :P]):
            fail(title, f"{where}: the labels of the prompts are not the prompt's tokens "
                        "(the prompt is real text: the next-token loss learns from it)",
                 "labels[:k, :prompt_len] = input_ids[:k, :prompt_len]")
        for name, ref in (("input_ids", ids0), ("attention_mask", mask0), ("labels", lab0)):
            if not torch.equal(g[name][n:], ref[n:]):
                fail(title, f"{where}: the dataset rows (k={n} .. N-1) were changed in {name}: "
                            "their padding must stay out (attention_mask 0, labels -100)",
                     "return rows k .. N-1 exactly as given: only the first k rows change")
    for (lam, _), out in paired(inp["bad"], data["bad"]):
        expects_value_error(title, out, f"lam={lam}", "start with: if not 0 <= lam <= 1: "
                            "raise ValueError(...)",
                            "lam is a share of the batch, in [0, 1]; start with: if not 0 <= "
                            "lam <= 1: raise ValueError(f'lam must be in [0, 1], got {lam}')")
    return (f"on a padded batch of {N} rows, the first round(lam * N) rows keep their prompt "
            f"and continue it with the student's seeded samples (eval mode, no gradients, "
            f"global random state kept), masks and labels to match, at {len(calls)} (lam, seed) "
            "settings; bad lam rejected")


check_on_policy_batch = Check("on_policy_batch", on_policy_inputs, on_policy_probe,
                              on_policy_verdict, ON_POLICY_MISTAKES)
