//! Change detection for one grid cell: arrays in, change score, mask and regions out. No IO.
//!
//! The spectral detector runs, per cell: cloud and shadow masks → co-registration (sub-pixel
//! shift) → relative radiometric normalisation (IR-MAD invariant pixels, per-band mapping) →
//! standardised change-vector magnitude and its shift-tolerant twin → automatic threshold (Otsu
//! and a chi-square floor) → land-cover cues of both dates and the transition of every changed
//! pixel → morphology → connected components with a minimum mapping unit per transition.
//!
//! Any other detector (a learned model, a height-difference detector) implements [`Detector`]
//! and returns the same [`CellResult`]; nothing downstream knows which detector ran.

pub mod build;
pub mod coreg;
pub mod cover;
pub mod irmad;
pub mod linalg;
pub mod morphology;
pub mod normalize;
pub mod onnx;
pub mod order;
pub mod params;
mod scratch;
pub mod threshold;

use crate::bands::BandRole;
use crate::grid::Cell;
use crate::image::CellImage;
pub use build::{build_detector, BuildError, CombinePolicy, DetectorConfig, DetectorKind};
use cover::{classify, Cover, Spectrum, Transition};
use ndarray::{s, Array2, Array3, Axis};
pub use params::DetectParams;
use serde::Serialize;

/// A detection failure for one cell.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The two dates lack the bands detection needs.
    #[error("cell {cell}: {detail}")]
    Bands {
        /// The cell.
        cell: String,
        /// Which bands are missing.
        detail: String,
    },
    /// The inputs do not fit together.
    #[error("cell {cell}: {detail}")]
    Input {
        /// The cell.
        cell: String,
        /// What does not fit.
        detail: String,
    },
    /// A learned model failed on the cell.
    #[error("cell {cell}: {detail}")]
    Model {
        /// The cell.
        cell: String,
        /// What failed, naming the model.
        detail: String,
    },
}

/// What a detector gets for one cell: both dates on the same grid window (core plus halo).
#[derive(Debug, Clone, Copy)]
pub struct CellInput<'a> {
    /// The cell's id (for messages).
    pub cell_id: &'a str,
    /// The before date.
    pub before: &'a CellImage,
    /// The after date.
    pub after: &'a CellImage,
    /// Offset of the cell's core inside the window (columns, rows).
    pub core_offset: (usize, usize),
    /// Size of the core (columns, rows).
    pub core_size: (usize, usize),
    /// Area of one pixel in m².
    pub pixel_area_m2: f64,
}

/// Per-region statistics over a cell's core; additive, so pieces of one region in several cells
/// can be summed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionStats {
    /// The region's transition (the majority of its pixels over the whole read window).
    pub transition: Transition,
    /// Pixels of the region in the core.
    pub pixels: u64,
    /// Pixels of each transition among them (indexed like `Transition::ALL`).
    pub transition_pixels: [u64; 9],
    /// Pixels of each before cover (indexed by `Cover as usize`).
    pub before_cover: [u64; 7],
    /// Pixels of each after cover.
    pub after_cover: [u64; 7],
    /// Sum of the change score.
    pub score_sum: f64,
    /// Largest change score.
    pub score_max: f32,
    /// Sum of the IR-MAD chi-square statistic.
    pub chi2_sum: f64,
    /// Pixels in a 2-pixel ring around the region (and the region) …
    pub ring_pixels: u64,
    /// … of which observed on both dates.
    pub ring_observed: u64,
    /// Pixels where two combined detectors agreed (`None` when only one detector ran).
    pub agree_pixels: Option<u64>,
}

impl RegionStats {
    /// Adds another piece of the same region.
    pub fn absorb(&mut self, o: &RegionStats) {
        self.pixels += o.pixels;
        for i in 0..9 {
            self.transition_pixels[i] += o.transition_pixels[i];
        }
        for i in 0..7 {
            self.before_cover[i] += o.before_cover[i];
            self.after_cover[i] += o.after_cover[i];
        }
        self.score_sum += o.score_sum;
        self.score_max = self.score_max.max(o.score_max);
        self.chi2_sum += o.chi2_sum;
        self.ring_pixels += o.ring_pixels;
        self.ring_observed += o.ring_observed;
        self.agree_pixels = match (self.agree_pixels, o.agree_pixels) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        // The transition of a merged region is its pixel majority.
        let (best, _) = self
            .transition_pixels
            .iter()
            .enumerate()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
            .unwrap_or((0, &0));
        if self.transition_pixels[best] > 0 {
            self.transition = Transition::ALL[best];
        }
    }

    /// Mean change score.
    pub fn mean_score(&self) -> f64 {
        self.score_sum / self.pixels.max(1) as f64
    }

    /// Fraction of the region's pixels whose transition is the region's.
    pub fn purity(&self) -> f64 {
        let idx = Transition::ALL
            .iter()
            .position(|t| *t == self.transition)
            .unwrap_or(0);
        let total: u64 = self.transition_pixels.iter().sum();
        if total == 0 {
            1.0
        } else {
            self.transition_pixels[idx] as f64 / total as f64
        }
    }

    /// Fraction of the region and its surroundings observed on both dates.
    pub fn valid_fraction(&self) -> f64 {
        self.ring_observed as f64 / self.ring_pixels.max(1) as f64
    }

    /// The most frequent cover before and after.
    pub fn covers(&self) -> (Cover, Cover) {
        let pick = |c: &[u64; 7]| {
            let i = c
                .iter()
                .enumerate()
                .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
                .map(|(i, _)| i)
                .unwrap_or(6);
            COVERS[i]
        };
        (pick(&self.before_cover), pick(&self.after_cover))
    }

    /// Confidence in 0–1: how far above the threshold the region's score is, how pure its
    /// transition, how completely it was observed, and how large it is against the mapping unit.
    pub fn confidence(&self, threshold: f32, min_area_px: f64) -> f64 {
        let margin = (self.mean_score() / threshold.max(1e-6) as f64 - 1.0).max(0.0);
        let strength = 1.0 - (-1.5 * margin).exp();
        let size = (self.pixels as f64 / (2.0 * min_area_px.max(1.0)))
            .min(1.0)
            .sqrt();
        // With two detectors, agreement counts: a region only one of them saw is half as sure.
        let agreement = self.agree_pixels.map_or(1.0, |a| {
            0.5 + 0.5 * (a as f64 / self.pixels.max(1) as f64).min(1.0)
        });
        let c = strength
            * self.purity()
            * self.valid_fraction().sqrt()
            * (0.5 + 0.5 * size)
            * agreement;
        (c * 1000.0).round() / 1000.0
    }
}

const COVERS: [Cover; 7] = [
    Cover::Vegetation,
    Cover::DryVegetation,
    Cover::Bare,
    Cover::Built,
    Cover::Water,
    Cover::Cloud,
    Cover::Unknown,
];

/// Whole-cell numbers, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CellStats {
    /// Core pixels observed on both dates.
    pub observed_px: u64,
    /// Core pixels not observed (no data on a date, cloud, shadow).
    pub unobserved_px: u64,
    /// …of which cloud or haze.
    pub cloud_px: u64,
    /// …of which cloud shadow.
    pub shadow_px: u64,
    /// Core pixels of land-use change (mask = 1).
    pub changed_px: u64,
    /// Core pixels of vegetation-cycle change.
    pub cycle_px: u64,
    /// The threshold used.
    pub threshold: f32,
    /// Otsu's threshold, when computable.
    pub otsu: Option<f32>,
    /// The chi-square floor.
    pub chi2_floor: f32,
    /// Normalisation method actually used.
    pub normalization: String,
    /// Invariant pixels found by IR-MAD (sampled).
    pub invariant_px: usize,
    /// Estimated shift of the after image (dx, dy, peak correlation), when estimated.
    pub shift: Option<(f32, f32, f32)>,
    /// Whether the shift was removed.
    pub shift_applied: bool,
    /// Robust standard deviation of the normalised difference, per band.
    pub sigma: Vec<f32>,
    /// The bands compared.
    pub bands: Vec<BandRole>,
}

/// What a detector returns for one cell; every array covers the cell's core.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// Change score; NaN where unobserved.
    pub score: Array2<f32>,
    /// 0 no change, 1 land-use change, 255 unobserved.
    pub mask: Array2<u8>,
    /// Region labels: 0 none, k = `regions[k - 1]`.
    pub labels: Array2<u32>,
    /// Why a pixel is unobserved: 0 observed, 1 no data on a date, 2 cloud or haze, 3 cloud
    /// shadow (see the `UNOBSERVED_*` constants).
    pub unobserved: Array2<u8>,
    /// Region statistics.
    pub regions: Vec<RegionStats>,
    /// Whole-cell numbers.
    pub stats: CellStats,
    /// Diagnostic layers over the core, when `debug_layers` is on.
    pub layers: Option<DebugLayers>,
}

/// Per-pixel diagnostics of the spectral detector (written as `debug_layers.tif`).
#[derive(Debug, Clone)]
pub struct DebugLayers {
    /// Why a pixel is unobserved: 0 observed, 1 no data, 2 cloud or haze, 3 cloud shadow.
    pub unobserved: Array2<u8>,
    /// Before cover (`Cover as u8`, 255 where not classified).
    pub cover_before: Array2<u8>,
    /// After cover.
    pub cover_after: Array2<u8>,
    /// Transition of changed pixels (`Transition as u8`, 255 none).
    pub transition: Array2<u8>,
}

/// Pixels kept around the part of a cell both dates observe when [`detect_cropped`] runs the
/// detector there; a reader that reads only the part of a window its imagery covers keeps as
/// many around it (`CellReader::read_covered`), so that the crop is its image as read.
pub const CROP_MARGIN: usize = 16;

/// The largest share of a cell's window that [`detect_cropped`] crops to; a crop covering more
/// of it saves too little, and the detector runs on the whole window. A reader that reads only
/// the covered part (`CellReader::read_covered`) reads the whole window past this share too, so
/// that detection never has to grow what was read back to the whole window.
pub const CROP_MAX_SHARE: f64 = 0.85;

/// Runs a detector on the part of a cell's window where both dates have data (plus a margin), and
/// returns the result over the whole core as if it had run on the whole window.
///
/// A cell on the edge of a scene is mostly no data (a 5000² scene on a grid of 1024² cells: a third
/// of the window pixels); detection there costs as much as a full cell for nothing. Pixels outside
/// the crop are no data on a date, reported exactly as the detector reports no data. The margin
/// keeps every neighbourhood operation (morphology, rings around regions, the shift-tolerant
/// score, co-registration edges) seeing the same pixels; only cell-wide samples (normalisation,
/// threshold) are drawn from the cropped window.
///
/// Either date's image may cover only part of the cell's read window (its `window` says which):
/// the rest of the window is no data on that date, as if it had been read as such.
pub fn detect_cropped(
    detector: &dyn Detector,
    cell: &Cell,
    before: &CellImage,
    after: &CellImage,
    pixel_area_m2: f64,
) -> Result<CellResult, DetectError> {
    let read = cell.read;
    let (h, w) = (read.height, read.width);
    // Each image lies inside the window, its arrays the size of its own window.
    let fits = |img: &CellImage| {
        let (iw, ih) = (img.window.width, img.window.height);
        img.window.intersection(&read) == Some(img.window)
            && img.valid.dim() == (ih, iw)
            && img.bands.dim().1 == ih
            && img.bands.dim().2 == iw
    };
    if !fits(before) || !fits(after) {
        return Err(DetectError::Input {
            cell: cell.id.clone(),
            detail: format!(
                "the imagery read ({:?} and {:?}) does not fit the cell's window {:?}",
                before.window, after.window, read
            ),
        });
    }
    let whole = || {
        let (b, a) = (before.on_window(&read), after.on_window(&read));
        detector.detect(&CellInput {
            cell_id: &cell.id,
            before: &b,
            after: &a,
            core_offset: cell.core_offset(),
            core_size: (cell.core.width, cell.core.height),
            pixel_area_m2,
        })
    };
    // Per row of the part both images hold, the first and last pixel valid on both dates,
    // searched from either end (a row observed to its ends is done at once).
    let (mut y0, mut y1, mut x0, mut x1) = (usize::MAX, 0, usize::MAX, 0);
    let (vb, va) = (flat(&before.valid), flat(&after.valid));
    // Index in an image of the grid's pixel (x, y).
    let at = |img: &CellImage, x: i64, y: i64| {
        (y - img.window.y) as usize * img.window.width + (x - img.window.x) as usize
    };
    if let Some(c) = before.window.intersection(&after.window) {
        let ix0 = (c.x - read.x) as usize;
        for gy in c.y..c.y + c.height as i64 {
            let (sb, sa) = (at(before, c.x, gy), at(after, c.x, gy));
            let (rb, ra) = (&vb[sb..sb + c.width], &va[sa..sa + c.width]);
            let both = |x: &usize| rb[*x] && ra[*x];
            if let Some(first) = (0..c.width).find(both) {
                let last = (first..c.width).rev().find(both).unwrap_or(first);
                let y = (gy - read.y) as usize;
                y0 = y0.min(y);
                y1 = y + 1;
                x0 = x0.min(ix0 + first);
                x1 = x1.max(ix0 + last + 1);
            }
        }
    }
    if y0 == usize::MAX {
        return whole();
    }
    let (y0, x0) = (
        y0.saturating_sub(CROP_MARGIN),
        x0.saturating_sub(CROP_MARGIN),
    );
    let (y1, x1) = ((y1 + CROP_MARGIN).min(h), (x1 + CROP_MARGIN).min(w));
    // The core, clipped to the crop.
    let (cx0, cy0) = cell.core_offset();
    let (cw, ch) = (cell.core.width, cell.core.height);
    let (kx0, ky0) = (cx0.max(x0), cy0.max(y0));
    let (kx1, ky1) = ((cx0 + cw).min(x1), (cy0 + ch).min(y1));
    let worth_it = ((y1 - y0) * (x1 - x0)) as f64 <= CROP_MAX_SHARE * (h * w) as f64;
    if !worth_it || kx1 <= kx0 || ky1 <= ky0 {
        return whole();
    }
    let crop = crate::grid::Window {
        x: read.x + x0 as i64,
        y: read.y + y0 as i64,
        width: x1 - x0,
        height: y1 - y0,
    };
    // Read as the crop already when the reader kept to the covered part: no copy.
    let (before, after) = (before.on_window(&crop), after.on_window(&crop));
    let inner = CellInput {
        cell_id: &cell.id,
        before: &before,
        after: &after,
        core_offset: (kx0 - x0, ky0 - y0),
        core_size: (kx1 - kx0, ky1 - ky0),
        pixel_area_m2,
    };
    let r = detector.detect(&inner)?;
    // Back onto the whole core: everything outside the crop is no data.
    let (oy, ox) = (ky0 - cy0, kx0 - cx0);
    let (ih, iw) = (ky1 - ky0, kx1 - kx0);
    fn embed<T: Clone>(
        a: &Array2<T>,
        fill: T,
        (ch, cw): (usize, usize),
        (oy, ox): (usize, usize),
    ) -> Array2<T> {
        let mut out = Array2::from_elem((ch, cw), fill);
        let (ih, iw) = a.dim();
        out.slice_mut(s![oy..oy + ih, ox..ox + iw]).assign(a);
        out
    }
    let outside = (cw * ch - iw * ih) as u64;
    let mut stats = r.stats;
    stats.unobserved_px += outside;
    Ok(CellResult {
        score: embed(&r.score, f32::NAN, (ch, cw), (oy, ox)),
        mask: embed(&r.mask, MASK_UNOBSERVED, (ch, cw), (oy, ox)),
        labels: embed(&r.labels, 0, (ch, cw), (oy, ox)),
        unobserved: embed(&r.unobserved, UNOBSERVED_NO_DATA, (ch, cw), (oy, ox)),
        regions: r.regions,
        stats,
        layers: r.layers.map(|l| DebugLayers {
            unobserved: embed(&l.unobserved, UNOBSERVED_NO_DATA, (ch, cw), (oy, ox)),
            cover_before: embed(&l.cover_before, Cover::Unknown as u8, (ch, cw), (oy, ox)),
            cover_after: embed(&l.cover_after, Cover::Unknown as u8, (ch, cw), (oy, ox)),
            transition: embed(&l.transition, u8::MAX, (ch, cw), (oy, ox)),
        }),
    })
}

