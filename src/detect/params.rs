//! Detection parameters: the `[detect]` section of the configuration, with documented defaults.

use super::cover::{CoverParams, Transition};
use super::normalize::NormalizationMethod;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the change threshold is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    /// A fixed score.
    Fixed(f32),
    /// `auto` (the larger of Otsu and the chi-square floor), `otsu` or `chi2`.
    Named(String),
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::Named("auto".into())
    }
}

/// Parameters of the spectral change detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectParams {
    /// `"auto"`, `"otsu"`, `"chi2"` or a number (the standardised change score).
    pub threshold: Threshold,
    /// The chi-square floor: a pixel is change only if P(no change) < `p_value`.
    pub p_value: f64,
    /// Radiometric normalisation: `quantile`, `linear` or `none`.
    pub normalization: NormalizationMethod,
    /// Estimate and remove a sub-pixel shift between the dates, per cell.
    pub coregister: bool,
    /// Largest shift searched, in pixels.
    pub max_shift_px: usize,
    /// Residual mis-registration tolerated, in pixels: a pixel counts as changed only if no
    /// neighbour within this distance matches it.
    pub misregistration_px: usize,
    /// Box smoothing radius in pixels applied to both dates before differencing (0: none).
    pub smooth_px: usize,
    /// Largest spectral angle (degrees) between the dates of a pixel that got darker whose change
    /// is read as a new shadow (another sun angle) rather than a change of land use (0 disables).
    pub illumination_angle_deg: f32,
    /// Regions losing vegetation to bare or built ground over at least this many m² are taken as
    /// field operations (ploughing, harvest) and reported as a vegetation cycle.
    pub field_scale_m2: f64,
    /// Opening radius in pixels (removes specks and thin slivers).
    pub opening_px: u8,
    /// Closing radius in pixels (fills small gaps).
    pub closing_px: u8,
    /// Buffer around clouds and shadows, in pixels, reported as unobserved.
    pub cloud_buffer_px: u8,
    /// Smallest cloud (haze patch) in m²; brightening patches smaller than this are left to
    /// detection (white greenhouses and roofs are not clouds). Shadows need half of it.
    pub cloud_min_area_m2: f64,
    /// Minimum mapping unit per transition, m² (transition name → area).
    pub min_area_m2: BTreeMap<String, f64>,
    /// Minimum mapping unit for transitions not listed, m².
    pub default_min_area_m2: f64,
    /// Minimum invariant pixels for an IR-MAD-based normalisation (else histogram matching).
    pub min_invariant_pixels: usize,
    /// Cover classification thresholds.
    pub cover: CoverParams,
    /// Write per-pixel diagnostics (`debug_layers.tif`: unobserved reason, covers, transition).
    pub debug_layers: bool,
}

impl Default for DetectParams {
    fn default() -> Self {
        let mut mmu = BTreeMap::new();
        for (t, a) in [
            (Transition::VegetationToBuilt, 20.0),
            (Transition::BareToBuilt, 20.0),
            (Transition::VegetationToBare, 40.0),
            (Transition::VegetationToWater, 40.0),
            (Transition::BareToWater, 40.0),
            (Transition::WaterToLand, 40.0),
            (Transition::BuiltToOther, 40.0),
            (Transition::VegetationCycle, 100.0),
            (Transition::Other, 40.0),
        ] {
            mmu.insert(t.name().to_string(), a);
        }
        DetectParams {
            threshold: Threshold::default(),
            p_value: 1e-4,
            normalization: NormalizationMethod::Quantile,
            coregister: true,
            max_shift_px: 3,
            misregistration_px: 1,
            smooth_px: 0,
            illumination_angle_deg: 8.0,
            field_scale_m2: 20_000.0,
            opening_px: 0,
            closing_px: 1,
            cloud_buffer_px: 16,
            cloud_min_area_m2: 1500.0,
            min_area_m2: mmu,
            default_min_area_m2: 40.0,
            min_invariant_pixels: 2000,
            cover: CoverParams::default(),
            debug_layers: false,
        }
    }
}

impl DetectParams {
    /// Checks the values; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        match &self.threshold {
            Threshold::Fixed(v) if !(v.is_finite() && *v > 0.0) => {
                return Err(format!("threshold: must be a positive number, got {v}"))
            }
            Threshold::Named(n) if !["auto", "otsu", "chi2"].contains(&n.as_str()) => {
                return Err(format!(
                    "threshold: expected \"auto\", \"otsu\", \"chi2\" or a number, got \"{n}\""
                ))
            }
            _ => {}
        }
        if !(self.p_value > 0.0 && self.p_value < 0.5) {
            return Err(format!(
                "p_value: must be between 0 and 0.5, got {}",
                self.p_value
            ));
        }
        if self.max_shift_px > 8 || self.misregistration_px > 3 {
            return Err("max_shift_px must be ≤ 8 and misregistration_px ≤ 3".into());
        }
        for (k, v) in &self.min_area_m2 {
            if Transition::from_name(k).is_none() {
                let names: Vec<&str> = Transition::ALL.iter().map(|t| t.name()).collect();
                return Err(format!(
                    "min_area_m2: unknown transition '{k}' (known: {})",
                    names.join(", ")
                ));
            }
            if !(v.is_finite() && *v >= 0.0) {
                return Err(format!("min_area_m2.{k}: must be ≥ 0, got {v}"));
            }
        }
        Ok(())
    }

    /// The minimum mapping unit of a transition, m².
    pub fn min_area(&self, t: Transition) -> f64 {
        self.min_area_m2
            .get(t.name())
            .copied()
            .unwrap_or(self.default_min_area_m2)
    }
}
