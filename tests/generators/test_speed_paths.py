"""The fast paths in generators/model.py give what the plain computation gives."""

import igpt_forensics.generators.model as model_module
import torch
import torch.nn as nn
import torch.nn.functional as F
from igpt_forensics.generators.config import GPTConfig
from igpt_forensics.generators.model import MLP, RMSNorm, _draw, create_model

V, SIDE, N = 16, 8, 64


def tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = create_model("tiny", vocab_size=V, image_size=SIDE).eval()
    with torch.no_grad():  # every parameter its own random values, biases and norms included
        for p in model.parameters():
            p.normal_(0.0, 0.3 if p.dim() > 1 else 0.5)
    return model


def rand_tokens(b: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, V, (b, N), generator=torch.Generator().manual_seed(seed))


def with_start(model, tokens):
    return torch.cat([torch.full_like(tokens[:, :1], model.start_token), tokens[:, :-1]], dim=1)


def test_rms_norm_is_bit_identical_to_torch_and_matches_imagegpt():
    norm = RMSNorm(32, eps=1e-5)
    ref = nn.RMSNorm(32, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
        ref.weight.copy_(norm.weight)
    x = torch.randn(3, 5, 32) * 4
    assert torch.equal(norm(x), ref(x))
    imagegpt = x / torch.sqrt(torch.mean(torch.square(x), -1, keepdim=True) + 1e-5) * norm.weight
    assert torch.allclose(norm(x), imagegpt, atol=1e-6)


def test_in_place_quick_gelu_without_grad_equals_the_autograd_path():
    torch.manual_seed(0)
    mlp = MLP(GPTConfig(n_embd=16, n_head=2))
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        fast = mlp(x)
    with torch.inference_mode():
        assert torch.equal(mlp(x), fast)
    slow = mlp(x.requires_grad_())  # the graph-building branch
    h = mlp.c_fc(x)
    assert torch.equal(slow, mlp.c_proj(h * torch.sigmoid(1.702 * h)))
    assert torch.equal(slow.detach(), fast)
    slow.sum().backward()  # and it still has a gradient
    assert x.grad is not None and mlp.c_fc.weight.grad.abs().sum() > 0


def test_single_query_decode_matches_the_full_causal_forward():
    # Decoding one token at a time takes the plain-matmul attention; the full forward takes
    # SDPA with is_causal. Their logits agree at every position, for every image of a batch.
    model = tiny()
    tokens = rand_tokens(5)
    inputs = with_start(model, tokens)
    with torch.inference_mode():
        full = model(inputs)
        cache = model.new_cache(5)
        steps = torch.cat([model(inputs[:, j : j + 1], cache, start=j) for j in range(N)], 1)
    assert torch.allclose(steps, full, atol=1e-5)


def test_uninitialized_cache_is_never_read():
    # The cache is torch.empty: every position must be written before attention reads it.
    model = tiny()
    inputs = with_start(model, rand_tokens(2))
    with torch.inference_mode():
        full = model(inputs)
        cache = model.new_cache(2)
        cache.keys.fill_(float("nan"))
        cache.values.fill_(float("nan"))
        parts = [model(inputs[:, :9], cache, start=0)]  # a prefill, then one token at a time
        parts += [model(inputs[:, j : j + 1], cache, start=j) for j in range(9, N)]
    out = torch.cat(parts, 1)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, full, atol=1e-5)


def test_sampling_draws_from_the_last_positions_logits():
    # sample() runs the head on the last position only; with top_k=1 it must pick the argmax
    # of the full forward's logits at every masked position (the greedy reference).
    model = tiny()
    known = rand_tokens(3)
    mask = torch.zeros(3, N, dtype=torch.bool)
    mask[:, 20:40] = True  # a known prefix (prefilled in one pass), then decoded tokens
    out = model.sample(known, mask, [1, 2, 3], top_k=1)
    tokens = known.clone()
    with torch.no_grad():
        for j in range(20, 40):
            tokens[:, j] = model.logits_for(tokens)[:, j].argmax(-1)
    assert torch.equal(out, tokens)
    assert torch.equal(model.sample(known, mask, [1, 2, 3], top_k=1, use_cache=False), tokens)


def test_temperature_one_skips_no_work_that_matters():
    logits = torch.randn(4, V) * 3
    u = torch.rand(4, dtype=torch.float64)
    cdf = F.softmax(logits, -1).double().cumsum(-1)
    expected = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)
    assert torch.equal(_draw(logits, u, 1.0, 0, 1.0), expected.clamp(max=V - 1))
    assert torch.equal(_draw(logits * 2, u, 2.0, 0, 1.0), _draw(logits, u, 1.0, 0, 1.0))


def test_scoring_passes_are_capped_on_cpu_without_changing_results(monkeypatch):
    model = tiny()
    tokens = rand_tokens(5)
    whole = model.token_stats(tokens, batch_size=64)
    monkeypatch.setattr(model_module, "CPU_PASS_TOKENS", 2 * N)  # two images per pass
    sizes = []
    logits_for = model.logits_for
    monkeypatch.setattr(model, "logits_for", lambda t: sizes.append(len(t)) or logits_for(t))
    capped = model.token_stats(tokens, batch_size=64)
    assert sizes == [2, 2, 1]
    for k in whole:
        assert torch.allclose(capped[k], whole[k], atol=1e-6, rtol=0)
