//! Automatic thresholds: Otsu's method on the score histogram, and the chi-square floor.

/// Otsu's threshold of the logarithm of the positive finite values, mapped back.
///
/// Change scores are heavy-tailed: a few very strong changes (new roofs) would pull a linear
/// histogram's split far above the weaker but real ones; on a log scale the split falls between
/// the no-change mode and the change mode.
pub fn otsu_log(values: &[f32]) -> Option<f32> {
    let logs: Vec<f32> = values
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.ln())
        .collect();
    otsu(&logs).map(f32::exp)
}

/// Otsu's threshold of the finite values (256 bins between the 0.1 and 99.9 percentiles).
pub fn otsu(values: &[f32]) -> Option<f32> {
    let v: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 16 {
        return None;
    }
    // Two order statistics, not a sort: the histogram below does not depend on the order (it
    // counts the same values, taken back from their keys).
    let n = v.len();
    let (ends, keys) = super::order::ranked(v, &[n / 1000, n - 1 - n / 1000]);
    let (lo, hi) = (ends[0], ends[1]);
    if hi <= lo {
        return None;
    }
    const BINS: usize = 256;
    let mut hist = [0f64; BINS];
    let scale = (BINS - 1) as f32 / (hi - lo);
    for k in &keys {
        let x = super::order::from_total_key(*k);
        let b = (((x - lo) * scale) as isize).clamp(0, BINS as isize - 1) as usize;
        hist[b] += 1.0;
    }
    let total: f64 = hist.iter().sum();
    let sum_all: f64 = hist.iter().enumerate().map(|(i, h)| i as f64 * h).sum();
    let (mut w0, mut sum0, mut best, mut best_i) = (0.0, 0.0, -1.0, 0usize);
    for (i, h) in hist.iter().enumerate() {
        w0 += h;
        sum0 += i as f64 * h;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let m0 = sum0 / w0;
        let m1 = (sum_all - sum0) / w1;
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_i = i;
        }
    }
    Some(lo + (best_i as f32 + 1.0) / scale)
}

/// The score above which P(no change) < `p` when the squared score is chi-square with `k`
/// degrees of freedom.
pub fn chi2_floor(p: f64, k: usize) -> f32 {
    super::linalg::chi2_isf(p, k).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otsu_splits_two_modes() {
        let mut v = vec![1.0f32; 900];
        v.extend(vec![10.0f32; 100]);
        for (i, x) in v.iter_mut().enumerate() {
            *x += (i % 7) as f32 * 0.1;
        }
        let t = otsu(&v).unwrap();
        assert!(t > 1.6 && t < 10.0, "{t}");
        assert!(otsu(&[1.0; 100]).is_none());
    }

    #[test]
    fn chi_floor_for_four_bands() {
        assert!((chi2_floor(1e-3, 4) - 18.467f32.sqrt()).abs() < 1e-2);
    }
}
