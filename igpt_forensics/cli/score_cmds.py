"""``score`` (judge images: scores, verdicts, maps) and ``calibrate`` (fit a zero-shot detector
for a scoring model). Scores: higher = more likely synthetic, everywhere."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

# submodules, not the package: registering happens on import of each detector's module
from igpt_forensics.detectors.base import judge, list_detectors, open_detector, ready_detectors
from igpt_forensics.detectors.config import DEFAULT_SAMPLING, FEW_COLORS, TILINGS

from ..data import (
    MAX_SCORE_PIXELS,
    WORK_SIDE,
    ImageSource,
    find_images,
    load_image,
    real_views,
)
from ..distributed import Journal, barrier, finish, launch, remove_parts
from ..errors import InputError
from ..files import atomic_write_bytes, atomic_write_text
from ..viz import heat_overlay, png_bytes
from .common import (
    DataOpt,
    JsonOpt,
    console,
    counted,
    data_spec,
    emit_json,
    err_console,
    fail,
    progress_bar,
    report_skipped,
    user_errors,
    warn,
)

CHUNK = 16  # images loaded and scored together
FEW_REAL = 100  # calibrate warns below this many real images at a side
PROGRESS_FROM = 5  # show a progress bar from this many images on
TILE_PROGRESS_FROM = 1024  # and a bar of tiles from this many (a 256x256 photo at 32x32)
# what `score` uses with no --detector and no --model: the best shipped detector as measured
# on generators it never saw (docs/results.md, "Three cnns trained apart, shipped")
DEFAULT_SCORE_DETECTOR = "fusion"

ModelOpt = Annotated[Path | None, typer.Option(
    "--model", help="Scoring model checkpoint folder; default: the bundled default model. "
    "With a detector name, the detector is calibrated for it first.")]
DeviceOpt = Annotated[str | None, typer.Option(
    help="auto, cpu, cuda, mps (default: as the detector was saved).")]


def _map_png16(heat: np.ndarray) -> bytes:
    """The raw map as a 16-bit grayscale PNG: value / 65535 is the map."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.rint(heat * 65535.0).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, i = path.stem, 1
    while stem in used:
        i += 1
        stem = f"{path.stem}-{i}"
    used.add(stem)
    return stem


def _calibration_bar(bar, what: str):
    """A progress callback ``(done, total)`` whose bar appears on its first call."""
    task: list = []

    def advance(n: int, total: int) -> None:
        if not task:
            task.append(bar.add_task(what, total=total))
        bar.update(task[0], advance=n, total=total)

    return advance


class _TileProgress:
    """A "tiles" bar for detectors that score large images tile by tile (their
    ``score_and_localize`` takes ``progress``): its rate and time left are the estimate a
    user of a 5000x5000 photo needs. It appears once a chunk of images has many tiles."""

    def __init__(self, bar):
        self.bar, self.task, self.total, self.left = bar, None, 0, 0

    def kwargs(self, det) -> dict:
        import inspect

        takes = "progress" in inspect.signature(det.score_and_localize).parameters
        return {"progress": self} if takes else {}

    def __call__(self, done: int, total: int) -> None:
        if self.left <= 0:  # the first chunk of tiles of a new call: its tiles join the bar
            self.total, self.left = self.total + total, total
            if self.task is None:
                self.task = self.bar.add_task("tiles", total=self.total, visible=False,
                                              unit="tiles")
            self.bar.update(self.task, total=self.total,
                            visible=self.total >= TILE_PROGRESS_FROM)
        self.left -= done
        self.bar.update(self.task, advance=done)


