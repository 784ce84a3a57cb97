"""``report.html``: one self-contained page (every image embedded as a data URI).

ROC curves, score histograms per class, AUC against perturbation strength, examples with
their maps beside the ground truth, a completion grid, and the metric tables.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from .files import atomic_write_text
from .viz import HEAT_COLORMAP, image_grid, png_bytes


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


BASELINES = ("rowcol", "laplacian", "colors")  # single-feature statistics: the bar to clear
LABELS = {"auc": "AUC", "auc_lo": "AUC low", "auc_hi": "AUC high", "ap": "AP", "eer": "EER",
          "tpr_at_1fpr": "TPR @ 1% FPR", "tpr_at_5fpr": "TPR @ 5% FPR",
          "accuracy": "accuracy @ thr", "fpr_at_threshold": "FPR @ thr",
          "tpr_at_threshold": "TPR @ thr", "real_form": "reals", "pixel_auc": "pixel AUC",
          "f1": "F1", "iou": "IoU", "n_real": "reals", "n_fake": "fakes",
          "generator_sha256": "generator sha256", "fit_seconds": "fit s",
          "held_out": "held-out dataset"}


def detector_colors(names) -> dict[str, str]:
    """One color per detector, the same in every plot of the report."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {n: matplotlib.colors.to_hex(cmap(i % 10)) for i, n in enumerate(sorted(set(names)))}


def summary(doc: dict, target_fpr: float = 0.01) -> dict:
    """What the report says first: the detector to trust and the warnings that go with it.

    The best detector is the one with the highest AUC against quantized reals (format
    parity: both classes through the same palette and encoder), unperturbed, all fakes,
    ranked by the lower end of its interval when there is one. Warnings: test sets too small
    for TPR at 1% FPR, thresholds whose real false-positive rate misses the target, baselines
    that beat a detector, and detectors that score far better against photographed reals
    than against quantized ones (they read the container, not the generator)."""
    rows = [r for r in doc["image"] if r["perturbation"] == "none" and r["fakes"] == "all"]
    # quantized reals where the data has them (format parity), the reals otherwise
    q = [r for r in rows if r["real_form"] == "qreal"] or rows
    warnings = []
    ranking = sorted(q, key=lambda r: (-(r.get("auc_lo") or r["auc"]), -r["auc"]))
    best = next((r for r in ranking if r["detector"] not in BASELINES), None)
    small = {r["dataset"]: r["n_real"] for r in q if r.get("n_real", 1000) < 100}
    for name, n_real in small.items():  # a property of the dataset, said once for it
        warnings.append(f"dataset {name}: only {n_real} real test images; TPR at 1% FPR "
                        "rests on one or no false positive, and thresholds on few more")
    for r in q:
        fpr = r.get("fpr_at_threshold")
        if fpr is not None and fpr > 2 * target_fpr + 0.01:
            warnings.append(f"{r['detector']} on {r['dataset']}: its threshold lets {fpr:.1%} "
                            f"of real images through (target {target_fpr:.0%}): it does not "
                            "transfer to these photos")
    for r in q:
        if r["detector"] in BASELINES:
            beaten = [x["detector"] for x in q if x["dataset"] == r["dataset"]
                      and x["detector"] not in BASELINES and x["auc"] < r["auc"]]
            if beaten:
                warnings.append(f"baseline {r['detector']} (AUC {r['auc']:.3f}) beats "
                                f"{', '.join(beaten)} on {r['dataset']}")
    photo = {(r["detector"], r["dataset"]): r["auc"] for r in rows if r["real_form"] == "real"}
    for r in q:
        gap = photo.get((r["detector"], r["dataset"]), r["auc"]) - r["auc"]
        if gap > 0.2:
            warnings.append(f"{r['detector']} on {r['dataset']}: AUC {r['auc'] + gap:.3f} "
                            f"against photographed reals but {r['auc']:.3f} against quantized "
                            "reals: it reads the palette/format, not the generator")
    out = {"best": best, "ranking": [(r["detector"], r["dataset"], r["auc"]) for r in ranking],
           "warnings": warnings}
    if doc.get("leave_one_out_mean_auc"):
        out["leave_one_out"] = doc["leave_one_out_mean_auc"]
    return out


