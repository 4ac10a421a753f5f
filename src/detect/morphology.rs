//! Binary morphology and connected components on boolean masks.
//!
//! Square structuring elements are separable: a (2r+1)² dilation is a row pass then a column
//! pass, each a sliding count over the window, so the cost does not grow with `r`. The window is
//! clipped at the image border (outside pixels count as neither foreground nor background), which
//! is `imageproc`'s L∞ distance-transform morphology exactly; the tests check the two agree.

use ndarray::Array2;

/// Up to this radius a row pass ANDs or ORs shifted copies; beyond it, a sliding count.
const SHIFT_MAX_R: usize = 4;

/// Sliding-window test along one row: `dst[x]` is 1 when the window `[x - r, x + r]` (clipped
/// to the row) is all ones (`all`, erosion) or holds any one (dilation).
#[inline]
fn row_pass(src: &[u8], dst: &mut [u8], r: usize, all: bool) {
    if r <= SHIFT_MAX_R {
        row_pass_shifted(src, dst, r, all)
    } else {
        row_pass_sliding(src, dst, r, all)
    }
}

/// Small windows: AND/OR of the row with itself shifted by 1..=r either way, each shift a plain
/// loop over slices that the compiler vectorises (values are 0 or 1). Shifted pixels beyond the
/// row are left out, as the clipped window leaves them out.
#[inline]
fn row_pass_shifted(src: &[u8], dst: &mut [u8], r: usize, all: bool) {
    let n = src.len();
    {
        dst.copy_from_slice(src);
        for d in 1..=r.min(n.saturating_sub(1)) {
            let (head, tail) = (&src[..n - d], &src[d..]);
            if all {
                dst[..n - d]
                    .iter_mut()
                    .zip(tail)
                    .for_each(|(o, v)| *o &= *v);
                dst[d..].iter_mut().zip(head).for_each(|(o, v)| *o &= *v);
            } else {
                dst[..n - d]
                    .iter_mut()
                    .zip(tail)
                    .for_each(|(o, v)| *o |= *v);
                dst[d..].iter_mut().zip(head).for_each(|(o, v)| *o |= *v);
            }
        }
    }
}

/// Any radius: a running count over the window.
#[inline]
fn row_pass_sliding(src: &[u8], dst: &mut [u8], r: usize, all: bool) {
    let n = src.len();
    let mut count = 0usize;
    for v in &src[..r.min(n)] {
        count += *v as usize;
    }
    for x in 0..n {
        if x + r < n {
            count += src[x + r] as usize;
        }
        if x > r {
            count -= src[x - r - 1] as usize;
        }
        let len = (x + r + 1).min(n) - x.saturating_sub(r);
        dst[x] = if all { count == len } else { count > 0 } as u8;
    }
}

fn to_u8(mask: &Array2<bool>) -> Vec<u8> {
    match mask.as_slice() {
        Some(s) => s.iter().map(|v| *v as u8).collect(),
        None => mask.iter().map(|v| *v as u8).collect(),
    }
}

fn from_u8(h: usize, w: usize, v: Vec<u8>) -> Array2<bool> {
    let raw: Vec<bool> = v.into_iter().map(|b| b != 0).collect();
    Array2::from_shape_vec((h, w), raw).unwrap_or_else(|_| Array2::from_elem((h, w), false))
}

