"""lmcourse T5: golden test against transformers' T5ForConditionalGeneration built from a config."""
import pytest
import torch

from lmcourse.models.t5 import T5, T5Config, relative_position_bucket

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pair():
    from lmcourse.models.hf import t5_from_hf
    torch.manual_seed(0)
    cfg = transformers.T5Config(vocab_size=64, d_model=32, num_heads=4, d_kv=8, d_ff=64, num_layers=2,
                                num_decoder_layers=3, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                                relative_attention_num_buckets=8, relative_attention_max_distance=20)
    ref = transformers.T5ForConditionalGeneration(cfg).eval()
    return ref, t5_from_hf(ref)


@pytest.mark.golden
@pytest.mark.parametrize("s,t", [(1, 1), (7, 5), (30, 25)])  # length 1; longer than max_distance
def test_same_logits_as_t5(pair, s, t):
    ref, ours = pair
    g = torch.Generator().manual_seed(s)
    src, tgt = torch.randint(2, 64, (2, s), generator=g), torch.randint(2, 64, (2, t), generator=g)
    mask = torch.ones_like(src)
    mask[1, (s + 1) // 2:] = 0                                   # padding in the second source
    with torch.no_grad():
        r = ref(input_ids=src, attention_mask=mask, decoder_input_ids=tgt).logits
        torch.testing.assert_close(ours(src, tgt, mask), r, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
def test_same_loss_and_greedy_generation(pair):
    ref, ours = pair
    src, labels = torch.randint(2, 64, (2, 6)), torch.randint(2, 64, (2, 4))
    with torch.no_grad():
        torch.testing.assert_close(ours.loss(src, labels), ref(input_ids=src, labels=labels).loss,
                                   atol=1e-5, rtol=1e-5)
        theirs = ref.generate(src, max_new_tokens=6, do_sample=False, min_new_tokens=6, use_cache=False)
    ours_out = ours.generate(src, 6)
    n = min(ours_out.shape[1], theirs.shape[1] - 1)
    torch.testing.assert_close(ours_out[:, :n], theirs[:, 1:n + 1])


@pytest.mark.golden
def test_bucket_function_matches():
    from transformers.models.t5.modeling_t5 import T5Attention
    rel = torch.arange(-200, 200)[None, :]
    for bi in (True, False):
        torch.testing.assert_close(relative_position_bucket(rel, bi, 32, 128),
                                   T5Attention._relative_position_bucket(rel, bi, 32, 128))


def test_bad_input():
    m = T5(T5Config(vocab_size=10, d_model=16, n_heads=2, n_layers=1, d_ff=32))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        m(torch.tensor([[1, 10]]), torch.tensor([[0]]))
