//! The analysis grid: a north-up pixel grid in one CRS, cut into cells with stable ids.
//!
//! Everything here is pure arithmetic on plain structs: no IO, no GDAL.
//! A cell's id is derived from the grid definition (CRS, origin, pixel size, cell size) and the cell's
//! row and column, so the same ground gets the same id on every run, on every machine.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An axis-aligned rectangle in map units of the grid's CRS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// Smallest x (west edge for east-positive CRSs).
    pub min_x: f64,
    /// Smallest y (south edge).
    pub min_y: f64,
    /// Largest x (east edge).
    pub max_x: f64,
    /// Largest y (north edge).
    pub max_y: f64,
}

impl Bounds {
    /// Builds bounds from two corners in any order.
    pub fn from_corners(x0: f64, y0: f64, x1: f64, y1: f64) -> Bounds {
        Bounds {
            min_x: x0.min(x1),
            min_y: y0.min(y1),
            max_x: x0.max(x1),
            max_y: y0.max(y1),
        }
    }

    /// Width in map units.
    pub fn width(&self) -> f64 {
        self.max_x - self.min_x
    }

    /// Height in map units.
    pub fn height(&self) -> f64 {
        self.max_y - self.min_y
    }

    /// The overlap of two rectangles, or `None` when they do not overlap with a positive area.
    pub fn intersection(&self, other: &Bounds) -> Option<Bounds> {
        let b = Bounds {
            min_x: self.min_x.max(other.min_x),
            min_y: self.min_y.max(other.min_y),
            max_x: self.max_x.min(other.max_x),
            max_y: self.max_y.min(other.max_y),
        };
        (b.min_x < b.max_x && b.min_y < b.max_y).then_some(b)
    }

    /// The smallest rectangle covering both.
    pub fn union(&self, other: &Bounds) -> Bounds {
        Bounds {
            min_x: self.min_x.min(other.min_x),
            min_y: self.min_y.min(other.min_y),
            max_x: self.max_x.max(other.max_x),
            max_y: self.max_y.max(other.max_y),
        }
    }

    /// Whether the point lies inside or on the edge.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        x >= self.min_x && x <= self.max_x && y >= self.min_y && y <= self.max_y
    }
}

/// A pixel window: column/row offset and size, in pixels of some raster or grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First column (may be negative when a halo reaches past the grid's origin).
    pub x: i64,
    /// First row (may be negative when a halo reaches past the grid's origin).
    pub y: i64,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

impl Window {
    /// Number of pixels in the window.
    pub fn len(&self) -> usize {
        self.width * self.height
    }

    /// Whether the window has no pixels.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// The pixels this window shares with `other`, when there are any.
    pub fn intersection(&self, other: &Window) -> Option<Window> {
        let (x0, y0) = (self.x.max(other.x), self.y.max(other.y));
        let x1 = (self.x + self.width as i64).min(other.x + other.width as i64);
        let y1 = (self.y + self.height as i64).min(other.y + other.height as i64);
        (x1 > x0 && y1 > y0).then(|| Window {
            x: x0,
            y: y0,
            width: (x1 - x0) as usize,
            height: (y1 - y0) as usize,
        })
    }
}

/// The definition of an analysis grid. Two grids with equal definitions give equal cell ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridDef {
    /// The grid's CRS as a user would write it: `EPSG:4549`, or a WKT string.
    pub crs: String,
    /// Map x of the outer (west) edge of column 0.
    pub origin_x: f64,
    /// Map y of the outer (north) edge of row 0.
    pub origin_y: f64,
    /// Pixel width in map units.
    pub pixel_width: f64,
    /// Pixel height in map units (positive: rows go south).
    pub pixel_height: f64,
    /// Cell edge length in pixels (cells at the grid's east and south edge may be smaller).
    pub cell_size: usize,
    /// Extra pixels read around each cell for neighbourhood operations, then cut away.
    pub halo: usize,
    /// Grid width in pixels.
    pub width: usize,
    /// Grid height in pixels.
    pub height: usize,
}

/// Default cell edge length in pixels.
pub const DEFAULT_CELL_SIZE: usize = 1024;
/// Default halo in pixels.
pub const DEFAULT_HALO: usize = 32;

/// One cell of a grid: its stable id and its pixel windows in grid coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Stable id, e.g. `9c1f03ab-r0002-c0005`.
    pub id: String,
    /// Cell row (0 = north).
    pub row: usize,
    /// Cell column (0 = west).
    pub col: usize,
    /// The cell's own pixels, in grid pixel coordinates.
    pub core: Window,
    /// The pixels read for the cell: the core plus the halo (may reach outside the grid).
    pub read: Window,
}

impl Cell {
    /// Offset of the core inside the read window, in pixels (column, row).
    pub fn core_offset(&self) -> (usize, usize) {
        (
            (self.core.x - self.read.x) as usize,
            (self.core.y - self.read.y) as usize,
        )
    }
}

