"""Answer keys of Lab 02 (dark knowledge): class similarity and per-digit dark knowledge.

The reference implementations of the exercises and of their common mistakes, evaluated on a
check's inputs (``kdlab.checks.lab02``): the verdicts compare the student's outcomes with
these values and name the mistake whose values match.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kdlab.checks.lab02 import check_class_similarity, check_dark_knowledge, _row_sums

from ._table import key_of


def class_similarity(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference: row c = mean soft target of the digits of class c; (N, C), (N,) -> (C, C)."""
    onehot = F.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return (onehot.T @ probs) / onehot.sum(0)[:, None]


def dark_knowledge(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference: probability mass on the wrong classes of each digit; (N, C), (N,) -> (N,)."""
    return 1 - probs[torch.arange(len(labels)), labels]


def _similarity_case(probs: torch.Tensor, labels: torch.Tensor) -> dict:
    N, C = probs.shape
    exp = class_similarity(probs, labels)
    onehot = F.one_hot(labels, C).to(probs.dtype)
    summed = onehot.T @ probs
    hard = class_similarity(F.one_hot(probs.argmax(1), C).to(probs.dtype), labels)
    mistakes = [] if torch.allclose(exp, exp.T, atol=1e-5) else [["transposed", exp.T, {}]]
    mistakes += [["mean_over_classes", torch.full_like(exp, 1.0 / C), {"one_over_C": 1.0 / C}],
                 ["ignores_labels", probs.mean(0, keepdim=True).expand(C, C), {}],
                 ["summed", summed, {"sums": _row_sums(summed)}],
                 ["columns", summed / onehot.sum(0)[None, :], {}],
                 ["divide_by_N", summed / N, {"N": N}],
                 ["hard_predictions", hard, {}], ["hard_predictions", hard.T, {}],
                 ["one_hot_labels", torch.eye(C, dtype=probs.dtype), {}],
                 ["softmax_again", class_similarity(F.softmax(probs, dim=1), labels), {}]]
    return {"expected": exp, "mistakes": mistakes}


@key_of(check_class_similarity)
def similarity_key(inp: dict) -> dict:
    """Right and mistaken class-similarity matrices of every case of ``similarity_inputs``."""
    return {"cases": [_similarity_case(probs, labels) for _, probs, labels in inp["cases"]]}


@key_of(check_dark_knowledge)
def dark_key(inp: dict) -> dict:
    """Right and mistaken dark knowledge of every case of ``dark_inputs``."""
    cases = []
    for _, probs, labels in inp["cases"]:
        exp = dark_knowledge(probs, labels)
        cases.append({"expected": exp, "mistakes": [
            ["mean", exp.mean(), {"value": exp.mean().item(), "N": len(labels)}],
            ["includes_true", torch.ones_like(exp), {}],
            ["argmax", 1 - probs.max(1).values, {}],
            ["true_mass", probs[torch.arange(len(labels)), labels], {}]]})
    return {"cases": cases}
