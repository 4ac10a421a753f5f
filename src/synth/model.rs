//! The synthetic scene as geometry and attributes: parcels with approved uses and control layers,
//! permits, land cover at both dates, injected changes with their ground truth, clouds, the drone
//! flight. Pure: no IO, no GDAL; everything in EPSG:4549 map coordinates.

use super::rng::Rng;
use chrono::{NaiveDate, NaiveDateTime};
use geo::{
    Area, BooleanOps, BoundingRect, Centroid, Contains, Coord, LineString, MultiPolygon, Point,
    Polygon, Rect,
};

/// Pixel size of the satellite imagery in metres.
pub const PIXEL_M: f64 = 0.5;
/// Pixel size of the drone orthophoto in metres.
pub const DRONE_PIXEL_M: f64 = 0.05;
/// CRS of the scene (CGCS2000 / 3-degree Gauss-Kruger CM 120E).
pub const SCENE_CRS: &str = "EPSG:4549";
/// CRS of the drone orthophoto (WGS 84 / UTM zone 51N).
pub const DRONE_CRS: &str = "EPSG:32651";
/// North-west corner of the scene: Wujiang district, Suzhou (about 120.64 E, 31.16 N).
pub const ORIGIN: (f64, f64) = (561_152.0, 3_449_344.0);

/// Land cover classes the renderer knows, each with its own reflectance signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Cover {
    /// Asphalt road and farm tracks.
    Road = 0,
    /// Growing crop (green).
    Crop,
    /// Flooded paddy before transplanting.
    Paddy,
    /// Dry fallow soil.
    Fallow,
    /// Harvested field: straw stubble in rows.
    Stubble,
    /// Ripening crop (yellowing).
    Mature,
    /// Orchard / nursery garden.
    Orchard,
    /// Forest.
    Forest,
    /// Grassland.
    Grass,
    /// Clear water.
    Water,
    /// Fresh, turbid water of a newly dug pond.
    MuddyWater,
    /// Ornamental lawn.
    Lawn,
    /// Hardened ground: concrete yards, paved lots.
    Paved,
    /// Grey concrete roof.
    Concrete,
    /// Blue steel roof (sheds, factories).
    SteelRoof,
    /// Red tile roof.
    TileRoof,
    /// Freshly exposed soil (excavation, fill).
    FreshSoil,
    /// A pile of soil or building material.
    SoilPile,
    /// Plastic greenhouse (facility agriculture).
    Greenhouse,
}

/// Number of cover classes.
pub const N_COVERS: usize = 19;

impl Cover {
    /// Blue, green, red and near-infrared reflectance × 10000.
    pub fn signature(self) -> [f32; 4] {
        match self {
            Cover::Road => [900.0, 1000.0, 1100.0, 1300.0],
            Cover::Crop => [350.0, 700.0, 450.0, 3800.0],
            Cover::Paddy => [600.0, 850.0, 650.0, 2000.0],
            Cover::Fallow => [1000.0, 1300.0, 1600.0, 2100.0],
            Cover::Stubble => [850.0, 1200.0, 1450.0, 2500.0],
            Cover::Mature => [500.0, 900.0, 850.0, 2900.0],
            Cover::Orchard => [320.0, 620.0, 380.0, 3300.0],
            Cover::Forest => [280.0, 520.0, 300.0, 3100.0],
            Cover::Grass => [400.0, 750.0, 520.0, 3200.0],
            Cover::Water => [750.0, 650.0, 400.0, 180.0],
            Cover::MuddyWater => [900.0, 950.0, 800.0, 500.0],
            Cover::Lawn => [450.0, 800.0, 550.0, 3000.0],
            Cover::Paved => [1500.0, 1600.0, 1650.0, 1800.0],
            Cover::Concrete => [2000.0, 2100.0, 2150.0, 2350.0],
            Cover::SteelRoof => [2600.0, 1900.0, 1200.0, 1500.0],
            Cover::TileRoof => [900.0, 1000.0, 1700.0, 2000.0],
            Cover::FreshSoil => [1150.0, 1450.0, 1850.0, 2250.0],
            Cover::SoilPile => [1350.0, 1700.0, 2100.0, 2500.0],
            Cover::Greenhouse => [2400.0, 2500.0, 2500.0, 2900.0],
        }
    }

    /// Whether the cover is green vegetation (its NIR follows phenology).
    pub fn is_vegetation(self) -> bool {
        matches!(
            self,
            Cover::Crop
                | Cover::Paddy
                | Cover::Mature
                | Cover::Orchard
                | Cover::Forest
                | Cover::Grass
                | Cover::Lawn
        )
    }

    /// Whether the cover shows planting rows.
    pub fn has_rows(self) -> bool {
        matches!(
            self,
            Cover::Crop | Cover::Paddy | Cover::Stubble | Cover::Mature | Cover::Orchard
        )
    }

    /// All covers by their numeric value.
    pub fn from_u8(v: u8) -> Cover {
        const ALL: [Cover; N_COVERS] = [
            Cover::Road,
            Cover::Crop,
            Cover::Paddy,
            Cover::Fallow,
            Cover::Stubble,
            Cover::Mature,
            Cover::Orchard,
            Cover::Forest,
            Cover::Grass,
            Cover::Water,
            Cover::MuddyWater,
            Cover::Lawn,
            Cover::Paved,
            Cover::Concrete,
            Cover::SteelRoof,
            Cover::TileRoof,
            Cover::FreshSoil,
            Cover::SoilPile,
            Cover::Greenhouse,
        ];
        ALL[(v as usize).min(N_COVERS - 1)]
    }
}

/// A parcel of the land-use plan with its land cover at both dates.
#[derive(Debug, Clone)]
pub struct Parcel {
    /// The parcel id written to `parcels.gpkg`, e.g. `WJ-000123`.
    pub id: String,
    /// Approved use: farmland, garden, forest, grassland, construction, water.
    pub approved_use: &'static str,
    /// Inside permanent basic farmland (永久基本农田).
    pub basic_farmland: bool,
    /// Inside the ecological protection red line (生态保护红线).
    pub eco_redline: bool,
    /// The parcel outline.
    pub polygon: Polygon<f64>,
    /// Cover at the before date.
    pub cover_before: Cover,
    /// Cover at the after date.
    pub cover_after: Cover,
    /// Per-band brightness factor of this parcel (soil, variety), both dates.
    pub gain: [f32; 4],
    /// Per-band factor applied at the after date to vegetation (phenology).
    pub phenology: [f32; 4],
    /// Row direction in radians.
    pub row_angle: f32,
    /// Row spacing in metres.
    pub row_period_m: f32,
}

