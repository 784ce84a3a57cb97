"""Build labeled synthetic datasets: real patches, their quantized twins, and completions.

``n`` counts items. Item ``i`` is one square patch of a source photo (the same patch as
``data.sample_patches(source, n, size, seed, split="all")[i]``) written three times:

- ``real``: as photographed;
- ``qreal``: the real image in the generator's format (``codec.twin``): for the pixel family
  round-tripped through the palette, so a detector cannot win by counting colors (fakes are
  palette images); for the VQ family the real image itself (a decoded real image is a fake,
  mask kind ``recon``);
- ``fake``: the generator's completion of the real image under a mask whose kind cycles
  through ``masks`` (item ``i`` gets ``masks[i % len(masks)]``), with the mask saved beside
  it (the drawn tokens' pixels). A VQ fake is the decoder's output for the whole image, so it
  also gets a ``changed`` map: where its pixels differ from the real image
  (`generators.complete.changed_mask`).

Seeds come from (dataset seed, item) alone (`provenance.item_seed`) and the model draws its
random numbers per image, so an item's bytes do not depend on the batch size, the shard or
where a killed run resumed. Files are written atomically and a manifest row is appended (and
fsynced) only after its files are on disk; a background thread writes one batch while the
next is sampled. See `igpt_forensics.provenance` for the layout and the record schema.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from igpt_forensics import __version__
from igpt_forensics import provenance as pv
from igpt_forensics.credentials import Credentials
from igpt_forensics.data import Crop, ImageSource, PatchSampler, image_sha256
from igpt_forensics.device import pick_device
from igpt_forensics.distributed import Launch, barrier, finish, remove_parts
from igpt_forensics.errors import InputError
from igpt_forensics.files import atomic_write_bytes
from igpt_forensics.masks import make_mask, parse_kinds
from igpt_forensics.stamp import stamped_png
from igpt_forensics.viz import png_bytes
from igpt_forensics.watermark import DEFAULT_DELTA, DEFAULT_GAMMA, WatermarkKey

from .checkpoint import load_checkpoint
from .complete import changed_mask
from .config import COMPLETION_SAMPLING, check_sampling, list_presets, preset_config
from .model import PixelGPT

DEFAULT_MASKS = ("top-half", "box", "full")
SHARD_NAMES = r"\d+-of-\d+|merged"  # what generate_distributed writes in OUT.shards
FORM_BITS = {form: 1 << i for i, form in enumerate(pv.FORMS)}
ALL_FORMS = sum(FORM_BITS.values())


def _preset_name(model: PixelGPT, config: dict) -> str:
    meta = config.get("meta") or {}
    if isinstance(meta.get("preset"), str):
        return meta["preset"]
    shape = model.config.to_dict()
    for name in list_presets():
        p = preset_config(name, vocab_size=shape["vocab_size"], image_size=shape["image_size"])
        if p.to_dict() == shape:
            return name
    return "custom"


@dataclass
class _Item:
    """One item ready to write: its three images, mask and where they came from."""

    item: int
    crop: Crop
    kind: str
    box: list[int] | None
    seed: int
    real: np.ndarray
    qreal: np.ndarray
    fake: np.ndarray
    mask: np.ndarray
    forms: tuple[str, ...]  # the rows still missing from the manifest
    changed: np.ndarray | None = None  # VQ family: decoded pixels that differ from the real


class DatasetJob:
    """A validated ``generate`` run: `prepare_dataset` builds it (no file is written until
    `run`), `run` writes or finishes the dataset."""

    def __init__(self, out: Path, settings: dict, info: dict, model: PixelGPT, codec,
                 photos: PatchSampler, batch_size: int, resumable: bool,
                 watermark: WatermarkKey | None = None, c2pa: Credentials | None = None):
        self.out, self.settings, self.info = out, settings, info
        self.model, self.codec, self.photos = model, codec, photos
        self.watermark, self.c2pa = watermark, c2pa
        self.batch_size = batch_size
        self.resumable = resumable  # the folder already holds this dataset (maybe partly)
        self.n, self.size = settings["n"], settings["size"]
        self.digits = pv.id_digits(self.n)
        self.items = pv.shard_items(self.n, tuple(settings["shard"]))
        self.generated_items = 0
        self.seconds = 0.0
        g = info["generator"]
        self._fake_fields = dict(
            family=codec.family, palette_sha256=g["palette_sha256"],
            tokenizer_sha256=g.get("tokenizer_sha256"), generator_sha256=g["sha256"],
            generator_preset=g["preset"], generator_shape=g["shape"],
            temperature=settings["temperature"], top_k=settings["top_k"],
            top_p=settings["top_p"], watermark=watermark.describe() if watermark else None)
        self._splits = {p["id"]: p["split"] for p in info["photos"]}
        self._agent = {"name": f"igpt-forensics {codec.family} generator {g['preset']} "
                               f"{g['sha256'][:12]}", "version": __version__}

    @property
    def device(self) -> torch.device:
        return self.model.lm_head.weight.device

    # -- resume --------------------------------------------------------------------------
    def _scan(self) -> tuple[np.ndarray, bool]:
        """Forms already in the manifest, per item (bits), and whether rows must be dropped.

        A row whose files are missing is dropped and regenerated; a duplicate row too.
        """
        path = self.out / pv.MANIFEST
        done = np.zeros(self.n, dtype=np.uint8)
        if not path.exists():
            return done, False
        pv.repair_manifest(path)
        in_shard = np.zeros(self.n, dtype=bool)
        in_shard[self.items.start::self.items.step] = True
        drop = False
        for r in pv.read_manifest(path):
            item, form = r.get("item"), r.get("form")
            if (not isinstance(item, int) or not 0 <= item < self.n or not in_shard[item]
                    or form not in FORM_BITS or r.get("id") != pv.image_id(item, form,
                                                                           self.digits)):
                raise InputError(f"{path}: row {r.get('id')!r} does not belong to this "
                                 "dataset (manifest edited?)")
            files = [f for f, _ in pv.record_files(r)]
            if done[item] & FORM_BITS[form] or not all((self.out / f).exists() for f in files):
                drop = True
                continue
            done[item] |= FORM_BITS[form]
        return done, drop

    def _drop_bad_rows(self) -> None:
        seen: set[str] = set()

        def keep():
            for r in pv.read_manifest(self.out / pv.MANIFEST):
                files = [f for f, _ in pv.record_files(r)]
                if r["id"] not in seen and all((self.out / f).exists() for f in files):
                    seen.add(r["id"])
                    yield r

        pv.write_manifest(self.out / pv.MANIFEST, keep())

    # -- generation ----------------------------------------------------------------------
    def _make(self, items: list[int], done: np.ndarray) -> list[_Item]:
        size, codec = self.size, self.codec
        real, crops = self.photos.patches(items)
        tokens = codec.encode(real)
        qreal = codec.twin(real)
        kinds = self.settings["masks"]
        masks = np.empty((len(items), size, size), dtype=bool)
        boxes, seeds, item_kinds = [], [], []
        for k, item in enumerate(items):
            kind = kinds[item % len(kinds)]
            rng = np.random.default_rng(pv.item_seed(self.settings["seed"], item, "mask"))
            masks[k], box = make_mask(kind, size, rng)
            boxes.append(box.as_list() if box is not None else None)
            seeds.append(pv.item_seed(self.settings["seed"], item, "sample"))
            item_kinds.append(kind)
        drawn = codec.token_mask(masks)  # at the codec's granularity
        masks = codec.cell_mask(drawn, size)
        fake_tokens = tokens.copy()
        # One sample call per mask kind: the model steps over the union of the batch's masked
        # positions, so a top-half group costs half of a full one. Pixels do not depend on the
        # grouping (each image draws from its own seed).
        for kind in dict.fromkeys(item_kinds):
            idx = [k for k, kk in enumerate(item_kinds) if kk == kind]
            out = self.model.sample(
                torch.from_numpy(tokens[idx]), torch.from_numpy(drawn[idx]),
                [seeds[k] for k in idx], self.settings["temperature"], self.settings["top_k"],
                self.settings["top_p"], watermark=self.watermark)
            fake_tokens[idx] = out.numpy()
        fakes = codec.decode(fake_tokens, (size, size))
        changed = changed_mask(fakes, real) if codec.family == "vq" else [None] * len(items)
        return [
            _Item(item, crops[k], item_kinds[k], boxes[k], seeds[k], real[k], qreal[k],
                  fakes[k], masks[k],
                  tuple(f for f in pv.FORMS if not done[item] & FORM_BITS[f]), changed[k])
            for k, item in enumerate(items)]

    def _write(self, batch: list[_Item], manifest: pv.ManifestWriter) -> int:
        """Write the files of a batch, then append its missing rows; return rows appended.

        Each image's PNG carries its own record as a stamp (`igpt_forensics.stamp`), with the
        file hash left null there: the manifest row adds it.
        """
        appended = 0
        for it in batch:
            paths = pv.item_paths(it.item, self.digits)
            images = {"real": it.real, "qreal": it.qreal, "fake": it.fake}
            mask_blob = png_bytes(it.mask.astype(np.uint8) * 255)
            changed_blob = (png_bytes(it.changed.astype(np.uint8) * 255)
                            if it.changed is not None else None)
            c = it.crop
            common = dict(item=it.item, split=self._splits[c.photo_id], size=self.size,
                          photo_id=c.photo_id, photo_sha256=self.photos.sha256[c.photo_id],
                          crop=[c.top, c.left, c.side])
            records, blobs = {}, {"mask": mask_blob}
            changed = {}
            if changed_blob is not None:
                blobs["changed"] = changed_blob
                changed = dict(changed_path=paths["changed"],
                               changed_sha256=hashlib.sha256(changed_blob).hexdigest(),
                               changed_pixels=int(it.changed.sum()))
            for form in pv.FORMS:
                extra = {}
                if form == "qreal":
                    extra = dict(family=self._fake_fields["family"],
                                 palette_sha256=self._fake_fields["palette_sha256"])
                elif form == "fake":
                    extra = dict(
                        **self._fake_fields, mask_kind=it.kind, box=it.box,
                        mask_path=paths["mask"],
                        mask_sha256=hashlib.sha256(mask_blob).hexdigest(),
                        masked_pixels=int(it.mask.sum()), seed=it.seed, **changed)
                records[form] = pv.make_record(
                    id=pv.image_id(it.item, form, self.digits), form=form,
                    label=pv.LABEL_OF[form], path=paths[form],
                    pixels_sha256=image_sha256(images[form]), **common, **extra)
                blobs[form] = stamped_png(images[form], records[form])
            if self.c2pa is not None:  # a completion of the real crop, or wholly synthesized
                blobs["fake"] = self.c2pa.sign_png(
                    blobs["fake"], title=paths["fake"], agent=self._agent,
                    parent=blobs["real"] if it.kind != "full" else None, mask=it.mask,
                    pixels_sha256=records["fake"]["pixels_sha256"])
            for key, blob in blobs.items():
                atomic_write_bytes(self.out / paths[key], blob)
            for form in it.forms:
                records[form]["sha256"] = hashlib.sha256(blobs[form]).hexdigest()
                manifest.append(records[form])
                appended += 1
        return appended

    def run(self, progress: Callable[[int, int], None] | None = None) -> dict:
        """Write (or finish) the dataset; return its dataset.json.

        ``progress(done, total)`` is called with image counts of this shard at the start and
        after every batch is on disk.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        with pv.locked(self.out):
            manifest_path = self.out / pv.MANIFEST
            if (self.out / pv.INFO).exists():
                # checked again under the lock: another process may have started meanwhile
                _refuse_other_settings(self.out, pv.read_info(self.out)["settings"],
                                       self.settings)
                pv.remove_temporaries(self.out)
            else:
                pv.write_info(self.out, self.info)
            done, drop = self._scan()
            if drop:
                self._drop_bad_rows()
            ours = np.arange(self.items.start, self.n, self.items.step)
            todo = ours[done[ours] != ALL_FORMS]
            total = 3 * len(ours)
            finished = int(np.unpackbits(done[ours]).sum())  # rows already in the manifest
            if progress is not None:
                progress(finished, total)
            t0 = time.perf_counter()
            # the pool is left (waiting for the last write) before the manifest is closed
            with pv.ManifestWriter(manifest_path) as manifest, \
                    ThreadPoolExecutor(1, thread_name_prefix="dataset-writer") as pool:
                inflight: deque = deque()
                for s in range(0, len(todo), self.batch_size):
                    items = todo[s:s + self.batch_size].tolist()
                    batch = self._make(items, done)
                    self.generated_items += len(items)
                    inflight.append(pool.submit(self._write, batch, manifest))
                    # at most one batch waits on the disk while the next one is sampled
                    while len(inflight) > 1 or (inflight and inflight[0].done()):
                        finished += inflight.popleft().result()
                        if progress is not None:
                            progress(finished, total)
                while inflight:
                    finished += inflight.popleft().result()
                    if progress is not None:
                        progress(finished, total)
            self.seconds = time.perf_counter() - t0
            if not pv.is_canonical(manifest_path):
                pv.sort_manifest(manifest_path)  # only after dropped rows were regenerated
            pv.check_complete(self.out, self.items, self.digits)
            self.info = pv.finish_info(self.out, self.info)
        return self.info


