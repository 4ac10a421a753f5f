//! Co-registration: the sub-pixel shift between two dates of a cell, from the correlation of their
//! edge images, and bilinear resampling to remove it.
//!
//! Field edges, roads and ditches do not move between dates; their gradient images line up when
//! the images do. A drone orthophoto geolocated a metre off, or two satellite scenes orthorectified
//! with different elevation models, show up as a clear correlation peak away from zero.

use ndarray::{Array2, Array3, Axis};

/// The estimated shift: the after image's content sits at `(dx, dy)` pixels from the before's.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Shift {
    /// Columns (positive: content further east in the after image).
    pub dx: f32,
    /// Rows (positive: content further south in the after image).
    pub dy: f32,
    /// Peak normalised correlation of the edge images.
    pub peak: f32,
    /// Correlation at zero shift.
    pub at_zero: f32,
}

/// One row of an edge image: the gradient magnitude (central differences) of the brightness row
/// `row` between its neighbours `up` and `down`; the first and last pixels are left as they are.
fn edge_row(up: &[f32], row: &[f32], down: &[f32], out: &mut [f32]) {
    let w = row.len();
    for x in 1..w.saturating_sub(1) {
        let gx = row[x + 1] - row[x - 1];
        let gy = down[x] - up[x];
        out[x] = (gx * gx + gy * gy).sqrt();
    }
}

/// The rows of the two edge images the correlation reads: row `y` of `a` and rows `y - r ..=
/// y + r` of `b` for each sampled row `y`.
trait EdgeRows {
    /// Makes those rows available for sampled row `y` (asked for in increasing order of `y`).
    fn prepare(&mut self, y: usize, r: usize);
    fn a(&self, y: usize) -> &[f32];
    fn b(&self, y: usize) -> &[f32];
}

/// Edge images held whole, row-major (the form the property tests compare against).
#[cfg(test)]
struct WholeRows<'a> {
    a: &'a [f32],
    b: &'a [f32],
    w: usize,
}

#[cfg(test)]
impl EdgeRows for WholeRows<'_> {
    fn prepare(&mut self, _: usize, _: usize) {}
    fn a(&self, y: usize) -> &[f32] {
        &self.a[y * self.w..(y + 1) * self.w]
    }
    fn b(&self, y: usize) -> &[f32] {
        &self.b[y * self.w..(y + 1) * self.w]
    }
}

/// An edge image's rows computed when first asked for, from brightness rows made by `bright`
/// (which fills row `y` of the brightness image), keeping the last few of each in small rings:
/// a pass of the correlation reads the cell's bands once, with every row it works on in cache,
/// where whole brightness and edge images (two of each, 4.7 MB apiece for a 1088² window) went
/// through memory several times. The same arithmetic on the same values as whole images.
struct EdgeRing<F> {
    bright: F,
    /// Brightness rows, row `k` in slot `k % 3`, with the row each slot holds.
    bright_rows: [Vec<f32>; 3],
    bright_of: [usize; 3],
    /// Edge rows, row `k` in slot `k % n`.
    edge_rows: Vec<Vec<f32>>,
    edge_of: Vec<usize>,
}

impl<F: Fn(usize, &mut [f32])> EdgeRing<F> {
    fn new(w: usize, slots: usize, bright: F) -> Self {
        EdgeRing {
            bright,
            bright_rows: std::array::from_fn(|_| vec![0f32; w]),
            bright_of: [usize::MAX; 3],
            edge_rows: vec![vec![0f32; w]; slots],
            edge_of: vec![usize::MAX; slots],
        }
    }

    /// Computes edge row `y` (1 ≤ y < height − 1) unless its slot holds it already.
    fn ensure(&mut self, y: usize) {
        let n = self.edge_rows.len();
        if self.edge_of[y % n] == y {
            return;
        }
        for k in y - 1..=y + 1 {
            if self.bright_of[k % 3] != k {
                (self.bright)(k, &mut self.bright_rows[k % 3]);
                self.bright_of[k % 3] = k;
            }
        }
        let [r0, r1, r2] = &self.bright_rows;
        let by_row = |k: usize| match k % 3 {
            0 => r0,
            1 => r1,
            _ => r2,
        };
        edge_row(
            by_row(y - 1),
            by_row(y),
            by_row(y + 1),
            &mut self.edge_rows[y % n],
        );
        self.edge_of[y % n] = y;
    }