/// Unobserved reason: observed.
pub const UNOBSERVED_NO: u8 = 0;
/// Unobserved reason: no data on one of the dates (outside the image, nodata, transparent).
pub const UNOBSERVED_NO_DATA: u8 = 1;
/// Unobserved reason: cloud or haze.
pub const UNOBSERVED_CLOUD: u8 = 2;
/// Unobserved reason: cloud shadow.
pub const UNOBSERVED_SHADOW: u8 = 3;

/// Mask value for "no change".
pub const MASK_NO_CHANGE: u8 = 0;
/// Mask value for "change".
pub const MASK_CHANGE: u8 = 1;
/// Mask value for "not observed".
pub const MASK_UNOBSERVED: u8 = 255;

/// A change detector: both dates of a cell in, score, mask and regions out.
pub trait Detector: Send + Sync {
    /// A short name for summaries and evidence (`spectral`, `onnx:<model>`).
    fn name(&self) -> String;
    /// Detects change in one cell.
    fn detect(&self, input: &CellInput<'_>) -> Result<CellResult, DetectError>;

    /// Checks, before any work, that the two dates have the bands the detector needs.
    fn check_bands(&self, before: &[BandRole], after: &[BandRole]) -> Result<(), String> {
        let _ = (before, after);
        Ok(())
    }

    /// What evidence manifests record about the detector: at least `kind`; a learned detector
    /// adds its model's name, version, licence, training data and the model file's SHA-256.
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": self.name() })
    }

    /// The ground pixel size in metres the detector expects the grid to have, if any (a learned
    /// model trained at one resolution). The pipeline reads imagery at it unless the
    /// configuration pins `[grid] pixel_size`.
    fn pixel_size_m(&self) -> Option<f64> {
        None
    }

    /// What the change score written to `change_score.tif` means.
    fn score_description(&self) -> String {
        "standardised change magnitude".to_string()
    }
}

/// The classical spectral detector.
#[derive(Debug, Clone, Default)]
pub struct SpectralDetector {
    /// Its parameters.
    pub params: DetectParams,
}

/// The bands both dates share, in the order detection uses: blue, green, red, then NIR.
fn shared_bands(input: &CellInput<'_>) -> Result<Vec<(BandRole, usize, usize)>, DetectError> {
    let mut out = Vec::new();
    for role in [
        BandRole::Blue,
        BandRole::Green,
        BandRole::Red,
        BandRole::Nir,
    ] {
        let b = input.before.roles.iter().position(|r| *r == role);
        let a = input.after.roles.iter().position(|r| *r == role);
        match (b, a) {
            (Some(b), Some(a)) => out.push((role, b, a)),
            _ if role == BandRole::Nir => {}
            _ => {
                return Err(DetectError::Bands {
                    cell: input.cell_id.to_string(),
                    detail: format!(
                        "both dates need a {role} band (before has {:?}, after has {:?}); name the bands with --bands-before/--bands-after",
                        input.before.roles.iter().map(|r| r.name()).collect::<Vec<_>>(),
                        input.after.roles.iter().map(|r| r.name()).collect::<Vec<_>>()
                    ),
                })
            }
        }
    }
    Ok(out)
}

fn median(v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    order::ranked(v, &[mid]).0[0]
}

fn spectrum(bands: &Array3<f32>, nir: bool, y: usize, x: usize) -> Spectrum {
    Spectrum {
        blue: bands[[0, y, x]],
        green: bands[[1, y, x]],
        red: bands[[2, y, x]],
        nir: nir.then(|| bands[[3, y, x]]),
    }
}

impl Detector for SpectralDetector {
    fn name(&self) -> String {
        "spectral".to_string()
    }

