"""``lmcourse bench delta``: lmcourse LoRA vs ``peft`` LoRA, and ladder side-tuning vs full fine-tuning.

Taught in chapter 12 (Delta tuning).

* LoRA training step time (median of interleaved repeats) and measured training memory of
  ``lmcourse.delta.add_lora`` vs ``peft.get_peft_model(LoraConfig)``, same model, batch,
  targets and rank, in one run (target: at most 1.05x the time, no more memory);
* training memory of the ladder side network vs full fine-tuning of the same backbone.

Memory is measured by ``lmcourse.systems.memory.measure_training``: on CPU the bytes of the
parameters, gradients, optimizer states and the tensors saved for backward; on a GPU the
allocator's growth over each stage.
Smoke: MiniLM (22.7M) on a batch of 8 x 32 tokens; full: SmolLM2-135M on 8 x 128 tokens.
"""
from __future__ import annotations

import copy

import torch

from lmcourse.bench import Row
from lmcourse.bench.timing import alternated

SIZES = {"smoke": {"model": "minilm", "batch": 8, "tokens": 32, "repeats": 12, "targets": ["query", "value"]},
         "full": {"model": "smollm2", "batch": 8, "tokens": 128, "repeats": 12, "targets": ["q_proj", "v_proj"]}}


def _load(name: str):
    from transformers.utils import logging as hf_logging

    from lmcourse.models.pretrained import load
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model, _ = load(name, kind="hf") if name == "minilm" else load(name)
    return model


def _loss_fn(ids):
    def loss(model):
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        h = out.logits if getattr(out, "logits", None) is not None else (
            out.last_hidden_state if hasattr(out, "last_hidden_state") else out)
        return h.float().pow(2).mean()
    return loss


def _step(model, opt, loss):
    def go():
        opt.zero_grad(set_to_none=True)
        loss(model).backward()
        opt.step()
    return go


def run(profile: str = "smoke") -> list[Row]:
    import peft

    from lmcourse.delta import LadderSideNetwork, add_lora, count_parameters
    from lmcourse.systems.memory import measure_training

    s = SIZES["smoke" if profile == "smoke" else "full"]
    threads = torch.get_num_threads()
    if profile == "smoke":
        torch.set_num_threads(1)                             # the smoke profile's one thread (lmcourse.config)
    try:
        return _run(s, peft, add_lora, count_parameters, LadderSideNetwork, measure_training)
    finally:
        torch.set_num_threads(threads)


def _run(s, peft, add_lora, count_parameters, LadderSideNetwork, measure_training) -> list[Row]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = _load(s["model"]).to(device)
    torch.manual_seed(0)
    vocab = base.config.vocab_size
    ids = torch.randint(1000, min(vocab, 20000), (s["batch"], s["tokens"]), device=device)
    loss = _loss_fn(ids)

    ours = copy.deepcopy(base)
    add_lora(ours, s["targets"], r=8, alpha=16)
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                                        target_modules=s["targets"]))
    assert count_parameters(ours)["trainable"] == theirs.get_nb_trainable_parameters()[0]
    opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], 1e-4)
            for k, m in (("ours", ours), ("peft", theirs))}
    models = {"ours": ours, "peft": theirs}
    t = alternated({k: _step(models[k], opts[k], loss) for k in models}, s["repeats"], device=device)
    t_ours, t_peft = t["ours"], t["peft"]
    mem = {k: measure_training(models[k], loss, opts[k]).total for k in ("ours", "peft")}
    del ours, theirs, models, opts

    full = copy.deepcopy(base)
    m_full = measure_training(full, loss, torch.optim.AdamW(full.parameters(), 1e-4))
    del full
    ladder = LadderSideNetwork(copy.deepcopy(base), reduction=8, n_heads=4, causal=s["model"] != "minilm").to(device)
    m_ladder = measure_training(ladder, loss, torch.optim.AdamW([p for p in ladder.parameters()
                                                                if p.requires_grad], 1e-4))
    name = f"{s['model']}, batch {s['batch']}x{s['tokens']}"
    return [
        Row("delta", f"LoRA r=8 step time ({name})", t_ours * 1e3, t_peft * 1e3, "ms", t_ours / t_peft,
            "<= 1.05x", t_ours <= 1.05 * t_peft, "lmcourse / peft time, median of interleaved repeats"),
        Row("delta", f"LoRA r=8 training memory ({name})", mem["ours"], mem["peft"], "bytes",
            mem["ours"] / mem["peft"], "<= 1.00x", mem["ours"] <= mem["peft"],
            "lmcourse / peft: params + grads + AdamW states + saved activations"),
        Row("delta", f"ladder side network vs full fine-tuning memory ({name})", m_ladder.total, m_full.total,
            "bytes", m_full.total / m_ladder.total, "> 1x", m_full.total > m_ladder.total,
            f"full / ladder; activations {m_full.activations / 2**20:.3g} vs {m_ladder.activations / 2**20:.3g} MiB"),
    ]
