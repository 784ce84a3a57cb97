"""What stacking adds to the leave-one-generator-out cnn (issue 16; docs/results.md, "Stacking
and ensembles, left out of training").

For each held-out generator G of `logo_pool.py` (OUT/detectors/G/VARIANT), a logistic
regression (standardized inputs, balanced classes: what the `fusion` detector fits) learns on
the validation splits of the datasets of every other generator and is tested on G's test
split, image AUC against G's quantized reals (all fakes, and box completions alone). Inputs:

- ``cnn``: the held-out cnn's image logit alone (the reference);
- ``cnn+likelihood``, ``cnn+baselines``, ``cnn+all``: with the shipped zero-shot likelihood
  score and/or the three one-line statistics (rowcol, laplacian, colors);
- ``lik-stats px``, ``lik-stats px+vq``: no cnn; the likelihood detector's 13 image statistics
  under the bundled pixel-GPT and under the bundled VQ generator's codes (quadratic terms),
  i.e. the zero-shot coder's evidence with the decision learned on the pool's fakes of
  several generators instead of the coder's own samples; ``cnn+lik-stats``: both.

Scores are cached under --cache (one file per dataset and split).

    .venv/bin/python benchmarks/logo_stacking.py --pool runs/logo-pool9.txt \\
        --out runs/logo-tta --variant flip --cache runs/logo-stacking \\
        --json benchmarks/results/logo-stacking.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from igpt_forensics.detectors.baselines import BASELINES
from logo_pool import detector_args, groups, read_pool


def member_scores(pool, gs, out: Path, variant: str, cache: Path) -> dict:
    """(dataset, split) -> arrays: label, form, kind, each member's score, the likelihood
    statistics of both coders."""
    from igpt_forensics.detectors.base import create_detector, load_detector
    from igpt_forensics.detectors.trained import REAL_FORMS, load_arrays

    cache.mkdir(parents=True, exist_ok=True)
    dets = None
    found = {}
    for name, folder in pool.items():
        for split in ("val", "test"):
            f = cache / f"{name}-{split}.npz"
            if not f.exists():
                if dets is None:
                    dets = {f"cnn:{g}": load_detector(out / "detectors" / g / variant)
                            for g in gs if (out / "detectors" / g / variant).exists()}
                    dets["likelihood"] = create_detector("likelihood", pretrained=True)
                    coders = {"px": dets["likelihood"],
                              "vq": create_detector("likelihood", model="vq-default")}
                d = load_arrays(folder, split, REAL_FORMS)
                images = list(d.real) + list(d.fake)
                res = {"label": np.r_[np.zeros(len(d.real)), np.ones(len(d.fake))],
                       "form": np.array(d.real_forms + ["fake"] * len(d.fake)),
                       "kind": np.array(["real"] * len(d.real) + d.fake_kinds)}
                for key, det in dets.items():
                    res[key] = np.asarray(det.score(images), np.float64)
                for b in BASELINES:  # the raw statistic (its direction is learned below)
                    stat = create_detector(b)
                    res[b] = np.array([stat.image_value(im) for im in images])
                for c, det in coders.items():
                    res.update({f"{c}:{k}": v for k, v in det.image_statistics(images).items()})
                np.savez(f, **res)
                print(f"scored {name} {split} ({len(images)} images)", flush=True)
            found[name, split] = dict(np.load(f))
    return found


def main() -> None:
    ap = detector_args(__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, required=True)
    args = ap.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    torch.set_num_threads(args.threads)
    pool = read_pool(args.pool)
    gs = groups(pool)
    S = member_scores(pool, gs, args.out, args.variant, args.cache)
    stats = {c: sorted(k for k in S[next(iter(pool)), "val"] if k.startswith(f"{c}:"))
             for c in ("px", "vq")}
    inputs = {  # name -> (uses the cnn, other columns, quadratic)
        "cnn": (True, [], False),
        "cnn+likelihood": (True, ["likelihood"], False),
        "cnn+baselines": (True, list(BASELINES), False),
        "cnn+all": (True, ["likelihood", *BASELINES], False),
        "lik-stats px": (False, stats["px"], True),
        "lik-stats px+vq": (False, stats["px"] + stats["vq"], True),
        "cnn+lik-stats": (True, stats["px"] + stats["vq"], False),
    }

    def columns(d: dict, held: str, cnn: bool, cols: list[str]) -> np.ndarray:
        x = [np.clip(d[c], -50, 50) for c in cols]  # as the likelihood detector clips z
        return np.stack(([d[f"cnn:{held}"]] if cnn else []) + x, axis=1)

    result: dict = {"variant": str(args.out / "detectors" / "HELD" / args.variant),
                    "inputs": {k: [*(["cnn"] if v[0] else []), *v[1]] for k, v in
                               inputs.items()}, "auc": {}}
    for held, names in gs.items():
        if f"cnn:{held}" not in S[names[0], "test"]:
            continue
        train = [n for n in pool if n not in names]
        for key, (cnn, cols, quad) in inputs.items():
            x = np.concatenate([columns(S[n, "val"], held, cnn, cols) for n in train])
            y = np.concatenate([S[n, "val"]["label"] for n in train])
            steps = [StandardScaler(), PolynomialFeatures(2), StandardScaler()] if quad \
                else [StandardScaler()]
            model = make_pipeline(*steps, LogisticRegression(
                class_weight="balanced", C=0.1 if quad else 1.0, max_iter=3000)).fit(x, y)
            for n in names:
                d = S[n, "test"]
                s = model.decision_function(columns(d, held, cnn, cols))
                q = d["form"] == "qreal"
                cell = {}
                for kind, fake in (("all", d["label"] == 1), ("box", d["kind"] == "box")):
                    keep = q | fake
                    cell[kind] = float(roc_auc_score(d["label"][keep], s[keep]))
                result["auc"].setdefault(key, {})[n] = cell
    names = sorted({n for v in result["auc"].values() for n in v})
    print("| inputs | " + " | ".join(names) + " | mean | mean, boxes |")
    summary = {}
    for key, cells in result["auc"].items():
        summary[key] = {"mean_auc": float(np.mean([c["all"] for c in cells.values()])),
                        "min_auc": float(np.min([c["all"] for c in cells.values()])),
                        "mean_auc_box": float(np.mean([c["box"] for c in cells.values()]))}
        print(f"| {key} | " + " | ".join(f"{cells[n]['all']:.3f}" for n in names)
              + f" | {summary[key]['mean_auc']:.3f} | {summary[key]['mean_auc_box']:.3f} |")
    result["summary"] = summary
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