impl Parcel {
    /// Whether the field is under a crop at the before date (violations are injected on
    /// cultivated fields: a change on ground that was already bare is not spectrally visible).
    pub fn cultivated(&self) -> bool {
        matches!(self.cover_before, Cover::Crop | Cover::Paddy)
    }
}

/// A drawn object (building, yard, pond, patch of soil …) on top of the parcels.
#[derive(Debug, Clone)]
pub struct Object {
    /// Outline.
    pub polygon: Polygon<f64>,
    /// Cover.
    pub cover: Cover,
    /// Brightness factor of this object.
    pub gain: f32,
    /// Whether the object exists at the before date too (else only after).
    pub existing: bool,
}

/// A permit or approval with its footprint and validity.
#[derive(Debug, Clone)]
pub struct Permit {
    /// Permit number.
    pub permit_id: String,
    /// land_use_approval, planning_permit, facility_agriculture, temporary_use.
    pub kind: &'static str,
    /// The use it permits: construction, facility_agriculture, temporary_use.
    pub permitted_use: &'static str,
    /// The parcel it was issued for.
    pub parcel_id: String,
    /// First valid day.
    pub valid_from: NaiveDate,
    /// Last valid day.
    pub valid_to: NaiveDate,
    /// Approved footprint.
    pub footprint: Polygon<f64>,
}

/// What an injected change is, for scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// A suspected violation that must be flagged.
    Violation,
    /// A real land-use change that an approval explains: must not be flagged.
    Legal,
    /// Harvest or crop phenology: a vegetation cycle, not a land-use change.
    Cycle,
    /// Not observable in the after image (cloud, shadow, no data).
    Unobserved,
    /// A geometric or radiometric difference that is not a change at all.
    Artefact,
}

impl Category {
    /// The name written to `truth.geojson`.
    pub fn name(self) -> &'static str {
        match self {
            Category::Violation => "violation",
            Category::Legal => "legal",
            Category::Cycle => "cycle",
            Category::Unobserved => "unobserved",
            Category::Artefact => "artefact",
        }
    }
}

/// One injected change with its ground truth.
#[derive(Debug, Clone)]
pub struct TruthChange {
    /// Kind, e.g. `building_on_farmland`, `harvest`, `cloud`.
    pub kind: &'static str,
    /// Whether it must be flagged.
    pub category: Category,
    /// The parcel it lies in, if any.
    pub parcel_id: Option<String>,
    /// The permit involved, if any.
    pub permit_id: Option<String>,
    /// The land-cover transition, e.g. `vegetation_to_built`.
    pub transition: &'static str,
    /// The changed area.
    pub geometry: MultiPolygon<f64>,
    /// A sentence for people reading the truth file.
    pub note: String,
}

/// A cloud in the after satellite image: a union of soft discs and its shadow offset.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// Discs (centre x, centre y, radius) in metres.
    pub discs: Vec<(f64, f64, f64)>,
    /// Shadow displacement (dx, dy) in metres.
    pub shadow_offset: (f64, f64),
}

impl Cloud {
    /// Opacity in [0, 1] at a point: 1 inside the discs, fading over the outer 25% of each radius.
    pub fn opacity(&self, x: f64, y: f64) -> f32 {
        let mut a = 0f64;
        for &(cx, cy, r) in &self.discs {
            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
            let t = ((r - d) / (0.25 * r)).clamp(0.0, 1.0);
            a = a.max(t * t * (3.0 - 2.0 * t));
        }
        a as f32
    }

    /// The bounding rectangle of the discs, grown by `margin` metres.
    pub fn bounds(&self, margin: f64) -> Rect<f64> {
        let mut r = Rect::new(
            Coord {
                x: self.discs[0].0,
                y: self.discs[0].1,
            },
            Coord {
                x: self.discs[0].0,
                y: self.discs[0].1,
            },
        );
        for &(x, y, rad) in &self.discs {
            r = Rect::new(
                Coord {
                    x: r.min().x.min(x - rad - margin),
                    y: r.min().y.min(y - rad - margin),
                },
                Coord {
                    x: r.max().x.max(x + rad + margin),
                    y: r.max().y.max(y + rad + margin),
                },
            );
        }
        r
    }

    /// The outline where the opacity exceeds about 0.1 (discs slightly shrunk), as polygons.
    pub fn outline(&self, offset: (f64, f64)) -> MultiPolygon<f64> {
        let mut out = MultiPolygon::new(vec![]);
        for &(x, y, r) in &self.discs {
            let disc = MultiPolygon::new(vec![circle(x + offset.0, y + offset.1, r * 0.8, 48)]);
            out = out.union(&disc);
        }
        out
    }
}

/// The drone flight: an after orthophoto over part of the scene, deliberately mis-registered.
#[derive(Debug, Clone)]
pub struct DroneFlight {
    /// Centre of the flown area (EPSG:4549).
    pub centre: (f64, f64),
    /// Flown strip size (metres).
    pub size_m: (f64, f64),
    /// Rotation of the flown area (radians).
    pub angle: f64,
    /// The orthophoto's geolocation error (dx, dy) in metres: the image shows the ground at
    /// (x + dx, y + dy) where its georeferencing says (x, y).
    pub shift_m: (f64, f64),
}

impl DroneFlight {
    /// The flown area as a polygon.
    pub fn footprint(&self) -> Polygon<f64> {
        rotated_rect(
            self.centre.0,
            self.centre.1,
            self.size_m.0,
            self.size_m.1,
            self.angle,
        )
    }
}

/// Acquisition dates and radiometry of the two satellite dates and the drone flight.
#[derive(Debug, Clone)]
pub struct Dates {
    /// Before satellite acquisition.
    pub before: NaiveDateTime,
    /// After satellite acquisition.
    pub after: NaiveDateTime,
    /// Drone flight.
    pub drone: NaiveDateTime,
    /// Per-band gain of the after sensor relative to the before sensor.
    pub after_gain: [f32; 4],
    /// Per-band offset of the after sensor.
    pub after_offset: [f32; 4],
}

/// The whole scene.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The seed it was made from.
    pub seed: u64,
    /// Size in satellite pixels (square).
    pub size_px: usize,
    /// Parcels.
    pub parcels: Vec<Parcel>,
    /// Objects on top of the parcels.
    pub objects: Vec<Object>,
    /// Permits.
    pub permits: Vec<Permit>,
    /// Injected changes and artefacts.
    pub truth: Vec<TruthChange>,
    /// Clouds of the after satellite image.
    pub clouds: Vec<Cloud>,
    /// Where the after satellite image has no data.
    pub after_nodata: Polygon<f64>,
    /// The drone flight.
    pub drone: DroneFlight,
    /// Dates and radiometry.
    pub dates: Dates,
}

