"""Pixel-GPT: an iGPT-style causal transformer over palette tokens in raster order.

Layer for layer this is OpenAI's iGPT as Hugging Face ships it (ImageGPTForCausalImageModeling),
and the parameter names are the same, so official weights load by transposing GPT-2's Conv1D
matrices and nothing else (see ``hf_import.py``). Where iGPT departs from GPT-2:

- the norm is RMS-style, ``x / sqrt(mean(x^2) + 1e-5) * weight``: no mean-centering, no bias;
- the MLP activation is quick_gelu, ``x * sigmoid(1.702 x)``;
- the token embedding has one extra row, the start-of-sequence token. Feeding it first lets the
  model predict the very first pixel too, so every pixel of an image gets a likelihood. The head
  has ``vocab_size`` outputs: the start token is never predicted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from igpt_forensics.errors import InputError

from .config import GPTConfig, check_sampling, preset_config

NORM_EPS = 1e-5  # iGPT's layer_norm_epsilon
# Scoring on CPU goes in passes of at most this many tokens (2 images at 32x32). Then every
# temporary (the MLP's 4x-wide activations, the logits) stays under glibc's 32 MB mmap limit
# and is reused from the heap; a 64-image pass maps and zero-fills its temporaries afresh, and
# those page faults cost about a fifth of the time on a 2-core machine.
CPU_PASS_TOKENS = 2048
class KVCache:
    """Keys and values of every layer for positions 0..n_positions-1, allocated once.

    Static shapes mean decoding never reallocates or concatenates; ``forward`` writes positions
    start..start+T-1 in place and attends over 0..start+T-1. Left uninitialized: a position is
    always written before it is read; zero-filling (537 MB at batch 64) took about a tenth of a
    128-token sampling run, and the pages of positions never reached now cost no memory.
    """

    def __init__(self, config: GPTConfig, batch_size: int, device=None, dtype=None):
        shape = (config.n_layer, batch_size, config.n_head, config.n_positions,
                 config.n_embd // config.n_head)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)

    @property
    def batch_size(self) -> int:
        return self.keys.shape[1]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v fused, with bias
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout

    def forward(self, x, cache: KVCache | None, layer: int, start: int):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        dropout_p = self.dropout if self.training else 0.0
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            end = start + T
            cache.keys[layer, :, :, start:end] = k
            cache.values[layer, :, :, start:end] = v
            k, v = cache.keys[layer, :, :, :end], cache.values[layer, :, :, :end]
            if T == 1:
                # A single query is the newest position and may see every key: no mask. Two
                # plain matrix products beat the fused kernel here, whose fixed cost per call
                # (buffers sized for long queries) is most of a decode step.
                att = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2)).softmax(-1)
                if dropout_p:
                    att = F.dropout(att, dropout_p)
                y = torch.matmul(att, v)
            else:
                # is_causal=True aligns the mask top-left (query i sees keys 0..i), which is
                # wrong once cached keys precede the queries: query i sits at position start + i.
                mask = (torch.arange(end, device=x.device)
                        <= torch.arange(start, end, device=x.device)[:, None])
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class RMSNorm(nn.RMSNorm):
    """iGPT's norm, ``x / sqrt(mean(x^2) + eps) * weight``: nn.RMSNorm's numbers in fewer ops.

    On CPU the built-in norm runs about ten small kernels (dtype round trips included), a
    visible share of a one-token decode step; these six give bit-identical results.
    """

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        x = self.c_fc(x)
        if x.requires_grad:
            x = x * torch.sigmoid(1.702 * x)  # quick_gelu, as iGPT was trained with
        else:  # the same numbers in place: no gradient needs the pre-activation kept
            x.mul_(x.mul(1.702).sigmoid_())
        return self.dropout(self.c_proj(x))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = RMSNorm(config.n_embd, eps=NORM_EPS)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = RMSNorm(config.n_embd, eps=NORM_EPS)
        self.mlp = MLP(config)

    def forward(self, x, cache: KVCache | None, layer: int, start: int):
        x = x + self.attn(self.ln_1(x), cache, layer, start)
        return x + self.mlp(self.ln_2(x))


class PixelGPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size + 1, config.n_embd),  # last row: start token
            wpe=nn.Embedding(config.n_positions, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=RMSNorm(config.n_embd, eps=NORM_EPS),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2: every block adds two residual branches, so shrink their output projections to
        # keep the residual stream's variance from growing with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def start_token(self) -> int:
        return self.config.vocab_size

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch_size: int, device=None, dtype=None) -> KVCache:
        p = self.lm_head.weight
        return KVCache(self.config, batch_size, device or p.device, dtype or p.dtype)

    def forward(self, inputs: torch.Tensor, cache: KVCache | None = None, start: int = 0):
        """Logits (B, T, vocab_size) for model inputs (B, T) at positions start..start+T-1.

        Inputs are the start token followed by tokens, so the logits at position i predict
        token i. With a cache, the keys and values of these positions are stored and attention
        also sees the positions before ``start`` cached by earlier calls.
        """
        return self.lm_head(self.transformer.ln_f(self._trunk(inputs, cache, start)))

    def _trunk(self, inputs: torch.Tensor, cache: KVCache | None, start: int) -> torch.Tensor:
        """The last block's output (B, T, n_embd), before the final norm and the head."""
        B, T = inputs.shape
        if start < 0 or start + T > self.config.n_positions:
            raise InputError(f"positions {start}..{start + T - 1} are outside "
                             f"0..{self.config.n_positions - 1}")
        if cache is None and start != 0:
            raise InputError("start > 0 needs the cache that holds the earlier positions")
        if cache is not None and cache.batch_size != B:
            raise InputError(f"cache holds {cache.batch_size} sequences, inputs have {B}")
        pos = self.transformer.wpe.weight[start : start + T]  # a slice, not a lookup
        x = self.transformer.drop(self.transformer.wte(inputs) + pos)
        for layer, block in enumerate(self.transformer.h):
            x = block(x, cache, layer, start)
        return x

    def logits_for(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N) tokens -> (B, N, V) logits; logits[:, i] is the prediction of tokens[:, i]."""
        self._check_tokens(tokens)
        start = torch.full_like(tokens[:, :1], self.start_token)
        return self(torch.cat([start, tokens[:, :-1]], dim=1))

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per token, in nats."""
        logits = self.logits_for(tokens)
        return F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())

    def token_stats(self, tokens: torch.Tensor, batch_size: int = 64) -> dict[str, torch.Tensor]:
        """Per-token likelihood statistics, each a float32 CPU tensor (B, N), in nats.

        nll: -log p(actual token); entropy: H of the predictive distribution; var: variance of
        the surprisal -log p(X) under that distribution. For images the model could have
        sampled, nll - entropy has mean 0 and variance var, which is what detectors test.

        ``batch_size`` images go through the model at once; on CPU a pass also stops at about
        ``CPU_PASS_TOKENS`` tokens (the results do not depend on how the batch is split).
        """
        self._check_tokens(tokens)
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        device = self.lm_head.weight.device
        if device.type == "cpu":
            batch_size = min(batch_size, max(1, CPU_PASS_TOKENS // tokens.shape[1]))
        out: dict[str, list[torch.Tensor]] = {"nll": [], "entropy": [], "var": []}
        with self._evaluating(), torch.inference_mode():
            for chunk in tokens.split(batch_size):
                chunk = chunk.to(device)
                logp = F.log_softmax(self.logits_for(chunk).float(), dim=-1)
                p = logp.exp()
                entropy = -(p * logp).sum(-1)
                # sum p (log p + H)^2 rather than E[(log p)^2] - H^2: no cancellation in float32
                var = (p * (logp + entropy[..., None]) ** 2).sum(-1)
                out["nll"].append(-logp.gather(-1, chunk[..., None]).squeeze(-1).cpu())
                out["entropy"].append(entropy.cpu())
                out["var"].append(var.cpu())
        return {k: torch.cat(v) for k, v in out.items()}

    @torch.inference_mode()
    def sample(self, known: torch.Tensor, mask: torch.Tensor, seeds: torch.Tensor | Sequence[int],
               temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
               use_cache: bool = True, watermark=None) -> torch.Tensor:
        """Fill the masked tokens (mask True) by sampling in raster order; keep the rest.

        Raster order has no notion of "after": a masked pixel is drawn from p(x_j | x_<j), so
        it sees the known pixels above and to its left, never those below or to its right.
        Known pixels after a masked one are not resampled but forced to their true value, and
        the masked pixels that follow them condition on those true values.

        Each image draws its own random numbers from (seed, position) alone, so an image gets
        the same tokens whatever else is in the batch, on any device and batch size.

        ``watermark``: an object with ``logit_bias(tokens, position) -> (B, V)`` (e.g.
        `igpt_forensics.watermark.WatermarkKey`), added to the logits of every drawn pixel;
        it sees the tokens drawn so far. None: no bias, the same tokens as without it.
        """
        self._check_tokens(known, "known")
        B, N = known.shape
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise InputError("mask must be a bool tensor (True = synthesize)")
        if mask.shape != known.shape:
            raise InputError(f"mask shape {tuple(mask.shape)} != known shape {tuple(known.shape)}")
        check_sampling(temperature, top_k, top_p)
        u = uniforms(seeds, N)
        if len(u) != B:
            raise InputError(f"got {len(u)} seeds for {B} images")

        device = self.lm_head.weight.device
        u = torch.from_numpy(u).to(device)
        mask = mask.to(device)
        tokens = known.to(device).clone()
        start = torch.full_like(tokens[:, :1], self.start_token)
        inputs = torch.cat([start, tokens[:, :-1]], dim=1)  # inputs[:, j] precedes tokens[:, j]
        cache = self.new_cache(B, device) if use_cache else None
        p = 0  # with a cache: inputs 0..p-1 are already in it
        with self._evaluating():
            for j in mask.any(0).nonzero().flatten().tolist():
                # One chunk feeds everything known since the last draw (the whole given prefix
                # the first time), so runs of known pixels cost one forward, not one each.
                if cache is None:
                    h = self._trunk(inputs[:, : j + 1], None, 0)[:, -1]
                else:
                    h = self._trunk(inputs[:, p : j + 1], cache, p)[:, -1]
                    p = j + 1
                logits = self.lm_head(self.transformer.ln_f(h))  # the last position's only
                if watermark is not None:
                    logits = logits.float() + watermark.logit_bias(tokens, j)
                drawn = _draw(logits, u[:, j], temperature, top_k, top_p)
                tokens[:, j] = torch.where(mask[:, j], drawn, tokens[:, j])
                if j + 1 < N:
                    inputs[:, j + 1] = tokens[:, j]
        # the known tokens after the last masked position need no model at all
        return tokens.to(known.device)

    def _check_tokens(self, tokens, name: str = "tokens"):
        N, V = self.config.n_positions, self.config.vocab_size
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long:
            raise InputError(f"{name} must be an int64 (long) tensor")
        if tokens.dim() != 2 or tokens.shape[1] != N or tokens.shape[0] < 1:
            raise InputError(f"{name} must have shape (B >= 1, {N}) for "
                             f"{self.config.image_size}x{self.config.image_size} images, "
                             f"got {tuple(tokens.shape)}")
        if tokens.min() < 0 or tokens.max() >= V:
            raise InputError(f"{name} must lie in 0..{V - 1} (the palette's colors)")

    @contextmanager
    def _evaluating(self):
        # Sampling and scoring must be deterministic: no dropout, whatever mode we were in.
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)


def _draw(logits, u, temperature: float, top_k: int, top_p: float):
    """One token per row by inverse CDF at the given uniforms u (B,) in [0, 1)."""
    logits = logits.float()
    if temperature != 1.0:  # x / 1.0 == x: skip a kernel per step in the common case
        logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = F.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Drop a token once those ranked above it hold top_p of the mass: what is left is the
        # smallest set reaching top_p, and the top token (nothing above it) always stays.
        drop_sorted = sorted_p.cumsum(-1) - sorted_p >= top_p
        probs = probs.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), 0.0)
    cdf = probs.double().cumsum(-1)
    # Scale u by the total instead of renormalizing; right=True skips zero-mass tokens.
    idx = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)
    return idx.clamp_(max=logits.shape[-1] - 1)