    fn check_bands(&self, before: &[BandRole], after: &[BandRole]) -> Result<(), String> {
        for role in [BandRole::Blue, BandRole::Green, BandRole::Red] {
            for (date, roles) in [("before", before), ("after", after)] {
                if !roles.contains(&role) {
                    let known: Vec<&str> = roles.iter().map(|r| r.name()).collect();
                    return Err(format!(
                        "the {date} imagery has no {role} band ({}); the spectral detector needs blue, green and red on both dates: name the bands with --bands-{date} (e.g. blue,green,red,nir), [imagery] bands_{date} in the configuration, or a sidecar",
                        if known.is_empty() {
                            "no band's role could be told from the files: they have no band descriptions or colour interpretation".to_string()
                        } else {
                            format!("its bands are {}", known.join(","))
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    fn detect(&self, input: &CellInput<'_>) -> Result<CellResult, DetectError> {
        self.detect_with(input, None)
    }
}

/// How an external change mask (another detector's) enters the spectral detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Use only the external mask (a learned detector alone).
    Replace,
    /// A pixel changed only where both detectors say so.
    Both,
    /// A pixel changed where either detector says so.
    Either,
}

/// Another detector's opinion on a cell's read window, for [`SpectralDetector::detect_with`].
#[derive(Debug, Clone)]
pub struct GivenChange {
    /// Its change score over the whole read window (e.g. a probability).
    pub score: Array2<f32>,
    /// Its threshold on that score.
    pub threshold: f32,
    /// How it combines with the spectral detector's own change pixels.
    pub combine: Combine,
}

impl SpectralDetector {
    /// Runs the spectral detector, optionally combining its change pixels with another
    /// detector's. Covers, transitions, clouds, morphology and regions are always the spectral
    /// detector's own, so every detector yields the same kind of result.
    pub fn detect_with<'a>(
        &self,
        input: &CellInput<'a>,
        given: Option<&GivenChange>,
    ) -> Result<CellResult, DetectError> {
        let p = &self.params;
        let mut stage = Stages::new(input.cell_id);
        let shared = shared_bands(input)?;
        let nb = shared.len();
        let has_nir = nb == 4;
        let (h, w) = input.before.valid.dim();
        if input.after.valid.dim() != (h, w) {
            return Err(DetectError::Input {
                cell: input.cell_id.to_string(),
                detail: "the two dates were read onto different windows".into(),
            });
        }
        // The shared bands of each date in role order: borrowed when the image already is exactly
        // that (the usual case), copied otherwise.
        let pick = |img: &'a CellImage,
                    which: fn(&(BandRole, usize, usize)) -> usize|
         -> std::borrow::Cow<'a, Array3<f32>> {
            let as_is = img.bands.dim().0 == nb
                && img.bands.is_standard_layout()
                && shared.iter().enumerate().all(|(k, s)| which(s) == k);
            if as_is {
                return std::borrow::Cow::Borrowed(&img.bands);
            }
            let mut out = Array3::<f32>::zeros((nb, h, w));
            for (k, s) in shared.iter().enumerate() {
                out.index_axis_mut(Axis(0), k)
                    .assign(&img.bands.index_axis(Axis(0), which(s)));
            }
            std::borrow::Cow::Owned(out)
        };
        let before = pick(input.before, |s| s.1);
        let mut after = pick(input.after, |s| s.2);
        let valid_and_unflagged = |img: &CellImage| -> Array2<bool> {
            let valid = flat(&img.valid);
            match img.flagged.as_ref().map(flat) {
                Some(f) => all_of(h, w, [&valid, &f], [false, true]),
                None => all_of(h, w, [&valid], [false]),
            }
        };
        let mut valid_after = valid_and_unflagged(input.after);
        let valid_before = valid_and_unflagged(input.before);

        stage.mark("prepare");
        // Cloud cores of each date, judged against the date's own median brightness.
        let brightness = |b: &Array3<f32>, valid: &Array2<bool>| -> f32 {
            let (b0, b1, b2) = (band_slice(b, 0), band_slice(b, 1), band_slice(b, 2));
            let valid = flat(valid);
            // The median of the sums, divided by three: dividing by a positive number rounds
            // monotonically, so it is the median of the divided sums, bit for bit, without a
            // division per pixel.
            let mut v: Vec<f32> =
                Vec::with_capacity(h.div_ceil(BRIGHTNESS_STEP) * w.div_ceil(BRIGHTNESS_STEP));
            for y in (0..h).step_by(BRIGHTNESS_STEP) {
                for i in (y * w..(y + 1) * w).step_by(BRIGHTNESS_STEP) {
                    if valid[i] {
                        v.push(b0[i] + b1[i] + b2[i]);
                    }
                }
            }
            median(v) / 3.0
        };
        let cloud_core = |b: &Array3<f32>, valid: &Array2<bool>, med: f32| -> Array2<bool> {
            let (b0, b1, b2) = (band_slice(b, 0), band_slice(b, 1), band_slice(b, 2));
            let valid = flat(valid);
            let bright = p.cover.cloud_brightness * 3.0 * med;
            // Most pixels fail the brightness test: it is one branch-free pass (which vectorises),
            // and only the bright pixels are classified.
            let mut core: Vec<bool> = valid
                .iter()
                .zip(b0.iter().zip(b1).zip(b2))
                .map(|(v, ((x0, x1), x2))| *v & (x0 + x1 + x2 > bright))
                .collect();
            let mut i = next_nonzero(&core, 0);
            while i < core.len() {
                let (y, x) = (i / w, i % w);
                core[i] = classify(&spectrum(b, has_nir, y, x), med, &p.cover) == Cover::Cloud
                    && has_nir_brightness(b, has_nir, y, x);
                i = next_nonzero(&core, i + 1);
            }
            Array2::from_shape_vec((h, w), core)
                .unwrap_or_else(|_| Array2::from_elem((h, w), false))
        };
        let med_b = brightness(&before, &valid_before);
        let med_a_raw = brightness(&after, &valid_after);
        let cloud_b = cloud_core(&before, &valid_before, med_b);
        let cloud_a = cloud_core(&after, &valid_after, med_a_raw);

        stage.mark("clouds");
        // Co-registration on the edges of both dates.
        let clear_of_both = |valid_after: &Array2<bool>| -> Array2<bool> {
            let (vb, va) = (flat(&valid_before), flat(valid_after));
            let (cb, ca) = (flat(&cloud_b), flat(&cloud_a));
            all_of(h, w, [&vb, &va, &cb, &ca], [false, false, true, true])
        };
        let both_clear = clear_of_both(&valid_after);
        let mut stats = CellStats {
            bands: shared.iter().map(|s| s.0).collect(),
            ..Default::default()
        };
        if p.coregister && p.max_shift_px > 0 {
            // The brightness (first three bands summed) and its edges are made a row at a time
            // as the correlation reaches them.
            if let Some(sh) = coreg::estimate_shift(&before, &after, &both_clear, p.max_shift_px) {
                stats.shift = Some((sh.dx, sh.dy, sh.peak));
                let big = sh.dx.abs() >= 0.25 || sh.dy.abs() >= 0.25;
                // A peak on the rim of the search window is no estimate; a weak peak barely above
                // the unshifted correlation is noise.
                let inside = sh.dx.abs() < p.max_shift_px as f32 - 0.5
                    && sh.dy.abs() < p.max_shift_px as f32 - 0.5;
                if big && inside && sh.peak > 0.15 && sh.peak > sh.at_zero + 0.02 {
                    let (shifted, ok) = coreg::apply_shift(&after, &valid_after, sh.dx, sh.dy);
                    after = std::borrow::Cow::Owned(shifted);
                    valid_after = ok;
                    stats.shift_applied = true;
                }
            }
        }
        // Observed by both dates, clear of cloud cores (again when the after date moved).
        let observed0 = if stats.shift_applied {
            clear_of_both(&valid_after)
        } else {
            both_clear
        };

        stage.mark("coregistration");
        // Radiometric normalisation from a sample of observed pixels.
        let n_obs = count_set(&observed0);
        let stride = ((n_obs as f64 / 20_000.0).sqrt().ceil() as usize).max(1);
        let mut sb: Vec<Vec<f32>> = vec![Vec::new(); nb];
        let mut sa: Vec<Vec<f32>> = vec![Vec::new(); nb];
        let mut sample_at: Vec<(usize, usize)> = Vec::new();
        for y in (0..h).step_by(stride) {
            for x in (0..w).step_by(stride) {
                if observed0[[y, x]] {
                    sample_at.push((y, x));
                    for k in 0..nb {
                        sb[k].push(before[[k, y, x]]);
                        sa[k].push(after[[k, y, x]]);
                    }
                }
            }
        }
        let norm = normalize::fit(
            &sb,
            &sa,
            p.normalization,
            p.min_invariant_pixels.min(sb[0].len() / 10 + 1),
        );
        stats.normalization = norm.method.to_string();
        stats.invariant_px = norm.invariant_pixels;
        let irmad = norm.irmad.clone();
        // Robust spread of the normalised difference per band (`diff(k, i)`: band `k` at sample
        // `i`), over the invariant pixels when IR-MAD found enough (a tile where most of the
        // ground changed would otherwise inflate it).
        let use_inv = count_set_slice(&norm.invariant) >= 500;
        let spread = |diff: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
            (0..nb)
                .map(|k| {
                    let d: Vec<f32> = (0..sample_at.len())
                        .filter(|i| !use_inv || norm.invariant[*i])
                        .map(|i| diff(k, i))
                        .collect();
                    let m = median(d.clone());
                    let mad = median(d.iter().map(|v| (v - m).abs()).collect());
                    (1.4826 * mad).max(1e-3 * (1.0 + m.abs()))
                })
                .collect()
        };
        // Clouds and haze brighten every band by about the same amount, near infrared included
        // (a new roof on vegetation lowers the near infrared); cloud shadows darken every band
        // while keeping the spectral shape. Both are large: smaller patches are left to detection.
        let haze_delta = 0.5 * med_b;
        let shadow_cos = 20f32.to_radians().cos();
        let obs0 = flat(&observed0);
        let mapped_cube = |v: Vec<f32>| {
            Array3::from_shape_vec((nb, h, w), v).map_err(|e| DetectError::Input {
                cell: input.cell_id.to_string(),
                detail: format!("normalised bands: {e}"),
            })
        };
        let one_sweep = p.smooth_px == 0
            && (nb == 3 || nb == 4)
            && before.is_standard_layout()
            && after.is_standard_layout();
        let (after_n, smoothed, sigma, (cl, sh, dk), unmasked_score) = if one_sweep {
            // The score compares the dates as they are: the spread comes from the samples (the
            // after value mapped as the whole band will be), and one sweep maps the after bands,
            // tests haze and shadow and scores every pixel.
            let sigma = spread(&|k, i| norm.bands[k].apply(sa[k][i]) - sb[k][i]);
            stage.mark("normalisation");
            let inv_sigma: Vec<f32> = sigma.iter().map(|s| 1.0 / s).collect();
            let mappers: Vec<normalize::Mapper<'_>> = (0..nb)
                .map(|k| {
                    // A table over the sampled range and a quarter of it either side; values
                    // beyond (a cloud the sample left out) are searched, with the same result.
                    let (lo, hi) = sa[k]
                        .iter()
                        .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
                    let margin = (hi - lo).max(0.0) / 4.0;
                    norm.bands[k].mapper(lo - margin, hi + margin, h * w)
                })
                .collect();
            let rows = sweep_rows(w, nb);
            let (b, a, m) = (&*before, &*after, &mappers);
            let sweep = match nb {
                3 => map_haze_score::<3>(b, a, m, &obs0, haze_delta, shadow_cos, &inv_sigma, rows),
                _ => map_haze_score::<4>(b, a, m, &obs0, haze_delta, shadow_cos, &inv_sigma, rows),
            };
            let after_n = mapped_cube(sweep.0)?;
            stage.mark("map_haze_score");
            (
                after_n,
                None,
                sigma,
                (sweep.1, sweep.2, sweep.3),
                Some(sweep.4),
            )
        } else {
            // Mapped from the after bands into a new array (no copy of them to map in place).
            let mut mapped: Vec<f32> = Vec::with_capacity(nb * h * w);
            for k in 0..nb {
                let m = &norm.bands[k];
                match after.index_axis(Axis(0), k).as_slice() {
                    Some(s) => m.apply_all_into(s, &mut mapped),
                    None => mapped.extend(after.index_axis(Axis(0), k).iter().map(|v| m.apply(*v))),
                }
            }
            let after_n = mapped_cube(mapped)?;
            stage.mark("normalisation");
            // Optional smoothing of both dates (box of side 2r + 1 over valid pixels): on very
            // high resolution imagery, texture and a pixel of noise otherwise dominate the
            // difference.
            let smoothed = (p.smooth_px > 0).then(|| {
                (
                    box_mean(&before, &observed0, p.smooth_px),
                    box_mean(&after_n, &observed0, p.smooth_px),
                )
            });
            let (bsm, asm) = match &smoothed {
                Some((b, a)) => (b, a),
                None => (&*before, &after_n),
            };
            let sigma = spread(&|k, i| {
                let (y, x) = sample_at[i];
                asm[[k, y, x]] - bsm[[k, y, x]]
            });
            stage.mark("sigma");
            let inv: Vec<f32> = sigma.iter().map(|s| 1.0 / s).collect();
            let hs = match nb {
                3 => haze_and_shadow::<3>(&before, &after_n, &obs0, haze_delta, shadow_cos, &inv),
                _ => haze_and_shadow::<4>(&before, &after_n, &obs0, haze_delta, shadow_cos, &inv),
            };
            (after_n, smoothed, sigma, hs, None)
        };
        let (before_s, after_s) = match &smoothed {
            Some((b, a)) => (b, a),
            None => (&*before, &after_n),
        };
        stats.sigma = sigma.clone();
        let (mut cloud, shadow, dark) = {
            let mask = |v: Vec<bool>| {
                Array2::from_shape_vec((h, w), v)
                    .unwrap_or_else(|_| Array2::from_elem((h, w), false))
            };
            (mask(cl), mask(sh), mask(dk))
        };
        cloud.zip_mut_with(&cloud_a, |c, a| *c |= *a);
        cloud.zip_mut_with(&cloud_b, |c, b| *c |= *b);
        // Size is judged on clouds and shadows together: a shadow's rim can read as haze of the
        // before date and split it into pieces that are each too small.
        let min_px = (p.cloud_min_area_m2 / input.pixel_area_m2).ceil() as u64;
        let shadow = if any_set(&shadow) {
            grow_shadow(&shadow, &dark)
        } else {
            shadow
        };
        let (cloud, shadow) = if any_set(&cloud) || any_set(&shadow) {
            let mut either = cloud.clone();
            either.zip_mut_with(&shadow, |e, s| *e |= *s);
            let opened = morphology::open(&either, 1);
            let kept = if has_nir {
                keep_large(&opened, min_px / 2)
            } else {
                // Without near infrared a hardened yard or a light roof on vegetation brightens
                // every visible band alike, as haze does: a patch is taken for cloud when large,
                // or when it lies by a large one (a cloud's fringe breaks into pieces).
                keep_large_and_their_fringe(
                    &opened,
                    min_px / 2,
                    RGB_CLOUD_AREA_FACTOR_X2 * min_px / 4,
                    p.cloud_buffer_px.saturating_mul(2),
                )
            };
            let pick = |m: &Array2<bool>| {
                let mut k = kept.clone();
                k.zip_mut_with(m, |a, b| *a &= *b);
                morphology::dilate(&k, p.cloud_buffer_px)
            };
            if any_set(&kept) {
                (pick(&cloud), pick(&shadow))
            } else {
                // Only specks, all removed: nothing to pick or to buffer.
                let none = Array2::from_elem((h, w), false);
                (none.clone(), none)
            }
        } else {
            (cloud, shadow)
        };
        let observed = {
            let (vb, va) = (flat(&valid_before), flat(&valid_after));
            let (cl, sh) = (flat(&cloud), flat(&shadow));
            all_of(h, w, [&vb, &va, &cl, &sh], [false, false, true, true])
        };

        stage.mark("haze_shadow");
        // Standardised change-vector magnitude, and its shift-tolerant twin.
        let inv_sigma: Vec<f32> = sigma.iter().map(|s| 1.0 / s).collect();
        // The distance between the before pixel at flat index `bi` and the after pixel at `ai`.
        let bs: Vec<&[f32]> = (0..nb).map(|k| band_slice(before_s, k)).collect();
        let as_: Vec<&[f32]> = (0..nb).map(|k| band_slice(after_s, k)).collect();
        let dist = |bi: usize, ai: usize| -> f32 {
            let mut s = 0f32;
            for k in 0..nb {
                let d = (as_[k][ai] - bs[k][bi]) * inv_sigma[k];
                s += d * d;
            }
            s.sqrt()
        };
        let score = {
            let obs = flat(&observed);
            let score: Vec<f32> = match (unmasked_score, nb) {
                (Some(mut s), _) => {
                    // The sweep scored every pixel; the score is the observed ones'.
                    for (v, o) in s.iter_mut().zip(obs.iter()) {
                        if !*o {
                            *v = f32::NAN;
                        }
                    }
                    s
                }
                (None, 3) => score_plane::<3>(&bs, &as_, &inv_sigma, &obs),
                (None, 4) => score_plane::<4>(&bs, &as_, &inv_sigma, &obs),
                _ => (0..h * w)
                    .map(|i| if obs[i] { dist(i, i) } else { f32::NAN })
                    .collect(),
            };
            Array2::from_shape_vec((h, w), score)
                .unwrap_or_else(|_| Array2::from_elem((h, w), f32::NAN))
        };
        // The shift-tolerant score: a pixel only counts as changed if no neighbour within `r`
        // pixels matches it, in both directions. Computed for candidate pixels only.
        let r = p.misregistration_px as i64;
        let tolerant_at = |y: usize, x: usize| -> f32 {
            if r == 0 {
                return score[[y, x]];
            }
            let (mut best_a, mut best_b) = (f32::MAX, f32::MAX);
            for dy in -r..=r {
                for dx in -r..=r {
                    let (ny, nx) = (y as i64 + dy, x as i64 + dx);
                    if ny < 0 || nx < 0 || ny >= h as i64 || nx >= w as i64 {
                        continue;
                    }
                    let (ny, nx) = (ny as usize, nx as usize);
                    if !observed[[ny, nx]] {
                        continue;
                    }
                    let (i, ni) = (y * w + x, ny * w + nx);
                    best_a = best_a.min(dist(i, ni));
                    best_b = best_b.min(dist(ni, i));
                }
            }
            best_a.max(best_b)
        };

        stage.mark("score");
        // Threshold, from every ninth pixel: Otsu's 256 bins are as well filled by the ~130 000
        // scores of a whole window as by every third pixel's ~390 000 (the same accuracy), and
        // each sampled score costs a logarithm.
        let finite: Vec<f32> = flat(&score)
            .iter()
            .step_by(9)
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let otsu = threshold::otsu_log(&finite);
        let chi = threshold::chi2_floor(p.p_value, nb);
        let thr = match &p.threshold {
            params::Threshold::Fixed(v) => *v,
            params::Threshold::Named(n) if n == "otsu" => otsu.unwrap_or(chi),
            params::Threshold::Named(n) if n == "chi2" => chi,
            // Otsu within [floor, 3 × floor]: never below the noise floor, and never so high that a
            // cell full of strong changes hides the moderate ones.
            _ => otsu.map_or(chi, |o| o.clamp(chi, 3.0 * chi)),
        };
        stats.threshold = thr;
        stats.otsu = otsu;
        stats.chi2_floor = chi;

        stage.mark("threshold");
        // Candidates above the threshold, kept when they contain a shift-tolerant seed.
        let candidates = score.mapv(|v| v > thr);
        let (cand_runs, n_cand) = morphology::component_runs(&candidates);
        let mut seeded = vec![false; n_cand + 1];
        for r in &cand_runs {
            let l = r.label as usize;
            for x in r.x0 as usize..r.x1 as usize {
                if seeded[l] {
                    break;
                }
                seeded[l] = tolerant_at(r.y as usize, x) > thr;
            }
        }
        let own = runs_mask(h, w, &cand_runs, |l| seeded[l as usize]);
        // Another detector's opinion, if any: scores are brought to threshold units so that the
        // half-maximum contours below work on either.
        let (changed, score, agree) = match given {
            None => (own, score, None),
            Some(g) => {
                if g.score.dim() != (h, w) {
                    return Err(DetectError::Input {
                        cell: input.cell_id.to_string(),
                        detail: format!(
                            "the external score is {:?}, the window {:?}",
                            g.score.dim(),
                            (h, w)
                        ),
                    });
                }
                let theirs = Array2::from_shape_fn((h, w), |(y, x)| {
                    observed[[y, x]] && g.score[[y, x]] > g.threshold
                });
                let unit = |v: f32, t: f32| {
                    if v.is_finite() {
                        v / t.max(1e-6)
                    } else {
                        f32::NAN
                    }
                };
                // A learned detector alone reports in its own units (a probability), with its own
                // threshold: the score map, region scores and confidence then read as the model's.
                // Combined, scores are in the spectral detector's units.
                let replace = g.combine == Combine::Replace;
                if replace {
                    stats.threshold = g.threshold;
                }
                let mut combined_score = Array2::<f32>::from_elem((h, w), f32::NAN);
                let mut changed = Array2::from_elem((h, w), false);
                for y in 0..h {
                    for x in 0..w {
                        if !observed[[y, x]] {
                            continue;
                        }
                        let (a, b) = (unit(score[[y, x]], thr), unit(g.score[[y, x]], g.threshold));
                        let (c, s) = match g.combine {
                            Combine::Replace => (theirs[[y, x]], b),
                            Combine::Both => (theirs[[y, x]] && own[[y, x]], a.min(b)),
                            Combine::Either => (theirs[[y, x]] || own[[y, x]], a.max(b)),
                        };
                        changed[[y, x]] = c;
                        combined_score[[y, x]] = if replace { g.score[[y, x]] } else { s * thr };
                    }
                }
                // Agreement only means something when both detectors decide; a learned detector
                // alone is one detector, graded by its own margin.
                let agree = (!replace)
                    .then(|| Array2::from_shape_fn((h, w), |(y, x)| theirs[[y, x]] && own[[y, x]]));
                (changed, combined_score, agree)
            }
        };

        stage.mark("seeds");
        // Covers and transitions of changed pixels.
        // The after date's covers are read after normalisation, in the before date's radiometry,
        // so one set of thresholds serves both dates whatever the sensors.
        let med_a = brightness(&after_n, &observed);
        let med_bb = brightness(&before, &observed);
        let mut trans = Array2::<u8>::from_elem((h, w), u8::MAX);
        let mut cov_b = Array2::<u8>::from_elem((h, w), Cover::Unknown as u8);
        let mut cov_a = Array2::<u8>::from_elem((h, w), Cover::Unknown as u8);
        let changed_s = flat(&changed);
        for_each_nonzero(&changed_s, |i, _| {
            let (y, x) = (i / w, i % w);
            let cb = classify(&spectrum(&before, has_nir, y, x), med_bb, &p.cover);
            let ca = classify(&spectrum(&after_n, has_nir, y, x), med_a, &p.cover);
            cov_b[[y, x]] = cb as u8;
            cov_a[[y, x]] = ca as u8;
            if let Some(t) = Transition::between(cb, ca) {
                trans[[y, x]] = t as u8;
            }
        });
        stage.mark("covers");
        // A change of illumination only (a shadow that moved with the sun, a roof lit from the
        // other side) scales the spectrum without turning it: a small spectral angle with a large
        // change of brightness is not a change of land use.
        let cos_max = p.illumination_angle_deg.to_radians().cos();
        let illumination = |y: usize, x: usize| -> bool {
            let (mut dot, mut nb2, mut na2) = (0f32, 0f32, 0f32);
            for k in 0..nb {
                let (b, a) = (before_s[[k, y, x]], after_s[[k, y, x]]);
                dot += a * b;
                nb2 += b * b;
                na2 += a * a;
            }
            let cos = dot / (nb2.sqrt() * na2.sqrt()).max(1e-9);
            let ratio = (na2 / nb2.max(1e-9)).sqrt();
            // Only darkening: a new shadow. A surface that got brighter without changing colour
            // is as often a new light roof on pavement as a shadow that went away.
            cos >= cos_max && ratio < 0.8
        };
        // Transitions are set on changed pixels only.
        let (land, cycle) = {
            let trans = flat(&trans);
            let land = sparse_mask(h, w, &changed_s, |i, _| {
                let t = trans[i];
                t != u8::MAX
                    && Transition::ALL[t as usize].is_land_use_change()
                    && !illumination(i / w, i % w)
            });
            let cycle = sparse_mask(h, w, &changed_s, |i, _| {
                trans[i] == Transition::VegetationCycle as u8
            });
            (land, cycle)
        };
        let clean = |m: &Array2<bool>| -> Array2<bool> {
            let mut c = morphology::close(&morphology::open(m, p.opening_px), p.closing_px);
            c.zip_mut_with(&observed, |v, o| *v &= *o);
            c
        };
        let land = half_max(&clean(&land), &score, &changed);
        stage.mark("morphology");
        // Field-scale loss of vegetation (hectares of it at once) is ploughing or harvest, not an
        // excavation or a building site: those regions join the vegetation cycle.
        let field_px = (p.field_scale_m2 / input.pixel_area_m2).ceil() as u64;
        let (land, field_ops) = split_field_scale(&land, &trans, field_px);
        let cycle = {
            let mut c = clean(&cycle);
            c.zip_mut_with(&field_ops, |v, f| *v |= *f);
            c.zip_mut_with(&land, |v, l| *v &= !*l);
            c
        };
        for_each_nonzero(&flat(&field_ops), |i, _| {
            trans[[i / w, i % w]] = Transition::VegetationCycle as u8;
        });

        stage.mark("field_scale");
        // Regions: components over the whole window, kept by area, reported over the core.
        // The loops run over flat slices of the window (index `wy * w + wx`).
        let (cx0, cy0) = input.core_offset;
        let (cw, ch) = input.core_size;
        let mut labels = vec![0u32; ch * cw];
        let mut regions: Vec<RegionStats> = Vec::new();
        let trans_s = flat(&trans);
        let (cov_b_s, cov_a_s) = (flat(&cov_b), flat(&cov_a));
        let score_s = flat(&score);
        let observed_s = flat(&observed);
        let agree_s = agree.as_ref().map(flat);
        let (before_f, after_f) = (flat(&*before), flat(&*after));
        let plane = h * w;
        for mask in [&land, &cycle] {
            // The components as runs in raster order: sizes, transitions and the core's pixels
            // are read off them; a label array is made only for the ring.
            let (runs, n) = morphology::component_runs(mask);
            if n == 0 {
                // No component: no region, no ring (the loops below would find nothing).
                continue;
            }
            let mut counts = vec![[0u64; 9]; n + 1];
            let mut size = vec![0u64; n + 1];
            for r in &runs {
                let l = r.label as usize;
                size[l] += u64::from(r.x1 - r.x0);
                for t in &trans_s[r.span(w)] {
                    if *t != u8::MAX {
                        counts[l][*t as usize] += 1;
                    }
                }
            }
            let majority: Vec<Transition> = counts
                .iter()
                .map(|c| {
                    let i = c
                        .iter()
                        .enumerate()
                        .max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i)))
                        .map(|(i, _)| i)
                        .unwrap_or(8);
                    Transition::ALL[i]
                })
                .collect();
            let keep: Vec<bool> = (0..=n)
                .map(|l| l > 0 && size[l] as f64 * input.pixel_area_m2 >= p.min_area(majority[l]))
                .collect();
            // Core pieces, numbered in raster order of their first core pixel (the runs' order
            // clipped to the core is the core's raster order).
            let mut id_of = vec![0u32; n + 1];
            for r in &runs {
                let (wy, l) = (r.y as usize, r.label as usize);
                let (x0, x1) = ((r.x0 as usize).max(cx0), (r.x1 as usize).min(cx0 + cw));
                if !keep[l] || wy < cy0 || wy >= cy0 + ch || x0 >= x1 {
                    continue;
                }
                let (y, row) = (wy - cy0, wy * w + cx0);
                for x in x0 - cx0..x1 - cx0 {
                    let wi = row + x;
                    if id_of[l] == 0 {
                        regions.push(RegionStats {
                            transition: majority[l],
                            pixels: 0,
                            transition_pixels: [0; 9],
                            before_cover: [0; 7],
                            after_cover: [0; 7],
                            score_sum: 0.0,
                            score_max: 0.0,
                            chi2_sum: 0.0,
                            ring_pixels: 0,
                            ring_observed: 0,
                            agree_pixels: agree.as_ref().map(|_| 0),
                        });
                        id_of[l] = regions.len() as u32;
                    }
                    labels[y * cw + x] = id_of[l];
                    let rs = &mut regions[id_of[l] as usize - 1];
                    rs.pixels += 1;
                    if let (Some(a), Some(n)) = (agree_s.as_ref(), rs.agree_pixels.as_mut()) {
                        if a[wi] {
                            *n += 1;
                        }
                    }
                    let t = trans_s[wi];
                    if t != u8::MAX {
                        rs.transition_pixels[t as usize] += 1;
                    }
                    rs.before_cover[cov_b_s[wi] as usize] += 1;
                    rs.after_cover[cov_a_s[wi] as usize] += 1;
                    let sc = score_s[wi];
                    if sc.is_finite() {
                        rs.score_sum += sc as f64;
                        rs.score_max = rs.score_max.max(sc);
                    }
                    if let Some(m) = irmad.as_ref().filter(|_| majority[l].is_land_use_change()) {
                        let mut xb = [0f32; 4];
                        let mut xa = [0f32; 4];
                        for k in 0..nb {
                            xb[k] = before_f[k * plane + wi];
                            xa[k] = after_f[k * plane + wi];
                        }
                        rs.chi2_sum += m.chi2(&xb[..nb], &xa[..nb]);
                    }
                }
            }
            // The ring: the region dilated by two pixels, to see how much around it was observed.
            // (A pixel is in some region's ring exactly when its dilated label is not zero.)
            if id_of.iter().all(|v| *v == 0) {
                // No region of this mask reaches the core: no ring to measure.
                continue;
            }
            let lab_s = morphology::label_array(&runs, h, w);
            for_dilated_rows(&lab_s, h, w, 2, cy0..cy0 + ch, |wy, dl| {
                for x in cx0..cx0 + cw {
                    let l = dl[x] as usize;
                    if l == 0 || !keep[l] || id_of[l] == 0 {
                        continue;
                    }
                    let rs = &mut regions[id_of[l] as usize - 1];
                    rs.ring_pixels += 1;
                    if observed_s[wy * w + x] {
                        rs.ring_observed += 1;
                    }
                }
            });
        }

        stage.mark("regions");
        // Core outputs, a row at a time (window rows `wr`, core rows `cr`):
        // every pixel's observation, score and counts in branch-free passes (which vectorise),
        // then the labelled pixels, which are few.
        let mut mask = vec![0u8; ch * cw];
        let mut unobserved = vec![0u8; ch * cw];
        let mut core_score = vec![0f32; ch * cw];
        let (valid_b_s, valid_a_s) = (flat(&valid_before), flat(&valid_after));
        let (cloud_s, shadow_s) = (flat(&cloud), flat(&shadow));
        for y in 0..ch {
            let wr = (cy0 + y) * w + cx0..(cy0 + y) * w + cx0 + cw;
            let cr = y * cw..(y + 1) * cw;
            let obs = &observed_s[wr.clone()];
            let (vb, va) = (&valid_b_s[wr.clone()], &valid_a_s[wr.clone()]);
            let (cl, sh, sc) = (&cloud_s[wr.clone()], &shadow_s[wr.clone()], &score_s[wr]);
            let (m, u, o) = (
                &mut mask[cr.clone()],
                &mut unobserved[cr.clone()],
                &mut core_score[cr.clone()],
            );
            let (mut seen, mut clouds, mut shadows) = (0u32, 0u32, 0u32);
            for x in 0..cw {
                let (ob, both) = (obs[x], vb[x] & va[x]);
                // A pixel both dates saw that is not observed is under cloud or its shadow.
                let c = !ob & both & cl[x];
                let s = !ob & both & !cl[x] & sh[x];
                m[x] = if ob { 0 } else { MASK_UNOBSERVED };
                u[x] = if ob {
                    0
                } else if c {
                    UNOBSERVED_CLOUD
                } else if s {
                    UNOBSERVED_SHADOW
                } else {
                    UNOBSERVED_NO_DATA
                };
                o[x] = if ob { sc[x] } else { f32::NAN };
                seen += ob as u32;
                clouds += c as u32;
                shadows += s as u32;
            }
            stats.observed_px += u64::from(seen);
            stats.unobserved_px += (cw as u64) - u64::from(seen);
            stats.cloud_px += u64::from(clouds);
            stats.shadow_px += u64::from(shadows);
            for_each_nonzero(&labels[cr.clone()], |x, l| {
                if !obs[x] {
                    return;
                }
                if regions[l as usize - 1].transition.is_land_use_change() {
                    mask[cr.start + x] = MASK_CHANGE;
                    stats.changed_px += 1;
                } else {
                    stats.cycle_px += 1;
                }
            });
        }
        let core = |v: Vec<u8>| {
            Array2::from_shape_vec((ch, cw), v).unwrap_or_else(|_| Array2::zeros((ch, cw)))
        };
        let (mask, unobserved) = (core(mask), core(unobserved));
        let labels =
            Array2::from_shape_vec((ch, cw), labels).unwrap_or_else(|_| Array2::zeros((ch, cw)));
        let core_score = Array2::from_shape_vec((ch, cw), core_score)
            .unwrap_or_else(|_| Array2::from_elem((ch, cw), f32::NAN));
        let layers = p.debug_layers.then(|| {
            let core = |a: &Array2<u8>| a.slice(s![cy0..cy0 + ch, cx0..cx0 + cw]).to_owned();
            DebugLayers {
                unobserved: unobserved.clone(),
                cover_before: core(&cov_b),
                cover_after: core(&cov_a),
                transition: core(&trans),
            }
        });
        // The mapped after bands' buffer, for the thread's next cell.
        scratch::give_f32(after_n.into_raw_vec_and_offset().0);
        stage.mark("outputs");
        Ok(CellResult {
            score: core_score,
            mask,
            labels,
            unobserved,
            regions,
            stats,
            layers,
        })
    }
}