impl GridDef {
    /// A grid over `bounds` with the given pixel size, snapped outward to whole pixels from `origin`.
    ///
    /// `origin` anchors the pixel lattice (and therefore the cell ids); when `None` the north-west
    /// corner of `bounds` snapped to a whole number of cells is used.
    pub fn covering(
        crs: &str,
        bounds: &Bounds,
        pixel_size: f64,
        cell_size: usize,
        halo: usize,
        origin: Option<(f64, f64)>,
    ) -> GridDef {
        let cell_extent = pixel_size * cell_size as f64;
        let (ox, oy) = origin.unwrap_or_else(|| {
            (
                (bounds.min_x / cell_extent).floor() * cell_extent,
                (bounds.max_y / cell_extent).ceil() * cell_extent,
            )
        });
        // Whole pixels from the origin to the far edges of the bounds.
        let x_end = ((bounds.max_x - ox) / pixel_size - 1e-9).ceil().max(0.0);
        let y_end = ((oy - bounds.min_y) / pixel_size - 1e-9).ceil().max(0.0);
        // The grid starts at the origin so that cell ids stay anchored there; cells that only
        // cover the gap between the origin and the bounds are dropped by `cells_within`.
        GridDef {
            crs: crs.to_string(),
            origin_x: ox,
            origin_y: oy,
            pixel_width: pixel_size,
            pixel_height: pixel_size,
            cell_size,
            halo,
            width: x_end as usize,
            height: y_end as usize,
        }
    }

    /// The grid's geotransform in GDAL order.
    pub fn geo_transform(&self) -> [f64; 6] {
        [
            self.origin_x,
            self.pixel_width,
            0.0,
            self.origin_y,
            0.0,
            -self.pixel_height,
        ]
    }

    /// The geotransform of a window of this grid.
    pub fn window_geo_transform(&self, w: &Window) -> [f64; 6] {
        let (x, y) = self.pixel_to_world(w.x as f64, w.y as f64);
        [x, self.pixel_width, 0.0, y, 0.0, -self.pixel_height]
    }

    /// Map bounds of the whole grid.
    pub fn bounds(&self) -> Bounds {
        self.window_bounds(&Window {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        })
    }

    /// Map bounds of a pixel window of this grid.
    pub fn window_bounds(&self, w: &Window) -> Bounds {
        let (x0, y0) = self.pixel_to_world(w.x as f64, w.y as f64);
        let (x1, y1) = self.pixel_to_world(
            (w.x + w.width as i64) as f64,
            (w.y + w.height as i64) as f64,
        );
        Bounds::from_corners(x0, y0, x1, y1)
    }

    /// Map coordinates of a (fractional) pixel position; `(0.5, 0.5)` is the centre of pixel 0,0.
    pub fn pixel_to_world(&self, col: f64, row: f64) -> (f64, f64) {
        (
            self.origin_x + col * self.pixel_width,
            self.origin_y - row * self.pixel_height,
        )
    }

