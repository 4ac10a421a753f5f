//! The evidence stage of a scan: one signed packet per finding, in parallel, reading a chip of
//! each date and of the run's change score around the finding.

use super::scan::{Finding, ScanContext};
use crate::bands::BandRole;
use crate::evidence::{
    write_packet, Acquisition, Chip, PacketInput, PacketOptions, PermitFootprint, SigningKey,
    SourceTile, WrittenPacket,
};
use crate::grid::{GridDef, Window};
use crate::image::CellImage;
use crate::ingest::read::SingleBandReader;
use crate::ingest::{CellReader, Observation};
use geo::BoundingRect;
use ndarray::Array3;
use rayon::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;

/// How the packets of a run are written.
#[derive(Clone)]
pub struct PacketSettings {
    /// Where packets go (`<out>/packets`).
    pub packets_dir: PathBuf,
    /// The bureau's signing key.
    pub key: SigningKey,
    /// Also write one `.zip` per packet.
    pub zip: bool,
    /// The run's id (manifest only).
    pub run_id: String,
    /// When the run started, RFC 3339 UTC (manifest only).
    pub created_at: String,
    /// SHA-256 of the configuration and rules the run used.
    pub config_sha256: String,
    /// Every parameter of the run.
    pub parameters: Value,
    /// The detector's description (`Detector::describe`).
    pub detector: Value,
    /// Ground margin around a finding, in metres.
    pub margin_m: f64,
    /// Smallest chip edge in pixels.
    pub min_px: usize,
    /// Largest chip edge in pixels (a larger finding is shown around its centre).
    pub max_px: usize,
}

/// What happened to one finding's packet.
#[derive(Debug, Clone)]
pub struct PacketOutcome {
    /// Index into the findings.
    pub finding: usize,
    /// The case the packet belongs to.
    pub case_id: String,
    /// The packet written (or found unchanged), or why it could not be.
    pub result: Result<WrittenPacket, String>,
}

/// The grid window of a finding's chip: its bounding box with a margin, at least `min_px` and at
/// most `max_px` pixels on a side, centred on the finding.
pub fn chip_window(
    grid: &GridDef,
    f: &Finding,
    margin_units: f64,
    min_px: usize,
    max_px: usize,
) -> Option<Window> {
    let bb = f.polygon.bounding_rect()?;
    let (c0, r0) = grid.world_to_pixel(bb.min().x - margin_units, bb.max().y + margin_units);
    let (c1, r1) = grid.world_to_pixel(bb.max().x + margin_units, bb.min().y - margin_units);
    let side = |a: f64, b: f64| -> (i64, usize) {
        let (lo, hi) = (a.min(b).floor(), a.max(b).ceil());
        let n = ((hi - lo) as usize).clamp(min_px.max(1), max_px.max(min_px.max(1)));
        let centre = (lo + hi) / 2.0;
        ((centre - n as f64 / 2.0).round() as i64, n)
    };
    let (x, width) = side(c0, c1);
    let (y, height) = side(r0, r1);
    Some(Window {
        x,
        y,
        width,
        height,
    })
}

/// Red, green, blue of an image (true colour; without a blue band, green stands in for it, and
/// an image without red and green shows its first band as grey).
fn rgb(img: &CellImage) -> Array3<f32> {
    let (h, w) = img.valid.dim();
    let first = |roles: &[BandRole]| roles.iter().find_map(|r| img.band(*r));
    let grey = img.bands.slice(ndarray::s![0, .., ..]);
    let r = first(&[BandRole::Red]).unwrap_or(grey);
    let g = first(&[BandRole::Green]).unwrap_or(r);
    let b = first(&[BandRole::Blue]).unwrap_or(g);
    let mut out = Array3::<f32>::zeros((3, h, w));
    out.slice_mut(ndarray::s![0, .., ..]).assign(&r);
    out.slice_mut(ndarray::s![1, .., ..]).assign(&g);
    out.slice_mut(ndarray::s![2, .., ..]).assign(&b);
    out
}

