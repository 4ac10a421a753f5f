//! Iteratively re-weighted multivariate alteration detection (IR-MAD; Nielsen 2007).
//!
//! Canonical correlation analysis between the two dates gives MAD variates, the differences of
//! maximally correlated band combinations. Their standardised sum of squares is chi-square
//! distributed with one degree of freedom per band where nothing changed, so P(no change) weights
//! each pixel; iterating with those weights converges on the invariant pixels. The weights then
//! select pixels for radiometric normalisation, and the chi-square statistic is a change measure.

use super::linalg::{chi2_sf, chi2_sf_of, Mat};
use super::order::median64;

/// The result of IR-MAD on a sample of pixels.
#[derive(Debug, Clone)]
pub struct IrMad {
    /// Number of bands.
    pub bands: usize,
    /// Canonical correlations, one per MAD variate.
    pub rho: Vec<f64>,
    /// Before-date coefficients: column i is aᵢ.
    a: Mat,
    /// After-date coefficients: column i is bᵢ.
    b: Mat,
    /// Weighted means of the before bands.
    mean_x: Vec<f64>,
    /// Weighted means of the after bands.
    mean_y: Vec<f64>,
    /// Variance of each MAD variate, 2(1 − ρ).
    var: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// P(no change) of each sample the model was fitted on, under this model.
    pub weights: Vec<f64>,
}

fn weighted_cov(x: &[Vec<f32>], y: &[Vec<f32>], w: &[f64]) -> (Vec<f64>, Vec<f64>, Mat, Mat, Mat) {
    match x.len() {
        3 => weighted_cov_n::<3, 9>(x, y, w),
        4 => weighted_cov_n::<4, 16>(x, y, w),
        _ => weighted_cov_any(x, y, w),
    }
}

/// The sum of the weights (at least 1e-12) and the weighted mean of every band of both dates.
fn weighted_means(x: &[Vec<f32>], y: &[Vec<f32>], w: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let sw: f64 = w.iter().sum::<f64>().max(1e-12);
    let mean = |v: &[Vec<f32>]| -> Vec<f64> {
        v.iter()
            .map(|b| b.iter().zip(w).map(|(p, wi)| *p as f64 * wi).sum::<f64>() / sw)
            .collect()
    };
    (sw, mean(x), mean(y))
}

/// [`weighted_cov_any`] for `N` bands (`NN` = N²) with fixed-size accumulators the compiler
/// unrolls: the same terms added to each entry in the same order, so the same bits (property
/// test).
fn weighted_cov_n<const N: usize, const NN: usize>(
    x: &[Vec<f32>],
    y: &[Vec<f32>],
    w: &[f64],
) -> (Vec<f64>, Vec<f64>, Mat, Mat, Mat) {
    let (sw, mx, my) = weighted_means(x, y, w);
    let xs: [&[f32]; N] = std::array::from_fn(|i| &x[i][..w.len()]);
    let ys: [&[f32]; N] = std::array::from_fn(|i| &y[i][..w.len()]);
    let (mut axx, mut ayy, mut axy) = ([-0.0f64; NN], [-0.0f64; NN], [-0.0f64; NN]);
    for (t, wt) in w.iter().enumerate() {
        let dx: [f64; N] = std::array::from_fn(|i| xs[i][t] as f64 - mx[i]);
        let dy: [f64; N] = std::array::from_fn(|i| ys[i][t] as f64 - my[i]);
        for i in 0..N {
            for j in 0..N {
                axx[i * N + j] += dx[i] * dx[j] * wt;
                ayy[i * N + j] += dy[i] * dy[j] * wt;
                axy[i * N + j] += dx[i] * dy[j] * wt;
            }
        }
    }
    let matrix = |acc: &[f64; NN]| {
        let mut m = Mat::zeros(N);
        for i in 0..N {
            for j in 0..N {
                m.set(i, j, acc[i * N + j] / sw);
            }
        }
        m
    };
    (mx, my, matrix(&axx), matrix(&ayy), matrix(&axy))
}

fn weighted_cov_any(
    x: &[Vec<f32>],
    y: &[Vec<f32>],
    w: &[f64],
) -> (Vec<f64>, Vec<f64>, Mat, Mat, Mat) {
    let n = x.len();
    let (sw, mx, my) = weighted_means(x, y, w);
    // The three matrices in one pass over the samples. Each entry adds its terms in sample order,
    // starting from -0.0 as `Sum` does: the same sums as one pass per entry.
    let nn = n * n;
    let mut acc = vec![-0.0f64; 3 * nn];
    let (mut dx, mut dy) = (vec![0f64; n], vec![0f64; n]);
    for (t, wt) in w.iter().enumerate() {
        for i in 0..n {
            dx[i] = x[i][t] as f64 - mx[i];
            dy[i] = y[i][t] as f64 - my[i];
        }
        for i in 0..n {
            for j in 0..n {
                acc[i * n + j] += dx[i] * dx[j] * wt;
                acc[nn + i * n + j] += dy[i] * dy[j] * wt;
                acc[2 * nn + i * n + j] += dx[i] * dy[j] * wt;
            }
        }
    }
    let matrix = |k: usize| {
        let mut m = Mat::zeros(n);
        for i in 0..n {
            for j in 0..n {
                m.set(i, j, acc[k * nn + i * n + j] / sw);
            }
        }
        m
    };
    (mx, my, matrix(0), matrix(1), matrix(2))
}