    fn row(&self, y: usize) -> &[f32] {
        let n = self.edge_rows.len();
        debug_assert_eq!(self.edge_of[y % n], y, "edge row {y} was not prepared");
        &self.edge_rows[y % n]
    }
}

/// The two edge images streamed row by row (see [`EdgeRing`]).
struct StreamedRows<F, G> {
    a: EdgeRing<F>,
    b: EdgeRing<G>,
}

impl<F: Fn(usize, &mut [f32]), G: Fn(usize, &mut [f32])> EdgeRows for StreamedRows<F, G> {
    fn prepare(&mut self, y: usize, r: usize) {
        self.a.ensure(y);
        for k in y - r..=y + r {
            self.b.ensure(k);
        }
    }
    fn a(&self, y: usize) -> &[f32] {
        self.a.row(y)
    }
    fn b(&self, y: usize) -> &[f32] {
        self.b.row(y)
    }
}

/// Normalised cross-correlation of `a` with `b` displaced by each shift within ±`r`, over the
/// sampled pixels (every `step`-th row and column inside `margin`) valid at both ends. Every
/// shift's sums accumulate in raster order, as a loop per shift would.
fn ncc_all(
    rows: &mut impl EdgeRows,
    valid: &[bool],
    (h, w): (usize, usize),
    r: i32,
    margin: usize,
    step: usize,
) -> Vec<f32> {
    match r {
        1 => ncc_rows::<3, 4>(rows, valid, (h, w), margin, step),
        2 => ncc_rows::<5, 8>(rows, valid, (h, w), margin, step),
        3 => ncc_rows::<7, 8>(rows, valid, (h, w), margin, step),
        4 => ncc_rows::<9, 12>(rows, valid, (h, w), margin, step),
        5 => ncc_rows::<11, 12>(rows, valid, (h, w), margin, step),
        6 => ncc_rows::<13, 16>(rows, valid, (h, w), margin, step),
        7 => ncc_rows::<15, 16>(rows, valid, (h, w), margin, step),
        _ => ncc_rows::<17, 20>(rows, valid, (h, w), margin, step),
    }
}

