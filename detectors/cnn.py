"""The ``cnn`` detector: a timm network with an image head and a dense (per-pixel) head.

Architecture (`DenseDetectorNet`): a timm backbone (``arch``, default ``resnet10t``) created
with ``features_only=True`` and cut after ``stages`` stages (at 32x32 the deep stages of an
ImageNet network are 1x1 and cost most of the parameters), a full-resolution *pixel branch*
(two 3x3 convolutions at stride 1: the traces of sampling are per pixel, and every backbone
downsamples at its stem), and a small FPN-like decoder: each stage is projected to ``width``
channels, upsampled (bilinear) to the image and added to the pixel branch. Two heads read the
fused features: a 1x1 convolution gives a logit per pixel (the map), and a linear layer on
pooled features (the last stage's mean, the fused features' mean and max) gives the image
logit. Fully convolutional: any image size at least the training size works; a smaller image
is upscaled first (its map is resampled back to it). ``upscale`` (default 1) shows the backbone
its inputs with each pixel repeated ``upscale`` x ``upscale`` times (relations computed first,
at the image's own scale), so that the stem's stride does not pool a 32x32 image's pixels
away; the decoder and maps stay at the image's size (2: 1.9x the training time; held out
of training it did not transfer better, docs/results.md). ``context`` (default 0) adds that
many residual 3x3 layers at dilations 2, 4, 8, ... after the decoder, at full resolution,
between the pixel branch's 5x5 view and the stages' coarse blobs (3: 1.7x the training time;
held out, box maps +0.002-0.084 at 9 of 9 points, but a cnn trained for maps lost top-half
maps and image AUC; docs/results.md).

Training (``fit``): binary cross-entropy on the image label (classes balanced) plus
``pixel_weight`` times a per-pixel cross-entropy against the ground-truth masks (real images:
all zero; synthesized and given pixels balanced), and ``relative_weight`` times
`relative_map_loss` (default 0: off), the same cross-entropy on what relative maps show, each
partial fake's pixel logits minus their median, so that training ranks the pixels of an image
as scoring reads them (measured leave-one-generator-out, ``relative_weight=1`` raised held-out
top-half maps on all nine datasets, to 0.94-0.99 pixel AUC, image AUC within the spread of one
training to the next; docs/results.md). AdamW with a cosine schedule; augmentation
as in CNN-generated-image detection work (Wang et al. 2020), the same for both classes, scaled
to small images: horizontal flips, and each with probability ``augment``: Gaussian blur
(sigma 0-1), JPEG re-compression (quality 60-100), down-and-up resizing (factor 0.5-1) and a
random crop resized back (side 75-100%). Vertical flips and rotations are left out on purpose:
raster order makes rows and columns different, and that difference is evidence. Early
stopping keeps the weights with the lowest validation loss; ``patience`` epochs without
improvement stop training. Runs on the GPU when there is one (``device="auto"``).

Outputs: ``score`` is the image logit (higher = more likely synthetic); the region score is
the strongest 3x3-averaged pixel logit. Maps (``maps="relative"``, the default since
2026-12-04) are the sigmoid of each pixel logit minus the median pixel logit of its image:
where in the image the traces are, against the image's own typical pixel. The network ranks
an image's pixels well, but its logits carry an offset per image (how generator-like the
whole picture looks): measured leave-one-generator-out, pooled pixel AUC on top-half
completions rose from 0.80-0.90 to 0.90-0.97 on the held-out pixel-GPTs and from 0.71-0.80
to 0.85-0.89 on the VQ ones (docs/results.md). Whether the image holds synthesized pixels at
all is the image score's call. ``maps="absolute"`` gives the plain per-pixel probabilities
(what detectors saved before that date load as). Thresholds on the validation split's real
images: ``threshold_`` and ``region_threshold_`` to ``target_fpr``; ``map_threshold_``, on
the absolute probabilities, lets at most ``map_fpr`` of real pixels into masks (and is at
least 0.5). A mask holds the pixels above it that, with relative maps, also stand above
their image's median.

Test-time flips (``tta="flip"``, the default since 2026-12-04): every image is scored as it
is and mirrored left-right (the one symmetry training shows it, and one that keeps raster
order's rows rows), and the two image logits and the two pixel-logit maps (mirrored back)
are averaged; thresholds are calibrated through the same average. Measured leave-one-
generator-out on 9 datasets, at twice the scoring cost: image AUC rose on 24 of 27 held-out
(generator, mask kind) subsets, boxes of the pixel-GPTs 0.72-0.88 -> 0.75-0.90, and pooled
pixel AUC on 17 of 18 (docs/results.md). Shifted views (edge-padded by 1-4 pixels) lowered
image AUC and are not used. ``tta="none"`` scores one view (what files saved before load as).

Images of other sizes (``calibrate_sizes``): the image logit, the strongest pixel logit and
the pixels' spread all grow with the image (a 256x256 image has 64 times the windows of a
32x32 one), so thresholds calibrated at 32x32 flag most large real photos (measured: 98% of
256x256 crops of the test photos). ``calibrate_sizes`` scores real photos at several sides
and keeps, per side, the three thresholds at the same rates; scores and region scores are
then shifted by the difference to the smallest side, and masks use the side's map threshold,
interpolated in log side between calibrated sides (clamped at the ends). ``threshold_`` and
``region_threshold_`` stay one number each, so verdicts, reports and bench read them alike.

Saved as ``arrays.safetensors`` (the weights) + ``detector.json``; ``--pretrained PATH``
starts the backbone from timm weights in a local file (safetensors), nothing is downloaded.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import nn
from torch.nn import functional as F

from igpt_forensics.errors import InputError, check_choice
from igpt_forensics.perturb import perturb

from .base import (
    DEFAULT_TARGET_FPR,
    Images,
    Localization,
    as_input_kind,
    calibrate_threshold,
    check_images,
    register_detector,
    shipped_asset,
)
from .config import CNN_INPUTS, DEFAULT_ARCH, PALETTE_CLASSES
from .tiles import resize_map, upscale_to
from .trained import (
    Progress,
    SizeCalibrated,
    checked_size_table,
    group_by_shape,
    prepare_fit,
)

FORWARD_PIXELS = 64 * 64 * 64  # pixels per forward pass in inference
# pixels scored together: the maps of a chunk are held in float64 a few times over (256 MiB
# each), not those of every image of a size at once (440 real 1024x1024 crops: 3.7 GB each)
SCORE_PIXELS = 32 * 1024 * 1024
MAP_KINDS = ("relative", "absolute")
TTA_KINDS = ("flip", "none")
SMALL_KINDS = ("native", "upscale")  # what scoring does with images below the training side
MAX_UPSCALE = 4  # the backbone's input enlargement (``upscale``): 4 shows it 16 times the pixels
MAX_CONTEXT = 6  # full-resolution context layers (``context``): dilations 2 to 64
NET_PREFIX = "net."


# -- the network -------------------------------------------------------------------------------

def _conv_bn(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def create_backbone(arch: str, stages: int, pretrained: str | None = None,
                    in_chans: int = 3) -> nn.Module:
    """A timm ``features_only`` backbone with its first ``stages`` stages, from scratch or
    from timm weights in a local file (``pretrained``), over ``in_chans`` input channels."""
    import timm

    if not timm.is_model(arch):
        raise InputError(f"unknown timm architecture '{arch}' (see timm.list_models(); e.g. "
                         "resnet10t, resnet18, efficientnet_b0)")
    kwargs: dict[str, Any] = {"features_only": True, "out_indices": tuple(range(stages)),
                              "in_chans": in_chans}
    if pretrained is not None:
        path = Path(pretrained)
        if not path.is_file():
            raise InputError(f"--pretrained {path}: no such weights file")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    try:
        return timm.create_model(arch, **kwargs)
    except (RuntimeError, KeyError, ValueError, OSError) as e:
        if isinstance(e, InputError):
            raise
        what = f"weights {pretrained}" if pretrained else f"architecture {arch}"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"cannot build {arch} with {stages} stages from {what} ({msg})") from None


def npr(x: torch.Tensor) -> torch.Tensor:
    """Neighbouring-pixel relations (Tan et al., CVPR 2024): each pixel minus the first pixel
    of its 2x2 block, i.e. ``x - upsample(downsample(x))`` by nearest neighbours. Zero on the
    block's first pixel; what a 2x upsampling layer leaves in every block shows here."""
    h, w = x.shape[-2:]
    first = x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    return x - first[..., :h, :w]


