//! Command-line parsing and the thin glue from commands to the library.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use landwatch::bands::parse_role_list;
use landwatch::config::Config;
use landwatch::detect::{build_detector, CombinePolicy, DetectorConfig, DetectorKind};
use landwatch::grid::{Cell, GridDef};
use landwatch::ingest::catalog::SensorKind;
use landwatch::ingest::plan::{plan_grid, GridRequest};
use landwatch::ingest::{
    catalog_paths, group_observations, CatalogEntry, CatalogOptions, CellReader,
};
use std::path::{Path, PathBuf};

/// How a command ended when it did not fail.
pub enum Outcome {
    /// Everything was processed.
    Done,
    /// Done, but some inputs were skipped; each was named in the output.
    DoneWithSkips,
    /// The command ran to the end and its answer is "no" (e.g. a packet that does not verify),
    /// or the command line was not understood; what failed was named in the output.
    Failed,
}

#[derive(Parser)]
#[command(
    name = "landwatch",
    version,
    about = "Find suspected land-use violations (疑似违法用地线索) in new satellite and drone imagery.",
    long_about = "landwatch compares new satellite scenes and drone orthophotos with earlier imagery and with \
the approved land-use parcels and permits, and flags parcels where land use changed in a way no approval \
explains. A flag is a suspected violation — a lead for officers to check in the field, never a verdict.\n\n\
Exit codes: 0 done; 2 done, but some inputs were skipped (each is named); 1 failed."
)]
struct Cli {
    /// Write log lines as JSON (for log collectors) instead of plain text.
    #[arg(long, global = true, help_heading = "Logging (any command)")]
    log_json: bool,
    /// More log output (-v: debug, -vv: trace, including GDAL's messages). The environment's
    /// LANDWATCH_LOG, a tracing filter such as `warn` or `landwatch=debug`, wins over -v and -q.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Logging (any command)")]
    verbose: u8,
    /// Warnings and errors only: no progress bar or progress lines (for cron jobs and scripts).
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Logging (any command)"
    )]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process and matched at once: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// List every raster under the given paths with its georeferencing, date, sensor, bands and SHA-256.
    #[command(
        after_help = "Exit codes: 0 done; 2 done, but some files cannot be used (each is listed with its reason); 1 failed."
    )]
    Catalog(CatalogArgs),
    /// Show (and optionally read) the analysis grid: its cells, stable ids and the imagery over each.
    #[command(
        after_help = "Exit codes: 0 done; 2 done, but some imagery cannot be used (each is named); 1 failed."
    )]
    Grid(GridArgs),
    /// Detect land-cover change between a before and an after image (mask, score, regions, summary).
    #[command(long_about = DETECT_HELP)]
    Detect(DetectArgs),
    /// Score a change mask against a truth raster: precision, recall, F1, IoU, accuracy, kappa.
    #[command(after_help = EXIT_DONE_OR_FAILED)]
    EvalMask(EvalMaskArgs),
    /// Scan imagery against parcels, permits and rules: suspected violations, coverage, summary.
    #[command(long_about = SCAN_HELP)]
    Scan(ScanArgs),
    /// Score findings against injected truth: parcel- and object-level precision, recall, F1.
    #[command(after_help = EXIT_DONE_OR_FAILED)]
    Eval(EvalArgs),
    /// Generate a synthetic before/after scene near Suzhou with exact ground truth.
    #[command(after_help = EXIT_DONE_OR_FAILED)]
    Synth(SynthArgs),
    /// Generate a scene and run everything landwatch can do on it, then say which files to open.
    #[command(
        after_help = "Exit codes: 0 done; 2 done, but the scan skipped some inputs (named); 1 failed."
    )]
    Demo(DemoArgs),
    /// Generate the bureau's Ed25519 key pair for signing evidence packets.
    #[command(long_about = KEYGEN_HELP, after_help = EXIT_DONE_OR_FAILED)]
    Keygen(KeygenArgs),
    /// Check an evidence packet (directory or .zip): every file's SHA-256 and the signature.
    #[command(long_about = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// List cases (suspected violations followed across runs) from the store.
    #[command(after_help = EXIT_DONE_OR_FAILED)]
    Cases(crate::store_cli::CasesArgs),
    /// Show one case (history, geometry, packets, lineage), or record an analyst's decision on it.
    #[command(after_help = EXIT_DONE_OR_FAILED)]
    Case(crate::store_cli::CaseArgs),
    /// Show the last runs, their outcome and counts, and the cases per status.
    #[command(after_help = EXIT_DONE_OR_FAILED)]
    Status(crate::store_cli::StatusArgs),
    /// Write a starter landwatch.toml, the shipped rules.toml and a key pair into a directory.
    #[command(after_help = EXIT_DONE_OR_FAILED)]
    Init(crate::store_cli::InitArgs),
}

/// The exit codes of a command that skips no input: it does all it was asked or fails.
const EXIT_DONE_OR_FAILED: &str =
    "Exit codes: 0 done; 1 failed (the error and its causes are printed).";

const KEYGEN_HELP: &str = "Generate the bureau's Ed25519 key pair for signing evidence packets.\n\n\
Writes DIR/NAME.key (the private key, file mode 0600: keep it on the machine that runs the scan, \
never in a packet) and DIR/NAME.pub (the public key, to hand to anyone who checks packets), and prints \
the key's fingerprint (SHA-256 of the 32 public-key bytes). Both files are text: a header line \
(landwatch-ed25519-private-key/1 or landwatch-ed25519-public-key/1) and 32 bytes in hex. Existing \
files are never overwritten. The randomness comes from the operating system.";

const VERIFY_HELP: &str = "Check an evidence packet (a packet directory or its .zip).\n\n\
Recomputes the SHA-256 of every file and compares it with manifest.json, reports each file that \
changed, is missing or was added, and checks the Ed25519 signature in manifest.sig over the exact \
bytes of manifest.json. With --pubkey the signature is checked with the bureau's public key file, \
which identifies the signer; without it, with the public key embedded in the manifest, which only \
shows that nothing changed since signing (anyone can re-sign with their own key), and the output \
says so.\n\nExit codes: 0 intact; 1 anything changed, missing, added, or the signature does not match.";

#[derive(Args)]
struct KeygenArgs {
    /// Directory for the key files (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Base name of the key files: NAME.key and NAME.pub.
    #[arg(long, default_value = "bureau")]
    name: String,
}

