//! Land-cover cues of each date and the transition between them.
//!
//! Covers come from scale-free spectral indices, so they work on reflectance × 10000 and on
//! 8-bit imagery alike: NDVI and a water index where there is a near-infrared band, the excess-green
//! index and band ratios for RGB-only imagery (drone orthophotos), brightness relative to the cell
//! for clouds and water.

use serde::{Deserialize, Serialize};

/// Land cover of one pixel at one date, as far as its spectrum tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Cover {
    /// Green vegetation: crops, grass, trees.
    Vegetation = 0,
    /// Dry or senescent vegetation: ripening crops, straw stubble after harvest.
    DryVegetation,
    /// Bare soil: fallow, excavated or piled earth.
    Bare,
    /// Built or sealed surfaces: roofs, concrete, asphalt, plastic greenhouses.
    Built,
    /// Open water.
    Water,
    /// Cloud.
    Cloud,
    /// Not classifiable.
    Unknown,
}

impl Cover {
    /// The canonical lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Cover::Vegetation => "vegetation",
            Cover::DryVegetation => "dry_vegetation",
            Cover::Bare => "bare",
            Cover::Built => "built",
            Cover::Water => "water",
            Cover::Cloud => "cloud",
            Cover::Unknown => "unknown",
        }
    }

    fn is_vegetated(self) -> bool {
        matches!(self, Cover::Vegetation | Cover::DryVegetation)
    }
}

/// What a changed pixel or region changed from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Transition {
    /// Vegetation to roofs or sealed ground (building, hardening).
    VegetationToBuilt = 0,
    /// Vegetation to bare soil (excavation, soil piling, clearing).
    VegetationToBare,
    /// Vegetation to water (pond digging).
    VegetationToWater,
    /// Water to land (filling a pond, river or wetland).
    WaterToLand,
    /// Bare soil to built (construction on cleared ground).
    BareToBuilt,
    /// Bare soil to water.
    BareToWater,
    /// Built to something else (demolition, greening).
    BuiltToOther,
    /// A vegetation cycle: harvest, ripening, sowing, phenology. Not a land-use change.
    VegetationCycle,
    /// A change whose covers are unclear.
    Other,
}

impl Transition {
    /// Every transition, in a stable order.
    pub const ALL: [Transition; 9] = [
        Transition::VegetationToBuilt,
        Transition::VegetationToBare,
        Transition::VegetationToWater,
        Transition::WaterToLand,
        Transition::BareToBuilt,
        Transition::BareToWater,
        Transition::BuiltToOther,
        Transition::VegetationCycle,
        Transition::Other,
    ];

    /// The canonical lower-case name used in outputs and rules.
    pub fn name(self) -> &'static str {
        match self {
            Transition::VegetationToBuilt => "vegetation_to_built",
            Transition::VegetationToBare => "vegetation_to_bare",
            Transition::VegetationToWater => "vegetation_to_water",
            Transition::WaterToLand => "water_to_land",
            Transition::BareToBuilt => "bare_to_built",
            Transition::BareToWater => "bare_to_water",
            Transition::BuiltToOther => "built_to_other",
            Transition::VegetationCycle => "vegetation_cycle",
            Transition::Other => "other",
        }
    }

    /// Parses a canonical name.
    pub fn from_name(s: &str) -> Option<Transition> {
        Transition::ALL.iter().copied().find(|t| t.name() == s)
    }

    /// Whether the transition is a change of land use (as opposed to a vegetation cycle).
    pub fn is_land_use_change(self) -> bool {
        !matches!(self, Transition::VegetationCycle)
    }

    /// The transition between two covers, or `None` when the cover did not change in kind.
    pub fn between(before: Cover, after: Cover) -> Option<Transition> {
        use Cover::*;
        if before == Cloud || after == Cloud || before == Unknown || after == Unknown {
            return Some(Transition::Other);
        }
        if before == after {
            // A strong change within the same non-vegetated cover: a building on a paved lot,
            // fresh fill on bare ground. Vegetation stays vegetation: a cycle at most.
            return match before {
                Vegetation | DryVegetation => None,
                _ => Some(Transition::Other),
            };
        }
        Some(match (before, after) {
            (b, a) if b.is_vegetated() && a.is_vegetated() => Transition::VegetationCycle,
            // Greening of bare or sealed ground (sowing, planting): not a suspected land-use change.
            (Bare | Built, a) if a.is_vegetated() => Transition::VegetationCycle,
            (b, Built) if b.is_vegetated() => Transition::VegetationToBuilt,
            (b, Bare) if b.is_vegetated() => Transition::VegetationToBare,
            (b, Water) if b.is_vegetated() => Transition::VegetationToWater,
            (Bare, a) if a.is_vegetated() => Transition::VegetationCycle,
            (Bare, Built) => Transition::BareToBuilt,
            (Bare, Water) => Transition::BareToWater,
            (Water, _) => Transition::WaterToLand,
            (Built, _) => Transition::BuiltToOther,
            _ => Transition::Other,
        })
    }
}

