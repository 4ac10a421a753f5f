//! The little dense linear algebra IR-MAD needs (matrices of a few bands): Cholesky, triangular
//! solves and a Jacobi eigen-decomposition of symmetric matrices.

/// A small dense square matrix, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    /// Size.
    pub n: usize,
    /// Entries, row-major.
    pub a: Vec<f64>,
}

impl Mat {
    /// The zero matrix.
    pub fn zeros(n: usize) -> Mat {
        Mat {
            n,
            a: vec![0.0; n * n],
        }
    }

    /// The identity.
    pub fn identity(n: usize) -> Mat {
        let mut m = Mat::zeros(n);
        for i in 0..n {
            m.a[i * n + i] = 1.0;
        }
        m
    }

    /// Entry (i, j).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    /// Sets entry (i, j).
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        self.a[i * self.n + j] = v;
    }

    /// Matrix product.
    pub fn mul(&self, o: &Mat) -> Mat {
        let n = self.n;
        let mut m = Mat::zeros(n);
        for i in 0..n {
            for k in 0..n {
                let x = self.get(i, k);
                for j in 0..n {
                    m.a[i * n + j] += x * o.get(k, j);
                }
            }
        }
        m
    }

    /// Transpose.
    pub fn t(&self) -> Mat {
        let n = self.n;
        let mut m = Mat::zeros(n);
        for i in 0..n {
            for j in 0..n {
                m.set(j, i, self.get(i, j));
            }
        }
        m
    }

    /// Lower-triangular Cholesky factor L with L·Lᵀ = self, or `None` when not positive definite.
    pub fn cholesky(&self) -> Option<Mat> {
        let n = self.n;
        let mut l = Mat::zeros(n);
        for i in 0..n {
            for j in 0..=i {
                let mut s = self.get(i, j);
                for k in 0..j {
                    s -= l.get(i, k) * l.get(j, k);
                }
                if i == j {
                    if s <= 1e-12 {
                        return None;
                    }
                    l.set(i, i, s.sqrt());
                } else {
                    l.set(i, j, s / l.get(j, j));
                }
            }
        }
        Some(l)
    }

    /// Inverse of a lower-triangular matrix.
    pub fn lower_inverse(&self) -> Mat {
        let n = self.n;
        let mut inv = Mat::zeros(n);
        for c in 0..n {
            for i in 0..n {
                let mut s = if i == c { 1.0 } else { 0.0 };
                for k in 0..i {
                    s -= self.get(i, k) * inv.get(k, c);
                }
                inv.set(i, c, s / self.get(i, i));
            }
        }
        inv
    }

    /// Eigenvalues and eigenvectors (columns) of a symmetric matrix, largest eigenvalue first.
    pub fn symmetric_eigen(&self) -> (Vec<f64>, Mat) {
        let n = self.n;
        let mut a = self.clone();
        let mut v = Mat::identity(n);
        for _sweep in 0..100 {
            let off: f64 = (0..n)
                .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| a.get(i, j).powi(2))
                .sum();
            if off < 1e-22 {
                break;
            }
            for p in 0..n {
                for q in p + 1..n {
                    let apq = a.get(p, q);
                    if apq.abs() < 1e-300 {
                        continue;
                    }
                    let theta = (a.get(q, q) - a.get(p, p)) / (2.0 * apq);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let t = if theta == 0.0 { 1.0 } else { t };
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..n {
                        let (akp, akq) = (a.get(k, p), a.get(k, q));
                        a.set(k, p, c * akp - s * akq);
                        a.set(k, q, s * akp + c * akq);
                    }
                    for k in 0..n {
                        let (apk, aqk) = (a.get(p, k), a.get(q, k));
                        a.set(p, k, c * apk - s * aqk);
                        a.set(q, k, s * apk + c * aqk);
                    }
                    for k in 0..n {
                        let (vkp, vkq) = (v.get(k, p), v.get(k, q));
                        v.set(k, p, c * vkp - s * vkq);
                        v.set(k, q, s * vkp + c * vkq);
                    }
                }
            }
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| a.get(j, j).total_cmp(&a.get(i, i)));
        let vals = order.iter().map(|&i| a.get(i, i)).collect();
        let mut vecs = Mat::zeros(n);
        for (c, &i) in order.iter().enumerate() {
            for r in 0..n {
                vecs.set(r, c, v.get(r, i));
            }
        }
        (vals, vecs)
    }
}