/// Trims each region to its half-maximum contour: a pixel stays only if its score is at least
/// half the region's median score. A pixel straddling an object's edge carries the change in
/// proportion to how much of it the object covers, so this keeps exactly the pixels the object
/// covers more than half of — the edge a person would draw.
///
/// Mixed edge pixels often read as another cover (a roof edge over green crops looks like dry
/// vegetation), so first each region grows by one pixel into neighbouring changed pixels
/// that pass its half-maximum, whatever their own transition.
///
/// Works on the components' runs (the mask is mostly clear): a growing pixel passes when it
/// passes the half-maximum of any neighbouring region, so which of them it joins does not change
/// the result and no label array is needed.
fn half_max(mask: &Array2<bool>, score: &Array2<f32>, changed: &Array2<bool>) -> Array2<bool> {
    let (h, w) = mask.dim();
    let (runs, n) = morphology::component_runs(mask);
    let (m, score, changed) = (flat(mask), flat(score), flat(changed));
    // Each region's finite scores; the runs are in raster order, so each region's scores are too.
    let mut scores: Vec<Vec<f32>> = vec![Vec::new(); n + 1];
    for r in &runs {
        scores[r.label as usize].extend(score[r.span(w)].iter().filter(|v| v.is_finite()));
    }
    let cut: Vec<f32> = scores.into_iter().map(|v| 0.5 * median(v)).collect();
    let mut out = vec![false; h * w];
    for r in &runs {
        let c = cut[r.label as usize];
        let (y, x0, x1) = (r.y as usize, r.x0 as usize, r.x1 as usize);
        for (o, s) in out[r.span(w)].iter_mut().zip(&score[r.span(w)]) {
            *o = *s >= c;
        }
        // One pixel of growth into changed 4-neighbours outside every region.
        let mut grow = |i: usize| {
            if changed[i] && !m[i] && score[i] >= c {
                out[i] = true;
            }
        };
        if y > 0 {
            ((y - 1) * w + x0..(y - 1) * w + x1).for_each(&mut grow);
        }
        if y + 1 < h {
            ((y + 1) * w + x0..(y + 1) * w + x1).for_each(&mut grow);
        }
        if x0 > 0 {
            grow(y * w + x0 - 1);
        }
        if x1 < w {
            grow(y * w + x1);
        }
    }
    Array2::from_shape_vec((h, w), out).unwrap_or_else(|_| Array2::from_elem((h, w), false))
}

/// [`half_max`] as it was first written, over a label array, each growing pixel joining the
/// lowest label that admits it: the reference the run-based version is tested against.
#[cfg(test)]
fn half_max_labels(
    mask: &Array2<bool>,
    score: &Array2<f32>,
    changed: &Array2<bool>,
) -> Array2<bool> {
    let (lab, n) = morphology::components(mask);
    let (h, w) = lab.dim();
    let (lab, score, changed) = (flat(&lab), flat(score), flat(changed));
    let mut scores: Vec<Vec<f32>> = vec![Vec::new(); n + 1];
    for_each_nonzero(&lab, |i, l| {
        if score[i].is_finite() {
            scores[l as usize].push(score[i]);
        }
    });
    let cut: Vec<f32> = scores.into_iter().map(|v| 0.5 * median(v)).collect();
    // One pixel of growth into changed 4-neighbours, the lowest label that admits it winning.
    let mut grown = lab.to_vec();
    for_each_nonzero(&changed, |i, _| {
        if lab[i] == 0 {
            let (y, x) = (i / w, i % w);
            let s = score[i];
            let mut best = 0u32;
            let mut consider = |l: u32| {
                if l != 0 && s >= cut[l as usize] && (best == 0 || l < best) {
                    best = l;
                }
            };
            if y > 0 {
                consider(lab[i - w]);
            }
            if y + 1 < h {
                consider(lab[i + w]);
            }
            if x > 0 {
                consider(lab[i - 1]);
            }
            if x + 1 < w {
                consider(lab[i + 1]);
            }
            grown[i] = best;
        }
    });
    let mut out = vec![false; h * w];
    for_each_nonzero(&grown, |i, l| out[i] = score[i] >= cut[l as usize]);
    Array2::from_shape_vec((h, w), out).unwrap_or_else(|_| Array2::from_elem((h, w), false))
}

