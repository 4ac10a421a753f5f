//! The per-cell detection cache: what the detector returned for a cell, kept on disk so that a
//! run whose imagery, detection parameters, detector, grid and code are unchanged (a new rules
//! file, new parcels or permits) re-judges the cell without reading imagery or detecting again.
//!
//! One file per cell, `<dir>/<cell id>.lwdc`, replaced whenever the cell is detected again, so
//! the cache never holds more than one entry per cell of the grid. An entry is trusted only when
//! its *detect key* — a SHA-256 over everything the detector's output depends on — equals the
//! key the run computes for the cell, the CRC-32 of its payload matches the header, and the last
//! run's score raster holds the cell's change scores the entry has the digest of (below);
//! anything else (missing, truncated, corrupt, stale, scores gone) means "detect again".
//! Deleting the cache only costs time. The checksum guards against damage (a write cut short, a
//! flipped bit), not against tampering — whoever can rewrite an entry can rewrite its checksum
//! too — so a CRC-32 serves as a SHA-256 did (format 3), at a tenth of the cost (SHA-256 over
//! the entries was ~1.2 % of a scan's CPU).
//!
//! ## File format (`landwatch detection cache`, version [`FORMAT_VERSION`])
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `LWDC\r\n\x1a\n` |
//! | 4 | format version, u32 little-endian |
//! | 32 | the detect key (raw SHA-256) |
//! | 8 | payload length in bytes, u64 LE |
//! | 4 | CRC-32 (IEEE) of the payload, u32 LE |
//! | n | payload: the body below in chunks |
//!
//! Each chunk of the payload is a method byte — 0 stored as it is, 1 compressed with LZ4 (block
//! format) — then the chunk's length in the body and its length in the payload (u32 LE each),
//! then its bytes; the body is the chunks' bytes one after another. The encoder starts a chunk
//! at each byte plane of an array (below) and stores a chunk as it is when LZ4 cannot shrink a
//! sample of it (the low bytes of the scores are noise).
//!
//! The body (all integers and floats little-endian, floats as their exact bits):
//! core width and height (u32 each), the number of after observations (u32), then per
//! observation a tag — 0 the observation does not cover the cell, 1 it has no valid pixel there,
//! 2 detected — and for a detected one: the region statistics, the cell statistics, then the
//! *digest* of the change score (u64: rapidhash v3 over its f32 values, little-endian, in
//! row-major order), the region labels (u32, byte-shuffled: all first bytes, then all second
//! bytes…, so that the compressor finds the runs) and the unobserved reasons (u8) over the core in
//! row-major order.
//!
//! ## The change scores are read back from the last run's score raster
//!
//! An entry does not hold the change score itself: the score raster the run writes
//! (`change_score_<observation>.tif`, lossless) holds it already, and keeping a second copy cost
//! the first run of a 5000² scene 80 MB of entries and ~5 % of its CPU. A run that finds a valid
//! entry reads the cell's window of the last run's score raster ([`DetectCache::load`]'s
//! `score`) and uses the entry only when that window's digest is the entry's; a score raster
//! deleted, replaced or written by another run means the cell is detected again, as a missing
//! entry does. (A run writes its score rasters under temporary names and renames them into place
//! at the end, so the last run's are there to read while it runs.)

use super::PipelineError;
use crate::bands::BandRole;
use crate::detect::cover::Transition;
use crate::detect::{CellResult, CellStats, Detector, RegionStats};
use crate::grid::{Bounds, Cell, GridDef};
use crate::ingest::Observation;
use ndarray::Array2;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The version of the file format; entries of another version are detected again.
pub const FORMAT_VERSION: u32 = 5;

const MAGIC: &[u8; 8] = b"LWDC\r\n\x1a\n";
const HEADER_LEN: usize = 8 + 4 + 32 + 8 + 4;
/// Bytes per core pixel of a detected observation's arrays: label (u32), reason (u8).
const PIXEL_BYTES: usize = 4 + 1;
/// The file name extension of cache entries.
pub const EXTENSION: &str = "lwdc";
/// Payload chunk methods.
const STORED: u8 = 0;
const LZ4: u8 = 1;
/// A payload chunk's own header: method, length in the body, length in the payload.
const CHUNK_HEADER_LEN: usize = 1 + 4 + 4;
/// Chunks of at least twice this many bytes are sampled: when LZ4 cannot shrink their first
/// `PROBE_LEN` bytes below seven eighths, they are stored as they are (LZ4 spent most of format
/// 4's time on the scores' noisy low bytes, for nothing).
const PROBE_LEN: usize = 16 << 10;
/// A hash of the source code detection depends on, computed by `build.rs`.
const DETECT_CODE: &str = env!("LANDWATCH_DETECT_CODE");

/// Where the cache lives and how the run uses it (`ScanJob::detect_cache`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// The directory of the entries (`<out>/cache/detect` for `landwatch scan`).
    pub dir: PathBuf,
    /// Ignore existing entries: detect every cell again and rewrite its entry (`--full`).
    pub refresh: bool,
}

/// What the scan uses of a detector's result for one cell and one after observation.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Change score over the core; NaN where unobserved. (An entry keeps only its digest; see
    /// the module's documentation.)
    pub score: Array2<f32>,
    /// Region labels over the core: 0 none, k = `regions[k - 1]`.
    pub labels: Array2<u32>,
    /// Why each core pixel is unobserved (`UNOBSERVED_*`).
    pub unobserved: Array2<u8>,
    /// Region statistics.
    pub regions: Vec<RegionStats>,
    /// Whole-cell numbers.
    pub stats: CellStats,
}

impl From<CellResult> for Detection {
    fn from(r: CellResult) -> Detection {
        Detection {
            score: r.score,
            labels: r.labels,
            unobserved: r.unobserved,
            regions: r.regions,
            stats: r.stats,
        }
    }
}

/// What detection gave for one after observation over one cell.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The observation does not cover the cell.
    NotCovered,
    /// The observation covers the cell but has no valid pixel in its read window.
    NoValidPixels,
    /// The detector's result.
    Detected(Box<Detection>),
}

/// Why an entry was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// There is no entry for the cell.
    Missing,
    /// The entry was made from other inputs (another detect key or format version): expected
    /// after any change of imagery, parameters or software, not a fault.
    Stale,
    /// The entry is damaged (truncated, checksum mismatch, undecodable): a fault worth a warning.
    Corrupt(String),
}

/// The cache of one run: the options, and the part of the detect key every cell shares.
pub struct DetectCache {
    options: CacheOptions,
    /// `None` until [`DetectCache::seal`]: the keys depend on the imagery's content hashes,
    /// which a run with nothing to look up computes beside detection.
    keys: Option<KeyContext>,
    /// Cells whose entries were written before the keys were known (with a zero key, which no
    /// run ever computes: until sealed, an entry is stale).
    unsealed: std::sync::Mutex<Vec<Cell>>,
    write_failures: AtomicUsize,
    /// Whether an entry was passed over because its scores were not in the last score raster
    /// (logged once per run).
    scores_missed: AtomicBool,
    /// Per after observation, the score raster the scores are read back from (for messages).
    score_rasters: Vec<PathBuf>,
}