impl Scene {
    /// The scene's extent.
    pub fn bounds(&self) -> Rect<f64> {
        let side = self.size_px as f64 * PIXEL_M;
        Rect::new(
            Coord {
                x: ORIGIN.0,
                y: ORIGIN.1 - side,
            },
            Coord {
                x: ORIGIN.0 + side,
                y: ORIGIN.1,
            },
        )
    }
}

/// A rectangle of size (w, h) centred at (cx, cy), rotated by `angle` radians.
pub fn rotated_rect(cx: f64, cy: f64, w: f64, h: f64, angle: f64) -> Polygon<f64> {
    let (c, s) = (angle.cos(), angle.sin());
    let pts: Vec<Coord<f64>> = [
        (-0.5, -0.5),
        (0.5, -0.5),
        (0.5, 0.5),
        (-0.5, 0.5),
        (-0.5, -0.5),
    ]
    .iter()
    .map(|(u, v)| {
        let (dx, dy) = (u * w, v * h);
        Coord {
            x: cx + dx * c - dy * s,
            y: cy + dx * s + dy * c,
        }
    })
    .collect();
    Polygon::new(LineString::new(pts), vec![])
}

/// A regular polygon approximating a circle.
pub fn circle(cx: f64, cy: f64, r: f64, n: usize) -> Polygon<f64> {
    let mut pts: Vec<Coord<f64>> = (0..n)
        .map(|i| {
            let t = std::f64::consts::TAU * i as f64 / n as f64;
            Coord {
                x: cx + r * t.cos(),
                y: cy + r * t.sin(),
            }
        })
        .collect();
    pts.push(pts[0]);
    Polygon::new(LineString::new(pts), vec![])
}

/// Moves every edge of a convex polygon inward by `d` (a negative buffer with mitred corners).
pub fn inset_convex(poly: &Polygon<f64>, d: f64) -> Option<Polygon<f64>> {
    let mut pts: Vec<Coord<f64>> = poly.exterior().coords().copied().collect();
    pts.pop();
    let n = pts.len();
    if n < 3 {
        return None;
    }
    let area2: f64 = (0..n)
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            a.x * b.y - b.x * a.y
        })
        .sum();
    let sign = if area2 > 0.0 { 1.0 } else { -1.0 };
    // Offset lines: point + direction, shifted along the inward normal.
    let lines: Vec<(Coord<f64>, Coord<f64>)> = (0..n)
        .map(|i| {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            let (dx, dy) = (b.x - a.x, b.y - a.y);
            let len = (dx * dx + dy * dy).sqrt().max(1e-12);
            // Inward normal of a counter-clockwise ring is (-dy, dx).
            let (nx, ny) = (-dy / len * sign, dx / len * sign);
            (
                Coord {
                    x: a.x + nx * d,
                    y: a.y + ny * d,
                },
                Coord { x: dx, y: dy },
            )
        })
        .collect();
    let mut out = Vec::with_capacity(n + 1);
    for i in 0..n {
        let (p1, d1) = lines[(i + n - 1) % n];
        let (p2, d2) = lines[i];
        let den = d1.x * d2.y - d1.y * d2.x;
        if den.abs() < 1e-12 {
            return None;
        }
        let t = ((p2.x - p1.x) * d2.y - (p2.y - p1.y) * d2.x) / den;
        out.push(Coord {
            x: p1.x + t * d1.x,
            y: p1.y + t * d1.y,
        });
    }
    out.push(out[0]);
    // An inset larger than the polygon turns it inside out: then some edge runs backwards.
    let same_direction = (0..n).all(|k| {
        let (a, b) = (pts[k], pts[(k + 1) % n]);
        let (c, e) = (out[k], out[k + 1]);
        (b.x - a.x) * (e.x - c.x) + (b.y - a.y) * (e.y - c.y) > 0.0
    });
    let p = Polygon::new(LineString::new(out), vec![]);
    (same_direction && p.unsigned_area() > 1.0).then_some(p)
}

struct Builder {
    rng: Rng,
    size_px: usize,
    parcels: Vec<Parcel>,
    objects: Vec<Object>,
    permits: Vec<Permit>,
    truth: Vec<TruthChange>,
    /// Indices of parcels already carrying an injected change.
    used: Vec<bool>,
    dates: Dates,
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default()
}

fn dt(y: i32, m: u32, day: u32, h: u32, min: u32) -> NaiveDateTime {
    d(y, m, day).and_hms_opt(h, min, 0).unwrap_or_default()
}

