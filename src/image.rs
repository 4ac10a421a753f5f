//! Plain multi-band images on the analysis grid: what ingest reads and detection consumes.

use crate::bands::BandRole;
use crate::grid::Window;
use ndarray::{s, Array2, Array3};
use std::borrow::Cow;

/// The pixels of one cell of one date, on the grid.
#[derive(Debug, Clone)]
pub struct CellImage {
    /// The grid window that was read (cell core plus halo).
    pub window: Window,
    /// The role of each band of `bands`.
    pub roles: Vec<BandRole>,
    /// Pixel values as stored in the sources (no scaling), shape (band, row, column).
    pub bands: Array3<f32>,
    /// Whether each pixel holds data from at least one source (not nodata, not transparent).
    pub valid: Array2<bool>,
    /// Pixels a source's mask band flags (cloud masks and the like), when any source has one.
    pub flagged: Option<Array2<bool>>,
    /// Indices (into the observation's sources) of the sources that overlap the window.
    pub contributing: Vec<usize>,
}

impl CellImage {
    /// The band with a role, as a 2-D view.
    pub fn band(&self, role: BandRole) -> Option<ndarray::ArrayView2<'_, f32>> {
        let i = self.roles.iter().position(|r| *r == role)?;
        Some(self.bands.slice(s![i, .., ..]))
    }

    /// Fraction of the window's pixels that are valid.
    pub fn valid_fraction(&self) -> f64 {
        let n = self.valid.len().max(1);
        self.valid.iter().filter(|v| **v).count() as f64 / n as f64
    }

    /// The image over another window of the grid: its own pixels where the two windows overlap,
    /// no data (zero, not valid, not flagged) elsewhere. Borrowed when the window is its own.
    pub fn on_window(&self, window: &Window) -> Cow<'_, CellImage> {
        if self.window == *window {
            return Cow::Borrowed(self);
        }
        let (w, h) = (window.width, window.height);
        let mut out = CellImage {
            window: *window,
            roles: self.roles.clone(),
            bands: Array3::zeros((self.bands.dim().0, h, w)),
            valid: Array2::from_elem((h, w), false),
            flagged: self
                .flagged
                .as_ref()
                .map(|_| Array2::from_elem((h, w), false)),
            contributing: self.contributing.clone(),
        };
        let Some(common) = self.window.intersection(window) else {
            return Cow::Owned(out);
        };
        let (x0, y0) = (common.x, common.y);
        let (x1, y1) = (x0 + common.width as i64, y0 + common.height as i64);
        let to = s![
            (y0 - window.y) as usize..(y1 - window.y) as usize,
            (x0 - window.x) as usize..(x1 - window.x) as usize
        ];
        let from = s![
            (y0 - self.window.y) as usize..(y1 - self.window.y) as usize,
            (x0 - self.window.x) as usize..(x1 - self.window.x) as usize
        ];
        for (mut t, f) in out.bands.outer_iter_mut().zip(self.bands.outer_iter()) {
            t.slice_mut(to).assign(&f.slice(from));
        }
        out.valid.slice_mut(to).assign(&self.valid.slice(from));
        if let (Some(t), Some(f)) = (out.flagged.as_mut(), self.flagged.as_ref()) {
            t.slice_mut(to).assign(&f.slice(from));
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the test image lies on the grid.
    const AT: Window = Window {
        x: -3,
        y: 5,
        width: 4,
        height: 3,
    };

    fn image(window: Window, flagged: bool) -> CellImage {
        let (w, h) = (window.width, window.height);
        CellImage {
            window,
            roles: vec![BandRole::Red, BandRole::Nir],
            bands: Array3::from_shape_fn((2, h, w), |(b, y, x)| (1 + b * 1000 + y * 10 + x) as f32),
            valid: Array2::from_shape_fn((h, w), |(y, x)| (x + y) % 3 != 0),
            flagged: flagged.then(|| Array2::from_shape_fn((h, w), |(y, x)| x == y)),
            contributing: vec![2],
        }
    }

    #[test]
    fn on_its_own_window_an_image_is_borrowed() {
        let img = image(AT, true);
        assert!(matches!(img.on_window(&img.window), Cow::Borrowed(_)));
    }

    #[test]
    fn on_another_window_an_image_keeps_its_pixels_and_has_no_data_elsewhere() {
        for flagged in [false, true] {
            let img = image(AT, flagged);
            // Overlapping the image's last two columns and rows, and reaching past them.
            let win = Window {
                x: -1,
                y: 6,
                width: 5,
                height: 4,
            };
            let out = img.on_window(&win);
            assert_eq!(out.window, win);
            assert_eq!(
                (out.roles.clone(), out.contributing.clone()),
                (img.roles.clone(), img.contributing.clone())
            );
            assert_eq!(out.flagged.is_some(), flagged);
            for y in 0..4 {
                for x in 0..5 {
                    let (gx, gy) = (win.x + x as i64, win.y + y as i64);
                    let (ix, iy) = (gx - img.window.x, gy - img.window.y);
                    let inside =
                        (0..AT.width as i64).contains(&ix) && (0..AT.height as i64).contains(&iy);
                    let at = |a: &Array2<bool>| inside && a[[iy as usize, ix as usize]];
                    assert_eq!(out.valid[[y, x]], at(&img.valid), "valid at {gx},{gy}");
                    if let (Some(o), Some(f)) = (&out.flagged, &img.flagged) {
                        assert_eq!(o[[y, x]], at(f), "flagged at {gx},{gy}");
                    }
                    for b in 0..2 {
                        let want = if inside {
                            img.bands[[b, iy as usize, ix as usize]]
                        } else {
                            0.0
                        };
                        assert_eq!(out.bands[[b, y, x]], want, "band {b} at {gx},{gy}");
                    }
                }
            }
        }
        // No overlap at all: no data everywhere.
        let img = image(
            Window {
                x: 0,
                y: 0,
                width: 2,
                height: 2,
            },
            false,
        );
        let out = img.on_window(&Window {
            x: 5,
            y: 5,
            width: 3,
            height: 2,
        });
        assert!(out.valid.iter().all(|v| !v) && out.bands.iter().all(|v| *v == 0.0));
    }
}