/// The acquisition of the imagery a chip shows: the time of the observation's latest file taken
/// on the finding's own date (`day`, as the finding is dated by the imagery under it), else the
/// latest of the files the chip was read from.
fn acquisition(obs: &Observation, img: &CellImage, day: Option<&str>) -> Acquisition {
    let infos: Vec<_> = img
        .contributing
        .iter()
        .filter_map(|&i| obs.sources.sources.get(i))
        .map(|s| &s.info)
        .collect();
    let all: Vec<_> = obs.sources.sources.iter().map(|s| &s.info).collect();
    let pick = if infos.is_empty() { &all } else { &infos };
    let on_day = day.and_then(|day| {
        all.iter()
            .filter_map(|i| i.acquired.as_ref().map(|a| a.time))
            .filter(|t| t.format("%Y-%m-%d").to_string() == day)
            .max()
    });
    Acquisition {
        acquired_at: on_day.or_else(|| {
            pick.iter()
                .filter_map(|i| i.acquired.as_ref().map(|a| a.time))
                .max()
        }),
        sensor_kind: obs
            .sensor
            .map(|k| {
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
            })
            .unwrap_or(None),
        platform: pick
            .iter()
            .find_map(|i| i.sensor.as_ref().and_then(|s| s.platform.clone())),
        observation: obs.name.clone(),
    }
}

fn sources(date: &str, obs: &Observation, img: &CellImage) -> Vec<SourceTile> {
    img.contributing
        .iter()
        .filter_map(|&i| obs.sources.sources.get(i))
        .map(|s| SourceTile {
            date: date.to_string(),
            path: s.path.display().to_string(),
            sha256: s.info.sha256.clone(),
        })
        .collect()
}

struct Readers {
    before: Result<CellReader, String>,
    after: Vec<Result<CellReader, String>>,
    scores: Vec<Result<SingleBandReader, String>>,
}