#[derive(Args)]
struct VerifyArgs {
    /// The packet: a directory `packets/<case-id>[.vN]` or its `.zip`.
    packet: PathBuf,
    /// The bureau's public key file (NAME.pub from `landwatch keygen`).
    #[arg(long, value_name = "KEY")]
    pubkey: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CatalogArgs {
    /// Files or directories (walked recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Print JSON (an array of entries) instead of a table.
    #[arg(long)]
    json: bool,
    /// Band roles in band order, overriding what the files say, e.g. `red,green,blue,nir`.
    #[arg(long, value_name = "ROLES")]
    bands: Option<String>,
    /// Sensor kind to assume when the files do not say: satellite, drone or aerial.
    #[arg(long, value_name = "KIND")]
    sensor: Option<String>,
    /// Decode every pixel block to find corrupt data (slow on big files; the default check reads
    /// the block table only).
    #[arg(long)]
    verify_pixels: bool,
}

#[derive(Args)]
struct GridArgs {
    /// Imagery files or directories (instead of, or in addition to, the config's).
    paths: Vec<PathBuf>,
    /// A landwatch.toml; its [grid] and [imagery] sections are used.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Grid CRS, e.g. EPSG:4549 (default: the config's, else the parcels' CRS — the imagery's
    /// projected CRS when the parcels' is in degrees — else the first raster's).
    #[arg(long)]
    crs: Option<String>,
    /// Pixel size in CRS units (default: the config's, else the first raster's).
    #[arg(long)]
    pixel_size: Option<f64>,
    /// Cell edge in pixels, 16 to 16384 (default: the config's, else 1024).
    #[arg(long)]
    cell_size: Option<usize>,
    /// Halo in pixels read around each cell, at most half the cell edge (default: the config's,
    /// else 32).
    #[arg(long)]
    halo: Option<usize>,
    /// Pin the grid origin (north-west corner) as X,Y.
    #[arg(long, value_name = "X,Y")]
    origin: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Read this cell from every observation and write it as GeoTIFFs into --out.
    #[arg(long, value_name = "CELL_ID", requires = "out")]
    export_cell: Option<String>,
    /// Directory for --export-cell.
    #[arg(long)]
    out: Option<PathBuf>,
}

const DETECT_HELP: &str = "Detect land-cover change between a before and an after image.\n\n\
Runs catalogue → grid → detect → vectorize over the overlap of the two rasters. The analysis grid is \
the before image's own pixel grid, so the mask lines up pixel for pixel with it, unless --config pins a \
grid ([grid] crs, pixel_size or origin); the config's [detect] section sets the detection parameters. Per cell: cloud and shadow masks, sub-pixel \
co-registration, IR-MAD relative radiometric normalisation, the standardised change-vector magnitude \
(tolerant to a pixel of residual shift), an automatic threshold (the larger of Otsu's and a chi-square \
floor), land-cover cues of both dates (NDVI and a water index with NIR, excess green for RGB), the \
transition of each changed pixel, opening and closing, and connected components above a minimum \
mapping unit per transition.\n\n\
With --detector onnx --model MODEL.toml (or [detector] kind = \"onnx\" in the config), a learned ONNX \
model described by MODEL.toml computes a change probability by sliding-window inference; the grid is \
then read at the model's pixel_size_m (unless the config pins [grid] pixel_size), and --combine says \
whether the model alone decides (learned), or a change must be seen by both detectors or by either. \
Clouds, covers, transitions, morphology and regions stay the spectral detector's. See docs/DETECTORS.md.\n\n\
Writes into --out: change_mask.tif (Byte: 0 no change, 1 land-use change, 255 unobserved), \
change_score.tif (Float32; a learned model alone writes its change probability), changes.geojson (RFC 7946, WGS84: one feature per region with its \
transition, area in m² and mu, scores and confidence; vegetation cycles such as harvest are regions \
with land_use_change = false and are not in the mask) and summary.json.\n\n\
Exit codes: 0 done; 2 done but inputs or cells were skipped (named in the summary); 1 failed.";

#[derive(Args)]
struct DetectArgs {
    /// Before imagery: files or directories (one observation).
    #[arg(long, required = true, num_args = 1..)]
    before: Vec<PathBuf>,
    /// After imagery: files or directories (one observation).
    #[arg(long, required = true, num_args = 1..)]
    after: Vec<PathBuf>,
    /// Band roles of the before imagery, e.g. `red,green,blue,nir`.
    #[arg(long, value_name = "ROLES")]
    bands_before: Option<String>,
    /// Band roles of the after imagery.
    #[arg(long, value_name = "ROLES")]
    bands_after: Option<String>,
    /// A landwatch.toml whose [grid] and [detect] sections apply.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: all cores). The output does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    detector: DetectorArgs,
}

/// Choosing the detector (overrides the config's [detector] section).
#[derive(Args)]
struct DetectorArgs {
    /// The detector: `spectral` (the classical change-vector detector) or `onnx` (a learned model
    /// described by --model). Default: the config's [detector] kind, else spectral.
    #[arg(long, value_name = "KIND", value_parser = ["spectral", "onnx"])]
    detector: Option<String>,
    /// The model descriptor (TOML beside the ONNX file; see docs/DETECTORS.md). Implies
    /// --detector onnx. The grid is read at the model's pixel_size_m unless the config pins
    /// [grid] pixel_size.
    #[arg(long, value_name = "MODEL.toml")]
    model: Option<PathBuf>,
    /// How the learned model's changes combine with the spectral detector's: `learned` (the model
    /// alone), `both` (a change both see) or `either` (a change either sees; what only one saw
    /// gets a lower confidence). Default: the config's [detector] combine, else learned.
    #[arg(long, value_name = "POLICY", value_parser = ["learned", "both", "either"])]
    combine: Option<String>,
}

impl DetectorArgs {
    /// The config's [detector] section with the command line's choices applied, validated.
    fn resolve(&self, config: Option<&Config>) -> Result<DetectorConfig> {
        let mut d = config.map(|c| c.detector.clone()).unwrap_or_default();
        let kind = self
            .detector
            .as_deref()
            .map(str::parse::<DetectorKind>)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        if let Some(m) = &self.model {
            if kind == Some(DetectorKind::Spectral) {
                bail!("--model is only used with --detector onnx");
            }
            d.model = Some(m.clone());
            d.kind = DetectorKind::Onnx;
        }
        if let Some(k) = kind {
            if k == DetectorKind::Spectral {
                d.model = None;
                d.combine = None;
            }
            d.kind = k;
        }
        if let Some(c) = &self.combine {
            if d.kind != DetectorKind::Onnx {
                bail!("--combine is only used with a learned detector (--detector onnx --model M.toml)");
            }
            d.combine = Some(c.parse::<CombinePolicy>().map_err(anyhow::Error::msg)?);
        }
        if d.kind == DetectorKind::Onnx && d.model.is_none() {
            bail!("--detector onnx needs --model path/to/model.toml (or [detector] model in the config)");
        }
        d.validate()
            .map_err(|(field, detail)| anyhow::anyhow!("[detector] {field}: {detail}"))?;
        Ok(d)
    }
}

const SCAN_HELP: &str = "Scan imagery against parcels, permits and rules for suspected violations (疑似违法用地线索).\n\n\
For the nightly job: `landwatch scan --config landwatch.toml`. For ad-hoc work: `landwatch scan --before A... \
--after B... --parcels P [--permits Q] [--rules R] --out DIR`; --out also overrides the config's output directory.\n\n\
Runs catalogue → grid → detect → vectorize → overlay → rules with cells in parallel (memory is bounded by the cells \
in flight), and writes into the output directory: findings.geojson (RFC 7946, WGS84), findings.gpkg (working CRS, for \
QGIS), findings.csv (UTF-8 with a byte-order mark, for spreadsheets), coverage.gpkg (every protected parcel of the \
cells scanned: observed clean — at least 95 % seen on both dates — / observed with findings / partly or wholly \
unobserved, with fractions), changes.geojson (every change region, \
vegetation cycles included), change_score_<observation>.tif (the change scores of each after observation) and \
summary.json; a signed evidence packet per finding under packets/ (unless --no-packets); the store, landwatch.db \
(unless [store] path names another), and the detection cache, cache/detect/. A finding is a lead for a field check, \
never a verdict.\n\n\
Exit codes: 0 done; 2 done, but some inputs, cells or parcel features were skipped (named in the summary); 1 failed.";

#[derive(Args)]
struct ScanArgs {
    /// The run configuration (landwatch.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Before imagery (files or directories), instead of the config's.
    #[arg(long, num_args = 1..)]
    before: Vec<PathBuf>,
    /// After imagery (files or directories), instead of the config's.
    #[arg(long, num_args = 1..)]
    after: Vec<PathBuf>,
    /// Parcels (GeoPackage, Shapefile, GeoJSON), instead of the config's.
    #[arg(long)]
    parcels: Option<PathBuf>,
    /// The layer of the parcels' file (instead of the config's [parcels] layer; default: the
    /// file's only one, or of several the one named parcels or DLTB).
    #[arg(long, value_name = "LAYER")]
    parcels_layer: Option<String>,
    /// The CRS of the parcels', permits' and control layers' coordinates where the files say none,
    /// e.g. EPSG:4528 for a Shapefile without its .prj or a GeoJSON file of metres without its
    /// crs member (instead of the config's [parcels] crs).
    #[arg(long, value_name = "CRS")]
    parcels_crs: Option<String>,
    /// Permits, instead of the config's.
    #[arg(long)]
    permits: Option<PathBuf>,
    /// The layer of the permits' file (instead of the config's [parcels] permits_layer; default:
    /// the file's only one, or of several the one named permits).
    #[arg(long, value_name = "LAYER")]
    permits_layer: Option<String>,
    /// The parcels' id field (instead of the config's [parcels] id_field; default parcel_id).
    #[arg(long, value_name = "FIELD")]
    id_field: Option<String>,
    /// The parcels' approved-use field (instead of the config's [parcels] use_field; default
    /// approved_use), e.g. DLBM or DLMC of a Third Land Survey layer.
    #[arg(long, value_name = "FIELD")]
    use_field: Option<String>,
    /// Band roles of the before imagery, e.g. `red,green,blue,nir` (instead of the config's
    /// [imagery] bands_before; needed when the files do not say).
    #[arg(long, value_name = "ROLES")]
    bands_before: Option<String>,
    /// Band roles of the after imagery (instead of the config's [imagery] bands_after).
    #[arg(long, value_name = "ROLES")]
    bands_after: Option<String>,
    /// A rules file, instead of the config's (default: the built-in rules).
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Output directory (overrides the config's [output] dir). Default: the config's, else
    /// landwatch-out beside the config, or without a config in the current directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    detector: DetectorArgs,
    /// The bureau's private key for signing evidence packets (overrides [evidence] key).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Also write one .zip per evidence packet.
    #[arg(long)]
    zip: bool,
    /// Write no evidence packets.
    #[arg(long)]
    no_packets: bool,
    /// Process every cell, not only those whose imagery, parcels, permits, rules or config
    /// changed since their last successful run; detect every cell again and rewrite its entry
    /// in the detection cache.
    #[arg(long)]
    full: bool,
    /// Neither use nor write the detection cache (`<out>/cache/detect`): detect every
    /// processed cell.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Truth: landwatch synth's truth.geojson, or the peer scene's truth.gpkg.
    #[arg(long)]
    truth: PathBuf,
    /// The findings landwatch scan wrote (findings.geojson or findings.gpkg), or another tool's
    /// flagged parcels: polygons with a parcel_id (without a kind they are scored as `flagged`).
    #[arg(long)]
    findings: PathBuf,
    /// Print JSON (with the full lists of misses and false alarms).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalMaskArgs {
    /// Truth raster (single band, same grid; non-zero means change), e.g. a 0/255 PNG.
    #[arg(long)]
    truth: PathBuf,
    /// The change mask landwatch wrote (0 no change, 1 change, 255 unobserved).
    #[arg(long)]
    mask: PathBuf,
    /// Optional raster whose non-zero pixels are left out of the scores.
    #[arg(long)]
    ignore: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Scene size in 0.5 m pixels per side, 256 to 40000 (4096 = 2 km × 2 km).
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Random seed; the same seed gives byte-identical files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Where to put the demo scene and results.
    #[arg(long, default_value = "landwatch-demo")]
    out: PathBuf,
    /// Scene size in 0.5 m pixels per side, 256 to 40000 (2048 = 1 km × 1 km).
    #[arg(long, default_value_t = 2048)]
    size: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Parses the command line and runs the command.
pub fn run() -> Result<Outcome> {
    // A usage error (an unknown or renamed flag, a missing value) is a failure, exit 1: clap's
    // own exit code, 2, is landwatch's "done, with skipped inputs", which a scheduler's check
    // would take for a night that ran.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Printing to a closed pipe is no reason to change the outcome.
            let _ = e.print();
            return Ok(if e.use_stderr() {
                Outcome::Failed
            } else {
                Outcome::Done
            });
        }
    };
    init_logging(cli.log_json, cli.verbose, cli.quiet);
    match cli.command {
        Command::Catalog(a) => catalog(a),
        Command::Grid(a) => grid(a),
        Command::Detect(a) => detect(a),
        Command::EvalMask(a) => eval_mask(a),
        Command::Scan(a) => scan(a).map(|(o, _)| o),
        Command::Eval(a) => eval(a),
        Command::Synth(a) => synth(a),
        Command::Demo(a) => demo(a),
        Command::Keygen(a) => keygen(a),
        Command::Verify(a) => verify(a),
        Command::Cases(a) => crate::store_cli::cases(a),
        Command::Case(a) => crate::store_cli::case(a),
        Command::Status(a) => crate::store_cli::status(a),
        Command::Init(a) => crate::store_cli::init(a),
    }
}

fn init_logging(json: bool, verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match verbose {
        _ if quiet => "warn",
        0 => "info,gdal=warn",
        1 => "debug,gdal=info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("LANDWATCH_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // On a terminal: coloured lines without a time (the person watching knows it). Anywhere
    // else (a cron job's log file, a journal): plain text, each line with its UTC time.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(terminal && !json);
    if json {
        builder.json().init();
    } else if terminal {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Whether to draw a progress bar: on a terminal, unless progress is not wanted (`--quiet`, or a
/// `LANDWATCH_LOG` filter above `info`).
fn progress_bar() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr()) && tracing::enabled!(tracing::Level::INFO)
}

fn catalog(a: CatalogArgs) -> Result<Outcome> {
    let opts = CatalogOptions {
        bands: a
            .bands
            .as_deref()
            .map(parse_role_list)
            .transpose()
            .context("--bands")?,
        sensor: a
            .sensor
            .as_deref()
            .map(|s| s.parse::<SensorKind>())
            .transpose()
            .map_err(anyhow::Error::msg)
            .context("--sensor")?,
        verify_pixels: a.verify_pixels,
        defer_hash: false,
    };
    // A path that is not there is listed as such (kind `not_found`) with the others.
    let entries = catalog_paths(&a.paths, &opts);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print_catalog(&entries);
    }
    let bad = entries.iter().filter(|e| !e.is_usable()).count();
    Ok(if bad > 0 {
        Outcome::DoneWithSkips
    } else {
        Outcome::Done
    })
}

fn print_catalog(entries: &[CatalogEntry]) {
    for e in entries {
        println!("{}", e.path.display());
        if let Some(i) = &e.info {
            let roles: Vec<&str> = i.bands.iter().map(|b| b.role.name()).collect();
            println!(
                "  {} {}x{} px, {} band(s) [{}] {}, {} {}, nodata {}",
                i.driver,
                i.width,
                i.height,
                i.band_count,
                roles.join(","),
                i.data_type.as_deref().unwrap_or("?"),
                i.layout.as_deref().unwrap_or("?"),
                i.compression,
                i.nodata
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "none".into())
            );
            if let Some(c) = &i.crs {
                let label = c
                    .epsg
                    .map(|e| format!("EPSG:{e}"))
                    .unwrap_or_else(|| "(WKT)".into());
                let px = i
                    .pixel_size
                    .map(|(x, y)| pixel_size_text(x, y))
                    .unwrap_or_else(|| "?".into());
                println!("  CRS {label} {}, pixel {px}", c.name);
            }
            if let Some(b) = i.footprint.as_ref().and_then(|f| f.wgs84_bounds) {
                println!(
                    "  footprint lon {:.5}..{:.5}, lat {:.5}..{:.5}",
                    b.min_x, b.max_x, b.min_y, b.max_y
                );
            }
            let when = i
                .acquired
                .as_ref()
                .map(|a| format!("{} ({:?})", a.time, a.source))
                .unwrap_or_else(|| "unknown date".into());
            let sensor = i
                .sensor
                .as_ref()
                .map(|s| format!("{:?} ({:?})", s.kind, s.source))
                .unwrap_or_else(|| "unknown sensor".into());
            println!("  acquired {when}; sensor {sensor}");
            println!("  sha256 {}", i.sha256);
        }
        if let Some(p) = &e.problem {
            println!("  UNUSABLE [{}]: {}", p.kind, p.message);
        }
    }
    let bad = entries.iter().filter(|e| !e.is_usable()).count();
    println!(
        "{} raster(s): {} usable, {} unusable",
        entries.len(),
        entries.len() - bad,
        bad
    );
}

fn parse_origin(s: &str) -> Result<(f64, f64)> {
    let (x, y) = s
        .split_once(',')
        .with_context(|| format!("--origin '{s}': expected X,Y"))?;
    Ok((x.trim().parse()?, y.trim().parse()?))
}

fn grid(a: GridArgs) -> Result<Outcome> {
    let cfg = a
        .config
        .as_deref()
        .map(Config::load)
        .transpose()?
        .unwrap_or_default();
    let before = if a.paths.is_empty() {
        cfg.before_paths()
    } else {
        Vec::new()
    };
    let after = if a.paths.is_empty() {
        cfg.after_paths()
    } else {
        a.paths.clone()
    };
    if before.is_empty() && after.is_empty() {
        bail!("no imagery: give paths or a --config with [imagery] before/after");
    }
    let cat = |paths: &[PathBuf], after: bool| {
        catalog_paths(
            paths,
            &CatalogOptions {
                bands: cfg.band_override(after),
                ..Default::default()
            },
        )
    };
    let before_entries = cat(&before, false);
    let after_entries = cat(&after, true);
    let all: Vec<&CatalogEntry> = before_entries.iter().chain(&after_entries).collect();
    for e in all.iter().filter(|e| !e.is_usable()) {
        if let Some(p) = &e.problem {
            tracing::warn!("skipped {}", p.message);
        }
    }
    let grid_cfg = landwatch::config::GridConfig {
        crs: a.crs.clone().or(cfg.grid.crs.clone()),
        pixel_size: a.pixel_size.or(cfg.grid.pixel_size),
        cell_size: a.cell_size.unwrap_or(cfg.grid.cell_size),
        halo: a.halo.unwrap_or(cfg.grid.halo),
        origin: cfg.grid.origin,
    };
    // The config's own values were checked when it was loaded; what is wrong now came from the
    // command line.
    if let Err((field, detail)) = grid_cfg.check() {
        bail!("--{}: {detail}", field.replace('_', "-"));
    }
    let req = GridRequest {
        crs: grid_cfg.crs,
        pixel_size: grid_cfg.pixel_size,
        // A learned detector's ground resolution, when the config names one.
        pixel_size_m: cfg.detector.pixel_size_m()?,
        cell_size: grid_cfg.cell_size,
        halo: grid_cfg.halo,
        origin: match &a.origin {
            Some(s) => Some(parse_origin(s)?),
            None => cfg.grid.origin.map(|o| (o[0], o[1])),
        },
        parcels: cfg.parcels.path.as_ref().map(|p| cfg.resolve(p)),
        parcels_layer: cfg.parcels.layer.clone(),
        parcels_crs: cfg.parcels.crs.clone(),
    };
    let grid = plan_grid(&req, &all)?;
    let cells = grid.cells();
    // Paths given on the command line are of no date in particular.
    let after_label = if a.paths.is_empty() {
        "after"
    } else {
        "imagery"
    };
    let observations: Vec<(&str, landwatch::ingest::Observation)> =
        group_observations(&before_entries)
            .into_iter()
            .map(|o| ("before", o))
            .chain(
                group_observations(&after_entries)
                    .into_iter()
                    .map(|o| (after_label, o)),
            )
            .collect();
    let grid_ref = &grid;
    let coverage = |cell: &Cell| -> Vec<String> {
        let cb = grid_ref.window_bounds(&cell.core);
        observations
            .iter()
            .flat_map(|(date, o)| {
                o.sources.sources.iter().filter_map(move |s| {
                    landwatch::ingest::plan::bounds_in_crs(&s.info, &s.path, &grid_ref.crs)
                        .ok()
                        .and_then(|b| b.intersection(&cb))
                        .map(|_| format!("{date}/{}: {}", o.name, s.path.display()))
                })
            })
            .collect()
    };
    if a.json {
        let v = serde_json::json!({
            "grid": grid,
            "fingerprint": grid.fingerprint(),
            "cells": cells.iter().map(|c| serde_json::json!({
                "id": c.id, "row": c.row, "col": c.col,
                "core": c.core, "read": c.read,
                "bounds": grid.window_bounds(&c.core),
                "imagery": coverage(c),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_grid(&grid, &cells, coverage);
    }
    if let (Some(id), Some(out)) = (&a.export_cell, &a.out) {
        let cell = grid.cell_by_id(id).with_context(|| {
            format!(
                "no cell '{id}' in this grid (fingerprint {})",
                grid.fingerprint()
            )
        })?;
        export_cell(&grid, &cell, &observations, out)?;
    }
    let skipped = all.iter().any(|e| !e.is_usable());
    Ok(if skipped {
        Outcome::DoneWithSkips
    } else {
        Outcome::Done
    })
}

fn print_grid(grid: &GridDef, cells: &[Cell], coverage: impl Fn(&Cell) -> Vec<String>) {
    let b = grid.bounds();
    println!(
        "grid {} in {}: {}x{} px of {} x {}, origin ({}, {}), cells of {} px + {} px halo",
        grid.fingerprint(),
        landwatch::ingest::srs::short(&grid.crs),
        grid.width,
        grid.height,
        grid.pixel_width,
        grid.pixel_height,
        grid.origin_x,
        grid.origin_y,
        grid.cell_size,
        grid.halo
    );
    println!(
        "extent x {:.2}..{:.2}, y {:.2}..{:.2}; {} cell(s)",
        b.min_x,
        b.max_x,
        b.min_y,
        b.max_y,
        cells.len()
    );
    for c in cells {
        let cov = coverage(c);
        println!(
            "  {}  {}x{} px  {} image(s)",
            c.id,
            c.core.width,
            c.core.height,
            cov.len()
        );
        for s in cov {
            println!("      {s}");
        }
    }
}

fn export_cell(
    grid: &GridDef,
    cell: &Cell,
    observations: &[(&str, landwatch::ingest::Observation)],
    out: &Path,
) -> Result<()> {
    use landwatch::export::raster::{write_geotiff, GeoTiffSpec};
    std::fs::create_dir_all(out).with_context(|| out.display().to_string())?;
    for (date, obs) in observations {
        let mut reader = CellReader::new(grid, &obs.sources)?;
        let img = reader.read(&cell.id, &cell.read)?;
        let (h, w) = img.valid.dim();
        let mut bands: Vec<Vec<f32>> = img
            .bands
            .outer_iter()
            .map(|b| b.iter().copied().collect())
            .collect();
        bands.push(
            img.valid
                .iter()
                .map(|v| if *v { 1.0 } else { 0.0 })
                .collect(),
        );
        let mut spec = GeoTiffSpec::new(&grid.crs, grid.window_geo_transform(&cell.read), w, h);
        spec.predictor = 1;
        spec.band_descriptions = img
            .roles
            .iter()
            .map(|r| r.name().to_string())
            .chain(std::iter::once("valid".to_string()))
            .collect();
        let path = out.join(format!("{}_{date}_{}.tif", cell.id, obs.name));
        let refs: Vec<&[f32]> = bands.iter().map(|b| b.as_slice()).collect();
        write_geotiff(&path, &spec, &refs)?;
        println!(
            "wrote {} ({} bands, {:.1}% valid)",
            path.display(),
            img.roles.len(),
            100.0 * img.valid_fraction()
        );
    }
    Ok(())
}

fn set_threads(n: Option<usize>) -> Result<()> {
    if let Some(n) = n {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .context("setting the number of threads")?;
    }
    Ok(())
}

fn detect(a: DetectArgs) -> Result<Outcome> {
    set_threads(a.threads)?;
    let config = a.config.as_deref().map(Config::load).transpose()?;
    let params = config
        .as_ref()
        .map(|c| c.detect.clone())
        .unwrap_or_default();
    // The detector is built (and a model loaded and checked) before any imagery is read.
    let detector_config = a.detector.resolve(config.as_ref())?;
    let detector = build_detector(&detector_config, &params)?;
    create_dir(&a.out, "the output directory")?;
    let job = landwatch::pipeline::detect::DetectJob {
        before: a.before,
        after: a.after,
        bands_before: a
            .bands_before
            .as_deref()
            .map(parse_role_list)
            .transpose()
            .context("--bands-before")?,
        bands_after: a
            .bands_after
            .as_deref()
            .map(parse_role_list)
            .transpose()
            .context("--bands-after")?,
        config,
        out: a.out,
        detector,
    };
    let r = landwatch::pipeline::detect::run_detect(&job)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let total = r.grid.width * r.grid.height;
        println!(
            "detect ({}): {} cells on a {}x{} px grid ({} outside the overlap), {:.1} s",
            r.detector, r.cells, r.grid.width, r.grid.height, r.cells_outside_overlap, r.seconds
        );
        println!(
            "  observed {:.1}% of the grid, unobserved {:.1}% (no data, cloud, shadow)",
            100.0 * r.observed_px as f64 / total.max(1) as f64,
            100.0 * r.unobserved_px as f64 / total.max(1) as f64
        );
        println!(
            "  land-use change {:.3}% of the observed area ({} px); vegetation cycles {} px",
            100.0 * r.changed_fraction,
            r.changed_px,
            r.cycle_px
        );
        println!(
            "  threshold (min/median/max over cells) {:.2} / {:.2} / {:.2}",
            r.threshold.0, r.threshold.1, r.threshold.2
        );
        for (t, n) in &r.regions_by_transition {
            println!(
                "  {n:>5} region(s) {t:<22} {:>10.1} m²",
                r.area_m2_by_transition.get(t).copied().unwrap_or(0.0)
            );
        }
        for (cell, dx, dy) in &r.shifts {
            println!("  cell {cell}: after image shifted by ({dx:.2}, {dy:.2}) px, corrected");
        }
        for s in &r.skipped {
            println!("  SKIPPED [{}] {}", s.kind, s.message);
        }
        for o in &r.outputs {
            println!("  wrote {}", o.display());
        }
    }
    Ok(if r.skipped.is_empty() {
        Outcome::Done
    } else {
        Outcome::DoneWithSkips
    })
}

/// The config's layer for a file given on the command line instead of the config's: kept when
/// the file has it (or cannot be opened here: reading it says why), dropped for a file of one
/// layer (which is read), kept otherwise (reading it then names the layers there are).
fn layer_kept(path: &Path, layer: Option<String>) -> Option<String> {
    let name = layer?;
    match landwatch::ingest::vector::layer_names(path) {
        Ok(names) if names.len() == 1 && names[0] != name => None,
        _ => Some(name),
    }
}

/// Builds the scan configuration from a config file and/or command-line inputs.
fn scan_config(a: &ScanArgs) -> Result<Config> {
    let mut cfg = match &a.config {
        Some(p) => Config::load(p)?,
        None => Config {
            base_dir: std::env::current_dir().context("current directory")?,
            ..Config::default()
        },
    };
    // Paths as the store, the incremental keys and the packets record them: the same file the
    // same way however it was named on the command line.
    let cwd = std::env::current_dir().context("current directory")?;
    let abs = |p: &PathBuf| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            if p.is_absolute() {
                p.clone()
            } else {
                cwd.join(p)
            }
        })
    };
    if !a.before.is_empty() {
        cfg.imagery.before = a.before.iter().map(abs).collect();
    }
    if !a.after.is_empty() {
        cfg.imagery.after = a.after.iter().map(abs).collect();
    }
    // A file given here replaces the config's: the config's layer still names its layer when
    // the file has it; a file with one layer is read whole.
    if let Some(p) = &a.parcels {
        cfg.parcels.path = Some(abs(p));
        cfg.parcels.layer = layer_kept(&abs(p), cfg.parcels.layer.take());
    }
    if let Some(p) = &a.permits {
        cfg.parcels.permits = Some(abs(p));
        cfg.parcels.permits_layer = layer_kept(&abs(p), cfg.parcels.permits_layer.take());
    }
    if let Some(l) = &a.parcels_layer {
        cfg.parcels.layer = Some(l.clone());
    }
    if let Some(l) = &a.permits_layer {
        cfg.parcels.permits_layer = Some(l.clone());
    }
    if let Some(c) = &a.parcels_crs {
        landwatch::ingest::srs::parse_crs(c).map_err(|e| {
            anyhow::anyhow!("--parcels-crs '{c}' is not a CRS GDAL understands: {e}")
        })?;
        cfg.parcels.crs = Some(c.clone());
    }
    if let Some(f) = &a.id_field {
        cfg.parcels.id_field = f.clone();
    }
    if let Some(f) = &a.use_field {
        cfg.parcels.use_field = f.clone();
    }
    if let Some(p) = &a.rules {
        cfg.rules.path = Some(abs(p));
    }
    for (given, role_list, flag) in [
        (
            &a.bands_before,
            &mut cfg.imagery.bands_before,
            "--bands-before",
        ),
        (
            &a.bands_after,
            &mut cfg.imagery.bands_after,
            "--bands-after",
        ),
    ] {
        if let Some(r) = given {
            parse_role_list(r).with_context(|| flag.to_string())?;
            *role_list = Some(r.clone());
        }
    }
    if let Some(o) = &a.out {
        cfg.output.dir = abs(o);
    }
    let in_config = |what: &str| {
        match &a.config {
        Some(p) => format!(
            "{} names no {what} (an empty or unfinished configuration? `landwatch init DIR` writes a starter one)",
            p.display()
        ),
        None => "no --config given".to_string(),
    }
    };
    if cfg.imagery.before.is_empty() || cfg.imagery.after.is_empty() {
        bail!(
            "no imagery: {}; give [imagery] before and after there, or --before and --after",
            in_config("[imagery] before/after")
        );
    }
    if cfg.parcels.path.is_none() {
        bail!(
            "no parcels: {}; give [parcels] path there, or --parcels",
            in_config("[parcels] path")
        );
    }
    missing_inputs(&cfg, a)?;
    Ok(cfg)
}

/// Refuses a scan two or more of whose inputs are missing, naming them all at once (a new
/// configuration whose files are not in place yet would otherwise fail on one after another).
/// A single missing input is left to the message of the step that reads it; imagery counts only
/// when every before or every after path is missing (a night without the drone's folder scans
/// the rest).
fn missing_inputs(cfg: &landwatch::config::Config, a: &ScanArgs) -> Result<()> {
    let name = |key: &str, flag: &str, given: bool| {
        if given || a.config.is_none() {
            flag.to_string()
        } else {
            key.to_string()
        }
    };
    let mut missing: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut need = |what: String, path: std::path::PathBuf| {
        if !path.exists() {
            missing.push((what, path));
        }
    };
    if let Some(p) = &cfg.rules.path {
        need(
            name("[rules] path", "--rules", a.rules.is_some()),
            cfg.resolve(p),
        );
    }
    if let Some(p) = &cfg.parcels.path {
        need(
            name("[parcels] path", "--parcels", a.parcels.is_some()),
            cfg.resolve(p),
        );
    }
    if let Some(p) = &cfg.parcels.permits {
        need(
            format!(
                "{} (optional: leave it out to scan without permits, explaining no change by one)",
                name("[parcels] permits", "--permits", a.permits.is_some())
            ),
            cfg.resolve(p),
        );
    }
    for c in &cfg.parcels.control {
        need(
            format!("[[parcels.control]] path ({})", c.kind),
            cfg.resolve(&c.path),
        );
    }
    for (paths, key, flag, given) in [
        (
            cfg.before_paths(),
            "[imagery] before",
            "--before",
            !a.before.is_empty(),
        ),
        (
            cfg.after_paths(),
            "[imagery] after",
            "--after",
            !a.after.is_empty(),
        ),
    ] {
        if paths.iter().all(|p| !p.exists()) {
            for p in paths {
                need(name(key, flag, given), p);
            }
        }
    }
    if missing.len() < 2 {
        return Ok(());
    }
    let list: String = missing
        .iter()
        .map(|(what, path)| format!("\n  {what}: {}", path.display()))
        .collect();
    bail!(
        "{} inputs of this scan do not exist:{list}\nput the files there or correct the paths \
         (relative paths are from the configuration file's directory, or the current one on the \
         command line)",
        missing.len()
    )
}

fn scan(a: ScanArgs) -> Result<(Outcome, landwatch::pipeline::scan::ScanResult)> {
    use landwatch::pipeline::cache::CacheOptions;
    use landwatch::pipeline::scan::{run_scan, Progress, ScanJob};
    set_threads(a.threads)?;
    let cfg = scan_config(&a)?;
    let rules = match &cfg.rules.path {
        Some(p) => {
            let path = cfg.resolve(p);
            if !path.exists() {
                bail!(
                    "{}: no such rules file; check [rules] path or --rules (relative paths are from \
                     the configuration file's directory, or the current one on the command line), \
                     or leave it out for the built-in rules (`landwatch init` writes them as \
                     rules.toml)",
                    path.display()
                );
            }
            landwatch::rules::RuleSet::load(&path)?
        }
        None => landwatch::rules::RuleSet::default_rules(),
    };
    // The detector is built (and a model loaded and checked) before any imagery is read.
    let detector_config = a.detector.resolve(Some(&cfg))?;
    let detector = build_detector(&detector_config, &cfg.detect)?;
    let job = ScanJob {
        out: cfg.output_dir(),
        detector,
        rules,
        progress: if progress_bar() {
            Progress::Bar
        } else {
            Progress::Log
        },
        detect_cache: (!a.no_cache).then(|| CacheOptions {
            dir: cfg.output_dir().join("cache").join("detect"),
            refresh: a.full,
        }),
        config: cfg,
        select_cells: None,
        selects_every_cell: false,
        watch: Vec::new(),
    };
    let mut job = job;
    // A run without packets is keyed as one (see `inputs_key`): a later run with packets does its
    // cells again and writes them.
    if a.no_packets {
        job.config.evidence.enabled = false;
    }
    // One run at a time per store; a lock left by a killed run is taken over.
    let store_path = job.config.store_path();
    if let Some(dir) = store_path.parent() {
        create_dir(dir, "the output directory")?;
    }
    let _lock = landwatch::store::acquire(&store_path, "landwatch scan")?;
    let store = std::sync::Arc::new(std::sync::Mutex::new(landwatch::store::Store::open(
        &store_path,
    )?));
    {
        let mut st = lock_store(&store)?;
        let n = st.mark_interrupted_runs()?;
        if n > 0 {
            tracing::warn!(
                "{n} earlier run(s) were interrupted; their unfinished cells are redone now"
            );
        }
    }
    // The known cases' ground: the scan measures how much of each it sees, so that a case under
    // cloud or outside tonight's imagery is not taken for one that is gone.
    job.watch = lock_store(&store)?
        .case_areas()?
        .into_iter()
        .map(|(id, area)| landwatch::pipeline::scan::WatchedArea { id, area })
        .collect();
    let full = a.full;
    // A first run (no cell marked done yet) or `--full` processes every cell.
    job.selects_every_cell = full || !lock_store(&store)?.has_cell_marks()?;
    let sel_store = store.clone();
    job.select_cells = Some(std::sync::Arc::new(
        move |fp: &str, keys: &[landwatch::pipeline::scan::CellKey]| {
            let marks = match sel_store.lock() {
                Ok(st) => st.cell_marks(fp).unwrap_or_else(|e| {
                    tracing::warn!(
                        "reading which cells are done failed ({e}); processing every cell"
                    );
                    Default::default()
                }),
                Err(_) => Default::default(),
            };
            keys.iter()
                .filter(|k| {
                    full || marks
                        .get(&k.cell_id)
                        .is_none_or(|m| m.after_key != k.after_key || m.inputs_key != k.inputs_key)
                })
                .map(|k| k.cell_id.clone())
                .collect()
        },
    ));
    // The signing key is loaded before any imagery is read: a missing or damaged key fails the
    // run at once, not after the night's detection.
    let key = if job.config.evidence.enabled && !a.no_packets {
        Some(signing_key(&job.config, a.key.as_deref())?)
    } else {
        None
    };
    let run_started = chrono::Utc::now();
    let scanned = run_scan(&job);
    let mut st = lock_store(&store)?;
    let (_, config_sha256) = run_parameters(&job)?;
    let run_id = st.begin_run(&landwatch::store::NewRun {
        started_at: run_started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        config_sha256,
        grid_fingerprint: scanned
            .as_ref()
            .map(|r| r.report.grid.fingerprint())
            .unwrap_or_default(),
        full: a.full,
        software_version: landwatch::VERSION.to_string(),
        args: serde_json::json!(std::env::args().collect::<Vec<_>>()),
    })?;
    // A run that stopped (bad inputs, nothing to compare, a full disk) is a run too: `status`
    // shows it failed, and why, above the last good one.
    let mut result = match scanned {
        Ok(r) => r,
        Err(e) => {
            let e = anyhow::Error::from(e);
            if let Err(se) = st.fail_run(&run_id, &crate::error_chain(&e)) {
                tracing::warn!("recording the failed run in the store: {se}");
            }
            return Err(e);
        }
    };
    let imagery: Vec<landwatch::store::ImageryRecord> =
        std::iter::once(("before", &result.context.before))
            .chain(result.context.after.iter().map(|o| ("after", o)))
            .flat_map(|(role, o)| {
                o.sources
                    .sources
                    .iter()
                    .map(move |s| landwatch::store::ImageryRecord {
                        path: s.path.display().to_string(),
                        sha256: s.info.sha256.clone(),
                        acquired_at: s.info.acquired.as_ref().map(|t| t.time.to_string()),
                        date_role: role.to_string(),
                    })
            })
            .collect();
    st.record_imagery(&imagery)?;
    let processed: Vec<String> = result.cell_keys.iter().map(|k| k.cell_id.clone()).collect();
    let mut cells_done: Vec<landwatch::store::CellDone> = result
        .cell_keys
        .iter()
        .map(|k| landwatch::store::CellDone {
            cell_id: k.cell_id.clone(),
            after_key: k.after_key.clone(),
            inputs_key: k.inputs_key.clone(),
        })
        .collect();
    let mut outcome_counts = landwatch::store::RunOutcome {
        status: String::new(),
        cells_processed: processed.len(),
        cells_skipped_unchanged: result.report.cells_unchanged,
        cells_detected: result.report.cells_detected,
        cells_from_cache: result.report.cells_from_cache,
        findings: result.findings.len(),
        new_cases: 0,
        updated_cases: 0,
        disappeared_cases: 0,
        unobserved_protected_m2: result.report.unobserved_protected_m2,
        skipped_inputs: result.report.skipped.len(),
    };
    if !processed.is_empty() {
        // Findings to cases, in one transaction.
        let records = result
            .findings
            .iter()
            .map(finding_record)
            .collect::<Result<Vec<_>>>()?;
        // Protected parcels this run did not see well: a case there is not "disappeared".
        let unobserved: Vec<String> = {
            use wkt::ToWkt;
            result
                .coverage
                .iter()
                .filter(|c| c.observed_fraction < 0.95)
                .map(|c| c.polygon.wkt_string())
                .collect()
        };
        landwatch::pipeline::crash_point("store_commit");
        // Case ids carry the day of the run on the bureau's own clock (a 02:00 run in Suzhou is
        // the 18:00 UTC of the day before).
        let ctx = landwatch::store::CaseContext::from_config(
            &job.config,
            run_started.with_timezone(&chrono::Local).date_naive(),
        );
        // Changes no rule flagged: a case no longer flagged where one is still seen says why.
        let unflagged: Vec<landwatch::store::UnflaggedChange> = {
            use wkt::ToWkt;
            result
                .unflagged
                .iter()
                .map(|u| landwatch::store::UnflaggedChange {
                    parcel_id: u.parcel_id.clone(),
                    geometry_wkt: u.polygon.wkt_string(),
                    area_m2: u.area_m2,
                    why: u.why.clone(),
                })
                .collect()
        };
        let parcel_ids: std::collections::HashSet<String> = result
            .context
            .parcels
            .parcels
            .iter()
            .map(|p| p.id.clone())
            .collect();
        let case_observed: std::collections::HashMap<String, f64> = result
            .watched
            .iter()
            .map(|w| (w.id.clone(), w.observed_fraction))
            .collect();
        let case_acquired: std::collections::HashMap<String, chrono::NaiveDate> = result
            .watched
            .iter()
            .filter_map(|w| Some((w.id.clone(), w.acquired?.date())))
            .collect();
        let assignments = st.commit_findings_observed(
            &run_id,
            &ctx,
            &processed,
            &records,
            &landwatch::store::RunSight {
                unobserved_wkt: &unobserved,
                unflagged: &unflagged,
                parcel_ids: Some(&parcel_ids),
                case_observed: Some(&case_observed),
                case_acquired: Some(&case_acquired),
            },
        )?;
        landwatch::pipeline::crash_point("after_commit");
        outcome_counts.new_cases = assignments.iter().filter(|c| c.is_new).count();
        outcome_counts.updated_cases = assignments
            .iter()
            .filter(|c| !c.is_new && c.kept_newer.is_none())
            .count();
        let events = st.run_event_counts(&run_id)?;
        outcome_counts.disappeared_cases = events.get("disappeared").copied().unwrap_or(0);
        result.report.cases_reopened = events.get("reopened").copied().unwrap_or(0);
        result.report.cases_not_judged = events.get("not_judged").copied().unwrap_or(0);
        result.report.cases = assignments.clone();
        result.report.cases_disappeared = outcome_counts.disappeared_cases;
        if let Some(key) = key {
            let p = evidence_stage(&job, &a, &result, &assignments, &run_id, run_started, key)?;
            for (line, f) in p.cases.iter().zip(&result.findings) {
                if let (Some(dir), Some(version)) = (&line.dir, line.version) {
                    let manifest = std::fs::read(dir.join("manifest.json")).with_context(|| {
                        format!("reading {}", dir.join("manifest.json").display())
                    })?;
                    // A packet this run found unchanged was written by an earlier run (one
                    // killed before recording it, say): record it as its manifest says, under
                    // the run that wrote it and when, if this store knows that run.
                    let written =
                        serde_json::from_slice::<landwatch::evidence::Manifest>(&manifest)
                            .ok()
                            .filter(|m| {
                                m.run_id != run_id && st.knows_run(&m.run_id).unwrap_or(false)
                            })
                            .map(|m| (m.run_id, m.created_at));
                    st.record_packet(
                        &line.case_id,
                        &landwatch::store::PacketRecord {
                            version,
                            dir: dir.display().to_string(),
                            manifest_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                                &manifest,
                            )),
                            run_id: written
                                .as_ref()
                                .map_or_else(|| run_id.clone(), |w| w.0.clone()),
                            written_at: written.map(|w| w.1),
                        },
                    )
                    .with_context(|| format!("recording the packet of finding {}", f.finding_id))?;
                }
            }
            result.report.packets = Some(p);
        }
        let text = serde_json::to_string_pretty(&result.report)?;
        landwatch::export::write_atomic(&job.out.join("summary.json"), text.as_bytes())?;
    }
    // A cell with a finding whose packet could not be written is not done: the next run does
    // it again and writes the packet (a night that only reads "nothing new" would never).
    if let Some(p) = &result.report.packets {
        let owed: std::collections::HashSet<&str> = p
            .cases
            .iter()
            .zip(&result.findings)
            .filter(|(line, _)| line.dir.is_none() && line.left_out.is_none())
            .flat_map(|(_, f)| f.cells.iter().map(String::as_str))
            .collect();
        if !owed.is_empty() {
            tracing::warn!(
                "{} packet(s) could not be written: their {} cell(s) are not marked done, so the \
                 next run does them again and writes the packets",
                p.failed.len(),
                owed.len()
            );
            cells_done.retain(|c| !owed.contains(c.cell_id.as_str()));
        }
        outcome_counts.skipped_inputs += p.failed.len();
    }
    let r = &result.report;
    let packet_failures = r.packets.as_ref().is_some_and(|p| !p.failed.is_empty());
    outcome_counts.status = if r.skipped.is_empty() && !packet_failures {
        "done".into()
    } else {
        "done_with_skips".into()
    };
    landwatch::pipeline::crash_point("finish");
    st.finish_run(&run_id, &cells_done, &outcome_counts)?;
    drop(st);
    // Nothing new only when no cell was due: cells that were due but could not be read or
    // detected are skipped input, reported as in any other run (exit 2), not "nothing new".
    if r.cells_scanned == 0 && !a.json {
        println!(
            "nothing new: none of the {} cell(s) changed since their last successful run (run {run_id}); `landwatch scan --full` redoes them all",
            r.cells_unchanged
        );
        for s in &r.skipped {
            println!("  SKIPPED [{}] {}", s.kind, s.message);
        }
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!(
            "scan ({}): {} cells in {}, {} parcels, {} permits, {:.1} s",
            r.detector,
            r.cells_scanned,
            landwatch::ingest::srs::short(&r.working_crs),
            r.parcels,
            r.permits,
            r.seconds
        );
        for o in &r.observations {
            println!(
                "  after {} ({} file(s), {}): {} change regions, {} of land use{}",
                o.name,
                o.sources.len(),
                o.after_date.as_deref().unwrap_or("no date"),
                o.regions,
                o.land_use_regions,
                if o.shifted_cells > 0 {
                    format!("; shift corrected in {} cell(s)", o.shifted_cells)
                } else {
                    String::new()
                }
            );
        }
        println!(
            "  {} suspected violation(s) (疑似违法用地线索):",
            r.findings
        );
        // The officer reading this line reads the rules' bilingual label, not only the id.
        for (k, n) in &r.findings_by_kind {
            let label = result
                .findings
                .iter()
                .find(|f| &f.kind == k)
                .map_or("", |f| f.kind_label.as_str());
            println!("    {n:>4} {k:<22} {label}");
        }
        let cov: Vec<String> = r.coverage.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "  protected parcels: {}{}",
            if cov.is_empty() {
                "none".into()
            } else {
                cov.join(", ")
            },
            if r.cells_unchanged > 0 {
                format!(
                    " (in the cells processed; those of the {} unchanged cell(s) as their last run found them)",
                    r.cells_unchanged
                )
            } else {
                String::new()
            }
        );
        println!(
            "  protected area not observed: {:.1} m² ({:.2} mu)",
            r.unobserved_protected_m2,
            r.unobserved_protected_m2 / landwatch::pipeline::detect::M2_PER_MU
        );
        for s in &r.skipped {
            println!("  SKIPPED [{}] {}", s.kind, s.message);
        }
        for o in &r.outputs {
            println!("  wrote {}", o.display());
        }
        let new = r.cases.iter().filter(|c| c.is_new).count();
        let older = r.cases.iter().filter(|c| c.kept_newer.is_some()).count();
        let failed: std::collections::BTreeSet<&str> = r
            .skipped
            .iter()
            .filter(|s| s.is_failed_cell())
            .map(|s| s.what.as_str())
            .collect();
        println!(
            "  cases: {new} new, {} updated{} ({} cell(s) processed{}, {} unchanged since their last run)",
            r.cases.len() - new - older,
            [
                (older, landwatch::store::SEEN_OLDER),
                (r.cases_reopened, "open again"),
                (r.cases_disappeared, "no longer flagged"),
                (r.cases_not_judged, landwatch::store::NOT_JUDGED)
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!(", {n} {what}"))
            .collect::<String>(),
            r.cells_scanned,
            if failed.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} of them failed (SKIPPED above) and are tried again next run",
                    failed.len()
                )
            },
            r.cells_unchanged
        );
        if r.cases_disappeared > 0 {
            println!(
                "  cases no longer flagged are marked disappeared (`landwatch cases`); `landwatch case ID` says why for each"
            );
        }
        println!(
            "  cells: {} detected, {} from the detection cache",
            r.cells_detected, r.cells_from_cache
        );
        if let Some(p) = &r.packets {
            println!(
                "  evidence packets in {}: {} written, {} unchanged, {}{} failed (signed by key {}); open report.html in a packet",
                p.dir.display(),
                p.written,
                p.unchanged,
                if p.left_out > 0 {
                    format!(
                        "{} left out (imagery older than their cases' packets), ",
                        p.left_out
                    )
                } else {
                    String::new()
                },
                p.failed.len(),
                &p.key_fingerprint[..16.min(p.key_fingerprint.len())]
            );
            for f in &p.failed {
                println!("  PACKET FAILED {f}");
            }
        }
    }
    let outcome = if r.skipped.is_empty() && !packet_failures {
        Outcome::Done
    } else {
        Outcome::DoneWithSkips
    };
    Ok((outcome, result))
}