/// An `h × w` mask, set where `values` is not zero and `test(i, value)` holds (clear elsewhere).
fn sparse_mask<T>(h: usize, w: usize, values: &[T], test: impl Fn(usize, T) -> bool) -> Array2<bool>
where
    T: Copy + Default + PartialEq + std::ops::BitOr<Output = T>,
{
    let mut out = vec![false; h * w];
    // Every caller passes the window's own arrays; a mismatch is a bug, not an input.
    debug_assert_eq!(
        values.len(),
        out.len(),
        "sparse_mask over values of another shape"
    );
    if values.len() == out.len() {
        for_each_nonzero(values, |i, v| out[i] = test(i, v));
    }
    Array2::from_shape_vec((h, w), out).unwrap_or_else(|_| Array2::from_elem((h, w), false))
}

/// The index of the first non-zero value (`true` for a mask) of `values` at or after `x`
/// (`values.len()` when there is none). Labels and masks are sparse — most of a window is in no
/// region, most of a mask clear — so sixteen values at a time that are all zero are passed over
/// with one test (which vectorises). The one skipping mechanism of the detector: components,
/// morphology's clear rows, the ring's rows and every sparse visit go through it.
#[inline]
pub(crate) fn next_nonzero<T>(values: &[T], mut x: usize) -> usize
where
    T: Copy + Default + PartialEq + std::ops::BitOr<Output = T>,
{
    let zero = T::default();
    while x + 16 <= values.len() {
        if values[x..x + 16].iter().fold(zero, |a, v| a | *v) != zero {
            break;
        }
        x += 16;
    }
    while x < values.len() && values[x] == zero {
        x += 1;
    }
    x
}

/// Calls `f(i, v)` for each non-zero value `v` of `values` (`true` for a mask) at index `i`, in
/// order, passing zeros over as [`next_nonzero`] does.
#[inline]
fn for_each_nonzero<T>(values: &[T], mut f: impl FnMut(usize, T))
where
    T: Copy + Default + PartialEq + std::ops::BitOr<Output = T>,
{
    let mut i = next_nonzero(values, 0);
    while i < values.len() {
        f(i, values[i]);
        i = next_nonzero(values, i + 1);
    }
}

/// Mean of each band over a (2r + 1)² box, counting only valid pixels (summed-area tables).
fn box_mean(bands: &Array3<f32>, valid: &Array2<bool>, r: usize) -> Array3<f32> {
    let (nb, h, w) = bands.dim();
    let mut out = bands.clone();
    let mut count = vec![0f64; (h + 1) * (w + 1)];
    for y in 0..h {
        for x in 0..w {
            let v = if valid[[y, x]] { 1.0 } else { 0.0 };
            count[(y + 1) * (w + 1) + x + 1] =
                v + count[y * (w + 1) + x + 1] + count[(y + 1) * (w + 1) + x]
                    - count[y * (w + 1) + x];
        }
    }
    let rect = |t: &[f64], y0: usize, x0: usize, y1: usize, x1: usize| {
        t[y1 * (w + 1) + x1] - t[y0 * (w + 1) + x1] - t[y1 * (w + 1) + x0] + t[y0 * (w + 1) + x0]
    };
    let mut sum = vec![0f64; (h + 1) * (w + 1)];
    for k in 0..nb {
        for y in 0..h {
            for x in 0..w {
                let v = if valid[[y, x]] {
                    bands[[k, y, x]] as f64
                } else {
                    0.0
                };
                sum[(y + 1) * (w + 1) + x + 1] =
                    v + sum[y * (w + 1) + x + 1] + sum[(y + 1) * (w + 1) + x]
                        - sum[y * (w + 1) + x];
            }
        }
        for y in 0..h {
            let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
            for x in 0..w {
                if !valid[[y, x]] {
                    continue;
                }
                let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
                let n = rect(&count, y0, x0, y1, x1);
                if n > 0.0 {
                    out[[k, y, x]] = (rect(&sum, y0, x0, y1, x1) / n) as f32;
                }
            }
        }
    }
    out
}

/// Splits off the components of at least `min_px` pixels whose majority transition is a loss of
/// vegetation to bare or built ground (or a change between bare and built): returns the rest and
/// those field-scale components.
fn split_field_scale(
    land: &Array2<bool>,
    trans: &Array2<u8>,
    min_px: u64,
) -> (Array2<bool>, Array2<bool>) {
    let (h, w) = land.dim();
    let (runs, n) = morphology::component_runs(land);
    let mut size = vec![0u64; n + 1];
    let mut soil = vec![0u64; n + 1];
    let trans = flat(trans);
    let field_like = [
        Transition::VegetationToBare,
        Transition::VegetationToBuilt,
        Transition::BareToBuilt,
        Transition::Other,
    ]
    .map(|k| k as u8);
    for r in &runs {
        let l = r.label as usize;
        size[l] += u64::from(r.x1 - r.x0);
        soil[l] += trans[r.span(w)]
            .iter()
            .filter(|t| field_like.contains(t))
            .count() as u64;
    }
    let big: Vec<bool> = (0..=n)
        .map(|l| l > 0 && size[l] >= min_px && 2 * soil[l] > size[l])
        .collect();
    let rest = runs_mask(h, w, &runs, |l| !big[l as usize]);
    let fields = runs_mask(h, w, &runs, |l| big[l as usize]);
    (rest, fields)
}

/// A cell's median brightness (the scale its cloud, water and built-up tests are relative to)
/// is taken of every `BRIGHTNESS_STEP`-th pixel of every `BRIGHTNESS_STEP`-th row: ~74 000
/// samples in a whole 1088² window, whose median was within 0.12 % of all pixels' in five
/// windows of the peer scene (every second pixel's: 0.06 %). Every second pixel of every
/// second row (four times as many samples) found the same findings, regions and coverage on the
/// peer scene, three synthetic scenes and the demo scene, and the same score rasters but for
/// one pixel of 16.8 million in two synthetic scenes (cloud or not), and cost ~80 ms more of a
/// 5000² scan's CPU.
const BRIGHTNESS_STEP: usize = 4;

/// Per-stage timings of one cell, logged at trace level (`-vv`).
struct Stages<'a> {
    cell: &'a str,
    last: std::time::Instant,
}

impl<'a> Stages<'a> {
    fn new(cell: &'a str) -> Self {
        Stages {
            cell,
            last: std::time::Instant::now(),
        }
    }

    fn mark(&mut self, stage: &str) {
        let now = std::time::Instant::now();
        tracing::trace!(
            cell = self.cell,
            stage,
            ms = (now - self.last).as_secs_f64() * 1e3,
            "detect stage"
        );
        self.last = now;
    }
}

/// The bits of each value: what tests compare when a result must be the same bit for bit.
#[cfg(test)]
pub(crate) fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// An array's values in logical (row-major) order, borrowed when it is in standard layout.
pub(crate) fn flat<T: Clone, D: ndarray::Dimension>(
    a: &ndarray::Array<T, D>,
) -> std::borrow::Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => s.into(),
        None => a.iter().cloned().collect::<Vec<T>>().into(),
    }
}

/// How many pixels of a mask are set (a sum over the flat mask, which vectorises).
pub(crate) fn count_set(mask: &Array2<bool>) -> usize {
    count_set_slice(&flat(mask))
}

fn count_set_slice(v: &[bool]) -> usize {
    v.iter().map(|v| *v as usize).sum()
}

/// Whether any pixel of a mask is set.
fn any_set(mask: &Array2<bool>) -> bool {
    let m = flat(mask);
    next_nonzero(&m, 0) < m.len()
}

/// Band `k` of a (band, row, column) array as a contiguous slice (the arrays built here are in
/// standard layout; an empty slice otherwise).
fn band_slice(a: &Array3<f32>, k: usize) -> &[f32] {
    let (_, h, w) = a.dim();
    a.as_slice()
        .map(|s| &s[k * h * w..(k + 1) * h * w])
        .unwrap_or(&[])
}

/// Haze and cloud-shadow pixels among the observed ones of `N` bands (blue, green, red and, when
/// `N` is 4, near infrared): (haze, shadow) in row-major order.
///
/// Haze is a flat rise of every visible band by more than `haze_delta` (either way between the
/// dates, the near infrared not falling); a shadow darkens the pixel while keeping the
/// spectrum's direction (no band higher by more than [`SHADOW_NOT_UP_SIGMAS`] times its spread
/// `1 / inv_sigma`, brightness below 65 % of the before date's, cosine above `shadow_cos`, and
/// without near infrared green not gaining on blue: [`SHADOW_GREEN_GAIN`]).
fn haze_and_shadow<const N: usize>(
    before: &Array3<f32>,
    after: &Array3<f32>,
    observed: &[bool],
    haze_delta: f32,
    shadow_cos: f32,
    inv_sigma: &[f32],
) -> (Vec<bool>, Vec<bool>, Vec<bool>) {
    let n = observed.len();
    let bs: [&[f32]; N] = std::array::from_fn(|k| &band_slice(before, k)[..n]);
    let as_: [&[f32]; N] = std::array::from_fn(|k| &band_slice(after, k)[..n]);
    let (mut cloud, mut shadow, mut dark) = (vec![false; n], vec![false; n], vec![false; n]);
    haze_and_shadow_into(
        bs,
        as_,
        observed,
        haze_delta,
        (shadow_cos, shadow_not_up::<N>(inv_sigma)),
        &mut cloud,
        &mut shadow,
        &mut dark,
    );
    (cloud, shadow, dark)
}

/// How far a band may rise, in units of its spread, in a pixel still taken for a cloud shadow.
/// A shadow takes the direct sunlight away and leaves the sky's diffuse light: on a dark surface
/// (water, whose near infrared is next to nothing) that light is about what the surface
/// reflected before, so such a band stays level and its noise lifts it half the time. Every band
/// strictly lower left the shadow over water speckled, and the water under it read as filled.
const SHADOW_NOT_UP_SIGMAS: f32 = 2.0;

/// How much a pixel's green may gain on its blue (the ratio green / blue of the after date over
/// that of the before date) in a pixel still taken for a cloud shadow in imagery without near
/// infrared. A shadow is lit by the sky alone, whose light is bluer than the sun's: green loses
/// to blue (the ratio fell to 0.49–0.93 in the synthetic scenes' shadows). Bare soil that turned
/// green darkens every visible band as a shadow does, at a small spectral angle, but green gains
/// on blue (1.28 in the median): without this test an RGB satellite scene's sown fields read as
/// shadows and their parcels as unobserved. With near infrared, greening raises that band and
/// fails the shadow test anyway.
const SHADOW_GREEN_GAIN: f32 = 1.1;

/// Twice how many times larger than with near infrared a patch of haze or shadow (with the
/// shadows and haze it touches) must be to be masked on its own in imagery without near infrared
/// (3: one and a half times); a smaller one (down to the usual size) is masked when it lies
/// within twice the cloud buffer of such a patch (a cloud's fringe breaks into pieces). There a
/// hardened site or a light roof built on vegetation brightens every visible band by about the
/// same amount, as haze does (near infrared, which such a surface lowers, tells them apart
/// otherwise): the hardened yards of expired temporary permits (840–860 m², above the usual
/// 750 m²) were masked as haze and never judged. Four times (3 000 m²) let small clouds through
/// (four false alarms on the synthetic scenes' clouds); one and a half times recovered the four
/// yards with no new false alarm.
const RGB_CLOUD_AREA_FACTOR_X2: u64 = 3;

/// The rise each band may show in a shadow (see [`SHADOW_NOT_UP_SIGMAS`]) from the inverse
/// spreads of the bands' differences.
fn shadow_not_up<const N: usize>(inv_sigma: &[f32]) -> [f32; N] {
    std::array::from_fn(|k| SHADOW_NOT_UP_SIGMAS / inv_sigma[k])
}

/// [`haze_and_shadow`] over pixels given as band slices (all as long as `observed`), into
/// `cloud`, `shadow` and `dark` (darkened as in a shadow, whatever the spectrum's direction: see
/// [`grow_shadow`]); `shadow_test` is the cosine and the rises of [`shadow_not_up`].
#[allow(clippy::too_many_arguments)]
fn haze_and_shadow_into<const N: usize>(
    bs: [&[f32]; N],
    as_: [&[f32]; N],
    observed: &[bool],
    haze_delta: f32,
    (shadow_cos, not_up): (f32, [f32; N]),
    cloud: &mut [bool],
    shadow: &mut [bool],
    dark: &mut [bool],
) {
    let has_nir = N == 4;
    let flat_rise = |hi: &[f32; N], lo: &[f32; N]| -> bool {
        let (mut imin, mut imax) = (f32::MAX, f32::MIN);
        for k in 0..3 {
            let d = hi[k] - lo[k];
            imin = imin.min(d);
            imax = imax.max(d);
        }
        // The near infrared is the last band when there is one.
        let nir_up = !has_nir || hi[N - 1] >= lo[N - 1];
        (imin > haze_delta) & (imax / imin < 1.5) & nir_up
    };
    // Every test is evaluated for every pixel and combined with `&`/`|` (no branch, the loop
    // vectorises); the outcome is that of testing observed pixels only, haze first.
    for (i, (((cl, sh), dk), seen)) in cloud
        .iter_mut()
        .zip(shadow)
        .zip(dark)
        .zip(observed)
        .enumerate()
    {
        let b: [f32; N] = std::array::from_fn(|k| bs[k][i]);
        let a: [f32; N] = std::array::from_fn(|k| as_[k][i]);
        let haze = flat_rise(&a, &b) | flat_rise(&b, &a);
        let (mut sum_b, mut sum_a, mut all_down) = (0f32, 0f32, true);
        let (mut dot, mut nb2, mut na2) = (0f32, 0f32, 0f32);
        for k in 0..N {
            let (b, a) = (b[k], a[k]);
            sum_b += b;
            sum_a += a;
            all_down &= a < b + not_up[k];
            dot += a * b;
            nb2 += b * b;
            na2 += a * a;
        }
        // Without a near infrared band, bare ground that turned green (sowing, regrowth) darkens
        // every visible band within the shadow test's angle; a shadow's sky light is blue, so
        // green never gains on blue in a shadow (see [`SHADOW_GREEN_GAIN`]).
        let not_greener = has_nir | (a[1] * b[0] <= SHADOW_GREEN_GAIN * b[1] * a[0]);
        // A shadow keeps the direction of the spectrum (up to the sky light it still
        // receives): the spectral angle between the dates stays small.
        let darker = all_down & (sum_a < 0.65 * sum_b) & not_greener;
        let dark = darker & (dot / (nb2.sqrt() * na2.sqrt()).max(1e-9) > shadow_cos);
        *cl = *seen & haze;
        *sh = *seen & !haze & dark;
        *dk = *seen & !haze & darker;
    }
}