impl IrMad {
    /// Runs IR-MAD on samples: `x[band][i]` before, `y[band][i]` after, same bands in the same order.
    /// Returns `None` when the covariance is degenerate (a constant band, too few samples).
    pub fn fit(x: &[Vec<f32>], y: &[Vec<f32>], max_iterations: usize) -> Option<IrMad> {
        let n = x.len();
        let m = x.first().map(|b| b.len()).unwrap_or(0);
        if n == 0 || y.len() != n || m < 10 * n + 10 {
            return None;
        }
        let mut w = vec![1.0f64; m];
        let sf = chi2_sf_of(n);
        let mut last_rho: Vec<f64> = vec![];
        let mut fit: Option<IrMad> = None;
        for it in 0..max_iterations.max(1) {
            let (mx, my, sxx, syy, sxy) = weighted_cov(x, y, &w);
            let lx = sxx.cholesky()?;
            let ly = syy.cholesky()?;
            let lxi = lx.lower_inverse();
            let lyi = ly.lower_inverse();
            let syy_inv = lyi.t().mul(&lyi);
            let syx = sxy.t();
            // C = Lx⁻¹ Σxy Σyy⁻¹ Σyx Lx⁻ᵀ, symmetric; eigenvalues ρ².
            let c = lxi.mul(&sxy).mul(&syy_inv).mul(&syx).mul(&lxi.t());
            let (vals, vecs) = c.symmetric_eigen();
            let rho: Vec<f64> = vals.iter().map(|v| v.clamp(0.0, 1.0).sqrt()).collect();
            let a = lxi.t().mul(&vecs);
            // b = Σyy⁻¹ Σyx a / ρ, then scaled to unit variance.
            let mut b = syy_inv.mul(&syx).mul(&a);
            for col in 0..n {
                let ab: f64 = (0..n).map(|r| b.get(r, col).powi(2)).sum();
                if ab == 0.0 {
                    return None;
                }
                let var_b: f64 = (0..n)
                    .flat_map(|i| (0..n).map(move |j| (i, j)))
                    .map(|(i, j)| b.get(i, col) * syy.get(i, j) * b.get(j, col))
                    .sum();
                let s = 1.0 / var_b.max(1e-300).sqrt();
                // Positive correlation between the two variates.
                let cov_ab: f64 = (0..n)
                    .flat_map(|i| (0..n).map(move |j| (i, j)))
                    .map(|(i, j)| a.get(i, col) * sxy.get(i, j) * b.get(j, col))
                    .sum();
                let sign = if cov_ab < 0.0 { -1.0 } else { 1.0 };
                for r in 0..n {
                    b.set(r, col, b.get(r, col) * s * sign);
                }
            }
            let mut model = IrMad {
                bands: n,
                rho: rho.clone(),
                a,
                b,
                mean_x: mx,
                mean_y: my,
                var: rho.iter().map(|r| (2.0 * (1.0 - r)).max(1e-9)).collect(),
                iterations: it + 1,
                weights: Vec::new(),
            };
            // The weighted variance 2(1 − ρ) shrinks from one iteration to the next as the weights
            // concentrate on the most invariant pixels, which would inflate every chi-square value.
            // A robust spread of each MAD variate over all samples (tolerating up to half of
            // them changed) keeps the statistic calibrated.
            // The MAD variates of every sample, computed once for both.
            let cols = model.mad_columns(x, y);
            model.var = robust_variances(&cols);
            for (i, wi) in w.iter_mut().enumerate() {
                // As `chi2_sample`, term by term.
                let mut z = 0.0;
                for (col, var) in cols.iter().zip(&model.var) {
                    z += col[i] * col[i] / var;
                }
                *wi = sf(z);
            }
            let converged = !last_rho.is_empty()
                && rho.iter().zip(&last_rho).all(|(r, l)| (r - l).abs() < 1e-3);
            last_rho = rho;
            model.weights.clone_from(&w);
            fit = Some(model);
            if converged {
                break;
            }
        }
        fit
    }

    /// The MAD variates of every sample, one column per variate.
    fn mad_columns(&self, x: &[Vec<f32>], y: &[Vec<f32>]) -> Vec<Vec<f64>> {
        let n = self.bands;
        let m = x[0].len();
        let mut cols: Vec<Vec<f64>> = vec![vec![0.0; m]; n];
        for (k, col) in cols.iter_mut().enumerate() {
            for j in 0..n {
                let (a, b) = (self.a.get(j, k), self.b.get(j, k));
                let (mx, my) = (self.mean_x[j], self.mean_y[j]);
                // Band j's term of every sample, added in band order as in `chi2_sample`.
                for ((c, xv), yv) in col.iter_mut().zip(&x[j][..m]).zip(&y[j][..m]) {
                    *c += a * (*xv as f64 - mx) - b * (*yv as f64 - my);
                }
            }
        }
        cols
    }

