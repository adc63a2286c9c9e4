"""Lab 07's on-policy distillation through TRL's DistillationTrainer and through the course's
own trainer, on the same tiny character-level GPT-2 models, seeds and data.

TRL (``trl==1.16.0``, an optional extra: ``pip install kdlab[trl]``) is not a dependency of
the course. Its ``DistillationTrainer`` is fully on-policy GKD: the student writes a
completion of each text prompt, the teacher scores it, and the loss is the generalised JSD
(``beta``) on the completion's tokens only. It wants a Hugging Face tokenizer and prompts as
text; this benchmark builds a character-level ``PreTrainedTokenizerFast`` over the course's
65 symbols and hands the prompts over as a plain list of {"prompt": str} (``datasets``'
``Dataset.from_dict`` fails here: see NOTE). The course's arm is Lab 07's recipe with the
same settings: ``on_policy_batch`` (lam = 1, the answer key's reference) feeding a trainer
whose loss is ``token_kd_loss`` alone (alpha = 1) on the generated tokens.

Both arms: the same initial student per seed, prompts of PROMPT_LEN characters from the
students' slice (2% of the training text), completions of 128 - PROMPT_LEN characters
(never cut short: generation ignores the end-of-text token), AdamW lr 3e-3, cosine with 10%
warm-up, clipping at 1, STEPS steps of BATCH rows. Measured: validation nats/char, the
teacher's loss on the student's samples, training CPU time; verdicts by kd.stats.compare.

    PYTHONPATH=<folder with trl> python -m benchmarks.lm_trl [--budget tiny|full] --threads 1
"""
from __future__ import annotations

import json
import time

import torch

import kdlab as kd
from kdlab.grading.keys.lab07 import on_policy_batch, token_kd_loss

from ._common import RESULTS, env, parser, pick, set_threads

NOTE = ("datasets 5.2.0 (with dill 0.4.1, pyarrow 26.0.1, Python 3.11.7): "
        "Dataset.from_dict({'prompt': [...]}) raises _pickle.PicklingError: Can't pickle "
        "<class 'MonthDayNano'>: it's not found as builtins.MonthDayNano; TRL's trainer accepts "
        "a plain list of {'prompt': str} instead")