def _verdict_box(doc: dict) -> str:
    s = summary(doc)
    b = s["best"]
    if b is None:
        head = "<p>No detector beyond the baselines was benchmarked.</p>"
    else:
        ci = (f" [95% CI {b['auc_lo']:.3f}-{b['auc_hi']:.3f}]" if b.get("auc_lo") is not None
              else "")
        fpr = b.get("fpr_at_threshold")
        head = (f"<p><b>Detector to trust here: {html.escape(b['detector'])}</b> on "
                f"{html.escape(b['dataset'])}: AUC {b['auc']:.3f}{ci} against quantized reals; "
                + (f"at its threshold it flags {b.get('tpr_at_threshold', 0):.1%} of fakes "
                   f"and {fpr:.1%} of reals (target 1%)." if fpr is not None else "") + "</p>")
    if s.get("leave_one_out"):
        head += "<p>Leave-one-generator-out mean AUC: " + ", ".join(
            f"{html.escape(k)} {v:.3f}" for k, v in s["leave_one_out"].items()) + "</p>"
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in s["warnings"])
    return (f"<div class='verdict'>{head}"
            + (f"<p>Warnings:</p><ul>{warn}</ul>" if warn else "<p>No warnings.</p>")
            + "</div>")


def roc_figure(raw: dict, dataset: str, real_form: str = "qreal",
               colors: dict[str, str] | None = None) -> bytes:
    """ROC of every detector on one dataset, unperturbed."""
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for det, per_ds in raw.items():
        s = per_ds.get(dataset, {}).get("none")
        if not s:
            continue
        form = real_form if s[real_form] else "real"  # an outside folder has no qreal
        y = np.r_[np.zeros(len(s[form])), np.ones(len(s["fake"]))]
        f, t, _ = roc_curve(y, np.r_[s[form], s["fake"]])
        ax.plot(f, t, label=det, color=(colors or {}).get(det))
    ax.plot([0, 1], [0, 1], ls=":", c="gray")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate",
           title=f"ROC, {dataset} ({'quantized ' if real_form == 'qreal' else ''}real vs fake)")
    ax.legend(fontsize=7)
    return _figure_png(fig)


def histogram_figure(scores: dict, title: str, threshold: float | None = None) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3))
    allv = np.r_[scores["real"], scores["qreal"], scores["fake"]]
    bins = np.linspace(np.min(allv), np.max(allv) + 1e-9, 30)
    for key, label in (("real", "real"), ("qreal", "quantized real"), ("fake", "fake")):
        if scores[key]:
            ax.hist(scores[key], bins=bins, alpha=0.5, label=label, density=True)
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set(xlabel="score (higher = more likely synthetic)", ylabel="density", title=title)
    ax.legend(fontsize=7)
    return _figure_png(fig)


def robustness_figure(image_rows: list[dict], dataset: str,
                      colors: dict[str, str] | None = None) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    dets = sorted({r["detector"] for r in image_rows})
    forms = {r["real_form"] for r in image_rows if r["dataset"] == dataset}
    form = "qreal" if "qreal" in forms else "real"
    for det in dets:
        rows = [r for r in image_rows if r["detector"] == det and r["dataset"] == dataset
                and r["real_form"] == form and r["fakes"] == "all"]
        if not rows:
            continue
        xs = np.arange(len(rows))
        ax.plot(xs, [r["auc"] for r in rows], marker="o", label=det,
                color=(colors or {}).get(det))
        ax.set_xticks(xs, [r["perturbation"] for r in rows], rotation=30, fontsize=7)
    ax.axhline(0.5, ls=":", c="gray")
    ax.set(ylabel="AUC", ylim=(0, 1.02), title=f"AUC under perturbations, {dataset}")
    ax.legend(fontsize=7)
    return _figure_png(fig)


def examples_strip(fakes: list[np.ndarray], truth: list[np.ndarray], maps: list[np.ndarray],
                   scale: int = 4) -> bytes:
    """Per row: the fake, the ground-truth mask, the detector's map (hot colors)."""
    import matplotlib

    cmap = matplotlib.colormaps[HEAT_COLORMAP]
    rows = []
    for im, t, m in zip(fakes, truth, maps):
        rows += [im, np.repeat((t * 255).astype(np.uint8)[..., None], 3, -1),
                 (cmap(np.clip(m, 0, 1))[..., :3] * 255).astype(np.uint8)]
    return png_bytes(image_grid(np.stack(rows), ncol=3, scale=scale, pad=2))