/// Row pass then column pass; `all` = erosion (every pixel of the window), else dilation.
///
/// Masks are mostly clear: a clear row stays clear through the row pass, a clear row adds
/// nothing to the column counts, and where every row of the window is clear so is the output
/// (erosion and dilation alike), so clear rows are passed over.
fn filter(src: Vec<u8>, h: usize, w: usize, r: usize, all: bool) -> Vec<u8> {
    if w == 0 || h == 0 {
        return src;
    }
    let mut tmp = vec![0u8; h * w];
    let mut set = vec![false; h];
    for ((s, d), set) in src
        .chunks_exact(w)
        .zip(tmp.chunks_exact_mut(w))
        .zip(&mut set)
    {
        *set = super::next_nonzero(s, 0) < w;
        if *set {
            row_pass(s, d, r, all);
        }
    }
    // Columns: one running count per column, advanced a row at a time (cache friendly);
    // `live` is how many rows in the count are set.
    // The output is written over the input, which the row pass was the last to read: each row
    // of it is written whole below or, where no row of its window is set, left clear.
    let mut out = src;
    let mut count = vec![0u32; w];
    let mut live = 0usize;
    for y in 0..r.min(h) {
        if set[y] {
            live += 1;
            for (c, v) in count.iter_mut().zip(&tmp[y * w..(y + 1) * w]) {
                *c += *v as u32;
            }
        }
    }
    for y in 0..h {
        if y + r < h && set[y + r] {
            live += 1;
            let row = &tmp[(y + r) * w..(y + r + 1) * w];
            for (c, v) in count.iter_mut().zip(row) {
                *c += *v as u32;
            }
        }
        if y > r && set[y - r - 1] {
            live -= 1;
            let row = &tmp[(y - r - 1) * w..(y - r) * w];
            for (c, v) in count.iter_mut().zip(row) {
                *c -= *v as u32;
            }
        }
        if live == 0 {
            // Every count is zero: the output row is clear, and so already is the input row
            // under it (the row is in its own window, and no row of the window is set).
            continue;
        }
        let len = ((y + r + 1).min(h) - y.saturating_sub(r)) as u32;
        let dst = &mut out[y * w..(y + 1) * w];
        if all {
            for (d, c) in dst.iter_mut().zip(&count) {
                *d = (*c == len) as u8;
            }
        } else {
            for (d, c) in dst.iter_mut().zip(&count) {
                *d = (*c > 0) as u8;
            }
        }
    }
    out
}

/// Opening (erosion then dilation) with a (2r+1)² square: removes specks and lines thinner than it.
pub fn open(mask: &Array2<bool>, r: u8) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    let (h, w) = mask.dim();
    let e = filter(to_u8(mask), h, w, r as usize, true);
    from_u8(h, w, filter(e, h, w, r as usize, false))
}

/// Closing (dilation then erosion) with a (2r+1)² square: fills gaps and holes narrower than it.
pub fn close(mask: &Array2<bool>, r: u8) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    let (h, w) = mask.dim();
    let d = filter(to_u8(mask), h, w, r as usize, false);
    from_u8(h, w, filter(d, h, w, r as usize, true))
}

/// Dilation with a (2r+1)² square.
pub fn dilate(mask: &Array2<bool>, r: u8) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    let (h, w) = mask.dim();
    from_u8(h, w, filter(to_u8(mask), h, w, r as usize, false))
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        parent[x as usize] = parent[p as usize];
        x = p;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) -> u32 {
    let (ra, rb) = (find(parent, a), find(parent, b));
    let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
    parent[hi as usize] = lo;
    lo
}

/// The label array of [`component_runs`] (0 is background) and the number of components: what
/// the tests compare with `imageproc`'s labelling and the detector's label-array references.
#[cfg(test)]
pub fn components(mask: &Array2<bool>) -> (Array2<u32>, usize) {
    let (h, w) = mask.dim();
    let (runs, n) = component_runs(mask);
    let lab = label_array(&runs, h, w);
    let out = Array2::from_shape_vec((h, w), lab).unwrap_or_else(|_| Array2::zeros((h, w)));
    (out, n)
}

/// The `h × w` label array (row-major) of runs of an `h × w` mask: each run's pixels hold its
/// label, every other pixel 0.
pub fn label_array(runs: &[Run], h: usize, w: usize) -> Vec<u32> {
    let mut lab = vec![0u32; h * w];
    for r in runs {
        lab[r.span(w)].fill(r.label);
    }
    lab
}

/// A run of set pixels of a row and the label of its component (see [`component_runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The row.
    pub y: u32,
    /// The first column of the run.
    pub x0: u32,
    /// One past its last column.
    pub x1: u32,
    /// The component's label (from 1, in raster order of the component's first pixel).
    pub label: u32,
}

impl Run {
    /// The run's pixels as indices of a row-major raster `w` pixels wide.
    pub fn span(&self, w: usize) -> std::ops::Range<usize> {
        let start = self.y as usize * w;
        start + self.x0 as usize..start + self.x1 as usize
    }
}

