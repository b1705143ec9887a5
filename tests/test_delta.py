"""Unit tests of lmcourse.delta (chapter 12): identity at init, what trains, save/load, bad inputs."""
import copy

import pytest
import torch
from torch import nn

from lmcourse.delta import (DeltaError, IntrinsicDimension, LadderSideNetwork, StructureSearch, add_adapters,
                            add_lora, bitfit, count_parameters, d_at, delta_state_dict, fingerprint, load_delta,
                            lora_as_parallel_adapter, merge_and_unload, merge_lora, prefix_as_interpolation,
                            save_delta, unmerge_lora)
from lmcourse.delta.intrinsic import Dense, Fastfood, fwht
from lmcourse.delta.unified import prefix_attention
from lmcourse.models import GPT, GPTConfig


def gpt(seed=0, n_embd=16):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=n_embd)).eval()


def tiny_bert():
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32)).eval()


IDS = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids)[0]


@pytest.mark.parametrize("kind,targets", [("sequential", ["out_proj", "fc2"]), ("parallel", ["ffn", "self_attn"])])
def test_adapters_start_as_identity_and_train_only_themselves(kind, targets):
    base, model = gpt(), gpt()
    deltas = add_adapters(model, targets, bottleneck=4, kind=kind)
    assert len(deltas) == 4
    assert torch.equal(logits(model), logits(base))
    n = count_parameters(model)
    per = 2 * (16 * 4 + 4 + 4 * 16 + 16) if kind == "sequential" else None
    if per:
        assert n["trainable"] == per * 2
    model.train()
    model(IDS, torch.roll(IDS, -1, 1))[1].backward()
    grads = {name for name, p in model.named_parameters() if p.grad is not None}
    assert grads and all(".delta_" in g for g in grads)
    assert all(p.grad is None for name, p in model.named_parameters() if ".delta_" not in name)


def test_adapters_on_hf_bert_identity():
    base = tiny_bert()
    model = copy.deepcopy(base)
    add_adapters(model, ["output.dense"], bottleneck=4)                       # attention and FFN outputs
    assert len([n for n, _ in model.named_modules() if n.endswith("delta_adapter")]) == 4
    ids = torch.randint(0, 60, (2, 5))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).last_hidden_state, base(input_ids=ids).last_hidden_state)


def test_bitfit_trains_exactly_the_biases():
    model = tiny_bert()
    names = bitfit(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.endswith(".bias")} == set(names)
    paper = bitfit(tiny_bert(), "paper")
    assert len(paper) == 2 * 2 and all("query.bias" in n or ("output.dense.bias" in n and "attention" not in n)
                                       for n in paper)


def test_bitfit_without_biases_is_an_error():
    model = nn.Sequential(nn.Linear(3, 3, bias=False))
    with pytest.raises(DeltaError, match="no bias"):
        bitfit(model)


def test_ladder_leaves_backbone_without_gradients():
    backbone = gpt()
    ladder = LadderSideNetwork(backbone, reduction=4, n_heads=2, causal=True)
    h0 = backbone.hidden_states(IDS)
    h = ladder(IDS)
    assert h.shape == h0.shape and torch.allclose(h, ladder.backbone_states(IDS)[-1])   # up = 0 at start
    h.pow(2).mean().backward()
    assert all(p.grad is None for p in backbone.parameters())
    side = [n for n, p in ladder.named_parameters() if p.grad is not None]
    assert side and all(n.startswith("delta_") for n in side)
    hf = LadderSideNetwork(tiny_bert(), reduction=4, n_heads=2)
    ids, mask = torch.randint(0, 60, (2, 5)), torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
    out = hf(input_ids=ids, attention_mask=mask)
    out.sum().backward()
    assert all(p.grad is None for p in hf.backbone.parameters())


def test_lora_on_lmcourse_gpt_merge_unmerge_and_errors():
    base, model = gpt(), gpt()
    add_lora(model, ["q_proj", "v_proj"], r=2, alpha=4)
    assert count_parameters(model)["trainable"] == 2 * 2 * 2 * (16 + 16)
    assert torch.equal(logits(model), logits(base))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("delta_lora.B"):
                p.normal_(0, 0.1)
    before = logits(model)
    merge_lora(model)
    torch.testing.assert_close(logits(model), before, rtol=1e-5, atol=1e-5)
    with pytest.raises(DeltaError, match="already merged"):
        merge_lora(model)
    unmerge_lora(model)
    with pytest.raises(DeltaError, match="not merged"):
        unmerge_lora(model)
    torch.testing.assert_close(logits(model), before, rtol=1e-5, atol=1e-5)
    plain = merge_and_unload(model)
    assert not any("delta_" in n for n in plain.state_dict())
    torch.testing.assert_close(logits(plain), before, rtol=1e-5, atol=1e-5)


def test_bad_targets_and_ranks():
    model = gpt()
    with pytest.raises(DeltaError, match="matches no Linear.*q_proj"):
        add_lora(model, ["query"], r=2)
    with pytest.raises(DeltaError, match="rank 17 is larger"):
        add_lora(gpt(), ["q_proj"], r=17)
    with pytest.raises(DeltaError, match="positive"):
        add_lora(gpt(), ["q_proj"], r=0)


