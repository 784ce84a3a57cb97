"""Fitted linear models kept as plain numbers: standardize, then a logistic regression
(`LinearModel`), or the same on the features' pairwise products (`QuadraticLogistic`).
Fitted with scikit-learn, saved as JSON, evaluated with numpy; used by the likelihood,
features and fusion detectors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from igpt_forensics.errors import InputError


def quadratic(x: np.ndarray) -> np.ndarray:
    """Features and all their pairwise products (squares included): (n, d) -> (n, d + d(d+1)/2)."""
    i, j = np.triu_indices(x.shape[1])
    return np.concatenate([x, x[:, i] * x[:, j]], axis=1)


@dataclass
class LinearModel:
    """Standardize, then a logistic regression's log-odds: plain arrays, saved as JSON."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, features: Sequence[str], C: float,
            seed: int) -> LinearModel:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        lr = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed)
        lr.fit(scaler.transform(x), y)
        return cls(list(features), scaler.mean_.astype(np.float64),
                   scaler.scale_.astype(np.float64), lr.coef_[0].astype(np.float64),
                   float(lr.intercept_[0]))

    @classmethod
    def mean_of(cls, x: np.ndarray, features: Sequence[str]) -> LinearModel:
        """Equal weights on the standardized features: their mean z-score (no fit beyond the
        scaler; what averaging an ensemble of like members is)."""
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(x)
        n = x.shape[1]
        return cls(list(features), scaler.mean_.astype(np.float64),
                   scaler.scale_.astype(np.float64), np.full(n, 1.0 / n), 0.0)

    def decision(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept}

    @classmethod
    def from_dict(cls, d: dict[str, Any], expect: Sequence[str]) -> LinearModel:
        if list(d["features"]) != list(expect):
            raise InputError(f"saved features {d['features']} differ from this version's "
                             f"{list(expect)}: re-run the calibration")
        arrays = [np.asarray(d[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (len(expect),) for a in arrays):
            raise InputError("saved linear model has the wrong number of coefficients")
        return cls(list(d["features"]), *arrays, float(d["intercept"]))


@dataclass
class QuadraticLogistic:
    """A logistic regression on standardized features and their pairwise products.

    Why quadratic: the fakes are a mixture (temperature 1 near z = 0, truncated sampling at
    negative z, half fakes in between) inside a real class spread wide on both sides; the log
    density ratio of two Gaussians is exactly quadratic, so this is the smallest model that can
    say "fake in this band, real on both sides of it". Fitted with scikit-learn, kept as plain
    arrays (saved as JSON), evaluated with numpy.
    """

    features: list[str]
    mean: np.ndarray  # standardize the features
    scale: np.ndarray
    linear: LinearModel  # then a standardized logistic regression on their quadratic expansion

    @staticmethod
    def expanded_names(features: Sequence[str]) -> list[str]:
        i, j = np.triu_indices(len(features))
        return list(features) + [f"{features[a]}*{features[b]}" for a, b in zip(i, j)]

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, features: Sequence[str], C: float,
            seed: int) -> QuadraticLogistic:
        from sklearn.preprocessing import StandardScaler

        s1 = StandardScaler().fit(x)
        linear = LinearModel.fit(quadratic(s1.transform(x)), y, cls.expanded_names(features),
                                 C, seed)
        return cls(list(features), s1.mean_, s1.scale_, linear)

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of "synthetic" for rows of features (any leading shape)."""
        lead = x.shape[:-1]
        q = quadratic((x.reshape(-1, x.shape[-1]) - self.mean) / self.scale)
        return self.linear.decision(q).reshape(lead)

    def to_dict(self) -> dict[str, Any]:
        return {"features": self.features, "intercept": self.linear.intercept,
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "mean2": self.linear.mean.tolist(), "scale2": self.linear.scale.tolist(),
                "coef": self.linear.coef.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], expect: Sequence[str]) -> QuadraticLogistic:
        if list(d["features"]) != list(expect):
            raise InputError(f"saved features {d['features']} differ from this version's "
                             f"{list(expect)}: re-run the calibration")
        n, n2 = len(expect), len(expect) + len(expect) * (len(expect) + 1) // 2
        arrays = {k: np.asarray(d[k], dtype=np.float64)
                  for k in ("mean", "scale", "mean2", "scale2", "coef")}
        for k, a in arrays.items():
            want = (n,) if k in ("mean", "scale") else (n2,)
            if a.shape != want:
                raise InputError(f"saved model: '{k}' has shape {a.shape}, expected {want}")
        linear = LinearModel(cls.expanded_names(expect), arrays["mean2"], arrays["scale2"],
                             arrays["coef"], float(d["intercept"]))
        return cls(list(d["features"]), arrays["mean"], arrays["scale"], linear)
