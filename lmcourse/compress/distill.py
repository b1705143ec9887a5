"""Knowledge distillation: soft targets with a temperature (Hinton et al.), PKD, TinyBERT-style losses.

Taught in chapter 20 (Model compression).

    soft targets      p_i(T) = softmax(z / T)_i                    higher T: a flatter distribution
    KD loss           L_KD = T^2 KL(p_teacher(T) || p_student(T))  the T^2 keeps gradients O(1) as T grows
    total             L = alpha L_KD + (1 - alpha) CE(z_student, y)
    PKD               sum over mapped layers || h_s / |h_s| - h_t / |h_t| ||^2   ([CLS] state of each layer)
    TinyBERT          MSE(A_s, A_t) + MSE(H_s W_h, H_t) + MSE(E_s W_e, E_t)     attention scores, hidden, embeddings
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lmcourse.models.bert import mean_pool


def soft_targets(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """softmax(logits / T) over the last axis. Taught in chapter 20 (Model compression)."""
    if temperature <= 0:
        raise ValueError(f"the temperature must be positive, got {temperature}")
    return F.softmax(logits / temperature, dim=-1)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 2.0,
            labels: Tensor | None = None, alpha: float = 1.0) -> Tensor:
    """Hinton's distillation loss: alpha T^2 KL(p_t(T) || p_s(T)) + (1 - alpha) CE(student, labels).

    Logits are (B, K); the KL is averaged over the batch. Taught in chapter 20 (Model compression).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} must have the same shape")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if alpha < 1.0 and labels is None:
        raise ValueError("alpha < 1 mixes in the hard-label loss, so labels are needed")
    t = float(temperature)
    log_ps = F.log_softmax(student_logits / t, dim=-1)
    pt = soft_targets(teacher_logits.detach(), t)
    soft = F.kl_div(log_ps, pt, reduction="batchmean") * t * t
    if alpha == 1.0:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def bert_internals(clf: nn.Module, input_ids: Tensor, token_type_ids: Tensor | None = None,
                   attention_mask: Tensor | None = None) -> dict:
    """Run an ``lmcourse`` ``BertClassifier`` and keep what distillation matches.

    Returns {"logits": (B, K), "embeddings": (B, T, C), "hidden": [L x (B, T, C)] (each layer's output),
    "attention": [L x (B, H, T, T)] (the unnormalised scores QK^T / sqrt(d), as TinyBERT matches)}.
    The logits equal ``clf(input_ids, token_type_ids, attention_mask)``.
    Taught in chapter 20 (Model compression).
    """
    bert = clf.bert
    key_mask = None if attention_mask is None else attention_mask.bool()
    x = bert.embeddings(input_ids, token_type_ids)                       # (B, T, C)
    out = {"embeddings": x, "hidden": [], "attention": []}
    for layer in bert.encoder.layers:
        a = layer.self_attn
        xin = layer.norm1(x) if layer.norm_first else x
        q, k = a._split(a.q_proj(xin)), a._split(a.k_proj(xin))          # (B, H, T, d_head)
        scores = q @ k.transpose(-2, -1) / a.d_head ** 0.5               # (B, H, T, T)
        if key_mask is not None:                                         # padded keys carry no signal
            scores = scores.masked_fill(~key_mask[:, None, None, :], 0.0)
        out["attention"].append(scores)
        x = layer(x, key_mask=key_mask)
        out["hidden"].append(x)
    h = bert.encoder.norm(x)
    if clf.pooling == "cls":
        feats = torch.tanh(bert.pooler(h[:, 0]))
    else:
        feats = mean_pool(h, attention_mask)
    out["logits"] = clf.head(clf.drop(feats))                            # (B, K)
    return out


def pkd_layer_map(n_teacher: int, n_student: int, strategy: str = "skip") -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs, 1-based, for the student's intermediate layers (PKD).

    "skip": every (n_teacher / n_student)-th teacher layer; "last": the teacher's last layers before its top.
    The student's top layer learns from the logits (KD). Taught in chapter 20 (Model compression).
    """
    if strategy not in ("skip", "last"):
        raise ValueError(f"strategy must be 'skip' or 'last', not {strategy!r}")
    if not 1 <= n_student <= n_teacher:
        raise ValueError(f"need 1 <= n_student <= n_teacher, got {n_student} and {n_teacher}")
    step = n_teacher // n_student
    if strategy == "skip":
        return [(j, j * step) for j in range(1, n_student)]
    return [(j, n_teacher - n_student + j) for j in range(1, n_student)]


def pkd_loss(student_hidden: list[Tensor], teacher_hidden: list[Tensor],
             layer_map: list[tuple[int, int]]) -> Tensor:
    """Patient KD: squared distance of the L2-normalised [CLS] states of mapped layers (1-based).

    Taught in chapter 20 (Model compression).
    """
    loss = student_hidden[0].new_zeros(())
    for s, t in layer_map:
        hs = F.normalize(student_hidden[s - 1][:, 0], dim=-1)            # (B, C)
        ht = F.normalize(teacher_hidden[t - 1][:, 0].detach(), dim=-1)
        loss = loss + (hs - ht).pow(2).sum(-1).mean()
    return loss


class TinyBertLoss(nn.Module):
    """TinyBERT's intermediate losses: embeddings, attention scores and hidden states of mapped layers.

    Student layer m learns from teacher layer g(m) = m * N / M. When widths differ, learned
    projections W_e, W_h map the student's states to the teacher's width.
    Taught in chapter 20 (Model compression).
    """

    def __init__(self, n_teacher: int, n_student: int, d_student: int, d_teacher: int):
        super().__init__()
        if n_teacher % n_student:
            raise ValueError(f"the student's {n_student} layers must divide the teacher's {n_teacher}")
        self.layer_map = [(m, m * n_teacher // n_student) for m in range(1, n_student + 1)]
        same = d_student == d_teacher
        self.w_e = nn.Identity() if same else nn.Linear(d_student, d_teacher, bias=False)
        self.w_h = nn.Identity() if same else nn.Linear(d_student, d_teacher, bias=False)

    def forward(self, student: dict, teacher: dict) -> dict[str, Tensor]:
        parts = {"embedding": F.mse_loss(self.w_e(student["embeddings"]), teacher["embeddings"].detach())}
        att = hid = 0.0
        for s, t in self.layer_map:
            att = att + F.mse_loss(student["attention"][s - 1], teacher["attention"][t - 1].detach())
            hid = hid + F.mse_loss(self.w_h(student["hidden"][s - 1]), teacher["hidden"][t - 1].detach())
        parts["attention"], parts["hidden"] = att, hid
        parts["total"] = parts["embedding"] + att + hid
        return parts


__all__ = ["TinyBertLoss", "bert_internals", "kd_loss", "pkd_layer_map", "pkd_loss", "soft_targets"]
