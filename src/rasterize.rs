//! Polygon rasterisation by pixel centres (even-odd rule) onto any affine pixel grid. Pure.

use geo::Polygon;

/// Pixel coordinates (column, row) of a map point under a GDAL-order affine transform.
pub fn map_to_pixel(gt: &[f64; 6], x: f64, y: f64) -> (f64, f64) {
    let det = gt[1] * gt[5] - gt[2] * gt[4];
    let (dx, dy) = (x - gt[0], y - gt[3]);
    (
        (dx * gt[5] - dy * gt[2]) / det,
        (dy * gt[1] - dx * gt[4]) / det,
    )
}

/// Sets `target[row * width + col] = value` for every pixel whose centre lies inside the polygon
/// (holes excluded). `gt` maps pixel (column, row) to map coordinates.
pub fn fill_polygon(
    gt: &[f64; 6],
    width: usize,
    height: usize,
    poly: &Polygon<f64>,
    value: i32,
    target: &mut [i32],
) {
    for_each_span(gt, width, height, poly, |row, cols| {
        target[row * width + cols.start..row * width + cols.end].fill(value);
    });
}

/// Calls `f(row, columns)` for each run of pixels of one row of a `width` × `height` grid whose
/// centres lie inside the polygon (holes excluded), rows in order; the runs of a row do not
/// overlap and none is empty. `gt` maps pixel (column, row) to map coordinates.
pub fn for_each_span(
    gt: &[f64; 6],
    width: usize,
    height: usize,
    poly: &Polygon<f64>,
    mut f: impl FnMut(usize, std::ops::Range<usize>),
) {
    let rings: Vec<Vec<(f64, f64)>> = std::iter::once(poly.exterior())
        .chain(poly.interiors())
        .map(|ring| ring.coords().map(|c| map_to_pixel(gt, c.x, c.y)).collect())
        .collect();
    let (mut r0, mut r1) = (f64::MAX, f64::MIN);
    for ring in &rings {
        for &(_, r) in ring {
            r0 = r0.min(r);
            r1 = r1.max(r);
        }
    }
    if r0 > r1 {
        return;
    }
    let row_start = (r0 - 0.5).ceil().max(0.0) as usize;
    let row_end = ((r1 - 0.5).floor() + 1.0).clamp(0.0, height as f64) as usize;
    let mut xs: Vec<f64> = Vec::new();
    for row in row_start..row_end {
        let yc = row as f64 + 0.5;
        xs.clear();
        for ring in &rings {
            for w in ring.windows(2) {
                let ((xa, ya), (xb, yb)) = (w[0], w[1]);
                if (ya <= yc && yb > yc) || (yb <= yc && ya > yc) {
                    xs.push(xa + (yc - ya) / (yb - ya) * (xb - xa));
                }
            }
        }
        xs.sort_by(|a, b| a.total_cmp(b));
        for pair in xs.chunks_exact(2) {
            let c0 = (pair[0] - 0.5).ceil().max(0.0) as usize;
            let c1 = ((pair[1] - 0.5).ceil()).clamp(0.0, width as f64) as usize;
            if c0 < c1 {
                f(row, c0..c1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn filled_pixels_times_pixel_area_approximate_the_polygon_area(
            x in 2.0f64..20.0, y in 2.0f64..20.0, w in 3.0f64..30.0, h in 3.0f64..30.0,
        ) {
            use geo::Area;
            let gt = [0.0, 0.5, 0.0, 60.0, 0.0, -0.5];
            let poly = geo::Rect::new((x, y), (x + w, y + h)).to_polygon();
            let mut t = vec![0; 120 * 120];
            fill_polygon(&gt, 120, 120, &poly, 1, &mut t);
            let n = t.iter().filter(|v| **v == 1).count() as f64 * 0.25;
            // Within one pixel row/column along the perimeter.
            let tol = 0.5 * (2.0 * (w + h)) + 1.0;
            prop_assert!((n - poly.unsigned_area()).abs() <= tol, "{} vs {}", n, poly.unsigned_area());
        }
    }
}
