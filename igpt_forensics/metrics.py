"""Detection metrics: image level (AUC, AP, EER, TPR at a fixed FPR, accuracy at a threshold,
bootstrap intervals, paired differences of two detectors' AUCs) and region level (pixel AUC,
F1 and IoU of predicted masks, paired differences of two detectors' pixel AUCs).

Scores follow one contract: higher = more likely synthetic; label 1 = fake, 0 = real.
scikit-learn computes the curves; this module only assembles them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import InputError


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise InputError(f"{labels.size} labels but {scores.size} scores")
    if not set(np.unique(labels)) <= {0, 1}:
        raise InputError("labels must be 0 (real) or 1 (fake)")
    if labels.min(initial=1) == labels.max(initial=0):
        raise InputError("metrics need both real (0) and fake (1) examples")
    if not np.all(np.isfinite(scores)):
        raise InputError("scores contain NaN or infinity")
    return labels, scores


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 image batches (inf if equal)."""
    err = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    mse = float(np.mean(err * err))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def calibrate_threshold(real_scores: np.ndarray, target_fpr: float) -> float:
    """The smallest threshold with at most ``target_fpr`` of real scores strictly above it."""
    real_scores = np.asarray(real_scores, dtype=np.float64)
    if real_scores.size == 0:
        raise InputError("no real images to calibrate the threshold on")
    if not 0.0 <= target_fpr < 1.0:
        raise InputError(f"target_fpr must be in [0, 1), got {target_fpr}")
    ordered = np.sort(real_scores)
    allowed = int(np.floor(target_fpr * len(ordered) + 1e-9))  # real scores allowed above
    return float(ordered[len(ordered) - 1 - allowed])


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """The true-positive rate at the best threshold whose false-positive rate is <= ``fpr``."""
    from sklearn.metrics import roc_curve  # here, not on import: the CLI's help stays fast

    labels, scores = _check(labels, scores)
    f, t, _ = roc_curve(labels, scores)
    ok = f <= fpr + 1e-12
    return float(t[ok].max()) if ok.any() else 0.0


def eer(labels: np.ndarray, scores: np.ndarray) -> float:
    """Equal error rate: where the false-positive and false-negative rates cross."""
    from sklearn.metrics import roc_curve

    labels, scores = _check(labels, scores)
    f, t, _ = roc_curve(labels, scores)
    fnr = 1.0 - t
    i = int(np.nanargmin(np.abs(fnr - f)))
    return float((f[i] + fnr[i]) / 2.0)


