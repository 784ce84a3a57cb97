"""Throughput of PixelGPT against transformers' ImageGPT, side by side in one run.

    python benchmarks/bench_speed.py --quick              # about 2 minutes on 2 cores
    python benchmarks/bench_speed.py --json speed.json    # the full run (about 10-15 minutes)
    python benchmarks/bench_speed.py --threads 1          # a machine shared with other jobs

Both models get the same shape (32x32 images, 512 colors, 4 layers, width 256, 8 heads: the
``small`` preset, ~3.7M parameters) and the same random weights: ours are copied into
``ImageGPTForCausalImageModeling`` (GPT-2 Conv1D matrices transposed, as ``hf_import`` does),
and the run checks that both give the same logits before timing anything.

What is timed (ours against theirs, same batch, same number of tokens):
- sampling: ``PixelGPT.sample`` with the first ``n`` pixels masked (all of them in the full
  run) against ``generate(do_sample=True, top_k=0)`` of ``n`` new tokens after the start token;
- scoring: ``PixelGPT.token_stats`` (log-likelihood, entropy and variance per pixel) against
  ImageGPT's forward pass (logits only), both in passes of the same size: what
  ``token_stats`` uses on this device (on CPU a pass stops at ``CPU_PASS_TOKENS`` tokens, 1
  image of 32x32), given to ImageGPT too. ImageGPT is also timed at 16 and 64 images per pass
  (``scoring_hf_passes``): its 64-image passes are slow for it (page faults), so a ratio
  against them would flatter ours;
- training: forward + backward + gradient clipping + AdamW step, as ``generators/train.py``
  does, against ImageGPT's forward + backward (no optimizer step).
The two sides alternate repetition by repetition and each reports its median, so a load that
comes and goes on a shared machine hits both alike. ``uptime``'s load average is recorded
before and after.

FLOPs are counted analytically, multiply-add = 2 FLOPs, for the work the model needs (the
masked half of causal attention is not counted, even where an implementation computes it):
- matmul weights P = n_layer * 12 * d^2 + d * V (q,k,v 3d^2, projection d^2, MLP 8d^2, head);
  embeddings, biases, norms and element-wise work are left out;
- one token that attends to c positions (itself and the c - 1 before it):
  2 P + 4 n_layer d c  (q.k over c keys and the weighted sum of c values, 2 d c each);
- a forward pass over N tokens: N * 2P + 4 n_layer d N (N + 1) / 2;
- sampling n tokens from the start: sum over c = 1..n of (2 P + 4 n_layer d c);
- a training step: 3x its forward (the backward pass costs twice the forward).
GFLOP/s are divided by this machine's fp32 matmul rate, measured by the same run with the same
thread count: a 1024 x 1024 x 1024 product (median of 3), taken once in every round of the
measurement it is compared with, so that both see the same load. Sampling is also compared with the memory bandwidth it needs: each decode step
reads every cached key and value, 4 n_layer d c bytes * 2 in float32, which no batch size
amortises.

Peak memory is the growth of the process's resident set (polled every 5 ms, after returning
freed memory to the OS) during the timed call, on CPU; ``torch.cuda.max_memory_allocated`` on
CUDA.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from igpt_forensics.generators.hf_import import CONV1D  # noqa: E402
from igpt_forensics.generators.model import CPU_PASS_TOKENS, PixelGPT, create_model  # noqa: E402

SIDE, COLORS = 32, 512
TARGETS = {"sampling_vs_hf": 10.0, "sampling_matmul_fraction": 0.40, "scoring_vs_hf": 8.0,
           "training_vs_hf": 3.0}
# Work per run: (quick, full)
PLAN = {
    "reps": (2, 3),
    "sample_tokens": (128, SIDE * SIDE),  # new tokens per image, ours and theirs
    "sample_batch": (16, 16),
    "sample_big_batch": (64, 64),
    "score_images": (8, 64),
    "train_batch": (4, 16),
    "batch_sweep": ((1, 16, 64), (1, 4, 16, 64, 128)),
    "sweep_tokens": (64, 256),
    "sizes": ((16, 32, 48, 64), (16, 32, 48, 64)),
    "size_batch": (1, 4),  # scoring and training
    "size_sample_batch": (0, 4),  # sampling whole images (0: skipped)
}


# -- measuring ---------------------------------------------------------------------------------

def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _trim_heap() -> None:
    try:  # hand freed memory back to the OS, so that RSS growth measures this call alone
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak extra memory (bytes) used inside the block: RSS growth on CPU, allocator on CUDA."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return self
        _trim_heap()
        self.base = self.top = _rss() if os.path.exists("/proc/self/statm") else 0
        self.stop = threading.Event()
        if self.base:
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self):
        while not self.stop.wait(0.005):
            self.top = max(self.top, _rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
            return
        self.stop.set()
        if self.base:
            self.thread.join()
            self.peak = max(self.top, _rss()) - self.base


MATMUL_PROBES: list[float] = []  # every matmul rate measured during the run


def race(cases: dict[str, Callable[[], object]], reps: int, device: torch.device,
         ) -> dict[str, dict]:
    """Run the cases in turn, ``reps`` rounds: median seconds and peak memory of each.

    Each round also measures the matmul rate, so that a case's fraction of it compares numbers
    taken under the same load.
    """
    times: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    peaks: dict[str, int] = {k: 0 for k in cases}
    probes = []
    for _ in range(reps):
        probes.append(matmul_rate(device, reps=3))
        for name, fn in cases.items():
            with PeakMemory(device) as mem:
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
            peaks[name] = max(peaks[name], mem.peak)
    MATMUL_PROBES.extend(probes)
    return {k: {"seconds": statistics.median(v), "all_seconds": [round(t, 4) for t in v],
                "cpu_seconds": statistics.median(cpu[k]),
                "matmul_gflop_s": statistics.median(probes),
                "peak_mb": round(peaks[k] / 2**20, 1)} for k, v in times.items()}


def matmul_rate(device: torch.device, reps: int = 10, n: int = 1024) -> float:
    """fp32 GFLOP/s of an n x n x n matrix product (median of reps)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    ts = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(ts) / 1e9


