//! Relative radiometric normalisation: map the after date's values onto the before date's scale,
//! band by band, using pixels that did not change.
//!
//! IR-MAD weights pick the invariant pixels; a per-band mapping is then fitted on them, either a
//! straight line (orthogonal regression, for sensors that differ by gain and offset) or a
//! monotone piecewise-linear quantile mapping (for cameras with a gamma curve, such as a drone's
//! JPEG-like bytes against a satellite's reflectance). With too few invariant pixels the mapping
//! falls back to matching the histograms of all valid pixels.

use super::irmad::IrMad;
use serde::{Deserialize, Serialize};

/// How to map the after date onto the before date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormalizationMethod {
    /// Monotone piecewise-linear mapping between quantiles of the invariant pixels.
    Quantile,
    /// Orthogonal-regression line through the invariant pixels.
    Linear,
    /// No normalisation (same sensor, same processing).
    None,
}

/// A fitted per-band mapping from after values to before values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandMapping {
    /// Knots: after values, strictly increasing.
    pub from: Vec<f32>,
    /// Knots: the before values they map to, non-decreasing.
    pub to: Vec<f32>,
}

impl BandMapping {
    /// The identity.
    pub fn identity() -> BandMapping {
        BandMapping {
            from: vec![0.0, 1.0],
            to: vec![0.0, 1.0],
        }
    }

    /// A line `to = gain × from + offset`.
    pub fn line(gain: f32, offset: f32) -> BandMapping {
        BandMapping {
            from: vec![0.0, 1000.0],
            to: vec![offset, gain * 1000.0 + offset],
        }
    }

    /// Maps one value (linear extrapolation beyond the end knots).
    pub fn apply(&self, v: f32) -> f32 {
        let n = self.from.len();
        let seg = match self.from.binary_search_by(|k| k.total_cmp(&v)) {
            Ok(i) => return self.to[i],
            Err(0) => 0,
            Err(i) if i >= n => n - 2,
            Err(i) => i - 1,
        };
        self.on_segment(seg, v)
    }

    #[inline]
    fn on_segment(&self, seg: usize, v: f32) -> f32 {
        let (x0, x1, y0, y1) = (
            self.from[seg],
            self.from[seg + 1],
            self.to[seg],
            self.to[seg + 1],
        );
        y0 + (v - x0) * (y1 - y0) / (x1 - x0)
    }

    /// The segment `apply` interpolates on for a value that is not a knot.
    fn segment_of(&self, v: f32) -> usize {
        let below = self.from.partition_point(|k| k.total_cmp(&v).is_lt());
        below.clamp(1, self.from.len() - 1) - 1
    }

    /// Every value of `src` mapped onto the end of `dst`, exactly as [`BandMapping::apply`]
    /// would, through a [`Mapper`] over the values' own range.
    ///
    /// Imagery values mostly span a modest integer range: the segment of each unit interval is
    /// looked up in a table (the segment is monotone in the value, so an interval whose two ends
    /// share a segment has it throughout), and only intervals that contain a knot fall back to
    /// the search. Several times faster than a search per pixel.
    pub fn apply_all_into(&self, src: &[f32], dst: &mut Vec<f32>) {
        let (lo, hi) = finite_range(src);
        let start = dst.len();
        dst.resize(start + src.len(), 0.0);
        self.mapper(lo, hi, src.len())
            .map_into(src, &mut dst[start..]);
    }