@user_errors
def score(
    paths: Annotated[list[Path], typer.Argument(help="Image files or folders (recursed).")],
    detector: Annotated[str | None, typer.Option(
        "--detector", show_default="fusion; likelihood with --model",
        help="A detector that ships ready (" + ", ".join(ready_detectors()) + "), a saved "
        "detector folder (train one with train-detector: " + ", ".join(
            n for n in list_detectors() if n not in ready_detectors()) + "). The default "
        "is the shipped fusion of six cnns trained apart: four on a pool of 11 generators, "
        "the third and fourth trained for maps, and two on datasets made over 28 photos; the "
        "third and a seventh with context layers, for maps alone, draw the maps (the best shipped detector measured, docs/results.md; "
        "--detector cnn: the first of them, about 5 times faster); with --model, the likelihood "
        "detector calibrated for that model."
    )] = None,
    model: ModelOpt = None,
    maps: Annotated[Path | None, typer.Option(
        help="Folder for per-image maps: NAME.overlay.png and NAME.map.png (16-bit, "
        "value/65535 = map), at each image's size. The cnn's maps are each pixel against its "
        "image's median pixel (0.5): where the traces are strongest, not whether; the score "
        "says whether.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write rows as CSV.")] = None,
    json_out: JsonOpt = None,
    device: DeviceOpt = None,
    max_pixels: Annotated[int, typer.Option(
        min=1, help="Refuse larger images (scoring time grows with the pixels, per megapixel "
        "on 2 CPU cores: about 1 s with the cnn, 2 minutes with the likelihood detector); "
        "raise it or resize the image.")
                          ] = MAX_SCORE_PIXELS,
) -> None:
    """Score images (higher = more likely synthetic) with a verdict at the calibrated
    threshold and the fraction of pixels in the suspected region.

    Verdict: synthetic when the score is above the threshold; region when it is not but
    a window of the map is above the region threshold; real otherwise (region 0%)."""
    if csv_out is not None and json_out is not None:
        raise InputError("choose one of --csv and --json")
    if detector is None:
        detector = DEFAULT_SCORE_DETECTOR if model is None else "likelihood"
    files, bad = find_images(paths)
    if not files:
        report_skipped(bad)
        raise fail("no image files to score")
    where = launch()
    dest = json_out if json_out is not None else csv_out
    if where.distributed and (dest is None or str(dest) == "-"):
        raise InputError("under torchrun, score writes its rows to a file: add --json FILE "
                         "or --csv FILE (rank 0 joins every rank's rows into it)")
    # every rank names every file's maps alike: stems over the whole list, in order
    stems = _stems(files) if maps is not None else {}
    chunks = [files[s:s + CHUNK] for s in range(0, len(files), CHUNK)]
    with progress_bar("images", quiet=where.rank > 0) as bar:
        det = open_detector(detector, model=model, device=where.device(device),
                            progress=_calibration_bar(bar, "calibrating") if model else None)
        for need in ("score_and_localize", "describe"):
            if not hasattr(det, need):
                raise InputError(f"--detector {detector}: score needs '{need}' (an outside "
                                 "detector with scores only fits `bench`)")
        mine = range(where.rank, len(chunks), where.world)  # chunk k: rank k % world
        journal = None
        if where.distributed:
            journal = Journal(_parts(dest) / f"{where.rank}-of-{where.world}.jsonl",
                              journal_header(files, det, max_pixels, maps))
        todo = [k for k in mine if journal is None or k not in journal.done]
        task = bar.add_task("scoring", total=sum(len(chunks[k]) for k in todo),
                            visible=len(files) >= PROGRESS_FROM)
        state = {"tiles": _TileProgress(bar).kwargs(det),
                 # a size-calibrating detector (cnn, fusion) whose thresholds know one size
                 "uncalibrated": (hasattr(det, "calibrate_sizes")
                                  and getattr(det, "size_calibration_", None) is None),
                 "detector": detector}
        results = {}
        t0 = time.perf_counter()
        for k in todo:
            results[k] = _score_chunk(det, chunks[k], max_pixels, maps, stems, state)
            if journal is not None:
                journal.add(k, rows=results[k][0], bad=results[k][1])
            bar.update(task, advance=len(chunks[k]))
        seconds = time.perf_counter() - t0
    if journal is not None:
        barrier(where)
        if where.rank > 0:
            finish(where)
            return
        results = {}
        for r in range(where.world):
            results.update(journal_results(_parts(dest) / f"{r}-of-{where.world}.jsonl",
                                           journal.header, len(chunks)))
        missing = [k for k in range(len(chunks)) if k not in results]
        if missing:
            raise fail(f"torchrun: chunks {missing[:5]} were not scored by any rank")
        finish(where)
    rows = [row for k in sorted(results) for row in results[k][0]]
    bad = bad + [line for k in sorted(results) for line in results[k][1]]
    if not rows:
        report_skipped(bad)
        raise fail("no readable images to score")
    info = det.describe()
    to_stdout = emit_json(json_out, {"detector": info, "score": "higher = more likely "
                                     "synthetic", "threshold": det.threshold_, "rows": rows,
                                     "skipped": bad})
    if csv_out is not None:
        buf = io.StringIO()
        fields = ["path", "score", "verdict", "region_score", "region_fraction", "boxes"]
        fields += ["map", "overlay"] if maps is not None else []
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        # boxes as JSON: [[x0, y0, x1, y1], ...] in pixels, largest region first
        writer.writerows({**r, "boxes": json.dumps(r["boxes"])} for r in rows)
        atomic_write_text(csv_out, buf.getvalue())
    if not to_stdout:  # --json -: stdout holds the JSON alone; the rest goes to stderr
        table = Table(title=f"{info['kind']} detector: score = log-odds synthetic (higher = more "
                            f"likely synthetic), threshold {det.threshold_:.3f} "
                            f"at {getattr(det, 'target_fpr', 0.01):.0%} false positives on real "
                            "images")
        table.add_column("file", overflow="fold")
        for col in ("score", "verdict", "region", "boxes"):
            table.add_column(col, justify="left" if col == "verdict" else "right", no_wrap=True)
        style = {"synthetic": "bold red", "region": "yellow", "real": "green"}
        for r in rows:
            table.add_row(r["path"], f"{r['score']:.3f}",
                          f"[{style[r['verdict']]}]{r['verdict']}[/]",
                          f"{r['region_fraction']:.0%}", str(len(r["boxes"])))
        console.print(table)
    err_console.print(f"{counted(len(rows), 'image')} in {seconds:.1f} s "
                      f"({len(rows) / max(seconds, 1e-9):.1f} images/s)")
    report_skipped(bad)
    if journal is not None:
        remove_parts(_parts(dest), r"\d+-of-\d+\.jsonl")