def test_save_load_only_the_delta(tmp_path):
    model = gpt()
    add_lora(model, ["q_proj"], r=2)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "delta_" in n:
                p.normal_()
    path = tmp_path / "lora.safetensors"
    info = save_delta(model, path)
    assert info["tensors"] == 4 and info["bytes"] < 2000
    with pytest.raises(DeltaError, match="overwrite=True"):
        save_delta(model, path)
    save_delta(model, path, overwrite=True)
    other = gpt(seed=1)                            # same architecture, other weights: the delta fits
    add_lora(other, ["q_proj"], r=2)
    load_delta(other, path)
    for (n, a), (_, b) in zip(delta_state_dict(model).items(), delta_state_dict(other).items()):
        assert torch.equal(a, b), n
    wider = gpt(n_embd=32)                         # another base model: refused
    add_lora(wider, ["q_proj"], r=2)
    assert fingerprint(wider) != fingerprint(model)
    with pytest.raises(DeltaError, match="another base model"):
        load_delta(wider, path)
    more = gpt()
    add_lora(more, ["q_proj", "v_proj"], r=2)    # same base, other delta modules
    with pytest.raises(DeltaError, match="does not fit"):
        load_delta(more, path)
    merge_lora(other)
    with pytest.raises(DeltaError, match="merged"):
        save_delta(other, tmp_path / "x.safetensors")
    with pytest.raises(DeltaError, match="no delta file"):
        load_delta(model, tmp_path / "missing.safetensors")


def test_bitfit_delta_round_trip(tmp_path):
    model = tiny_bert()
    bitfit(model)
    sd = delta_state_dict(model)
    assert set(sd) == {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    save_delta(model, tmp_path / "b.safetensors")
    fresh = tiny_bert()
    bitfit(fresh)
    load_delta(fresh, tmp_path / "b.safetensors")


def test_fwht_and_projections():
    n = 8
    h = torch.tensor([[1.0]])
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    x = torch.randn(3, n)
    torch.testing.assert_close(fwht(x), x @ h.T)
    with pytest.raises(DeltaError, match="power-of-two"):
        fwht(torch.randn(6))
    f = Fastfood(d=5, D=100, seed=0)
    cols = torch.stack([f(torch.eye(5)[i]) for i in range(5)], 1)              # (D, d)
    assert cols.shape == (100, 5)
    assert 0.3 < cols.norm(dim=0).mean() < 3
    assert torch.allclose(f(torch.ones(5)), cols.sum(1), atol=1e-5)          # linear
    dense = Dense(d=5, D=100)
    torch.testing.assert_close(dense.P.norm(dim=0), torch.ones(5))


@pytest.mark.parametrize("projection", ["dense", "fastfood"])
def test_intrinsic_dimension(projection, tmp_path):
    base, model = gpt(), gpt()
    wrapped = IntrinsicDimension(model, d=10, projection=projection, seed=3)
    assert count_parameters(wrapped)["trainable"] == 10
    assert torch.equal(logits(wrapped), logits(base))
    wrapped(IDS, torch.roll(IDS, -1, 1))[1].backward()
    assert wrapped.delta_theta.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        wrapped.delta_theta.normal_()
    out = logits(wrapped)
    assert not torch.equal(out, logits(base))
    save_delta(wrapped, tmp_path / "i.safetensors")
    again = IntrinsicDimension(gpt(), d=10, projection=projection, seed=0)
    load_delta(again, tmp_path / "i.safetensors")                             # brings seed 3 with it
    torch.testing.assert_close(logits(again), out)
    with pytest.raises(DeltaError, match="larger than"):
        IntrinsicDimension(gpt(), d=10**7)
    assert d_at([10, 100, 1000], [0.2, 0.6, 0.9], 0.55) == 100 and d_at([1], [0.1], 0.5) is None


def test_unified_view_identities():
    torch.manual_seed(0)
    lin = nn.Linear(6, 5)
    from lmcourse.delta import LoRA
    lora = LoRA(lin, r=2, alpha=4).attach(lin)
    nn.init.normal_(lora.B)
    x = torch.randn(3, 6)
    a, b = lora_as_parallel_adapter(lora, x)
    torch.testing.assert_close(a, b)
    q, k, v, pk, pv = (torch.randn(t, 4) for t in (5, 5, 5, 3, 3))
    mixed, lam = prefix_as_interpolation(q, k, v, pk, pv)
    torch.testing.assert_close(mixed, prefix_attention(q, k, v, pk, pv))
    assert lam.shape == (5, 1) and (0 < lam).all() and (lam < 1).all()


def test_structure_search_prunes_to_keep():
    model = gpt()
    search = StructureSearch(model, {"lora": ["q_proj", "v_proj"], "adapter": ["fc2"]}, r=2, bottleneck=4)
    assert len(search.gates()) == 6
    assert search.penalty().item() == pytest.approx(6 * 1e-2)
    base = logits(gpt())
    assert torch.equal(logits(model), base)
    with torch.no_grad():
        for i, (_, d) in enumerate(search.deltas.values()):
            d.gate.fill_(i / 10)
    kept = search.prune(keep=2)
    assert len(kept) == 2 and set(search.gates()) == set(kept)
    assert sum(1 for n, _ in model.named_modules() if n.split(".")[-1].startswith("delta_")) == 2
    with pytest.raises(DeltaError, match="keep"):
        search.prune(keep=5)
    with pytest.raises(DeltaError, match="unknown candidate"):
        StructureSearch(gpt(), {"magic": ["fc2"]})


def test_deepcopy_keeps_deltas_separate_and_unload_keeps_adapters():
    model = gpt()
    add_lora(model, ["q_proj"], r=2)
    add_adapters(model, ["fc2"], bottleneck=2, freeze_model=False)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in twin.named_parameters():
            if n.endswith("delta_lora.B"):
                p.fill_(0.5)
    assert torch.equal(logits(model), logits(gpt()))          # the original is untouched
    assert not torch.equal(logits(twin), logits(model))
    plain = merge_and_unload(twin)
    names = [n for n, _ in plain.named_modules()]
    assert not any(n.endswith("delta_lora") for n in names) and any(n.endswith("delta_adapter") for n in names)
