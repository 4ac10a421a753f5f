//! The store's commands: `cases`, `case`, `status` (reading and reviewing cases) and `init`
//! (a starter configuration, rules and key pair).

use crate::cli::Outcome;
use anyhow::{bail, Context, Result};
use clap::Args;
use landwatch::config::Config;
use landwatch::store::{CaseDetail, CaseFilter, CaseRow, StatusReport, Store};
use std::path::{Path, PathBuf};

/// How the store commands find the store.
#[derive(Args)]
pub struct StoreLocation {
    /// The store file (landwatch.db).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["config", "out"])]
    store: Option<PathBuf>,
    /// A landwatch.toml: its [store] path, else landwatch.db in its [output] dir.
    #[arg(long, short, value_name = "F")]
    config: Option<PathBuf>,
    /// The output directory, overriding the config's (as for `scan --out`); alone, the store
    /// an ad-hoc `scan --out DIR` made there (DIR/landwatch.db).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl StoreLocation {
    /// The store path, and how to create it when it is missing.
    fn resolve(&self) -> Result<(PathBuf, String)> {
        if let Some(p) = &self.store {
            return Ok((
                p.clone(),
                "run `landwatch scan` with this store first".into(),
            ));
        }
        let Some(cfg_path) = &self.config else {
            let Some(o) = &self.out else {
                bail!("which store? give --store PATH, --out DIR (where `landwatch scan --out DIR` ran), or --config landwatch.toml [--out DIR]");
            };
            return Ok((
                o.join(landwatch::config::DEFAULT_STORE_FILE),
                format!("run `landwatch scan … --out {}` first", o.display()),
            ));
        };
        let mut cfg = Config::load(cfg_path)?;
        let mut hint = format!("run `landwatch scan --config {}", cfg_path.display());
        if let Some(o) = &self.out {
            let abs = if o.is_absolute() {
                o.clone()
            } else {
                std::env::current_dir()
                    .context("current directory")?
                    .join(o)
            };
            cfg.output.dir = abs;
            hint.push_str(&format!(" --out {}", o.display()));
        }
        hint.push_str("` first");
        Ok((cfg.store_path(), hint))
    }

    /// Opens the store, read-only unless `write` (an analyst's decision).
    fn open(&self, write: bool) -> Result<Store> {
        let (path, hint) = self.resolve()?;
        if std::fs::metadata(&path).map_or(true, |m| !m.is_file() || m.len() == 0) {
            bail!(
                "no store at {} yet (no file, or an empty one): {hint}",
                path.display()
            );
        }
        Ok(if write {
            Store::open_existing(&path)?
        } else {
            Store::open_read_only(&path)?
        })
    }
}

/// `landwatch cases`.
#[derive(Args)]
pub struct CasesArgs {
    #[command(flatten)]
    location: StoreLocation,
    /// Only cases with this status: open, disappeared, merged, confirmed, dismissed, referred.
    #[arg(long, value_name = "S")]
    status: Option<String>,
    /// Only cases last seen on or after this day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    since: Option<chrono::NaiveDate>,
    /// Print a JSON array of cases.
    #[arg(long)]
    json: bool,
}

/// `landwatch case`.
#[derive(Args)]
pub struct CaseArgs {
    /// The case id, e.g. 320509-20261128-0042.
    id: String,
    #[command(flatten)]
    location: StoreLocation,
    /// Record an analyst's decision: open, confirmed, dismissed or referred (needs --by and --reason).
    #[arg(long, value_name = "S", requires_all = ["by", "reason"])]
    set_status: Option<String>,
    /// Who decides (name or badge number), for the audit log.
    #[arg(long, value_name = "WHO", requires = "set_status")]
    by: Option<String>,
    /// Why, for the audit log (e.g. the field check's result).
    #[arg(long, value_name = "WHY", requires = "set_status")]
    reason: Option<String>,
    /// Print the case as JSON.
    #[arg(long)]
    json: bool,
}

/// `landwatch status`.
#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    location: StoreLocation,
    /// How many of the last runs to show.
    #[arg(long, value_name = "N", default_value_t = 10)]
    last: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `landwatch init`.
#[derive(Args)]
pub struct InitArgs {
    /// The directory to set up (created if missing).
    dir: PathBuf,
    /// The administrative region code that prefixes case ids.
    #[arg(long, value_name = "CODE", default_value = "000000")]
    region_code: String,
}

/// The header note of every case listing.
const SUSPECTED_NOTE: &str =
    "Suspected violations (疑似违法用地线索): leads for a field check, never verdicts.";