class DenseDetectorNet(nn.Module):
    """Backbone + full-resolution pixel branch + FPN-like decoder; image and pixel logits.
    ``inputs`` is what the backbone sees (`CNN_INPUTS`): the colors, their `npr`, or both.
    ``context`` residual 3x3 layers with dilations 2, 4, 8, ... refine the fused features at
    full resolution: the decoder's stage features come upsampled from 8x8 and coarser at
    32x32 (blobs), the pixel branch sees 5x5; a synthesized box of 6-16 pixels lies between."""

    def __init__(self, arch: str = DEFAULT_ARCH, stages: int = 3, width: int = 32,
                 pretrained: str | None = None, inputs: str = "rgb", upscale: int = 1,
                 context: int = 0):
        super().__init__()
        self.inputs = inputs
        self.upscale = upscale
        self.backbone = create_backbone(arch, stages, pretrained,
                                        in_chans=6 if inputs == "rgb+npr" else 3)
        chans = self.backbone.feature_info.channels()
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        mean = cfg.get("mean", (0.485, 0.456, 0.406))
        std = cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0,
                             persistent=False)
        # fixed high-pass residuals (second differences along rows, along columns, and a
        # Laplacian, per color channel) feed the pixel branch next to the colors: flat
        # palette areas, step edges and row-vs-column differences are visible at once
        k = torch.zeros(3, 1, 3, 3)
        k[0, 0, 1] = torch.tensor([1.0, -2.0, 1.0])
        k[1, 0, :, 1] = torch.tensor([1.0, -2.0, 1.0])
        k[2, 0] = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
        self.register_buffer("highpass", k.repeat(3, 1, 1, 1) / 64.0, persistent=False)
        self.pixel = nn.Sequential(_conv_bn(3 + 9, width), _conv_bn(width, width))
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in chans)
        self.fuse = _conv_bn(width, width)
        self.context = nn.ModuleList(_conv_bn(width, width, 2 ** (i + 1)) for i in range(context))
        self.pixel_head = nn.Conv2d(width, 1, 1)
        self.image_head = nn.Linear(chans[-1] + 2 * width + 2, 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8-valued (N, 3, H, W) float -> image logits (N,), pixel logits (N, H, W)."""
        x = (images - self.mean) / self.std
        if self.inputs == "rgb":
            feats = self.backbone(self._up(x))
        else:  # relations are small: 4x brings them to the scale of the normalized colors
            rel = 4.0 * npr(x)
            feats = self.backbone(self._up(rel if self.inputs == "npr"
                                           else torch.cat([x, rel], 1)))
        h, w = x.shape[-2:]
        residual = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), self.highpass,
                            groups=3)
        f = self.pixel(torch.cat([x, residual], dim=1))
        for lateral, feat in zip(self.lateral, feats):
            f = f + F.interpolate(lateral(feat), size=(h, w), mode="bilinear",
                                  align_corners=False)
        f = self.fuse(f)
        for layer in self.context:
            f = f + layer(f)
        pix = self.pixel_head(f)
        pooled = torch.cat([feats[-1].mean((2, 3)), f.mean((2, 3)), f.amax((2, 3)),
                            pix.mean((2, 3)), pix.amax((2, 3))], dim=1)
        return self.image_head(pooled)[:, 0], pix[:, 0]

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        """What the backbone sees: ``x`` enlarged ``upscale`` times by repeating pixels (its
        relations computed first, at the image's own scale)."""
        return x if self.upscale == 1 else F.interpolate(x, scale_factor=self.upscale,
                                                         mode="nearest")


# -- augmentation ------------------------------------------------------------------------------

def augment_batch(images: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                  p: float) -> tuple[np.ndarray, np.ndarray]:
    """Flip, blur, JPEG, resize and crop a batch (N, S, S, 3) uint8 and its masks (N, S, S)
    bool; photometric changes leave masks as they are, geometric ones move them along."""
    out_i, out_m = images.copy(), masks.copy()
    n, h, w = masks.shape
    for i in range(n):
        im, m = out_i[i], out_m[i]
        if rng.random() < 0.5:
            im, m = im[:, ::-1], m[:, ::-1]
        if p <= 0:
            out_i[i], out_m[i] = im, m
            continue
        pil = Image.fromarray(np.ascontiguousarray(im))
        if rng.random() < p:  # crop 75-100% of the side, resized back
            side = int(rng.integers(max(2, round(0.75 * min(h, w))), min(h, w) + 1))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            box = (left, top, left + side, top + side)
            pil = pil.crop(box).resize((w, h), Image.Resampling.BILINEAR)
            mm = Image.fromarray(np.ascontiguousarray(m).astype(np.uint8) * 255).crop(box)
            m = np.asarray(mm.resize((w, h), Image.Resampling.NEAREST)) > 127
        if rng.random() < p:  # down by 0.5-1, back up
            f = float(rng.uniform(0.5, 1.0))
            small = (max(1, round(w * f)), max(1, round(h * f)))
            pil = pil.resize(small, Image.Resampling.BILINEAR).resize(
                (w, h), Image.Resampling.BILINEAR)
        if rng.random() < p:
            pil = pil.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.0))))
        if rng.random() < p:
            buf = io.BytesIO()
            pil.save(buf, format="JPEG", quality=int(rng.integers(60, 101)))
            pil = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        out_i[i], out_m[i] = np.asarray(pil), m
    return out_i, out_m


