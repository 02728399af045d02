"""scripts/quality_metrics.py against direct formulas, and scripts/bench_quality.py end to end (tiny)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from quality_metrics import alpha_iou, compare, pareto_front, psnr, ssim  # noqa: E402

C1, C2 = 0.01 ** 2, 0.03 ** 2


def ssim_by_windows(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM written out window by window (one channel), as in Wang et al. 2004."""
    x = np.arange(11) - 5.0
    g = np.exp(-0.5 * (x / 1.5) ** 2)
    w = np.outer(g, g) / np.outer(g, g).sum()
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + C1) * (2 * cov + C2) / ((ma ** 2 + mb ** 2 + C1) * (va + vb + C2)))
    return float(np.mean(values))


def test_ssim_matches_the_window_by_window_definition():
    rng = np.random.default_rng(3)
    a = rng.random((24, 20))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    assert ssim(a[..., None], b[..., None]) == pytest.approx(ssim_by_windows(a, b), abs=1e-9)


def test_ssim_of_flat_images_is_the_luminance_term_and_identity_is_one():
    a, b = np.full((16, 16, 3), 0.6), np.full((16, 16, 3), 0.3)
    assert ssim(a, b) == pytest.approx((2 * 0.6 * 0.3 + C1) / (0.6 ** 2 + 0.3 ** 2 + C1))
    noise = np.random.default_rng(0).random((32, 32, 3))
    assert ssim(noise, noise) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ssim(noise[:8, :8], noise[:8, :8])


def test_psnr_of_a_known_error():
    a = np.zeros((10, 10, 3))
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(a, a) == float("inf")


def test_compare_uses_premultiplied_colour_and_alpha_coverage():
    ref = np.zeros((16, 16, 4))
    ref[4:12, 4:12] = (1.0, 0.5, 0.25, 1.0)
    other = ref.copy()
    other[..., :3] = 0.9 * (ref[..., 3:4] == 0) + other[..., :3]  # colour where alpha is 0: invisible
    assert compare(other, ref)["psnr"] == float("inf")
    shifted = np.roll(ref, 2, axis=1)
    assert alpha_iou(shifted[..., 3], ref[..., 3]) == pytest.approx(48 / 80)


def test_pareto_front_keeps_only_undominated_points_fastest_first():
    points = [{"views_per_s": s, "psnr": q, "n": n} for n, (s, q) in enumerate([(1, 40), (2, 38), (1.5, 37), (3, 30), (2, 39)])]
    assert [p["n"] for p in pareto_front(points)] == [3, 4, 0]


@pytest.mark.slow
def test_bench_quality_runs_and_prints_the_table_and_front(glb_dir):
    pytest.importorskip("bpy")
    cmd = [sys.executable, str(REPO / "scripts" / "bench_quality.py"), str(glb_dir / "Box.glb"),
           "--res", "24:1:4", "--ref-check", "2", "--settings", "preset,preset-seed1,no-denoise"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for needle in ("**24x24 px**, 1 views", "| preset | as the preset |", "| no-denoise | denoise=False |",
                   "Noise floor:", "Reference check: a 2-spp reference", "Pareto front"):
        assert needle in out, needle


@pytest.mark.parametrize("args, needle", [
    (["--settings", "preset,warp-speed"], "--settings needs"),
    (["--res", "8:1"], "RES:VIEWS"),
    (["no-such-asset.glb"], "asset not found"),
    (["--preset", "no-such-preset"], "preset: 'no-such-preset' is unknown"),
])
def test_bench_quality_bad_arguments_are_one_line_errors(args, needle):
    pytest.importorskip("bpy")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_quality.py"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