/// [`ncc_all`] for a search window of `S` × `S` shifts (S = 2r + 1), `L` ≥ S lanes (a multiple
/// of four). For each row of shifts the displaced pixels are one contiguous run of `b`, so the
/// shifts' sums are updated side by side in lanes (vectorised). A pair with an invalid end adds
/// +0.0 to each sum (the term's bits masked off): bit for bit what skipping the pair does, as a
/// sum starting at +0.0 never becomes −0.0. Lanes past `S` are never read.
fn ncc_rows<const S: usize, const L: usize>(
    rows: &mut impl EdgeRows,
    valid: &[bool],
    (h, w): (usize, usize),
    margin: usize,
    step: usize,
) -> Vec<f32> {
    let r = S / 2;
    // Per row of shifts (dy) and shift (dx, a lane): sa, sb, saa, sbb, sab, n.
    let mut acc = vec![[[0f64; L]; 6]; S];
    let keep = |x: f64, m: u64| f64::from_bits(x.to_bits() & m);
    for y in (margin..h - margin).step_by(step) {
        // Inside the margin every shifted row and column is in the image.
        rows.prepare(y, r);
        let (a, v) = (rows.a(y), &valid[y * w..(y + 1) * w]);
        let b: [&[f32]; S] = std::array::from_fn(|dy| rows.b(y + dy - r));
        let vb: [&[bool]; S] =
            std::array::from_fn(|dy| &valid[(y + dy - r) * w..(y + dy - r + 1) * w]);
        for x in (margin..w - margin).step_by(step) {
            if !v[x] {
                continue;
            }
            let p = a[x] as f64;
            for (dy, s) in acc.iter_mut().enumerate() {
                let j0 = x - r;
                let (Some(qs), Some(vs)) = (b[dy].get(j0..j0 + S), vb[dy].get(j0..j0 + S)) else {
                    continue;
                };
                let mut q = [0f64; L];
                for k in 0..S {
                    q[k] = qs[k] as f64;
                }
                if vs.iter().all(|v| *v) {
                    // Every pair valid (most of the image): the same sums without the masks. Lanes
                    // past `S` take terms too, but their sums are never read.
                    for k in 0..L {
                        s[0][k] += p;
                        s[1][k] += q[k];
                        s[2][k] += p * p;
                        s[3][k] += q[k] * q[k];
                        s[4][k] += p * q[k];
                        s[5][k] += 1.0;
                    }
                    continue;
                }
                let mut m = [0u64; L];
                for k in 0..S {
                    m[k] = 0u64.wrapping_sub(vs[k] as u64);
                }
                for k in 0..L {
                    s[0][k] += keep(p, m[k]);
                    s[1][k] += keep(q[k], m[k]);
                    s[2][k] += keep(p * p, m[k]);
                    s[3][k] += keep(q[k] * q[k], m[k]);
                    s[4][k] += keep(p * q[k], m[k]);
                    s[5][k] += keep(1.0, m[k]);
                }
            }
        }
    }
    acc.iter()
        .flat_map(|s| {
            (0..S)
                .map(move |k| correlation(&[s[0][k], s[1][k], s[2][k], s[3][k], s[4][k], s[5][k]]))
        })
        .collect()
}

/// The normalised correlation from one shift's sums (sa, sb, saa, sbb, sab, n); 0 with fewer
/// than 1000 pixel pairs or a constant image.
fn correlation(&[sa, sb, saa, sbb, sab, n]: &[f64; 6]) -> f32 {
    if n < 1000.0 {
        return 0.0;
    }
    let va = saa / n - (sa / n).powi(2);
    let vb = sbb / n - (sb / n).powi(2);
    if va <= 0.0 || vb <= 0.0 {
        return 0.0;
    }
    ((sab / n - sa / n * sb / n) / (va * vb).sqrt()) as f32
}

/// Estimates the shift of `after` against `before` (band-sequential images) within ±`max_px`,
/// from their brightness: the sum of the first three bands, made a row at a time as the
/// correlation needs it (the same sums, in the same order, as summing the bands into whole images
/// first). `None` without three bands, or when the overlap is too small to tell.
pub fn estimate_shift(
    before: &Array3<f32>,
    after: &Array3<f32>,
    valid: &Array2<bool>,
    max_px: usize,
) -> Option<Shift> {
    let (bands, h, w) = before.dim();
    if bands < 3 || after.dim() != before.dim() {
        return None;
    }
    let (a, b) = (before.as_standard_layout(), after.as_standard_layout());
    let (a, b) = (a.as_slice()?, b.as_slice()?);
    let plane = h * w;
    // ndarray's `sum_axis` over the bands: a zero image, plus each band in turn.
    let bright = |img: &[f32], y: usize, out: &mut [f32]| {
        let row = |k: usize| &img[k * plane + y * w..k * plane + (y + 1) * w];
        for (((o, b0), b1), b2) in out.iter_mut().zip(row(0)).zip(row(1)).zip(row(2)) {
            *o = 0.0 + b0 + b1 + b2;
        }
    };
    estimate(
        (h, w),
        |y, out| bright(a, y, out),
        |y, out| bright(b, y, out),
        valid,
        max_px,
    )
}