/// Lists cases.
pub fn cases(a: CasesArgs) -> Result<Outcome> {
    let store = a.location.open(false)?;
    let rows = store.cases(&CaseFilter {
        status: a.status.clone(),
        since: a.since,
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Outcome::Done);
    }
    println!("{SUSPECTED_NOTE}");
    println!("store {}", store.path().display());
    print_case_table(&rows);
    Ok(Outcome::Done)
}

fn print_case_table(rows: &[CaseRow]) {
    let header = [
        "case",
        "status",
        "kind",
        "parcel",
        "area m²",
        "severity",
        "first seen",
        "last seen",
        "parents",
        "packet",
    ];
    let cells: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.status.clone(),
                r.kind.clone(),
                r.parcel_id.clone(),
                format!("{:.1}", r.area_m2),
                r.severity.clone(),
                r.first_seen.clone(),
                r.last_seen.clone(),
                if r.parents.is_empty() {
                    "-".into()
                } else {
                    r.parents.join(",")
                },
                r.latest_packet.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain(std::iter::once(header[i].chars().count()))
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |fields: &[String]| {
        let mut s = String::new();
        for (i, f) in fields.iter().enumerate() {
            let pad = widths[i].saturating_sub(f.chars().count());
            // Numbers align right, text left.
            if i == 4 {
                s.push_str(&" ".repeat(pad));
                s.push_str(f);
            } else {
                s.push_str(f);
                if i + 1 < fields.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < fields.len() {
                s.push_str("  ");
            }
        }
        println!("{}", s.trim_end());
    };
    line(&header.map(String::from));
    for c in &cells {
        line(c);
    }
    println!("{} case(s)", rows.len());
}

/// Shows one case, or records an analyst's decision on it.
pub fn case(a: CaseArgs) -> Result<Outcome> {
    let mut store = a.location.open(a.set_status.is_some())?;
    if let Some(status) = &a.set_status {
        let who = a.by.as_deref().unwrap_or_default();
        let why = a.reason.as_deref().unwrap_or_default();
        let before = store.set_case_status(&a.id, status, who, why)?;
        if !a.json {
            if before == *status {
                println!(
                    "case {}: already '{status}'; the decision is recorded again, by {who} with \
                     this reason, in the audit log",
                    a.id
                );
            } else {
                println!(
                    "case {}: status set to '{status}' (was '{before}') by {who} (recorded in \
                     the audit log)",
                    a.id
                );
            }
        }
    }
    let Some(d) = store.case(&a.id)? else {
        bail!(
            "no case '{}' in {} (`landwatch cases` lists them)",
            a.id,
            store.path().display()
        );
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print_case(&d);
    }
    Ok(Outcome::Done)
}

fn print_case(d: &CaseDetail) {
    let c = &d.case;
    println!(
        "case {} — a suspected violation (疑似违法用地线索), not a verdict",
        c.id
    );
    println!("  status      {}", c.status);
    if let Some(m) = &d.merged_into {
        println!("  merged into {m}");
    }
    println!(
        "  kind        {} (rule {}, severity {})",
        c.kind, c.rule_id, c.severity
    );
    println!("  parcel      {}", c.parcel_id);
    println!("  transition  {}", d.transition);
    println!(
        "  area        {:.1} m², confidence {:.2}",
        c.area_m2, d.confidence
    );
    println!("  first seen  {} (run {})", c.first_seen, d.first_run_id);
    println!("  last seen   {} (run {})", c.last_seen, d.last_run_id);
    if let Some(t) = &d.after_date {
        println!("  after image {t}");
    }
    if let Some(t) = &d.gone_date {
        println!("  gone on     {t} (the day of the imagery that no longer showed it)");
    }
    println!("  cells       {}", d.cells.join(", "));
    println!(
        "  parents     {}",
        if c.parents.is_empty() {
            "-".to_string()
        } else {
            c.parents.join(", ")
        }
    );
    println!(
        "  children    {}",
        if d.children.is_empty() {
            "-".to_string()
        } else {
            d.children.join(", ")
        }
    );
    println!("packets ({}):", d.packets.len());
    for p in &d.packets {
        println!(
            "  v{}  {}  manifest sha256 {}  (run {}, {})",
            p.version, p.dir, p.manifest_sha256, p.run_id, p.recorded_at
        );
    }
    println!("geometry history ({}):", d.geometries.len());
    for g in &d.geometries {
        println!(
            "  {}  {:>10.1} m²  finding {}  run {}",
            g.recorded_at, g.area_m2, g.finding_id, g.run_id
        );
    }
    println!("history ({} event(s)):", d.events.len());
    for e in &d.events {
        let change = match (&e.from_status, &e.to_status) {
            (Some(f), Some(t)) => format!(" [{f} → {t}]"),
            _ => String::new(),
        };
        println!("  {}  {:<12} {:<10} {}{change}", e.at, e.who, e.what, e.why);
    }
}

/// Shows the last runs and the cases per status.
pub fn status(a: StatusArgs) -> Result<Outcome> {
    let store = a.location.open(false)?;
    let r = store.status(a.last)?;
    let lock = landwatch::store::lock::current_holder(store.path());
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "lock".into(),
                match &lock {
                    Some((info, held)) => serde_json::json!({"holder": info, "held": held}),
                    None => serde_json::Value::Null,
                },
            );
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Outcome::Done);
    }
    print_status(&r, lock.as_ref());
    Ok(Outcome::Done)
}