SEED_LIMIT = 2**44  # seed * 2^20 + position must fit in 64 bits
MAX_POSITIONS = 2**20


def uniforms(seeds: torch.Tensor | Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """Uniform numbers in [0, 1), float64 (B, n): entry [i, j] depends on (seeds[i], j) only.

    A counter-based generator (splitmix64 of seed * 2^20 + position) rather than a stateful
    one, so image i's pixel j gets the same number in any batch, on any device, and when a
    run resumes partway.
    """
    if isinstance(seeds, torch.Tensor):
        seeds = seeds.detach().cpu().numpy()
    seeds = np.asarray(seeds)
    if seeds.ndim != 1 or not (seeds.dtype.kind in "iu" or seeds.size == 0):
        raise InputError(f"seeds must be a 1-D sequence of integers, got shape {seeds.shape} "
                         f"dtype {seeds.dtype}")
    if seeds.size and (seeds.min() < 0 or seeds.max() >= SEED_LIMIT):
        raise InputError(f"seeds must lie in 0..2^44-1, got {seeds.min()}..{seeds.max()}")
    if not 0 <= n <= MAX_POSITIONS:
        raise InputError(f"n must be in 0..{MAX_POSITIONS}, got {n}")
    x = (seeds.astype(np.uint64)[:, None] << np.uint64(20)) | np.arange(n, dtype=np.uint64)
    z = x + np.uint64(0x9E3779B97F4A7C15)  # uint64 arrays wrap silently, as the hash needs
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53  # top 53 bits: exact in float64


# -- presets: named shapes, found by name (add one with a decorated function) -----------------

def create_model(preset: str, **overrides) -> PixelGPT:
    """``create_model("small", vocab_size=64, image_size=16)``: a freshly initialized model."""
    return PixelGPT(preset_config(preset, **overrides))