/// Thresholds of the cover classifier (documented defaults; `[detect.cover]` in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoverParams {
    /// NDVI above which a pixel is green vegetation.
    pub ndvi_vegetation: f32,
    /// NDVI above which a non-green pixel is dry vegetation (stubble, ripening crops).
    pub ndvi_dry_vegetation: f32,
    /// Water index (green − NIR)/(green + NIR) above which a dark pixel is water.
    pub ndwi_water: f32,
    /// Excess-green index (2g − r − b)/(r + g + b) above which an RGB pixel is vegetation.
    pub exg_vegetation: f32,
    /// Red/blue ratio range of bare soil (warm, brownish).
    pub soil_red_blue: [f32; 2],
    /// Green/red ratio range of bare soil.
    pub soil_green_red: [f32; 2],
    /// Brightness relative to the cell's median above which a flat-spectrum pixel is cloud.
    pub cloud_brightness: f32,
    /// Largest ratio of the brightest to the darkest visible band of a cloud (white).
    pub cloud_whiteness: f32,
    /// Brightness relative to the cell's median below which a blue-green pixel can be water.
    pub water_brightness: f32,
    /// Brightness relative to the cell's median above which a flat, unvegetated pixel is a built
    /// surface (concrete, pavement, light roofs, greenhouses).
    pub built_brightness: f32,
    /// Largest ratio of the brightest to the darkest visible band of such a flat surface.
    pub built_flatness: f32,
}

impl Default for CoverParams {
    fn default() -> Self {
        CoverParams {
            ndvi_vegetation: 0.42,
            ndvi_dry_vegetation: 0.15,
            ndwi_water: 0.12,
            exg_vegetation: 0.06,
            soil_red_blue: [1.25, 2.2],
            soil_green_red: [0.68, 0.95],
            cloud_brightness: 6.0,
            cloud_whiteness: 1.3,
            water_brightness: 0.85,
            built_brightness: 1.4,
            built_flatness: 1.35,
        }
    }
}

/// The spectrum of one pixel: blue, green, red and near infrared (when present).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spectrum {
    /// Blue.
    pub blue: f32,
    /// Green.
    pub green: f32,
    /// Red.
    pub red: f32,
    /// Near infrared, when the sensor has it.
    pub nir: Option<f32>,
}

impl Spectrum {
    /// Mean of the visible bands.
    pub fn brightness(&self) -> f32 {
        (self.blue + self.green + self.red) / 3.0
    }

    /// NDVI, when there is a NIR band.
    pub fn ndvi(&self) -> Option<f32> {
        self.nir.map(|n| (n - self.red) / (n + self.red).max(1e-6))
    }

    /// Excess-green index on chromatic coordinates.
    pub fn exg(&self) -> f32 {
        let s = (self.blue + self.green + self.red).max(1e-6);
        (2.0 * self.green - self.red - self.blue) / s
    }