/// Creates a directory (and its parents), saying plainly when a file stands where it should be.
pub(crate) fn create_dir(dir: &Path, what: &str) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{what} {} is a file, not a directory: give a directory (it is created if missing)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {what} {}", dir.display()))
}

fn lock_store(
    s: &std::sync::Mutex<landwatch::store::Store>,
) -> Result<std::sync::MutexGuard<'_, landwatch::store::Store>> {
    s.lock()
        .map_err(|_| anyhow::anyhow!("the store's handle was poisoned by a panic"))
}

/// Every parameter of a run and their SHA-256 (the manifest's `config_sha256`).
fn run_parameters(job: &landwatch::pipeline::scan::ScanJob) -> Result<(serde_json::Value, String)> {
    let parameters = serde_json::json!({ "config": job.config, "rules": job.rules });
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(serde_json::to_vec(
        &parameters,
    )?));
    Ok((parameters, sha))
}

/// A finding as the store keeps it.
fn finding_record(
    f: &landwatch::pipeline::scan::Finding,
) -> Result<landwatch::store::FindingRecord> {
    use wkt::ToWkt;
    Ok(landwatch::store::FindingRecord {
        finding_id: f.finding_id.clone(),
        parcel_id: f.parcel_id.clone(),
        kind: f.kind.clone(),
        rule_id: f.rule_id.clone(),
        severity: f.severity.clone(),
        transition: f.transition.clone(),
        area_m2: f.area_m2,
        confidence: f.confidence,
        cells: f.cells.clone(),
        after_date: f.after_date.clone(),
        geometry_wkt: f.polygon.wkt_string(),
        properties: serde_json::json!({
            "approved_use": f.approved_use,
            "control_layers": f.control_layers,
            "kind_label": f.kind_label,
            "area_mu": f.area_mu,
            "observation": f.observation,
            "before_date": f.before_date,
            "permits": f.permits,
            "rule_trace": f.rule_trace,
        }),
    })
}