def journal_header(files: list[Path], det, max_pixels: int, maps: Path | None) -> dict:
    """What a rank's journal of scored chunks belongs to: a rerun with other files, another
    detector or other settings starts afresh."""
    header = {"files": [str(f) for f in files], "chunk": CHUNK, "detector": det.describe(),
              "max_pixels": max_pixels, "maps": str(maps) if maps is not None else None}
    return json.loads(json.dumps(header, default=str))


def journal_results(path: Path, header: dict, n_chunks: int) -> dict[int, tuple[list, list]]:
    """A rank's scored chunks (chunk -> (rows, skipped lines)), each checked to be a chunk of
    this job with rows as `_score_chunk` makes them: an edited journal is one line."""
    out = {}
    for k, e in Journal.read(path, header).items():
        rows, bad = e.get("rows"), e.get("bad")
        if not (k < n_chunks and isinstance(rows, list) and isinstance(bad, list)
                and all(isinstance(b, str) for b in bad)
                and all(isinstance(r, dict) and isinstance(r.get("path"), str)
                        and r.get("verdict") in ("synthetic", "region", "real")
                        and all(isinstance(r.get(f), int | float)
                                for f in ("score", "region_score", "region_fraction"))
                        and isinstance(r.get("boxes"), list) for r in rows)):
            raise InputError(f"{path}: chunk {k} is not one this job scored (edited?); "
                             "remove the file to score it again")
        out[k] = (rows, bad)
    return out


def _parts(dest: Path) -> Path:
    """Where the ranks of a torchrun launch keep their rows until rank 0 joins them."""
    return dest.with_name(dest.name + ".parts")


def _stems(files: list[Path]) -> dict[Path, str]:
    used: set[str] = set()
    return {f: _unique_stem(f, used) for f in files}


def _score_chunk(det, chunk: list[Path], max_pixels: int, maps: Path | None,
                 stems: dict[Path, str], state: dict) -> tuple[list[dict], list[str]]:
    """Rows (and skipped-file lines) of one chunk of files, judged together."""
    images, kept, bad = [], [], []
    for f in chunk:
        try:
            image = load_image(f, max_pixels=max_pixels)
        except InputError as e:
            bad.append(f"{e} (--max-pixels)" if "too large" in str(e) else str(e))
            continue
        side = getattr(det, "image_size_", WORK_SIDE)  # a fusion's: its val images'
        if state["uncalibrated"] and max(image.shape[:2]) > 2 * side:
            state["uncalibrated"] = False  # one warning per run
            warn(f"{f}: this {det.name} detector has thresholds for {side}x{side} images "
                 "only and flags too many larger real photos (a cnn: most of them); "
                 "calibrate it first: igpt-forensics calibrate "
                 f"--detector {state['detector']} --data REAL_PHOTOS --out DIR")
        if min(image.shape[:2]) < WORK_SIDE:
            warn(f"{f}: only {image.shape[1]}x{image.shape[0]} pixels; scores of "
                 f"images under {WORK_SIDE}x{WORK_SIDE} mean little")
        images.append(image)
        kept.append(f)
    rows = []
    if images:
        judged, loc = judge(det, images, **state["tiles"])
        for i, f in enumerate(kept):
            row = {"path": str(f), **judged[i]}
            if maps is not None:
                heat = np.asarray(loc.maps[i])
                overlay, raw = maps / f"{stems[f]}.overlay.png", maps / f"{stems[f]}.map.png"
                atomic_write_bytes(overlay, png_bytes(heat_overlay(images[i], heat)))
                atomic_write_bytes(raw, _map_png16(heat))
                row.update(map=str(raw), overlay=str(overlay))
            rows.append(row)
    return rows, bad