/// Where an entry's detect key is, in bytes from the start of the file.
const KEY_OFFSET: u64 = 8 + 4;

impl DetectCache {
    /// A run's cache. Without `keys` (see [`DetectCache::seal`]) nothing is looked up, and the
    /// entries written wait for their keys.
    pub fn new(options: CacheOptions, keys: Option<KeyContext>) -> DetectCache {
        DetectCache {
            options,
            keys,
            unsealed: std::sync::Mutex::new(Vec::new()),
            write_failures: AtomicUsize::new(0),
            scores_missed: AtomicBool::new(false),
            score_rasters: Vec::new(),
        }
    }

    /// Names, per after observation, the score raster [`DetectCache::load`]'s scores come from,
    /// for its messages.
    pub fn with_score_rasters(mut self, paths: Vec<PathBuf>) -> DetectCache {
        self.score_rasters = paths;
        self
    }

    /// Whether `dir` holds any entry (a run with no entry to look up computes the imagery's
    /// content hashes beside detection, and seals its entries after).
    pub fn has_entries(dir: &std::path::Path) -> bool {
        let suffix = format!(".{EXTENSION}");
        std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !name.starts_with('.') && name.ends_with(&suffix)
            })
        })
    }

    /// Gives the run's keys to a cache made without them, and writes each entry written so far
    /// its cell's key (in place: 32 bytes of the header). An entry that cannot be sealed is
    /// removed and counted as a write failure. Returns how many entries were sealed.
    pub fn seal(&mut self, keys: KeyContext, grid: &GridDef) -> usize {
        let cells = std::mem::take(&mut *self.unsealed.lock().unwrap_or_else(|e| e.into_inner()));
        let mut sealed = 0;
        for cell in &cells {
            let path = self.path(&cell.id);
            let key = keys.cell_key(grid, cell);
            let written = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &key, KEY_OFFSET));
            match written {
                Ok(()) => sealed += 1,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    if self.write_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(
                            "detection cache {}: cannot write cell {}'s key ({e}); the entry is removed and the cell detected again next time",
                            path.display(),
                            cell.id
                        );
                    }
                }
            }
        }
        self.keys = Some(keys);
        sealed
    }

    /// Whether the run looks entries up (it has its keys and is not `--full`).
    pub fn looks_up(&self) -> bool {
        self.keys.is_some() && !self.options.refresh
    }

    /// The file of a cell.
    pub fn path(&self, cell_id: &str) -> PathBuf {
        self.options.dir.join(format!("{cell_id}.{EXTENSION}"))
    }

    /// The detect key of a cell (`None` before the cache is sealed).
    pub fn key(&self, grid: &GridDef, cell: &Cell) -> Option<[u8; 32]> {
        self.keys.as_ref().map(|k| k.cell_key(grid, cell))
    }

    /// The cell's outcomes (one per after observation) when its entry is valid for `key` and
    /// `score(observation index)` gives each detected observation's change score over the core
    /// (read from the last run's score raster), the one the entry was written with.
    /// A corrupt entry is logged, naming the file; `--full` (`refresh`) reads nothing.
    pub fn load(
        &self,
        cell: &Cell,
        key: &[u8; 32],
        score: impl FnMut(usize) -> Option<Array2<f32>>,
    ) -> Option<Vec<Outcome>> {
        if self.options.refresh {
            return None;
        }
        let path = self.path(&cell.id);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(
                    "detection cache {}: unreadable ({e}); cell {} is detected again",
                    path.display(),
                    cell.id
                );
                return None;
            }
        };
        let dims = (cell.core.width, cell.core.height);
        let observations = self.keys.as_ref()?.observations;
        match decode(&bytes, key, dims, observations) {
            Ok(entry) => match entry.with_scores(score) {
                Ok(o) => Some(o),
                Err(i) => {
                    if !self.scores_missed.swap(true, Ordering::Relaxed) {
                        let raster = self.score_rasters.get(i).map_or_else(
                            || format!("after observation {}", i + 1),
                            |p| p.display().to_string(),
                        );
                        tracing::warn!(
                            "detection cache {}: cell {}'s change scores are not in the last run's score raster {raster} (missing, unreadable, replaced or written by another run): the cell is detected again, as is any other cell in that case (not logged again)",
                            path.display(),
                            cell.id,
                        );
                    }
                    None
                }
            },
            Err(Rejected::Corrupt(why)) => {
                tracing::warn!(
                    "detection cache {}: corrupt entry ({why}); cell {} is detected again and the entry rewritten",
                    path.display(),
                    cell.id
                );
                None
            }
            Err(_) => None,
        }
    }

    /// Writes a cell's entry (atomically: temporary file, rename). A failure is logged once per
    /// run and counted; the scan goes on (the cache only saves time).
    /// Without a `key` (the cache is not sealed yet) the entry is written with a zero key and
    /// gets its own from [`DetectCache::seal`].
    pub fn store(&self, cell: &Cell, key: Option<&[u8; 32]>, outcomes: &[&Outcome]) {
        let path = self.path(&cell.id);
        let result = encode(
            key.unwrap_or(&[0; 32]),
            (cell.core.width, cell.core.height),
            outcomes,
        )
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            // Not synced: an entry lost or cut short by a power failure fails its checksum
            // and the cell is detected again.
            crate::export::write_replace_unsynced(&path, &bytes).map_err(|e| e.to_string())
        });
        if result.is_ok() && key.is_none() {
            self.unsealed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cell.clone());
        }
        if let Err(e) = result {
            if self.write_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "detection cache {}: cannot write cell {}'s entry ({e}); the run goes on without caching it (further failures are counted, not logged)",
                    path.display(),
                    cell.id
                );
            }
        }
    }

    /// How many entries could not be written.
    pub fn write_failures(&self) -> usize {
        self.write_failures.load(Ordering::Relaxed)
    }

    /// Removes entries of cells of other grids (another fingerprint), so that the cache stays
    /// bounded by the current grid. Returns how many were removed.
    pub fn prune_other_grids(&self, fingerprint: &str) -> usize {
        let Ok(rd) = std::fs::read_dir(&self.options.dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let bare = name.strip_prefix('.').unwrap_or(&name);
            let is_entry = bare.ends_with(&format!(".{EXTENSION}"));
            let prefix = bare.split('-').next().unwrap_or("");
            let other_grid = prefix.len() == fingerprint.len()
                && prefix.chars().all(|c| c.is_ascii_hexdigit())
                && prefix != fingerprint;
            if is_entry && other_grid && std::fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// A source raster's footprint in the grid's CRS and the digest of its description.
type SourceDigest = (Bounds, [u8; 32]);

/// The part of the detect key every cell shares, and each source's digest and footprint.
pub struct KeyContext {
    base: [u8; 32],
    /// The before observation's sources: footprint in the grid's CRS and digest, in composite
    /// order.
    before: Vec<SourceDigest>,
    /// Per after observation: its name and band roles (digested), and its sources.
    after: Vec<([u8; 32], Vec<SourceDigest>)>,
    observations: usize,
}

impl KeyContext {
    /// Everything a cell's detection depends on besides the cell itself: format and software
    /// version, the code detection runs, GDAL's version, the grid's definition, the `[detect]`
    /// and `[detector]` configuration, the detector's own description, band overrides, and each
    /// source raster's catalogue description (content hash, georeferencing, bands, nodata).
    pub fn new(
        config: &crate::config::Config,
        detector: &dyn Detector,
        grid: &GridDef,
        before: &Observation,
        after: &[Observation],
    ) -> Result<KeyContext, PipelineError> {
        let common = json!({
            "format": FORMAT_VERSION,
            "version": crate::VERSION,
            "code": DETECT_CODE,
            "gdal": gdal::version::version_info("RELEASE_NAME"),
            "grid": {
                "crs": grid.crs,
                "origin": [grid.origin_x.to_bits(), grid.origin_y.to_bits()],
                "pixel": [grid.pixel_width.to_bits(), grid.pixel_height.to_bits()],
                "cell_size": grid.cell_size,
                "halo": grid.halo,
            },
            "detect": config.detect,
            "detector_config": config.detector,
            "detector": detector.name(),
            "describe": detector.describe(),
            "bands_before": config.imagery.bands_before,
            "bands_after": config.imagery.bands_after,
        });
        let base = digest_json(&common)?;
        let sources = |o: &Observation| -> Result<Vec<SourceDigest>, PipelineError> {
            o.sources
                .sources
                .iter()
                .map(|s| {
                    let b = crate::ingest::plan::bounds_in_crs(&s.info, &s.path, &grid.crs)?;
                    Ok((b, digest_json(&json!(s.info))?))
                })
                .collect()
        };
        let before_sources = sources(before)?;
        let after_sources = after
            .iter()
            .map(|o| {
                let head = digest_json(&json!({ "name": o.name, "roles": o.sources.roles }))?;
                Ok((head, sources(o)?))
            })
            .collect::<Result<Vec<_>, PipelineError>>()?;
        Ok(KeyContext {
            base: digest_json(&json!({
                "common": hex::encode(base),
                "before_roles": before.sources.roles,
            }))?,
            before: before_sources,
            after: after_sources,
            observations: after.len(),
        })
    }

    /// The detect key of one cell: the shared part, the cell's windows, and the sources (of the
    /// before date and of each after observation, in composite order) whose footprint reaches
    /// the cell's read window grown by two pixels.
    pub fn cell_key(&self, grid: &GridDef, cell: &Cell) -> [u8; 32] {
        let mut read = cell.read;
        read.x -= 2;
        read.y -= 2;
        read.width += 4;
        read.height += 4;
        let rb = grid.window_bounds(&read);
        let mut h = Sha256::new();
        h.update(self.base);
        h.update(cell.id.as_bytes());
        for w in [&cell.core, &cell.read] {
            for v in [w.x, w.y, w.width as i64, w.height as i64] {
                h.update(v.to_le_bytes());
            }
        }
        let add = |h: &mut Sha256, srcs: &[SourceDigest]| {
            let mut n = 0u32;
            for (b, d) in srcs {
                if b.intersection(&rb).is_some() {
                    h.update(d);
                    n += 1;
                }
            }
            h.update(n.to_le_bytes());
        };
        add(&mut h, &self.before);
        for (head, srcs) in &self.after {
            h.update(head);
            add(&mut h, srcs);
        }
        h.finalize().into()
    }
}

fn digest_json(v: &serde_json::Value) -> Result<[u8; 32], PipelineError> {
    let text = serde_json::to_vec(v).map_err(|e| PipelineError::Inputs(e.to_string()))?;
    Ok(Sha256::digest(&text).into())
}

/// An entry that cannot be encoded (an array whose shape is not the cell's core).
#[derive(Debug, thiserror::Error)]
#[error("detection cache: {0}")]
pub struct EncodeError(String);

/// Encodes a cell's entry: header and compressed body.
pub fn encode(
    key: &[u8; 32],
    (width, height): (usize, usize),
    outcomes: &[&Outcome],
) -> Result<Vec<u8>, EncodeError> {
    let n = width * height;
    // Each detected observation's regions and statistics first: with them the body's size is
    // known, and the body is allocated once (regrowing it copied ~10 MB).
    let mut small: Vec<Vec<u8>> = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let mut m = Vec::new();
        if let Outcome::Detected(d) = *o {
            put_u32(&mut m, d.regions.len() as u32);
            for r in &d.regions {
                put_region(&mut m, r);
            }
            put_stats(&mut m, &d.stats);
        }
        small.push(m);
    }
    let detected = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Detected(_)))
        .count();
    let size =
        12 + small.iter().map(|m| 1 + m.len()).sum::<usize>() + detected * (8 + n * PIXEL_BYTES);
    let mut body = Vec::with_capacity(size);
    // Where the payload's chunks start: at each byte plane of the arrays, and after them.
    let mut cuts = vec![0];
    put_u32(&mut body, width as u32);
    put_u32(&mut body, height as u32);
    put_u32(&mut body, outcomes.len() as u32);
    for (o, m) in outcomes.iter().zip(&small) {
        match *o {
            Outcome::NotCovered => body.push(0),
            Outcome::NoValidPixels => body.push(1),
            Outcome::Detected(d) => {
                body.push(2);
                for (what, dim) in [
                    ("score", d.score.dim()),
                    ("labels", d.labels.dim()),
                    ("unobserved", d.unobserved.dim()),
                ] {
                    if dim != (height, width) {
                        return Err(EncodeError(format!(
                            "{what} is {}×{}, the core {width}×{height}",
                            dim.1, dim.0
                        )));
                    }
                }
                body.extend_from_slice(m);
                put_u64(&mut body, score_digest(&d.score));
                shuffled(&mut body, &mut cuts, &d.labels, u32::to_le_bytes);
                cuts.push(body.len());
                body.extend_from_slice(&crate::detect::flat(&d.unobserved));
                cuts.push(body.len());
            }
        }
    }
    debug_assert_eq!(body.len(), size);
    cuts.push(body.len());
    cuts.dedup();
    // The header, with the payload's length and checksum filled in once the chunks follow it.
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + cuts.len() * CHUNK_HEADER_LEN);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    out.extend_from_slice(key);
    out.extend_from_slice(&[0; 8 + 4]);
    debug_assert_eq!(out.len(), HEADER_LEN);
    // One output buffer for every chunk's compression (zeroed once, not once per chunk).
    let largest = cuts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let mut scratch = vec![0u8; lz4_flex::block::get_maximum_output_size(largest)];
    for w in cuts.windows(2) {
        put_chunk(&mut out, &body[w[0]..w[1]], &mut scratch)?;
    }
    drop(body);
    put_checksum(&mut out);
    Ok(out)
}