/// The signing key of a run: `--key`, else `[evidence] key`, else `<out>/keys/landwatch.key`
/// (made on first use, with a warning).
fn signing_key(
    cfg: &Config,
    given: Option<&std::path::Path>,
) -> Result<landwatch::evidence::SigningKey> {
    let path = match (given, &cfg.evidence.key) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => cfg.resolve(p),
        (None, None) => {
            let dir = cfg.output_dir().join("keys");
            let p = dir.join("landwatch.key");
            if !p.exists() {
                let files = landwatch::evidence::write_key_pair(&dir, "landwatch")?;
                tracing::warn!(
                    "no signing key configured: made {} (fingerprint {}); register its public key {} with whoever checks packets, or name the bureau's key in [evidence] key",
                    files.private_key.display(),
                    files.fingerprint,
                    files.public_key.display()
                );
            }
            p
        }
    };
    landwatch::evidence::load_signing_key(&path)
        .with_context(|| format!("loading the signing key {}", path.display()))
}

/// Writes the evidence packets of a scan's findings.
fn evidence_stage(
    job: &landwatch::pipeline::scan::ScanJob,
    a: &ScanArgs,
    result: &landwatch::pipeline::scan::ScanResult,
    cases: &[landwatch::store::CaseAssignment],
    run_id: &str,
    started: chrono::DateTime<chrono::Utc>,
    key: landwatch::evidence::SigningKey,
) -> Result<landwatch::pipeline::scan::PacketsReport> {
    use landwatch::pipeline::packets::{write_packets, PacketSettings};
    use landwatch::pipeline::scan::{PacketLine, PacketsReport};
    let t0 = std::time::Instant::now();
    let cfg = &job.config;
    let fingerprint = landwatch::evidence::fingerprint(&key.verifying_key());
    let (parameters, config_sha256) = run_parameters(job)?;
    let settings = PacketSettings {
        packets_dir: job.out.join("packets"),
        key,
        zip: a.zip || cfg.evidence.zip,
        run_id: run_id.to_string(),
        created_at: started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        config_sha256,
        parameters,
        detector: job.detector.describe(),
        margin_m: cfg.evidence.margin_m,
        min_px: cfg.evidence.min_chip_px,
        max_px: cfg.evidence.max_chip_px,
    };
    // A finding on imagery older than its case's gets no packet: the case's latest packet
    // stays the evidence of the newest imagery.
    let todo: Vec<usize> = (0..result.findings.len())
        .filter(|&i| cases[i].kept_newer.is_none())
        .collect();
    let case_ids: Vec<String> = cases.iter().map(|c| c.case_id.clone()).collect();
    let n = todo.len();
    let bar = if progress_bar() && n > 0 {
        let b = indicatif::ProgressBar::new(n as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} evidence [{bar:40}] {pos}/{len} packets, {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let step = (n / 10).max(1);
    let on_done = |k: usize| {
        if k == 2 {
            landwatch::pipeline::crash_point("packets");
        }
        match &bar {
            Some(b) => b.set_position(k as u64),
            None if k % step == 0 || k == n => tracing::info!("evidence: {k} of {n} packets"),
            None => {}
        }
    };
    let outcomes = write_packets(
        &result.context,
        &result.findings,
        &case_ids,
        &todo,
        &settings,
        &on_done,
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let mut rep = PacketsReport {
        dir: settings.packets_dir.clone(),
        key_fingerprint: fingerprint,
        ..Default::default()
    };
    let mut outcomes = outcomes.into_iter().peekable();
    for (i, f) in result.findings.iter().enumerate() {
        if let Some(day) = cases[i].kept_newer {
            rep.left_out += 1;
            rep.cases.push(PacketLine {
                finding_id: f.finding_id.clone(),
                case_id: cases[i].case_id.clone(),
                dir: None,
                version: None,
                left_out: Some(format!(
                    "its imagery is older than the imagery of {day} the case's packet shows"
                )),
            });
            continue;
        }
        // write_packets answers each finding it was given, in their order.
        let o = outcomes.next_if(|o| o.finding == i).unwrap_or_else(|| {
            landwatch::pipeline::packets::PacketOutcome {
                finding: i,
                case_id: cases[i].case_id.clone(),
                result: Err("no packet was made".into()),
            }
        });
        match o.result {
            Ok(w) => {
                if w.unchanged {
                    rep.unchanged += 1;
                } else {
                    rep.written += 1;
                }
                rep.cases.push(PacketLine {
                    finding_id: f.finding_id.clone(),
                    case_id: o.case_id,
                    dir: Some(w.dir),
                    version: Some(w.version),
                    left_out: None,
                });
            }
            Err(e) => {
                tracing::warn!(
                    "packet for case {} (finding {}): {e}",
                    o.case_id,
                    f.finding_id
                );
                rep.failed.push(format!(
                    "case {} (finding {}): {e}",
                    o.case_id, f.finding_id
                ));
                rep.cases.push(PacketLine {
                    finding_id: f.finding_id.clone(),
                    case_id: o.case_id,
                    dir: None,
                    version: None,
                    left_out: None,
                });
            }
        }
    }
    rep.seconds = t0.elapsed().as_secs_f64();
    Ok(rep)
}

/// Reads a layer `eval` is given — `what` is `truth` or `findings` — in `crs`, saying in eval's
/// own words what to give it when the file cannot be read (the readers' messages speak of
/// parcels and of `[parcels] crs`, which eval has not).
fn eval_layer(
    path: &Path,
    what: &str,
    crs: &str,
) -> Result<landwatch::ingest::vector::VectorLayerData> {
    use landwatch::ingest::IngestError as E;
    let give = if what == "truth" {
        "give the truth.geojson `landwatch synth` wrote, or the peer scene's truth.gpkg"
    } else {
        "give the findings.geojson or findings.gpkg `landwatch scan` wrote"
    };
    let state_it = |path: &Path| {
        format!(
            "write the CRS they are in into the file and give eval that one: `ogr2ogr -a_srs \
             EPSG:<code> fixed.gpkg {}`",
            path.display()
        )
    };
    landwatch::ingest::vector::read_layer(path, None, None, crs).map_err(|e| match e {
        E::NotOpenableVector { path, detail } => anyhow::anyhow!(
            "{}: not {what}: GDAL cannot open it as vector data ({detail}); {give}",
            path.display()
        ),
        E::LayerNoCrs { path, layer, hint } => anyhow::anyhow!(
            "{}: layer '{layer}' does not say which coordinate reference system its coordinates \
             are in{hint}; {}",
            path.display(),
            state_it(&path)
        ),
        E::LayerNotDegrees {
            path,
            layer,
            said,
            extent,
            hint,
        } => anyhow::anyhow!(
            "{}: layer '{layer}' says its coordinates are longitude and latitude in degrees \
             ({said}; a GeoJSON file without a `crs` member is taken to be in WGS 84), but they \
             run from {extent}, which are no degrees{hint}; {}",
            path.display(),
            state_it(&path)
        ),
        other => other.into(),
    })
}

fn eval(a: EvalArgs) -> Result<Outcome> {
    use geo::BoundingRect;
    use landwatch::eval_findings::{evaluate, FoundItem, TruthItem};
    // Overlaps and the areas in the lists of misses and false alarms in square metres: an
    // equal-area projection centred on the truth. (Web Mercator's "metres" are sec(latitude) too
    // long, and its areas 1.37 times too large at Suzhou.)
    let crs = {
        let wgs84 = eval_layer(&a.truth, "truth", "EPSG:4326")?;
        let bounds = wgs84
            .features
            .iter()
            .filter_map(|f| f.geometry.as_ref()?.bounding_rect())
            .reduce(|a, b| {
                geo::Rect::new(
                    (a.min().x.min(b.min().x), a.min().y.min(b.min().y)),
                    (a.max().x.max(b.max().x), a.max().y.max(b.max().y)),
                )
            });
        let (lon, lat) = bounds.map_or((0.0, 0.0), |r| (r.center().x, r.center().y));
        format!("+proj=laea +lat_0={lat} +lon_0={lon} +datum=WGS84 +units=m +no_defs")
    };
    let crs = crs.as_str();
    // Ids of a Real field (`110.0`) read as the whole numbers they are, as the scan reads them.
    let text = |f: &landwatch::ingest::vector::VectorFeature, k: &str| -> Option<String> {
        landwatch::parcels::attribute_text(f.attributes.get(k))
    };
    let truth_layer = eval_layer(&a.truth, "truth", crs)?;
    if truth_layer.features.is_empty() {
        bail!(
            "{}: the truth has no features, so there is nothing to score the findings against \
             (give the truth.geojson `landwatch synth` wrote, or the peer scene's truth.gpkg)",
            a.truth.display()
        );
    }
    let truth: Vec<TruthItem> = truth_layer
        .features
        .iter()
        .filter_map(|f| {
            let kind = text(f, "kind")?;
            // The peer's simple schema has kinds only: violation, harvest, permitted, construction.
            let category = text(f, "category").unwrap_or_else(|| match kind.as_str() {
                "violation" => "violation".into(),
                "harvest" | "phenology" => "cycle".into(),
                "cloud" | "cloud_shadow" | "no_data" => "unobserved".into(),
                _ => "legal".into(),
            });
            Some(TruthItem {
                kind,
                category,
                parcel_id: text(f, "parcel_id"),
                geometry: f.geometry.clone()?,
            })
        })
        .collect();
    if truth.is_empty() && !truth_layer.features.is_empty() {
        bail!(
            "{}: not a truth file: none of its {} features has a `kind` (give the truth.geojson \
             `landwatch synth` wrote, or the peer scene's truth.gpkg)",
            a.truth.display(),
            truth_layer.features.len()
        );
    }
    // landwatch's own findings carry a `kind` too, so a swapped pair would be scored quietly.
    let is_finding = |f: &landwatch::ingest::vector::VectorFeature| {
        f.attributes.contains_key("finding_id") && f.attributes.contains_key("rule_id")
    };
    if truth_layer.features.iter().any(is_finding) {
        bail!(
            "{}: not a truth file: its features are landwatch findings (they have finding_id and \
             rule_id); were --truth and --findings swapped?",
            a.truth.display()
        );
    }
    let found_layer = eval_layer(&a.findings, "findings", crs)?;
    // A table of findings (findings.csv) names parcels but has no outlines to score by object.
    if !found_layer.has_geometry && !found_layer.features.is_empty() {
        bail!(
            "{}: a table without outlines (findings.csv?): eval scores the findings' outlines; \
             give the findings.geojson or findings.gpkg `landwatch scan` wrote beside it",
            a.findings.display()
        );
    }
    let found: Vec<FoundItem> = found_layer
        .features
        .iter()
        .filter_map(|f| {
            Some(FoundItem {
                // Other tools' outputs (the peer's flagged parcels) may carry no kind.
                kind: text(f, "kind").unwrap_or_else(|| "flagged".to_string()),
                parcel_id: text(f, "parcel_id")?,
                geometry: f.geometry.clone()?,
            })
        })
        .collect();
    // Findings are scored by parcel: a feature without a parcel id (a change region of
    // changes.geojson, another tool's output naming its parcels otherwise) cannot be, and scoring
    // without it would read as a detector that found nothing.
    let unscored = found_layer.features.len() - found.len();
    if unscored > 0 && found.is_empty() {
        bail!(
            "{}: not findings: none of its {} features has a `parcel_id` and an outline (give the \
             findings.geojson or findings.gpkg landwatch scan wrote)",
            a.findings.display(),
            unscored
        );
    }
    if unscored > 0 {
        tracing::warn!(
            "{}: {unscored} of its {} features have no `parcel_id` or no outline and are not scored",
            a.findings.display(),
            found_layer.features.len()
        );
    }
    if !found.is_empty() && !landwatch::eval_findings::share_ground(&truth, &found) {
        bail!(
            "{}: none of its {} findings lies within the area of the truth in {}: findings of \
             another scene, or a file that says another CRS than its coordinates are in (the \
             findings say {}, the truth {})?",
            a.findings.display(),
            found.len(),
            a.truth.display(),
            found_layer.source_crs,
            truth_layer.source_crs
        );
    }
    let e = evaluate(&truth, &found);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
        return Ok(Outcome::Done);
    }
    // A ratio with nothing to divide by (no findings, no truth of a kind) is printed as n/a.
    let num = |v: Option<f64>| v.map_or_else(|| "  n/a".to_string(), |v| format!("{v:.3}"));
    let line = |name: &str, p: &landwatch::eval_findings::Prf| {
        println!(
            "{name:<24} precision {}  recall {}  F1 {}   (TP {}, FP {}, FN {})",
            num(p.precision),
            num(p.recall),
            num(p.f1),
            p.tp,
            p.fp,
            p.fn_
        )
    };
    line("parcel level", &e.parcel);
    line("object level", &e.object);
    let p = &e.parcel;
    if p.tp + p.fn_ == 0 {
        // Recall is undefined: say why rather than leave the n/a unexplained.
        println!(
            "the truth has no observable violation, so recall is n/a; {}",
            if p.fp == 0 {
                "nothing was flagged either: a clean scene scored clean".to_string()
            } else {
                format!(
                    "every one of the {} flagged parcel(s) is a false alarm",
                    p.fp
                )
            }
        );
    }
    // Per kind, recall and precision count different parcels (the truth's kind, the findings'
    // kind), so each side's counts are named rather than folded into one TP/FP/FN.
    for (k, s) in &e.per_kind {
        println!(
            "{:<24} precision {}  recall {}  F1 {}   (found {}, {} on violations; truth {}, {} flagged, {} as this kind)",
            format!("  {k}"),
            num(s.precision),
            num(s.recall),
            num(s.f1),
            s.found,
            s.found_on_violation,
            s.truth,
            s.truth_flagged,
            s.truth_flagged_as_kind
        );
    }
    if !e.unobservable.is_empty() {
        println!(
            "{} violation(s) not observable (cloud, shadow, no after image), left out",
            e.unobservable.len()
        );
    }
    if !e.spill_over_parcels.is_empty() {
        println!(
            "{} flagged parcel(s) carry a neighbour's injected change spilling across the edge (a real change; not counted): {}",
            e.spill_over_parcels.len(),
            e.spill_over_parcels.iter().map(|m| m.parcel_id.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    for m in &e.missed_parcels {
        println!("  missed parcel {} ({})", m.parcel_id, m.kind);
    }
    for m in &e.false_alarm_parcels {
        println!(
            "  false alarm on parcel {} ({}){}",
            m.parcel_id,
            m.kind,
            if m.overlaps.is_empty() {
                String::new()
            } else {
                format!(", truth there: {}", m.overlaps.join(","))
            }
        );
    }
    Ok(Outcome::Done)
}

fn read_single_band(path: &Path) -> Result<(usize, usize, Vec<f64>)> {
    let ds = landwatch::ingest::catalog::open_raster(path)?;
    let (w, h) = ds.raster_size();
    let px = landwatch::ingest::read::read_band_window::<f64>(&ds, 1, 0, 0, w, h)
        .with_context(|| format!("{}: reading band 1", path.display()))?;
    Ok((w, h, px))
}

fn eval_mask(a: EvalMaskArgs) -> Result<Outcome> {
    let (tw, th, truth) = read_single_band(&a.truth)?;
    let (mw, mh, mask) = read_single_band(&a.mask)?;
    if (tw, th) != (mw, mh) {
        bail!(
            "{} is {tw}x{th} px but {} is {mw}x{mh} px: they must be on the same grid",
            a.truth.display(),
            a.mask.display()
        );
    }
    let ignore = match &a.ignore {
        Some(p) => {
            let (iw, ih, px) = read_single_band(p)?;
            if (iw, ih) != (tw, th) {
                bail!("{} is {iw}x{ih} px, the truth is {tw}x{th} px", p.display());
            }
            Some(px)
        }
        None => None,
    };
    let mut c = landwatch::eval::PixelConfusion::default();
    for i in 0..truth.len() {
        let pred = match mask[i] as u8 {
            255 => None,
            v => Some(v == 1),
        };
        c.add(
            truth[i] != 0.0,
            pred,
            ignore.as_ref().is_some_and(|g| g[i] != 0.0),
        );
    }
    let m = c.metrics();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"confusion": c, "metrics": m}))?
        );
    } else {
        println!(
            "precision {:.4}  recall {:.4}  F1 {:.4}  IoU {:.4}  overall accuracy {:.4}  kappa {:.4}",
            m.precision, m.recall, m.f1, m.iou, m.overall_accuracy, m.kappa
        );
        println!(
            "TP {}  FP {}  FN {}  TN {}  ignored {}  unobserved {} (of which truth change {})",
            c.tp, c.fp, c.fn_, c.tn, c.ignored, c.unobserved, c.unobserved_truth_change
        );
    }
    Ok(Outcome::Done)
}