# what ``degrade`` draws from: `perturb`'s own post-processings at random strengths, each range
# holding the bench grid's point (resize0.5, blur1, jpeg75, crop24 of 32) and more
DEGRADE_RANGES = {"resize": (0.45, 0.9), "blur": (0.3, 1.5), "jpeg": (40, 95),
                  "crop": (0.6, 0.9)}
MIN_DEGRADED_SIDE = 4  # the smallest side a degraded batch shrinks to


def degrade_batch(images: np.ndarray, masks: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One post-processing for a whole batch (N, S, S, 3) and its masks, at a random strength,
    both classes alike: `igpt_forensics.perturb`'s resize (kept at the smaller side, as a
    user's resized copy is), Gaussian blur, JPEG or crop (kept small). Geometric ones move
    the masks along. What the network then learns is what survives post-processing, which
    `augment_batch` (always resized back to S) never shows it."""
    n, h, w = masks.shape
    kind = sorted(DEGRADE_RANGES)[int(rng.integers(len(DEGRADE_RANGES)))]
    lo, hi = DEGRADE_RANGES[kind]
    side = min(h, w)
    if kind == "resize":
        factor = max(float(rng.uniform(lo, hi)), MIN_DEGRADED_SIDE / side)
        spec = f"resize{factor:.4f}"
    elif kind == "crop":
        spec = f"crop{max(MIN_DEGRADED_SIDE, round(side * float(rng.uniform(lo, hi))))}"
    elif kind == "jpeg":
        spec = f"jpeg{int(rng.integers(lo, hi + 1))}"
    else:
        spec = f"blur{float(rng.uniform(lo, hi)):.3f}"
    seeds = rng.integers(0, 2**31, size=n)
    pairs = [perturb(images[i], spec, int(seeds[i]), masks[i]) for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


PALETTE_SIZES = (16, 32, 64, 128, 256)  # what `palette_augment` quantizes through


def fit_palettes(images: np.ndarray, seed: int, sizes: Sequence[int] = PALETTE_SIZES,
                 ) -> list:
    """Palettes of several sizes (k-means, `Palette.fit`) on the training images' pixels."""
    from igpt_forensics.palette import Palette

    return [Palette.fit(images, k, seed=seed, max_pixels=50_000) for k in sizes]


def palette_batch(images: np.ndarray, palettes: Sequence, rng: np.random.Generator,
                  p: float, only: np.ndarray | None = None) -> np.ndarray:
    """Each image, with probability ``p``, through one of ``palettes`` (nearest colors): for
    both classes alike, or only where ``only`` (N,) is True (``palette_classes="real"``:
    real images alone, so that a fake keeps its generator's traces). A palette image is then
    no cue, so a generator's palette size (a 64-color pixel-GPT, a quantized real photo)
    cannot stand in for its traces."""
    out = images.copy()
    chosen = rng.random(len(images)) < p
    for i in np.flatnonzero(chosen if only is None else chosen & only):
        out[i] = palettes[int(rng.integers(len(palettes)))].quantize(images[i])
    return out


def calibration_palettes(images: Sequence[np.ndarray], seed: int) -> list:
    """What ``calibrate`` sees real crops through, in turn (`palette_views`): the bundled
    pixel generator's palette and palettes of 16-256 colors fitted on ``images``. Calibrated
    through the bundled palette alone, the shipped cnn called 2-27% of real test crops in
    palettes of 24-200 colors synthetic; through these, 0-1% (docs/results.md)."""
    from igpt_forensics.generators.checkpoint import generator_palette

    return [generator_palette(), *fit_palettes(np.stack(images), seed)]


def palette_views(images: Sequence[np.ndarray], palettes: Sequence) -> list[np.ndarray]:
    """Image ``i`` through ``palettes[i % len(palettes)]``: every palette in turn, one view
    per image (real images in the formats of many palette generators, for thresholds)."""
    return [np.asarray(palettes[i % len(palettes)].quantize(im[None])[0], dtype=np.uint8)
            for i, im in enumerate(images)]


def relative_map_loss(pix_logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The dense loss on what ``maps="relative"`` shows: each partial fake's pixel logits
    minus their median, against its mask, synthesized and kept pixels weighing the same
    within each image, averaged over the partial fakes of the batch (0 when there are none).
    Real and wholly synthesized images have no pixels to rank and add nothing."""
    flat, m = pix_logits.flatten(1), masks.flatten(1)
    n_syn = m.sum(1)
    partial = (n_syn > 0) & (n_syn < m.shape[1])
    if not bool(partial.any()):
        return pix_logits.sum() * 0.0
    flat, m, n_syn = flat[partial], m[partial], n_syn[partial]
    rel = flat - flat.median(dim=1, keepdim=True).values
    bce = F.binary_cross_entropy_with_logits(rel, m, reduction="none")
    per_image = ((bce * m).sum(1) / n_syn + (bce * (1 - m)).sum(1) / (m.shape[1] - n_syn)) / 2
    return per_image.mean()


def _to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()


# -- the detector ------------------------------------------------------------------------------

@register_detector("cnn")
class CNNDetector(SizeCalibrated):
    """A timm network with image and per-pixel outputs (see the module docstring).

    Parameters: ``arch`` a timm model name, ``stages`` backbone stages kept, ``width`` decoder
    channels, ``pretrained`` a local timm weights file (None: from scratch); ``epochs``,
    ``patience``, ``batch_size``, ``lr``, ``weight_decay``, ``pixel_weight`` (the dense loss'
    weight), ``relative_weight`` (that of `relative_map_loss`; 0: off), ``augment``
    (probability of each augmentation; 0: flips only); ``target_fpr``, ``map_fpr``; ``seed``;
    ``device`` (auto, cpu, cuda, mps); ``inputs``, what the backbone sees (`CNN_INPUTS`: rgb,
    npr or rgb+npr; the pixel branch always sees the colors and their high-pass residuals);
    ``palette_augment``, the probability that a training image of either class is seen
    through a palette of 16-256 colors fitted on the training reals (`palette_batch`; 0:
    never); ``palette_classes``, "both" or "real" (real images only); ``ema``, the decay of
    an exponential moving average of the weights and batch-norm statistics, updated after
    every step, that validation, early stopping and the saved network use instead of the
    last step's weights (0: off; e.g. 0.999 averages about the last thousand steps);
    ``degrade``, the probability that a training batch is post-processed as a whole, both
    classes alike (`degrade_batch`: resized or cropped smaller, blurred or JPEG-compressed at
    a random strength; 0: never); ``small``, how scoring reads an image smaller than the
    training side: "native" at its own size, "upscale" enlarged (Lanczos) to that side first,
    which rewrites every pixel relation (what files saved before 2026-12-05 load as;
    measured on 24x24 crops of px48, a generator no detector here saw: the shipped cnn 0.50
    AUC upscaled, 0.89 at their own size; docs/results.md).

    ``score --detector cnn`` (and ``create_detector("cnn", pretrained=True)``) loads the one
    the package ships: npr inputs, trained on a pool of 11 generators (both bundled ones and
    nine more of both families, every mask kind and sampling setting, VQ reconstructions)
    by ``make cnn-default``; held out of that pool in turn, its recipe averages 0.944 AUC.
    """

    default_asset = shipped_asset("cnn")
    # what a file saved before each parameter existed meant
    legacy_params = {"maps": "absolute", "tta": "none", "small": "upscale"}
    default_asset_command = "make cnn-default"

    def __init__(self, arch: str = DEFAULT_ARCH, stages: int = 3, width: int = 32,
                 pretrained: str | None = None, epochs: int = 30, patience: int = 5,
                 batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4,
                 pixel_weight: float = 1.0, augment: float = 0.1,
                 target_fpr: float = DEFAULT_TARGET_FPR, map_fpr: float = 0.05, seed: int = 0,
                 device: str = "auto", inputs: str = "rgb", palette_augment: float = 0.0,
                 maps: str = "relative", tta: str = "flip", relative_weight: float = 0.0,
                 palette_classes: str = "both", ema: float = 0.0, upscale: int = 1,
                 degrade: float = 0.0, small: str = "native", context: int = 0):
        self.arch = arch
        self.stages = stages
        self.width = width
        self.pretrained = pretrained
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pixel_weight = pixel_weight
        self.augment = augment
        self.target_fpr = target_fpr
        self.map_fpr = map_fpr
        self.seed = seed
        self.device = device
        self.inputs = inputs
        self.palette_augment = palette_augment
        self.maps = maps
        self.tta = tta
        self.relative_weight = relative_weight
        self.palette_classes = palette_classes
        self.ema = ema
        self.upscale = upscale
        self.degrade = degrade
        self.small = small
        self.context = context

    def _check_params(self) -> None:
        for name in ("stages", "width", "epochs", "batch_size", "upscale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        if self.batch_size < 2:
            raise InputError("batch_size must be >= 2 (batch normalization)")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise InputError(f"patience must be a positive integer, got {self.patience!r}")
        for name in ("target_fpr", "map_fpr"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        for name in ("augment", "palette_augment", "degrade"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be a probability in [0, 1], got "
                                 f"{getattr(self, name)}")
        if self.upscale > MAX_UPSCALE:
            raise InputError(f"upscale must be at most {MAX_UPSCALE}, got {self.upscale}")
        if (isinstance(self.context, bool) or not isinstance(self.context, int)
                or not 0 <= self.context <= MAX_CONTEXT):
            raise InputError(f"context must be an integer from 0 to {MAX_CONTEXT}, got "
                             f"{self.context!r}")
        if not 0.0 <= self.ema < 1.0:
            raise InputError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if (self.lr <= 0 or self.weight_decay < 0 or self.pixel_weight < 0
                or self.relative_weight < 0):
            raise InputError("lr must be > 0, weight_decay, pixel_weight and relative_weight "
                             ">= 0")
        check_choice("maps", self.maps, MAP_KINDS)
        check_choice("tta", self.tta, TTA_KINDS)
        check_choice("small", self.small, SMALL_KINDS)
        check_choice("palette_classes", self.palette_classes, PALETTE_CLASSES)
        check_choice("inputs", self.inputs, CNN_INPUTS)

    def _device(self) -> torch.device:
        from igpt_forensics.device import pick_device

        return pick_device(self.device)

    # -- training
    def fit(self, real_images: Images, fake_images: Images | None = None,
            fake_masks: Any = None, val: Sequence | None = None,
            progress: Progress | None = None) -> CNNDetector:
        """Train on real and fake images (masks: True = synthesized; None = whole image),
        stop early on the validation loss, calibrate thresholds on the validation reals."""
        from sklearn.metrics import roc_auc_score

        self._check_params()
        data = prepare_fit(real_images, fake_images, fake_masks, val, self.seed)
        S = min(data.size)
        self.threshold_ = None
        self.size_calibration_ = None  # a new network: calibrate_sizes again
        device = self._device()
        torch.manual_seed(self.seed)
        net = DenseDetectorNet(self.arch, self.stages, self.width, self.pretrained,
                               self.inputs, self.upscale, self.context).to(device)

        images = np.concatenate([data.real, data.fake])
        masks = np.concatenate([np.zeros(data.real.shape[:3], bool), data.fake_masks])
        labels = np.r_[np.zeros(len(data.real)), np.ones(len(data.fake))]
        palettes = fit_palettes(data.real, self.seed) if self.palette_augment > 0 else []
        val_images = np.concatenate([data.val_real, data.val_fake])
        val_masks = np.concatenate([np.zeros(data.val_real.shape[:3], bool), data.val_masks])
        val_labels = np.r_[np.zeros(len(data.val_real)), np.ones(len(data.val_fake))]
        # balanced losses: each class of images, and of pixels, weighs the same
        pos_weight = torch.tensor(len(data.real) / len(data.fake), device=device)
        n_pos = float(masks.sum())
        pix_pos_weight = torch.tensor(min(100.0, (masks.size - n_pos) / max(n_pos, 1.0)),
                                      device=device)

        def loss_of(img_logit, pix_logit, y, m):
            li = F.binary_cross_entropy_with_logits(img_logit, y, pos_weight=pos_weight)
            lp = F.binary_cross_entropy_with_logits(pix_logit, m, pos_weight=pix_pos_weight)
            total = li + self.pixel_weight * lp
            if self.relative_weight > 0:
                total = total + self.relative_weight * relative_map_loss(pix_logit, m)
            return total, li, lp

        steps_per_epoch = max(1, len(images) // self.batch_size)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=self.epochs * steps_per_epoch,
            pct_start=min(0.3, 1.0 / self.epochs + 0.05))
        total = self.epochs * (steps_per_epoch * self.batch_size + len(val_images))
        averaged = None  # the moving average of the weights (``ema``), what is validated
        if self.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(self.ema),
                                     use_buffers=True)
        judged = net if averaged is None else averaged.module
        best = (np.inf, None, -1)  # val loss, weights, epoch
        history = []
        t0 = time.perf_counter()
        for epoch in range(self.epochs):
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(len(images))
            net.train()
            losses = []
            for s in range(steps_per_epoch):
                idx = order[s * self.batch_size:(s + 1) * self.batch_size]
                if s == steps_per_epoch - 1:
                    idx = order[s * self.batch_size:]  # the rest joins the last batch
                xb, mb = augment_batch(images[idx], masks[idx], rng, self.augment)
                if palettes:
                    xb = palette_batch(xb, palettes, rng, self.palette_augment,
                                       labels[idx] == 0 if self.palette_classes == "real"
                                       else None)
                if self.degrade > 0 and rng.random() < self.degrade:
                    xb, mb = degrade_batch(xb, mb, rng)
                il, pl = net(_to_tensor(xb, device))
                loss, _, _ = loss_of(il, pl, torch.from_numpy(labels[idx]).float().to(device),
                                     torch.from_numpy(mb).float().to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if averaged is not None:
                    averaged.update_parameters(net)
                losses.append(float(loss.detach()))
                if progress is not None:
                    progress(len(idx), total, stage=f"epoch {epoch + 1}/{self.epochs}",
                             loss=float(np.mean(losses)))
            v_img, v_pix = self._forward_all(judged, val_images, device)
            with torch.no_grad():
                vloss, vli, vlp = loss_of(torch.from_numpy(v_img).to(device),
                                          torch.from_numpy(v_pix).to(device),
                                          torch.from_numpy(val_labels).float().to(device),
                                          torch.from_numpy(val_masks).float().to(device))
            vauc = float(roc_auc_score(val_labels, v_img))
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                            "val_loss": float(vloss), "val_image_loss": float(vli),
                            "val_pixel_loss": float(vlp), "val_auc": vauc,
                            "seconds": time.perf_counter() - t0})
            if float(vloss) < best[0]:
                best = (float(vloss), {k: v.detach().clone() for k, v in
                                       judged.state_dict().items()}, epoch + 1)
            if progress is not None:
                progress(len(val_images), total, stage=f"epoch {epoch + 1}/{self.epochs}",
                         loss=float(np.mean(losses)), val_loss=float(vloss), val_auc=vauc)
            if epoch + 1 - best[2] >= self.patience:
                break
        net.load_state_dict(best[1])
        net.eval()
        self._net = net
        self.image_size_ = int(S)

        # thresholds from the validation reals, through the same code score() runs
        real_scores, real_loc = self._score_and_localize_arrays(list(data.val_real), raw=True)
        self.threshold_ = calibrate_threshold(real_scores, self.target_fpr)
        self.region_threshold_ = calibrate_threshold(real_loc[2], self.target_fpr)
        pixels = np.concatenate([m.ravel() for m in real_loc[0]])
        self.map_threshold_ = max(0.5, float(np.quantile(pixels, 1.0 - self.map_fpr,
                                                         method="higher")))
        fake_scores = self._score_and_localize_arrays(list(data.val_fake))[0]
        self.fit_info_ = {
            "train_real": len(data.real), "train_fake": len(data.fake),
            "val_real": len(data.val_real), "val_fake": len(data.val_fake),
            "val_given": data.val_given, "epochs_run": len(history), "best_epoch": best[2],
            "best_val_loss": best[0],
            "val_auc": float(roc_auc_score(np.r_[np.zeros(len(real_scores)),
                                                 np.ones(len(fake_scores))],
                                           np.r_[real_scores, fake_scores])),
            "val_tpr_at_threshold": float(np.mean(fake_scores > self.threshold_)),
            "train_seconds": time.perf_counter() - t0, "device": str(device),
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "history": history,
        }
        return self

    def _forward_step(self, shape: tuple[int, ...]) -> int:
        """Images of this (H, W) per forward pass in inference."""
        return max(1, min(max(self.batch_size, 64), FORWARD_PIXELS // (shape[0] * shape[1])))

    @torch.no_grad()
    def _forward_all(self, net: nn.Module, images: np.ndarray, device: torch.device,
                     mirror: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Image and pixel logits of a same-size batch, in chunks of at most
        ``FORWARD_PIXELS`` pixels (eval mode): the full-resolution branch holds ``width``
        floats per pixel, so 64 images of 1024x1024 at once would need 8 GiB per layer.
        ``mirror``: each chunk's logits averaged with its left-right mirror's (that map
        mirrored back), chunk by chunk, so the mirror costs time and no memory."""
        was = net.training
        net.eval()
        img, pix = [], []
        step = self._forward_step(images.shape[1:3])
        for s in range(0, len(images), step):
            il, pl = net(_to_tensor(images[s:s + step], device))
            il, pl = il.double().cpu().numpy(), pl.float().cpu().numpy()
            if mirror:
                il_m, pl_m = net(_to_tensor(np.ascontiguousarray(images[s:s + step, :, ::-1]),
                                            device))
                il = (il + il_m.double().cpu().numpy()) / 2.0
                pl = (pl + pl_m.float().cpu().numpy()[:, :, ::-1]) / 2.0
            img.append(il)
            pix.append(pl)
        net.train(was)
        return np.concatenate(img), np.concatenate(pix)

    # -- images of other sizes (`SizeCalibrated`)
    def _unshifted_outputs(self, items: list[np.ndarray]):
        scores, (maps, _, region) = self._score_and_localize_arrays(items, raw=True)
        return scores, region, maps

    # -- scoring
    def _score_and_localize_arrays(self, items: list[np.ndarray], raw: bool = False):
        """-> scores (N,), and (maps list, masks list, region scores (N,)) at each image's
        own size. ``raw`` skips the size calibration and gives the absolute maps, what the
        map threshold is calibrated on (what calibrating reads). A mask holds the pixels
        whose absolute probability passes the map threshold and, with relative maps, that
        stand above their image's median too (measured: mask F1 on held-out top halves
        0.64-0.82 -> 0.70-0.88, and never more real pixels than the threshold alone)."""
        net, device = self._net, next(self._net.parameters()).device
        n = len(items)
        scores = np.zeros(n)
        region = np.zeros(n)
        maps: list[np.ndarray | None] = [None] * n
        above: list[np.ndarray | None] = [None] * n  # the absolute probabilities
        relative = self.maps == "relative" and not raw
        work = [im if self.small == "native" else upscale_to(im, self.image_size_)
                for im in items]
        chunks = []  # images of one size, at most SCORE_PIXELS pixels together, in whole
        for shape, same in group_by_shape(work).items():  # forward passes (same bytes)
            fwd = self._forward_step(shape)
            step = max(fwd, SCORE_PIXELS // (shape[0] * shape[1]) // fwd * fwd)
            chunks += [same[s:s + step] for s in range(0, len(same), step)]
        for idx in chunks:
            img, pix = self._forward_all(net, np.stack([work[i] for i in idx]), device,
                                         mirror=self.tta == "flip")
            smooth = F.avg_pool2d(torch.from_numpy(pix)[:, None], 3, stride=1, padding=1,
                                  count_include_pad=False)[:, 0].numpy()
            logit = pix.astype(np.float64)
            prob = 1.0 / (1.0 + np.exp(-logit))
            if relative:  # against the image's own typical pixel
                rel = 1.0 / (1.0 + np.exp(-(logit - np.median(logit, axis=(1, 2),
                                                              keepdims=True))))
            for j, i in enumerate(idx):
                scores[i] = img[j]
                region[i] = float(smooth[j].max())
                shape = items[i].shape[:2]
                above[i] = resize_map(prob[j].astype(np.float32), *shape)
                maps[i] = resize_map(rel[j].astype(np.float32), *shape) if relative else above[i]
        masks = []
        for i, item in enumerate(items):
            shift, region_shift, map_threshold = (
                (0.0, 0.0, getattr(self, "map_threshold_", 0.5)) if raw
                else self._size_terms(item))
            scores[i] -= shift
            region[i] -= region_shift
            mask = above[i] > map_threshold
            masks.append(mask & (maps[i] > 0.5) if relative else mask)
        return scores, (maps, masks, region)

    def score(self, images: Images) -> np.ndarray:
        """The image logit (higher = more likely synthetic)."""
        return self.score_and_localize(images)[0]

    def localize(self, images: Images) -> Localization:
        return self.score_and_localize(images)[1]

    def score_and_localize(self, images: Images) -> tuple[np.ndarray, Localization]:
        items = check_images(images)
        self._check_fitted()
        scores, (maps, masks, region) = self._score_and_localize_arrays(items)
        loc = Localization(maps=as_input_kind(maps, images), masks=as_input_kind(masks, images),
                           region_scores=region, region_flags=region > self.region_threshold_)
        return scores, loc

    # -- persistence
    def _learned_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {k: getattr(self, k) for k in ("threshold_", "region_threshold_",
                                                "map_threshold_", "image_size_", "fit_info_")}
        if getattr(self, "size_calibration_", None):
            state["size_calibration_"] = self.size_calibration_
        arrays = {NET_PREFIX + k: v.detach().cpu().numpy()
                  for k, v in self._net.state_dict().items()}
        return state, arrays

    def _restore(self, state: dict[str, Any], arrays: dict[str, np.ndarray], path: Path,
                 ) -> None:
        self._check_params()  # e.g. a crafted upscale of 1000 (inputs a million times larger)
        # the shape its parameters describe, on the meta device (nothing allocated), must
        # hold exactly the saved weights: a crafted width of 100000 is refused, not built
        with torch.device("meta"):
            shape = DenseDetectorNet(self.arch, self.stages, self.width, pretrained=None,
                                     inputs=self.inputs, context=self.context)
        need = sum(t.numel() for t in shape.state_dict().values())
        have = sum(int(np.prod(v.shape)) for k, v in arrays.items() if k.startswith(NET_PREFIX))
        if need != have:
            raise InputError(f"{path}: weights do not fit {self.arch} with {self.stages} "
                             f"stages and width {self.width} ({have:,} saved values, "
                             f"{need:,} needed)")
        net = DenseDetectorNet(self.arch, self.stages, self.width, pretrained=None,
                               inputs=self.inputs, upscale=self.upscale, context=self.context)
        weights = {k[len(NET_PREFIX):]: torch.from_numpy(np.ascontiguousarray(v))
                   for k, v in arrays.items() if k.startswith(NET_PREFIX)}
        try:
            net.load_state_dict(weights, strict=True)
        except RuntimeError as e:
            first = str(e).splitlines()[0]
            raise InputError(f"{path}: weights do not fit {self.arch} with {self.stages} "
                             f"stages and width {self.width} ({first})") from None
        net.eval()
        self._net = net.to(self._device())
        for k in ("threshold_", "region_threshold_", "map_threshold_"):
            setattr(self, k, float(state[k]))
        self.image_size_ = int(state["image_size_"])
        self.fit_info_ = dict(state.get("fit_info_") or {})
        self.size_calibration_ = checked_size_table(state.get("size_calibration_"), path)


__all__ = ["CNNDetector", "DenseDetectorNet", "augment_batch", "degrade_batch", "relative_map_loss",
           "create_backbone"]