/// The shift from brightness rows: `before(y, out)` and `after(y, out)` fill row `y` (see
/// [`EdgeRing`]).
fn estimate(
    (h, w): (usize, usize),
    before: impl Fn(usize, &mut [f32]),
    after: impl Fn(usize, &mut [f32]),
    valid: &Array2<bool>,
    max_px: usize,
) -> Option<Shift> {
    let r = max_px.max(1) as i32;
    let margin = max_px + 2;
    if h < 4 * margin + 16 || w < 4 * margin + 16 {
        return None;
    }
    let n_valid = super::count_set(valid);
    if n_valid < 5000 {
        return None;
    }
    // A sample on a regular lattice is plenty for a big overlap: every fourth pixel of every
    // fourth row over most of a cell (still ~70 000 pairs per shift in a whole window; every third
    // took 30 % longer and found the same cells shifted on the peer scene and three synthetic
    // ones), every second below; small overlaps (a drone strip over one corner of a cell) use
    // every pixel.
    let step = if n_valid > 600_000 {
        4
    } else if n_valid > 150_000 {
        2
    } else {
        1
    };
    let size = (2 * r + 1) as usize;
    let valid = super::flat(valid);
    let mut rows = StreamedRows {
        a: EdgeRing::new(w, 1, before),
        b: EdgeRing::new(w, size, after),
    };
    let scores = ncc_all(&mut rows, &valid, (h, w), r, margin, step);
    let at = |dx: i32, dy: i32| scores[((dy + r) as usize) * size + (dx + r) as usize];
    let (mut bx, mut by) = (0, 0);
    for dy in -r..=r {
        for dx in -r..=r {
            if at(dx, dy) > at(bx, by) {
                bx = dx;
                by = dy;
            }
        }
    }
    let peak = at(bx, by);
    // Sub-pixel refinement by a parabola through the peak and its neighbours.
    let refine = |m: f32, c: f32, p: f32| {
        let d = m - 2.0 * c + p;
        if d.abs() < 1e-9 {
            0.0
        } else {
            (0.5 * (m - p) / d).clamp(-0.5, 0.5)
        }
    };
    let fx = if bx.abs() < r {
        bx as f32 + refine(at(bx - 1, by), peak, at(bx + 1, by))
    } else {
        bx as f32
    };
    let fy = if by.abs() < r {
        by as f32 + refine(at(bx, by - 1), peak, at(bx, by + 1))
    } else {
        by as f32
    };
    Some(Shift {
        dx: fx,
        dy: fy,
        peak,
        at_zero: at(0, 0),
    })
}

