//! Band roles: what each band of a raster measures (blue, red, near infrared, alpha, ...).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a band measures. Detection needs at least red, green and blue; near infrared enables NDVI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum BandRole {
    /// Coastal aerosol (about 443 nm).
    Coastal,
    /// Blue (about 490 nm).
    Blue,
    /// Green (about 560 nm).
    Green,
    /// Red (about 665 nm).
    Red,
    /// Red edge (about 705–783 nm).
    RedEdge,
    /// Near infrared (about 842 nm).
    Nir,
    /// Short-wave infrared 1 (about 1610 nm).
    Swir1,
    /// Short-wave infrared 2 (about 2190 nm).
    Swir2,
    /// Panchromatic.
    Pan,
    /// Grey level of a single-band image.
    Gray,
    /// Transparency: 0 is no data.
    Alpha,
    /// A validity or cloud mask band: non-zero means masked.
    Mask,
    /// A band whose role is not known.
    Unknown,
}

impl BandRole {
    /// Every role with its canonical name, in a stable order.
    pub const ALL: [BandRole; 13] = [
        BandRole::Coastal,
        BandRole::Blue,
        BandRole::Green,
        BandRole::Red,
        BandRole::RedEdge,
        BandRole::Nir,
        BandRole::Swir1,
        BandRole::Swir2,
        BandRole::Pan,
        BandRole::Gray,
        BandRole::Alpha,
        BandRole::Mask,
        BandRole::Unknown,
    ];

    /// The canonical lower-case name, as accepted by `--bands`.
    pub fn name(self) -> &'static str {
        match self {
            BandRole::Coastal => "coastal",
            BandRole::Blue => "blue",
            BandRole::Green => "green",
            BandRole::Red => "red",
            BandRole::RedEdge => "rededge",
            BandRole::Nir => "nir",
            BandRole::Swir1 => "swir1",
            BandRole::Swir2 => "swir2",
            BandRole::Pan => "pan",
            BandRole::Gray => "gray",
            BandRole::Alpha => "alpha",
            BandRole::Mask => "mask",
            BandRole::Unknown => "unknown",
        }
    }

    /// Guesses a role from a free-text band description such as `B`, `NIR`, `Near Infrared`, `SWIR 1`.
    pub fn from_description(text: &str) -> Option<BandRole> {
        let t: String = text
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let role = match t.as_str() {
            "" => return None,
            "b" | "blue" | "bl" | "band2blue" => BandRole::Blue,
            "g" | "green" | "gr" => BandRole::Green,
            "r" | "red" => BandRole::Red,
            "n" | "nir" | "nearinfrared" | "nearir" | "infrared" | "ir" | "nir1" | "nir08" => {
                BandRole::Nir
            }
            "re" | "rededge" | "redge" => BandRole::RedEdge,
            "swir1" | "swir16" | "shortwaveinfrared1" | "swir" => BandRole::Swir1,
            "swir2" | "swir22" | "shortwaveinfrared2" => BandRole::Swir2,
            "coastal" | "coastalaerosol" | "aerosol" => BandRole::Coastal,
            "pan" | "panchromatic" => BandRole::Pan,
            "gray" | "grey" => BandRole::Gray,
            "alpha" | "a" => BandRole::Alpha,
            "mask" | "cloudmask" | "cloud" | "qa" => BandRole::Mask,
            _ => return None,
        };
        Some(role)
    }
}

impl fmt::Display for BandRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A band role name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown band role '{0}' (expected one of: coastal, blue, green, red, rededge, nir, swir1, swir2, pan, gray, alpha, mask, unknown)")]
pub struct UnknownBandRole(pub String);

impl FromStr for BandRole {
    type Err = UnknownBandRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        BandRole::ALL
            .iter()
            .copied()
            .find(|r| r.name() == lower)
            .or_else(|| BandRole::from_description(&lower))
            .ok_or_else(|| UnknownBandRole(s.to_string()))
    }
}

/// Parses a comma-separated role list such as `red,green,blue,nir`.
pub fn parse_role_list(list: &str) -> Result<Vec<BandRole>, UnknownBandRole> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(BandRole::from_str)
        .collect()
}

/// Where a band's role came from, most authoritative first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleSource {
    /// Given on the command line or in the config.
    Override,
    /// From the `<file>.json` sidecar.
    Sidecar,
    /// From the band description in the file.
    Description,
    /// From the band's colour interpretation.
    ColorInterpretation,
    /// Nothing said what the band is.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_descriptions() {
        assert_eq!(
            parse_role_list("red, green,blue,NIR").unwrap(),
            vec![
                BandRole::Red,
                BandRole::Green,
                BandRole::Blue,
                BandRole::Nir
            ]
        );
        assert_eq!(
            BandRole::from_description("Near Infrared"),
            Some(BandRole::Nir)
        );
        assert_eq!(BandRole::from_description("SWIR 1"), Some(BandRole::Swir1));
        assert_eq!(BandRole::from_description("B"), Some(BandRole::Blue));
        assert_eq!(BandRole::from_description("elevation"), None);
        let err = parse_role_list("red,purple").unwrap_err();
        assert!(err.to_string().contains("purple"));
    }

    #[test]
    fn names_round_trip() {
        for r in BandRole::ALL {
            assert_eq!(r.name().parse::<BandRole>().unwrap(), r);
        }
    }
}