/// Writes an entry's payload length and checksum into its header, over the bytes after it.
fn put_checksum(entry: &mut [u8]) {
    let (header, payload) = entry.split_at_mut(HEADER_LEN);
    header[HEADER_LEN - 12..HEADER_LEN - 4].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[HEADER_LEN - 4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
}

/// Appends one chunk of the body to the payload: compressed with LZ4 (several times faster than
/// DEFLATE's fastest level, which took ~5 % of a scan's CPU), or stored as it is when a sample
/// shows LZ4 would not shrink it. `scratch` holds LZ4's output: at least its largest output
/// for `chunk`.
fn put_chunk(out: &mut Vec<u8>, chunk: &[u8], scratch: &mut [u8]) -> Result<(), EncodeError> {
    let len = u32::try_from(chunk.len())
        .map_err(|_| EncodeError(format!("a chunk of {} bytes", chunk.len())))?;
    let lz4 = |input: &[u8], scratch: &mut [u8]| {
        lz4_flex::block::compress_into(input, scratch)
            .map_err(|e| EncodeError(format!("compressing a chunk: {e}")))
    };
    let incompressible =
        chunk.len() >= 2 * PROBE_LEN && lz4(&chunk[..PROBE_LEN], scratch)? * 8 >= PROBE_LEN * 7;
    let (method, bytes) = if incompressible {
        (STORED, chunk)
    } else {
        let n = lz4(chunk, scratch)?;
        (LZ4, &scratch[..n])
    };
    let stored = u32::try_from(bytes.len())
        .map_err(|_| EncodeError(format!("a chunk of {} bytes compressed", bytes.len())))?;
    out.push(method);
    put_u32(out, len);
    put_u32(out, stored);
    out.extend_from_slice(bytes);
    Ok(())
}

/// One chunk of a payload, as its header describes it.
struct Chunk<'a> {
    method: u8,
    /// Its length in the body.
    len: usize,
    /// Its bytes in the payload.
    bytes: &'a [u8],
}