/// Resamples bands so that `out(x, y) = src(x + dx, y + dy)` (bilinear); pixels sampling outside
/// the image or next to invalid pixels become invalid.
pub fn apply_shift(
    bands: &Array3<f32>,
    valid: &Array2<bool>,
    dx: f32,
    dy: f32,
) -> (Array3<f32>, Array2<bool>) {
    let (nb, h, w) = bands.dim();
    let mut out = Array3::<f32>::zeros((nb, h, w));
    let mut ok = Array2::<bool>::from_elem((h, w), false);
    let (ix, iy) = (dx.floor() as i64, dy.floor() as i64);
    let (fx, fy) = (dx - dx.floor(), dy - dy.floor());
    let weights = [
        (1.0 - fx) * (1.0 - fy),
        fx * (1.0 - fy),
        (1.0 - fx) * fy,
        fx * fy,
    ];
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let (x0, y0) = (x + ix, y + iy);
            if x0 < 0 || y0 < 0 || x0 + 1 >= w as i64 || y0 + 1 >= h as i64 {
                continue;
            }
            let (x0, y0) = (x0 as usize, y0 as usize);
            let taps = [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)];
            if taps
                .iter()
                .zip(&weights)
                .any(|(t, wgt)| *wgt > 0.0 && !valid[*t])
            {
                continue;
            }
            ok[[y as usize, x as usize]] = true;
            for b in 0..nb {
                let band = bands.index_axis(Axis(0), b);
                let v: f32 = taps
                    .iter()
                    .zip(&weights)
                    .map(|(t, wgt)| band[*t] * wgt)
                    .sum();
                out[[b, y as usize, x as usize]] = v;
            }
        }
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::bits;

    /// Gradient magnitude of a whole image, row-major, borders zero: the edge image the streamed
    /// rows stand for.
    fn gradient(img: &Array2<f32>) -> Vec<f32> {
        let (h, w) = img.dim();
        let src = crate::detect::flat(img);
        let mut g = vec![0f32; h * w];
        let inner = g.chunks_exact_mut(w).enumerate();
        for (y, out) in inner.take(h.saturating_sub(1)).skip(1) {
            let row = |k: usize| &src[k * w..(k + 1) * w];
            edge_row(row(y - 1), row(y), row(y + 1), out);
        }
        g
    }

    /// The sums as first written: a loop per shift over the samples, skipping invalid shifted
    /// pixels.
    fn ncc_reference(
        a: &[f32],
        b: &[f32],
        valid: &[bool],
        (h, w): (usize, usize),
        r: i32,
        margin: usize,
        step: usize,
    ) -> Vec<f32> {
        let mut out = Vec::new();
        for dy in -r..=r {
            for dx in -r..=r {
                let mut s = [0f64; 6];
                for y in (margin..h - margin).step_by(step) {
                    for x in (margin..w - margin).step_by(step) {
                        let i = y * w + x;
                        let j = ((y as i64 + dy as i64) * w as i64 + x as i64 + dx as i64) as usize;
                        if !valid[i] || !valid[j] {
                            continue;
                        }
                        let (p, q) = (a[i] as f64, b[j] as f64);
                        s[0] += p;
                        s[1] += q;
                        s[2] += p * p;
                        s[3] += q * q;
                        s[4] += p * q;
                        s[5] += 1.0;
                    }
                }
                out.push(correlation(&s));
            }
        }
        out
    }

    /// Pixels valid with probability 1 − `invalid_share` %.
    fn random_valid(rng: &mut crate::synth::rng::Rng, n: usize, invalid_share: u32) -> Vec<bool> {
        (0..n)
            .map(|_| rng.range(0.0, 100.0) >= invalid_share as f64)
            .collect()
    }

    /// Row `y` of a row-major image `w` pixels wide, copied into `out`.
    fn copy_row(img: &[f32], w: usize, y: usize, out: &mut [f32]) {
        out.copy_from_slice(&img[y * w..(y + 1) * w]);
    }

    /// The shift between two whole brightness images.
    fn shift_of_images(
        before: &Array2<f32>,
        after: &Array2<f32>,
        valid: &Array2<bool>,
        max_px: usize,
    ) -> Option<Shift> {
        let (h, w) = before.dim();
        let (a, b) = (crate::detect::flat(before), crate::detect::flat(after));
        let (a, b) = (&*a, &*b);
        estimate(
            (h, w),
            |y, out| copy_row(a, w, y, out),
            |y, out| copy_row(b, w, y, out),
            valid,
            max_px,
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20))]
        /// All shifts at once give the loop per shift's bits for every shift, from whole edge
        /// images and from edge rows made as the correlation reaches them alike.
        #[test]
        fn ncc_all_equals_the_loop_per_shift(
            seed in 0u64..1000,
            r in 1i32..9,
            step in 1usize..4,
            invalid_share in 0u32..30,
        ) {
            let (h, w) = (180, 190);
            let mut rng = crate::synth::rng::Rng::new(seed, "ncc");
            // Brightness images, correlated between the dates.
            let before = Array2::from_shape_fn((h, w), |_| rng.range(0.0, 3000.0) as f32);
            let after = before.mapv(|v| v + rng.range(-200.0, 200.0) as f32);
            let valid = random_valid(&mut rng, h * w, invalid_share);
            let margin = r as usize + 2;
            let (ga, gb) = (gradient(&before), gradient(&after));
            let want = ncc_reference(&ga, &gb, &valid, (h, w), r, margin, step);
            proptest::prop_assert!(want.iter().any(|v| *v != 0.0));
            let whole = ncc_all(&mut WholeRows { a: &ga, b: &gb, w }, &valid, (h, w), r, margin, step);
            proptest::prop_assert_eq!(bits(&whole), bits(&want));
            let (fb, fa) = (crate::detect::flat(&before), crate::detect::flat(&after));
            let mut rows = StreamedRows {
                a: EdgeRing::new(w, 1, |y, out: &mut [f32]| copy_row(&fb, w, y, out)),
                b: EdgeRing::new(w, 2 * r as usize + 1, |y, out: &mut [f32]| copy_row(&fa, w, y, out)),
            };
            let streamed = ncc_all(&mut rows, &valid, (h, w), r, margin, step);
            proptest::prop_assert_eq!(bits(&streamed), bits(&want));
        }

        /// The shift from band images is the shift from their brightness (the first three
        /// bands summed with ndarray's `sum_axis`), bit for bit.
        #[test]
        fn band_images_give_the_shift_of_their_brightness(
            seed in 0u64..1000,
            bands in 3usize..5,
            r in 1usize..6,
            dx in -2i32..3,
            dy in -2i32..3,
        ) {
            let (h, w) = (110, 120);
            let mut rng = crate::synth::rng::Rng::new(seed, "bands");
            let noise: Vec<f32> = (0..bands * h * w).map(|_| rng.range(0.0, 40.0) as f32).collect();
            let field = |x: f32, y: f32| {
                ((x / 7.0).sin() + (y / 5.0).cos() + ((x + y) / 11.0).sin()) * 100.0 + 400.0
            };
            let cube = |ox: i32, oy: i32| {
                Array3::from_shape_fn((bands, h, w), |(k, y, x)| {
                    let p = field(x as f32 - ox as f32, y as f32 - oy as f32);
                    p * (1.0 + k as f32 / 4.0) + noise[(k * h + y) * w + x]
                })
            };
            let (before, after) = (cube(0, 0), cube(dx, dy));
            let valid = Array2::from_shape_fn((h, w), |(y, x)| (x * 7 + y * 3) % 23 != 0);
            let bright = |c: &Array3<f32>| c.slice(ndarray::s![0..3, .., ..]).sum_axis(Axis(0));
            let want = shift_of_images(&bright(&before), &bright(&after), &valid, r);
            let got = estimate_shift(&before, &after, &valid, r);
            let bits = |s: Option<Shift>| {
                s.map(|s| [s.dx.to_bits(), s.dy.to_bits(), s.peak.to_bits(), s.at_zero.to_bits()])
            };
            proptest::prop_assert!(want.is_some());
            proptest::prop_assert_eq!(bits(got), bits(want));
        }
    }

    fn pattern(h: usize, w: usize, ox: f32, oy: f32) -> Array2<f32> {
        // A smooth pattern of "fields": sums of sines with edges in both directions.
        Array2::from_shape_fn((h, w), |(y, x)| {
            let (x, y) = (x as f32 - ox, y as f32 - oy);
            ((x / 7.0).sin() + (y / 5.0).cos() + ((x + y) / 11.0).sin()) * 100.0
        })
    }

    #[test]
    fn finds_a_sub_pixel_shift_and_removes_it() {
        let (h, w) = (96, 96);
        let before = pattern(h, w, 0.0, 0.0);
        // The after image's content sits 1.5 px east and 1 px north.
        let after = pattern(h, w, 1.5, -1.0);
        let valid = Array2::from_elem((h, w), true);
        let s = shift_of_images(&before, &after, &valid, 3).unwrap();
        assert!(
            (s.dx - 1.5).abs() < 0.2 && (s.dy + 1.0).abs() < 0.2,
            "{s:?}"
        );
        let bands = after.clone().insert_axis(Axis(0));
        let (fixed, ok) = apply_shift(&bands, &valid, s.dx, s.dy);
        let mut err = 0f32;
        let mut n = 0;
        for y in 8..h - 8 {
            for x in 8..w - 8 {
                if ok[[y, x]] {
                    err += (fixed[[0, y, x]] - before[[y, x]]).abs();
                    n += 1;
                }
            }
        }
        assert!(err / (n as f32) < 3.0, "mean error {}", err / n as f32);
    }
}