    /// A mapper for about `count` values expected within `[lo, hi]`: [`Mapper::map`] is
    /// [`BandMapping::apply`] exactly for every value, the ones in that range by table (fast),
    /// any other by search. For mapping values a piece at a time (rows of a window) with one
    /// table.
    pub fn mapper(&self, lo: f32, hi: f32, count: usize) -> Mapper<'_> {
        Mapper {
            mapping: self,
            table: self.table_for(lo, hi, count),
        }
    }

    /// The lookup tables for `count` values within `[lo, hi]`, or `None` when that range is
    /// unsuited (a search per value then).
    fn table_for(&self, lo: f32, hi: f32, count: usize) -> Option<Table> {
        let n = self.from.len();
        let span = hi as f64 - lo as f64;
        // Integers up to 2^23 are exact in f32, so the table's interval ends are too.
        let exact = lo.abs().max(hi.abs()) < 8_000_000.0;
        if n < 2 || !exact || !(0.0..=4_000_000.0).contains(&span) || span > count as f64 {
            return None;
        }
        let base = lo.floor();
        let cells = (hi.floor() - base) as usize + 1;
        // segments[i]: the segment of [base + i, base + i + 1], or u32::MAX when it changes inside.
        let mut prev = self.segment_of(base);
        let segments: Vec<u32> = (0..cells)
            .map(|i| {
                let next = self.segment_of(base + i as f32 + 1.0);
                let s = if next == prev { prev as u32 } else { u32::MAX };
                prev = next;
                s
            })
            .collect();
        let mut t = Table {
            base,
            base_i: base as i64,
            cells,
            segments,
            ints: Vec::new(),
        };
        // Integer imagery (most of it): the mapped value of every integer in range, computed once
        // by the same function, so a pixel whose bits are those of a table integer is looked up.
        t.ints = (0..cells)
            .map(|i| t.map_one(self, base + i as f32))
            .collect();
        Some(t)
    }

    /// The slope and intercept of a straight-line summary (end knots).
    pub fn gain_offset(&self) -> (f32, f32) {
        let n = self.from.len();
        let g = (self.to[n - 1] - self.to[0]) / (self.from[n - 1] - self.from[0]);
        (g, self.to[0] - g * self.from[0])
    }
}

/// A [`BandMapping`] with its tables for one range of values (see [`BandMapping::mapper`]).
pub struct Mapper<'a> {
    mapping: &'a BandMapping,
    table: Option<Table>,
}

impl Mapper<'_> {
    /// `apply(x)` of the mapping, bit for bit.
    #[inline]
    pub fn map(&self, x: f32) -> f32 {
        match &self.table {
            Some(t) => t.map(self.mapping, x),
            None => self.mapping.apply(x),
        }
    }

    /// Maps `src` into `dst` (the same length), value by value.
    pub fn map_into(&self, src: &[f32], dst: &mut [f32]) {
        match &self.table {
            Some(t) => t.map_into(self.mapping, src, dst),
            None => dst
                .iter_mut()
                .zip(src)
                .for_each(|(d, s)| *d = self.mapping.apply(*s)),
        }
    }
}

/// The lookup tables of a [`Mapper`] for one range of values.
struct Table {
    base: f32,
    base_i: i64,
    cells: usize,
    segments: Vec<u32>,
    ints: Vec<f32>,
}

impl Table {
    /// `m.apply(x)` through the segment table.
    #[inline]
    fn map_one(&self, m: &BandMapping, x: f32) -> f32 {
        // Truncation is the floor for the non-negative offsets the table covers (and needs no
        // libm call); the subtraction may round across an integer, so the interval's exact
        // ends are checked.
        let (base, cells) = (self.base, self.cells);
        let d = x - base;
        let i = d as usize;
        let seg = if d >= 0.0 && i < cells && x >= base + i as f32 && x <= base + i as f32 + 1.0 {
            self.segments[i]
        } else {
            u32::MAX
        };
        if seg == u32::MAX {
            m.apply(x)
        } else {
            let seg = seg as usize;
            // A knot at either end of the segment maps to its own value, as in `apply`.
            if x.total_cmp(&m.from[seg]).is_eq() {
                m.to[seg]
            } else if x.total_cmp(&m.from[seg + 1]).is_eq() {
                m.to[seg + 1]
            } else {
                m.on_segment(seg, x)
            }
        }
    }

    /// `map` of every value of `src` into `dst`. Eight values at a time: when all eight are
    /// integers of the table (the usual case) their test is one branch-free pass over the
    /// eight, then eight lookups; otherwise each goes through `map`.
    fn map_into(&self, m: &BandMapping, src: &[f32], dst: &mut [f32]) {
        const L: usize = 8;
        // Adding 1.5 × 2^23 rounds a value below 2^22 in magnitude to an integer, which is then
        // the low bits of the sum: plain float and integer arithmetic, where `as i32` (which
        // saturates) would keep the loop from vectorising.
        const MAGIC: f32 = 12_582_912.0;
        let (base, cells) = (self.base_i as i32, self.cells as u32);
        let (mut s8, mut d8) = (src.chunks_exact(L), dst.chunks_exact_mut(L));
        for (s, d) in (&mut s8).zip(&mut d8) {
            let mut at = [0u32; L];
            let mut ints = true;
            for j in 0..L {
                // `map`'s test, lane by lane: `s[j]` is exactly the integer it rounds to (so not
                // -0.0, a fraction, NaN or infinite) and that integer is in the table.
                let x = s[j];
                let y = x + MAGIC;
                let xi = (y.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
                let i = xi.wrapping_sub(base) as u32;
                ints &=
                    (x.abs() < 4_194_304.0) & ((y - MAGIC).to_bits() == x.to_bits()) & (i < cells);
                at[j] = i;
            }
            if ints {
                for j in 0..L {
                    d[j] = self.ints[at[j] as usize];
                }
            } else {
                for j in 0..L {
                    d[j] = self.map(m, s[j]);
                }
            }
        }
        for (d, s) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
            *d = self.map(m, *s);
        }
    }