fn synth(a: SynthArgs) -> Result<Outcome> {
    let started = std::time::Instant::now();
    create_dir(&a.out, "the output directory")?;
    let summary = landwatch::synth::generate(&landwatch::synth::SynthOptions {
        out: a.out.clone(),
        size: a.size,
        seed: a.seed,
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "wrote a {0}x{0} px scene (seed {1}) into {2} in {3:.1} s: {4} parcels, {5} permits, injected changes {6:?}",
            summary.size_px,
            summary.seed,
            summary.out.display(),
            started.elapsed().as_secs_f64(),
            summary.parcels,
            summary.permits,
            summary.truth_by_category
        );
        for f in &summary.files {
            println!("  {}", f.display());
        }
    }
    Ok(Outcome::Done)
}

fn demo(a: DemoArgs) -> Result<Outcome> {
    landwatch::synth::check_size(a.size)?;
    create_dir(&a.out, "the output directory")?;
    let scene = a.out.join("scene");
    let results = a.out.join("results");
    println!(
        "1/4 generating a {0}x{0} px synthetic scene with known truth into {1}",
        a.size,
        scene.display()
    );
    synth(SynthArgs {
        out: scene.clone(),
        size: a.size,
        seed: a.seed,
        json: false,
    })?;
    println!("\n2/4 scanning it: catalogue, grid, detection, overlay, rules, evidence packets");
    let (outcome, result) = scan(ScanArgs {
        config: Some(scene.join("landwatch.toml")),
        before: Vec::new(),
        after: Vec::new(),
        parcels: None,
        parcels_layer: None,
        parcels_crs: None,
        permits: None,
        permits_layer: None,
        id_field: None,
        use_field: None,
        bands_before: None,
        bands_after: None,
        rules: None,
        out: Some(results.clone()),
        json: false,
        threads: None,
        detector: DetectorArgs {
            detector: None,
            model: None,
            combine: None,
        },
        key: None,
        zip: false,
        no_packets: false,
        // Every cell, every time: a second demo into the same directory would otherwise find
        // nothing new, verify no packet and point at no report.
        full: true,
        no_cache: false,
    })?;
    println!("\n3/4 scoring the findings against the scene's truth");
    eval(EvalArgs {
        truth: scene.join("truth.geojson"),
        findings: results.join("findings.geojson"),
        json: false,
    })?;
    let first = result
        .report
        .packets
        .as_ref()
        .and_then(|p| p.cases.iter().find_map(|c| c.dir.clone()));
    // A packet that does not check out fails the demo, whatever the scan's outcome.
    let mut outcome = outcome;
    if let Some(dir) = &first {
        println!("\n4/4 checking an evidence packet's hashes and signature");
        let checked = verify(VerifyArgs {
            packet: dir.clone(),
            pubkey: Some(results.join("keys").join("landwatch.pub")),
            json: false,
        })?;
        if matches!(checked, Outcome::Failed) {
            outcome = Outcome::Failed;
        }
    }
    println!("\nWhere to look:");
    if let Some(dir) = &first {
        println!(
            "  a field report (bilingual, prints on A4): {}",
            dir.join("report.html").display()
        );
    }
    println!(
        "  findings for a spreadsheet: {}",
        results.join("findings.csv").display()
    );
    println!(
        "  in QGIS: {0}/findings.gpkg, {0}/coverage.gpkg, {0}/change_score_satellite.tif, {1}/imagery/*/*.tif, {1}/parcels.gpkg, {1}/permits.gpkg",
        results.display(),
        scene.display()
    );
    println!("Every finding is a suspected violation (疑似违法用地线索): a lead for a field check, never a verdict.");
    Ok(outcome)
}