/// The 8-connected components of a mask as runs in raster order, each with its component's
/// label: components are numbered from 1 in raster order of their first pixel. No label array
/// is made (see [`label_array`] for one): callers that only need each component's pixels once
/// (sizes, masks of some components) move a fraction of the memory. Returns the runs and the
/// number of components.
///
/// Run-based union-find: each row's runs of set pixels (found by skipping clear pixels sixteen
/// at a time — masks are mostly clear) take the smallest provisional label of the runs they touch
/// in the row above; the final labels are then given to the roots in raster order of the runs.
pub fn component_runs(mask: &Array2<bool>) -> (Vec<Run>, usize) {
    let (h, w) = mask.dim();
    let owned;
    let m: &[bool] = match mask.as_slice() {
        Some(s) => s,
        None => {
            owned = mask.iter().copied().collect::<Vec<bool>>();
            &owned
        }
    };
    // Runs in raster order: (row, first column, one past the last, provisional label).
    let mut runs: Vec<(u32, u32, u32, u32)> = Vec::new();
    let mut parent: Vec<u32> = vec![0];
    let (mut prev_start, mut prev_end) = (0usize, 0usize);
    for y in 0..h {
        let row = &m[y * w..(y + 1) * w];
        let row_start = runs.len();
        let mut k = prev_start;
        let mut x = super::next_nonzero(row, 0);
        while x < w {
            let x0 = x;
            while x < w && row[x] {
                x += 1;
            }
            let (lo, hi) = (x0 as u32, x as u32);
            // Runs above touch this one (8-connected) when they reach column x0 − 1 and start
            // by column x; the first that ends before x0 − 1 cannot touch any later run either.
            while k < prev_end && runs[k].2 < lo {
                k += 1;
            }
            let mut l = 0u32;
            let mut j = k;
            while j < prev_end && runs[j].1 <= hi {
                let n = runs[j].3;
                l = if l == 0 { n } else { union(&mut parent, l, n) };
                j += 1;
            }
            if l == 0 {
                l = parent.len() as u32;
                parent.push(l);
            }
            runs.push((y as u32, lo, hi, l));
            x = super::next_nonzero(row, x);
        }
        (prev_start, prev_end) = (row_start, runs.len());
    }
    let mut final_of = vec![0u32; parent.len()];
    let mut n = 0u32;
    let runs = runs
        .into_iter()
        .map(|(y, x0, x1, l)| {
            let root = find(&mut parent, l) as usize;
            if final_of[root] == 0 {
                n += 1;
                final_of[root] = n;
            }
            Run {
                y,
                x0,
                x1,
                label: final_of[root],
            }
        })
        .collect();
    (runs, n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma};
    use imageproc::distance_transform::Norm;
    use imageproc::region_labelling::{connected_components, Connectivity};
    use proptest::prelude::*;

    fn gray(mask: &Array2<bool>) -> GrayImage {
        let (h, w) = mask.dim();
        let raw: Vec<u8> = mask.iter().map(|v| if *v { 255 } else { 0 }).collect();
        GrayImage::from_raw(w as u32, h as u32, raw).unwrap()
    }

    fn bools(img: &GrayImage) -> Array2<bool> {
        let (w, h) = img.dimensions();
        Array2::from_shape_vec(
            (h as usize, w as usize),
            img.as_raw().iter().map(|v| *v > 0).collect(),
        )
        .unwrap()
    }

    /// Masks of any density, with none, some or most of their rows clear (as masks of change
    /// are: the filters pass clear rows over).
    fn mask_strategy() -> impl Strategy<Value = Array2<bool>> {
        (1usize..40, 1usize..40, 0u32..100, 0usize..4).prop_flat_map(|(h, w, density, clear)| {
            proptest::collection::vec(0u32..100, h * w).prop_map(move |v| {
                let px = v
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| x < density && (i / w) % 4 >= clear);
                Array2::from_shape_vec((h, w), px.collect()).unwrap()
            })
        })
    }

    proptest! {
        /// Both row passes agree for every radius and row length, the row shorter than the
        /// window included.
        #[test]
        fn shifted_row_pass_equals_the_sliding_count(
            row in proptest::collection::vec(0u8..2, 0..40),
            r in 1usize..=SHIFT_MAX_R,
            all in proptest::bool::ANY,
        ) {
            let (mut a, mut b) = (vec![0u8; row.len()], vec![0u8; row.len()]);
            row_pass_shifted(&row, &mut a, r, all);
            row_pass_sliding(&row, &mut b, r, all);
            prop_assert_eq!(a, b);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// The separable filters are imageproc's L∞ morphology exactly, borders included.
        #[test]
        fn morphology_equals_imageproc(m in mask_strategy(), r in 1u8..6) {
            // imageproc's "no foreground at all" distance is width + height: only a mask smaller
            // than the element sees it (never a cell window).
            let (h, w) = m.dim();
            prop_assume!(h + w > r as usize);
            let g = gray(&m);
            prop_assert_eq!(dilate(&m, r), bools(&imageproc::morphology::dilate(&g, Norm::LInf, r)));
            prop_assert_eq!(open(&m, r), bools(&imageproc::morphology::open(&g, Norm::LInf, r)));
            prop_assert_eq!(close(&m, r), bools(&imageproc::morphology::close(&g, Norm::LInf, r)));
        }

        /// Labels and their numbering are imageproc's 8-connected labelling exactly.
        #[test]
        fn components_equal_imageproc(m in mask_strategy()) {
            // imageproc's union-find overflows on some tiny dense masks (it panics): those are
            // not comparable.
            let g = gray(&m);
            let theirs = std::panic::catch_unwind(|| {
                connected_components(&g, Connectivity::Eight, Luma([0u8]))
            });
            prop_assume!(theirs.is_ok());
            let theirs = theirs.unwrap();
            let (lab, n) = components(&m);
            prop_assert_eq!(lab.as_slice().unwrap(), theirs.as_raw().as_slice());
            prop_assert_eq!(n as u32, theirs.as_raw().iter().copied().max().unwrap_or(0));
        }

        /// The runs are the maximal runs of set pixels, in raster order, each labelled as
        /// `components` labels its pixels.
        #[test]
        fn runs_are_the_mask_s_maximal_runs_labelled(m in mask_strategy()) {
            let (h, w) = m.dim();
            let (runs, n) = component_runs(&m);
            let (lab, n2) = components(&m);
            prop_assert_eq!(n, n2);
            let mut covered = Array2::from_elem((h, w), false);
            let mut last = (0u32, 0u32);
            for r in &runs {
                prop_assert!(r.x0 < r.x1 && (r.y as usize) < h && (r.x1 as usize) <= w);
                prop_assert!((r.y, r.x0) >= last, "raster order");
                last = (r.y, r.x1);
                let (y, x0, x1) = (r.y as usize, r.x0 as usize, r.x1 as usize);
                prop_assert!(x0 == 0 || !m[[y, x0 - 1]], "maximal on the left");
                prop_assert!(x1 == w || !m[[y, x1]], "maximal on the right");
                for x in x0..x1 {
                    prop_assert_eq!(lab[[y, x]], r.label);
                    covered[[y, x]] = true;
                }
            }
            prop_assert_eq!(covered, m);
        }
    }

    #[test]
    fn opening_removes_specks_closing_fills_holes() {
        let mut m = Array2::from_elem((12, 12), false);
        for y in 2..9 {
            for x in 2..9 {
                m[[y, x]] = true;
            }
        }
        m[[5, 5]] = false; // a hole
        m[[0, 11]] = true; // a speck
        let o = open(&m, 1);
        assert!(!o[[0, 11]]);
        let c = close(&o, 1);
        assert!(c[[5, 5]]);
        assert!(c[[2, 2]] && c[[8, 8]]);
    }

    #[test]
    fn components_are_eight_connected() {
        let mut m = Array2::from_elem((5, 5), false);
        m[[0, 0]] = true;
        m[[1, 1]] = true; // diagonal: same component
        m[[4, 4]] = true;
        let (l, n) = components(&m);
        assert_eq!(n, 2);
        assert_eq!(l[[0, 0]], l[[1, 1]]);
        assert_ne!(l[[0, 0]], l[[4, 4]]);
        assert_eq!(l[[2, 2]], 0);
    }
}