fn print_status(r: &StatusReport, lock: Option<&(landwatch::store::lock::LockInfo, bool)>) {
    println!(
        "store {} (schema version {}), {} imagery file(s) known",
        r.store.display(),
        r.schema_version,
        r.imagery_files
    );
    match lock {
        Some((l, true)) => println!(
            "  a run is in progress: pid {} on {} since {} ({})",
            l.pid, l.host, l.started_at, l.holder
        ),
        Some((l, false)) => println!(
            "  a lock file left by pid {} on {} since {} (that process is gone; the next run takes it over)",
            l.pid, l.host, l.started_at
        ),
        None => {}
    }
    let by: Vec<String> = r
        .cases_by_status
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    println!(
        "  cases (suspected violations, 疑似违法用地线索): {}",
        if by.is_empty() {
            "none".into()
        } else {
            by.join(", ")
        }
    );
    println!("last {} run(s), newest first:", r.runs.len());
    let n = |v: Option<usize>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for run in &r.runs {
        println!(
            "  {}  {:<15} {}{}",
            run.id,
            run.status,
            run.started_at,
            run.finished_at
                .as_deref()
                .map(|f| format!(" → {f}"))
                .unwrap_or_default()
        );
        if let Some(e) = &run.error {
            println!("      failed: {e}");
        }
        if run.cells_processed.is_some() {
            println!(
                "      cells {} processed ({} detected, {} from the detection cache), {} unchanged; {} finding(s); \
                 cases {} new, {} updated, {} reopened, {} disappeared{}; {} input(s) skipped or packet(s) failed; protected area not observed {:.1} m²{}",
                n(run.cells_processed),
                n(run.cells_detected),
                n(run.cells_from_cache),
                n(run.cells_skipped_unchanged),
                n(run.findings),
                n(run.new_cases),
                n(run.updated_cases),
                n(run.reopened_cases),
                n(run.disappeared_cases),
                [
                    (run.seen_older_cases, landwatch::store::SEEN_OLDER),
                    (run.not_judged_cases, landwatch::store::NOT_JUDGED),
                ]
                .iter()
                .filter_map(|(k, what)| k.filter(|k| *k > 0).map(|k| format!(", {k} {what}")))
                .collect::<String>(),
                n(run.skipped_inputs),
                run.unobserved_protected_m2.unwrap_or(0.0),
                if run.full { " (--full)" } else { "" }
            );
        }
    }
}