/// Builds the scene for a size (pixels per side, at 0.5 m) and a seed.
pub fn build_scene(size_px: usize, seed: u64) -> Scene {
    let dates = Dates {
        before: dt(2026, 4, 12, 2, 48),
        after: dt(2026, 10, 14, 2, 51),
        drone: dt(2026, 10, 16, 3, 20),
        after_gain: [1.06, 1.04, 1.03, 0.95],
        after_offset: [40.0, 25.0, 15.0, -60.0],
    };
    let mut b = Builder {
        rng: Rng::new(seed, "scene"),
        size_px,
        parcels: Vec::new(),
        objects: Vec::new(),
        permits: Vec::new(),
        truth: Vec::new(),
        used: Vec::new(),
        dates,
    };
    b.layout();
    b.used = vec![false; b.parcels.len()];
    b.existing_objects();
    b.vegetation_cycles();
    b.inject_changes();
    let after_nodata = b.nodata_wedge();
    let clouds = b.clouds(&after_nodata);
    let drone = b.drone();
    b.artefacts(&drone, &after_nodata);
    Scene {
        seed,
        size_px,
        parcels: b.parcels,
        objects: b.objects,
        permits: b.permits,
        truth: b.truth,
        clouds,
        after_nodata,
        drone,
        dates: b.dates,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum BlockKind {
    Farmland { basic: bool },
    Village,
    Garden,
    Forest { redline: bool },
    Wetland,
    Fishpond,
}

impl Builder {
    fn side(&self) -> f64 {
        self.size_px as f64 * PIXEL_M
    }

    /// Blocks between main roads, each cut into fields by farm tracks.
    fn layout(&mut self) {
        let side = self.side();
        let block = 320.0;
        let nb = ((side / block).round() as usize).max(1);
        let bsize = side / nb as f64;
        let main_road = 8.0;
        let mut kinds = Vec::new();
        for _ in 0..nb * nb {
            let k = match self.rng.weighted(&[0.60, 0.13, 0.08, 0.06, 0.07, 0.06]) {
                0 => BlockKind::Farmland {
                    basic: self.rng.chance(0.85),
                },
                1 => BlockKind::Village,
                2 => BlockKind::Garden,
                3 => BlockKind::Forest {
                    redline: self.rng.chance(0.5),
                },
                4 => BlockKind::Wetland,
                _ => BlockKind::Fishpond,
            };
            kinds.push(k);
        }
        // Every scene has farmland of both kinds, a village and protected land, whatever its size.
        let n = kinds.len();
        kinds[0] = BlockKind::Farmland { basic: true };
        if n > 1 {
            kinds[n - 1] = BlockKind::Wetland;
        }
        if n > 2 {
            kinds[1] = BlockKind::Village;
        }
        if n > 3 {
            kinds[2] = BlockKind::Farmland { basic: false };
        }
        for by in 0..nb {
            for bx in 0..nb {
                let kind = kinds[by * nb + bx];
                let x0 = ORIGIN.0 + bx as f64 * bsize + main_road / 2.0;
                let y1 = ORIGIN.1 - by as f64 * bsize - main_road / 2.0;
                let w = bsize - main_road;
                self.fields(kind, x0, y1 - w, x0 + w, y1);
            }
        }
    }

    fn fields(&mut self, kind: BlockKind, x0: f64, y0: f64, x1: f64, y1: f64) {
        let (fw, fh) = match kind {
            BlockKind::Village => (38.0, 30.0),
            BlockKind::Fishpond => (55.0, 40.0),
            BlockKind::Wetland | BlockKind::Forest { .. } => (90.0, 70.0),
            _ => (62.0, 44.0),
        };
        let nx = (((x1 - x0) / fw).round() as usize).max(1);
        let ny = (((y1 - y0) / fh).round() as usize).max(1);
        let (cw, ch) = ((x1 - x0) / nx as f64, (y1 - y0) / ny as f64);
        let mut lattice = vec![vec![(0.0, 0.0); nx + 1]; ny + 1];
        for (j, row) in lattice.iter_mut().enumerate() {
            for (i, p) in row.iter_mut().enumerate() {
                let edge = i == 0 || j == 0 || i == nx || j == ny;
                let (jx, jy) = if edge {
                    (0.0, 0.0)
                } else {
                    (
                        self.rng.range(-0.2, 0.2) * cw,
                        self.rng.range(-0.2, 0.2) * ch,
                    )
                };
                *p = (x0 + i as f64 * cw + jx, y1 - j as f64 * ch + jy);
            }
        }
        let block_angle = self.rng.range(-0.15, 0.15) as f32
            + if self.rng.chance(0.5) {
                0.0
            } else {
                std::f32::consts::FRAC_PI_2
            };
        for j in 0..ny {
            for i in 0..nx {
                let quad = Polygon::new(
                    LineString::from(vec![
                        lattice[j][i],
                        lattice[j + 1][i],
                        lattice[j + 1][i + 1],
                        lattice[j][i + 1],
                        lattice[j][i],
                    ]),
                    vec![],
                );
                let track = if matches!(kind, BlockKind::Village) {
                    2.5
                } else {
                    1.5
                };
                let Some(poly) = inset_convex(&quad, track) else {
                    continue;
                };
                self.add_parcel(kind, poly, block_angle);
            }
        }
    }

    fn add_parcel(&mut self, kind: BlockKind, polygon: Polygon<f64>, block_angle: f32) {
        let r = &mut self.rng;
        let (use_, basic, redline) = match kind {
            BlockKind::Farmland { basic } => match r.weighted(&[0.9, 0.05, 0.03, 0.02]) {
                0 => ("farmland", basic, false),
                1 => ("water", false, false),
                2 => ("construction", false, false),
                _ => ("grassland", false, false),
            },
            BlockKind::Village => match r.weighted(&[0.78, 0.17, 0.05]) {
                0 => ("construction", false, false),
                1 => ("farmland", false, false),
                _ => ("garden", false, false),
            },
            BlockKind::Garden => match r.weighted(&[0.85, 0.15]) {
                0 => ("garden", false, false),
                _ => ("farmland", false, false),
            },
            BlockKind::Forest { redline } => match r.weighted(&[0.85, 0.15]) {
                0 => ("forest", false, redline),
                _ => ("grassland", false, redline),
            },
            BlockKind::Wetland => match r.weighted(&[0.45, 0.3, 0.25]) {
                0 => ("water", false, true),
                1 => ("grassland", false, true),
                _ => ("forest", false, true),
            },
            BlockKind::Fishpond => match r.weighted(&[0.85, 0.05, 0.1]) {
                0 => ("water", false, false),
                1 => ("construction", false, false),
                _ => ("grassland", false, false),
            },
        };
        let cover = match use_ {
            "farmland" => match r.weighted(&[0.65, 0.15, 0.2]) {
                0 => Cover::Crop,
                1 => Cover::Paddy,
                _ => Cover::Fallow,
            },
            "garden" => Cover::Orchard,
            "forest" => Cover::Forest,
            "grassland" => Cover::Grass,
            "water" => Cover::Water,
            _ => {
                if r.chance(0.6) {
                    Cover::Lawn
                } else {
                    Cover::Paved
                }
            }
        };
        let gain = [
            (1.0 + 0.06 * r.normal()) as f32,
            (1.0 + 0.06 * r.normal()) as f32,
            (1.0 + 0.06 * r.normal()) as f32,
            (1.0 + 0.06 * r.normal()) as f32,
        ];
        // Mild phenology everywhere vegetation grows: a few percent in the visible, more in NIR.
        let nir = (0.95 + 0.06 * r.normal()) as f32;
        let vis = (1.0 + 0.04 * r.normal()) as f32;
        let id = format!("WJ-{:06}", self.parcels.len() + 1);
        self.parcels.push(Parcel {
            id,
            approved_use: use_,
            basic_farmland: basic,
            eco_redline: redline,
            polygon,
            cover_before: cover,
            cover_after: cover,
            gain,
            phenology: [vis, vis, vis, nir],
            row_angle: block_angle + (r.range(-0.05, 0.05) as f32),
            row_period_m: r.range(1.5, 4.0) as f32,
        });
    }

    fn existing_objects(&mut self) {
        for i in 0..self.parcels.len() {
            if self.parcels[i].approved_use != "construction" {
                continue;
            }
            let k = 1 + self.rng.below(3);
            for _ in 0..k {
                let (w, h) = (self.rng.range(8.0, 16.0), self.rng.range(7.0, 12.0));
                if let Some(rect) = self.place_in(i, w, h, 1.0, 20) {
                    let cover = self.roof();
                    let gain = self.rng.range(0.9, 1.1) as f32;
                    self.objects.push(Object {
                        polygon: rect,
                        cover,
                        gain,
                        existing: true,
                    });
                }
            }
        }
    }

    fn roof(&mut self) -> Cover {
        match self.rng.weighted(&[0.4, 0.35, 0.25]) {
            0 => Cover::Concrete,
            1 => Cover::SteelRoof,
            _ => Cover::TileRoof,
        }
    }

    /// Harvest and strong phenology on whole fields: real changes, but vegetation cycles.
    fn vegetation_cycles(&mut self) {
        for i in 0..self.parcels.len() {
            let p = &self.parcels[i];
            if p.approved_use != "farmland" {
                continue;
            }
            let before = p.cover_before;
            let u = self.rng.f64();
            let (after, kind, transition) = match before {
                Cover::Crop if u < 0.18 => (Cover::Stubble, "harvest", "vegetation_to_harvested"),
                Cover::Crop if u < 0.45 => (Cover::Mature, "phenology", "vegetation_cycle"),
                Cover::Paddy if u < 0.6 => (Cover::Crop, "phenology", "vegetation_cycle"),
                Cover::Paddy => (Cover::Mature, "phenology", "vegetation_cycle"),
                Cover::Fallow if u < 0.5 => (Cover::Crop, "phenology", "bare_to_vegetation"),
                _ => continue,
            };
            self.parcels[i].cover_after = after;
            let geometry = MultiPolygon::new(vec![self.parcels[i].polygon.clone()]);
            self.truth.push(TruthChange {
                kind,
                category: Category::Cycle,
                parcel_id: Some(self.parcels[i].id.clone()),
                permit_id: None,
                transition,
                geometry,
                note: format!("{before:?} -> {after:?} over the whole field"),
            });
        }
    }

    /// A rotated rectangle of (w, h) metres inside parcel `i`, `margin` metres from its edge.
    fn place_in(
        &mut self,
        i: usize,
        w: f64,
        h: f64,
        margin: f64,
        tries: usize,
    ) -> Option<Polygon<f64>> {
        let inner = inset_convex(&self.parcels[i].polygon, margin)?;
        let bb = inner.bounding_rect()?;
        let angle = self.parcels[i].row_angle as f64 + self.rng.range(-0.08, 0.08);
        for _ in 0..tries {
            let cx = self.rng.range(bb.min().x, bb.max().x);
            let cy = self.rng.range(bb.min().y, bb.max().y);
            let rect = rotated_rect(cx, cy, w, h, angle);
            if inner.contains(&rect) {
                return Some(rect);
            }
        }
        None
    }

    fn pick(&mut self, pred: impl Fn(&Parcel) -> bool) -> Vec<usize> {
        (0..self.parcels.len())
            .filter(|&i| !self.used[i] && pred(&self.parcels[i]))
            .collect()
    }

    fn count(&self, base: usize, rate: f64) -> usize {
        ((base as f64 * rate).round() as usize).max(1)
    }

    fn shuffle(&mut self, v: &mut [usize]) {
        for i in (1..v.len()).rev() {
            let j = self.rng.below(i + 1);
            v.swap(i, j);
        }
    }

    fn candidates(&mut self, pred: impl Fn(&Parcel) -> bool) -> Vec<usize> {
        let mut c = self.pick(pred);
        self.shuffle(&mut c);
        c
    }

    /// Tries `place` on random parcels matching `pred` until `n` changes were placed (each
    /// placement adds at least one truth record) or no candidate is left.
    fn inject_n(
        &mut self,
        n: usize,
        pred: impl Fn(&Parcel) -> bool,
        mut place: impl FnMut(&mut Builder, usize),
    ) {
        let mut placed = 0;
        for i in self.candidates(pred) {
            if placed >= n {
                break;
            }
            let before = self.truth.len();
            place(self, i);
            if self.truth.len() > before {
                placed += 1;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_truth(
        &mut self,
        i: usize,
        kind: &'static str,
        category: Category,
        transition: &'static str,
        geometry: MultiPolygon<f64>,
        permit_id: Option<String>,
        note: String,
    ) {
        self.used[i] = true;
        self.truth.push(TruthChange {
            kind,
            category,
            parcel_id: Some(self.parcels[i].id.clone()),
            permit_id,
            transition,
            geometry,
            note,
        });
    }

    fn permit(
        &mut self,
        i: usize,
        kind: &'static str,
        permitted_use: &'static str,
        valid: (NaiveDate, NaiveDate),
        footprint: Polygon<f64>,
    ) -> String {
        let id = format!("{}-2026-{:04}", permit_prefix(kind), self.permits.len() + 1);
        self.permits.push(Permit {
            permit_id: id.clone(),
            kind,
            permitted_use,
            parcel_id: self.parcels[i].id.clone(),
            valid_from: valid.0,
            valid_to: valid.1,
            footprint,
        });
        id
    }

    /// A building (one to three roofs, optionally a hardened yard) inside parcel `i`.
    fn building(&mut self, i: usize, min_area: f64) -> Option<MultiPolygon<f64>> {
        let w = self.rng.range(16.0, 30.0);
        let h = (min_area * self.rng.range(1.3, 2.2) / w).max(12.0);
        let rect = self.place_in(i, w, h, 3.0, 30)?;
        let cover = self.roof();
        let gain = self.rng.range(0.9, 1.1) as f32;
        self.objects.push(Object {
            polygon: rect.clone(),
            cover,
            gain,
            existing: false,
        });
        Some(MultiPolygon::new(vec![rect]))
    }

    fn inject_changes(&mut self) {
        let n_farm = self
            .parcels
            .iter()
            .filter(|p| p.approved_use == "farmland")
            .count();
        let n_water = self
            .parcels
            .iter()
            .filter(|p| p.approved_use == "water")
            .count();
        let n_red = self.parcels.iter().filter(|p| p.eco_redline).count();
        let n_cons = self
            .parcels
            .iter()
            .filter(|p| p.approved_use == "construction")
            .count();
        let valid_now = (d(2026, 1, 15), d(2027, 12, 31));

        // Building or hardening on farmland without any approval (占用耕地建房).
        let n = self.count(n_farm, 0.012);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.cultivated(),
            |b, i| {
                if let Some(g) = b.building(i, 260.0) {
                    b.add_truth(
                        i,
                        "building_on_farmland",
                        Category::Violation,
                        "vegetation_to_built",
                        g,
                        None,
                        "new building on farmland, no approval".into(),
                    );
                }
            },
        );

        // Excavation or soil piling on farmland (挖土堆土).
        let n = self.count(n_farm, 0.008);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.cultivated(),
            |b, i| {
                let w = b.rng.range(22.0, 34.0);
                let h = b.rng.range(600.0, 900.0) / w;
                if let Some(rect) = b.place_in(i, w, h, 3.0, 30) {
                    b.objects.push(Object {
                        polygon: rect.clone(),
                        cover: Cover::FreshSoil,
                        gain: 1.0,
                        existing: false,
                    });
                    // One to three piles inside the excavated area.
                    let c0 = rect.centroid().unwrap_or(Point::new(0.0, 0.0));
                    for k in 0..1 + b.rng.below(3) {
                        let pile = circle(
                            c0.x() + (k as f64 - 1.0) * w * 0.25,
                            c0.y(),
                            b.rng.range(2.5, 4.0),
                            16,
                        );
                        if rect.contains(&pile) {
                            b.objects.push(Object {
                                polygon: pile,
                                cover: Cover::SoilPile,
                                gain: 1.0,
                                existing: false,
                            });
                        }
                    }
                    b.add_truth(
                        i,
                        "excavation",
                        Category::Violation,
                        "vegetation_to_bare",
                        MultiPolygon::new(vec![rect]),
                        None,
                        "soil excavated and piled on farmland".into(),
                    );
                }
            },
        );

        // A pond dug in permanent basic farmland (基本农田挖塘).
        let n = self.count(n_farm, 0.006);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.basic_farmland && p.cultivated(),
            |b, i| {
                let w = b.rng.range(24.0, 36.0);
                let h = b.rng.range(650.0, 1000.0) / w;
                if let Some(rect) = b.place_in(i, w, h, 3.0, 30) {
                    b.objects.push(Object {
                        polygon: rect.clone(),
                        cover: Cover::MuddyWater,
                        gain: 1.0,
                        existing: false,
                    });
                    b.add_truth(
                        i,
                        "pond_digging",
                        Category::Violation,
                        "vegetation_to_water",
                        MultiPolygon::new(vec![rect]),
                        None,
                        "pond dug in permanent basic farmland".into(),
                    );
                }
            },
        );

        // Part of a pond or river filled in (填埋水体).
        let n = self.count(n_water, 0.05);
        self.inject_n(
            n,
            |p| p.approved_use == "water",
            |b, i| {
                let w = b.rng.range(24.0, 36.0);
                let h = b.rng.range(600.0, 900.0) / w;
                if let Some(rect) = b.place_in(i, w, h, 2.0, 30) {
                    let cover = if b.rng.chance(0.5) {
                        Cover::FreshSoil
                    } else {
                        Cover::Paved
                    };
                    b.objects.push(Object {
                        polygon: rect.clone(),
                        cover,
                        gain: 1.0,
                        existing: false,
                    });
                    b.add_truth(
                        i,
                        "filled_water",
                        Category::Violation,
                        "water_to_land",
                        MultiPolygon::new(vec![rect]),
                        None,
                        "water body filled".into(),
                    );
                }
            },
        );

        // Building beyond the footprint of a valid planning permit (少批多占): the excess counts.
        let n = self.count(n_farm, 0.004);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.cultivated(),
            |b, i| {
                let w = b.rng.range(20.0, 26.0);
                let h = b.rng.range(24.0, 30.0);
                let Some(built) = b.place_in(i, w, h, 3.0, 30) else {
                    return;
                };
                // The approved footprint covers the first part of the building along its long side.
                let frac = b.rng.range(0.45, 0.6);
                let angle = b.parcels[i].row_angle as f64;
                let c0 = built.centroid().unwrap_or(Point::new(0.0, 0.0));
                let (ca, sa) = (angle.cos(), angle.sin());
                let shift = -(1.0 - frac) * h / 2.0;
                let fp = rotated_rect(
                    c0.x() - shift * sa,
                    c0.y() + shift * ca,
                    w + 1.0,
                    frac * h,
                    angle,
                );
                let excess = MultiPolygon::new(vec![built.clone()])
                    .difference(&MultiPolygon::new(vec![fp.clone()]));
                if excess.unsigned_area() < 220.0 {
                    return;
                }
                let cover = b.roof();
                b.objects.push(Object {
                    polygon: built.clone(),
                    cover,
                    gain: 1.0,
                    existing: false,
                });
                let pid = b.permit(i, "planning_permit", "construction", valid_now, fp.clone());
                let inside =
                    MultiPolygon::new(vec![built]).intersection(&MultiPolygon::new(vec![fp]));
                b.truth.push(TruthChange {
                    kind: "permitted_building",
                    category: Category::Legal,
                    parcel_id: Some(b.parcels[i].id.clone()),
                    permit_id: Some(pid.clone()),
                    transition: "vegetation_to_built",
                    geometry: inside,
                    note: "the part of the building inside its approved footprint".into(),
                });
                b.add_truth(
                    i,
                    "beyond_permit",
                    Category::Violation,
                    "vegetation_to_built",
                    excess,
                    Some(pid),
                    "building extends beyond the approved footprint".into(),
                );
            },
        );

        // Building before the approval is valid (未批先建).
        let n = self.count(n_farm, 0.003);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.cultivated(),
            |b, i| {
                if let Some(g) = b.building(i, 260.0) {
                    let fp = grow_rect(&g, 2.0);
                    let pid = b.permit(
                        i,
                        "planning_permit",
                        "construction",
                        (d(2026, 12, 1), d(2028, 12, 1)),
                        fp,
                    );
                    b.add_truth(
                        i,
                        "before_approval",
                        Category::Violation,
                        "vegetation_to_built",
                        g,
                        Some(pid),
                        "built before the planning permit becomes valid".into(),
                    );
                }
            },
        );

        // Use after a temporary-use permit expired (临时用地到期未复垦).
        let n = self.count(n_farm, 0.003);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.cultivated(),
            |b, i| {
                let w = b.rng.range(24.0, 34.0);
                let h = b.rng.range(700.0, 1000.0) / w;
                if let Some(rect) = b.place_in(i, w, h, 3.0, 30) {
                    b.objects.push(Object {
                        polygon: rect.clone(),
                        cover: Cover::Paved,
                        gain: 1.0,
                        existing: false,
                    });
                    let fp = grow_rect(&MultiPolygon::new(vec![rect.clone()]), 2.0);
                    let pid = b.permit(
                        i,
                        "temporary_use",
                        "temporary_use",
                        (d(2026, 5, 1), d(2026, 8, 31)),
                        fp,
                    );
                    b.add_truth(
                        i,
                        "expired_temporary",
                        Category::Violation,
                        "vegetation_to_built",
                        MultiPolygon::new(vec![rect]),
                        Some(pid),
                        "site still hardened after the temporary permit expired".into(),
                    );
                }
            },
        );

        // Any construction inside the ecological red line (生态保护红线内建设).
        let n = self.count(n_red, 0.03);
        self.inject_n(
            n,
            |p| p.eco_redline && p.approved_use != "water",
            |b, i| {
                if let Some(g) = b.building(i, 260.0) {
                    b.add_truth(
                        i,
                        "redline_construction",
                        Category::Violation,
                        "vegetation_to_built",
                        g,
                        None,
                        "construction inside the ecological protection red line".into(),
                    );
                }
            },
        );

        // Legal: a building inside the footprint of valid approvals on farmland.
        let n = self.count(n_farm, 0.008);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.cultivated(),
            |b, i| {
                if let Some(g) = b.building(i, 260.0) {
                    let fp = grow_rect(&g, 3.0);
                    b.permit(
                        i,
                        "land_use_approval",
                        "construction",
                        valid_now,
                        fp.clone(),
                    );
                    let pid = b.permit(i, "planning_permit", "construction", valid_now, fp);
                    b.add_truth(
                        i,
                        "permitted_building",
                        Category::Legal,
                        "vegetation_to_built",
                        g,
                        Some(pid),
                        "building inside the footprint of valid approvals".into(),
                    );
                }
            },
        );

        // Legal: a greenhouse with a facility-agriculture filing.
        let n = self.count(n_farm, 0.006);
        self.inject_n(
            n,
            |p| p.approved_use == "farmland" && p.cultivated(),
            |b, i| {
                let w = b.rng.range(30.0, 40.0);
                let h = b.rng.range(9.0, 14.0);
                if let Some(rect) = b.place_in(i, w, h, 3.0, 30) {
                    b.objects.push(Object {
                        polygon: rect.clone(),
                        cover: Cover::Greenhouse,
                        gain: 1.0,
                        existing: false,
                    });
                    let fp = grow_rect(&MultiPolygon::new(vec![rect.clone()]), 3.0);
                    let pid = b.permit(
                        i,
                        "facility_agriculture",
                        "facility_agriculture",
                        valid_now,
                        fp,
                    );
                    // The cycle truth of this field stays; the greenhouse is its own change.
                    b.add_truth(
                        i,
                        "facility_agriculture",
                        Category::Legal,
                        "vegetation_to_built",
                        MultiPolygon::new(vec![rect]),
                        Some(pid),
                        "greenhouse with a valid facility-agriculture filing".into(),
                    );
                }
            },
        );

        // Legal: new buildings on construction land.
        let n = self.count(n_cons, 0.1);
        self.inject_n(
            n,
            |p| p.approved_use == "construction",
            |b, i| {
                // Keep clear of the existing buildings.
                let existing: Vec<Polygon<f64>> = b
                    .objects
                    .iter()
                    .filter(|o| o.existing && b.parcels[i].polygon.contains(&o.polygon))
                    .map(|o| o.polygon.clone())
                    .collect();
                for _ in 0..10 {
                    let w = b.rng.range(12.0, 18.0);
                    let h = b.rng.range(12.0, 16.0);
                    let Some(rect) = b.place_in(i, w, h, 2.0, 10) else {
                        return;
                    };
                    let grown = grow_rect(&MultiPolygon::new(vec![rect.clone()]), 1.0);
                    if existing
                        .iter()
                        .any(|e| geo::Intersects::intersects(e, &grown))
                    {
                        continue;
                    }
                    let cover = b.roof();
                    b.objects.push(Object {
                        polygon: rect.clone(),
                        cover,
                        gain: 1.0,
                        existing: false,
                    });
                    b.add_truth(
                        i,
                        "construction_on_construction_land",
                        Category::Legal,
                        "to_built",
                        MultiPolygon::new(vec![rect]),
                        None,
                        "new building on approved construction land".into(),
                    );
                    return;
                }
            },
        );
    }

    /// The after satellite scene misses a corner (its swath edge): no data there.
    fn nodata_wedge(&mut self) -> Polygon<f64> {
        let side = self.side();
        let (x1, y0) = (ORIGIN.0 + side, ORIGIN.1 - side);
        let k = 0.22 * side;
        let wedge = Polygon::new(
            LineString::from(vec![
                (x1 - k, y0 - 1.0),
                (x1 + 1.0, y0 - 1.0),
                (x1 + 1.0, y0 + k),
                (x1 - k, y0 - 1.0),
            ]),
            vec![],
        );
        // Changes under the wedge could never be seen: drop their truth to "unobserved".
        self.truth.push(TruthChange {
            kind: "no_data",
            category: Category::Unobserved,
            parcel_id: None,
            permit_id: None,
            transition: "unobserved",
            geometry: MultiPolygon::new(vec![wedge.clone()]),
            note: "the after satellite scene has no data here (swath edge)".into(),
        });
        wedge
    }

    /// One to a few clouds with shadows, kept away from the injected land-use changes.
    fn clouds(&mut self, wedge: &Polygon<f64>) -> Vec<Cloud> {
        let side = self.side();
        let n = ((side / 1000.0).round() as usize).max(1);
        // Clouds scale with small scenes so they still fit between the injected changes.
        let k = (side / 1000.0).clamp(0.4, 1.0);
        let shadow_offset = (-38.0 * k, 30.0 * k);
        let keep_clear: Vec<Rect<f64>> = self
            .truth
            .iter()
            .filter(|t| matches!(t.category, Category::Violation | Category::Legal))
            .filter_map(|t| t.geometry.bounding_rect())
            .collect();
        let mut clouds = Vec::new();
        for _ in 0..n {
            for _ in 0..200 {
                let cx = ORIGIN.0 + self.rng.range(0.15, 0.85) * side;
                let cy = ORIGIN.1 - self.rng.range(0.15, 0.85) * side;
                let r0 = self.rng.range(30.0, 45.0) * k;
                let mut discs = vec![(cx, cy, r0)];
                for _ in 0..4 + self.rng.below(4) {
                    let a = self.rng.range(0.0, std::f64::consts::TAU);
                    let dd = self.rng.range(0.4, 0.9) * r0;
                    discs.push((
                        cx + dd * a.cos(),
                        cy + dd * a.sin(),
                        self.rng.range(0.5, 0.8) * r0,
                    ));
                }
                let cloud = Cloud {
                    discs,
                    shadow_offset,
                };
                let b = cloud.bounds(45.0 * k);
                let b_sh = Rect::new(
                    Coord {
                        x: b.min().x + shadow_offset.0,
                        y: b.min().y + shadow_offset.1,
                    },
                    Coord {
                        x: b.max().x + shadow_offset.0,
                        y: b.max().y + shadow_offset.1,
                    },
                );
                let clash = keep_clear
                    .iter()
                    .any(|k| rects_overlap(k, &b) || rects_overlap(k, &b_sh))
                    || clouds
                        .iter()
                        .any(|c: &Cloud| rects_overlap(&c.bounds(60.0), &b))
                    || geo::Intersects::intersects(wedge, &b.to_polygon());
                if !clash {
                    clouds.push(cloud);
                    break;
                }
            }
        }
        for c in &clouds {
            let cloud_area = c.outline((0.0, 0.0));
            let shadow = c.outline(c.shadow_offset).difference(&cloud_area);
            for (kind, g) in [("cloud", cloud_area), ("cloud_shadow", shadow)] {
                self.truth.push(TruthChange {
                    kind,
                    category: Category::Unobserved,
                    parcel_id: None,
                    permit_id: None,
                    transition: "unobserved",
                    geometry: g,
                    note: format!("{kind} in the after satellite image"),
                });
            }
        }
        clouds
    }

    /// The drone flies over a suspected building site, with a 1–2 pixel geolocation error.
    fn drone(&mut self) -> DroneFlight {
        let side = self.side();
        let size = (100.0f64.min(side * 0.4), 75.0f64.min(side * 0.3));
        // The flight covers a suspected building site away from the scene's edges, so the
        // whole flown strip has before imagery under it.
        let half = 0.5 * size.0.hypot(size.1) + 2.0;
        let inside = |x: f64, y: f64| {
            x > ORIGIN.0 + half
                && x < ORIGIN.0 + side - half
                && y < ORIGIN.1 - half
                && y > ORIGIN.1 - side + half
        };
        let centre_of = |kind: Option<&str>| {
            self.truth
                .iter()
                .filter(|t| kind.map_or(t.category == Category::Violation, |k| t.kind == k))
                .filter_map(|t| t.geometry.centroid())
                .map(|p| (p.x(), p.y()))
                .find(|&(x, y)| inside(x, y))
        };
        let site = centre_of(Some("building_on_farmland"))
            .or_else(|| centre_of(None))
            .unwrap_or((ORIGIN.0 + side / 2.0, ORIGIN.1 - side / 2.0));
        DroneFlight {
            centre: site,
            size_m: size,
            angle: 0.35,
            shift_m: (0.75, -0.5),
        }
    }

    fn artefacts(&mut self, drone: &DroneFlight, _wedge: &Polygon<f64>) {
        self.truth.push(TruthChange {
            kind: "misregistration",
            category: Category::Artefact,
            parcel_id: None,
            permit_id: None,
            transition: "none",
            geometry: MultiPolygon::new(vec![drone.footprint()]),
            note: format!(
                "drone orthophoto geolocated {:.2} m east, {:.2} m north of the truth ({:.1}, {:.1}) px",
                -drone.shift_m.0,
                -drone.shift_m.1,
                drone.shift_m.0 / PIXEL_M,
                drone.shift_m.1 / PIXEL_M
            ),
        });
        let b = Rect::new(
            Coord {
                x: ORIGIN.0,
                y: ORIGIN.1 - self.side(),
            },
            Coord {
                x: ORIGIN.0 + self.side(),
                y: ORIGIN.1,
            },
        );
        self.truth.push(TruthChange {
            kind: "radiometric_shift",
            category: Category::Artefact,
            parcel_id: None,
            permit_id: None,
            transition: "none",
            geometry: MultiPolygon::new(vec![b.to_polygon()]),
            note: format!(
                "after sensor gain {:?} and offset {:?} per band (B,G,R,NIR)",
                self.dates.after_gain, self.dates.after_offset
            ),
        });
    }
}