/// Regularised upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a) (Numerical Recipes' gammq).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    gamma_q_with(a, ln_gamma(a), x)
}

/// [`gamma_q`] with ln Γ(a) given (the same value for every call with the same `a`).
fn gamma_q_with(a: f64, gln: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if x < a + 1.0 {
        // Series for P, then Q = 1 - P.
        let (mut sum, mut del, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        1.0 - sum * (-x + a * x.ln() - gln).exp()
    } else {
        // Continued fraction (Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..500 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (-x + a * x.ln() - gln).exp() * h
    }
}

fn ln_gamma(x: f64) -> f64 {
    // Lanczos approximation (g = 7, n = 9).
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Survival function of the chi-square distribution: P(X > x) with `k` degrees of freedom.
pub fn chi2_sf(x: f64, k: usize) -> f64 {
    gamma_q(k as f64 / 2.0, x / 2.0)
}

/// [`chi2_sf`] for many values with the same degrees of freedom: ln Γ(k/2) is computed once.
/// For an even k (four bands), Q(k/2, y) is the closed form e^(−y) Σ_{i<k/2} yⁱ/i! — the same
/// function without the series or continued fraction, to the last bits (property test).
pub fn chi2_sf_of(k: usize) -> impl Fn(f64) -> f64 {
    let a = k as f64 / 2.0;
    let gln = ln_gamma(a);
    let terms = if k % 2 == 0 && (2..=40).contains(&k) {
        k / 2
    } else {
        0
    };
    move |x| {
        if terms == 0 || x.is_nan() {
            return gamma_q_with(a, gln, x / 2.0);
        }
        poisson_tail(terms, x / 2.0)
    }
}

/// Q(n, y) for a whole n ≥ 1: e^(−y) Σ_{i<n} yⁱ/i! (all terms positive, so no cancellation).
fn poisson_tail(n: usize, y: f64) -> f64 {
    if y <= 0.0 {
        return 1.0;
    }
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for i in 1..n {
        term *= y / i as f64;
        sum += term;
    }
    (sum * (-y).exp()).min(1.0)
}

/// The value x with P(X > x) = p for a chi-square with `k` degrees of freedom (by bisection).
pub fn chi2_isf(p: f64, k: usize) -> f64 {
    let (mut lo, mut hi) = (0.0, 1000.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if chi2_sf(mid, k) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_of_a_known_matrix() {
        let m = Mat {
            n: 2,
            a: vec![2.0, 1.0, 1.0, 2.0],
        };
        let (vals, vecs) = m.symmetric_eigen();
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12);
        let v0 = (vecs.get(0, 0), vecs.get(1, 0));
        assert!((v0.0.abs() - v0.1.abs()).abs() < 1e-12);
    }

    #[test]
    fn cholesky_reconstructs() {
        let m = Mat {
            n: 3,
            a: vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0],
        };
        let l = m.cholesky().unwrap();
        let back = l.mul(&l.t());
        for (x, y) in back.a.iter().zip(&m.a) {
            assert!((x - y).abs() < 1e-12);
        }
        let li = l.lower_inverse();
        let id = li.mul(&l);
        for i in 0..3 {
            for j in 0..3 {
                assert!((id.get(i, j) - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(Mat {
            n: 2,
            a: vec![1.0, 2.0, 2.0, 1.0]
        }
        .cholesky()
        .is_none());
    }

    #[test]
    fn chi_square_tail_matches_tables() {
        // Tabulated: chi2(4 dof) upper 5% point = 9.488, 0.1% = 18.467; chi2(3) 1% = 11.345.
        assert!((chi2_sf(9.488, 4) - 0.05).abs() < 1e-4);
        assert!((chi2_isf(0.001, 4) - 18.467).abs() < 1e-2);
        assert!((chi2_isf(0.01, 3) - 11.345).abs() < 1e-2);
        assert!((chi2_sf(0.0, 3) - 1.0).abs() < 1e-12);
    }

    proptest::proptest! {
        #[test]
        fn closed_form_tail_is_the_incomplete_gamma(k in 1usize..=12, x in 0.0f64..200.0) {
            let fast = chi2_sf_of(k)(x);
            let reference = gamma_q(k as f64 / 2.0, x / 2.0);
            let tolerance = 1e-12 * reference.abs().max(1e-300) + 1e-300;
            proptest::prop_assert!((fast - reference).abs() <= tolerance, "k {k} x {x}: {fast} vs {reference}");
        }
    }
}