    /// `m.apply(x)`: integers by the table of integers, anything else through `map_one`.
    #[inline]
    fn map(&self, m: &BandMapping, x: f32) -> f32 {
        // `x` is the table's integer `base + i` exactly when its bits are those of the integer it
        // truncates to (`-0.0`, fractions, NaN and infinities are not) and that lies in range:
        // every integer here is below 2^23, so `base + i` is computed exactly either way.
        let xi = x as i32;
        let i = (xi as i64 - self.base_i) as usize;
        if i < self.cells && (xi as f32).to_bits() == x.to_bits() {
            self.ints[i]
        } else {
            self.map_one(m, x)
        }
    }
}

/// The smallest and largest finite values (`(f32::MAX, f32::MIN)` when there is none), over
/// eight lanes so that the loop vectorises. A tie between `-0.0` and `0.0` may go either way, as
/// with `f32::min`; callers only take the floor and the span.
fn finite_range(values: &[f32]) -> (f32, f32) {
    let (mut lo, mut hi) = ([f32::MAX; 8], [f32::MIN; 8]);
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            // A value that is not finite stands in as the neutral end: selects and comparisons
            // without a branch, which the compiler turns into packed min/max.
            let x = c[k];
            let f = x.is_finite();
            let (xl, xh) = (if f { x } else { f32::MAX }, if f { x } else { f32::MIN });
            lo[k] = if xl < lo[k] { xl } else { lo[k] };
            hi[k] = if xh > hi[k] { xh } else { hi[k] };
        }
    }
    let (mut l, mut h) = (f32::MAX, f32::MIN);
    for x in rest.iter().copied().filter(|x| x.is_finite()).chain(lo) {
        l = l.min(x);
    }
    for x in rest.iter().copied().filter(|x| x.is_finite()).chain(hi) {
        h = h.max(x);
    }
    (l, h)
}

/// The outcome of normalising one cell.
#[derive(Debug, Clone, Serialize)]
pub struct Normalization {
    /// One mapping per band.
    pub bands: Vec<BandMapping>,
    /// What was actually done: `irmad_quantile`, `irmad_linear`, `histogram`, `identity`.
    pub method: &'static str,
    /// Number of sampled pixels judged invariant.
    pub invariant_pixels: usize,
    /// Canonical correlations from IR-MAD (empty when it could not run).
    pub rho: Vec<f64>,
    /// Per sample: whether IR-MAD judged it invariant.
    #[serde(skip)]
    pub invariant: Vec<bool>,
    /// The IR-MAD model, when it could be fitted (reused for per-pixel chi-square values).
    #[serde(skip)]
    pub irmad: Option<IrMad>,
}

/// Weighted quantiles of `v` at probabilities `ps` (weights ≥ 0).
fn weighted_quantiles(v: &[f32], w: &[f32], ps: &[f64]) -> Vec<f32> {
    let idx: Vec<usize> = sorted_by_value(v)
        .into_iter()
        .map(|k| (k & 0xffff_ffff) as usize)
        .collect();
    let total: f64 = w.iter().map(|x| *x as f64).sum();
    let mut out = Vec::with_capacity(ps.len());
    let (mut acc, mut k) = (0f64, 0usize);
    for &p in ps {
        let target = p * total;
        while k < idx.len() - 1 && acc + (w[idx[k]] as f64) < target {
            acc += w[idx[k]] as f64;
            k += 1;
        }
        out.push(v[idx[k]]);
    }
    out
}

