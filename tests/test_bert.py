"""lmcourse BERT: golden tests with the real MiniLM weights against transformers.BertModel; masking rule."""
import pytest
import torch

from lmcourse.models.bert import BERT, BertConfig, BertForPreTraining, bert_pretraining_loss, mask_tokens
from lmcourse.models.gpt import TokenError

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def minilm():
    from lmcourse.errors import AssetError
    from lmcourse.models.pretrained import load
    try:
        ours, tok = load("minilm")
        ref, _ = load("minilm", kind="hf")
    except AssetError as e:
        pytest.skip(str(e))
    return ours, ref, tok


def _batch(tok, pairs):
    encs = [tok.encode(*p) for p in pairs]
    t = max(len(e.ids) for e in encs)
    ids = torch.tensor([e.ids + [0] * (t - len(e.ids)) for e in encs])
    types = torch.tensor([e.type_ids + [0] * (t - len(e.ids)) for e in encs])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (t - len(e.ids)) for e in encs])
    return ids, types, mask


@pytest.mark.golden
def test_minilm_same_hidden_states_on_real_sentences(minilm):
    ours, ref, tok = minilm
    pairs = [("The movie was wonderful, I loved every minute.",),
             ("Self-driving cars are not worth the risk.", "I would never let one drive my kids."),  # a pair
             ("ok",)]                                                                             # short + padding
    ids, types, mask = _batch(tok, pairs)
    assert types[1].sum() > 0                                           # the pair really has segment B
    with torch.no_grad():
        h, pooled = ours(ids, types, mask)
        r = ref(input_ids=ids, token_type_ids=types, attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(h[real], r.last_hidden_state[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, r.pooler_output, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
def test_minilm_length_one_and_full_context(minilm):
    ours, ref, _ = minilm
    for shape in [(1, 1), (1, 512)]:
        ids = torch.randint(1000, 30000, shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            torch.testing.assert_close(ours(ids)[0], ref(input_ids=ids).last_hidden_state, atol=1e-5, rtol=1e-5)


@pytest.mark.golden
def test_bert_for_pretraining_heads_match():
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=16)
    ref = transformers.BertForPreTraining(cfg).eval()
    from lmcourse.models.hf import bert_from_hf
    ours = bert_from_hf(ref, heads=True)
    ids = torch.randint(0, 60, (2, 9))
    types = torch.tensor([[0] * 5 + [1] * 4] * 2)
    with torch.no_grad():
        mlm, nsp = ours(ids, types)
        r = ref(input_ids=ids, token_type_ids=types)
    torch.testing.assert_close(mlm, r.prediction_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(nsp, r.seq_relationship_logits, atol=1e-5, rtol=1e-5)


def test_masking_rule_statistics():
    ids = torch.randint(5, 1000, (64, 128), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    corrupted, labels = mask_tokens(ids, mask_id=3, vocab_size=1000, special_mask=special,
                                    generator=torch.Generator().manual_seed(1), first_normal_id=5)
    chosen = labels != -100
    assert not chosen[:, 0].any()                                    # [CLS] never chosen
    assert abs(chosen[:, 1:].float().mean().item() - 0.15) < 0.01
    masked = (corrupted == 3) & chosen
    same = (corrupted == ids) & chosen
    assert abs(masked.sum().item() / chosen.sum().item() - 0.8) < 0.03
    assert abs(same.sum().item() / chosen.sum().item() - 0.1 - 0.1 / 995) < 0.03
    assert torch.equal(corrupted[~chosen], ids[~chosen])              # unchosen tokens untouched
    assert torch.equal(labels[chosen], ids[chosen])


def test_pretraining_loss_only_on_masked_positions():
    torch.manual_seed(0)
    m = BertForPreTraining(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=8, dropout=0.0))
    ids = torch.randint(4, 40, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[0, 3] = ids[0, 3]
    loss = bert_pretraining_loss(m, {"input_ids": ids, "labels": labels})
    logits, _ = m(ids)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits[0, 3:4], ids[0, 3:4]))


def test_bad_input():
    m = BERT(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=8))
    with pytest.raises(TokenError, match="longer than the context of 8"):
        m(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(TokenError, match="outside the vocabulary"):
        m(torch.tensor([[1, 40]]))
    with pytest.raises(TokenError, match="segment"):
        m(torch.tensor([[1, 2]]), torch.tensor([[0, 2]]))