/// Writes the packet of each finding `which` names (`case_ids[i]` for `findings[i]`), in
/// parallel with one set of readers per worker thread; the outcomes come in `which`'s order. A
/// finding whose packet cannot be made is reported, not fatal.
pub fn write_packets(
    ctx: &ScanContext,
    findings: &[Finding],
    case_ids: &[String],
    which: &[usize],
    s: &PacketSettings,
    on_done: &(dyn Fn(usize) + Sync),
) -> Vec<PacketOutcome> {
    let parcels: HashMap<&str, usize> = ctx
        .parcels
        .parcels
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let permits: HashMap<&str, usize> = ctx
        .parcels
        .permits
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let obs_index: HashMap<&str, usize> = ctx
        .after
        .iter()
        .enumerate()
        .map(|(i, o)| (o.name.as_str(), i))
        .collect();
    let metres_per_unit = ctx.m2_per_unit2.sqrt().max(1e-12);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let opts = PacketOptions { zip: s.zip };
    which
        .par_iter()
        .filter_map(|&i| Some((i, (findings.get(i)?, case_ids.get(i)?))))
        .map_init(
            || Readers {
                before: CellReader::new(&ctx.grid, &ctx.before.sources).map_err(|e| e.to_string()),
                after: ctx
                    .after
                    .iter()
                    .map(|o| CellReader::new(&ctx.grid, &o.sources).map_err(|e| e.to_string()))
                    .collect(),
                scores: ctx
                    .score_files
                    .iter()
                    .map(|p| SingleBandReader::open(p).map_err(|e| e.to_string()))
                    .collect(),
            },
            |rd, (fi, (f, case_id))| {
                let result = one_packet(
                    ctx,
                    f,
                    case_id,
                    s,
                    &opts,
                    rd,
                    &parcels,
                    &permits,
                    &obs_index,
                    metres_per_unit,
                );
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                on_done(n);
                PacketOutcome {
                    finding: fi,
                    case_id: case_id.clone(),
                    result,
                }
            },
        )
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn one_packet(
    ctx: &ScanContext,
    f: &Finding,
    case_id: &str,
    s: &PacketSettings,
    opts: &PacketOptions,
    rd: &mut Readers,
    parcels: &HashMap<&str, usize>,
    permits: &HashMap<&str, usize>,
    obs_index: &HashMap<&str, usize>,
    metres_per_unit: f64,
) -> Result<WrittenPacket, String> {
    let oi = *obs_index
        .get(f.observation.as_str())
        .ok_or_else(|| format!("observation '{}' is not in the run", f.observation))?;
    let win = chip_window(
        &ctx.grid,
        f,
        s.margin_m / metres_per_unit,
        s.min_px,
        s.max_px,
    )
    .ok_or_else(|| "the finding has no geometry".to_string())?;
    let before_reader = rd
        .before
        .as_mut()
        .map_err(|e| format!("before imagery: {e}"))?;
    let before = before_reader
        .read(case_id, &win)
        .map_err(|e| format!("reading the before chip: {e}"))?;
    let after_reader = rd.after[oi]
        .as_mut()
        .map_err(|e| format!("after imagery: {e}"))?;
    let after = after_reader
        .read(case_id, &win)
        .map_err(|e| format!("reading the after chip: {e}"))?;
    let score_chip = rd.scores[oi]
        .as_ref()
        .map_err(|e| e.clone())?
        .read_f32(&win)
        .map_err(|e| format!("reading the change score: {e}"))?;
    let gt = ctx.grid.window_geo_transform(&win);
    let parcel = parcels
        .get(f.parcel_id.as_str())
        .map(|&i| &ctx.parcels.parcels[i])
        .ok_or_else(|| format!("parcel {} is not in the run", f.parcel_id))?;
    let permit_footprints = f
        .permits
        .iter()
        .filter_map(|id| permits.get(id.as_str()).map(|&i| &ctx.parcels.permits[i]))
        .map(|p| PermitFootprint {
            permit_id: p.id.clone(),
            kind: p.kind.clone(),
            permitted_use: p.permitted_use.clone(),
            valid_from: p.valid_from.map(|d| d.to_string()),
            valid_to: p.valid_to.map(|d| d.to_string()),
            footprint: p.footprint.clone(),
        })
        .collect();
    let mut srcs = sources("before", &ctx.before, &before);
    srcs.extend(sources("after", &ctx.after[oi], &after));
    let input = PacketInput {
        case_id: case_id.to_string(),
        run_id: s.run_id.clone(),
        created_at: s.created_at.clone(),
        finding_id: f.finding_id.clone(),
        parcel_id: f.parcel_id.clone(),
        approved_use: f.approved_use.clone(),
        approved_use_zh: crate::parcels::use_name_zh(&f.approved_use).to_string(),
        control_layers: f.control_layers.clone(),
        kind: f.kind.clone(),
        kind_label: f.kind_label.clone(),
        rule_id: f.rule_id.clone(),
        severity: f.severity.clone(),
        transition: f.transition.clone(),
        area_m2: f.area_m2,
        area_mu: f.area_mu,
        confidence: f.confidence,
        rule_trace: f.rule_trace.clone(),
        before: acquisition(&ctx.before, &before, f.before_date.as_deref()),
        after: acquisition(&ctx.after[oi], &after, f.after_date.as_deref()),
        sources: srcs,
        working_crs: ctx.grid.crs.clone(),
        change_polygon: f.polygon.clone(),
        parcel_polygon: parcel.polygon.clone(),
        permits: permit_footprints,
        before_chip: Chip {
            rgb: rgb(&before),
            valid: before.valid.clone(),
            geo_transform: gt,
        },
        after_chip: Chip {
            rgb: rgb(&after),
            valid: after.valid.clone(),
            geo_transform: gt,
        },
        score_chip,
        parameters: s.parameters.clone(),
        config_sha256: s.config_sha256.clone(),
        detector: s.detector.clone(),
        software_version: crate::VERSION.to_string(),
        git_commit: crate::GIT_COMMIT.to_string(),
    };
    write_packet(&s.packets_dir, &input, &s.key, opts).map_err(|e| e.to_string())
}