/// The pairs (value's total-order key, index) of `v` sorted by value, ties in index order: the
/// order of a stable sort by `total_cmp`. A least-significant-digit radix sort on the keys (three
/// passes of 11 bits; a pass whose digit every key shares is skipped): it keeps the pairs' index
/// order among equal keys, so it gives what sorting the unique 64-bit pairs gives, several times
/// faster than a comparison sort of a cell's ~20 000 samples.
fn sorted_by_value(v: &[f32]) -> Vec<u64> {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    let mut pairs: Vec<u64> = v
        .iter()
        .enumerate()
        .map(|(i, x)| (u64::from(super::order::total_key(*x)) << 32) | i as u64)
        .collect();
    let digit = |k: u64, pass: u32| ((k >> (32 + pass * BITS)) as usize) & (BUCKETS - 1);
    let mut counts = vec![[0u32; BUCKETS]; 3];
    for k in &pairs {
        for (pass, c) in counts.iter_mut().enumerate() {
            c[digit(*k, pass as u32)] += 1;
        }
    }
    let mut out = vec![0u64; pairs.len()];
    for (pass, c) in counts.iter_mut().enumerate() {
        if c.iter().any(|n| *n as usize == pairs.len()) {
            continue;
        }
        let mut start = 0u32;
        for n in c.iter_mut() {
            (*n, start) = (start, start + *n);
        }
        for k in &pairs {
            let d = digit(*k, pass as u32);
            out[c[d] as usize] = *k;
            c[d] += 1;
        }
        std::mem::swap(&mut pairs, &mut out);
    }
    pairs
}

const PROBS: [f64; 23] = [
    0.002, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7,
    0.75, 0.8, 0.85, 0.9, 0.95, 0.99,
];

fn quantile_mapping(after: &[f32], before: &[f32], w: &[f32]) -> BandMapping {
    let qa = weighted_quantiles(after, w, &PROBS);
    let qb = weighted_quantiles(before, w, &PROBS);
    let (mut from, mut to): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    for (a, b) in qa.into_iter().zip(qb) {
        if from.last().is_some_and(|l| a <= *l) {
            continue;
        }
        let b = to.last().map_or(b, |l: &f32| b.max(*l));
        from.push(a);
        to.push(b);
    }
    if from.len() < 2 {
        return linear_mapping(after, before, w);
    }
    // Extrapolate with the slope of the central part, which is steadier than an end segment.
    let n = from.len();
    let (lo, hi) = (n / 5, n - 1 - n / 5);
    let slope = if from[hi] > from[lo] {
        (to[hi] - to[lo]) / (from[hi] - from[lo])
    } else {
        1.0
    };
    let span = (from[n - 1] - from[0]).max(1.0);
    from.insert(0, from[0] - 10.0 * span);
    to.insert(0, to[0] - 10.0 * span * slope);
    from.push(from[n] + 10.0 * span);
    to.push(to[n] + 10.0 * span * slope);
    BandMapping { from, to }
}

fn linear_mapping(after: &[f32], before: &[f32], w: &[f32]) -> BandMapping {
    let sw: f64 = w.iter().map(|x| *x as f64).sum::<f64>().max(1e-12);
    let mx = after
        .iter()
        .zip(w)
        .map(|(a, wi)| *a as f64 * *wi as f64)
        .sum::<f64>()
        / sw;
    let my = before
        .iter()
        .zip(w)
        .map(|(b, wi)| *b as f64 * *wi as f64)
        .sum::<f64>()
        / sw;
    let (mut sxx, mut syy, mut sxy) = (0f64, 0f64, 0f64);
    for ((a, b), wi) in after.iter().zip(before).zip(w) {
        let (dx, dy, wi) = (*a as f64 - mx, *b as f64 - my, *wi as f64);
        sxx += wi * dx * dx;
        syy += wi * dy * dy;
        sxy += wi * dx * dy;
    }
    // Orthogonal (total least squares) regression: both dates are noisy.
    let gain = if sxy.abs() < 1e-12 {
        1.0
    } else {
        let d = syy - sxx;
        (d + (d * d + 4.0 * sxy * sxy).sqrt()) / (2.0 * sxy)
    };
    let gain = if gain.is_finite() && gain > 0.0 {
        gain
    } else {
        1.0
    };
    BandMapping::line(gain as f32, (my - gain * mx) as f32)
}