def char_tokenizer():
    """A PreTrainedTokenizerFast with one token per character of the course's vocabulary."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = kd.text.vocab()
    chars = vocab.decode(torch.arange(len(vocab)))
    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(chars)}, unk_token=chars[0]))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    # TRL needs an end-of-text and a padding token; '&' (rare in the text) plays both, and
    # min_new_tokens keeps every completion at full length
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="&", pad_token="&",
                                   padding_side="left")


def course_trainer_cls():
    from transformers import Trainer

    class OnPolicyKD(Trainer):
        """Lab 07's recipe at lam = 1, alpha = 1: token_kd_loss on the student's own text."""

        def __init__(self, *args, teacher=None, T=1.0, beta=0.0, prompt_len=32, **kw):
            super().__init__(*args, **kw)
            self.teacher, self.T, self.beta, self.prompt_len = teacher, T, beta, prompt_len

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            seed = 1_000_003 * self.args.seed + self.state.global_step
            batch = on_policy_batch(model, inputs, 1.0, self.prompt_len, seed)
            mask = batch["attention_mask"].clone()
            mask[:, :self.prompt_len] = 0  # as TRL: the divergence on the completion only
            outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            self.teacher.eval()
            with torch.no_grad():
                t = self.teacher(input_ids=batch["input_ids"]).logits
            loss = token_kd_loss(outputs.logits, t, mask, self.T, self.beta)
            return (loss, outputs) if return_outputs else loss

    return OnPolicyKD


def measure(student, teacher, val_ids, s: dict, seed: int) -> dict:
    samples = kd.lm.sample(student, s["n_samples"], s["sample_len"], seed=seed)
    return {"val": kd.lm.nats_per_char(student, val_ids, max_chars=s["val_chars"]),
            "teacher_on_samples": kd.lm.score(teacher, samples),
            "sample": kd.text.vocab().decode(samples[0])}


def main(argv=None) -> int:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    set_threads(args.threads)
    import transformers
    import trl
    from trl import DistillationConfig, DistillationTrainer

    s = {"steps": pick(args.budget, 40, 2), "batch": pick(args.budget, 8, 2),
         "prompt_len": 32, "seeds": pick(args.budget, [0, 1, 2], [0]), "fraction": 0.02,
         "val_chars": pick(args.budget, 32_768, 2_048), "n_samples": 8, "sample_len": 100,
         "lr": 3e-3, "beta": 0.0, "T": 1.0}
    vocab = kd.text.vocab()
    small = kd.text.head(kd.text.ids("train"), s["fraction"])
    val_ids = kd.text.ids("val")
    teacher = kd.lm_zoo.load()
    windows = kd.lm.window_dataset(small, stride=32)
    prompts = [{"prompt": vocab.decode(w["input_ids"][:s["prompt_len"]])} for w in windows]
    tok = char_tokenizer()
    assert tok(prompts[0]["prompt"])["input_ids"] == windows[0]["input_ids"][:s["prompt_len"]].tolist()
    rows = {"trl": [], "course": []}
    for seed in s["seeds"]:
        for arm in ("trl", "course"):
            student = kd.lm.build("student", seed=seed)
            common = dict(max_steps=s["steps"], per_device_train_batch_size=s["batch"],
                          learning_rate=s["lr"], weight_decay=0.1, lr_scheduler_type="cosine",
                          warmup_steps=max(1, s["steps"] // 10), max_grad_norm=1.0, seed=seed,
                          data_seed=seed, use_cpu=True, report_to=[], logging_strategy="no",
                          save_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
            if arm == "trl":
                cfg = DistillationConfig(output_dir=f"/tmp/kdlab-trl-{seed}", beta=s["beta"],
                                         temperature=s["T"], top_k=0, top_p=1.0,
                                         max_completion_length=128 - s["prompt_len"],
                                         generation_kwargs={"min_new_tokens": 128 - s["prompt_len"]},
                                         **common)
                trainer = DistillationTrainer(model=student, teacher_model=teacher, args=cfg,
                                              train_dataset=prompts, processing_class=tok)
            else:
                targs = kd.lm.training_args(s["steps"], seed=seed, batch_size=s["batch"], lr=s["lr"])
                trainer = course_trainer_cls()(model=student, args=targs, train_dataset=windows,
                                               teacher=teacher, T=s["T"], beta=s["beta"],
                                               prompt_len=s["prompt_len"])
            trainer.remove_callback(transformers.PrinterCallback)
            c0 = time.process_time()
            trainer.train()
            cpu = time.process_time() - c0
            student.eval()
            rows[arm].append({"seed": seed, "train_cpu": cpu, **measure(student, teacher, val_ids, s, seed)})
            print(arm, seed, {k: v for k, v in rows[arm][-1].items() if k != "sample"}, flush=True)
    out = {"settings": s, "trl": trl.__version__, "transformers": transformers.__version__,
           "note": NOTE, "env": env(), "budget": args.budget, "rows": rows}
    if len(s["seeds"]) >= 3:
        out["verdicts"] = {}
        for k in ("val", "teacher_on_samples", "train_cpu"):
            c = kd.stats.compare([r[k] for r in rows["course"]], [r[k] for r in rows["trl"]])
            out["verdicts"][k] = {"trl_minus_course": c.diff, "sd": c.sd, "beyond": c.beyond,
                                  "text": f"{c.diff:+.3f} ± {c.sd:.3f}: {c.word('beyond seed noise', 'beyond seed noise')}"}
            print("trl - course", k, out["verdicts"][k]["text"])
    path = args.out / ("lm_trl.json" if args.budget == "full" else "lm_trl_tiny.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