def bootstrap_aucs(labels: np.ndarray, scores: np.ndarray, n: int = 200,
                   seed: int = 0) -> np.ndarray:
    """AUCs of ``n`` bootstrap resamples, each class resampled separately (with replacement).

    Resample b takes ``rng.integers`` indices of the fakes (n, P) and then of the reals
    (n, N). Its AUC is Mann-Whitney's statistic with the resample's counts as weights, so all
    resamples cost a few array operations over the distinct scores instead of ``n`` calls to
    roc_auc_score (which made the bootstrap most of a benchmark's time); a test checks the
    result against roc_auc_score on the same resamples.
    """
    labels, scores = _check(labels, scores)
    rng = np.random.default_rng(seed)
    pos, neg = scores[labels == 1], scores[labels == 0]
    values, inv = np.unique(np.r_[pos, neg], return_inverse=True)
    inv_pos, inv_neg = inv[: len(pos)], inv[len(pos):]
    U = len(values)
    pos_idx = rng.integers(0, len(pos), (n, len(pos)))
    neg_idx = rng.integers(0, len(neg), (n, len(neg)))
    aucs = np.empty(n)
    step = max(1, 4_000_000 // max(U, len(pos), len(neg)))  # bounded memory for any size
    for b0 in range(0, n, step):
        rows = np.arange(b0, min(n, b0 + step))
        offset = (rows - b0)[:, None] * U
        wp = np.bincount((inv_pos[pos_idx[rows]] + offset).ravel(),
                         minlength=len(rows) * U).reshape(len(rows), U)
        wn = np.bincount((inv_neg[neg_idx[rows]] + offset).ravel(),
                         minlength=len(rows) * U).reshape(len(rows), U).astype(np.float64)
        below = np.cumsum(wn, axis=1) - wn  # reals strictly below each distinct score
        aucs[rows] = (wp * (below + 0.5 * wn)).sum(1) / (len(pos) * len(neg))
    return aucs


def bootstrap_auc(labels: np.ndarray, scores: np.ndarray, n: int = 200, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC, resampling each class separately."""
    aucs = bootstrap_aucs(labels, scores, n, seed)
    lo, hi = np.quantile(aucs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def paired_auc_difference(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                          n: int = 2000, seed: int = 0, level: float = 0.95,
                          ) -> tuple[float, float, float]:
    """AUC of ``scores_a`` minus AUC of ``scores_b`` on the same images, with a paired
    percentile bootstrap interval: each resample draws the same images for both (the
    resamples of `bootstrap_aucs` depend only on the class sizes and the seed), so what the
    two detectors share, the hard and easy images, cancels out of the interval. -> (diff,
    lo, hi)."""
    from sklearn.metrics import roc_auc_score

    labels, scores_a = _check(labels, scores_a)
    _, scores_b = _check(labels, scores_b)
    diff = bootstrap_aucs(labels, scores_a, n, seed) - bootstrap_aucs(labels, scores_b, n, seed)
    lo, hi = np.quantile(diff, [(1 - level) / 2, 1 - (1 - level) / 2])
    return (float(roc_auc_score(labels, scores_a) - roc_auc_score(labels, scores_b)),
            float(lo), float(hi))


def _pooled_auc(labels: np.ndarray, scores: np.ndarray, owner: np.ndarray):
    """-> f(counts): the AUC of the pooled pixels when image ``i`` is drawn ``counts[i]``
    times (a bootstrap resample), a weighted Mann-Whitney count over one sort of the pixels
    (ties count half), so that each resample costs one pass instead of a sort."""
    order = np.argsort(scores, kind="stable")
    s, y, img = scores[order], labels[order], owner[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of equal scores

    def auc(counts: np.ndarray) -> float:
        w = counts[img].astype(np.float64)
        pos = np.add.reduceat(w * y, starts)
        neg = np.add.reduceat(w * (1 - y), starts)
        n_pos, n_neg = pos.sum(), neg.sum()
        if n_pos == 0 or n_neg == 0:
            return float("nan")
        below = np.cumsum(neg) - neg
        return float(np.sum(pos * (below + 0.5 * neg)) / (n_pos * n_neg))

    return auc


def paired_pixel_auc_difference(true_masks: Sequence[np.ndarray], maps_a: Sequence[np.ndarray],
                                maps_b: Sequence[np.ndarray], n: int = 1000, seed: int = 0,
                                level: float = 0.95) -> tuple[float, float, float]:
    """Pooled pixel AUC of ``maps_a`` minus that of ``maps_b`` on the same partial fakes, with
    a paired percentile bootstrap over *images* (pixels of one image are not independent):
    each resample draws the same images for both maps and pools their pixels. -> (diff, lo,
    hi)."""
    if not (len(true_masks) == len(maps_a) == len(maps_b)) or len(true_masks) == 0:
        raise InputError(f"{len(true_masks)} masks but {len(maps_a)} and {len(maps_b)} maps")
    ys = [np.asarray(t, bool).ravel() for t in true_masks]
    sa = [np.asarray(m, np.float64).ravel() for m in maps_a]
    sb = [np.asarray(m, np.float64).ravel() for m in maps_b]
    if any(len(y) != len(a) or len(y) != len(b) for y, a, b in zip(ys, sa, sb)):
        raise InputError("a mask and its maps differ in size")
    k = len(ys)
    y = np.concatenate(ys).astype(np.float64)
    owner = np.repeat(np.arange(k), [len(t) for t in ys])
    auc_a = _pooled_auc(y, np.concatenate(sa), owner)
    auc_b = _pooled_auc(y, np.concatenate(sb), owner)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        counts = np.bincount(rng.integers(0, k, k), minlength=k)
        draws.append(auc_a(counts) - auc_b(counts))
    lo, hi = np.nanquantile(np.asarray(draws), [(1 - level) / 2, 1 - (1 - level) / 2])
    ones = np.ones(k, np.int64)
    return auc_a(ones) - auc_b(ones), float(lo), float(hi)


def image_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float | None = None,
                  bootstrap: int = 200, seed: int = 0) -> dict[str, float]:
    """AUC (with a bootstrap 95% interval), AP, EER, TPR at 1% and 5% FPR, and accuracy,
    TPR and FPR at ``threshold`` (a detector's calibrated one) when given."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels, scores = _check(labels, scores)
    out = {
        "n_real": int((labels == 0).sum()),
        "n_fake": int((labels == 1).sum()),
        "auc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "eer": eer(labels, scores),
        "tpr_at_1fpr": tpr_at_fpr(labels, scores, 0.01),
        "tpr_at_5fpr": tpr_at_fpr(labels, scores, 0.05),
    }
    if bootstrap:
        out["auc_lo"], out["auc_hi"] = bootstrap_auc(labels, scores, bootstrap, seed)
    if threshold is not None:
        pred = scores > threshold
        out["threshold"] = float(threshold)
        out["accuracy"] = float(np.mean(pred == (labels == 1)))
        out["tpr_at_threshold"] = float(pred[labels == 1].mean())
        out["fpr_at_threshold"] = float(pred[labels == 0].mean())
    return out


def pixel_metrics(true_masks: list[np.ndarray] | np.ndarray,
                  maps: list[np.ndarray] | np.ndarray,
                  pred_masks: list[np.ndarray] | np.ndarray | None = None,
                  max_pixels: int = 2_000_000, seed: int = 0) -> dict[str, float]:
    """Pixel AUC of ``maps`` against ground-truth masks (pooled over images), and the mean
    per-image F1 and IoU of ``pred_masks`` (default: maps > 0.5).

    Pixels are subsampled to ``max_pixels`` for the AUC so memory stays bounded.
    """
    if len(true_masks) != len(maps) or len(true_masks) == 0:
        raise InputError(f"{len(true_masks)} masks but {len(maps)} maps")
    if pred_masks is None:
        pred_masks = [np.asarray(m) > 0.5 for m in maps]
    ys, ss, f1s, ious = [], [], [], []
    for t, m, p in zip(true_masks, maps, pred_masks):
        t, m, p = np.asarray(t, bool), np.asarray(m, np.float64), np.asarray(p, bool)
        if t.shape != m.shape or t.shape != p.shape:
            raise InputError(f"mask {t.shape} and map {m.shape} differ in shape")
        ys.append(t.ravel())
        ss.append(m.ravel())
        inter = float(np.logical_and(t, p).sum())
        union = float(np.logical_or(t, p).sum())
        denom = float(t.sum() + p.sum())
        ious.append(inter / union if union else 1.0)
        f1s.append(2 * inter / denom if denom else 1.0)
    y, s = np.concatenate(ys), np.concatenate(ss)
    if len(y) > max_pixels:
        keep = np.random.default_rng(seed).choice(len(y), max_pixels, replace=False)
        y, s = y[keep], s[keep]
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    return {"pixel_auc": auc, "f1": float(np.mean(f1s)), "iou": float(np.mean(ious)),
            "n_images": len(ious)}
