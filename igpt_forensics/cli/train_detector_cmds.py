"""``train-detector``: train a ``cnn``, ``features`` or ``fusion`` detector on a labeled
dataset (written by ``generate``, or an outside ``0_real/ 1_fake`` folder or list), save it
(usable as ``score --detector DIR``) and report how it does on the test split. Scores: higher
= more likely synthetic."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from igpt_forensics.detectors.config import (
    CLASSIFIERS,
    CNN_INPUTS,
    DEFAULT_ARCH,
    FUSION_COMBINES,
    PALETTE_CLASSES,
)
from igpt_forensics.detectors.trained import (
    MAX_SPLICES,
    REAL_FORMS,
    TRAINED_KINDS,
    SplitData,
    check_splices,
    check_splits,
    load_arrays,
    new_detector,
    parse_real_forms,
    train_on_dataset,
)

from ..bench import split_report
from ..errors import InputError, check_choice
from .common import JsonOpt, console, emit_json, err_console, progress_bar, user_errors

SHOWN_FIELDS = ("loss", "val_loss", "val_auc")
# cnn constructor parameters that have no option of their own (``--param KEY=VALUE``)
CNN_PARAMS = ("stages", "width", "pixel_weight", "relative_weight", "patience", "batch_size",
              "lr", "weight_decay", "map_fpr", "ema", "upscale", "degrade", "context")


def parse_params(specs: list[str] | None, kind: str) -> dict:
    """``["stages=4", "lr=0.001"]`` -> ``{"stages": 4, "lr": 0.001}`` (values read as JSON
    numbers; the detector checks their types and ranges before training)."""
    out: dict = {}
    for spec in specs or []:
        key, eq, text = spec.partition("=")
        key = key.strip().replace("-", "_")
        if kind != "cnn":
            raise InputError(f"--param {spec}: only --kind cnn takes --param")
        if not eq or key not in CNN_PARAMS:
            raise InputError(f"--param {spec}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(CNN_PARAMS)}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"--param {spec}: the value must be a number")
        out[key] = value
    return out


class _Bar:
    """``progress(advance, total, **info)`` -> one Rich task per stage, live loss fields."""

    def __init__(self, bar):
        self.bar, self.tasks, self.current = bar, {}, None

    def __call__(self, advance: int, total: int, stage: str = "training", **info) -> None:
        key = "training" if stage.startswith("epoch") else stage
        if key not in self.tasks:
            self.tasks[key] = self.bar.add_task(key, total=total, info="")
        text = " ".join(f"{k} {v:.4f}" for k, v in info.items() if k in SHOWN_FIELDS)
        desc = stage if key == "training" else key
        self.bar.update(self.tasks[key], advance=advance, total=total, description=desc,
                        info=text)


def _params(kind: str, arch: str, epochs: int, augment: float, pretrained: Path | None,
            model: Path | None, likelihood: bool, classifier: str, members: list[str] | None,
            target_fpr: float, seed: int, device: str, inputs: str = "rgb",
            palette_augment: float = 0.0, combine: str = "regression",
            map_members: list[int] | None = None, palette_classes: str = "both",
            mask_members: list[int] | None = None,
            score_members: list[int] | None = None) -> dict:
    for flag, given in (("--map-member", map_members), ("--mask-member", mask_members),
                        ("--score-member", score_members)):
        if given and kind != "fusion":
            raise InputError(f"{flag}: only --kind fusion has members")
    if kind == "cnn":
        for name, p in (("--augment", augment), ("--palette-augment", palette_augment)):
            if not 0 <= p <= 1:
                raise InputError(f"{name} must be in [0, 1], got {p}")
        check_choice("--inputs", inputs, CNN_INPUTS)
        check_choice("--palette-classes", palette_classes, PALETTE_CLASSES)
        return {"arch": arch, "epochs": epochs, "augment": augment, "target_fpr": target_fpr,
                "seed": seed, "device": device, "inputs": inputs,
                "palette_augment": palette_augment, "palette_classes": palette_classes,
                "pretrained": str(pretrained) if pretrained is not None else None}
    if kind == "features":
        return {"likelihood_model": str(model) if model is not None else None,
                "use_likelihood": likelihood, "classifier": classifier,
                "target_fpr": target_fpr, "seed": seed,
                "device": "cpu" if device == "auto" else device}
    if not members:
        raise InputError("--kind fusion needs --member DIR (repeat) naming the detectors to "
                         "combine: saved detector folders, or 'likelihood' for its shipped "
                         "calibration")
    check_choice("--combine", combine, FUSION_COMBINES)
    return {"members": list(members), "target_fpr": target_fpr, "seed": seed,
            "device": None if device == "auto" else device, "combine": combine,
            "map_members": list(map_members) if map_members else None,
            "mask_members": list(mask_members) if mask_members else None,
            "score_members": list(score_members) if score_members else None}


@user_errors
def train_detector(
    dataset: Annotated[list[Path], typer.Option(
        help="Dataset folder written by 'generate', a 0_real/ 1_fake/ folder or a "
        "path,label[,mask,generator,split] CSV/JSONL; repeat to train on a pool of "
        "generators.")],
    kind: Annotated[str, typer.Option(help=f"{', '.join(TRAINED_KINDS)}.")],
    out: Annotated[Path, typer.Option(help="Folder to save the detector to.")],
    arch: Annotated[str, typer.Option(help="cnn: timm architecture.")] = DEFAULT_ARCH,
    epochs: Annotated[int, typer.Option(help="cnn: most epochs (early stopping on the "
                                        "validation split).")] = 30,
    augment: Annotated[float, typer.Option(
        help="cnn: probability of each augmentation (blur, JPEG, down-up resize, crop), "
        "applied alike to both classes; 0: flips only.")] = 0.1,
    palette_augment: Annotated[float, typer.Option(
        help="cnn: probability that an image (of either class) is seen through a random "
        "palette of 16-256 colors fitted on the training reals, so that being a palette "
        "image is no cue; 0: never.")] = 0.0,
    palette_classes: Annotated[str, typer.Option(
        help="cnn: which images --palette-augment may quantize: both (real and fake) or "
        "real (real images only, so that every fake keeps its generator's colors).")
    ] = "both",
    pretrained: Annotated[Path | None, typer.Option(
        help="cnn: timm weights file (safetensors) to start the backbone from.")] = None,
    inputs: Annotated[str, typer.Option(
        help=f"cnn: what the backbone sees: {', '.join(CNN_INPUTS)} (npr: each pixel minus "
        "the first of its 2x2 block, where upsampling leaves its traces).")] = "rgb",
    model: Annotated[Path | None, typer.Option(
        help="features: scoring checkpoint for the likelihood statistics (default: the "
        "bundled default generator).")] = None,
    likelihood: Annotated[bool, typer.Option(
        help="features: include the likelihood statistics.")] = True,
    classifier: Annotated[str, typer.Option(
        help=f"features: {', '.join(CLASSIFIERS)} (auto: best validation AUC).")] = "auto",
    member: Annotated[list[str] | None, typer.Option(
        help="fusion: a member detector (saved folder or name); repeat.")] = None,
    combine: Annotated[str, typer.Option(
        help="fusion: how the members' scores combine: regression (fitted on the validation "
        "split: members of different kinds) or mean (of the standardized scores: like "
        "members, e.g. one recipe trained with several seeds).")] = "regression",
    map_member: Annotated[list[int] | None, typer.Option(
        help="fusion: a member, by position (0: the first --member), whose maps, masks and "
        "region flags make the fusion's; repeat (default: every member with dense maps).")
    ] = None,
    mask_member: Annotated[list[int] | None, typer.Option(
        help="fusion: a member, by position, whose masks and region flags vote for the "
        "fusion's; repeat (default: the --map-member members).")] = None,
    score_member: Annotated[list[int] | None, typer.Option(
        help="fusion: a member, by position, whose score enters the combination; repeat "
        "(default: all; the others only draw maps or masks).")] = None,
    splices: Annotated[int, typer.Option(
        help="cnn: spliced fakes to add per training fake: its item's quantized real with "
        "the fake's pixels in a random box (a quarter to half of each side), so that maps "
        f"learn boxes of every size and place; 0 to {MAX_SPLICES}.")] = 0,
    param: Annotated[list[str] | None, typer.Option(
        help=f"cnn: another parameter as KEY=VALUE ({', '.join(CNN_PARAMS)}); repeat, "
        "e.g. --param stages=4 --param pixel_weight=3.")] = None,
    real_forms: Annotated[str, typer.Option(
        help="Real images to learn from: real, qreal or both (comma-separated).")
    ] = ",".join(REAL_FORMS),
    max_items: Annotated[int | None, typer.Option(
        help="At most this many items per split.")] = None,
    target_fpr: Annotated[float, typer.Option(
        help="False-positive rate on real validation images the threshold aims at.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of initialization, batches and splits.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, mps.")] = "auto",
    test: Annotated[bool, typer.Option(help="Report metrics on the test split.")] = True,
    json_out: JsonOpt = None,
) -> None:
    """Train a detector on labeled datasets (train splits; the validation splits for early
    stopping and the threshold), save it, and report test metrics (per dataset, and all)."""
    check_choice("--kind", kind, TRAINED_KINDS)
    if max_items is not None and max_items < 1:
        raise InputError(f"--max-items must be >= 1, got {max_items}")
    forms = parse_real_forms(real_forms)
    extra = parse_params(param, kind)
    # with --json -, standard output holds the JSON alone: the tables go to stderr
    shown = err_console if json_out is not None and str(json_out) == "-" else console
    params = _params(kind, arch, epochs, augment, pretrained, model, likelihood, classifier, member,
                     target_fpr, seed, device, inputs, palette_augment, combine,
                     map_member, palette_classes, mask_member, score_member) | extra
    new_detector(kind, params)  # a bad parameter is refused before any data is read
    check_splices(splices, kind)
    if test:  # before training, not after it: a missing test split is known from the counts
        for d in dataset:
            check_splits(d, ("test",))
    t0 = time.perf_counter()
    with progress_bar("images", fields=("info",)) as bar:
        det = train_on_dataset(dataset, kind, params, forms, max_items, progress=_Bar(bar),
                               splices=splices)
    seconds = time.perf_counter() - t0
    det.save(out)
    summary = {"detector": str(out), "kind": kind, "train_seconds": seconds,
               "threshold": det.threshold_, "target_fpr": target_fpr,
               "score": "higher = more likely synthetic", "fit_info": det.fit_info_}
    if test:  # each dataset's test split alone, then all together
        parts = [load_arrays(d, "test", forms, max_items) for d in dataset]
        if len(dataset) > 1:
            summary["test_by_dataset"] = {
                str(d): split_report(det, p.as_split(str(d)), localize=kind == "cnn")
                for d, p in zip(dataset, parts)}
        summary["test"] = split_report(det, SplitData.concat(parts).as_split("test"),
                                       localize=kind == "cnn")

    fi = det.fit_info_
    table = Table(title=f"{kind} detector {out} (score: higher = more likely synthetic)")
    for col in ("threshold", "validation AUC", "test AUC", "test AP", "test TPR@1%FPR",
                "test FPR at threshold", "seconds"):
        table.add_column(col, justify="right")
    val_auc = fi.get("val_auc", fi.get("heldout_auc"))
    if isinstance(val_auc, dict):
        val_auc = val_auc[fi["classifier"]]
    t = summary.get("test", {}).get("all", {})
    table.add_row(f"{det.threshold_:.3f}", f"{val_auc:.3f}",
                  *(f"{t[k]:.3f}" if k in t else "-" for k in ("auc", "ap", "tpr_at_1fpr",
                                                               "fpr_at_threshold")),
                  f"{seconds:.1f}")
    shown.print(table)
    if "test_by_dataset" in summary:
        t1 = Table(title="test split of each dataset (quantized reals and reals vs its fakes)")
        for col in ("dataset", "AUC", "AP", "TPR@1%FPR", "FPR at threshold"):
            t1.add_column(col, justify="left" if col == "dataset" else "right")
        for name, res in summary["test_by_dataset"].items():
            a = res["all"]
            t1.add_row(name, *(f"{a[k]:.3f}" for k in ("auc", "ap", "tpr_at_1fpr",
                                                        "fpr_at_threshold")))
        shown.print(t1)
    if "test" in summary:
        _print_test(summary["test"], shown)
    if kind == "features":
        imp = det.feature_importances()
        summary["feature_importances"] = dict(imp)
        t2 = Table(title=f"feature importances ({fi['classifier']}; top 12)")
        t2.add_column("feature")
        t2.add_column("importance", justify="right")
        for name, v in imp[:12]:
            t2.add_row(name, f"{v:.3f}")
        shown.print(t2)
    if kind == "fusion":
        t3 = Table(title="members (standardized coefficient; map and mask weights)")
        for col in ("member", "coefficient", "map weight", "mask weight"):
            t3.add_column(col)
        for m in fi["members"]:
            t3.add_row(f"{m['name']} {m['spec']}",
                       "maps only" if m["coef"] is None else f"{m['coef']:.3f}",
                       f"{m['map_weight']:.2f}", f"{m['mask_weight']:.2f}")
        shown.print(t3)
    emit_json(json_out, summary)
    err_console.print(f"saved to {out} in {seconds:.1f} s; use: igpt-forensics score "
                      f"--detector {out} IMAGES")


def _print_test(test: dict, shown=console) -> None:
    table = Table(title="test split")
    for col in ("real images", "AUC", "AP", "TPR@1%FPR", "accuracy at threshold"):
        table.add_column(col, justify="right")
    for key, m in test.items():
        if key.startswith("pixels_"):
            continue
        table.add_row(key.replace("_vs_fake", " vs fake"), f"{m['auc']:.3f}", f"{m['ap']:.3f}",
                      f"{m['tpr_at_1fpr']:.3f}", f"{m['accuracy']:.3f}")
    shown.print(table)
    pix = {k[len("pixels_"):]: v for k, v in test.items() if k.startswith("pixels_")}
    if pix:
        t = Table(title="maps on partial fakes (test)")
        for col in ("mask kind", "fakes", "pixel AUC", "F1", "IoU"):
            t.add_column(col, justify="right")
        for k, v in pix.items():
            t.add_row(k, str(v["n_images"]), f"{v['pixel_auc']:.3f}", f"{v['f1']:.3f}",
                      f"{v['iou']:.3f}")
        shown.print(t)


def register(app: typer.Typer) -> None:
    app.command("train-detector")(train_detector)