/// A payload's chunks, in order; corrupt when a header or a chunk's bytes run past the end.
fn chunks_of(payload: &[u8]) -> Result<Vec<Chunk<'_>>, Rejected> {
    let mut out = Vec::new();
    let mut r = Reader {
        bytes: payload,
        at: 0,
    };
    while r.at < payload.len() {
        let (method, len, stored) = (r.u8()?, r.u32()? as usize, r.u32()? as usize);
        out.push(Chunk {
            method,
            len,
            bytes: r.take(stored)?,
        });
    }
    Ok(out)
}

/// The body of a payload made of chunks ([`put_chunk`]), refused as corrupt when a chunk's
/// header is malformed, a chunk does not decompress to its stated length, or the body would be
/// longer than `limit` bytes (checked before anything is allocated for it).
fn body_of(payload: &[u8], limit: usize) -> Result<Vec<u8>, Rejected> {
    let corrupt = |s: &str| Rejected::Corrupt(s.to_string());
    // The chunks' headers first: the body's length and every chunk within the payload.
    let chunks = chunks_of(payload)?;
    let total = chunks
        .iter()
        .try_fold(0usize, |t, c| t.checked_add(c.len).filter(|t| *t <= limit))
        .ok_or_else(|| corrupt("body larger than any entry of this cell"))?;
    let mut body = vec![0u8; total];
    let mut start = 0;
    for Chunk { method, len, bytes } in chunks {
        let dst = &mut body[start..start + len];
        match method {
            STORED if bytes.len() == len => dst.copy_from_slice(bytes),
            STORED => return Err(corrupt("a stored chunk of another length than stated")),
            LZ4 => match lz4_flex::block::decompress_into(bytes, dst) {
                Ok(n) if n == len => {}
                Ok(_) => return Err(corrupt("a chunk decompresses shorter than stated")),
                Err(e) => return Err(Rejected::Corrupt(format!("cannot decompress: {e}"))),
            },
            m => return Err(Rejected::Corrupt(format!("unknown chunk method {m}"))),
        }
        start += len;
    }
    Ok(body)
}

/// A decoded entry: its outcomes, each detected one's change score still to be read back.
#[derive(Debug)]
pub struct Entry {
    /// The outcomes, a detected one's `score` an empty array.
    outcomes: Vec<Outcome>,
    /// Per outcome, the digest a detected one's change score must have ([`score_digest`]).
    digests: Vec<Option<u64>>,
}

impl Entry {
    /// The outcomes with their change scores, each from `score(observation index)`: `Err` with
    /// the index of the first observation whose score is not available or is not the one the
    /// entry was written with (another digest or another shape).
    pub fn with_scores(
        mut self,
        mut score: impl FnMut(usize) -> Option<Array2<f32>>,
    ) -> Result<Vec<Outcome>, usize> {
        for (i, (o, digest)) in self.outcomes.iter_mut().zip(&self.digests).enumerate() {
            let (Outcome::Detected(d), Some(digest)) = (o, digest) else {
                continue;
            };
            match score(i) {
                Some(s) if s.dim() == d.labels.dim() && score_digest(&s) == *digest => d.score = s,
                _ => return Err(i),
            }
        }
        Ok(self.outcomes)
    }
}

/// The digest of a change score an entry keeps instead of the score: rapidhash v3 over its
/// values' little-endian bytes in row-major order (NaNs by their bits).
pub fn score_digest(score: &Array2<f32>) -> u64 {
    match score.as_slice() {
        Some(s) if cfg!(target_endian = "little") => {
            rapidhash::v3::rapidhash_v3(bytemuck::cast_slice(s))
        }
        _ => {
            let bytes: Vec<u8> = score.iter().flat_map(|v| v.to_le_bytes()).collect();
            rapidhash::v3::rapidhash_v3(&bytes)
        }
    }
}

/// Decodes an entry, trusting it only when its format version and detect key are the expected
/// ones, its payload's checksum matches, and it describes a core of `dims` for `observations`
/// after observations. The change scores are still to be read back ([`Entry::with_scores`]).
pub fn decode(
    bytes: &[u8],
    key: &[u8; 32],
    (width, height): (usize, usize),
    observations: usize,
) -> Result<Entry, Rejected> {
    let corrupt = |s: &str| Rejected::Corrupt(s.to_string());
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("shorter than its header"));
    }
    let mut h = Reader { bytes, at: 0 };
    if h.take(8)? != MAGIC {
        return Err(corrupt("not a landwatch detection cache file"));
    }
    if h.u32()? != FORMAT_VERSION {
        return Err(Rejected::Stale);
    }
    if h.take(32)? != key {
        return Err(Rejected::Stale);
    }
    let len = h.u64()?;
    let sum = h.take(4)?;
    let payload = &bytes[HEADER_LEN..];
    if payload.len() as u64 != len {
        return Err(Rejected::Corrupt(format!(
            "payload of {} bytes, the header says {len}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload).to_le_bytes() != sum {
        return Err(corrupt("checksum mismatch"));
    }
    let n = width * height;
    // The largest body a valid entry of this cell can have.
    let limit = 12 + observations * (1 + 4 + 8 + n * PIXEL_BYTES + (1 << 20));
    let body = body_of(payload, limit)?;
    let mut r = Reader {
        bytes: &body,
        at: 0,
    };
    let (w, hh, k) = (r.u32()? as usize, r.u32()? as usize, r.u32()? as usize);
    if (w, hh) != (width, height) || k != observations {
        return Err(Rejected::Corrupt(format!(
            "made for a {w}×{hh} core and {k} observation(s), not {width}×{height} and {observations}"
        )));
    }
    let mut out = Vec::with_capacity(k);
    let mut digests = Vec::with_capacity(k);
    for _ in 0..k {
        let mut digest = None;
        out.push(match r.u8()? {
            0 => Outcome::NotCovered,
            1 => Outcome::NoValidPixels,
            2 => {
                let nr = r.u32()? as usize;
                if nr > n {
                    return Err(corrupt("more regions than pixels"));
                }
                let mut regions = Vec::with_capacity(nr);
                for _ in 0..nr {
                    regions.push(r.region()?);
                }
                let stats = r.stats()?;
                digest = Some(r.u64()?);
                let labels: Vec<u32> = r.unshuffled::<4>(n)?.map(u32::from_le_bytes).collect();
                if labels.iter().any(|l| *l as usize > nr) {
                    return Err(corrupt("a label names no region"));
                }
                let unobserved = r.take(n)?.to_vec();
                if unobserved
                    .iter()
                    .any(|u| *u > crate::detect::UNOBSERVED_SHADOW)
                {
                    return Err(corrupt("an unknown unobserved reason"));
                }
                let shape = (height, width);
                let arr = |e: ndarray::ShapeError| Rejected::Corrupt(e.to_string());
                Outcome::Detected(Box::new(Detection {
                    score: Array2::zeros((0, 0)),
                    labels: Array2::from_shape_vec(shape, labels).map_err(arr)?,
                    unobserved: Array2::from_shape_vec(shape, unobserved).map_err(arr)?,
                    regions,
                    stats,
                }))
            }
            t => return Err(Rejected::Corrupt(format!("unknown outcome tag {t}"))),
        });
        digests.push(digest);
    }
    if r.at != body.len() {
        return Err(corrupt("trailing bytes after the last observation"));
    }
    Ok(Entry {
        outcomes: out,
        digests,
    })
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            put_u64(out, v);
        }
        None => out.push(0),
    }
}

