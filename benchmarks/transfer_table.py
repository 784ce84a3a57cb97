"""A bench report's transfer table, as docs/results.md prints it: per detector and dataset,
image AUC against quantized reals (photographed reals where a dataset has no quantized ones)
for all fakes, TPR at 1% FPR, and the FPR the detector's threshold lets through on the
test reals; then AUC under each perturbation; then maps on partial fakes.

    .venv/bin/python benchmarks/transfer_table.py runs/transfer-pool/metrics.json [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(doc: dict) -> dict:
    rows = [r for r in doc["image"] if r["fakes"] == "all"]
    has_q = {(r["detector"], r["dataset"]) for r in rows if r["real_form"] == "qreal"}
    out: dict = {}
    for r in rows:
        key = (r["detector"], r["dataset"])
        if r["real_form"] != ("qreal" if key in has_q else "real"):
            continue
        d = out.setdefault(r["detector"], {}).setdefault(r["dataset"], {})
        d[r["perturbation"]] = {k: r.get(k) for k in ("auc", "tpr_at_1fpr", "fpr_at_threshold")}
    for r in doc.get("region", []):
        d = out.setdefault(r["detector"], {}).setdefault(r["dataset"], {})
        if r["perturbation"] == "none":
            d[f"map_{r['fakes']}"] = {k: r.get(k) for k in ("pixel_auc", "iou")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    t = table(json.loads(args.metrics.read_text()))
    datasets = sorted({ds for d in t.values() for ds in d})
    perturbs = sorted({p for d in t.values() for ds in d.values() for p in ds
                       if not p.startswith("map_") and p != "none"})
    print("| detector | " + " | ".join(datasets) + " |")
    print("|---" * (len(datasets) + 1) + "|")
    for det, by in t.items():
        cells = []
        for ds in datasets:
            m = by.get(ds, {}).get("none")
            cells.append("" if m is None else f"{m['auc']:.3f} ({m['tpr_at_1fpr']:.2f}; "
                         f"{m['fpr_at_threshold']:.2f})")
        print(f"| {det} | " + " | ".join(cells) + " |")
    for p in perturbs:
        print(f"\n{p}: " + "; ".join(
            f"{det} " + " / ".join(f"{by[ds][p]['auc']:.2f}" if p in by.get(ds, {}) else "-"
                                   for ds in datasets) for det, by in t.items()))
    print("\nmaps (pixel AUC / IoU): " + "; ".join(
        f"{det} {ds} {k[4:]} {v['pixel_auc']:.3f}/{v['iou']:.3f}" for det, by in t.items()
        for ds, d in by.items() for k, v in d.items() if k.startswith("map_")))
    if args.json is not None:
        args.json.write_text(json.dumps(t, indent=1) + "\n")


if __name__ == "__main__":
    main()