    /// Fractional pixel position of a map coordinate.
    pub fn world_to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.origin_x) / self.pixel_width,
            (self.origin_y - y) / self.pixel_height,
        )
    }

    /// Area of one pixel in square map units (m² in a metric CRS).
    pub fn pixel_area(&self) -> f64 {
        self.pixel_width * self.pixel_height
    }

    /// A short hash of the definition (CRS, origin, pixel size, cell size), the prefix of every cell id.
    ///
    /// The extent is deliberately left out: growing the area keeps the ids of the cells already there.
    pub fn fingerprint(&self) -> String {
        let canonical = format!(
            "{}|{:.6}|{:.6}|{:.9}|{:.9}|{}",
            self.crs.trim(),
            self.origin_x,
            self.origin_y,
            self.pixel_width,
            self.pixel_height,
            self.cell_size
        );
        let digest = Sha256::digest(canonical.as_bytes());
        hex::encode(&digest[..4])
    }

    /// Number of cell rows and columns.
    pub fn cell_rows_cols(&self) -> (usize, usize) {
        let cs = self.cell_size.max(1);
        (self.height.div_ceil(cs), self.width.div_ceil(cs))
    }

    /// The cell at a row and column (`None` outside the grid).
    pub fn cell(&self, row: usize, col: usize) -> Option<Cell> {
        let (rows, cols) = self.cell_rows_cols();
        if row >= rows || col >= cols {
            return None;
        }
        let cs = self.cell_size;
        let x = (col * cs) as i64;
        let y = (row * cs) as i64;
        let core = Window {
            x,
            y,
            width: cs.min(self.width - col * cs),
            height: cs.min(self.height - row * cs),
        };
        let h = self.halo as i64;
        let read = Window {
            x: x - h,
            y: y - h,
            width: core.width + 2 * self.halo,
            height: core.height + 2 * self.halo,
        };
        Some(Cell {
            id: format!("{}-r{:04}-c{:04}", self.fingerprint(), row, col),
            row,
            col,
            core,
            read,
        })
    }

    /// Every cell of the grid, row by row.
    pub fn cells(&self) -> Vec<Cell> {
        let (rows, cols) = self.cell_rows_cols();
        (0..rows)
            .flat_map(|r| (0..cols).map(move |c| (r, c)))
            .filter_map(|(r, c)| self.cell(r, c))
            .collect()
    }

    /// The cells whose core overlaps `area` (map units).
    pub fn cells_within(&self, area: &Bounds) -> Vec<Cell> {
        self.cells()
            .into_iter()
            .filter(|c| self.window_bounds(&c.core).intersection(area).is_some())
            .collect()
    }

    /// Looks a cell up by its id.
    pub fn cell_by_id(&self, id: &str) -> Option<Cell> {
        let rest = id.strip_prefix(&self.fingerprint())?.strip_prefix("-r")?;
        let (row, col) = rest.split_once("-c")?;
        self.cell(row.parse().ok()?, col.parse().ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn windows_intersect_in_the_pixels_they_share() {
        let w = |x, y, width, height| Window {
            x,
            y,
            width,
            height,
        };
        let a = w(-3, 5, 4, 3);
        assert_eq!(a.intersection(&w(-1, 6, 5, 4)), Some(w(-1, 6, 2, 2)));
        assert_eq!(a.intersection(&w(-10, 0, 40, 40)), Some(a));
        assert_eq!(w(-1, 6, 5, 4).intersection(&a), Some(w(-1, 6, 2, 2)));
        // Edge to edge, apart, or empty: nothing shared.
        assert_eq!(a.intersection(&w(1, 5, 4, 3)), None);
        assert_eq!(a.intersection(&w(20, 20, 4, 3)), None);
        assert_eq!(a.intersection(&w(-2, 6, 0, 3)), None);
    }

    fn grid() -> GridDef {
        GridDef {
            crs: "EPSG:4549".into(),
            origin_x: 500_000.0,
            origin_y: 3_450_000.0,
            pixel_width: 0.5,
            pixel_height: 0.5,
            cell_size: 100,
            halo: 8,
            width: 250,
            height: 130,
        }
    }

    #[test]
    fn cells_cover_the_grid_exactly_once() {
        let g = grid();
        let cells = g.cells();
        assert_eq!(g.cell_rows_cols(), (2, 3));
        assert_eq!(cells.len(), 6);
        let px: usize = cells.iter().map(|c| c.core.len()).sum();
        assert_eq!(px, 250 * 130);
        let last = &cells[5];
        assert_eq!((last.core.width, last.core.height), (50, 30));
        assert_eq!(last.read.width, 66);
        assert_eq!(last.core_offset(), (8, 8));
    }

    #[test]
    fn ids_are_stable_and_depend_on_the_definition_not_the_extent() {
        let g = grid();
        let mut bigger = grid();
        bigger.width = 1000;
        assert_eq!(g.cell(1, 2).unwrap().id, bigger.cell(1, 2).unwrap().id);
        let mut moved = grid();
        moved.origin_x += 0.5;
        assert_ne!(g.cell(1, 2).unwrap().id, moved.cell(1, 2).unwrap().id);
        let id = g.cell(1, 2).unwrap().id;
        assert_eq!(g.cell_by_id(&id).unwrap().col, 2);
        assert!(g.cell_by_id("deadbeef-r0001-c0002").is_none());
    }

    #[test]
    fn covering_snaps_to_whole_pixels_and_cells() {
        let b = Bounds::from_corners(500_010.2, 3_449_000.0, 500_300.0, 3_449_990.1);
        let g = GridDef::covering("EPSG:4549", &b, 0.5, 100, 0, None);
        // cell extent 50 m: origin snapped to multiples of 50 m
        assert_eq!((g.origin_x, g.origin_y), (500_000.0, 3_450_000.0));
        let gb = g.bounds();
        assert!(gb.min_x <= b.min_x && gb.max_x >= b.max_x);
        assert!(gb.min_y <= b.min_y && gb.max_y >= b.max_y);
        assert!(gb.max_x - b.max_x < 0.5 && b.min_y - gb.min_y < 0.5);
        let inside = g.cells_within(&b);
        assert!(!inside.is_empty());
    }

    proptest! {
        #[test]
        fn pixel_world_round_trip(col in -1e4f64..1e5, row in -1e4f64..1e5) {
            let g = grid();
            let (x, y) = g.pixel_to_world(col, row);
            let (c2, r2) = g.world_to_pixel(x, y);
            prop_assert!((c2 - col).abs() < 1e-6 && (r2 - row).abs() < 1e-6);
        }

        #[test]
        fn every_pixel_is_in_exactly_one_cell(x in 0usize..250, y in 0usize..130) {
            let g = grid();
            let n = g.cells().iter().filter(|c| {
                let w = c.core;
                (x as i64) >= w.x && (x as i64) < w.x + w.width as i64
                    && (y as i64) >= w.y && (y as i64) < w.y + w.height as i64
            }).count();
            prop_assert_eq!(n, 1);
        }
    }
}
