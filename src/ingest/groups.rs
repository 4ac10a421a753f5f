//! Grouping catalogued rasters into observations: rasters of one date taken by the same kind of
//! sensor with the same bands are mosaicked together; a drone orthophoto (RGB) and a satellite
//! scene (four bands) of the same night are two observations, each compared with the before date.

use super::catalog::{CatalogEntry, SensorKind};
use super::read::{DateSources, ImageSource};
use crate::bands::BandRole;

/// One observation: a set of rasters read together onto the grid.
#[derive(Debug, Clone)]
pub struct Observation {
    /// A short name: `satellite`, `drone`, `satellite-2` …
    pub name: String,
    /// The sensor kind, when known.
    pub sensor: Option<SensorKind>,
    /// The rasters and the roles to read.
    pub sources: DateSources,
}

impl Observation {
    /// Its files' paths, as messages and reports name them.
    pub fn files(&self) -> Vec<String> {
        self.sources
            .sources
            .iter()
            .map(|s| s.path.display().to_string())
            .collect()
    }
}

/// Groups the usable entries by sensor kind and band roles, in catalogue order; within a group,
/// the rasters oldest first (the newest wins where they overlap).
pub fn group_observations(entries: &[CatalogEntry]) -> Vec<Observation> {
    let mut groups: Vec<(Option<SensorKind>, Vec<BandRole>, Vec<ImageSource>)> = Vec::new();
    for e in entries.iter().filter(|e| e.is_usable()) {
        let Some(info) = &e.info else { continue };
        let kind = info.sensor.as_ref().map(|s| s.kind);
        let roles: Vec<BandRole> = info
            .roles()
            .into_iter()
            .filter(|r| !matches!(r, BandRole::Alpha | BandRole::Mask | BandRole::Unknown))
            .collect();
        let src = ImageSource {
            path: e.path.clone(),
            info: info.clone(),
        };
        match groups
            .iter_mut()
            .find(|(k, r, _)| *k == kind && *r == roles)
        {
            Some(g) => g.2.push(src),
            None => groups.push((kind, roles, vec![src])),
        }
    }
    let mut seen: Vec<String> = Vec::new();
    groups
        .into_iter()
        .map(|(kind, roles, mut sources)| {
            // Composited in order, later sources winning where they have valid pixels: oldest
            // first, so that where files of several days overlap the newest imagery is the one
            // compared (a file's name says nothing of its date); files without a date first of
            // all, the order of the catalogue kept among equals.
            sources.sort_by_key(|s| s.info.acquired.as_ref().map(|a| a.time));
            let base = match kind {
                Some(SensorKind::Satellite) => "satellite",
                Some(SensorKind::Drone) => "drone",
                Some(SensorKind::Aerial) => "aerial",
                None => "imagery",
            };
            let n = seen.iter().filter(|s| s.as_str() == base).count();
            seen.push(base.to_string());
            let name = if n == 0 {
                base.to_string()
            } else {
                format!("{base}-{}", n + 1)
            };
            Observation {
                name,
                sensor: kind,
                sources: DateSources { sources, roles },
            }
        })
        .collect()
}