/// Rows per strip of [`map_haze_score`]: about this many bytes of the strip's bands (before,
/// after, mapped after) stay in a core's own cache between its steps.
const SWEEP_STRIP_BYTES: usize = 192 * 1024;

/// The rows of a strip of [`map_haze_score`] for windows `w` pixels wide of `nb` bands.
fn sweep_rows(w: usize, nb: usize) -> usize {
    (SWEEP_STRIP_BYTES / (w.max(1) * nb * 3 * 4)).max(1)
}

/// One sweep over a window of `N` bands, `rows` rows at a time so that a strip stays in the
/// core's cache from step to step instead of each step streaming whole bands from memory:
/// the after bands mapped into the before date's radiometry (`mappers`, one per band), haze and
/// shadow among the `observed` pixels (as [`haze_and_shadow`]), and the change score of every
/// pixel (as [`score_plane`], before any mask). Returns the mapped bands (band-major), haze,
/// shadow and the scores, each in row-major order.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn map_haze_score<const N: usize>(
    before: &Array3<f32>,
    after: &Array3<f32>,
    mappers: &[normalize::Mapper<'_>],
    observed: &[bool],
    haze_delta: f32,
    shadow_cos: f32,
    inv_sigma: &[f32],
    rows: usize,
) -> (Vec<f32>, Vec<bool>, Vec<bool>, Vec<bool>, Vec<f32>) {
    let (_, h, w) = after.dim();
    let n = h * w;
    let bs: [&[f32]; N] = std::array::from_fn(|k| &band_slice(before, k)[..n]);
    let as_: [&[f32]; N] = std::array::from_fn(|k| &band_slice(after, k)[..n]);
    let inv: [f32; N] = std::array::from_fn(|k| inv_sigma[k]);
    let not_up = shadow_not_up::<N>(inv_sigma);
    // Band-major, so written band by band within each strip: the thread's buffer from its last
    // cell (every value is written below), given back by `detect_with`.
    let mut mapped = scratch::take_f32(N * n);
    // Row-major: grown a strip at a time, each just before it is written (while in cache), not
    // zeroed whole first.
    let (mut cloud, mut shadow, mut dark) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut score: Vec<f32> = Vec::with_capacity(n);
    let rows = rows.max(1);
    let mut an: Vec<&mut [f32]> = mapped.chunks_exact_mut(n.max(1)).collect();
    for y0 in (0..h).step_by(rows) {
        let r = y0 * w..(y0 + rows).min(h) * w;
        for (k, m) in mappers.iter().enumerate().take(N) {
            m.map_into(&as_[k][r.clone()], &mut an[k][r.clone()]);
        }
        let ar: [&[f32]; N] = std::array::from_fn(|k| &an[k][r.clone()]);
        let br: [&[f32]; N] = std::array::from_fn(|k| &bs[k][r.clone()]);
        cloud.resize(r.end, false);
        shadow.resize(r.end, false);
        dark.resize(r.end, false);
        haze_and_shadow_into(
            br,
            ar,
            &observed[r.clone()],
            haze_delta,
            (shadow_cos, not_up),
            &mut cloud[r.clone()],
            &mut shadow[r.clone()],
            &mut dark[r.clone()],
        );
        score.resize(r.end, 0.0);
        for (i, o) in score[r].iter_mut().enumerate() {
            *o = squared_distance(&br, &ar, &inv, i).sqrt();
        }
    }
    (mapped, cloud, shadow, dark, score)
}

/// The squared standardised distance between the dates at index `i` of `N` band slices: each
/// band's difference scaled by its `inv` and squared, added in band order (the score is its
/// root; every scorer adds the same terms in the same order, so gives the same bits).
#[inline(always)]
fn squared_distance<const N: usize>(
    before: &[&[f32]; N],
    after: &[&[f32]; N],
    inv: &[f32; N],
    i: usize,
) -> f32 {
    let mut s = 0f32;
    for k in 0..N {
        let d = (after[k][i] - before[k][i]) * inv[k];
        s += d * d;
    }
    s
}

/// The change score of every pixel for `N` bands: the distance `dist(i, i)` of `detect_with`
/// (the same terms added in the same order, so the same bits) where observed, NaN elsewhere.
/// Branch-free over plain slices, so the loop vectorises.
fn score_plane<const N: usize>(
    before: &[&[f32]],
    after: &[&[f32]],
    inv_sigma: &[f32],
    observed: &[bool],
) -> Vec<f32> {
    let n = observed.len();
    let bs: [&[f32]; N] = std::array::from_fn(|k| &before[k][..n]);
    let as_: [&[f32]; N] = std::array::from_fn(|k| &after[k][..n]);
    let inv: [f32; N] = std::array::from_fn(|k| inv_sigma[k]);
    let mut out = vec![0f32; n];
    for (i, (o, seen)) in out.iter_mut().zip(observed).enumerate() {
        let s = squared_distance(&bs, &as_, &inv, i);
        *o = if *seen { s.sqrt() } else { f32::NAN };
    }
    out
}

/// An `h × w` mask true where every one of `N` row-major masks is true, or false where `negate`
/// says so (`&` of plain slices, not `&&` per index: no branch, and the loop vectorises).
fn all_of<const N: usize>(
    h: usize,
    w: usize,
    masks: [&[bool]; N],
    negate: [bool; N],
) -> Array2<bool> {
    let n = h * w;
    if masks.iter().any(|m| m.len() < n) {
        return Array2::from_elem((h, w), false);
    }
    let mut out = vec![true; n];
    for (m, neg) in masks.iter().zip(negate) {
        for (o, v) in out.iter_mut().zip(&m[..n]) {
            *o &= *v != neg;
        }
    }
    Array2::from_shape_vec((h, w), out).unwrap_or_else(|_| Array2::from_elem((h, w), false))
}

/// Keeps the components of a mask with at least `min_px` pixels.
fn keep_large(mask: &Array2<bool>, min_px: u64) -> Array2<bool> {
    let (h, w) = mask.dim();
    let (runs, n) = morphology::component_runs(mask);
    let size = component_sizes(&runs, n);
    runs_mask(h, w, &runs, |l| size[l as usize] >= min_px)
}

/// The pixels of each component (by label; 0 for none) of `n` labelled in `runs`.
fn component_sizes(runs: &[morphology::Run], n: usize) -> Vec<u64> {
    let mut size = vec![0u64; n + 1];
    for r in runs {
        size[r.label as usize] += u64::from(r.x1 - r.x0);
    }
    size
}

/// An `h × w` mask set on the runs whose component passes `keep`.
/// Shadow pixels (the spectrum's direction kept) a darkened area (`dark`: no band brighter,
/// brightness below 65 %) must hold, as a share of it, to be taken for one shadow whole.
const SHADOW_SHARE_OF_DARK: f64 = 0.1;

/// Cloud shadows grown through the pixels joined to them that darkened as much, whatever their
/// spectrum's direction: under a shadow a field ripening or a surface changing turns the
/// spectrum too, and the shadow test's angle left such a field out of the shadow over it (a
/// speckle of shadow pixels, too small to keep), to be read as bare ground. A darkened area is
/// a shadow when at least [`SHADOW_SHARE_OF_DARK`] of it passes the shadow test: a pond dug in
/// bare soil darkens every band too but turns the spectrum throughout.
fn grow_shadow(shadow: &Array2<bool>, dark: &Array2<bool>) -> Array2<bool> {
    let (h, w) = shadow.dim();
    let mut either = shadow.clone();
    either.zip_mut_with(dark, |s, d| *s |= *d);
    let (runs, n) = morphology::component_runs(&either);
    let shadow_s = flat(shadow);
    let (mut size, mut shaded) = (vec![0u64; n + 1], vec![0u64; n + 1]);
    for r in &runs {
        let l = r.label as usize;
        size[l] += u64::from(r.x1 - r.x0);
        shaded[l] += shadow_s[r.span(w)].iter().filter(|s| **s).count() as u64;
    }
    runs_mask(h, w, &runs, |l| {
        let l = l as usize;
        shaded[l] as f64 >= SHADOW_SHARE_OF_DARK * size[l] as f64
    })
}

/// The components of `mask` of at least `big_px` pixels, and those of at least `min_px` that come
/// within `reach` pixels of one of them.
fn keep_large_and_their_fringe(
    mask: &Array2<bool>,
    min_px: u64,
    big_px: u64,
    reach: u8,
) -> Array2<bool> {
    let (h, w) = mask.dim();
    let (runs, n) = morphology::component_runs(mask);
    let size = component_sizes(&runs, n);
    let big = runs_mask(h, w, &runs, |l| size[l as usize] >= big_px);
    if !any_set(&big) {
        return big;
    }
    let near = morphology::dilate(&big, reach);
    let near = flat(&near);
    let mut meets = vec![false; n + 1];
    for r in &runs {
        let l = r.label as usize;
        if !meets[l] && size[l] >= min_px {
            meets[l] = near[r.span(w)].iter().any(|v| *v);
        }
    }
    runs_mask(h, w, &runs, |l| {
        meets[l as usize] || size[l as usize] >= big_px
    })
}

fn runs_mask(
    h: usize,
    w: usize,
    runs: &[morphology::Run],
    keep: impl Fn(u32) -> bool,
) -> Array2<bool> {
    let mut out = vec![false; h * w];
    for r in runs.iter().filter(|r| keep(r.label)) {
        out[r.span(w)].fill(true);
    }
    Array2::from_shape_vec((h, w), out).unwrap_or_else(|_| Array2::from_elem((h, w), false))
}

/// For cloud cores with a NIR band: clouds are bright in the near infrared too (unlike blue roofs).
fn has_nir_brightness(b: &Array3<f32>, has_nir: bool, y: usize, x: usize) -> bool {
    if !has_nir {
        return true;
    }
    let vis = (b[[0, y, x]] + b[[1, y, x]] + b[[2, y, x]]) / 3.0;
    b[[3, y, x]] > 0.8 * vis
}

/// `lowest` over labels where 0 means none: each label is taken one down, wrapping (0 becomes
/// the largest value), so a plain minimum — which vectorises — picks the lowest non-zero label,
/// and one up again gives it back (or 0 when there was none).
#[inline]
fn down(l: u32) -> u32 {
    l.wrapping_sub(1)
}

