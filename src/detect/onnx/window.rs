//! Sliding-window inference over a read window: tile placement, mirror padding and seamless
//! blending of overlapping tiles with a separable taper. Pure arithmetic; the model is a closure.

use ndarray::Array2;
use rayon::prelude::*;

/// Start offsets of tiles of edge `tile` along an axis of `len` pixels: every `tile − overlap`
/// pixels from 0, the last tile flush with the far edge (so no tile needs padding unless the
/// axis is shorter than one tile, when the single tile starts at 0).
pub fn tile_starts(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let stride = tile.saturating_sub(overlap).max(1);
    let mut starts = Vec::new();
    let mut s = 0;
    while s + tile < len {
        starts.push(s);
        s += stride;
    }
    starts.push(len - tile);
    starts
}

/// Blending weight of each position along a tile's edge: rising linearly over the first
/// `overlap` pixels, 1 in the middle, falling over the last `overlap` pixels, never zero.
///
/// Where tiles overlap, each pixel's value is the weighted mean of the tiles covering it; a
/// tile's edge (where a convolutional network sees zero padding and is least reliable) counts
/// least, and the weights change smoothly, so no seam appears.
pub fn taper(tile: usize, overlap: usize) -> Vec<f32> {
    let ramp = (overlap + 1) as f32;
    (0..tile)
        .map(|i| {
            let from_start = (i + 1) as f32 / ramp;
            let from_end = (tile - i) as f32 / ramp;
            from_start.min(from_end).min(1.0)
        })
        .collect()
}

/// Index of position `i` in an axis of `len` pixels mirrored at its ends (`… 2 1 | 0 1 2 … n−1 |
/// n−2 …`), for tiles larger than the window.
pub fn mirror(i: usize, len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    let period = 2 * (len - 1);
    let m = i % period;
    if m < len {
        m
    } else {
        period - m
    }
}

/// Runs `run_tile(y0, x0)` for every tile of a `height × width` window (tiles in parallel) and
/// blends the `tile × tile` results into one map of the window.
///
/// `run_tile` returns the tile's map; where the tile reaches past the window (a window smaller
/// than a tile) only the part inside the window is used.
pub fn blend_tiles<E, F>(
    height: usize,
    width: usize,
    tile: usize,
    overlap: usize,
    run_tile: F,
) -> Result<Array2<f32>, E>
where
    E: Send,
    F: Fn(usize, usize) -> Result<Array2<f32>, E> + Sync,
{
    let ys = tile_starts(height, tile, overlap);
    let xs = tile_starts(width, tile, overlap);
    let origins: Vec<(usize, usize)> = ys
        .iter()
        .flat_map(|y| xs.iter().map(move |x| (*y, *x)))
        .collect();
    let maps: Vec<Array2<f32>> = origins
        .par_iter()
        .map(|&(y0, x0)| run_tile(y0, x0))
        .collect::<Result<_, E>>()?;
    let w1 = taper(tile, overlap);
    let mut sum = Array2::<f32>::zeros((height, width));
    let mut weight = Array2::<f32>::zeros((height, width));
    // Accumulated in a fixed order, so the result does not depend on the number of threads.
    for (&(y0, x0), map) in origins.iter().zip(&maps) {
        let th = tile.min(height - y0).min(map.nrows());
        let tw = tile.min(width - x0).min(map.ncols());
        for ty in 0..th {
            for tx in 0..tw {
                let wgt = w1[ty] * w1[tx];
                sum[[y0 + ty, x0 + tx]] += wgt * map[[ty, tx]];
                weight[[y0 + ty, x0 + tx]] += wgt;
            }
        }
    }
    sum.zip_mut_with(&weight, |s, w| *s /= w.max(f32::MIN_POSITIVE));
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tiles_cover_the_axis_and_the_last_is_flush() {
        assert_eq!(tile_starts(100, 256, 32), vec![0]);
        assert_eq!(tile_starts(256, 256, 32), vec![0]);
        assert_eq!(tile_starts(1088, 256, 32), vec![0, 224, 448, 672, 832]);
        assert_eq!(tile_starts(130, 64, 0), vec![0, 64, 66]);
    }

    #[test]
    fn the_taper_is_symmetric_positive_and_flat_in_the_middle() {
        let t = taper(8, 3);
        assert_eq!(t, vec![0.25, 0.5, 0.75, 1.0, 1.0, 0.75, 0.5, 0.25]);
        assert!(taper(16, 0).iter().all(|w| *w == 1.0));
    }

    #[test]
    fn mirroring_reflects_at_both_ends() {
        let v: Vec<usize> = (0..9).map(|i| mirror(i, 4)).collect();
        assert_eq!(v, vec![0, 1, 2, 3, 2, 1, 0, 1, 2]);
        assert_eq!(mirror(5, 1), 0);
    }

    proptest! {
        /// A per-pixel function blended over any tiling is the function itself: blending
        /// introduces no seams and no bias.
        #[test]
        fn blending_a_pointwise_map_reproduces_it(
            h in 1usize..90, w in 1usize..90, tile in 8usize..40, overlap_frac in 0.0f64..0.5,
        ) {
            let overlap = (tile as f64 * overlap_frac) as usize;
            let f = |y: usize, x: usize| ((y * 31 + x * 17) % 23) as f32 / 23.0;
            let out = blend_tiles::<(), _>(h, w, tile, overlap, |y0, x0| {
                Ok(Array2::from_shape_fn((tile, tile), |(ty, tx)| {
                    f(mirror(y0 + ty, h), mirror(x0 + tx, w))
                }))
            }).unwrap();
            for ((y, x), v) in out.indexed_iter() {
                prop_assert!((v - f(y, x)).abs() < 1e-5, "({y}, {x}): {v} vs {}", f(y, x));
            }
        }

        /// Every pixel is covered by at least one tile.
        #[test]
        fn tiles_cover_every_pixel(len in 1usize..2000, tile in 8usize..300, overlap_frac in 0.0f64..0.5) {
            let overlap = (tile as f64 * overlap_frac) as usize;
            let starts = tile_starts(len, tile, overlap);
            let mut covered = vec![false; len];
            for s in &starts {
                for c in covered.iter_mut().skip(*s).take(tile) {
                    *c = true;
                }
            }
            prop_assert!(covered.iter().all(|c| *c));
            prop_assert!(starts.iter().all(|s| *s + tile.min(len) <= len));
        }
    }
}
