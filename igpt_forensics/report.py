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
from .viz import image_grid, png_bytes


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


def roc_figure(raw: dict, dataset: str, real_form: str = "qreal") -> bytes:
    """ROC of every detector on one dataset, unperturbed."""
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 4))
    for det, per_ds in raw.items():
        s = per_ds.get(dataset, {}).get("none")
        if not s or not s[real_form]:
            continue
        y = np.r_[np.zeros(len(s[real_form])), np.ones(len(s["fake"]))]
        f, t, _ = roc_curve(y, np.r_[s[real_form], s["fake"]])
        ax.plot(f, t, label=det)
    ax.plot([0, 1], [0, 1], ls=":", c="gray")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate",
           title=f"ROC, {dataset} ({'quantized ' if real_form == 'qreal' else ''}real vs fake)")
    ax.legend(fontsize=7)
    return _figure_png(fig)


def histogram_figure(scores: dict, title: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.2, 3))
    allv = np.r_[scores["real"], scores["qreal"], scores["fake"]]
    bins = np.linspace(np.min(allv), np.max(allv) + 1e-9, 30)
    for key, label in (("real", "real"), ("qreal", "quantized real"), ("fake", "fake")):
        if scores[key]:
            ax.hist(scores[key], bins=bins, alpha=0.5, label=label, density=True)
    ax.set(xlabel="score (higher = more likely synthetic)", ylabel="density", title=title)
    ax.legend(fontsize=7)
    return _figure_png(fig)


def robustness_figure(image_rows: list[dict], dataset: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    dets = sorted({r["detector"] for r in image_rows})
    for det in dets:
        rows = [r for r in image_rows if r["detector"] == det and r["dataset"] == dataset
                and r["real_form"] == "qreal" and r["fakes"] == "all"]
        if not rows:
            continue
        xs = np.arange(len(rows))
        ax.plot(xs, [r["auc"] for r in rows], marker="o", label=det)
        ax.set_xticks(xs, [r["perturbation"] for r in rows], rotation=30, fontsize=7)
    ax.axhline(0.5, ls=":", c="gray")
    ax.set(ylabel="AUC", ylim=(0, 1.02), title=f"AUC under perturbations, {dataset}")
    ax.legend(fontsize=7)
    return _figure_png(fig)


def examples_strip(fakes: list[np.ndarray], truth: list[np.ndarray], maps: list[np.ndarray],
                   scale: int = 4) -> bytes:
    """Per row: the fake, the ground-truth mask, the detector's map (hot colors)."""
    import matplotlib

    cmap = matplotlib.colormaps["inferno"]
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

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_report(out: str | Path, doc: dict, raw: dict, examples: dict[str, bytes],
                 completion_png: bytes | None = None, title: str = "igpt-forensics benchmark",
                 ) -> Path:
    """Assemble ``out/report.html`` from the metrics document, raw scores and figures."""
    out = Path(out)
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>tool {doc['tool_version']}, {doc['created']}, {html.escape(str(doc['machine']))}"
             f". Scores: higher = more likely synthetic. Thresholds are calibrated on real "
             f"images only (1% false positives).</p>"]
    datasets = [d["name"] for d in doc["datasets"]]
    parts.append("<h2>Datasets</h2>" + _table(doc["datasets"], ["name", "path", "n_real",
                                                               "n_fake", "generator_sha256"]))
    parts.append("<h2>Detectors</h2>" + _table(doc["detectors"], ["name", "kind", "threshold"]))
    main = [r for r in doc["image"] if r["perturbation"] == "none" and r["fakes"] == "all"]
    parts.append("<h2>Image level (unperturbed)</h2>" + _table(
        main, ["detector", "dataset", "real_form", "auc", "auc_lo", "auc_hi", "ap", "eer",
               "tpr_at_1fpr", "tpr_at_5fpr", "accuracy", "fpr_at_threshold"]))
    figs = []
    for ds in datasets:
        figs.append(roc_figure(raw, ds))
        figs.append(robustness_figure(doc["image"], ds))
        for det, per_ds in raw.items():
            s = per_ds.get(ds, {}).get("none")
            if s:
                figs.append(histogram_figure(s, f"{det} on {ds}"))
    parts.append("<h2>Curves</h2>" + "".join(
        f'<img src="{data_uri(f)}" alt="figure">' for f in figs))
    parts.append("<h2>Per mask kind and perturbation</h2>" + _table(
        doc["image"], ["detector", "dataset", "perturbation", "real_form", "fakes", "auc", "ap",
                       "tpr_at_1fpr", "accuracy"]))
    if doc["region"]:
        parts.append("<h2>Region level (partial fakes)</h2>" + _table(
            doc["region"], ["detector", "dataset", "perturbation", "fakes", "pixel_auc", "f1",
                            "iou"]))
    if doc["cross"]:
        parts.append("<h2>Cross-dataset (train/threshold on A, test on B)</h2>" + _table(
            doc["cross"], ["detector", "train", "test", "auc", "ap", "accuracy",
                           "fpr_at_threshold", "fit_seconds"]))
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
             "img{margin:4px;image-rendering:pixelated}figure{display:inline-block}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")
    atomic_write_text(out / "report.html", page)
    return out / "report.html"
