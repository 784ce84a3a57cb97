import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from igpt_forensics.generators.config import (
    _PRESETS,
    GPTConfig,
    list_presets,
    preset_config,
    register_preset,
)
from igpt_forensics.generators.model import PixelGPT, create_model, uniforms

from igpt_forensics.errors import InputError

V, SIDE, N = 16, 8, 64  # 16 colors, 8x8 images: 64 tokens


def tiny(seed: int = 0, peaky: bool = True) -> PixelGPT:
    """A random tiny model; peaky scales the head so predictions are far from uniform."""
    torch.manual_seed(seed)
    model = create_model("tiny", vocab_size=V, image_size=SIDE).eval()
    if peaky:
        with torch.no_grad():
            model.lm_head.weight.normal_(0.0, 0.6)
    return model


def rand_tokens(b: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (b, N), generator=torch.Generator().manual_seed(seed))


def box_mask(b: int) -> torch.Tensor:
    mask = torch.zeros(b, SIDE, SIDE, dtype=torch.bool)
    mask[:, 2:5, 3:7] = True
    return mask.view(b, N)


# -- forward and cache ------------------------------------------------------------------------

def test_cached_forward_equals_uncached():
    model = tiny()
    tokens = rand_tokens(3)
    inputs = torch.cat([torch.full((3, 1), model.start_token), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        full = model(inputs)
        cache = model.new_cache(3)
        parts = [model(inputs[:, :5], cache, start=0), model(inputs[:, 5:20], cache, start=5)]
        parts += [model(inputs[:, j : j + 1], cache, start=j) for j in range(20, N)]
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)


def test_logits_for_predicts_each_token_from_the_ones_before():
    model = tiny()
    a, b = rand_tokens(1, seed=1), rand_tokens(1, seed=2)
    b[:, :30] = a[:, :30]
    with torch.no_grad():
        la, lb = model.logits_for(a), model.logits_for(b)
    # logits[:, i] depend on tokens[:, :i] only: equal through i = 30, different after
    assert torch.allclose(la[:, :31], lb[:, :31], atol=1e-6)
    assert not torch.allclose(la[:, 31:], lb[:, 31:], atol=1e-3)
    assert la.shape == (1, N, V)


# -- sampling -------------------------------------------------------------------------------

def test_sample_with_cache_equals_without():
    model = tiny()
    known = rand_tokens(4)
    mask = torch.rand(4, N, generator=torch.Generator().manual_seed(3)) < 0.4
    seeds = [11, 12, 13, 14]
    cached = model.sample(known, mask, seeds, use_cache=True)
    uncached = model.sample(known, mask, seeds, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("kind", ["box", "top_half", "random", "full", "none"])
def test_sample_keeps_known_tokens(kind):
    model = tiny()
    known = rand_tokens(3)
    if kind == "box":
        mask = box_mask(3)
    elif kind == "top_half":
        mask = torch.zeros(3, N, dtype=torch.bool)
        mask[:, : N // 2] = True
    elif kind == "random":
        mask = torch.rand(3, N, generator=torch.Generator().manual_seed(5)) < 0.3
    elif kind == "full":
        mask = torch.ones(3, N, dtype=torch.bool)
    else:
        mask = torch.zeros(3, N, dtype=torch.bool)
    out = model.sample(known, mask, [1, 2, 3])
    assert out.dtype == torch.long and out.shape == known.shape
    assert torch.equal(out[~mask], known[~mask])
    assert out.min() >= 0 and out.max() < V
    if kind == "none":
        assert torch.equal(out, known)
    else:  # the model really drew the masked tokens: they are not just the known ones
        assert not torch.equal(out[mask], known[mask])


def test_sample_ignores_known_tokens_after_the_masked_ones():
    # Raster order: the box is drawn from the pixels before it, never from those after it.
    model = tiny()
    mask = box_mask(2)
    last = int(mask[0].nonzero().max())
    a = rand_tokens(2, seed=1)
    b = a.clone()
    b[:, last + 1 :] = rand_tokens(2, seed=9)[:, last + 1 :]
    out_a, out_b = model.sample(a, mask, [5, 6]), model.sample(b, mask, [5, 6])
    assert torch.equal(out_a[mask], out_b[mask])
    c = a.clone()
    c[:, :10] = rand_tokens(2, seed=8)[:, :10]  # pixels before the box do matter
    assert not torch.equal(model.sample(c, mask, [5, 6])[mask], out_a[mask])


def test_sample_is_independent_of_batch():
    model = tiny()
    known = rand_tokens(4)
    mask = torch.rand(4, N, generator=torch.Generator().manual_seed(7)) < 0.5
    seeds = [101, 7, 55, 3]
    batch = model.sample(known, mask, seeds)
    for i in range(4):
        alone = model.sample(known[i : i + 1], mask[i : i + 1], [seeds[i]])
        assert torch.equal(alone[0], batch[i])
    # and a tensor of seeds gives what the list gives
    assert torch.equal(model.sample(known, mask, torch.tensor(seeds)), batch)


def test_sample_seeds_decide_the_output():
    model = tiny()
    known = rand_tokens(2)
    mask = torch.ones(2, N, dtype=torch.bool)
    first = model.sample(known, mask, [1, 2])
    assert torch.equal(model.sample(known, mask, [1, 2]), first)
    other = model.sample(known, mask, [3, 4])
    assert not torch.equal(other[0], first[0]) and not torch.equal(other[1], first[1])
    # same seed for both images of one batch: same image (the known tokens are all masked)
    twins = model.sample(known, mask, [9, 9])
    assert torch.equal(twins[0], twins[1])


def greedy(model: PixelGPT, known, mask) -> torch.Tensor:
    """Independent reference: argmax with a full forward per position, no cache."""
    tokens = known.clone()
    with torch.no_grad():
        for j in range(N):
            best = model.logits_for(tokens)[:, j].argmax(-1)
            tokens[:, j] = torch.where(mask[:, j], best, tokens[:, j])
    return tokens


def test_top_k_1_and_tiny_top_p_are_greedy():
    model = tiny()
    known = rand_tokens(3)
    mask = torch.rand(3, N, generator=torch.Generator().manual_seed(2)) < 0.5
    expected = greedy(model, known, mask)
    assert torch.equal(model.sample(known, mask, [1, 2, 3], top_k=1), expected)
    assert torch.equal(model.sample(known, mask, [1, 2, 3], top_p=1e-6), expected)
    # a temperature near zero is greedy too
    assert torch.equal(model.sample(known, mask, [4, 5, 6], temperature=1e-4), expected)


def test_top_k_and_top_p_restrict_the_choices():
    model = tiny()
    known = rand_tokens(8)
    mask = torch.ones(8, N, dtype=torch.bool)
    for kw in [dict(top_k=3), dict(top_p=0.5)]:
        out = model.sample(known, mask, list(range(8)), **kw)
        with torch.no_grad():
            probs = model.logits_for(out).softmax(-1)
        above = probs > probs.gather(-1, out[..., None])  # tokens ranked above the drawn one
        assert above.any(-1).any()  # not degenerate greedy
        if "top_k" in kw:
            assert (above.sum(-1) < 3).all()
        else:  # a token is kept only while those above it hold less than top_p of the mass
            assert ((probs * above).sum(-1) < 0.5 + 1e-5).all()


def test_sample_validates_inputs():
    model = tiny()
    known = rand_tokens(2)
    mask = torch.ones(2, N, dtype=torch.bool)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(known, mask, [1, 2], temperature=0)
    with pytest.raises(ValueError, match="mask must be a bool"):
        model.sample(known, mask.long(), [1, 2])
    with pytest.raises(ValueError, match="mask shape"):
        model.sample(known, mask[:, :10], [1, 2])
    with pytest.raises(ValueError, match="seeds"):
        model.sample(known, mask, [1])
    with pytest.raises(ValueError, match="must lie in"):
        model.sample(known + V, mask, [1, 2])
    with pytest.raises(ValueError, match=r"shape \(B >= 1, 64\)"):
        model.sample(known[:, :32], mask[:, :32], [1, 2])
    with pytest.raises(ValueError, match="top-p"):
        model.sample(known, mask, [1, 2], top_p=0.0)
    with pytest.raises(ValueError, match="top-k"):
        model.sample(known, mask, [1, 2], top_k=-1)
    with pytest.raises(ValueError, match="seeds must lie"):
        model.sample(known, mask, [-1, 2])


def test_uniforms_are_counter_based_and_uniform():
    u = uniforms([3, 4], 4096)
    assert u.shape == (2, 4096) and u.dtype == np.float64
    assert np.array_equal(uniforms([4], 100)[0], u[1, :100])  # depends on (seed, position) only
    assert not np.array_equal(u[0], u[1])
    assert ((u >= 0) & (u < 1)).all()
    # a uniform's mean is 1/2 and variance 1/12: 8192 draws land within a few standard errors
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / u.size)
    counts = np.histogram(u, bins=8, range=(0, 1))[0]
    assert counts.min() > 0.85 * u.size / 8


# -- likelihood statistics -------------------------------------------------------------------

def test_token_stats_match_direct_computation():
    model = tiny()
    tokens = rand_tokens(5)
    stats = model.token_stats(tokens)
    with torch.no_grad():
        logits = model.logits_for(tokens).double()
    nll = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")
    logp = logits.log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    var = (logp.exp() * logp**2).sum(-1) - entropy**2
    assert all(v.dtype == torch.float32 and v.shape == (5, N) for v in stats.values())
    assert torch.allclose(stats["nll"].double(), nll, atol=1e-5)
    assert torch.allclose(stats["entropy"].double(), entropy, atol=1e-5)
    assert torch.allclose(stats["var"].double(), var, atol=1e-4)
    assert stats["var"].mean() > 0.1  # the peaky head makes these non-trivial


def test_token_stats_chunking_does_not_change_results():
    model = tiny()
    tokens = rand_tokens(5)
    one, many = model.token_stats(tokens, batch_size=1), model.token_stats(tokens, batch_size=64)
    for k in one:
        assert torch.allclose(one[k], many[k], atol=1e-6, rtol=0)


def test_own_samples_have_nll_near_entropy():
    # For tokens drawn from the model, nll - entropy has mean 0 and variance var at each
    # position, so the summed excess over M tokens is within a few sqrt(sum var) of 0. A sampler
    # that drew from the wrong position's distribution, or skewed the inverse CDF, fails this.
    model = tiny()
    b = 48
    out = model.sample(rand_tokens(b), torch.ones(b, N, dtype=torch.bool), list(range(b)))
    stats = model.token_stats(out)
    excess = (stats["nll"] - stats["entropy"]).double().sum()
    z = excess / stats["var"].double().sum().sqrt()
    assert abs(z) < 4.5, z
    # while real-looking but foreign tokens (uniform noise) are far less likely than samples
    noise = model.token_stats(rand_tokens(b))
    z_noise = (noise["nll"] - noise["entropy"]).double().sum() / noise["var"].double().sum().sqrt()
    assert z_noise > 20


def test_loss_falls_when_overfitting_a_tiny_batch():
    torch.manual_seed(0)
    model = create_model("tiny", vocab_size=V, image_size=SIDE)
    tokens = rand_tokens(4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = model.loss(tokens).item()
    assert abs(first - math.log(V)) < 0.1  # a fresh model is close to uniform
    for _ in range(50):
        loss = model.loss(tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = model.loss(tokens).item()
    assert last < 0.25 * first, (first, last)


def test_dropout_is_off_while_sampling_and_scoring():
    torch.manual_seed(0)
    model = create_model("tiny", vocab_size=V, image_size=SIDE, dropout=0.5).train()
    tokens = rand_tokens(2)
    a, b = model.token_stats(tokens), model.token_stats(tokens)
    assert torch.equal(a["nll"], b["nll"])
    mask = torch.ones(2, N, dtype=torch.bool)
    assert torch.equal(model.sample(tokens, mask, [1, 2]), model.sample(tokens, mask, [1, 2]))
    assert model.training  # and the caller's mode is restored


# -- config and presets ----------------------------------------------------------------------

def test_config_round_trip_and_unknown_keys():
    config = GPTConfig(vocab_size=V, image_size=SIDE, n_layer=2, n_head=4, n_embd=32)
    assert GPTConfig.from_dict(config.to_dict()) == config
    assert config.n_positions == N
    with pytest.raises(ValueError, match="unknown GPTConfig keys.*'n_layers'"):
        GPTConfig.from_dict({**config.to_dict(), "n_layers": 3})
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(n_head=3, n_embd=32)


def expected_params(c: GPTConfig) -> int:
    d = c.n_embd
    block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    return (c.vocab_size + 1) * d + c.n_positions * d + c.n_layer * block + d + d * c.vocab_size


def test_presets():
    assert {"tiny", "small", "igpt-s"} <= set(list_presets())
    model = create_model("tiny")
    assert (model.config.n_layer, model.config.n_head, model.config.n_embd) == (2, 2, 64)
    assert model.num_params() == expected_params(model.config)
    small = create_model("small")
    assert small.num_params() == expected_params(small.config)
    assert 3.6e6 < small.num_params() < 3.8e6
    with torch.device("meta"):  # iGPT-S's shape, counted without allocating 76M parameters
        igpt_s = create_model("igpt-s")
    assert (igpt_s.config.n_layer, igpt_s.config.n_head, igpt_s.config.n_embd) == (24, 8, 512)
    assert igpt_s.num_params() == expected_params(igpt_s.config)
    assert 76e6 < igpt_s.num_params() < 77e6
    assert preset_config("small", vocab_size=64).vocab_size == 64
    with pytest.raises(ValueError, match="unknown preset 'huge'.*igpt-s.*small.*tiny"):
        create_model("huge")
    with pytest.raises(ValueError, match="unknown GPTConfig keys"):
        create_model("tiny", n_layers=3)


def test_register_preset_adds_a_named_shape():
    def wide():
        return dict(n_layer=1, n_head=4, n_embd=32)

    register_preset("test-wide")(wide)
    try:
        assert "test-wide" in list_presets()
        assert create_model("test-wide", vocab_size=V, image_size=SIDE).config.n_head == 4
        with pytest.raises(ValueError, match="already registered"):
            register_preset("test-wide")(wide)
    finally:
        _PRESETS.pop("test-wide")


def test_raises_input_error_for_the_cli():
    with pytest.raises(InputError):
        create_model("nope")