    /// VARI, the visible atmospherically resistant index.
    pub fn vari(&self) -> f32 {
        let d = self.green + self.red - self.blue;
        if d.abs() < 1e-6 {
            0.0
        } else {
            (self.green - self.red) / d
        }
    }
}

/// Classifies one pixel. `median_brightness` is the cell's median visible brightness of the same
/// date (clouds and water are judged relative to it).
pub fn classify(s: &Spectrum, median_brightness: f32, p: &CoverParams) -> Cover {
    let br = s.brightness();
    let rel = br / median_brightness.max(1e-6);
    let vis_max = s.blue.max(s.green).max(s.red);
    let vis_min = s.blue.min(s.green).min(s.red).max(1e-6);
    let whiteness = vis_max / vis_min;
    if rel > p.cloud_brightness && whiteness < p.cloud_whiteness {
        return Cover::Cloud;
    }
    let red_blue = s.red / s.blue.max(1e-6);
    let green_red = s.green / s.red.max(1e-6);
    let soil = (p.soil_red_blue[0]..=p.soil_red_blue[1]).contains(&red_blue)
        && (p.soil_green_red[0]..=p.soil_green_red[1]).contains(&green_red);
    // Built surfaces need positive evidence; anything else without vegetation is bare ground.
    // Bright and flat: concrete, pavement, light roofs, plastic. Blue-dominant: steel sheds.
    // Red-dominant with little green: clay tiles.
    let built = (rel > p.built_brightness && whiteness < p.built_flatness)
        || (s.blue > 1.2 * s.red && s.blue >= s.green)
        || (red_blue > p.soil_red_blue[1].min(1.8) && green_red < p.soil_green_red[0]);
    let bare_or_built = if built && !soil {
        Cover::Built
    } else {
        Cover::Bare
    };
    match s.nir {
        Some(nir) => {
            let ndvi = (nir - s.red) / (nir + s.red).max(1e-6);
            let ndwi = (s.green - nir) / (s.green + nir).max(1e-6);
            let vis_mean = br.max(1e-6);
            // Water reflects less near infrared than red (negative NDVI), or far less than the
            // visible bands; blue steel roofs and wet asphalt do neither.
            if ndwi > p.ndwi_water && (ndvi < 0.0 || nir / vis_mean < 0.65) {
                Cover::Water
            } else if ndvi > p.ndvi_vegetation {
                Cover::Vegetation
            } else if ndvi > p.ndvi_dry_vegetation {
                Cover::DryVegetation
            } else {
                bare_or_built
            }
        }
        None => {
            let exg = s.exg();
            if s.blue >= s.red * 1.05 && s.green >= s.red && rel < p.water_brightness && exg < 0.2 {
                Cover::Water
            } else if exg > p.exg_vegetation && s.green > s.red {
                Cover::Vegetation
            } else if exg > p.exg_vegetation {
                // Green well above blue with red as high as green: yellow, a ripening crop or
                // straw. Bare soil is browner (green barely above blue, excess green near 0).
                Cover::DryVegetation
            } else {
                bare_or_built
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(v: [f32; 4]) -> Spectrum {
        Spectrum {
            blue: v[0],
            green: v[1],
            red: v[2],
            nir: Some(v[3]),
        }
    }

    #[test]
    fn classifies_typical_spectra() {
        let p = CoverParams::default();
        let m = 1000.0;
        assert_eq!(
            classify(&sp([350.0, 700.0, 450.0, 3800.0]), m, &p),
            Cover::Vegetation
        );
        assert_eq!(
            classify(&sp([850.0, 1200.0, 1450.0, 2500.0]), m, &p),
            Cover::DryVegetation
        );
        assert_eq!(
            classify(&sp([1150.0, 1450.0, 1850.0, 2250.0]), m, &p),
            Cover::Bare
        );
        assert_eq!(
            classify(&sp([2000.0, 2100.0, 2150.0, 2350.0]), m, &p),
            Cover::Built
        );
        assert_eq!(
            classify(&sp([2600.0, 1900.0, 1200.0, 1500.0]), m, &p),
            Cover::Built
        );
        assert_eq!(
            classify(&sp([750.0, 650.0, 400.0, 180.0]), m, &p),
            Cover::Water
        );
        assert_eq!(
            classify(&sp([900.0, 950.0, 800.0, 500.0]), m, &p),
            Cover::Water
        );
        assert_eq!(
            classify(&sp([6200.0, 6300.0, 6400.0, 6600.0]), m, &p),
            Cover::Cloud
        );
        // Without NIR: green crops and soil still separate.
        let rgb = |v: [f32; 3]| Spectrum {
            blue: v[0],
            green: v[1],
            red: v[2],
            nir: None,
        };
        assert_eq!(
            classify(&rgb([350.0, 700.0, 450.0]), m, &p),
            Cover::Vegetation
        );
        assert_eq!(classify(&rgb([1150.0, 1450.0, 1850.0]), m, &p), Cover::Bare);
        assert_eq!(
            classify(&rgb([2000.0, 2100.0, 2150.0]), m, &p),
            Cover::Built
        );
    }

    /// Without near infrared, a ripening crop whose red has caught up with its green (yellow:
    /// green still well above blue) is dry vegetation, so a crop ripening is a cycle; it read as
    /// bare ground, and an RGB satellite scene's ripening fields as excavations. Soil, whose
    /// green is barely above its blue, stays bare.
    #[test]
    fn a_yellow_crop_without_near_infrared_is_dry_vegetation_not_bare_ground() {
        let p = CoverParams::default();
        let rgb = |v: [f32; 3]| Spectrum {
            blue: v[0],
            green: v[1],
            red: v[2],
            nir: None,
        };
        // Ripening paddy and wheat: red as high as green or higher.
        for v in [
            [500.0, 880.0, 900.0],
            [480.0, 850.0, 850.0],
            [300.0, 600.0, 700.0],
        ] {
            let c = classify(&rgb(v), 1000.0, &p);
            assert_eq!(c, Cover::DryVegetation, "{v:?}");
            assert_eq!(
                Transition::between(classify(&rgb([350.0, 700.0, 450.0]), 1000.0, &p), c),
                Some(Transition::VegetationCycle)
            );
        }
        // Fresh soil, piled soil, fallow, stubble: bare.
        for v in [
            [1150.0, 1450.0, 1850.0],
            [1350.0, 1700.0, 2100.0],
            [1000.0, 1300.0, 1600.0],
            [850.0, 1200.0, 1450.0],
        ] {
            assert_eq!(classify(&rgb(v), 1000.0, &p), Cover::Bare, "{v:?}");
        }
    }

    #[test]
    fn transitions_separate_land_use_change_from_cycles() {
        use Cover::*;
        assert_eq!(
            Transition::between(Vegetation, Built),
            Some(Transition::VegetationToBuilt)
        );
        assert_eq!(
            Transition::between(Vegetation, DryVegetation),
            Some(Transition::VegetationCycle)
        );
        assert_eq!(
            Transition::between(Bare, Vegetation),
            Some(Transition::VegetationCycle)
        );
        assert_eq!(
            Transition::between(Water, Bare),
            Some(Transition::WaterToLand)
        );
        assert_eq!(Transition::between(Vegetation, Vegetation), None);
        assert_eq!(
            Transition::between(Built, Vegetation),
            Some(Transition::VegetationCycle)
        );
        assert_eq!(Transition::between(Built, Built), Some(Transition::Other));
        assert!(!Transition::VegetationCycle.is_land_use_change());
        for t in Transition::ALL {
            assert_eq!(Transition::from_name(t.name()), Some(t));
        }
    }
}