def _refuse_other_settings(out: Path, existing: dict, settings: dict) -> None:
    diff = pv.settings_diff(existing, settings)
    if diff:
        raise InputError(f"{out}: holds a dataset made with different settings (dataset vs "
                         f"this command: {'; '.join(diff)}); resume it with its own settings "
                         "or choose a new --out")


def prepare_dataset(
    out: str | Path,
    n: int,
    *,
    model: str | Path | None = None,
    data: str = "builtin",
    masks: str | Sequence[str] = DEFAULT_MASKS,
    size: int | None = None,
    temperature: float = COMPLETION_SAMPLING["temperature"],
    top_k: int = COMPLETION_SAMPLING["top_k"],
    top_p: float = COMPLETION_SAMPLING["top_p"],
    seed: int = 0,
    batch_size: int = 64,
    shard: str | tuple[int, int] = (0, 1),
    device: str = "auto",
    watermark_key: bytes | None = None,
    watermark_gamma: float = DEFAULT_GAMMA,
    watermark_delta: float = DEFAULT_DELTA,
    c2pa: Credentials | None = None,
) -> DatasetJob:
    """Check every setting, load the generator and the photos; write nothing yet.

    ``model`` is a checkpoint folder (None: the bundled default); ``size`` must equal the
    model's image size (None: take it from the model). A folder that already holds a dataset
    is resumed only when it was made with the same settings. ``watermark_key``: bytes of a
    secret key; the fakes then carry the keyed watermark of `igpt_forensics.watermark` (the
    settings and records hold its fingerprint, never the key). ``c2pa``: each fake also
    carries a signed C2PA manifest (`igpt_forensics.credentials`; the settings keep the
    certificate's fingerprint).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= pv.MAX_ITEMS:
        raise InputError(f"--n must be a number of items from 1 to {pv.MAX_ITEMS:,}, got {n}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"--seed must be an integer >= 0, got {seed}")
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    shard = pv.parse_shard(shard) if isinstance(shard, str) else tuple(shard)
    pv.parse_shard(f"{shard[0]}/{shard[1]}")
    kinds = parse_kinds(masks if isinstance(masks, str) else ",".join(masks))
    check_sampling(temperature, top_k, top_p)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    existing = None
    if (out / pv.INFO).exists():
        existing = pv.read_info(out)
    elif out.exists() and not pv.is_empty_folder(out):
        raise InputError(f"{out}: not empty and not a dataset (no {pv.INFO}); choose a new "
                         "--out")

    gen, codec, config = load_checkpoint(model, device=pick_device(device))
    mark = None
    if watermark_key is not None:
        mark = WatermarkKey(watermark_key, codec, watermark_gamma, watermark_delta)
    model_size = config["image_size"]
    if size is None:
        size = model_size
    if size != model_size:
        raise InputError(f"--size {size} does not match the generator, which makes "
                         f"{model_size}x{model_size} images")
    for kind in kinds:
        if kind == "recon":
            if codec.family != "vq":
                raise InputError("mask 'recon' is for VQ-family generators (a real image "
                                 "encoded and decoded); the pixel family's palette round "
                                 "trip is the qreal form, labeled real")
            continue
        mask, _ = make_mask(kind, size, np.random.default_rng(0))
        if not mask.any():
            raise InputError(f"mask '{kind}' synthesizes no pixels")

    source = ImageSource(data)
    photos = PatchSampler(source, size, seed)
    photo_list = [{"id": pid, "split": source.split_of(pid), "sha256": photos.sha256[pid],
                   "height": photos.shapes[pid][0], "width": photos.shapes[pid][1]}
                  for pid in photos.good]
    pixel = codec.family == "pixel"
    generator = {"sha256": config["sha256"], "family": codec.family,
                 "preset": _preset_name(gen, config), "shape": gen.config.to_dict(),
                 "palette_sha256": codec.sha256 if pixel else None,
                 "n_colors": codec.n_tokens if pixel else None}
    if not pixel:
        generator.update(tokenizer_sha256=codec.sha256, n_codes=codec.n_tokens,
                         downsample=codec.scale)
    settings = {"n": n, "size": size, "masks": kinds, "temperature": float(temperature),
                "top_k": int(top_k), "top_p": float(top_p), "seed": seed,
                "shard": [shard[0], shard[1]], "generator_sha256": config["sha256"],
                "palette_sha256": codec.sha256 if pixel else None,
                "source_sha256": photos.fingerprint}
    if not pixel:  # only then: pixel datasets made before the VQ family still resume
        settings["tokenizer_sha256"] = codec.sha256
    if mark is not None:  # only then: datasets made before watermarks existed still resume
        settings["watermark"] = mark.describe()
    if c2pa is not None:
        settings["c2pa"] = c2pa.describe()
    if existing is not None:
        _refuse_other_settings(out, existing["settings"], settings)
    info = pv.new_info(settings, source.spec, generator, photo_list, list(source.report.bad))
    return DatasetJob(out, settings, info, gen, codec, photos, batch_size,
                      resumable=existing is not None, watermark=mark, c2pa=c2pa)


def generate_dataset(out: str | Path, n: int, progress: Callable[[int, int], None] | None = None,
                     **kwargs) -> dict:
    """`prepare_dataset` then `DatasetJob.run`: write (or finish) a dataset, return its
    dataset.json."""
    return prepare_dataset(out, n, **kwargs).run(progress)


def generate_distributed(out: str | Path, n: int, where: Launch,
                         progress: Callable[[int, int], None] | None = None,
                         **kwargs) -> dict | None:
    """`generate_dataset` across the ranks of a torchrun launch (`igpt_forensics.distributed`).

    Rank r writes shard r/world into ``OUT.shards/r-of-world`` (each shard resumable on its
    own, like any dataset), the ranks wait for each other, and rank 0 merges the shards
    (`provenance.merge_datasets`, every file checked) into a temporary folder that it renames
    to ``OUT``, then removes the shards: ``OUT`` is exactly the dataset one process makes.
    A rerun after a kill resumes the shards and merges again; after success it does nothing.
    Returns dataset.json on rank 0, None on the others.
    """
    out = Path(out)
    shards = out.with_name(out.name + ".shards")
    if shards.exists() and not shards.is_dir():
        raise InputError(f"{shards}: exists and is not a folder (torchrun writes the shards "
                         "there); move it away")
    if kwargs.get("shard", (0, 1)) not in ((0, 1), "0/1", [0, 1]):
        raise InputError("under torchrun each rank takes its shard from the environment; "
                         "drop --shard")
    kwargs = {**kwargs, "device": where.device(kwargs.get("device", "auto"))}
    if (out / pv.INFO).exists():
        if not pv.read_info(out).get("complete"):
            raise InputError(f"{out}: holds an unfinished single-process dataset; finish it "
                             "without torchrun, or choose a new --out")
        prepare_dataset(out, n, **kwargs)  # refuses a dataset made with other settings
        if where.rank == 0:
            remove_parts(shards, SHARD_NAMES)  # left by a kill between rename and clean-up
        return pv.read_info(out) if where.rank == 0 else None
    if out.exists() and not pv.is_empty_folder(out):
        raise InputError(f"{out}: not empty and not a dataset (no {pv.INFO}); choose a new "
                         "--out")
    parts = [shards / f"{r}-of-{where.world}" for r in range(where.world)]
    job = prepare_dataset(parts[where.rank], n, **{**kwargs, "shard": (where.rank,
                                                                          where.world)})
    job.run(progress)
    barrier(where)
    info = None
    if where.rank == 0:
        merged = shards / "merged"
        if merged.exists():
            shutil.rmtree(merged)  # a merge that was killed: made again from the shards
        pv.merge_datasets(parts, merged)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(merged, out)
        remove_parts(shards, SHARD_NAMES)
        info = pv.read_info(out)
    barrier(where)  # the other ranks end once the dataset is in place
    finish(where)
    return info