/// Fits the mapping from sampled pixels: `before[band][i]`, `after[band][i]`.
pub fn fit(
    before: &[Vec<f32>],
    after: &[Vec<f32>],
    method: NormalizationMethod,
    min_invariant: usize,
) -> Normalization {
    let nb = before.len();
    if method == NormalizationMethod::None || before.first().map_or(0, |b| b.len()) < 50 {
        return Normalization {
            bands: vec![BandMapping::identity(); nb],
            method: "identity",
            invariant_pixels: 0,
            rho: vec![],
            invariant: vec![],
            irmad: None,
        };
    }
    let m = before[0].len();
    let irmad = IrMad::fit(before, after, 8);
    let weights: Vec<f32> = match &irmad {
        // The model's own P(no change) of each sample; clearly invariant pixels only.
        Some(model) => model
            .weights
            .iter()
            .map(|p| if *p > 0.5 { *p as f32 } else { 0.0 })
            .collect(),
        None => vec![0.0; m],
    };
    let invariant_mask: Vec<bool> = weights.iter().map(|w| *w > 0.0).collect();
    let invariant = invariant_mask.iter().filter(|v| **v).count();
    let (w, name): (Vec<f32>, &'static str) = if invariant >= min_invariant {
        let name = match method {
            NormalizationMethod::Linear => "irmad_linear",
            _ => "irmad_quantile",
        };
        (weights, name)
    } else {
        (vec![1.0; m], "histogram")
    };
    let bands = (0..nb)
        .map(|b| match method {
            NormalizationMethod::Linear if name != "histogram" => {
                linear_mapping(&after[b], &before[b], &w)
            }
            _ => quantile_mapping(&after[b], &before[b], &w),
        })
        .collect();
    Normalization {
        bands,
        method: name,
        invariant_pixels: if name == "histogram" { 0 } else { invariant },
        rho: irmad.as_ref().map(|m| m.rho.clone()).unwrap_or_default(),
        invariant: invariant_mask,
        irmad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::bits;
    use crate::synth::rng::Rng;

    fn scene(gamma: bool) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let mut rng = Rng::new(3, "norm");
        let (mut b, mut a) = (vec![vec![]; 3], vec![vec![]; 3]);
        for i in 0..5000 {
            let base = rng.range(200.0, 3000.0) as f32;
            let px = [base * 0.6, base * 0.9, base + rng.range(0.0, 300.0) as f32];
            for k in 0..3 {
                let v = px[k] + 10.0 * rng.normal() as f32;
                b[k].push(v);
                let mut after = if gamma {
                    255.0 * (px[k] / 4000.0).powf(1.0 / 2.2)
                } else {
                    1.05 * px[k] + 40.0
                };
                if i % 10 == 0 {
                    after = rng.range(0.0, 255.0) as f32 * if gamma { 1.0 } else { 10.0 };
                }
                a[k].push(after + rng.normal() as f32);
            }
        }
        (b, a)
    }

    #[test]
    fn linear_sensors_are_mapped_back() {
        let (b, a) = scene(false);
        let n = fit(&b, &a, NormalizationMethod::Linear, 500);
        assert_eq!(n.method, "irmad_linear");
        let (g, o) = n.bands[0].gain_offset();
        assert!(
            (g - 1.0 / 1.05).abs() < 0.01 && (o + 40.0 / 1.05).abs() < 15.0,
            "{g} {o}"
        );
    }

    #[test]
    fn a_gamma_camera_is_mapped_back_by_quantiles() {
        let (b, a) = scene(true);
        let n = fit(&b, &a, NormalizationMethod::Quantile, 500);
        assert_eq!(n.method, "irmad_quantile");
        // An unchanged pixel of reflectance 1500 in band 2 maps back close to 1500.
        let v = 255.0 * (1500.0f32 / 4000.0).powf(1.0 / 2.2);
        let back = n.bands[2].apply(v);
        assert!((back - 1500.0).abs() < 120.0, "{back}");
    }

    proptest::proptest! {
        /// The table-driven `apply_all_into` and a `Mapper` over any range (the values' own, a
        /// part of it, beside it) give bit-identical results to `apply`.
        #[test]
        fn apply_all_equals_apply(
            knots in proptest::collection::vec((-500f32..5000.0, -500f32..5000.0), 2..30),
            values in proptest::collection::vec(-1000f32..6000.0, 1..400),
            round in proptest::bool::ANY,
            round_knots in proptest::bool::ANY,
            range in (-1500f32..6500.0, 0f32..4000.0),
        ) {
            let r = |v: f32| if round_knots { v.round() } else { v };
            let mut from: Vec<f32> = knots.iter().map(|k| r(k.0)).collect();
            let mut to: Vec<f32> = knots.iter().map(|k| k.1).collect();
            from.sort_by(f32::total_cmp);
            from.dedup();
            to.sort_by(f32::total_cmp);
            to.truncate(from.len());
            proptest::prop_assume!(from.len() >= 2 && to.len() == from.len());
            let m = BandMapping { from: from.clone(), to };
            let mut vals: Vec<f32> = values
                .iter()
                .map(|v| if round { v.round() } else { *v })
                .collect();
            // Knots themselves, a NaN and both zeros (the integer table must not mix them up).
            vals.extend(from.iter().copied());
            vals.extend([f32::NAN, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY]);
            let want: Vec<f32> = vals.iter().map(|v| m.apply(*v)).collect();
            let mut into = vec![7.0f32];
            m.apply_all_into(&vals, &mut into);
            proptest::prop_assert_eq!(into[0].to_bits(), 7.0f32.to_bits());
            proptest::prop_assert_eq!(bits(&into[1..]), bits(&want));
            for (lo, hi) in [(range.0, range.0 + range.1), finite_range(&vals)] {
                let mut mapped = vec![7.0f32; vals.len()];
                m.mapper(lo, hi, 4 * vals.len() + 8000).map_into(&vals, &mut mapped);
                proptest::prop_assert_eq!(bits(&mapped), bits(&want));
            }
        }
    }

    proptest::proptest! {
        /// The radix sort orders the (key, index) pairs as a comparison sort of them does: any
        /// bits (NaNs, infinities, signed zeros), many ties, digits shared or not.
        #[test]
        fn the_radix_sort_is_the_sort_of_the_pairs(
            bits in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u32>(),
                    0u32..4,
                    proptest::strategy::Strategy::prop_map(0u32..2048, |b| 0x4000_0000 | (b << 11)),
                ],
                0..3000,
            ),
        ) {
            let v: Vec<f32> = bits.iter().map(|b| f32::from_bits(*b)).collect();
            let mut want: Vec<u64> = v
                .iter()
                .enumerate()
                .map(|(i, x)| (u64::from(crate::detect::order::total_key(*x)) << 32) | i as u64)
                .collect();
            want.sort_unstable();
            proptest::prop_assert_eq!(sorted_by_value(&v), want);
        }
    }

    proptest::proptest! {
        /// The integer-key sort picks the quantiles of a stable sort by `total_cmp`, ties and
        /// signed zeros included.
        #[test]
        fn weighted_quantiles_equal_the_stable_sort(
            pairs in proptest::collection::vec(
                (proptest::sample::select(vec![-3.0f32, -0.0, 0.0, 1.5, 2.0, 700.25, f32::NAN]), 0f32..4.0),
                1..300,
            ),
        ) {
            let (v, w): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let reference = {
                let mut idx: Vec<usize> = (0..v.len()).collect();
                idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
                let total: f64 = w.iter().map(|x| *x as f64).sum();
                let (mut acc, mut k, mut out) = (0f64, 0usize, Vec::new());
                for &p in &PROBS {
                    while k < idx.len() - 1 && acc + (w[idx[k]] as f64) < p * total {
                        acc += w[idx[k]] as f64;
                        k += 1;
                    }
                    out.push(v[idx[k]]);
                }
                out
            };
            let got = weighted_quantiles(&v, &w, &PROBS);
            proptest::prop_assert_eq!(bits(&got), bits(&reference));
        }
    }

    proptest::proptest! {
        /// The eight-lane range equals the plain fold over the finite values.
        #[test]
        fn finite_range_is_the_fold(
            values in proptest::collection::vec(-1000f32..6000.0, 0..100),
            specials in proptest::collection::vec(0usize..3, 0..5),
        ) {
            let mut v = values;
            v.extend(specials.iter().map(|s| [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][*s]));
            let want = v
                .iter()
                .filter(|x| x.is_finite())
                .fold((f32::MAX, f32::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            proptest::prop_assert_eq!(finite_range(&v), want);
        }
    }

    #[test]
    fn mapping_is_monotone_and_extrapolates() {
        let m = BandMapping {
            from: vec![0.0, 10.0, 20.0],
            to: vec![0.0, 100.0, 150.0],
        };
        assert_eq!(m.apply(5.0), 50.0);
        assert_eq!(m.apply(30.0), 200.0);
        assert_eq!(m.apply(-10.0), -100.0);
    }
}