/// Grows labels by `r` pixels (square), the lowest neighbouring label winning, for ring
/// statistics: a row pass (a labelled pixel keeps its label, an unlabelled one takes the lowest
/// within `r` in its row), then a column pass over it the same way. `lab` is an `h × w` raster
/// in row-major order. Calls `f(y, row)` for the rows `y` of `rows` that hold a label after
/// growing; the other rows hold none.
///
/// Labels are sparse (a few regions in a window), so only the rows within `r` of a labelled row
/// are worked on, a row at a time.
fn for_dilated_rows(
    lab: &[u32],
    h: usize,
    w: usize,
    r: usize,
    rows: std::ops::Range<usize>,
    mut f: impl FnMut(usize, &[u32]),
) {
    if w == 0 || h == 0 || lab.len() != h * w {
        return;
    }
    let labelled: Vec<bool> = lab
        .chunks_exact(w)
        .map(|row| next_nonzero(row, 0) < w)
        .collect();
    // The row pass of each labelled row, kept in `passed` (its slot in `slot`).
    let mut slot = vec![usize::MAX; h];
    let mut passed: Vec<u32> = Vec::with_capacity(count_set_slice(&labelled) * w);
    let mut near = vec![u32::MAX; w];
    for y in (0..h).filter(|y| labelled[*y]) {
        let row = &lab[y * w..(y + 1) * w];
        near.fill(u32::MAX);
        for d in 1..=r.min(w - 1) {
            for (n, l) in near[..w - d].iter_mut().zip(&row[d..]) {
                *n = (*n).min(down(*l));
            }
            for (n, l) in near[d..].iter_mut().zip(&row[..w - d]) {
                *n = (*n).min(down(*l));
            }
        }
        slot[y] = passed.len() / w;
        passed.extend(
            row.iter()
                .zip(&near)
                .map(|(own, n)| if *own != 0 { *own } else { n.wrapping_add(1) }),
        );
    }
    let mut out = vec![0u32; w];
    for y in rows.start..rows.end.min(h) {
        let (lo, hi) = (y.saturating_sub(r), (y + r + 1).min(h));
        if !labelled[lo..hi].iter().any(|v| *v) {
            continue;
        }
        near.fill(u32::MAX);
        for yy in (lo..hi).filter(|yy| labelled[*yy]) {
            let other = &passed[slot[yy] * w..(slot[yy] + 1) * w];
            for (n, l) in near.iter_mut().zip(other) {
                *n = (*n).min(down(*l));
            }
        }
        if labelled[y] {
            let own = &passed[slot[y] * w..(slot[y] + 1) * w];
            for ((o, own), n) in out.iter_mut().zip(own).zip(&near) {
                *o = if *own != 0 { *own } else { n.wrapping_add(1) };
            }
        } else {
            for (o, n) in out.iter_mut().zip(&near) {
                *o = n.wrapping_add(1);
            }
        }
        f(y, &out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::Window;

    /// A synthetic pair: vegetated ground with a radiometric shift, one new building, one
    /// harvested field, noise.
    fn pair(n: usize) -> (CellImage, CellImage) {
        let veg = [350.0f32, 700.0, 450.0, 3800.0];
        let roof = [2000.0f32, 2100.0, 2150.0, 2350.0];
        let stubble = [850.0f32, 1200.0, 1450.0, 2500.0];
        let mut b = Array3::<f32>::zeros((4, n, n));
        let mut a = Array3::<f32>::zeros((4, n, n));
        let mut rng = crate::synth::rng::Rng::new(5, "detect-test");
        for y in 0..n {
            for x in 0..n {
                let field = 1.0 + 0.1 * (((x / 16) * 7 + (y / 16) * 3) % 5) as f32 / 5.0;
                for k in 0..4 {
                    let before = veg[k] * field;
                    let mut after = before;
                    if (20..40).contains(&y) && (20..44).contains(&x) {
                        after = roof[k];
                    }
                    if (60..100).contains(&y) && (60..100).contains(&x) {
                        after = stubble[k] * field;
                    }
                    b[[k, y, x]] = before + 15.0 * rng.normal() as f32;
                    a[[k, y, x]] = after * 1.05 + 30.0 + 15.0 * rng.normal() as f32;
                }
            }
        }
        (image(b), image(a))
    }

    /// The default detector over two windows of blue, green and red bands (no near infrared).
    fn detect_rgb(before: Array3<f32>, after: Array3<f32>) -> CellResult {
        let rgb = |bands: Array3<f32>| {
            let mut img = image(bands);
            img.roles.truncate(3);
            img
        };
        let (b, a) = (rgb(before), rgb(after));
        SpectralDetector::default().detect(&whole(&b, &a)).unwrap()
    }

    /// The pixels of a window's part whose unobserved reason is `v`.
    fn count_unobserved(
        r: &CellResult,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        v: u8,
    ) -> usize {
        r.unobserved
            .slice(s![rows, cols])
            .iter()
            .filter(|u| **u == v)
            .count()
    }

    /// A window of blue, green, red and near-infrared bands, every pixel valid.
    /// The whole window of `before` and `after` as one cell (its core the window), 0.5 m pixels.
    fn whole<'a>(before: &'a CellImage, after: &'a CellImage) -> CellInput<'a> {
        let (h, w) = before.valid.dim();
        CellInput {
            cell_id: "test",
            before,
            after,
            core_offset: (0, 0),
            core_size: (w, h),
            pixel_area_m2: 0.25,
        }
    }

    fn image(bands: Array3<f32>) -> CellImage {
        let (_, h, w) = bands.dim();
        CellImage {
            window: Window {
                x: 0,
                y: 0,
                width: w,
                height: h,
            },
            roles: vec![
                BandRole::Blue,
                BandRole::Green,
                BandRole::Red,
                BandRole::Nir,
            ],
            bands,
            valid: Array2::from_elem((h, w), true),
            flagged: None,
            contributing: vec![0],
        }
    }

    /// The images of `pair(n)` with columns from `edge` on outside the imagery (no data, zero),
    /// and a cell whose core is the window less a 16 px halo.
    fn cell_on_an_edge(n: usize, edge: usize) -> (Cell, CellImage, CellImage) {
        let (mut b, mut a) = pair(n);
        for img in [&mut b, &mut a] {
            img.bands.slice_mut(s![.., .., edge..]).fill(0.0);
            img.valid.slice_mut(s![.., edge..]).fill(false);
        }
        let win = |x, width| Window {
            x,
            y: 0,
            width,
            height: n,
        };
        let cell = Cell {
            id: "edge".into(),
            row: 0,
            col: 0,
            core: Window {
                x: 16,
                y: 16,
                width: n - 32,
                height: n - 32,
            },
            read: win(0, n),
        };
        (cell, b, a)
    }

    fn same_result(x: &CellResult, y: &CellResult) {
        assert_eq!(
            bits(x.score.as_slice().unwrap()),
            bits(y.score.as_slice().unwrap())
        );
        assert_eq!(x.mask, y.mask);
        assert_eq!(x.labels, y.labels);
        assert_eq!(x.unobserved, y.unobserved);
        assert_eq!(x.regions, y.regions);
        assert_eq!(x.stats, y.stats);
    }

    #[test]
    fn images_of_the_covered_part_give_the_result_of_the_whole_window() {
        let det = SpectralDetector::default();
        let n = 160;
        // Cropped (the covered part is 55 % of the window) and not (96 %, grown back).
        for edge in [72, 138] {
            let (cell, b, a) = cell_on_an_edge(n, edge);
            let whole = detect_cropped(&det, &cell, &b, &a, 0.25).unwrap();
            assert!(whole
                .regions
                .iter()
                .any(|r| r.transition == Transition::VegetationToBuilt));
            assert!(whole.unobserved.iter().any(|u| *u == UNOBSERVED_NO_DATA));
            // What a reader of the covered part gives: the imagery and a margin around it; the
            // after date read a little wider (another reader, another source).
            let part = |w| Window {
                x: 0,
                y: 0,
                width: w,
                height: n,
            };
            let (pb, pa) = (
                part(edge + CROP_MARGIN),
                part((edge + 2 * CROP_MARGIN).min(n)),
            );
            let (b2, a2) = (b.on_window(&pb), a.on_window(&pa));
            assert!(matches!(b2, std::borrow::Cow::Owned(_)));
            same_result(
                &whole,
                &detect_cropped(&det, &cell, &b2, &a2, 0.25).unwrap(),
            );
        }
    }

    #[test]
    fn imagery_outside_the_cells_window_is_refused() {
        let (cell, b, a) = cell_on_an_edge(64, 40);
        let mut off = a.clone();
        off.window.x = 8;
        let e = detect_cropped(&SpectralDetector::default(), &cell, &b, &off, 0.25).unwrap_err();
        assert!(
            e.to_string().contains("does not fit the cell's window"),
            "{e}"
        );
    }

    /// A core that cuts through a region reports exactly the region's pixels inside it: the
    /// labels and the regions' pixel counts of a core are those of the whole window's result
    /// restricted to the core (the building spans columns 20..44; the core ends at column 32).
    #[test]
    fn a_core_cutting_a_region_reports_only_its_part_of_the_region() {
        let (b, a) = pair(128);
        let det = SpectralDetector::default();
        let run = |core_size| {
            det.detect(&CellInput {
                cell_id: "test",
                before: &b,
                after: &a,
                core_offset: (0, 0),
                core_size,
                pixel_area_m2: 0.25,
            })
            .unwrap()
        };
        let (whole, part) = (run((128, 128)), run((32, 128)));
        let cut = whole.labels.slice(s![.., ..32]);
        assert_eq!(part.labels.mapv(|l| l > 0), cut.mapv(|l| l > 0));
        let mut inside = vec![0u64; whole.regions.len() + 1];
        for l in cut.iter() {
            inside[*l as usize] += 1;
        }
        let mut want: Vec<(Transition, u64)> = (1..inside.len())
            .filter(|l| inside[*l] > 0)
            .map(|l| (whole.regions[l - 1].transition, inside[l]))
            .collect();
        let mut got: Vec<(Transition, u64)> = part
            .regions
            .iter()
            .map(|g| (g.transition, g.pixels))
            .collect();
        want.sort_by_key(|(t, n)| (*t as u8, *n));
        got.sort_by_key(|(t, n)| (*t as u8, *n));
        assert!(!got.is_empty());
        assert_eq!(got, want);
    }

    /// A cloud shadow over vegetation and a river: the sun's light goes, the sky's diffuse light
    /// stays (`0.35 v + 120`, as `landwatch synth` renders it), so the water's near infrared,
    /// next to nothing, stays level and its noise lifts it in half the pixels. The shadow is
    /// one, over the water as over the field: reported unobserved, and no change of land use.
    #[test]
    fn a_shadow_over_water_is_a_shadow_not_a_filled_river() {
        let n = 192;
        let veg = [350.0f32, 700.0, 450.0, 3800.0];
        let water = [750.0f32, 650.0, 400.0, 180.0];
        let mut b = Array3::<f32>::zeros((4, n, n));
        let mut a = Array3::<f32>::zeros((4, n, n));
        let mut rng = crate::synth::rng::Rng::new(7, "shadow-over-water");
        let shade = |y: usize, x: usize| (50..150).contains(&y) && (40..150).contains(&x);
        for y in 0..n {
            for x in 0..n {
                let ground = if (90..150).contains(&x) { water } else { veg };
                for k in 0..4 {
                    let v = if shade(y, x) {
                        0.35 * ground[k] + 120.0
                    } else {
                        ground[k]
                    };
                    b[[k, y, x]] = ground[k] + 15.0 * rng.normal() as f32;
                    a[[k, y, x]] = v * 1.05 + 30.0 + 15.0 * rng.normal() as f32;
                }
            }
        }
        let (b, a) = (image(b), image(a));
        let input = whole(&b, &a);
        let r = SpectralDetector::default().detect(&input).unwrap();
        let changes: Vec<(Transition, u64)> = r
            .regions
            .iter()
            .filter(|g| g.transition.is_land_use_change())
            .map(|g| (g.transition, g.pixels))
            .collect();
        assert!(changes.is_empty(), "{changes:?}");
        assert!(r.mask.iter().all(|m| *m != MASK_CHANGE));
        // The water under the shadow, away from its rim, is unobserved for the shadow.
        let water_shaded = r.unobserved.slice(s![60..140, 100..140]);
        let shadowed = water_shaded
            .iter()
            .filter(|u| **u == UNOBSERVED_SHADOW)
            .count();
        assert_eq!(shadowed, water_shaded.len());
    }

    /// Without near infrared, bare ground that turned green (a field sown or grown over)
    /// darkens every visible band at a small spectral angle, as a shadow does; it is not a
    /// shadow (green gains on blue; under the sky's blue light it loses), so its parcel is
    /// observed. A shadow beside it still is one. The old test read the sown field as a shadow.
    #[test]
    fn bare_ground_turned_green_without_near_infrared_is_not_a_shadow() {
        let n = 192;
        let veg = [350.0f32, 700.0, 450.0];
        let soil = [946.0f32, 1209.0, 1524.0];
        // The sky's light in the shadow: blue most.
        let sky = [160.0f32, 110.0, 70.0];
        let mut b = Array3::<f32>::zeros((3, n, n));
        let mut a = Array3::<f32>::zeros((3, n, n));
        let mut rng = crate::synth::rng::Rng::new(11, "sown-field");
        let sown = |y: usize, x: usize| (40..150).contains(&y) && (20..90).contains(&x);
        let shade = |y: usize, x: usize| (40..150).contains(&y) && (110..180).contains(&x);
        for y in 0..n {
            for x in 0..n {
                for k in 0..3 {
                    let (before, after) = if sown(y, x) {
                        (soil[k], veg[k])
                    } else if shade(y, x) {
                        (veg[k], 0.3 * veg[k] + sky[k])
                    } else {
                        (veg[k], veg[k])
                    };
                    b[[k, y, x]] = before + 15.0 * rng.normal() as f32;
                    a[[k, y, x]] = after * 1.05 + 30.0 + 15.0 * rng.normal() as f32;
                }
            }
        }
        let r = detect_rgb(b, a);
        let count = |rows, cols, v| count_unobserved(&r, rows, cols, v);
        // The sown field, away from the shadow's buffer: observed.
        assert_eq!(count(50..140, 25..70, UNOBSERVED_SHADOW), 0);
        // The shadow, away from its rim: a shadow.
        assert_eq!(count(50..140, 120..170, UNOBSERVED_SHADOW), 90 * 50);
    }

    /// Without near infrared, a hardened yard on vegetation brightens every visible band alike,
    /// as haze does: a yard of 900 m² far from any cloud is judged (it was masked as haze), a
    /// haze patch of 4 500 m² is masked.
    #[test]
    fn a_hardened_yard_without_near_infrared_is_judged_and_a_large_haze_patch_masked() {
        let n = 256;
        let veg = [350.0f32, 700.0, 450.0];
        let soil = [946.0f32, 1209.0, 1524.0];
        let road = [1400.0f32, 1450.0, 1480.0];
        let concrete = [1650.0f32, 1700.0, 1720.0];
        let white = 6300.0f32;
        let mut b = Array3::<f32>::zeros((3, n, n));
        let mut a = Array3::<f32>::zeros((3, n, n));
        let mut rng = crate::synth::rng::Rng::new(12, "hardened-yard");
        let yard = |y: usize, x: usize| (20..80).contains(&y) && (20..80).contains(&x);
        let haze = |y: usize, x: usize| (130..250).contains(&y) && (60..210).contains(&x);
        // Fields of crops and of bare soil between roads, unchanged but for the yard and the haze.
        for y in 0..n {
            for x in 0..n {
                for k in 0..3 {
                    let ground = if x % 64 < 6 || y % 64 < 6 {
                        road[k]
                    } else if (x / 64 + y / 64) % 2 == 1 {
                        soil[k]
                    } else {
                        veg[k]
                    };
                    let (before, after) = if yard(y, x) {
                        (veg[k], concrete[k])
                    } else if haze(y, x) {
                        (ground, 0.7 * ground + 0.3 * white)
                    } else {
                        (ground, ground)
                    };
                    b[[k, y, x]] = before + 15.0 * rng.normal() as f32;
                    a[[k, y, x]] = after * 1.05 + 30.0 + 15.0 * rng.normal() as f32;
                }
            }
        }
        let r = detect_rgb(b, a);
        let count = |rows, cols, v| count_unobserved(&r, rows, cols, v);
        assert_eq!(count(25..75, 25..75, UNOBSERVED_CLOUD), 0);
        let changed = r
            .mask
            .slice(s![25..75, 25..75])
            .iter()
            .filter(|m| **m == 1)
            .count();
        assert_eq!(changed, 50 * 50);
        assert_eq!(count(140..240, 70..200, UNOBSERVED_CLOUD), 100 * 130);
    }

    #[test]
    fn a_large_patch_is_kept_with_the_pieces_of_its_fringe_and_a_lone_piece_is_not() {
        let mut m = Array2::from_elem((60, 100), false);
        m.slice_mut(s![5..45, 5..45]).fill(true); // 1 600 px: large
        m.slice_mut(s![5..25, 50..60]).fill(true); // 200 px, 5 px from it: its fringe
        m.slice_mut(s![40..60, 80..90]).fill(true); // 200 px, far from it: alone
        m.slice_mut(s![50..52, 50..52]).fill(true); // 4 px beside: too small to count
        let kept = keep_large_and_their_fringe(&m, 100, 1000, 10);
        assert_eq!(count_set(&kept), 1600 + 200);
        assert!(kept[[10, 55]] && !kept[[50, 85]] && !kept[[50, 50]]);
        // Without a large patch nothing is kept.
        assert!(!any_set(&keep_large_and_their_fringe(&m, 100, 5000, 10)));
    }

    /// A darkened area joins the shadow when enough of it passes the shadow test: a ripening
    /// field under a cloud shadow (the angle test fails on most of it), not a pond dug in bare
    /// soil whose few mixed edge pixels pass.
    #[test]
    fn a_shadow_grows_through_darkened_ground_that_is_mostly_shadow() {
        let (h, w) = (40, 60);
        let mut shadow = Array2::from_elem((h, w), false);
        let mut dark = Array2::from_elem((h, w), false);
        // Left: a 20 × 20 darkened field, a quarter of it passing the shadow test.
        dark.slice_mut(s![5..25, 5..25]).fill(true);
        shadow.slice_mut(s![5..25, 5..10]).fill(true);
        // Right: a 20 × 20 pond, 4 of its 400 pixels passing.
        dark.slice_mut(s![10..30, 35..55]).fill(true);
        shadow.slice_mut(s![10..12, 35..37]).fill(true);
        let grown = grow_shadow(&shadow, &dark);
        assert!(grown.slice(s![5..25, 5..25]).iter().all(|v| *v));
        assert!(grown.slice(s![10..30, 35..55]).iter().all(|v| !*v));
        assert_eq!(grown.iter().filter(|v| **v).count(), 400);
    }

    #[test]
    fn finds_the_building_and_calls_the_harvest_a_cycle() {
        let (b, a) = pair(128);
        let input = whole(&b, &a);
        let det = SpectralDetector::default();
        let r = det.detect(&input).unwrap();
        let built: Vec<&RegionStats> = r
            .regions
            .iter()
            .filter(|g| g.transition == Transition::VegetationToBuilt)
            .collect();
        assert_eq!(
            built.len(),
            1,
            "{:?}",
            r.regions
                .iter()
                .map(|g| (g.transition, g.pixels))
                .collect::<Vec<_>>()
        );
        // 20 × 24 = 480 pixels; the mask follows the roof's edges.
        assert!(
            (built[0].pixels as i64 - 480).abs() <= 30,
            "{}",
            built[0].pixels
        );
        assert!(r
            .regions
            .iter()
            .any(|g| g.transition == Transition::VegetationCycle && g.pixels > 1000));
        assert!(r
            .regions
            .iter()
            .all(|g| g.transition != Transition::VegetationToBare));
        assert_eq!(r.mask[[30, 30]], MASK_CHANGE);
        assert_eq!(
            r.mask[[80, 80]],
            MASK_NO_CHANGE,
            "harvest is not a land-use change"
        );
        assert_eq!(r.mask[[5, 5]], MASK_NO_CHANGE);
        assert!(built[0].confidence(r.stats.threshold, 80.0) > 0.5);
        assert!(
            r.stats.normalization.starts_with("irmad"),
            "{}",
            r.stats.normalization
        );
    }

    #[test]
    fn another_detectors_mask_combines_with_the_spectral_one() {
        let (b, a) = pair(128);
        let input = whole(&b, &a);
        let det = SpectralDetector::default();
        // A "model" that sees only the left half of the building.
        let score = Array2::from_shape_fn((128, 128), |(y, x)| {
            if (20..40).contains(&y) && (20..32).contains(&x) {
                0.9
            } else {
                0.1
            }
        });
        let given = |combine| GivenChange {
            score: score.clone(),
            threshold: 0.5,
            combine,
        };
        let built = |r: &CellResult| -> Vec<RegionStats> {
            r.regions
                .iter()
                .filter(|g| g.transition == Transition::VegetationToBuilt)
                .cloned()
                .collect()
        };
        let replace = det
            .detect_with(&input, Some(&given(Combine::Replace)))
            .unwrap();
        let both = det
            .detect_with(&input, Some(&given(Combine::Both)))
            .unwrap();
        let either = det
            .detect_with(&input, Some(&given(Combine::Either)))
            .unwrap();
        let (r, bo, ei) = (built(&replace), built(&both), built(&either));
        assert_eq!((r.len(), bo.len(), ei.len()), (1, 1, 1));
        assert!(
            r[0].pixels < 300 && bo[0].pixels < 300,
            "{} {}",
            r[0].pixels,
            bo[0].pixels
        );
        assert!(
            ei[0].pixels > 400,
            "either keeps the spectral detector's whole roof: {}",
            ei[0].pixels
        );
        // The model alone reports in its own units and threshold, graded by its own margin.
        assert_eq!(replace.stats.threshold, 0.5);
        assert_eq!(replace.score[[30, 25]], 0.9);
        assert_eq!(r[0].agree_pixels, None);
        // Where only one detector saw part of the change, the confidence says so.
        assert_eq!(bo[0].agree_pixels, Some(bo[0].pixels));
        let half = ei[0].agree_pixels.unwrap() as f64 / ei[0].pixels as f64;
        assert!(half > 0.3 && half < 0.7, "{half}");
        let mut alone = ei[0].clone();
        alone.agree_pixels = None;
        let thr = either.stats.threshold;
        assert!(ei[0].confidence(thr, 80.0) < alone.confidence(thr, 80.0));
        // The harvest stays a vegetation cycle whatever the model says.
        assert_eq!(either.mask[[80, 80]], MASK_NO_CHANGE);
    }

    #[test]
    fn missing_bands_are_named() {
        let (b, mut a) = pair(32);
        a.roles = vec![
            BandRole::Red,
            BandRole::Green,
            BandRole::Unknown,
            BandRole::Unknown,
        ];
        let input = CellInput {
            cell_id: "c1",
            before: &b,
            after: &a,
            core_offset: (0, 0),
            core_size: (32, 32),
            pixel_area_m2: 0.25,
        };
        let e = SpectralDetector::default()
            .detect(&input)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c1") && e.contains("blue"), "{e}");
    }

    proptest::proptest! {
        /// The median brightness is found on the sums and divided once: dividing by three rounds
        /// monotonically, so it is the median of the divided sums, bit for bit (zeros of either
        /// sign, negatives, ties, subnormals and more than the radix selection's minimum count
        /// included).
        #[test]
        fn the_median_of_sums_divided_is_the_median_of_divided_sums(
            sums in proptest::collection::vec(
                proptest::prop_oneof![
                    6 => -10.0f32..60_000.0,
                    2 => proptest::sample::select(vec![0.0f32, -0.0, 1e-40, -1e-40, 3.0, 196_605.0]),
                    1 => proptest::num::f32::NORMAL,
                ],
                0..20_000,
            ),
        ) {
            let divided: Vec<f32> = sums.iter().map(|s| s / 3.0).collect();
            proptest::prop_assert_eq!((median(sums) / 3.0).to_bits(), median(divided).to_bits());
        }
    }

    proptest::proptest! {
        /// The run-based half-maximum trim gives what the label-array one gives: each region's
        /// cut from the median of its finite scores, growth into changed 4-neighbours outside
        /// every region (next to several regions, next to the border, scores NaN or equal to a
        /// cut included).
        #[test]
        fn half_max_on_runs_equals_half_max_on_labels(
            h in 1usize..24,
            w in 1usize..24,
            cells in proptest::collection::vec(
                (
                    proptest::bool::weighted(0.45),
                    proptest::bool::weighted(0.5),
                    proptest::prop_oneof![
                        6 => 0f32..8.0,
                        2 => proptest::sample::select(vec![0.0f32, 1.0, 2.0, 4.0]),
                        1 => proptest::strategy::Just(f32::NAN),
                    ],
                ),
                576,
            ),
        ) {
            let n = h * w;
            let mask = Array2::from_shape_fn((h, w), |(y, x)| cells[y * w + x].0);
            let changed = Array2::from_shape_fn((h, w), |(y, x)| cells[y * w + x].1);
            let score = Array2::from_shape_fn((h, w), |(y, x)| cells[y * w + x].2);
            let runs = half_max(&mask, &score, &changed);
            let labels = half_max_labels(&mask, &score, &changed);
            proptest::prop_assert_eq!(runs.len(), n);
            proptest::prop_assert_eq!(runs, labels);
        }
    }

    proptest::proptest! {
        /// The one sweep (strips of any height) gives bit for bit what its steps give done one
        /// after the other over whole bands: the mapped bands, haze and shadow, and the score
        /// wherever observed.
        #[test]
        fn the_sweep_equals_its_steps(
            h in 1usize..14,
            w in 1usize..14,
            rows in 1usize..6,
            four in proptest::bool::ANY,
            values in proptest::collection::vec((0u16..3000, 0u16..3000, proptest::bool::ANY), 196 * 4),
            knots in proptest::collection::vec((0f32..3000.0, 0f32..3000.0), 2..12),
            seen in proptest::collection::vec(proptest::bool::weighted(0.8), 196),
            haze_delta in 10f32..400.0,
        ) {
            let nb = if four { 4 } else { 3 };
            let n = h * w;
            // Integers mostly, a fraction now and then (the mapping's slow path).
            let px = |i: usize, which: usize| {
                let (b, a, frac) = values[i];
                let v = if which == 0 { b } else { a } as f32;
                if frac && i % 7 == 0 { v + 0.25 } else { v }
            };
            let before = Array3::from_shape_fn((nb, h, w), |(k, y, x)| px(k * n + y * w + x, 0));
            let after = Array3::from_shape_fn((nb, h, w), |(k, y, x)| px(k * n + y * w + x, 1));
            let mut from: Vec<f32> = knots.iter().map(|k| k.0.round()).collect();
            let mut to: Vec<f32> = knots.iter().map(|k| k.1).collect();
            from.sort_by(f32::total_cmp);
            from.dedup();
            to.sort_by(f32::total_cmp);
            to.truncate(from.len());
            proptest::prop_assume!(from.len() >= 2);
            let mapping = normalize::BandMapping { from, to };
            let mappers: Vec<_> = (0..nb).map(|_| mapping.mapper(500.0, 2500.0, n)).collect();
            let observed = &seen[..n];
            let inv: Vec<f32> = (0..nb).map(|k| 0.01 + 0.003 * k as f32).collect();
            let cos = 20f32.to_radians().cos();
            let (mapped, cl, sh, _, score) = if four {
                map_haze_score::<4>(&before, &after, &mappers, observed, haze_delta, cos, &inv, rows)
            } else {
                map_haze_score::<3>(&before, &after, &mappers, observed, haze_delta, cos, &inv, rows)
            };
            let mut want: Vec<f32> = Vec::new();
            for k in 0..nb {
                mapping.apply_all_into(band_slice(&after, k), &mut want);
            }
            proptest::prop_assert_eq!(bits(&mapped), bits(&want));
            let after_n = Array3::from_shape_vec((nb, h, w), want).unwrap();
            let (wcl, wsh, _) = if four {
                haze_and_shadow::<4>(&before, &after_n, observed, haze_delta, cos, &inv)
            } else {
                haze_and_shadow::<3>(&before, &after_n, observed, haze_delta, cos, &inv)
            };
            proptest::prop_assert_eq!(cl, wcl);
            proptest::prop_assert_eq!(sh, wsh);
            let bs: Vec<&[f32]> = (0..nb).map(|k| band_slice(&before, k)).collect();
            let as_: Vec<&[f32]> = (0..nb).map(|k| band_slice(&after_n, k)).collect();
            let wscore = if four {
                score_plane::<4>(&bs, &as_, &inv, observed)
            } else {
                score_plane::<3>(&bs, &as_, &inv, observed)
            };
            let masked: Vec<f32> = score
                .iter()
                .zip(observed)
                .map(|(s, o)| if *o { *s } else { f32::NAN })
                .collect();
            proptest::prop_assert_eq!(bits(&masked), bits(&wscore));
        }

        /// The sparse visit sees exactly the non-zero values, in order, whatever the length (the
        /// tail after the last sixteen included), for labels and for masks; the skip under it
        /// lands on the first non-zero value from any start.
        #[test]
        fn for_each_nonzero_visits_the_nonzero_values(
            raw in proptest::collection::vec((0u32..4, 0u32..60), 0..80),
        ) {
            // Mostly zero, as labels are, with runs and single values.
            let labels: Vec<u32> = raw.iter().map(|(k, l)| if *k == 0 { *l } else { 0 }).collect();
            let mut got = Vec::new();
            for_each_nonzero(&labels, |i, l| got.push((i, l)));
            let want: Vec<(usize, u32)> =
                labels.iter().copied().enumerate().filter(|(_, l)| *l != 0).collect();
            proptest::prop_assert_eq!(got, want);
            let mask: Vec<bool> = labels.iter().map(|l| *l != 0).collect();
            let mut set = Vec::new();
            for_each_nonzero(&mask, |i, v| {
                assert!(v);
                set.push(i);
            });
            let want: Vec<usize> = (0..mask.len()).filter(|i| mask[*i]).collect();
            proptest::prop_assert_eq!(set, want);
            // From any start, the skip lands on the first non-zero value at or after it.
            for x in 0..=labels.len() {
                let first = (x..labels.len()).find(|i| labels[*i] != 0).unwrap_or(labels.len());
                proptest::prop_assert_eq!(next_nonzero(&labels, x), first);
                proptest::prop_assert_eq!(next_nonzero(&mask, x), first);
            }
        }

        /// The ring labels: a labelled pixel keeps its label; an unlabelled one takes the lowest
        /// label of its row run, else the lowest of its column run over the row pass (checked
        /// against that definition, pixel by pixel, dense and sparse, over any range of rows:
        /// the rows left out of the calls are the unlabelled ones and those outside the range).
        #[test]
        fn dilated_rows_are_the_row_then_column_lowest_label(
            h in 1usize..20,
            w in 1usize..20,
            r in 0usize..4,
            labelled in 1u32..40,
            rows in (0usize..22, 0usize..22),
            seed in proptest::collection::vec(0u32..40, 400),
        ) {
            // A share `labelled / 40` of the pixels labelled, with labels 1–4 (many ties) or 1–40.
            let lab: Vec<u32> = (0..h * w)
                .map(|i| match seed[i] {
                    s if s >= labelled => 0,
                    s if labelled % 2 == 0 => 1 + s % 4,
                    s => 1 + s,
                })
                .collect();
            let rows = rows.0.min(rows.1)..rows.0.max(rows.1);
            let lowest = |vals: Vec<u32>| vals.into_iter().filter(|l| *l != 0).min().unwrap_or(0);
            let row_pass = |y: usize, x: usize| -> u32 {
                let own = lab[y * w + x];
                if own != 0 {
                    return own;
                }
                lowest((x.saturating_sub(r)..(x + r + 1).min(w)).map(|xx| lab[y * w + xx]).collect())
            };
            let mut got = vec![0u32; h * w];
            let mut called = Vec::new();
            for_dilated_rows(&lab, h, w, r, rows.clone(), |y, row| {
                called.push(y);
                got[y * w..(y + 1) * w].copy_from_slice(row);
            });
            proptest::prop_assert!(called.windows(2).all(|p| p[0] < p[1]), "rows in order once");
            proptest::prop_assert!(called.iter().all(|y| rows.contains(y)));
            for y in rows.start..rows.end.min(h) {
                for x in 0..w {
                    let mut want = row_pass(y, x);
                    if want == 0 {
                        want = lowest((y.saturating_sub(r)..(y + r + 1).min(h)).map(|yy| row_pass(yy, x)).collect());
                    }
                    proptest::prop_assert_eq!(got[y * w + x], want, "at ({}, {})", y, x);
                }
            }
        }
    }
}
