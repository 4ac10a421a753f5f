//! Plain multi-band images on the analysis grid: what ingest reads and detection consumes.

use crate::bands::BandRole;
use crate::grid::Window;
use ndarray::{s, Array2, Array3};

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
}
