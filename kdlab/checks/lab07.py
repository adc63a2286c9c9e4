"""Checks of Lab 07 (distilling a language model): the token-level KD loss and the KD trainer.

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
"""
from __future__ import annotations

import tempfile

import torch

from . import _probe as _p
from ._common import (Mistake, close, cmp, recorded, fail, name_mistake, paired, raised,
                      rejects, type_name)
from ._registry import Check
from ._scalar import SCALAR_LOSS_PARTS, ScalarLoss

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
    from transformers import GPT2Config, GPT2LMHeadModel

    out = []
    for who in ("student", "teacher"):
        cfg = GPT2Config(vocab_size=_TINY_V, n_positions=_TINY_L, resid_pdrop=0.0,
                         embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
                         pad_token_id=None, **_TINY[who])
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
    from transformers import GPT2Config, GPT2LMHeadModel

    weights = {}
    for who in ("student", "teacher"):
        with torch.random.fork_rng(devices=[]):
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