fn put_opt_f32(out: &mut Vec<u8>, v: Option<f32>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

/// Appends values byte-plane by byte-plane: every value's first byte, then every second byte…
/// Each plane's start goes to `cuts` (a chunk of its own in the payload).
fn shuffled<T: Copy, const B: usize>(
    out: &mut Vec<u8>,
    cuts: &mut Vec<usize>,
    values: &ndarray::Array2<T>,
    bytes: impl Fn(T) -> [u8; B],
) {
    let values = crate::detect::flat(values);
    out.reserve(values.len() * B);
    // One pass per plane over a plain slice, appended as it goes (no zeroing first).
    for plane in 0..B {
        cuts.push(out.len());
        out.extend(values.iter().map(|v| bytes(*v)[plane]));
    }
}

fn put_region(out: &mut Vec<u8>, r: &RegionStats) {
    // Destructured in full so that a new field fails to compile here until the format has it.
    let RegionStats {
        transition,
        pixels,
        transition_pixels,
        before_cover,
        after_cover,
        score_sum,
        score_max,
        chi2_sum,
        ring_pixels,
        ring_observed,
        agree_pixels,
    } = r;
    let t = Transition::ALL.iter().position(|t| t == transition);
    out.push(t.unwrap_or(Transition::ALL.len()) as u8);
    put_u64(out, *pixels);
    for v in transition_pixels
        .iter()
        .chain(before_cover)
        .chain(after_cover)
    {
        put_u64(out, *v);
    }
    put_u64(out, score_sum.to_bits());
    put_u32(out, score_max.to_bits());
    put_u64(out, chi2_sum.to_bits());
    put_u64(out, *ring_pixels);
    put_u64(out, *ring_observed);
    put_opt_u64(out, *agree_pixels);
}

fn put_stats(out: &mut Vec<u8>, s: &CellStats) {
    let CellStats {
        observed_px,
        unobserved_px,
        cloud_px,
        shadow_px,
        changed_px,
        cycle_px,
        threshold,
        otsu,
        chi2_floor,
        normalization,
        invariant_px,
        shift,
        shift_applied,
        sigma,
        bands,
    } = s;
    for v in [
        *observed_px,
        *unobserved_px,
        *cloud_px,
        *shadow_px,
        *changed_px,
        *cycle_px,
    ] {
        put_u64(out, v);
    }
    put_u32(out, threshold.to_bits());
    put_opt_f32(out, *otsu);
    put_u32(out, chi2_floor.to_bits());
    put_u32(out, normalization.len() as u32);
    out.extend_from_slice(normalization.as_bytes());
    put_u64(out, *invariant_px as u64);
    match shift {
        Some((dx, dy, peak)) => {
            out.push(1);
            for v in [dx, dy, peak] {
                put_u32(out, v.to_bits());
            }
        }
        None => out.push(0),
    }
    out.push(u8::from(*shift_applied));
    put_u32(out, sigma.len() as u32);
    for v in sigma {
        put_u32(out, v.to_bits());
    }
    put_u32(out, bands.len() as u32);
    for b in bands {
        let i = BandRole::ALL.iter().position(|r| r == b).unwrap_or(0);
        out.push(i as u8);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Rejected> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| Rejected::Corrupt("truncated".into()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Rejected> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, Rejected> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, Rejected> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, Rejected> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn f32(&mut self) -> Result<f32, Rejected> {
        Ok(f32::from_bits(self.u32()?))
    }

    fn f64(&mut self) -> Result<f64, Rejected> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn flag(&mut self) -> Result<bool, Rejected> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Rejected::Corrupt(format!("flag byte {v}"))),
        }
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, Rejected> {
        Ok(if self.flag()? {
            Some(self.u64()?)
        } else {
            None
        })
    }

    fn opt_f32(&mut self) -> Result<Option<f32>, Rejected> {
        Ok(if self.flag()? {
            Some(self.f32()?)
        } else {
            None
        })
    }

    fn len(&mut self, most: usize) -> Result<usize, Rejected> {
        let n = self.u32()? as usize;
        if n > most {
            return Err(Rejected::Corrupt(format!("a length of {n}")));
        }
        Ok(n)
    }

    fn unshuffled<const B: usize>(
        &mut self,
        n: usize,
    ) -> Result<impl Iterator<Item = [u8; B]> + 'a, Rejected> {
        let planes = self.take(
            n.checked_mul(B)
                .ok_or_else(|| Rejected::Corrupt("array too large".into()))?,
        )?;
        Ok((0..n).map(move |i| {
            let mut v = [0u8; B];
            for (p, b) in v.iter_mut().enumerate() {
                *b = planes[p * n + i];
            }
            v
        }))
    }

    fn region(&mut self) -> Result<RegionStats, Rejected> {
        let t = self.u8()? as usize;
        let transition = *Transition::ALL
            .get(t)
            .ok_or_else(|| Rejected::Corrupt(format!("transition {t}")))?;
        let pixels = self.u64()?;
        let mut transition_pixels = [0u64; 9];
        for v in &mut transition_pixels {
            *v = self.u64()?;
        }
        let mut before_cover = [0u64; 7];
        for v in &mut before_cover {
            *v = self.u64()?;
        }
        let mut after_cover = [0u64; 7];
        for v in &mut after_cover {
            *v = self.u64()?;
        }
        Ok(RegionStats {
            transition,
            pixels,
            transition_pixels,
            before_cover,
            after_cover,
            score_sum: self.f64()?,
            score_max: self.f32()?,
            chi2_sum: self.f64()?,
            ring_pixels: self.u64()?,
            ring_observed: self.u64()?,
            agree_pixels: self.opt_u64()?,
        })
    }

    fn stats(&mut self) -> Result<CellStats, Rejected> {
        let mut counts = [0u64; 6];
        for v in &mut counts {
            *v = self.u64()?;
        }
        let [observed_px, unobserved_px, cloud_px, shadow_px, changed_px, cycle_px] = counts;
        let threshold = self.f32()?;
        let otsu = self.opt_f32()?;
        let chi2_floor = self.f32()?;
        let nl = self.len(4096)?;
        let normalization = String::from_utf8(self.take(nl)?.to_vec())
            .map_err(|_| Rejected::Corrupt("normalisation name is not UTF-8".into()))?;
        let invariant_px = self.u64()? as usize;
        let shift = if self.flag()? {
            Some((self.f32()?, self.f32()?, self.f32()?))
        } else {
            None
        };
        let shift_applied = self.flag()?;
        let ns = self.len(4096)?;
        let sigma = (0..ns).map(|_| self.f32()).collect::<Result<_, _>>()?;
        let nb = self.len(4096)?;
        let bands = (0..nb)
            .map(|_| {
                let i = self.u8()? as usize;
                BandRole::ALL
                    .get(i)
                    .copied()
                    .ok_or_else(|| Rejected::Corrupt(format!("band role {i}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(CellStats {
            observed_px,
            unobserved_px,
            cloud_px,
            shadow_px,
            changed_px,
            cycle_px,
            threshold,
            otsu,
            chi2_floor,
            normalization,
            invariant_px,
            shift,
            shift_applied,
            sigma,
            bands,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn region(seed: u64) -> RegionStats {
        RegionStats {
            transition: Transition::ALL[(seed % 9) as usize],
            pixels: seed * 7 + 1,
            transition_pixels: [seed, 1, 2, 3, 4, 5, 6, 7, 8],
            before_cover: [seed + 1, 0, 0, 4, 0, 0, 9],
            after_cover: [0, 0, 3, seed, 0, 0, 1],
            score_sum: seed as f64 * 0.1 + 1.0 / 3.0,
            score_max: 7.25 + seed as f32,
            chi2_sum: 1e-300 * seed as f64,
            ring_pixels: seed * 3,
            ring_observed: seed,
            agree_pixels: (seed % 2 == 0).then_some(seed / 2),
        }
    }

    fn stats(seed: u64) -> CellStats {
        CellStats {
            observed_px: seed,
            unobserved_px: 2,
            cloud_px: 3,
            shadow_px: 4,
            changed_px: 5,
            cycle_px: 6,
            threshold: 3.5 + seed as f32 / 7.0,
            otsu: (seed % 3 == 0).then_some(2.75),
            chi2_floor: 4.125,
            normalization: "quantile (IR-MAD) ü".into(),
            invariant_px: 2345,
            shift: (seed % 2 == 1).then_some((0.25, -0.5, 0.875)),
            shift_applied: seed % 2 == 1,
            sigma: vec![0.1, 0.2, f32::MIN_POSITIVE],
            bands: vec![
                BandRole::Blue,
                BandRole::Green,
                BandRole::Red,
                BandRole::Nir,
            ],
        }
    }

    fn detection(w: usize, h: usize, scores: &[f32], nregions: usize, seed: u64) -> Detection {
        let n = w * h;
        let score: Vec<f32> = (0..n).map(|i| scores[i % scores.len()]).collect();
        let labels: Vec<u32> = (0..n)
            .map(|i| ((i as u64 * 31 + seed) % (nregions as u64 + 1)) as u32)
            .collect();
        let unobserved: Vec<u8> = (0..n).map(|i| ((i as u64 + seed) % 4) as u8).collect();
        Detection {
            score: Array2::from_shape_vec((h, w), score).unwrap(),
            labels: Array2::from_shape_vec((h, w), labels).unwrap(),
            unobserved: Array2::from_shape_vec((h, w), unobserved).unwrap(),
            regions: (0..nregions as u64).map(|i| region(i + seed)).collect(),
            stats: stats(seed),
        }
    }

    /// Equality to the bit (NaN scores included).
    fn same(a: &[Outcome], b: &[Outcome]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(a, b)| match (a, b) {
                (Outcome::NotCovered, Outcome::NotCovered) => true,
                (Outcome::NoValidPixels, Outcome::NoValidPixels) => true,
                (Outcome::Detected(a), Outcome::Detected(b)) => {
                    a.score.shape() == b.score.shape()
                        && a.score
                            .iter()
                            .zip(b.score.iter())
                            .all(|(x, y)| x.to_bits() == y.to_bits())
                        && a.labels == b.labels
                        && a.unobserved == b.unobserved
                        && a.regions == b.regions
                        && a.stats.sigma.len() == b.stats.sigma.len()
                        && format!("{:?}", a.stats) == format!("{:?}", b.stats)
                }
                _ => false,
            })
    }

    fn refs(o: &[Outcome]) -> Vec<&Outcome> {
        o.iter().collect()
    }

    /// A detected outcome's change score (what the last run's score raster holds).
    fn score_of(o: &[Outcome], i: usize) -> Option<Array2<f32>> {
        match o.get(i)? {
            Outcome::Detected(d) => Some(d.score.clone()),
            _ => None,
        }
    }

    /// An entry's outcomes with the scores of `o` put back.
    fn restored(entry: Entry, o: &[Outcome]) -> Vec<Outcome> {
        entry.with_scores(|i| score_of(o, i)).unwrap()
    }

    fn sample() -> (Vec<Outcome>, [u8; 32], (usize, usize)) {
        let (w, h) = (37, 23);
        let o = vec![
            Outcome::Detected(Box::new(detection(
                w,
                h,
                &[0.0, 1.5, f32::NAN, -0.0, 3.25e-7],
                5,
                3,
            ))),
            Outcome::NotCovered,
            Outcome::NoValidPixels,
        ];
        (o, [7u8; 32], (w, h))
    }

    #[test]
    fn an_entry_round_trips_to_the_bit() {
        let (o, key, dims) = sample();
        let bytes = encode(&key, dims, &refs(&o)).unwrap();
        let back = restored(decode(&bytes, &key, dims, 3).unwrap(), &o);
        assert!(same(&o, &back));
    }

    #[test]
    fn an_entry_keeps_only_the_digest_of_its_scores_and_wants_them_back_to_the_bit() {
        let (o, key, dims) = sample();
        let bytes = encode(&key, dims, &refs(&o)).unwrap();
        let back = |score: &dyn Fn(usize) -> Option<Array2<f32>>| {
            decode(&bytes, &key, dims, 3).unwrap().with_scores(score)
        };
        // Without its scores, or with other ones, an entry is not used: the first detected
        // observation's index says why.
        assert_eq!(back(&|_| None).err(), Some(0));
        let other = |i: usize, edit: &dyn Fn(&mut Array2<f32>)| {
            score_of(&o, i).map(|mut s| {
                edit(&mut s);
                s
            })
        };
        // One value's last bit, or a NaN of other bits (a NaN all the same).
        assert_eq!(
            back(&|i| other(i, &|s| s[[3, 4]] = f32::from_bits(s[[3, 4]].to_bits() ^ 1))).err(),
            Some(0)
        );
        assert_eq!(
            back(&|i| other(i, &|s| s[[0, 2]] = -f32::NAN)).err(),
            Some(0)
        );
        // Scores of another shape.
        assert_eq!(
            back(&|_| Some(Array2::zeros((dims.0, dims.1)))).err(),
            Some(0)
        );
        assert!(same(&o, &back(&|i| score_of(&o, i)).unwrap()));
        // The scores are not in the entry: a noisy core's entry is smaller than its scores alone.
        let (w, h) = (256, 256);
        let noisy = noisy(w, h);
        let bytes = encode(&key, (w, h), &refs(&noisy)).unwrap();
        assert!(bytes.len() < w * h, "{} bytes", bytes.len());
    }

    #[test]
    fn another_key_or_format_version_is_stale() {
        let (o, key, dims) = sample();
        let bytes = encode(&key, dims, &refs(&o)).unwrap();
        assert_eq!(
            decode(&bytes, &[8u8; 32], dims, 3).err(),
            Some(Rejected::Stale)
        );
        let mut v = bytes.clone();
        v[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(decode(&v, &key, dims, 3).err(), Some(Rejected::Stale));
    }

    #[test]
    fn truncated_flipped_or_misfitting_entries_are_corrupt() {
        let (o, key, dims) = sample();
        let bytes = encode(&key, dims, &refs(&o)).unwrap();
        let corrupt = |b: &[u8], d: (usize, usize), k: usize| {
            matches!(decode(b, &key, d, k), Err(Rejected::Corrupt(_)))
        };
        for cut in [
            0,
            5,
            HEADER_LEN - 1,
            HEADER_LEN,
            bytes.len() / 2,
            bytes.len() - 1,
        ] {
            assert!(corrupt(&bytes[..cut], dims, 3), "cut at {cut}");
        }
        // Any flipped bit in the magic or the payload is caught.
        for i in (0..8).chain(HEADER_LEN..bytes.len()).step_by(7) {
            let mut v = bytes.clone();
            v[i] ^= 0x10;
            assert!(corrupt(&v, dims, 3), "flip at {i}");
        }
        // A flipped bit in the recorded checksum or length too.
        for i in [HEADER_LEN - 12, HEADER_LEN - 1] {
            let mut v = bytes.clone();
            v[i] ^= 1;
            assert!(corrupt(&v, dims, 3), "flip at {i}");
        }
        // Bytes appended after the payload.
        let mut v = bytes.clone();
        v.push(0);
        assert!(corrupt(&v, dims, 3));
        // An entry of another core size or observation count.
        assert!(corrupt(&bytes, (dims.0 + 1, dims.1), 3));
        assert!(corrupt(&bytes, dims, 2));
        // A valid checksum over a payload that does not decompress to an entry.
        let mut v = bytes[..HEADER_LEN].to_vec();
        v.extend_from_slice(b"not lz4 at all");
        put_checksum(&mut v);
        assert!(corrupt(&v, dims, 3));
    }

    /// An entry's chunks: (offset of the chunk's header in the entry, method, length in the body).
    fn chunks(entry: &[u8]) -> Vec<(usize, u8, usize)> {
        let mut at = HEADER_LEN;
        let mut out = Vec::new();
        for c in chunks_of(&entry[HEADER_LEN..]).unwrap() {
            out.push((at, c.method, c.len));
            at += CHUNK_HEADER_LEN + c.bytes.len();
        }
        assert_eq!(at, entry.len());
        out
    }

    /// A core with noisy scores (as real ones are in their low bytes), few regions.
    fn noisy(w: usize, h: usize) -> Vec<Outcome> {
        let scores: Vec<f32> = xorshift(w * h).map(|x| (x >> 40) as f32 / 3.0e3).collect();
        vec![Outcome::Detected(Box::new(detection(w, h, &scores, 3, 1)))]
    }

    /// `n` pseudo-random numbers.
    fn xorshift(n: usize) -> impl Iterator<Item = u64> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
    }

    /// A core of 4000 regions, labelled at random: labels whose two low bytes are noise.
    fn noisy_labels(w: usize, h: usize) -> Vec<Outcome> {
        let nr = 4000;
        let mut d = detection(w, h, &[0.5], 0, 1);
        d.regions = (0..nr).map(region).collect();
        let labels = xorshift(w * h).map(|x| (x % (nr + 1)) as u32).collect();
        d.labels = Array2::from_shape_vec((h, w), labels).unwrap();
        vec![Outcome::Detected(Box::new(d))]
    }

    fn resealed(mut v: Vec<u8>) -> Vec<u8> {
        put_checksum(&mut v);
        v
    }

    #[test]
    fn noisy_planes_are_stored_as_they_are_and_round_trip() {
        let (w, h) = (256, 256);
        let o = noisy_labels(w, h);
        let bytes = encode(&[3; 32], (w, h), &refs(&o)).unwrap();
        let c = chunks(&bytes);
        // Small values (the scores' digest among them), a label's four planes, the reasons:
        // one chunk each.
        assert_eq!(c.len(), 6, "{c:?}");
        // The labels' two low byte planes are noise; their high bytes, the reasons and the
        // small values compress.
        let methods: Vec<u8> = c.iter().map(|c| c.1).collect();
        assert_eq!(methods, [LZ4, STORED, STORED, LZ4, LZ4, LZ4], "{methods:?}");
        assert!(c.iter().skip(1).all(|c| c.2 == w * h), "{c:?}");
        let back = restored(decode(&bytes, &[3; 32], (w, h), 1).unwrap(), &o);
        assert!(same(&o, &back));
    }

    #[test]
    fn malformed_chunks_are_corrupt_even_under_a_valid_checksum() {
        let (w, h) = (256, 256);
        let o = noisy_labels(w, h);
        let key = [3; 32];
        let bytes = encode(&key, (w, h), &refs(&o)).unwrap();
        let c = chunks(&bytes);
        let corrupt = |v: Vec<u8>| {
            let v = resealed(v);
            matches!(decode(&v, &key, (w, h), 1), Err(Rejected::Corrupt(_)))
        };
        let with = |at: usize, b: &[u8]| {
            let mut v = bytes.clone();
            v[at..at + b.len()].copy_from_slice(b);
            v
        };
        let (stored, packed) = (c[1].0, c[3].0);
        // An unknown method.
        assert!(corrupt(with(packed, &[7])));
        // A stored or compressed chunk one byte longer in the body than its bytes give.
        let longer = ((w * h + 1) as u32).to_le_bytes();
        assert!(corrupt(with(stored + 1, &longer)));
        assert!(corrupt(with(packed + 1, &longer)));
        // A body longer than any entry of the cell (refused before it is allocated).
        assert!(corrupt(with(packed + 1, &u32::MAX.to_le_bytes())));
        // A chunk cut short, and a chunk header cut short.
        assert!(corrupt(bytes[..c[5].0 + CHUNK_HEADER_LEN + 1].to_vec()));
        assert!(corrupt(bytes[..c[5].0 + 3].to_vec()));
        // A chunk missing from the middle: the body ends early.
        let mut v = bytes[..c[3].0].to_vec();
        v.extend_from_slice(&bytes[c[4].0..]);
        assert!(corrupt(v));
        // Untouched, resealing changes nothing.
        assert_eq!(resealed(bytes.clone()), bytes);
    }

    #[test]
    fn an_array_of_another_shape_is_refused_when_writing() {
        let d = detection(4, 3, &[1.0], 1, 0);
        assert!(encode(&[0; 32], (3, 4), &[&Outcome::Detected(Box::new(d))]).is_err());
    }

    /// A 100 m × 100 m grid of 64 px cells (1 m pixels, a 4 px halo).
    fn small_grid() -> GridDef {
        GridDef::covering(
            "EPSG:32650",
            &Bounds::from_corners(0.0, 0.0, 100.0, 100.0),
            1.0,
            64,
            4,
            Some((0.0, 100.0)),
        )
    }

    /// Keys for one after observation and no imagery digests.
    fn one_observation_keys() -> KeyContext {
        KeyContext {
            base: [1; 32],
            before: Vec::new(),
            after: vec![([2; 32], Vec::new())],
            observations: 1,
        }
    }

    /// A cache whose directory cannot be made (a file stands where it should be) counts each
    /// failed write and keeps going; nothing is read from it and the file is left alone.
    #[test]
    fn an_unwritable_cache_counts_its_failures_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("cache");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let keys = one_observation_keys();
        let cache = DetectCache::new(
            CacheOptions {
                dir: blocker.join("detect"),
                refresh: false,
            },
            Some(keys),
        );
        let grid = small_grid();
        for (row, col) in [(0, 0), (0, 1)] {
            let cell = grid.cell(row, col).unwrap();
            let key = cache.key(&grid, &cell).unwrap();
            let o = vec![Outcome::Detected(Box::new(detection(
                cell.core.width,
                cell.core.height,
                &[0.5],
                1,
                0,
            )))];
            cache.store(&cell, Some(&key), &refs(&o));
            assert!(cache.load(&cell, &key, |i| score_of(&o, i)).is_none());
        }
        assert_eq!(cache.write_failures(), 2);
        assert_eq!(std::fs::read(&blocker).unwrap(), b"not a directory");
    }

    #[test]
    fn a_cache_writes_reads_refreshes_and_prunes_other_grids() {
        let dir = tempfile::tempdir().unwrap();
        let options = CacheOptions {
            dir: dir.path().join("cache/detect"),
            refresh: false,
        };
        let keys = one_observation_keys();
        let cache = DetectCache::new(options.clone(), Some(keys));
        let grid = small_grid();
        let cell = grid.cell(0, 1).unwrap();
        let key = cache.key(&grid, &cell).unwrap();
        assert_ne!(Some(key), cache.key(&grid, &grid.cell(0, 0).unwrap()));
        assert!(cache.load(&cell, &key, |_| None).is_none());
        let o = vec![Outcome::Detected(Box::new(detection(
            cell.core.width,
            cell.core.height,
            &[0.5, f32::NAN],
            2,
            1,
        )))];
        cache.store(&cell, Some(&key), &refs(&o));
        assert_eq!(cache.write_failures(), 0);
        let scores = |i| score_of(&o, i);
        assert!(same(&cache.load(&cell, &key, scores).unwrap(), &o));
        // Without the scores the entry is not used.
        assert!(cache.load(&cell, &key, |_| None).is_none());
        let mut other = key;
        other[0] ^= 1;
        assert!(cache.load(&cell, &other, scores).is_none());
        let refreshing = DetectCache::new(
            CacheOptions {
                refresh: true,
                ..options.clone()
            },
            Some(one_observation_keys()),
        );
        assert!(refreshing.load(&cell, &key, scores).is_none());
        // Entries of another grid go; this grid's entries and other files stay.
        std::fs::write(options.dir.join("0badf00d-r0000-c0000.lwdc"), b"x").unwrap();
        std::fs::write(options.dir.join("notes.txt"), b"x").unwrap();
        assert_eq!(cache.prune_other_grids(&grid.fingerprint()), 1);
        assert!(cache.path(&cell.id).exists());
        assert!(options.dir.join("notes.txt").exists());
    }

    /// A cache made before the keys are known looks nothing up; its entries are stale until
    /// sealed, and then exactly what a cache with the keys from the start would have written.
    #[test]
    fn entries_written_before_the_keys_are_sealed_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let options = |sub: &str| CacheOptions {
            dir: dir.path().join(sub),
            refresh: false,
        };
        let grid = small_grid();
        let cells = [grid.cell(0, 0).unwrap(), grid.cell(0, 1).unwrap()];
        let outcome = |cell: &Cell| {
            vec![Outcome::Detected(Box::new(detection(
                cell.core.width,
                cell.core.height,
                &[0.5, 2.0],
                2,
                1,
            )))]
        };
        let known = DetectCache::new(options("known"), Some(one_observation_keys()));
        let mut later = DetectCache::new(options("later"), None);
        assert!(!DetectCache::has_entries(&options("later").dir));
        for cell in &cells {
            let o = outcome(cell);
            let key = known.key(&grid, cell).unwrap();
            known.store(cell, Some(&key), &refs(&o));
            assert_eq!(later.key(&grid, cell), None);
            later.store(cell, None, &refs(&o));
            assert!(
                later.load(cell, &key, |i| score_of(&o, i)).is_none(),
                "nothing is looked up before the seal"
            );
        }
        assert!(DetectCache::has_entries(&options("later").dir));
        let sealed_before = DetectCache::new(options("later"), Some(one_observation_keys()));
        let key0 = known.key(&grid, &cells[0]).unwrap();
        let o0 = outcome(&cells[0]);
        assert!(
            sealed_before
                .load(&cells[0], &key0, |i| score_of(&o0, i))
                .is_none(),
            "an unsealed entry is stale"
        );
        assert_eq!(later.seal(one_observation_keys(), &grid), 2);
        for cell in &cells {
            let (a, b) = (known.path(&cell.id), later.path(&cell.id));
            assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
            let key = later.key(&grid, cell).unwrap();
            let o = outcome(cell);
            assert!(same(
                &later.load(cell, &key, |i| score_of(&o, i)).unwrap(),
                &o
            ));
        }
        assert_eq!(later.seal(one_observation_keys(), &grid), 0, "sealed once");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn any_entry_round_trips(
            w in 1usize..40,
            h in 1usize..40,
            nregions in 0usize..6,
            seed in 0u64..1000,
            scores in proptest::collection::vec(proptest::num::f32::ANY, 1..50),
            tags in proptest::collection::vec(0u8..3, 1..4),
            key in proptest::array::uniform32(any::<u8>()),
        ) {
            // A detection has at most one region per pixel (the decoder rejects more as corrupt).
            let nregions = nregions.min(w * h);
            let o: Vec<Outcome> = tags
                .iter()
                .map(|t| match t {
                    0 => Outcome::NotCovered,
                    1 => Outcome::NoValidPixels,
                    _ => Outcome::Detected(Box::new(detection(w, h, &scores, nregions, seed))),
                })
                .collect();
            let bytes = encode(&key, (w, h), &refs(&o)).unwrap();
            let back = restored(decode(&bytes, &key, (w, h), o.len()).unwrap(), &o);
            prop_assert!(same(&o, &back));
        }
    }
}
