"""``lmcourse bench prompt``: a prompt-tuning training step, lmcourse's ``PromptTuning`` vs ``peft``'s.

Taught in chapter 10 (Templates) and chapter 11 (prompt tuning).

Same model, same batch, same number of virtual tokens, same optimizer (Adam on the
prompt only), same loss (the model's own language-modelling loss with the labels
shifted past the virtual tokens). The two sides are timed in alternation (a busy CPU hits
both) and the median step time is compared; memory is what one training step holds
(parameters, gradients, optimizer state, tensors saved for backward), measured by
``lmcourse.systems.memory.measure_training`` (on CUDA: allocator growth).

Profiles: ``smoke`` uses a random Llama with SmolLM2's width, heads and vocabulary but
4 layers (fast on a CPU); ``full`` uses the real SmolLM2-135M.
Targets (issue 7): at most 1.1x peft's time, no more memory.
"""
from __future__ import annotations

import copy
import warnings

import torch

from lmcourse.bench import Row
from lmcourse.bench.timing import alternated

SIZES = {"smoke": {"layers": 4, "batch": 4, "tokens": 32, "virtual": 20, "repeats": 7},
         "full": {"layers": None, "batch": 8, "tokens": 128, "virtual": 20, "repeats": 15}}


def _model(layers: int | None, device: str):
    from transformers import LlamaConfig, LlamaForCausalLM
    if layers is None:
        from lmcourse.models.pretrained import load
        return load("smollm2")[0].to(device)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=layers,
                      num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                      tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).to(device)


def run(profile: str = "smoke") -> list[Row]:
    from peft import PromptTuningConfig, TaskType, get_peft_model

    from lmcourse.prompt.soft import PromptTuning
    from lmcourse.systems.memory import measure_training

    s = SIZES["smoke" if profile == "smoke" else "full"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    base = _model(s["layers"], device).train()
    with warnings.catch_warnings():                 # peft's deprecation notices about transformers 5
        warnings.simplefilter("ignore")
        ref = get_peft_model(copy.deepcopy(base), PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                                     num_virtual_tokens=s["virtual"]))
    ours = PromptTuning(base, s["virtual"])
    with torch.no_grad():                           # the same starting prompt on both sides
        ours.prompt.copy_(ref.prompt_encoder["default"].embedding.weight)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, base.config.vocab_size, (s["batch"], s["tokens"]), generator=g).to(device)
    mask = torch.ones_like(ids)
    sides = {"lmcourse": ours, "peft": ref}
    opts = {k: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3) for k, m in sides.items()}

    def loss_fn(m):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return m(input_ids=ids, attention_mask=mask, labels=ids).loss

    def step(name: str):
        def go():
            opts[name].zero_grad(set_to_none=True)
            loss_fn(sides[name]).backward()
            opts[name].step()
        return go

    with torch.no_grad():                           # same loss before training: same computation
        same = abs(loss_fn(ours).item() - loss_fn(ref).item())
    t = alternated({name: step(name) for name in sides}, s["repeats"], device=device)
    mem = {k: measure_training(m, loss_fn, opts[k]) for k, m in sides.items()}
    total = {k: v.total for k, v in mem.items()}
    act = {k: v.activations for k, v in mem.items()}
    what = "SmolLM2-135M" if s["layers"] is None else f"Llama (SmolLM2 shape, {s['layers']} layers, random)"
    shape = f"{what}, batch {s['batch']}x{s['tokens']}, {s['virtual']} virtual tokens, {device}"
    return [
        Row("prompt", "prompt-tuning step time vs peft", t["lmcourse"] * 1e3, t["peft"] * 1e3, "ms",
            t["lmcourse"] / t["peft"], "<= 1.1x", t["lmcourse"] / t["peft"] <= 1.1,
            f"lmcourse / peft median of {s['repeats']} alternated steps; {shape}; |loss diff| {same:.1e}"),
        Row("prompt", "prompt-tuning step memory vs peft", total["lmcourse"], total["peft"], "bytes",
            total["lmcourse"] / total["peft"], "<= 1.0x", total["lmcourse"] <= total["peft"],
            "params + grads + Adam state + saved activations of one step, lmcourse / peft"),
        Row("prompt", "prompt-tuning activations vs peft", act["lmcourse"], act["peft"], "bytes",
            act["lmcourse"] / act["peft"], "<= 1.0x", act["lmcourse"] <= act["peft"],
            "tensors saved for backward, lmcourse / peft"),
    ]