def read_bandwidth(device: torch.device, reps: int = 5, mb: int = 256) -> float:
    """GB/s of reading a tensor far larger than the caches (a sum), median of reps."""
    x = torch.ones(mb * 2**20 // 4, device=device)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        x.sum().item()
        ts.append(time.perf_counter() - t0)
    return x.numel() * 4 / statistics.median(ts) / 1e9


# -- FLOPs and bytes, analytically -------------------------------------------------------------

def matmul_params(model: PixelGPT) -> int:
    c = model.config
    return c.n_layer * 12 * c.n_embd**2 + c.n_embd * c.vocab_size


def forward_flops(model: PixelGPT, n_tokens: int) -> float:
    c = model.config
    return n_tokens * 2 * matmul_params(model) + 4 * c.n_layer * c.n_embd * n_tokens * (
        n_tokens + 1) / 2


def sample_flops(model: PixelGPT, n_new: int) -> float:
    """Decoding n_new tokens one at a time: the same work as a forward over them."""
    return forward_flops(model, n_new)


def sample_kv_bytes(model: PixelGPT, n_new: int) -> float:
    """Bytes of cached keys and values read while decoding n_new tokens (float32)."""
    c = model.config
    return 2 * 4 * c.n_layer * c.n_embd * n_new * (n_new + 1) / 2


# -- the twin in transformers ------------------------------------------------------------------

def hf_twin(model: PixelGPT):
    """ImageGPTForCausalImageModeling computing the same function as ``model``."""
    import transformers

    c = model.config
    config = transformers.ImageGPTConfig(
        vocab_size=c.vocab_size + 1, n_positions=c.n_positions, n_embd=c.n_embd,
        n_layer=c.n_layer, n_head=c.n_head, activation_function="quick_gelu",
        layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf = transformers.ImageGPTForCausalImageModeling(config)
    state = {k: (v.t() if k.endswith(CONV1D) else v).contiguous()
             for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(("attn.bias", "attn.masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping failed: missing {missing}, unexpected {unexpected}")
    hf.generation_config.pad_token_id = 0
    hf.generation_config.eos_token_id = None
    return hf.to(model.lm_head.weight.device).eval()


def with_start(model: PixelGPT, tokens: torch.Tensor) -> torch.Tensor:
    start = torch.full_like(tokens[:, :1], model.start_token)
    return torch.cat([start, tokens[:, :-1]], dim=1)


# -- the benchmarks ----------------------------------------------------------------------------

def random_tokens(b: int, n: int, seed: int, device) -> torch.Tensor:
    return torch.randint(0, COLORS, (b, n), generator=torch.Generator().manual_seed(seed)
                         ).to(device)


def ours_sampler(model: PixelGPT, batch: int, n_new: int):
    n = model.config.n_positions
    known = torch.zeros(batch, n, dtype=torch.long)
    mask = torch.zeros(batch, n, dtype=torch.bool)
    mask[:, :n_new] = True  # known pixels after the last masked one cost nothing
    seeds = list(range(batch))
    return lambda: model.sample(known, mask, seeds)


def hf_sampler(hf, model: PixelGPT, batch: int, n_new: int):
    device = model.lm_head.weight.device
    start = torch.full((batch, 1), model.start_token, device=device)

    def run():
        with torch.inference_mode():
            out = hf.generate(input_ids=start, attention_mask=torch.ones_like(start),
                              do_sample=True, top_k=0, top_p=1.0, max_new_tokens=n_new,
                              min_new_tokens=n_new)
        assert out.shape == (batch, n_new + 1), out.shape
    return run


def hf_scorer(hf, model: PixelGPT, tokens: torch.Tensor, batch_size: int = 64):
    def run():
        with torch.inference_mode():
            for part in tokens.split(batch_size):
                hf(input_ids=with_start(model, part))
    return run


def ours_trainer(model: PixelGPT):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-5,
                            betas=(0.9, 0.95))

    def step(tokens):
        model.train()
        loss = model.loss(tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.eval()
    return step


def hf_trainer(hf, model: PixelGPT):
    def step(tokens):
        hf.train()
        logits = hf(input_ids=with_start(model, tokens)).logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())
        hf.zero_grad(set_to_none=True)
        loss.backward()
        hf.eval()
    return step


def check_same_function(model: PixelGPT, hf, device) -> float:
    tokens = random_tokens(2, model.config.n_positions, 7, device)
    with torch.inference_mode():
        ours = model.logits_for(tokens)
        theirs = hf(input_ids=with_start(model, tokens)).logits
    diff = float((ours - theirs).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"ours and ImageGPT disagree: max |logit difference| {diff}")
    return diff


def run(quick: bool, device: torch.device, log: Callable[[str], None]) -> dict:
    q = 0 if quick else 1
    plan = {k: v[q] for k, v in PLAN.items()}
    reps = plan["reps"]
    res: dict = {"date": datetime.now().isoformat(timespec="seconds"),
                 "machine": machine(device), "mode": "quick" if quick else "full",
                 "load_average_before": load_average(), "plan": plan}
    MATMUL_PROBES.clear()
    MATMUL_PROBES.append(matmul_rate(device))
    res["read_bandwidth_gb_s"] = round(read_bandwidth(device), 2) if device.type == "cpu" else None
    torch.manual_seed(0)
    model = create_model("small", vocab_size=COLORS, image_size=SIDE).to(device).eval()
    hf = hf_twin(model)
    res["params"] = model.num_params()
    res["hf_params"] = sum(p.numel() for p in hf.parameters())
    res["max_logit_difference"] = check_same_function(model, hf, device)
    log(f"models: {res['params']:,} parameters each, max |logit difference| "
        f"{res['max_logit_difference']:.1e}; matmul {MATMUL_PROBES[0]:.0f} GFLOP/s")

    # sampling at batch 16: ours against generate
    b, n_new = plan["sample_batch"], plan["sample_tokens"]
    ours_sampler(model, 2, 8)(), hf_sampler(hf, model, 2, 8)()  # warm-up
    r = race({"ours": ours_sampler(model, b, n_new), "hf": hf_sampler(hf, model, b, n_new)},
             reps, device)
    res["sampling"] = summarize(r, b * n_new, "tokens_per_s", b * sample_flops(model, n_new))
    if res["read_bandwidth_gb_s"]:
        # the most tokens/s any exact sampler can reach here: each one reads the whole cache
        res["sampling"]["kv_roofline_tokens_per_s"] = round(
            res["read_bandwidth_gb_s"] * 1e9 * n_new / sample_kv_bytes(model, n_new))
    log(f"sampling, batch {b}, {n_new} tokens: ours {res['sampling']['ours']['tokens_per_s']:.0f}"
        f" tokens/s, ImageGPT {res['sampling']['hf']['tokens_per_s']:.0f} tokens/s: "
        f"{res['sampling']['ratio']:.1f}x")

    # sampling at a big batch, ours only: how close to the matmul rate
    b = plan["sample_big_batch"]
    r = race({"ours": ours_sampler(model, b, n_new)}, max(1, reps - 1), device)
    res["sampling_big_batch"] = summarize(r, b * n_new, "tokens_per_s",
                                          b * sample_flops(model, n_new))
    res["sampling_big_batch"]["batch"] = b
    res["sampling_big_batch"]["kv_gb_s"] = round(
        b * sample_kv_bytes(model, n_new) / r["ours"]["seconds"] / 1e9, 2)
    log(f"sampling, batch {b}: ours {res['sampling_big_batch']['ours']['tokens_per_s']:.0f} "
        f"tokens/s, {res['sampling_big_batch']['ours']['gflop_s']:.1f} GFLOP/s, reading the KV "
        f"cache at {res['sampling_big_batch']['kv_gb_s']:.1f} GB/s")

    # scoring
    n_img = plan["score_images"]
    tokens = random_tokens(n_img, model.config.n_positions, 1, device)
    per_pass = (max(1, CPU_PASS_TOKENS // tokens.shape[1]) if device.type == "cpu"
                else n_img)  # what token_stats does on this device
    model.token_stats(tokens[:1]), hf_scorer(hf, model, tokens[:1])()
    r = race({"ours": lambda: model.token_stats(tokens),
              "hf": hf_scorer(hf, model, tokens, batch_size=per_pass)}, reps, device)
    res["scoring"] = summarize(r, n_img, "images_per_s",
                               n_img * forward_flops(model, model.config.n_positions))
    res["scoring"]["images_per_pass"] = per_pass
    res["scoring_hf_passes"] = {}
    for p in (16, 64):
        if p <= n_img and p != per_pass:
            t = race({"hf": hf_scorer(hf, model, tokens, batch_size=p)}, reps, device)
            res["scoring_hf_passes"][p] = round(n_img / t["hf"]["seconds"], 3)
    log(f"scoring {n_img} images: ours {res['scoring']['ours']['images_per_s']:.2f} images/s, "
        f"ImageGPT {res['scoring']['hf']['images_per_s']:.2f}: {res['scoring']['ratio']:.1f}x")

    # training
    b = plan["train_batch"]
    tokens = random_tokens(b, model.config.n_positions, 2, device)
    ours_step, hf_step = ours_trainer(model), hf_trainer(hf, model)
    ours_step(tokens[:1]), hf_step(tokens[:1])  # warm-up (and AdamW's state)
    r = race({"ours": lambda: ours_step(tokens), "hf": lambda: hf_step(tokens)}, reps, device)
    res["training"] = summarize(r, b * model.config.n_positions, "tokens_per_s",
                                3 * b * forward_flops(model, model.config.n_positions))
    res["training"]["batch"] = b
    log(f"training, batch {b}: ours {res['training']['ours']['tokens_per_s']:.0f} tokens/s, "
        f"ImageGPT forward+backward {res['training']['hf']['tokens_per_s']:.0f}: "
        f"{res['training']['ratio']:.1f}x")
    del hf

    # scaling: batch size (sampling) and image size (scoring, training step, sampling)
    n_sweep = plan["sweep_tokens"]
    res["batch_sweep"] = []
    for b in plan["batch_sweep"]:
        r = race({"ours": ours_sampler(model, b, n_sweep)}, 1, device)["ours"]
        res["batch_sweep"].append({
            "batch": b, "new_tokens": n_sweep, "seconds": round(r["seconds"], 3),
            "tokens_per_s": round(b * n_sweep / r["seconds"], 1),
            "gflop_s": round(b * sample_flops(model, n_sweep) / r["seconds"] / 1e9, 2),
            "matmul_gflop_s": round(r["matmul_gflop_s"], 1), "peak_mb": r["peak_mb"]})
        res["batch_sweep"][-1]["matmul_fraction"] = round(
            res["batch_sweep"][-1]["gflop_s"] / r["matmul_gflop_s"], 3)
        log(f"  sampling batch {b}: {res['batch_sweep'][-1]['tokens_per_s']:.0f} tokens/s")
    res["size_sweep"] = []
    b = plan["size_batch"]
    for side in plan["sizes"]:
        torch.manual_seed(0)
        m = create_model("small", vocab_size=COLORS, image_size=side).to(device).eval()
        n = side * side
        tokens = random_tokens(b, n, 3, device)
        m.token_stats(tokens[:1])
        cases = {"score": lambda m=m, t=tokens: m.token_stats(t)}
        if not quick:
            step = ours_trainer(m)
            step(tokens[:1])
            cases["train"] = lambda step=step, t=tokens: step(t)
        bs = plan["size_sample_batch"]
        if bs:
            cases["sample"] = ours_sampler(m, bs, n)
        r = race(cases, 1, device)
        row = {"image_size": side, "batch": b, "sample_batch": bs, "tokens": n,
               "peak_mb": {k: v["peak_mb"] for k, v in r.items()}}
        for k, batch in (("score", b), ("train", b), ("sample", bs)):
            row[f"{k}_ms_per_image"] = (round(1e3 * r[k]["seconds"] / batch, 1) if k in r
                                        else None)
        res["size_sweep"].append(row)
        log(f"  {side}x{side}: " + ", ".join(f"{k} {row[f'{k}_ms_per_image']} ms/image"
                                              for k in r))

    MATMUL_PROBES.append(matmul_rate(device))
    res["matmul_gflop_s_each"] = [round(x, 1) for x in MATMUL_PROBES]
    res["matmul_gflop_s"] = round(statistics.median(MATMUL_PROBES), 1)
    res["matmul_gflop_s_max"] = round(max(MATMUL_PROBES), 1)
    res["load_average_after"] = load_average()
    res["targets"] = targets(res)
    return res


def summarize(r: dict, units: float, unit_name: str, flops: float) -> dict:
    out: dict = {"unit": unit_name}
    for side, v in r.items():
        gflop_s = flops / v["seconds"] / 1e9
        out[side] = {"seconds": round(v["seconds"], 4), "all_seconds": v["all_seconds"],
                     "cpu_seconds": round(v["cpu_seconds"], 4),
                     unit_name: round(units / v["seconds"], 2), "gflop_s": round(gflop_s, 2),
                     "matmul_gflop_s": round(v["matmul_gflop_s"], 1),
                     "matmul_fraction": round(gflop_s / v["matmul_gflop_s"], 3),
                     "peak_mb": v["peak_mb"]}
    if "hf" in out:
        out["ratio"] = round(out["ours"][unit_name] / out["hf"][unit_name], 2)
        # the same ratio in CPU time consumed: less sensitive to other jobs on the machine
        out["ratio_cpu_time"] = round(out["hf"]["cpu_seconds"] / out["ours"]["cpu_seconds"], 2)
    return out


def targets(res: dict) -> dict:
    got = {"sampling_vs_hf": res["sampling"]["ratio"],
           "sampling_matmul_fraction": res["sampling_big_batch"]["ours"]["matmul_fraction"],
           "scoring_vs_hf": res["scoring"]["ratio"],
           "training_vs_hf": res["training"]["ratio"]}
    return {k: {"target": TARGETS[k], "measured": got[k], "met": got[k] >= TARGETS[k]}
            for k in TARGETS}


def machine(device: torch.device) -> dict:
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    d = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
         "device": str(device), "torch": torch.__version__,
         "transformers": transformers.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    return d


# -- output ------------------------------------------------------------------------------------

def markdown(res: dict) -> str:
    m, p, mm = res["machine"], res["plan"], res["matmul_gflop_s"]

    def pct(x):
        return f"{100 * x:.0f}%"

    def row(label, r, digits=0):
        unit = r["unit"]
        ours, hf = r["ours"], r.get("hf")
        cells = [label, f"{ours[unit]:.{digits}f}", f"{hf[unit]:.{digits}f}" if hf else "",
                 f"**{r['ratio']:.1f}x** ({r['ratio_cpu_time']:.1f}x)" if hf else "",
                 f"{ours['gflop_s']:.1f} ({pct(ours['matmul_fraction'])})",
                 f"{hf['gflop_s']:.1f} ({pct(hf['matmul_fraction'])})" if hf else "",
                 f"{ours['peak_mb']:.0f} / {hf['peak_mb']:.0f}" if hf else f"{ours['peak_mb']:.0f}"]
        return "| " + " | ".join(cells) + " |"

    s, sb = res["sampling"], res["sampling_big_batch"]
    lines = [
        f"{res['date']}: {m['cpu']}, {m['cores']} cores, {m['threads']} torch threads, "
        f"{m['device']}; torch {m['torch']}, transformers {m['transformers']}; {res['mode']} "
        f"run, {res.get('seconds', '?')} s. Load average (1, 5, 15 min) "
        f"{res['load_average_before']} before, {res['load_average_after']} after. "
        f"fp32 matmul {mm:.0f} GFLOP/s (median of {len(res['matmul_gflop_s_each'])} probes, "
        f"best {res['matmul_gflop_s_max']:.0f}); memory read {res['read_bandwidth_gb_s']} GB/s.",
        "",
        "| measure | ours | ImageGPT | ours / ImageGPT (by CPU time) | ours GFLOP/s "
        "(of matmul) | ImageGPT GFLOP/s | peak MB ours / ImageGPT |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row(f"sampling tokens/s, batch {p['sample_batch']}, {p['sample_tokens']} new tokens", s),
        row(f"sampling tokens/s, batch {sb['batch']}, {p['sample_tokens']} new tokens", sb),
        row(f"scoring images/s, {p['score_images']} images", res["scoring"], 2),
        row(f"training tokens/s, batch {res['training']['batch']} (ImageGPT: forward + "
            "backward only)", res["training"]),
        "",
        f"Sampling reads every cached key and value once per token: at this machine's memory "
        f"read rate that caps any exact fp32 sampler at about "
        f"{s.get('kv_roofline_tokens_per_s', '?')} tokens/s for {p['sample_tokens']} new "
        f"tokens; at batch {sb['batch']} ours reads the cache at {sb['kv_gb_s']} GB/s.",
        "",
        "| target | measured | met |",
        "|---|---:|:---:|",
    ]
    names = {"sampling_vs_hf": "sampling >= 10x ImageGPT generate (batch 16)",
             "sampling_matmul_fraction": "sampling >= 40% of matmul rate (batch >= 64)",
             "scoring_vs_hf": "scoring >= 8x ImageGPT forward",
             "training_vs_hf": "training >= 3x ImageGPT forward+backward"}
    for k, t in res["targets"].items():
        shown = pct(t["measured"]) if "fraction" in k else f"{t['measured']:.1f}x"
        lines.append(f"| {names[k]} | {shown} | {'yes' if t['met'] else 'no'} |")
    lines += ["", f"Sampling against batch size (ours, {p['sweep_tokens']} new tokens per "
              "image):", "", "| batch | tokens/s | GFLOP/s | of matmul | peak MB |",
              "|---:|---:|---:|---:|---:|"]
    for r in res["batch_sweep"]:
        lines.append(f"| {r['batch']} | {r['tokens_per_s']:.0f} | {r['gflop_s']:.1f} | "
                     f"{pct(r['matmul_fraction'])} | {r['peak_mb']:.0f} |")
    lines += ["", f"Against image size (ours; scoring and training batch {p['size_batch']}, "
              f"sampling whole images at batch {p['size_sample_batch'] or '-'}):", "",
              "| image | tokens | scoring ms/image | training ms/image | sampling ms/image "
              "| peak MB (score / train / sample) |", "|---|---:|---:|---:|---:|---:|"]
    for r in res["size_sweep"]:
        cells = [f"{r[f'{k}_ms_per_image']:.0f}" if r[f"{k}_ms_per_image"] is not None else "-"
                 for k in ("score", "train", "sample")]
        peaks = " / ".join(f"{r['peak_mb'][k]:.0f}" if k in r["peak_mb"] else "-"
                           for k in ("score", "train", "sample"))
        lines.append(f"| {r['image_size']}x{r['image_size']} | {r['tokens']} | "
                     + " | ".join(cells) + f" | {peaks} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer tokens, images and repetitions")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load = load_average()
    if device.type == "cpu" and load and load[0] > 1 and torch.get_num_threads() > 1 and (
            load[0] + torch.get_num_threads() > (os.cpu_count() or 1) + 0.5):
        log(f"warning: load average {load[0]} on {os.cpu_count()} cores: other jobs share them, "
            f"and {torch.get_num_threads()} threads will spend their time waiting for each "
            "other; --threads 1 measures more faithfully")
    t0 = time.perf_counter()
    res = run(args.quick, device, log)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