@user_errors
def calibrate(
    out: Annotated[Path, typer.Option(help="Folder to write the fitted detector to.")],
    detector: Annotated[str, typer.Option(
        help="Zero-shot detector to fit (likelihood), or a cnn or fusion (the shipped one by "
        "name, or a saved folder) to calibrate by image size.")] = "likelihood",
    model: Annotated[Path | None, typer.Option(
        help="Scoring model checkpoint folder; default: the bundled default model.")] = None,
    data: DataOpt = None,
    split: Annotated[str, typer.Option(
        help="Photos of the data to use: train, val, test, heldout (val + test), all, or "
        "several joined by commas (train,val). Keep the photos you benchmark on (test) "
        "out.")] = "val",
    n: Annotated[int, typer.Option("--n", help="Real patches.")] = 512,
    threshold_split: Annotated[str, typer.Option(
        help="likelihood: photos whose patches set the thresholds (train, val, ..., or "
        "several joined by commas), or 'held-back': a third of the --split patches, held "
        "back from the fit. The train photos are the most: thresholds from two val photos "
        "flagged 22% of real test crops.")] = "train",
    threshold_n: Annotated[int, typer.Option(
        min=4, help="likelihood: patches that set the thresholds.")] = 2048,
    samples: Annotated[int, typer.Option(help="Samples the scoring model draws itself."
                                         )] = 128,
    sampling: Annotated[list[str] | None, typer.Option(
        help="Sampling settings of the self-drawn samples (repeat): temperature=T, top_k=K, "
        "top_p=P, or several joined by commas. Default: " + ", ".join(DEFAULT_SAMPLING)
        + ".")] = None,
    tiling: Annotated[str, typer.Option(help=f"{' or '.join(TILINGS)}: how images larger "
                                        "than the model are scored.")] = "tile",
    window: Annotated[int, typer.Option(help="Side of the map's windows in pixels.")] = 4,
    target_fpr: Annotated[float, typer.Option(help="False-positive rate on real images.")
                          ] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of patches and samples.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")] = "cpu",
    per_photo: Annotated[int, typer.Option(min=1, help="Size calibration: crops of each photo "
                                           "at each side.")] = 10,
    sides: Annotated[str, typer.Option(help="Size calibration: image sides, comma-separated."
                                       )] = "32,64,128,256,512,1024",
    qreal: Annotated[bool, typer.Option(
        "--qreal/--photos-only", help="Size calibration: each crop also through a palette (a "
        "real image in a palette generator's format, like a GIF): the bundled generator's and "
        "palettes of 16-256 colors fitted on the photos, in turn, so that the thresholds hold "
        "on those too.")] = True,
    few_colors: Annotated[int, typer.Option(
        min=0, max=1 << 24, help="Size calibration: images of at most this many distinct "
        "colors (real images through small palettes score higher) get thresholds of their "
        "own, so that they too stay at --target-fpr; 0: one threshold for all images, as "
        "tables made before.")] = FEW_COLORS,
) -> None:
    """Fit a zero-shot detector on real photos and the scoring model's own samples, or set a
    cnn's or a fusion's thresholds by image size on your real photos; write it with a
    SHA256SUMS file. The shipped calibrations are this command with its defaults.

    With a trained detector that calibrates by size (cnn or fusion, shipped or a saved
    folder): set its thresholds for every image size from real photos of --split
    (comma-separated, e.g. train,val), --per-photo crops of each photo at each of --sides, as
    photographed and (unless --photos-only) through palettes; nothing is retrained."""
    from igpt_forensics.detectors.likelihood import LikelihoodDetector

    if detector != LikelihoodDetector.name:
        return _calibrate_sizes(detector, out, data, split, per_photo, sides, seed, qreal,
                                few_colors)
    t0 = time.perf_counter()
    with progress_bar("images") as bar:
        det = LikelihoodDetector.calibrated(
            model=str(model) if model is not None else None, data=data_spec(data), split=split,
            n_real=n, threshold_split=None if threshold_split == "held-back" else threshold_split,
            n_threshold=threshold_n, progress=_calibration_bar(bar, "scoring + sampling"), tiling=tiling,
            window=window, target_fpr=target_fpr, n_samples=samples,
            sampling=tuple(sampling) if sampling else DEFAULT_SAMPLING, seed=seed,
            device=device)
    det.save(out)  # with its SHA256SUMS
    fi = det.fit_info_
    table = Table(title=f"{detector} detector {out}")
    table.caption = (f"thresholds from {fi['threshold_real']} real patches "
                     + ("held back from the fit" if fi["threshold_split"] == "held-back"
                        else f"of the {fi['threshold_split']} photos"))
    for col in ("real", "self-drawn", "threshold", "held-back AUC", "TPR at threshold",
                "model sha256", "seconds"):
        table.add_column(col)
    table.add_row(str(fi["real_images"]), str(fi["self_drawn"]), f"{det.threshold_:.3f}",
                  f"{fi['held_back_auc']:.3f}", f"{fi['held_back_tpr_at_threshold']:.1%}",
                  det.model_sha256_[:12], f"{time.perf_counter() - t0:.0f}")
    console.print(table)
    report_skipped(fi.get("skipped_files", []))