fn keygen(a: KeygenArgs) -> Result<Outcome> {
    let files = landwatch::evidence::write_key_pair(&a.out, &a.name)?;
    println!(
        "private key {} (mode 0600; keep it secret, never put it in a packet)",
        files.private_key.display()
    );
    println!(
        "public key  {} (hand it to whoever checks packets)",
        files.public_key.display()
    );
    println!("fingerprint {}", files.fingerprint);
    Ok(Outcome::Done)
}

fn verify(a: VerifyArgs) -> Result<Outcome> {
    use landwatch::evidence::verify::{FileStatus, KeySource, SignatureStatus};
    let given = match &a.pubkey {
        Some(p) => Some(landwatch::evidence::GivenKey {
            key: landwatch::evidence::load_verifying_key(p)?,
            path: p.clone(),
        }),
        None => None,
    };
    let r = landwatch::evidence::verify_packet(&a.packet, given.as_ref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "packet {} (case {}, schema {})",
            r.packet.display(),
            r.case_id.as_deref().unwrap_or("?"),
            r.schema_version.as_deref().unwrap_or("?")
        );
        if let Some(h) = &r.manifest_sha256 {
            println!("  manifest.json sha256 {h}");
        }
        if let Some(h) = &r.content_sha256 {
            println!("  packet fingerprint   {h} (printed in report.html)");
        }
        let fp = r.key_fingerprint.as_deref().unwrap_or("?");
        let sig = match r.signature {
            SignatureStatus::Valid => "VALID",
            SignatureStatus::Invalid => "DOES NOT MATCH",
            SignatureStatus::Missing => "MISSING",
            SignatureStatus::Unchecked => "NOT CHECKED",
        };
        match &r.key {
            KeySource::File { path } => {
                println!(
                    "  signature {sig} (Ed25519, key {} with fingerprint {fp})",
                    path.display()
                )
            }
            KeySource::Embedded => {
                println!("  signature {sig} (Ed25519, with the public key embedded in the manifest, fingerprint {fp})");
                println!("  NOTE: that key was not independently checked: anyone can re-sign a packet with their own key.");
                println!("        Give --pubkey with the bureau's public key file to check who signed it.");
            }
            KeySource::None => println!("  signature {sig} (no public key to check with)"),
        }
        let ok = r
            .files
            .iter()
            .filter(|f| f.status == FileStatus::Intact)
            .count();
        println!("  files: {ok} of {} intact", r.files.len());
        for f in r.files.iter().filter(|f| f.status != FileStatus::Intact) {
            let what = match f.status {
                FileStatus::Changed => "CHANGED",
                FileStatus::Missing => "MISSING",
                FileStatus::Added => "ADDED  ",
                FileStatus::Intact => "ok     ",
            };
            println!("  {what} {}", f.name);
        }
        for p in &r.problems {
            println!("  problem: {p}");
        }
        for w in &r.warnings {
            println!("  WARNING: {w}");
        }
        if r.intact {
            println!("INTACT");
        } else {
            println!("NOT INTACT: {} problem(s)", r.problems.len().max(1));
        }
    }
    Ok(if r.intact {
        Outcome::Done
    } else {
        Outcome::Failed
    })
}

/// A pixel size for people: four decimals for metres or feet, significant digits for degrees
/// (0.0000 would hide a geographic raster's 0.000005°), the same form for both axes.
fn pixel_size_text(x: f64, y: f64) -> String {
    if x.abs().min(y.abs()) >= 0.01 || x == 0.0 || y == 0.0 {
        format!("{x:.4} x {y:.4}")
    } else {
        format!("{x:.4e} x {y:.4e}")
    }
}
