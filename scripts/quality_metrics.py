"""Image quality against a reference, in numpy: PSNR and SSIM on premultiplied RGB, alpha IoU,
and the Pareto front of (speed, quality) points. Used by bench_quality.py.

Premultiplied RGB (colour times alpha) compares what a transparent-film render shows: a
background pixel is black whatever colour it carries, and an edge counts by its coverage.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ALPHA_COVERED = 0.5  # alpha IoU: a pixel is the object's when its alpha is at least this


def load_rgba(path: str | Path) -> np.ndarray:
    """An image as float64 RGBA in [0, 1], shape (H, W, 4)."""
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGBA"), dtype=np.float64) / 255.0


def premultiplied(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3] * rgba[..., 3:4]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; inf for identical images."""
    mse = float(np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable filtering of (H, W, ...) over the first two axes, 'valid' region only."""
    n = len(kernel)
    h, w = img.shape[:2]
    rows = sum(kernel[i] * img[i:h - n + 1 + i] for i in range(n))
    return sum(kernel[i] * rows[:, i:w - n + 1 + i] for i in range(n))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03), computed
    per channel over the window positions inside the image and averaged."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} and {b.shape}")
    kernel = _gaussian_kernel()
    if min(a.shape[:2]) < len(kernel):
        raise ValueError(f"images smaller than the {len(kernel)}-pixel SSIM window")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, kernel), _filter_valid(b, kernel)
    var_a = _filter_valid(a * a, kernel) - mu_a ** 2
    var_b = _filter_valid(b * b, kernel) - mu_b ** 2
    cov = _filter_valid(a * b, kernel) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def alpha_iou(a: np.ndarray, b: np.ndarray, threshold: float = ALPHA_COVERED) -> float:
    """Intersection over union of the covered pixels of two alpha channels (1 when both empty)."""
    ma, mb = np.asarray(a) >= threshold, np.asarray(b) >= threshold
    union = int((ma | mb).sum())
    return 1.0 if union == 0 else int((ma & mb).sum()) / union


def compare(image: np.ndarray, reference: np.ndarray) -> dict:
    """PSNR, SSIM (premultiplied RGB) and alpha IoU of one RGBA image against its reference."""
    pa, pb = premultiplied(image), premultiplied(reference)
    return {"psnr": psnr(pa, pb), "ssim": ssim(pa, pb), "alpha_iou": alpha_iou(image[..., 3], reference[..., 3])}


def pareto_front(points: list[dict], speed: str = "views_per_s", quality: str = "psnr") -> list[dict]:
    """The points no other point beats on both speed and quality (higher is better for both),
    fastest first."""
    front = []
    for p in points:
        dominated = any(
            q[speed] >= p[speed] and q[quality] >= p[quality] and (q[speed] > p[speed] or q[quality] > p[quality])
            for q in points
        )
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: -p[speed])