    /// The chi-square statistic of sample `i` of band-major sample arrays.
    pub fn chi2_sample(&self, x: &[Vec<f32>], y: &[Vec<f32>], i: usize) -> f64 {
        let n = self.bands;
        let mut z = 0.0;
        for k in 0..n {
            let mut mad = 0.0;
            for j in 0..n {
                mad += self.a.get(j, k) * (x[j][i] as f64 - self.mean_x[j])
                    - self.b.get(j, k) * (y[j][i] as f64 - self.mean_y[j]);
            }
            z += mad * mad / self.var[k];
        }
        z
    }

    /// The chi-square statistic of one pixel (before values, after values).
    pub fn chi2(&self, x: &[f32], y: &[f32]) -> f64 {
        let n = self.bands;
        let mut z = 0.0;
        for k in 0..n {
            let mut mad = 0.0;
            for i in 0..n {
                mad += self.a.get(i, k) * (x[i] as f64 - self.mean_x[i])
                    - self.b.get(i, k) * (y[i] as f64 - self.mean_y[i]);
            }
            z += mad * mad / self.var[k];
        }
        z
    }

    /// P(no change) of one pixel.
    pub fn no_change_probability(&self, x: &[f32], y: &[f32]) -> f64 {
        chi2_sf(self.chi2(x, y), self.bands)
    }
}

/// (1.4826 × median absolute deviation)² of each MAD variate over the samples.
fn robust_variances(cols: &[Vec<f64>]) -> Vec<f64> {
    cols.iter()
        .map(|c| {
            let med = median64(c);
            let dev: Vec<f64> = c.iter().map(|v| (v - med).abs()).collect();
            let mad = median64(&dev);
            (1.4826 * mad).powi(2).max(1e-12)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::rng::Rng;

    #[test]
    fn finds_the_changed_pixels_despite_a_radiometric_shift() {
        let mut rng = Rng::new(1, "irmad");
        let (mut x, mut y) = (vec![vec![]; 3], vec![vec![]; 3]);
        let mut changed = vec![];
        for i in 0..4000 {
            // Three correlated bands of a varied surface.
            let base = rng.range(100.0, 1000.0);
            let px = [
                base,
                base * 0.8 + rng.range(0.0, 200.0),
                base * 0.5 + rng.range(0.0, 400.0),
            ];
            let is_change = i % 20 == 0;
            changed.push(is_change);
            for b in 0..3 {
                let noise = || 5.0;
                let mut after = px[b] * (1.1 + 0.05 * b as f64) + 30.0 + noise() * rng.normal();
                if is_change {
                    after = rng.range(100.0, 2000.0);
                }
                x[b].push((px[b] + 5.0 * rng.normal()) as f32);
                y[b].push(after as f32);
            }
        }
        let m = IrMad::fit(&x, &y, 20).unwrap();
        assert!(m.rho[0] > 0.99, "{:?}", m.rho);
        let (mut tp, mut fp) = (0, 0);
        for i in 0..4000 {
            let xs: Vec<f32> = (0..3).map(|b| x[b][i]).collect();
            let ys: Vec<f32> = (0..3).map(|b| y[b][i]).collect();
            let p = m.no_change_probability(&xs, &ys);
            if p < 1e-3 {
                if changed[i] {
                    tp += 1;
                } else {
                    fp += 1;
                }
            }
        }
        assert!(tp >= 190, "found {tp} of 200 changes");
        assert!(fp <= 20, "{fp} false alarms");
    }

    #[test]
    fn degenerate_input_gives_none() {
        let x = vec![vec![1.0f32; 100]; 2];
        let y = vec![vec![1.0f32; 100]; 2];
        assert!(IrMad::fit(&x, &y, 5).is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// The fixed-size covariance gives the general loop's bits.
        #[test]
        fn fixed_size_covariance_is_the_general_one(
            seed in 0u64..10_000,
            bands in 3usize..=4,
            m in 1usize..300,
        ) {
            let mut rng = Rng::new(seed, "cov");
            let mut col = |scale: f64| -> Vec<f32> {
                (0..m).map(|_| (rng.normal() * scale + 500.0) as f32).collect()
            };
            let x: Vec<Vec<f32>> = (0..bands).map(|_| col(80.0)).collect();
            let y: Vec<Vec<f32>> = (0..bands).map(|_| col(120.0)).collect();
            let w: Vec<f64> = (0..m).map(|_| rng.range(0.0, 1.0)).collect();
            let fast = weighted_cov(&x, &y, &w);
            let general = weighted_cov_any(&x, &y, &w);
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&fast.0), bits(&general.0));
            proptest::prop_assert_eq!(bits(&fast.1), bits(&general.1));
            proptest::prop_assert_eq!(bits(&fast.2.a), bits(&general.2.a));
            proptest::prop_assert_eq!(bits(&fast.3.a), bits(&general.3.a));
            proptest::prop_assert_eq!(bits(&fast.4.a), bits(&general.4.a));
        }
    }
}