def _calibrate_sizes(detector: str, out: Path, data, split: str, per_photo: int, sides: str,
                     seed: int, qreal: bool = True, few_colors: int = FEW_COLORS) -> None:
    """The size thresholds of a trained detector (on the device it was saved for)."""
    from igpt_forensics.detectors.cnn import calibration_palettes, palette_views

    try:
        side_list = sorted({int(x) for x in sides.split(",")})
    except ValueError:
        raise InputError(f"--sides {sides}: expected sides in pixels, e.g. 32,64,128") from None
    if not side_list or side_list[0] < 8 or side_list[-1] > 4096:
        raise InputError(f"--sides {sides}: each side must be 8 to 4096 pixels")
    det = open_detector(detector)
    if not hasattr(det, "calibrate_sizes"):
        raise InputError("calibrate fits zero-shot detectors (likelihood) and "
                         "the size thresholds of trained ones that have them (cnn, fusion); "
                         f"'{detector}' has neither")
    source = ImageSource(data_spec(data))
    t0 = time.perf_counter()
    views: dict[int, list] = {}
    with progress_bar("images") as bar:
        # split by split (photo_ids takes "train,val" too): the crops keep this order, so
        # each keeps the palette it takes its turn with, and the shipped thresholds their bytes
        for one in split.split(","):
            for side, ims in real_views(source, side_list, per_photo, seed, one.strip(),
                                        progress=_calibration_bar(bar, f"cropping {one} photos"),
                                        ).items():
                views.setdefault(side, []).extend(ims)
        if qreal:  # each crop also through a palette: GIF-like reals, in many formats
            palettes = calibration_palettes(views[min(views)], seed) if views else []
            views = {side: ims + palette_views(ims, palettes) for side, ims in views.items()}
        det.calibrate_sizes(views, progress=_calibration_bar(bar, "scoring crops"),
                            few_colors=few_colors or None)
    det.save(out)
    table = Table(title=f"{det.name} detector {out}: thresholds per image side, at "
                        f"{det.target_fpr:.0%} of real images (map: {det.map_fpr:.0%} of "
                        "real pixels)")
    t = det.size_calibration_
    banded = "few_colors" in t
    if banded:
        table.title += (f"; images of at most {t['few_colors']} colors apart (few colors: "
                        "their count and thresholds)")
    for col in ("side", "real images", "image", "region", "map") + (
            ("few colors", "image", "region") if banded else ()):
        table.add_column(col, justify="right")
    for i, side in enumerate(t["sides"]):
        table.add_row(str(side), str(t["n"][i]), f"{t['image'][i]:.3f}",
                      f"{t['region'][i]:.3f}", f"{t['map'][i]:.4f}", *(
                          (str(t["few_n"][i]), f"{t['few_image'][i]:.3f}",
                           f"{t['few_region'][i]:.3f}") if banded else ()))
    console.print(table)
    err_console.print(f"calibrated in {time.perf_counter() - t0:.0f} s")
    few = [f"{side} px ({n})" for side, n in zip(t["sides"], t["n"]) if n < FEW_REAL]
    if banded:  # the few colors' thresholds come from their own images (when any)
        few += [f"{side} px, <= {t['few_colors']} colors ({k})"
                for side, n, k in zip(t["sides"], t["n"], t["few_n"])
                if 0 < k < FEW_REAL <= n]
    if few:  # a 1% threshold from a few dozen images is the largest of them, or near it
        warn(f"few real images at {', '.join(few)}: a threshold at {det.target_fpr:.0%} of "
             f"real images needs {FEW_REAL} or more; add photos (--data) or --per-photo")
    report_skipped(source.report.bad)


def register(app: typer.Typer) -> None:
    app.command()(score)
    app.command()(calibrate)