def _table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3f}"
        return html.escape(str(v)) if v is not None else "-"

    head = "".join(f"<th>{html.escape(LABELS.get(c, c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(out: str | Path, doc: dict, raw: dict, examples: dict[str, bytes],
                 completion_png: bytes | None = None, title: str = "igpt-forensics benchmark",
                 ) -> Path:
    """Assemble ``out/report.html`` from the metrics document, raw scores and figures."""
    out = Path(out)
    m = doc["machine"]
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>igpt-forensics {doc['tool_version']}, {doc['created']}; python "
             f"{html.escape(str(m.get('python')))}, torch {html.escape(str(m.get('torch')))}, "
             f"{m.get('threads')} threads, {html.escape(str(m.get('platform')))}. Scores: "
             "higher = more likely synthetic. Thresholds are calibrated on real images only "
             "(1% false positives). Judge detectors against quantized reals (format parity).</p>",
             _verdict_box(doc)]
    datasets = [d["name"] for d in doc["datasets"]]
    colors = detector_colors([d["name"] for d in doc["detectors"]]
                             + [r["detector"] for r in doc["image"]])
    thresholds = {d["name"]: d.get("threshold") for d in doc["detectors"]}
    for d in doc["detectors"]:
        if d.get("name_in_tables"):
            thresholds.setdefault(d["name_in_tables"], d.get("threshold"))
    parts.append("<h2>Datasets</h2>" + _table(doc["datasets"], ["name", "path", "n_real",
                                                               "n_fake", "generator_sha256"]))
    parts.append("<h2>Detectors</h2>" + _table(doc["detectors"], ["name", "kind", "threshold"]))
    main = sorted((r for r in doc["image"] if r["perturbation"] == "none"
                   and r["fakes"] == "all"), key=lambda r: (r["real_form"] != "qreal",
                                                            -r["auc"]))
    parts.append("<h2>Image level (unperturbed), best first</h2>" + _table(
        main, ["detector", "dataset", "real_form", "auc", "auc_lo", "auc_hi", "ap", "eer",
               "tpr_at_1fpr", "tpr_at_5fpr", "accuracy", "fpr_at_threshold"]))
    figs = []
    for ds in datasets:
        figs.append(roc_figure(raw, ds, colors=colors))
        figs.append(robustness_figure(doc["image"], ds, colors=colors))
        for det, per_ds in raw.items():
            s = per_ds.get(ds, {}).get("none")
            if s:
                figs.append(histogram_figure(s, f"{det} on {ds}", thresholds.get(det)))
    parts.append("<h2>Curves</h2>" + "".join(
        f'<img src="{data_uri(f)}" alt="figure">' for f in figs))
    kinds = sorted({r["fakes"] for r in doc["image"]} - {"all"})
    pivot: dict[tuple, dict] = {}
    for r in doc["image"]:
        if r["real_form"] != "qreal":
            continue
        row = pivot.setdefault((r["detector"], r["dataset"], r["perturbation"]),
                               {"detector": r["detector"], "dataset": r["dataset"],
                                "perturbation": r["perturbation"]})
        row[f"AUC {r['fakes']}"] = r["auc"]
    parts.append("<h2>AUC per mask kind and perturbation (quantized reals)</h2>" + _table(
        sorted(pivot.values(), key=lambda r: (r["detector"], r["dataset"])),
        ["detector", "dataset", "perturbation", "AUC all", *(f"AUC {k}" for k in kinds)]))
    no_map = sorted({d.get("name_in_tables", d["name"]) for d in doc["detectors"]
                     if d.get("pixel_maps") is False})
    if doc["region"] or no_map:
        parts.append("<h2>Region level (partial fakes)</h2>" + _table(
            doc["region"], ["detector", "dataset", "perturbation", "fakes", "pixel_auc", "f1",
                            "iou"]) + (f"<p>No pixel map: {html.escape(', '.join(no_map))} "
                                       "(not scored on regions).</p>" if no_map else ""))
    if doc["cross"]:
        parts.append("<h2>Cross-dataset (train/threshold on A, test on B)</h2>" + _table(
            doc["cross"], ["detector", "train", "test", "auc", "ap", "accuracy",
                           "fpr_at_threshold", "fit_seconds"]))
    if doc.get("leave_one_out"):
        parts.append("<h2>Leave-one-generator-out (never tested on a generator seen in "
                     "training)</h2>" + _table(doc["leave_one_out"], [
                         "detector", "held_out", "auc", "ap", "tpr_at_1fpr", "accuracy",
                         "fpr_at_threshold"]))
    if examples:
        parts.append("<h2>Examples: fake, ground truth, map</h2>" + "".join(
            f'<figure><img src="{data_uri(png)}" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
            for name, png in examples.items()))
    if completion_png:
        parts.append("<h2>Completions (masked input, completion, original)</h2>"
                     f'<img src="{data_uri(completion_png)}" alt="completions">')
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:"
             "collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 6px}"
             "img{margin:4px;image-rendering:pixelated}figure{display:inline-block}"
             ".verdict{border:2px solid #333;background:#f6f6f0;padding:4px 12px;margin:8px 0}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
