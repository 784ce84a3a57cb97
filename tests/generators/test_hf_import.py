"""Our PixelGPT against an independent implementation: transformers' ImageGPT."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from igpt_forensics.generators.hf_import import import_hf

from igpt_forensics.errors import InputError

transformers = pytest.importorskip("transformers")

COLORS, SIDE, N = 16, 8, 64


@pytest.fixture(scope="module")
def hf_model():
    config = transformers.ImageGPTConfig(vocab_size=COLORS + 1, n_positions=N, n_embd=32,
                                         n_layer=2, n_head=4)
    torch.manual_seed(0)
    model = transformers.ImageGPTForCausalImageModeling(config).eval()
    # HF's init leaves biases at 0 and norm weights at 1, which would hide a bias or norm weight
    # loaded into the wrong place; every parameter gets its own random values instead.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.15)
    return model


@pytest.fixture(scope="module")
def clusters():
    return np.random.default_rng(0).uniform(-1, 1, size=(COLORS, 3))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, hf_model, clusters):
    folder = tmp_path_factory.mktemp("imagegpt")
    hf_model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ImageGPTImageProcessor", "clusters": clusters.tolist(),
         "do_color_quantize": True, "size": {"height": SIDE, "width": SIDE}}))
    return folder


def copy_of(checkpoint, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint, folder)
    return folder


def tokens(b=4, seed=1):
    return torch.randint(0, COLORS, (b, N), generator=torch.Generator().manual_seed(seed))


def hf_logits(hf_model, t):
    # ImageGPT's inputs are the start token (id vocab_size - 1) and the tokens, shifted: its
    # position embeddings stop at n_positions, so the last token is never an input.
    start = torch.full((len(t), 1), hf_model.config.vocab_size - 1)
    with torch.no_grad():
        return hf_model(input_ids=torch.cat([start, t[:, :-1]], dim=1)).logits


def test_import_matches_transformers_logits(checkpoint, hf_model, clusters):
    model, palette = import_hf(checkpoint)
    assert not model.training
    assert (model.config.vocab_size, model.config.image_size) == (COLORS, SIDE)
    assert (model.config.n_layer, model.config.n_head, model.config.n_embd) == (2, 4, 32)
    t = tokens()
    expected = hf_logits(hf_model, t)
    with torch.no_grad():
        ours = model.logits_for(t)
    assert ours.shape == expected.shape == (4, N, COLORS)
    assert expected.std() > 0.5  # the comparison is not between two near-constant outputs
    assert torch.allclose(ours, expected, atol=1e-4)
    assert np.array_equal(palette.colors, np.rint((clusters + 1) * 127.5).astype(np.uint8))
    assert palette.to_dict()["n_colors"] == COLORS
    # imported weights are ordinary float32 parameters: fine-tuning works on them
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    model.loss(t).backward()
    assert model.lm_head.weight.grad is not None


def test_bits_per_dim_match_transformers(checkpoint, hf_model):
    model, _ = import_hf(checkpoint)
    t = tokens(6, seed=2)
    expected = F.cross_entropy(hf_logits(hf_model, t).flatten(0, 1), t.flatten()) / math.log(2)
    ours = model.token_stats(t, batch_size=4)["nll"].double().mean() / math.log(2)
    assert abs(float(ours) - float(expected)) < 1e-4


def test_greedy_sampling_matches_transformers_generate(checkpoint, hf_model):
    # transformers decodes with its own KV cache: a check of our cache and sampling loop.
    model, _ = import_hf(checkpoint)
    start = torch.full((2, 1), COLORS)
    with torch.no_grad():
        expected = hf_model.generate(input_ids=start, max_length=N + 1, do_sample=False,
                                     pad_token_id=0)[:, 1:]
    ours = model.sample(tokens(2), torch.ones(2, N, dtype=torch.bool), [1, 2], top_k=1)
    assert torch.equal(ours, expected)


def test_pytorch_model_bin_is_refused_never_unpickled(checkpoint, hf_model, tmp_path):
    # a .bin is a pickle: even torch.load(weights_only=True) unpickles; only safetensors load
    folder = copy_of(checkpoint, tmp_path)
    (folder / "model.safetensors").unlink()
    torch.save(dict(hf_model.state_dict()), folder / "pytorch_model.bin")
    with pytest.raises(InputError, match=r"pytorch_model\.bin: a pickle, which is never loaded"):
        import_hf(folder)


def test_sharded_weights_stay_in_the_folder(checkpoint, tmp_path):
    # a weight_map naming a shard outside the folder (absolute, '..', a number, a .bin)
    folder = copy_of(checkpoint, tmp_path)
    outside = tmp_path / "outside.safetensors"
    (folder / "model.safetensors").rename(outside)
    index = folder / "model.safetensors.index.json"
    for shard in (str(outside), "../outside.safetensors", 5, "pytorch_model-1.bin"):
        index.write_text(json.dumps({"weight_map": {"lm_head.weight": shard}}))
        with pytest.raises(InputError, match=r"index\.json: (path|shard) .* (must be relative"
                                             r"|is not a \.safetensors)"):
            import_hf(folder)


def test_missing_preprocessor_config_is_named(checkpoint, tmp_path):
    folder = copy_of(checkpoint, tmp_path)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(InputError, match=r"preprocessor_config\.json: no such file"):
        import_hf(folder)


def test_missing_folder_and_weights_are_named(checkpoint, tmp_path):
    with pytest.raises(InputError, match="no such checkpoint folder"):
        import_hf(tmp_path / "absent")
    folder = copy_of(checkpoint, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"no weights .*model\.safetensors"):
        import_hf(folder)


def edit_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.mark.parametrize("changes, message", [
    (dict(activation_function="gelu"), r"config\.json: activation_function='gelu' is not supported"),
    (dict(n_positions=60), r"config\.json: n_positions=60 is not a square image"),
    (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx"),
    (dict(n_embd=64), r"'transformer\.wte\.weight' has shape \(17, 32\), config\.json implies"),
    (dict(vocab_size=33), r"preprocessor_config\.json: 'clusters' must be 32 x 3"),
    (dict(vocab_size=float("inf")), r"config\.json: vocab_size must be an integer, got inf"),
    (dict(n_positions="64"), r"config\.json: n_positions must be an integer, got '64'"),
])
def test_unsupported_or_inconsistent_config_is_refused(checkpoint, tmp_path, changes, message):
    folder = copy_of(checkpoint, tmp_path)
    edit_config(folder, **changes)
    with pytest.raises(InputError, match=message):
        import_hf(folder)