fn permit_prefix(kind: &str) -> &'static str {
    match kind {
        "land_use_approval" => "YD",
        "planning_permit" => "GH",
        "facility_agriculture" => "SN",
        _ => "LS",
    }
}

fn rects_overlap(a: &Rect<f64>, b: &Rect<f64>) -> bool {
    a.min().x < b.max().x && b.min().x < a.max().x && a.min().y < b.max().y && b.min().y < a.max().y
}

/// The rotated rectangle `g` (its first polygon) grown by `m` metres on every side.
fn grow_rect(g: &MultiPolygon<f64>, m: f64) -> Polygon<f64> {
    match g.0.first() {
        Some(p) => inset_convex(p, -m).unwrap_or_else(|| p.clone()),
        None => Polygon::new(LineString::new(vec![]), vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inset_moves_edges_inward() {
        let sq = rotated_rect(0.0, 0.0, 10.0, 10.0, 0.3);
        let inner = inset_convex(&sq, 1.0).unwrap();
        assert!((inner.unsigned_area() - 64.0).abs() < 1e-6);
        let outer = inset_convex(&sq, -1.0).unwrap();
        assert!((outer.unsigned_area() - 144.0).abs() < 1e-6);
        assert!(inset_convex(&sq, 6.0).is_none());
    }

    #[test]
    fn scene_has_every_kind_of_change() {
        let s = build_scene(2048, 3);
        for kind in [
            "building_on_farmland",
            "excavation",
            "pond_digging",
            "filled_water",
            "beyond_permit",
            "before_approval",
            "expired_temporary",
            "redline_construction",
            "permitted_building",
            "construction_on_construction_land",
            "harvest",
            "phenology",
            "cloud",
            "cloud_shadow",
            "misregistration",
            "radiometric_shift",
        ] {
            assert!(
                s.truth.iter().any(|t| t.kind == kind),
                "no {kind} in the scene"
            );
        }
        // Violations lie inside their parcels.
        for t in s.truth.iter().filter(|t| t.category == Category::Violation) {
            let pid = t.parcel_id.as_deref().unwrap();
            let p = s.parcels.iter().find(|p| p.id == pid).unwrap();
            let inside = t
                .geometry
                .intersection(&MultiPolygon::new(vec![p.polygon.clone()]));
            assert!(
                (inside.unsigned_area() - t.geometry.unsigned_area()).abs() < 1.0,
                "{}",
                t.kind
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_scene() {
        let a = build_scene(1024, 9);
        let b = build_scene(1024, 9);
        assert_eq!(a.parcels.len(), b.parcels.len());
        assert_eq!(a.truth.len(), b.truth.len());
        assert_eq!(a.parcels[5].polygon, b.parcels[5].polygon);
        let c = build_scene(1024, 10);
        assert_ne!(a.parcels[5].polygon, c.parcels[5].polygon);
    }
}