/// Writes a starter configuration, the shipped rules and a key pair into a directory.
pub fn init(a: InitArgs) -> Result<Outcome> {
    let dir = &a.dir;
    let config = dir.join("landwatch.toml");
    let rules = dir.join("rules.toml");
    let keys = dir.join("keys");
    let targets = [
        config.clone(),
        rules.clone(),
        keys.join("bureau.key"),
        keys.join("bureau.pub"),
    ];
    let existing: Vec<String> = targets
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist(s): landwatch init never overwrites files; move them away or choose another directory",
            existing.join(", ")
        );
    }
    let text = starter_config(&a.region_code);
    // Check what we are about to write loads, before writing anything.
    Config::from_toml(&text, &config, dir)
        .with_context(|| format!("the starter configuration for {}", dir.display()))?;
    crate::cli::create_dir(dir, "the directory")?;
    write_new(&config, &text)?;
    write_new(&rules, landwatch::rules::DEFAULT_RULES)?;
    let k = landwatch::evidence::write_key_pair(&keys, "bureau")?;
    println!("wrote {}", config.display());
    println!(
        "wrote {} (the shipped rules; edit them for your bureau)",
        rules.display()
    );
    println!(
        "wrote {} (private, mode 0600) and {} (fingerprint {})",
        k.private_key.display(),
        k.public_key.display(),
        k.fingerprint
    );
    println!(
        "next: put imagery, parcels and permits where {} says, then `landwatch scan --config {}`",
        config.display(),
        config.display()
    );
    Ok(Outcome::Done)
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// A commented starter `landwatch.toml` with every section; paths are relative to its directory.
pub fn starter_config(region_code: &str) -> String {
    format!(
        r#"# landwatch configuration, written by `landwatch init`.
# Relative paths are relative to this file's directory. Unknown keys are errors that name the key.
# Every flag landwatch raises is a suspected violation (疑似违法用地线索): a lead for a field check.

[project]
name = "landwatch"
# The administrative region code; it prefixes case ids (e.g. 320509-20261128-0042).
region_code = "{region_code}"

[imagery]
# Files or directories (walked recursively) of the earlier and the later date(s): a list, or
# one path alone.
before = ["imagery/before"]
after = ["imagery/after"]
# Band roles when the files do not say, e.g. "blue,green,red,nir".
# bands_before = "blue,green,red,nir"
# bands_after = "blue,green,red,nir"

[parcels]
# Approved land-use parcels (GeoPackage, Shapefile, GeoJSON) and their attribute names.
path = "parcels.gpkg"
# layer = "parcels"            # a file of several layers: the one named "parcels" (or "DLTB")
                               # is read when none is named here; otherwise name it
id_field = "parcel_id"
use_field = "approved_use"     # land-use codes and names are known too, e.g. "DLBM" or "DLMC"
# The CRS of layers whose files say none (a Shapefile without its .prj, a GeoJSON file of metres
# without its "crs" member), e.g. CGCS2000 zone 40:
# crs = "EPSG:4528"
# Protected parcels: the layer's fields basic_farmland (永久基本农田) and eco_redline (生态保护红线),
# yes as 是/true/y/1, no as 否/false/n/0 or empty (any other value stops the scan, naming the
# parcel), or control layers of their own (below), or both. Fields of other names:
# basic_farmland_field = "是否基本农田"
# eco_redline_field = "STBHHX"
# Permits (optional: without a permits register, remove the line; then no change is explained by
# a permit).
permits = "permits.gpkg"
# permits_layer = "permits"    # likewise: "permits" unless named
# Control layers given as their own polygon layers:
# [[parcels.control]]
# path = "redline.gpkg"
# kind = "eco_redline"        # or "basic_farmland"
# layer = "eco_redline"       # likewise: the layer named as its kind unless named
# The layer's own approved-use values mapped to uses (docs/RULES.md, "Approved uses"):
# [parcels.uses]
# "NT-1" = "farmland"

[grid]
# The analysis grid. Default CRS: the parcels' (the imagery's when the parcels are in degrees); default pixel size: the first raster's.
# crs = "EPSG:4549"
# pixel_size = 0.5
cell_size = 1024
halo = 32
# Pin the north-west corner [x, y] to keep cell ids stable when the area grows.
# origin = [561152.0, 3449344.0]

# [detect]
# Detection parameters (threshold, normalisation, minimum mapping units…); the defaults suit
# 0.5–2 m satellite imagery. See docs/DETECTORS.md before changing them.

[detector]
kind = "spectral"             # or "onnx": a learned model (docs/DETECTORS.md)
# model = "models/cd/model.toml"
# combine = "learned"         # learned | both | either

[rules]
# The rules file (the shipped rules, written beside this file by `landwatch init`).
path = "rules.toml"

[output]
# Findings, coverage, evidence packets and (by default) the store go here.
dir = "out"

[store]
# The store of runs and cases (SQLite). Default: landwatch.db in the output directory.
# Keep it on a local file system; see docs/OPERATIONS.md for backups.
# path = "out/landwatch.db"
# A finding continues a case on the same parcel when their overlap covers at least this share
# of the smaller of the two.
overlap_ratio = 0.3
# A case an analyst dismissed is open again for review when its change grows past its area at
# the dismissal by this share and by at least this many square metres (or becomes a kind of a
# higher severity).
reopen_growth = 0.5
reopen_growth_m2 = 100.0

[evidence]
# Evidence packets are signed with keys/bureau.key (written by `landwatch init`); hand
# keys/bureau.pub to whoever checks packets (`landwatch verify --pubkey keys/bureau.pub`).
key = "keys/bureau.key"
# Also write one .zip per packet.
zip = false
# Ground shown around a finding (0-1000 m) and the chip size limits (32 to 4096 pixels,
# min_chip_px at most max_chip_px).
margin_m = 30.0
min_chip_px = 160
max_chip_px = 800
"#
    )
}
