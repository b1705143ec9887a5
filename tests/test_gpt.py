"""lmcourse GPT: golden tests against transformers' GPT2LMHeadModel (shared weights), generation, bad input."""
import pytest
import torch

from lmcourse.models.gpt import GPT, GPTConfig, TokenError, flops_per_token

transformers = pytest.importorskip("transformers")


def hf_gpt2(vocab=101, ctx=12, layers=2, d=32, heads=4, seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=ctx, n_embd=d, n_layer=layers, n_head=heads,
                                  bos_token_id=0, eos_token_id=0, pad_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def pair():
    from lmcourse.models.hf import gpt_from_hf
    ref = hf_gpt2()
    return ref, gpt_from_hf(ref)


@pytest.mark.golden
@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (2, 5), (4, 12)])  # length 1 ... the full context
def test_same_logits_as_gpt2(pair, shape):
    ref, ours = pair
    x = torch.randint(0, 101, shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], ref(x).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
def test_same_loss_as_gpt2(pair):
    ref, ours = pair
    x = torch.randint(0, 101, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref_loss = ref(x, labels=x).loss                       # HF shifts the labels inside
        _, loss = ours(x[:, :-1], x[:, 1:])
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
def test_same_greedy_generation(pair):
    ref, ours = pair
    x = torch.randint(0, 101, (2, 3), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        theirs = ref.generate(x, max_new_tokens=9, do_sample=False, pad_token_id=0,
                              attention_mask=torch.ones_like(x))
    torch.testing.assert_close(ours.generate(x, 9, greedy=True), theirs)


@pytest.mark.golden
def test_round_trip_to_hf(pair):
    from lmcourse.models.hf import gpt_to_hf
    _, ours = pair
    back = gpt_to_hf(ours)
    x = torch.randint(0, 101, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(back(x).logits, ours(x)[0], atol=1e-5, rtol=1e-5)


def test_tied_embeddings_and_param_count():
    m = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=2, n_embd=16))
    assert m.lm_head.weight is m.wte.weight
    assert m.num_params(non_embedding=False) == sum(p.numel() for p in m.parameters())
    assert flops_per_token(m) == 6 * m.num_params() + 12 * 1 * 16 * 8


def test_generation_past_the_context_crops_and_top_k():
    m = GPT(GPTConfig(vocab_size=20, block_size=4, n_layer=1, n_head=2, n_embd=8)).eval()
    g = torch.Generator().manual_seed(0)
    out = m.generate(torch.zeros(2, 3, dtype=torch.long), 10, temperature=0.7, top_k=1, generator=g)
    assert out.shape == (2, 13)
    # top_k=1 is greedy
    assert torch.equal(out, m.generate(torch.zeros(2, 3, dtype=torch.long), 10, greedy=True))


def test_bad_input():
    m = GPT(GPTConfig(vocab_size=20, block_size=4, n_layer=1, n_head=2, n_embd=8))
    with pytest.raises(TokenError, match="longer than the context of 4"):
        m(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(TokenError, match="outside the vocabulary"):
        m(torch.tensor([[1, 20]]))
    with pytest.raises(TokenError, match="outside the vocabulary"):
        m(torch.tensor([[-1, 2]]))
    with pytest.raises(TokenError, match="integer"):
        m(torch.zeros(1, 3))
    with pytest.raises(TokenError, match="empty"):
        m(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        m.generate(torch.zeros(1, 1, dtype=torch.long), 2, temperature=0)
