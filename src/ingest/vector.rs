//! Reading vector layers (parcels, control layers, permits) through OGR: any format GDAL reads
//! (GeoPackage, Shapefile, GeoJSON, FileGDB …), reprojected to the working CRS, invalid geometries
//! repaired (`MakeValid`) or reported, attributes as JSON values.

use super::srs;
use super::IngestError;
use gdal::spatial_ref::SpatialRef;
use gdal::vector::{FieldValue, Geometry, LayerAccess};
use gdal::{Dataset, DatasetOptions, GdalOpenFlags};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One feature as read: its id, its polygons in the working CRS, its attributes.
#[derive(Debug, Clone)]
pub struct VectorFeature {
    /// The feature id in the source (GeoPackage fid, Shapefile record number …).
    pub fid: Option<u64>,
    /// Polygonal geometry in the working CRS (`None` when it had to be rejected).
    pub geometry: Option<geo::MultiPolygon<f64>>,
    /// Attributes by field name (dates as `YYYY-MM-DD` strings).
    pub attributes: BTreeMap<String, Value>,
    /// What was repaired, if anything (e.g. a self-intersecting ring).
    pub repaired: Option<String>,
    /// Why the geometry was rejected, if it was.
    pub rejected: Option<String>,
    /// A point or a line instead of an outline (a register that marks each permit with a pin):
    /// what it is and where, in the working CRS.
    pub pin: Option<Pin>,
}

/// A feature's place when it has no outline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pin {
    /// `"a point"` or `"a line"`.
    pub what: &'static str,
    /// A point of its geometry (working CRS).
    pub at: geo::Point<f64>,
}

/// A whole layer.
#[derive(Debug, Clone)]
pub struct VectorLayerData {
    /// The file.
    pub path: PathBuf,
    /// The layer's name.
    pub layer: String,
    /// The layer's own CRS (label).
    pub source_crs: String,
    /// Whether the layer has a geometry field (a table — a CSV, a spreadsheet — has none).
    pub has_geometry: bool,
    /// The layer's field names, as the file has them (also when it has no features).
    pub fields: Vec<String>,
    /// The features.
    pub features: Vec<VectorFeature>,
}

fn field_value(v: Option<FieldValue>) -> Value {
    match v {
        None => Value::Null,
        Some(FieldValue::IntegerValue(i)) => Value::from(i),
        Some(FieldValue::Integer64Value(i)) => Value::from(i),
        Some(FieldValue::RealValue(f)) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Some(FieldValue::StringValue(s)) => Value::from(s),
        Some(FieldValue::DateValue(d)) => Value::from(d.format("%Y-%m-%d").to_string()),
        Some(FieldValue::DateTimeValue(d)) => Value::from(d.format("%Y-%m-%d").to_string()),
        Some(other) => Value::from(format!("{other:?}")),
    }
}

/// Keeps the polygonal parts of a geometry (MakeValid can return collections with lines).
fn polygons_of(g: geo::Geometry<f64>) -> Vec<geo::Polygon<f64>> {
    match g {
        geo::Geometry::Polygon(p) => vec![p],
        geo::Geometry::MultiPolygon(m) => m.0,
        geo::Geometry::GeometryCollection(c) => c.0.into_iter().flat_map(polygons_of).collect(),
        _ => Vec::new(),
    }
}

/// What a geometry without area is, in words (`None` for anything else).
fn without_area(g: &geo::Geometry<f64>) -> Option<&'static str> {
    match g {
        geo::Geometry::Point(_) | geo::Geometry::MultiPoint(_) => Some("a point"),
        geo::Geometry::Line(_)
        | geo::Geometry::LineString(_)
        | geo::Geometry::MultiLineString(_) => Some("a line"),
        _ => None,
    }
}

/// Opens a vector file read-only, saying plainly when there is no file or GDAL cannot read it.
pub fn open_vector(path: &Path) -> Result<Dataset, IngestError> {
    open_vector_with(path, &[])
}

/// The files a vector dataset is made of, as GDAL lists them (a Shapefile's `.shp`, `.shx`,
/// `.dbf`, `.prj`, `.cpg`…), for what depends on its content; `path` alone for an archive or a
/// file GDAL cannot list.
pub fn vector_files(path: &Path) -> Vec<PathBuf> {
    if matches!(gdal_path(path), std::borrow::Cow::Owned(_)) {
        return vec![path.to_path_buf()];
    }
    let listed = open_vector(path)
        .map(|ds| crate::gdal_ext::file_list(&ds))
        .unwrap_or_default();
    if listed.is_empty() {
        vec![path.to_path_buf()]
    } else {
        listed
    }
}

/// The path GDAL opens for `path`: a `.zip` archive (a Shapefile's files sent zipped) through
/// `/vsizip/`, which GDAL only does by itself for names ending in `.shp.zip`.
fn gdal_path(path: &Path) -> std::borrow::Cow<'_, Path> {
    let zipped = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if zipped && !path.to_string_lossy().starts_with("/vsi") {
        let mut p = std::ffi::OsString::from("/vsizip/");
        p.push(path.as_os_str());
        std::borrow::Cow::Owned(PathBuf::from(p))
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

/// [`open_vector`] with the driver's open options (`KEY=VALUE`).
fn open_vector_with(path: &Path, open_options: &[&str]) -> Result<Dataset, IngestError> {
    super::init_gdal();
    if !path.exists() && !path.to_string_lossy().starts_with("/vsi") {
        return Err(IngestError::NotFound {
            path: path.to_path_buf(),
        });
    }
    Dataset::open_ex(
        gdal_path(path),
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY,
            open_options: (!open_options.is_empty()).then_some(open_options),
            ..Default::default()
        },
    )
    .map_err(|e| IngestError::NotOpenableVector {
        path: path.to_path_buf(),
        detail: match e {
            // GDAL says no more than that no vector driver took the file: say what it is.
            gdal::errors::GdalError::NullPointer { msg, .. } if msg.trim().is_empty() => {
                not_vector(path)
            }
            e => e.to_string(),
        },
    })
}

/// What a file no vector driver opens is, for the message: a raster (of which format), or
/// nothing GDAL recognises.
fn not_vector(path: &Path) -> String {
    let raster = Dataset::open_ex(
        gdal_path(path),
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_RASTER | GdalOpenFlags::GDAL_OF_READONLY,
            ..Default::default()
        },
    );
    match raster {
        Ok(ds) => format!(
            "it is a raster ({}), not a layer of polygons",
            ds.driver().long_name()
        ),
        Err(_) => "no format GDAL reads recognises it: is it cut short, or not what its name \
                   says?"
            .to_string(),
    }
}

/// The names of a vector file's layers.
pub fn layer_names(path: &Path) -> Result<Vec<String>, IngestError> {
    Ok(open_vector(path)?.layers().map(|l| l.name()).collect())
}

/// What a layer is read for, which chooses it in a file of several layers when none is named.
#[derive(Debug, Clone, Copy)]
pub struct LayerRole<'a> {
    /// What it holds, for messages (`parcels`, `permits`, `eco_redline control layer`).
    pub what: &'a str,
    /// The names a layer of it goes by (in any case): `permits` for permits.
    pub names: &'a [&'a str],
    /// How to name a layer: the configuration key and the flag.
    pub naming: &'a str,
}

/// The parcels' layer: `parcels`, or a Third Land Survey's `DLTB`.
pub const PARCELS_ROLE: LayerRole<'static> = LayerRole {
    what: "parcels",
    names: &["parcels", "dltb"],
    naming: "[parcels] layer in the config, or --parcels-layer",
};

/// The permits' layer: `permits`.
pub const PERMITS_ROLE: LayerRole<'static> = LayerRole {
    what: "permits",
    names: &["permits"],
    naming: "[parcels] permits_layer in the config, or --permits-layer",
};

/// Tables a GIS keeps beside the data in a GeoPackage (QGIS's saved styles), never a layer of it.
const NOT_DATA_LAYERS: &[&str] = &["layer_styles"];

/// The named layer of a vector file, else its first, naming the layers there are when it has
/// not the one asked for.
pub fn layer_of<'a>(
    ds: &'a Dataset,
    path: &Path,
    layer: Option<&str>,
) -> Result<gdal::vector::Layer<'a>, IngestError> {
    layer_for(ds, path, layer, None)
}

/// The named layer of a vector file; else its only layer; else, for a `role`, the one layer
/// named for it (`permits`), and when there is no such layer or several, an error listing the
/// layers and saying how to name one (a file of several layers is never read by its first
/// silently: an empty first layer would read as no permits at all); without a role, the first.
pub fn layer_for<'a>(
    ds: &'a Dataset,
    path: &Path,
    layer: Option<&str>,
    role: Option<&LayerRole<'_>>,
) -> Result<gdal::vector::Layer<'a>, IngestError> {
    if let Some(name) = layer {
        return ds.layer_by_name(name).map_err(|_| {
            let names: Vec<String> = ds.layers().map(|l| l.name()).collect();
            IngestError::NoLayer {
                path: path.to_path_buf(),
                detail: format!("no layer '{name}' (layers: {})", names.join(", ")),
            }
        });
    }
    let first = || {
        ds.layer(0).map_err(|e| IngestError::NoLayer {
            path: path.to_path_buf(),
            detail: format!("no layer: {e}"),
        })
    };
    let Some(role) = role else {
        return first();
    };
    let data: Vec<String> = ds
        .layers()
        .map(|l| l.name())
        .filter(|n| !NOT_DATA_LAYERS.iter().any(|x| x.eq_ignore_ascii_case(n)))
        .collect();
    if data.len() <= 1 {
        return match data.first() {
            Some(name) => ds.layer_by_name(name).or_else(|_| first()),
            None => first(),
        };
    }
    let named: Vec<&String> = data
        .iter()
        .filter(|n| role.names.iter().any(|r| r.eq_ignore_ascii_case(n)))
        .collect();
    if let [name] = named[..] {
        if let Ok(l) = ds.layer_by_name(name) {
            tracing::info!(
                "{}: reading layer '{name}' as the {} (of the file's {} layers)",
                path.display(),
                role.what,
                data.len()
            );
            return Ok(l);
        }
    }
    let layers: Vec<String> = ds
        .layers()
        .map(|l| {
            let n = l.feature_count();
            format!(
                "'{}': {n} feature{}",
                l.name(),
                if n == 1 { "" } else { "s" }
            )
        })
        .collect();
    Err(IngestError::SeveralLayers {
        path: path.to_path_buf(),
        what: role.what.to_string(),
        layers: layers.join(", "),
        naming: role.naming.to_string(),
    })
}

/// The encoding a Shapefile whose text is not what it says (or that does not say, and is not
/// UTF-8) is read in instead: GBK, as Chinese GIS software writes.
const SHAPEFILE_FALLBACK_ENCODING: &str = "CP936";

/// Reads one layer (the named one, else the first; [`read_layer_as`] chooses by role) into the
/// working CRS.
///
/// A Shapefile's text is decoded as its `.cpg` file (or its table's language byte) says, and as
/// UTF-8 when neither does. When that leaves text that is not valid (Chinese text written as GBK
/// by a tool that said nothing, the usual case), the layer is read again as GBK and a warning
/// says so and how to state the encoding; if GBK does not fit either, as it was, with the
/// warning that its text is unreadable.
///
/// `stated_crs` (the configuration's `[parcels] crs`) is the CRS of the layer's coordinates when
/// the file says none (see [`layer_srs`]).
pub fn read_layer(
    path: &Path,
    layer: Option<&str>,
    stated_crs: Option<&str>,
    target_crs: &str,
) -> Result<VectorLayerData, IngestError> {
    read_layer_as(path, layer, None, stated_crs, target_crs)
}

/// [`read_layer`] of a layer read for a `role`, which chooses the layer of a file of several
/// when none is named ([`layer_for`]).
pub fn read_layer_as(
    path: &Path,
    layer: Option<&str>,
    role: Option<&LayerRole<'_>>,
    stated_crs: Option<&str>,
    target_crs: &str,
) -> Result<VectorLayerData, IngestError> {
    let ds = open_vector(path)?;
    let shapefile = ds.driver().short_name() == "ESRI Shapefile";
    let data = read_layer_of(&ds, path, layer, role, stated_crs, target_crs)?;
    if !has_undecodable_text(&data) {
        return Ok(data);
    }
    if !shapefile {
        tracing::warn!(
            "{}: some text of the layer is not UTF-8 (a CSV saved as GBK by a spreadsheet?): \
             names and uses with unreadable characters are read as they are; save the file as \
             UTF-8",
            path.display()
        );
        return Ok(data);
    }
    drop(ds);
    let cpg = path.with_extension("cpg");
    let said = std::fs::read_to_string(&cpg)
        .map(|t| format!("its .cpg says {}", t.trim()))
        .unwrap_or_else(|_| "there is no .cpg to say which".to_string());
    let option = format!("ENCODING={SHAPEFILE_FALLBACK_ENCODING}");
    let again = read_layer_of(
        &open_vector_with(path, &[&option])?,
        path,
        layer,
        role,
        stated_crs,
        target_crs,
    )?;
    if has_undecodable_text(&again) {
        tracing::warn!(
            "{}: some text of the layer cannot be decoded ({said}, and it is neither UTF-8 nor \
             GBK): names and uses with unreadable characters are read as they are; write the \
             file's encoding into {} (e.g. GBK, UTF-8, CP1252)",
            path.display(),
            cpg.display()
        );
        return Ok(data);
    }
    tracing::warn!(
        "{}: the layer's text is not the encoding it was taken for ({said}); read as GBK \
         (CP936), which decodes all of it. Check the names in the outputs, and write the file's \
         encoding into {} to say so",
        path.display(),
        cpg.display()
    );
    Ok(again)
}

/// A table or column name quoted for SQLite's SQL.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A GeoPackage feature's value as the text stored (SQLite's own, not GDAL's reading of its
/// column's type), if there is one.
fn raw_text(ds: &Dataset, layer: &str, field: &str, fid: u64) -> Option<String> {
    let sql = format!(
        "SELECT CAST({} AS TEXT) AS raw FROM {} WHERE rowid = {fid}",
        quoted(field),
        quoted(layer)
    );
    let mut rows = ds
        .execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT)
        .ok()??;
    let row = rows.features().next()?;
    row.field_as_string(0).ok().flatten()
}

/// The values of the numeric columns `numeric` (indexes into `fields`) of a SQLite-based layer
/// (GeoPackage, SpatiaLite) that are stored as text: `(fid, column, text)`. One query reads
/// them all.
fn text_in_numeric_columns(
    ds: &Dataset,
    layer: &str,
    fields: &[String],
    numeric: &[usize],
) -> Vec<(u64, usize, String)> {
    if numeric.is_empty() {
        return Vec::new();
    }
    // Every column of the result is text (`T` and the value, or `N`), so that GDAL, which types
    // an expression's column by its first row, reads each as text.
    let columns: Vec<String> = numeric
        .iter()
        .map(|&i| {
            let c = quoted(&fields[i]);
            format!("CASE WHEN typeof({c}) = 'text' THEN 'T' || {c} ELSE 'N' END")
        })
        .collect();
    let any_text: Vec<String> = numeric
        .iter()
        .map(|&i| format!("typeof({}) = 'text'", quoted(&fields[i])))
        .collect();
    let sql = format!(
        "SELECT CAST(rowid AS TEXT), {} FROM {} WHERE {}",
        columns.join(", "),
        quoted(layer),
        any_text.join(" OR ")
    );
    let Ok(Some(mut rows)) = ds.execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for row in rows.features() {
        let Some(fid) = row
            .field_as_string(0)
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        for (j, &i) in numeric.iter().enumerate() {
            if let Ok(Some(v)) = row.field_as_string(j + 1) {
                if let Some(text) = v.strip_prefix('T') {
                    out.push((fid, i, text.to_string()));
                }
            }
        }
    }
    out
}

/// The field (index into `fields`) and the text of GDAL's warning that it read a value of a
/// numeric field of `layer` only in part: `Value '是' of field parcels.basic_farm parsed
/// incompletely to real 0.`
fn partly_parsed_value(message: &str, layer: &str, fields: &[String]) -> Option<(usize, String)> {
    let rest = message.strip_prefix("Value '")?;
    let (raw, rest) = rest.rsplit_once("' of field ")?;
    let (qualified, _) = rest.split_once(" parsed incompletely to ")?;
    let field = qualified.strip_prefix(layer)?.strip_prefix('.')?;
    let i = fields.iter().position(|f| f == field)?;
    Some((i, raw.to_string()))
}

/// Whether any text attribute of the layer holds a character its decoding could not make out.
fn has_undecodable_text(data: &VectorLayerData) -> bool {
    data.features.iter().any(|f| {
        f.attributes
            .values()
            .any(|v| v.as_str().is_some_and(|s| s.contains('\u{FFFD}')))
    })
}

/// The CRS of a layer's coordinates: the file's own; else the stated one (`[parcels] crs`, for
/// files that say none, as a Shapefile without its `.prj`); `None` for a table without geometry
/// (a permit register as CSV or a spreadsheet, its permits naming their parcels), which has no
/// CRS to speak of. A layer that says another CRS than the stated one is read in its own, with a
/// warning; one with geometry that says none, with none stated, is refused with what its
/// coordinates look like. A layer that says degrees of coordinates that are none (a GeoJSON file
/// of metres without its `crs` member, which GDAL takes for WGS 84) is one that says none.
pub fn layer_srs(
    lyr: &gdal::vector::Layer<'_>,
    path: &Path,
    stated_crs: Option<&str>,
) -> Result<Option<SpatialRef>, IngestError> {
    layer_srs_saying(lyr, path, stated_crs, Say::Log)
}

/// [`layer_srs`] without logging what it finds (a CRS it reads the layer in instead of the stated
/// one, or instead of the degrees the layer says): for a look at the CRS of a layer that is read
/// afterwards, whose reading says it, so that it is said once.
pub fn layer_srs_quietly(
    lyr: &gdal::vector::Layer<'_>,
    path: &Path,
    stated_crs: Option<&str>,
) -> Result<Option<SpatialRef>, IngestError> {
    layer_srs_saying(lyr, path, stated_crs, Say::Nothing)
}

/// Whether [`layer_srs_saying`] logs what it finds.
#[derive(Clone, Copy, PartialEq)]
enum Say {
    Log,
    Nothing,
}

fn layer_srs_saying(
    lyr: &gdal::vector::Layer<'_>,
    path: &Path,
    stated_crs: Option<&str>,
    say: Say,
) -> Result<Option<SpatialRef>, IngestError> {
    if lyr.defn().geom_fields().count() == 0 {
        return Ok(None);
    }
    let stated = match stated_crs {
        Some(c) => Some(srs::parse_crs(c).map_err(|e| IngestError::Crs {
            path: path.to_path_buf(),
            detail: format!("[parcels] crs '{}': {e}", srs::short(c)),
        })?),
        None => None,
    };
    // A layer that says degrees of coordinates that are none (a GeoJSON file of projected
    // coordinates without its `crs` member, which GDAL takes for WGS 84) is in the stated CRS if
    // there is one, else refused: its every feature would fail to be transformed, or land in
    // the wrong place.
    let own = lyr.spatial_ref();
    if let Some(own_srs) = own.as_ref().filter(|o| srs::describe(o).geographic) {
        // Computed if need be (a GeoJSON file's is not known without reading it).
        if let Some(e) = lyr.get_extent().ok().filter(|e| {
            let within = |v: f64, limit: f64| v.abs() <= limit;
            // Longitudes of 0–360° are met too.
            !(within(e.MinX, 360.0)
                && within(e.MaxX, 360.0)
                && within(e.MinY, 90.0)
                && within(e.MaxY, 90.0))
        }) {
            return match stated {
                Some(stated) => {
                    if say == Say::Log {
                        tracing::warn!(
                            "{}: layer '{}' says its coordinates are degrees ({}), but they run from \
                             {:.0}, {:.0} to {:.0}, {:.0}: read in {} as stated ([parcels] crs or \
                             --parcels-crs); write that CRS into the file to say so there: \
                             `ogr2ogr -a_srs {} fixed.gpkg {}`",
                            path.display(),
                            lyr.name(),
                            srs::describe(own_srs).label(),
                            e.MinX,
                            e.MinY,
                            e.MaxX,
                            e.MaxY,
                            srs::short(stated_crs.unwrap_or_default()),
                            srs::short(stated_crs.unwrap_or_default()),
                            path.display()
                        );
                    }
                    Ok(Some(stated))
                }
                None => Err(IngestError::LayerNotDegrees {
                    path: path.to_path_buf(),
                    layer: lyr.name(),
                    said: srs::describe(own_srs).label(),
                    extent: format!(
                        "{:.0}, {:.0} to {:.0}, {:.0}",
                        e.MinX, e.MinY, e.MaxX, e.MaxY
                    ),
                    hint: crs_hint(e.MinX, e.MinY, e.MaxX, e.MaxY),
                }),
            };
        }
    }
    match (own, stated) {
        (Some(own), Some(stated)) => {
            if say == Say::Log && !srs::same_crs(&own, &stated) {
                tracing::info!(
                    "{}: layer '{}' says its coordinates are in {}, and is read so ([parcels] \
                     crs, {}, is for layers that say none)",
                    path.display(),
                    lyr.name(),
                    srs::describe(&own).name,
                    srs::short(stated_crs.unwrap_or_default())
                );
            }
            Ok(Some(own))
        }
        (Some(own), None) => Ok(Some(own)),
        (None, Some(stated)) => Ok(Some(stated)),
        (None, None) => Err(IngestError::LayerNoCrs {
            path: path.to_path_buf(),
            layer: lyr.name(),
            hint: lyr
                .try_get_extent()
                .ok()
                .flatten()
                .map(|e| crs_hint(e.MinX, e.MinY, e.MaxX, e.MaxY))
                .unwrap_or_default(),
        }),
    }
}

/// What coordinates without a CRS look like, for the message refusing them: `; its coordinates
/// look like …` with the CRS they would be in China (CGCS2000), or empty when nothing can be
/// said.
///
/// Degrees of longitude and latitude; eastings that carry a Gauss-Krüger zone number in their
/// millions (3-degree zones 25–45, 6-degree zones 13–23, as Third Land Survey layers are
/// delivered) name their zone's CRS; eastings below 1,000 km, UTM or Gauss-Krüger without the
/// zone number, whose central meridian the numbers alone do not tell. Coordinates whose axes are
/// swapped — latitude before longitude, or northing before easting (X north and Y east, as
/// Chinese surveys write them) — are said to be, since no CRS read the usual way places them.
pub fn crs_hint(min_x: f64, min_y: f64, max_x: f64, max_y: f64) -> String {
    let finite = [min_x, min_y, max_x, max_y].iter().all(|v| v.is_finite());
    if !finite || min_x > max_x || min_y > max_y {
        return String::new();
    }
    let degrees = |min_lon: f64, min_lat: f64, max_lon: f64, max_lat: f64| {
        min_lon >= -180.0 && max_lon <= 180.0 && min_lat >= -90.0 && max_lat <= 90.0
    };
    const SWAP: &str = "no CRS reads them as they are: swap the two coordinates of every point \
                        first (QGIS: Processing, \"Swap X and Y coordinates\"; SpatiaLite or \
                        ogr2ogr -dialect SQLite: SwapCoords)";
    if degrees(min_x, min_y, max_x, max_y) {
        return "; its coordinates look like longitude and latitude in degrees (CGCS2000: \
                EPSG:4490; WGS 84: EPSG:4326)"
            .to_string();
    }
    if degrees(min_y, min_x, max_y, max_x) {
        return format!(
            "; its coordinates look like latitude and longitude in degrees (CGCS2000: \
             EPSG:4490; WGS 84: EPSG:4326) in that order, the axes swapped (GIS files give \
             longitude first); {SWAP}"
        );
    }
    // The Gauss-Krüger zone a range of eastings carries in its millions, if any, and its CRS.
    let zone_of = |min_e: f64, max_e: f64| -> Option<String> {
        let zone = (min_e / 1_000_000.0).floor();
        if zone != (max_e / 1_000_000.0).floor() {
            return None;
        }
        let z = zone as u32;
        if (25..=45).contains(&z) {
            return Some(format!(
                "the number {z} of a 3-degree Gauss-Krüger zone (CGCS2000 / 3-degree \
                 Gauss-Kruger zone {z}: EPSG:{}; older data of that zone: Xian 1980 EPSG:{}, \
                 Beijing 1954 EPSG:{})",
                4513 + z - 25,
                2349 + z - 25,
                2401 + z - 25
            ));
        }
        if (13..=23).contains(&z) {
            return Some(format!(
                "the number {z} of a 6-degree Gauss-Krüger zone (CGCS2000 / Gauss-Kruger zone \
                 {z}: EPSG:{}; older data of that zone: Xian 1980 EPSG:{}, Beijing 1954 \
                 EPSG:{})",
                4491 + z - 13,
                2327 + z - 13,
                21413 + z - 13
            ));
        }
        None
    };
    // Eastings of UTM or of Gauss-Krüger without the zone number: metres about the 500 km false
    // easting of the central meridian, within a zone's width.
    let plain_eastings = |min_e: f64, max_e: f64| min_e > 0.0 && max_e < 1_000_000.0;
    const PLAIN: &str = "UTM or Gauss-Krüger without the zone number in the eastings (CGCS2000 / \
                         3-degree Gauss-Kruger CM 75E to 135E: EPSG:4534 to EPSG:4554, e.g. \
                         EPSG:4549 for central meridian 120°E; WGS 84 / UTM zone 50N: \
                         EPSG:32650): the numbers do not tell the central meridian, but the \
                         imagery's CRS is most likely the one if it covers the same ground";
    // Northings (metres from the equator) of the northern hemisphere.
    let northings = |min_n: f64, max_n: f64| min_n >= 0.0 && max_n <= 10_000_000.0;
    if northings(min_y, max_y) {
        if let Some(zone) = zone_of(min_x, max_x) {
            return format!("; its eastings carry {zone}");
        }
        if plain_eastings(min_x, max_x) {
            return format!(
                "; its coordinates look like eastings and northings in metres of a transverse \
                 Mercator projection, {PLAIN}"
            );
        }
    }
    // Northing first: below the 10,000 km of the equator's false northing, and above the
    // eastings' millions (China lies from 2,000 km to 6,000 km north of the equator).
    if min_x >= 1_000_000.0 && max_x <= 10_000_000.0 {
        if let Some(zone) = zone_of(min_y, max_y) {
            return format!(
                "; its coordinates look like northings and eastings in that order (X north and \
                 Y east, as surveys write them; the axes swapped for a GIS file), the eastings \
                 carrying {zone}; {SWAP}"
            );
        }
        if plain_eastings(min_y, max_y) {
            return format!(
                "; its coordinates look like northings and eastings in metres in that order (X \
                 north and Y east, as surveys write them; the axes swapped for a GIS file), of \
                 {PLAIN}; {SWAP}"
            );
        }
    }
    String::new()
}

fn read_layer_of(
    ds: &Dataset,
    path: &Path,
    layer: Option<&str>,
    role: Option<&LayerRole<'_>>,
    stated_crs: Option<&str>,
    target_crs: &str,
) -> Result<VectorLayerData, IngestError> {
    let mut lyr = layer_for(ds, path, layer, role)?;
    let layer_name = lyr.name();
    let has_geometry = lyr.defn().geom_fields().count() > 0;
    let (source_crs, ct) = match layer_srs(&lyr, path, stated_crs)? {
        None => ("none (a table without geometry)".to_string(), None),
        Some(src_srs) => {
            let target = srs::parse_crs(target_crs).map_err(|e| IngestError::Crs {
                path: path.to_path_buf(),
                detail: format!("working CRS '{target_crs}': {e}"),
            })?;
            let ct = srs::transform(&src_srs, &target).map_err(|e| IngestError::Crs {
                path: path.to_path_buf(),
                detail: format!("cannot transform layer {layer_name} to {target_crs}: {e}"),
            })?;
            if let Some(problem) = srs::legacy_datum_problem(&src_srs, &target) {
                tracing::warn!(
                    "{}: layer '{layer_name}' into {}: {problem}",
                    path.display(),
                    srs::short(target_crs)
                );
            }
            (srs::describe(&src_srs).label(), Some(ct))
        }
    };
    let field_names: Vec<String> = lyr.defn().fields().map(|f| f.name()).collect();
    // A date that is none would read as NULL, an open end of a permit's validity: it is read as
    // the text it is instead, for the permit to be rejected as one whose date is not a date.
    // GDAL reads some as numbers that make no date (a Shapefile's `01122026`, day first, is
    // year 112, month 20); a GeoPackage keeps a missing value as NULL, and leaves one it cannot
    // read (`15.01.2026`, `待定` in a DATE column) unset.
    let gpkg = ds.driver().short_name() == "GPKG";
    let dates: Vec<bool> = lyr
        .defn()
        .fields()
        .map(|f| {
            matches!(
                f.field_type(),
                gdal::vector::OGRFieldType::OFTDate | gdal::vector::OGRFieldType::OFTDateTime
            )
        })
        .collect();
    let mut unreadable: Vec<(usize, usize)> = Vec::new();
    let mut features = Vec::new();
    // A Shapefile keeps numbers as text: one whose numeric column holds `是` or `Y` is read by
    // GDAL as 0, with only a warning, which is kept to read the value as the text it is.
    super::keep_partly_parsed(true);
    // Per numeric field holding text (read as the text): how many features, and the first's
    // id and value, for one warning per field.
    let mut held_as_text: BTreeMap<String, (usize, Option<u64>, String)> = BTreeMap::new();
    for f in lyr.features() {
        let fid = f.fid();
        let as_text: Vec<(usize, String)> = super::take_partly_parsed()
            .iter()
            .filter_map(|m| partly_parsed_value(m, &layer_name, &field_names))
            .collect();
        let mut attributes = BTreeMap::new();
        for (i, name) in field_names.iter().enumerate() {
            if let Some((_, raw)) = as_text.iter().find(|(k, _)| *k == i) {
                let seen = held_as_text
                    .entry(name.clone())
                    .or_insert((0, fid, raw.clone()));
                seen.0 += 1;
                attributes.insert(name.clone(), Value::from(raw.clone()));
                continue;
            }
            let value = match f.field(i) {
                Err(gdal::errors::GdalError::DateError(_)) if dates[i] => f
                    .field_as_string(i)
                    .ok()
                    .flatten()
                    .map_or(Value::Null, Value::from),
                Err(_) if gpkg && dates[i] => {
                    unreadable.push((features.len(), i));
                    Value::Null
                }
                v => field_value(v.ok().flatten()),
            };
            attributes.insert(name.clone(), value);
        }
        let (mut repaired, mut rejected, mut pin) = (None, None, None);
        let geometry = match f.geometry() {
            None => {
                rejected = Some("no geometry".to_string());
                None
            }
            Some(g) if g.is_empty() => {
                rejected = Some("empty geometry".to_string());
                None
            }
            Some(g) => {
                let mut g: Geometry = g.clone();
                // Heights and measures (a "Polygon Z" of a CAD or survey export) play no part in
                // a plan's outlines; arcs become straight segments.
                g.flatten_to_2d();
                if let Some(lin) = crate::gdal_ext::linearised(&g) {
                    g = lin;
                }
                // An unclosed ring is closed (a GeoJSON or GeoPackage writer's slip, which
                // MakeValid does not repair), then whatever else is invalid is made valid.
                let closed = crate::gdal_ext::close_rings(&mut g);
                if closed {
                    repaired = Some(
                        "an unclosed ring closed (its first point repeated at its end)".to_string(),
                    );
                }
                if !g.is_valid() {
                    let first = if closed {
                        "an unclosed ring closed, then "
                    } else {
                        ""
                    };
                    match g.make_valid(&Default::default()) {
                        Ok(v) if v.is_valid() && !v.is_empty() => {
                            repaired = Some(format!(
                                "{first}invalid geometry (a self-intersecting ring, say) repaired with MakeValid"
                            ));
                            g = v;
                        }
                        _ => {
                            repaired = None;
                            rejected = Some(format!(
                                "{first}invalid geometry that MakeValid cannot repair"
                            ))
                        }
                    }
                }
                let transformed = match &ct {
                    _ if rejected.is_some() => Ok(()),
                    Some(ct) => g.transform_inplace(ct).map_err(|e| e.to_string()),
                    None => Err("the layer has no CRS".to_string()),
                };
                if rejected.is_some() {
                    None
                } else if let Err(e) = transformed {
                    rejected = Some(format!("cannot be transformed to {target_crs}: {e}"));
                    None
                } else {
                    match g.to_geo() {
                        Ok(geo_g) => match without_area(&geo_g) {
                            // A point or a line: no outline, but a place (a register's pin).
                            Some(what) => {
                                rejected = Some(format!("{what}, not an outline (a polygon)"));
                                pin = geo::InteriorPoint::interior_point(&geo_g)
                                    .map(|at| Pin { what, at });
                                None
                            }
                            None => {
                                let polys = polygons_of(geo_g);
                                if polys.is_empty() {
                                    rejected = Some(
                                        "a geometry without area, not an outline (a polygon)"
                                            .to_string(),
                                    );
                                    None
                                } else {
                                    Some(geo::MultiPolygon::new(polys))
                                }
                            }
                        },
                        Err(e) => {
                            rejected = Some(format!("unreadable geometry: {e}"));
                            None
                        }
                    }
                }
            }
        };
        features.push(VectorFeature {
            fid,
            geometry,
            attributes,
            repaired,
            rejected,
            pin,
        });
    }
    // SQLite keeps whatever a row holds, whatever its column's declared type: a GeoPackage's
    // INTEGER or BOOLEAN column may hold `是`, `Y` or `true` as text, which GDAL reads as 0
    // without a word — a basic-farmland flag `是` read as "no". Such values are read as the text
    // they are, for the reader of the attribute to understand or refuse.
    if gpkg || ds.driver().short_name() == "SQLite" {
        let numeric: Vec<usize> = lyr
            .defn()
            .fields()
            .enumerate()
            .filter(|(_, f)| {
                matches!(
                    f.field_type(),
                    gdal::vector::OGRFieldType::OFTInteger
                        | gdal::vector::OGRFieldType::OFTInteger64
                        | gdal::vector::OGRFieldType::OFTReal
                )
            })
            .map(|(i, _)| i)
            .collect();
        let at: std::collections::HashMap<u64, usize> = features
            .iter()
            .enumerate()
            .filter_map(|(k, f)| Some((f.fid?, k)))
            .collect();
        for (fid, i, raw) in text_in_numeric_columns(ds, &layer_name, &field_names, &numeric) {
            let Some(&k) = at.get(&fid) else { continue };
            let name = &field_names[i];
            let seen = held_as_text
                .entry(name.clone())
                .or_insert((0, Some(fid), raw.clone()));
            seen.0 += 1;
            features[k]
                .attributes
                .insert(name.clone(), Value::from(raw));
        }
    }
    super::keep_partly_parsed(false);
    for (name, (count, fid, raw)) in held_as_text {
        tracing::warn!(
            "{} layer {layer_name}: field {name} is declared a number, but {count} feature(s) \
             hold text in it (feature {}: '{raw}'), which GDAL would read as a number (0) or \
             nothing; read as the text written",
            path.display(),
            fid.map_or("?".to_string(), |f| f.to_string())
        );
    }
    for (k, i) in unreadable {
        let Some(fid) = features[k].fid else { continue };
        let raw = raw_text(ds, &layer_name, &field_names[i], fid)
            .unwrap_or_else(|| "(a value GDAL cannot read as a date)".to_string());
        features[k]
            .attributes
            .insert(field_names[i].clone(), Value::from(raw));
    }
    Ok(VectorLayerData {
        path: path.to_path_buf(),
        layer: layer_name,
        source_crs,
        has_geometry,
        fields: field_names,
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gdal::vector::{LayerOptions, OGRwkbGeometryType};
    use geo::Area;

    #[test]
    fn coordinates_without_a_crs_are_said_to_look_like_what_they_are() {
        let hint = |b: [f64; 4]| crs_hint(b[0], b[1], b[2], b[3]);
        assert!(hint([120.1, 31.0, 120.4, 31.2]).contains("EPSG:4490"));
        // A Third Land Survey layer of zone 40 (120°E), and one of 6-degree zone 20 (117°E).
        let z40 = hint([40_561_157.5, 3_448_837.5, 40_561_658.5, 3_449_338.5]);
        assert!(z40.contains("zone 40: EPSG:4528"), "{z40}");
        assert!(
            z40.contains("Xian 1980 EPSG:2364, Beijing 1954 EPSG:2416"),
            "{z40}"
        );
        let z20 = hint([20_400_000.0, 3_400_000.0, 20_500_000.0, 3_500_000.0]);
        assert!(z20.contains("Gauss-Kruger zone 20: EPSG:4498"), "{z20}");
        assert!(
            z20.contains("Xian 1980 EPSG:2334, Beijing 1954 EPSG:21420"),
            "{z20}"
        );
        let plain = hint([561_157.5, 3_448_837.5, 561_658.5, 3_449_338.5]);
        for part in [
            "eastings and northings in metres",
            "UTM or Gauss-Krüger",
            "EPSG:4549 for central meridian 120°E",
            "UTM zone 50N: EPSG:32650",
            "the imagery's CRS",
        ] {
            assert!(plain.contains(part), "{part}: {plain}");
        }
        assert!(!plain.contains("swap"), "{plain}");
        // Latitude first (a spreadsheet's columns in the order people say them), and northing
        // first (X north, Y east, as Chinese surveys write them), with and without the zone
        // number: the axes are swapped, which no CRS mends. (Latitude first was taken for
        // metres of a transverse Mercator projection.)
        let lat_lon = hint([31.0, 120.1, 31.2, 120.4]);
        assert!(
            lat_lon.contains("latitude and longitude") && lat_lon.contains("EPSG:4490"),
            "{lat_lon}"
        );
        let north_east = hint([3_448_837.5, 561_157.5, 3_449_338.5, 561_658.5]);
        assert!(
            north_east.contains("northings and eastings"),
            "{north_east}"
        );
        let north_zone = hint([3_448_837.5, 40_561_157.5, 3_449_338.5, 40_561_658.5]);
        assert!(north_zone.contains("zone 40: EPSG:4528"), "{north_zone}");
        for swapped in [&lat_lon, &north_east, &north_zone] {
            assert!(swapped.contains("Swap X and Y coordinates"), "{swapped}");
            assert!(!swapped.contains("transverse Mercator"), "{swapped}");
        }
        // Across two zones' numbers, south of the equator, nothing, or no extent: nothing said.
        for b in [
            [39_900_000.0, 3e6, 40_100_000.0, 3.1e6],
            [500_000.0, -3e6, 501_000.0, -2.9e6],
            [f64::NAN, 0.0, 1.0, 1.0],
            [2e6, 3e6, 1e6, 3.1e6],
        ] {
            assert_eq!(hint(b), "", "{b:?}");
        }
    }

    /// A new, empty GeoPackage `file` in `dir`, and the CRS its test layers are in (EPSG:4549).
    /// A new layer of polygons `name` in `ds`, in `srs`.
    fn polygon_layer<'a>(
        ds: &'a mut Dataset,
        name: &str,
        srs: Option<&SpatialRef>,
    ) -> gdal::vector::Layer<'a> {
        ds.create_layer(LayerOptions {
            name,
            srs,
            ty: OGRwkbGeometryType::wkbPolygon,
            options: None,
        })
        .unwrap()
    }

    fn new_gpkg(dir: &Path, file: &str) -> (PathBuf, Dataset, SpatialRef) {
        super::super::init_gdal();
        let path = dir.join(file);
        let drv = gdal::DriverManager::get_driver_by_name("GPKG").unwrap();
        let ds = drv.create_vector_only(&path).unwrap();
        (path, ds, SpatialRef::from_epsg(4549).unwrap())
    }

    /// A Shapefile of one square at (x, y) with the CRS `epsg`, or none (no `.prj`).
    fn square_shapefile(dir: &Path, name: &str, epsg: Option<u32>, x: f64, y: f64) -> PathBuf {
        super::super::init_gdal();
        let path = dir.join(format!("{name}.shp"));
        let drv = gdal::DriverManager::get_driver_by_name("ESRI Shapefile").unwrap();
        let mut ds = drv.create_vector_only(&path).unwrap();
        let srs = epsg.map(|c| SpatialRef::from_epsg(c).unwrap());
        let layer = polygon_layer(&mut ds, name, srs.as_ref());
        let wkt = format!(
            "POLYGON (({x} {y}, {} {y}, {} {}, {x} {}, {x} {y}))",
            x + 10.0,
            x + 10.0,
            y + 10.0,
            y + 10.0
        );
        let mut f = gdal::vector::Feature::new(layer.defn()).unwrap();
        f.set_geometry(Geometry::from_wkt(&wkt).unwrap()).unwrap();
        f.create(&layer).unwrap();
        path
    }

    #[test]
    fn a_geojson_of_metres_without_its_crs_member_is_not_taken_for_degrees() {
        // GDAL takes a GeoJSON file without a `crs` member for WGS 84: projected coordinates
        // written so (an export that dropped the member) are no degrees, and every feature
        // failed to be transformed, each rejected with GDAL's error number.
        super::super::init_gdal();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("parcels.geojson");
        std::fs::write(
            &path,
            r#"{"type": "FeatureCollection", "features": [{"type": "Feature",
            "properties": {"parcel_id": "A"}, "geometry": {"type": "Polygon", "coordinates":
            [[[561200, 3449000], [561210, 3449000], [561210, 3449010], [561200, 3449000]]]}}]}"#,
        )
        .unwrap();
        let e = read_layer(&path, None, None, "EPSG:4549").unwrap_err();
        let text = e.to_string();
        for part in [
            "parcels.geojson",
            "layer 'parcels'",
            "`crs` member",
            "561200, 3449000 to 561210, 3449010",
            "EPSG:4549 for central meridian 120°E",
            "--parcels-crs",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(
            crate::ingest::plan::vector_crs(&path, None, None).is_err(),
            "the grid's CRS comes from the same rule"
        );
        // Stated, it is read in that CRS.
        let read = read_layer(&path, None, Some("EPSG:4549"), "EPSG:4549").unwrap();
        let g = read.features[0].geometry.as_ref().unwrap();
        assert_eq!(
            g.0[0].exterior().0[0],
            geo::coord! { x: 561_200.0, y: 3_449_000.0 }
        );
        // Degrees are degrees.
        let degrees = dir.path().join("degrees.geojson");
        std::fs::write(
            &degrees,
            std::fs::read_to_string(&path)
                .unwrap()
                .replace("561200", "120.64")
                .replace("561210", "120.65")
                .replace("3449000", "31.16")
                .replace("3449010", "31.17"),
        )
        .unwrap();
        assert!(read_layer(&degrees, None, None, "EPSG:4549")
            .unwrap()
            .features[0]
            .geometry
            .is_some());
    }

    #[test]
    fn a_layer_without_a_crs_is_read_in_the_stated_one_and_one_with_its_own_in_that() {
        let dir = tempfile::tempdir().unwrap();
        // Zone 40's false easting is 40,500 km where CM 120E's is 500 km: the same place.
        let no_prj = square_shapefile(dir.path(), "dltb", None, 40_561_200.0, 3_449_000.0);
        assert!(!no_prj.with_extension("prj").exists());
        let e = read_layer(&no_prj, None, None, "EPSG:4549").unwrap_err();
        assert!(matches!(e, IngestError::LayerNoCrs { .. }), "{e}");
        let text = e.to_string();
        for part in [
            "dltb.shp",
            "layer 'dltb'",
            "EPSG:4528",
            "[parcels] crs",
            "--parcels-crs",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert_eq!(e.kind(), "no_crs");
        let stated = read_layer(&no_prj, None, Some("EPSG:4528"), "EPSG:4549").unwrap();
        let own_prj = square_shapefile(dir.path(), "own", Some(4549), 561_200.0, 3_449_000.0);
        // A file that says its CRS is read in it, whatever is stated for those that do not.
        let own = read_layer(&own_prj, None, Some("EPSG:4528"), "EPSG:4549").unwrap();
        let corner = |d: &VectorLayerData| {
            let g = d.features[0].geometry.as_ref().unwrap();
            let c = g.0[0].exterior().0[0];
            (c.x, c.y)
        };
        let (a, b) = (corner(&stated), corner(&own));
        assert!(
            (a.0 - 561_200.0).abs() < 1e-6 && (a.1 - 3_449_000.0).abs() < 1e-6,
            "{a:?}"
        );
        assert!(
            (b.0 - a.0).abs() < 1e-6 && (b.1 - a.1).abs() < 1e-6,
            "{b:?}"
        );
        // The grid's CRS comes from the same rule.
        let crs = |p: &Path, s| crate::ingest::plan::vector_crs(p, None, s).unwrap();
        assert_eq!(crs(&no_prj, Some("EPSG:4528")), "EPSG:4528");
        assert_eq!(crs(&own_prj, Some("EPSG:4528")), "EPSG:4549");
        assert!(crate::ingest::plan::vector_crs(&no_prj, None, None).is_err());
        let bad = read_layer(&no_prj, None, Some("EPSG:999999"), "EPSG:4549").unwrap_err();
        assert!(
            bad.to_string().contains("[parcels] crs 'EPSG:999999'"),
            "{bad}"
        );
    }

    #[test]
    fn a_file_of_several_layers_is_read_by_the_layer_named_for_the_role_or_refused() {
        // A GeoPackage whose first layer is empty, then parcels and permits (and QGIS's styles).
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ds, srs) = new_gpkg(dir.path(), "several.gpkg");
        for (name, n) in [("empty", 0), ("parcels", 2), ("permits", 1)] {
            let layer = polygon_layer(&mut ds, name, Some(&srs));
            for i in 0..n {
                let x = 500_000.0 + 20.0 * f64::from(i);
                let wkt = format!(
                    "POLYGON (({x} 3400000, {} 3400000, {} 3400010, {x} 3400010, {x} 3400000))",
                    x + 10.0,
                    x + 10.0
                );
                let mut f = gdal::vector::Feature::new(layer.defn()).unwrap();
                f.set_geometry(Geometry::from_wkt(&wkt).unwrap()).unwrap();
                f.create(&layer).unwrap();
            }
        }
        drop(ds);
        let read =
            |role: Option<&LayerRole<'_>>| read_layer_as(&path, None, role, None, "EPSG:4549");
        // Without a role, the first (as the truth of `eval` is read); with one, its layer.
        assert!(read(None).is_ok());
        assert_eq!(read(Some(&PARCELS_ROLE)).unwrap().features.len(), 2);
        assert_eq!(read(Some(&PERMITS_ROLE)).unwrap().layer, "permits");
        // A named layer is read whatever the role.
        let named = read_layer_as(&path, Some("empty"), Some(&PERMITS_ROLE), None, "EPSG:4549");
        assert!(named.unwrap().features.is_empty());
        // No layer named for the role: refused, naming the layers and how to name one.
        let control = LayerRole {
            what: "eco_redline control layer",
            names: &["eco_redline"],
            naming: "layer in its [[parcels.control]] entry of the config",
        };
        let e = read(Some(&control)).unwrap_err();
        assert_eq!(e.kind(), "several_layers");
        let text = e.to_string();
        for part in [
            "several.gpkg",
            "'empty': 0 features",
            "'parcels': 2 features",
            "'permits': 1 feature,",
            "eco_redline control layer",
            "[[parcels.control]]",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        // The parcels' CRS is that of the layer read.
        let crs = crate::ingest::plan::vector_crs_as(&path, None, Some(&PARCELS_ROLE), None);
        assert_eq!(crs.unwrap(), "EPSG:4549");
    }

    #[test]
    fn an_unclosed_ring_is_closed_and_said_so() {
        super::super::init_gdal();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unclosed.geojson");
        // A 10 m square whose ring stops short of its first point; a bow-tie, also unclosed.
        let ring = "[[500000,3400000],[500010,3400000],[500010,3400010],[500000,3400010]]";
        let bowtie = "[[500020,3400000],[500030,3400010],[500030,3400000],[500020,3400010]]";
        let feature = |r: &str| {
            format!(
                r#"{{"type":"Feature","properties":{{}},"geometry":{{"type":"Polygon","coordinates":[{r}]}}}}"#
            )
        };
        std::fs::write(
            &path,
            format!(
                r#"{{"type":"FeatureCollection","crs":{{"type":"name","properties":{{"name":"urn:ogc:def:crs:EPSG::4549"}}}},"features":[{},{}]}}"#,
                feature(ring),
                feature(bowtie)
            ),
        )
        .unwrap();
        let data = read_layer(&path, None, None, "EPSG:4549").unwrap();
        let f = &data.features[0];
        assert!(f.rejected.is_none(), "{:?}", f.rejected);
        assert_eq!(
            f.repaired.as_deref(),
            Some("an unclosed ring closed (its first point repeated at its end)")
        );
        assert!((f.geometry.as_ref().unwrap().unsigned_area() - 100.0).abs() < 1e-6);
        let f = &data.features[1];
        assert!(f.rejected.is_none(), "{:?}", f.rejected);
        let why = f.repaired.as_deref().unwrap();
        assert!(
            why.starts_with("an unclosed ring closed, then invalid geometry")
                && why.contains("MakeValid"),
            "{why}"
        );
        assert!((f.geometry.as_ref().unwrap().unsigned_area() - 50.0).abs() < 1e-6);
    }

    #[test]
    fn a_date_gdal_cannot_read_is_read_as_its_text_not_as_null() {
        // GDAL leaves a GeoPackage DATE value it cannot parse unset, which read as NULL: a permit whose
        // valid_from is `15.01.2026` was valid since ever. A NULL stays NULL (an open end).
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ds, srs) = new_gpkg(dir.path(), "permits.gpkg");
        let layer = polygon_layer(&mut ds, "permits", Some(&srs));
        layer
            .create_defn_fields(&[("valid_from", gdal::vector::OGRFieldType::OFTDate)])
            .unwrap();
        for _ in 0..3 {
            let mut f = gdal::vector::Feature::new(layer.defn()).unwrap();
            f.set_field_string(0, "2026-01-15").unwrap();
            f.create(&layer).unwrap();
        }
        for sql in [
            "UPDATE permits SET valid_from = '15.01.2026' WHERE fid = 1",
            "UPDATE permits SET valid_from = NULL WHERE fid = 2",
        ] {
            ds.execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT)
                .unwrap();
        }
        drop(ds);
        let data = read_layer(&path, None, None, "EPSG:4549").unwrap();
        let dates: Vec<&Value> = data
            .features
            .iter()
            .map(|f| &f.attributes["valid_from"])
            .collect();
        assert_eq!(
            dates,
            [
                &Value::from("15.01.2026"),
                &Value::Null,
                &Value::from("2026-01-15")
            ]
        );
        // A Shapefile's date written day first (01122026) is read by GDAL as year 112, month 20:
        // no date, read as GDAL shows it.
        let shp = dir.path().join("register.shp");
        let drv = gdal::DriverManager::get_driver_by_name("ESRI Shapefile").unwrap();
        {
            let mut ds = drv.create_vector_only(&shp).unwrap();
            let layer = polygon_layer(&mut ds, "register", Some(&srs));
            layer
                .create_defn_fields(&[("valid_from", gdal::vector::OGRFieldType::OFTDate)])
                .unwrap();
            let mut f = gdal::vector::Feature::new(layer.defn()).unwrap();
            f.set_field_string(0, "2026-12-01").unwrap();
            f.set_geometry(
                Geometry::from_wkt(
                    "POLYGON ((561200 3449000, 561210 3449000, 561210 3449010, 561200 3449000))",
                )
                .unwrap(),
            )
            .unwrap();
            f.create(&layer).unwrap();
        }
        let dbf = shp.with_extension("dbf");
        let bytes = std::fs::read(&dbf).unwrap();
        let at = bytes.windows(8).position(|w| w == b"20261201").unwrap();
        let mut day_first = bytes.clone();
        day_first[at..at + 8].copy_from_slice(b"01122026");
        std::fs::write(&dbf, day_first).unwrap();
        let data = read_layer(&shp, None, None, "EPSG:4549").unwrap();
        assert_eq!(
            data.features[0].attributes["valid_from"],
            Value::from("0112/20/26")
        );
    }

    #[test]
    fn text_in_a_geopackage_s_integer_or_boolean_column_is_read_as_written() {
        // SQLite keeps text in a column declared INTEGER or BOOLEAN; GDAL reads it as 0, so a
        // basic-farmland flag `是` read as "no" would hide a protected parcel.
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ds, srs) = new_gpkg(dir.path(), "parcels.gpkg");
        let layer = polygon_layer(&mut ds, "parcels", Some(&srs));
        layer
            .create_defn_fields(&[
                ("basic_farmland", gdal::vector::OGRFieldType::OFTInteger),
                ("area", gdal::vector::OGRFieldType::OFTReal),
            ])
            .unwrap();
        crate::gdal_ext::add_boolean_field(&layer, "eco_redline").unwrap();
        for _ in 0..4 {
            let mut f = gdal::vector::Feature::new(layer.defn()).unwrap();
            f.set_field_integer(0, 1).unwrap();
            f.set_field_double(1, 12.5).unwrap();
            f.set_field_integer(2, 0).unwrap();
            f.create(&layer).unwrap();
        }
        for sql in [
            "UPDATE parcels SET basic_farmland = '是', eco_redline = 'Y' WHERE fid = 1",
            "UPDATE parcels SET basic_farmland = '否', area = 'n/a' WHERE fid = 2",
            "UPDATE parcels SET eco_redline = 'true', basic_farmland = NULL WHERE fid = 3",
        ] {
            ds.execute_sql(sql, None, gdal::vector::sql::Dialect::DEFAULT)
                .unwrap();
        }
        drop(ds);
        let data = read_layer(&path, None, None, "EPSG:4549").unwrap();
        let row = |k: usize| {
            let a = &data.features[k].attributes;
            [&a["basic_farmland"], &a["eco_redline"], &a["area"]].map(Value::clone)
        };
        assert_eq!(
            row(0),
            [Value::from("是"), Value::from("Y"), Value::from(12.5)]
        );
        assert_eq!(
            row(1),
            [Value::from("否"), Value::from(0), Value::from("n/a")]
        );
        assert_eq!(
            row(2),
            [Value::Null, Value::from("true"), Value::from(12.5)]
        );
        assert_eq!(row(3), [Value::from(1), Value::from(0), Value::from(12.5)]);
    }

    #[test]
    fn text_in_a_shapefile_s_numeric_column_is_read_as_written() {
        // A Shapefile keeps numbers as text, and GDAL reads `是` in a numeric column as 0, with a
        // warning only: the basic-farmland flag read as "no".
        super::super::init_gdal();
        let dir = tempfile::tempdir().unwrap();
        let shp = dir.path().join("parcels.shp");
        let drv = gdal::DriverManager::get_driver_by_name("ESRI Shapefile").unwrap();
        {
            let mut ds = drv.create_vector_only(&shp).unwrap();
            let srs = SpatialRef::from_epsg(4549).unwrap();
            let layer = ds
                .create_layer(LayerOptions {
                    name: "parcels",
                    srs: Some(&srs),
                    ty: OGRwkbGeometryType::wkbPolygon,
                    options: Some(&["ENCODING=UTF-8"]),
                })
                .unwrap();
            layer
                .create_defn_fields(&[("basic_farm", gdal::vector::OGRFieldType::OFTString)])
                .unwrap();
            for (k, v) in ["是", "1", "Y", "0", ""].into_iter().enumerate() {
                let x = 561200.0 + 20.0 * k as f64;
                let mut f = gdal::vector::Feature::new(layer.defn()).unwrap();
                f.set_field_string(0, v).unwrap();
                f.set_geometry(
                    Geometry::from_wkt(&format!(
                        "POLYGON (({x} 3449000, {} 3449000, {} 3449010, {x} 3449000))",
                        x + 10.0,
                        x + 10.0
                    ))
                    .unwrap(),
                )
                .unwrap();
                f.create(&layer).unwrap();
            }
        }
        // The column declared numeric (N) instead of character (C), its values as they were.
        let dbf = shp.with_extension("dbf");
        let mut bytes = std::fs::read(&dbf).unwrap();
        assert_eq!(&bytes[32..42], b"basic_farm");
        assert_eq!(bytes[43], b'C');
        bytes[43] = b'N';
        std::fs::write(&dbf, bytes).unwrap();
        let data = read_layer(&shp, None, None, "EPSG:4549").unwrap();
        let values: Vec<&Value> = data
            .features
            .iter()
            .map(|f| &f.attributes["basic_farm"])
            .collect();
        assert!(
            matches!(values[..], [a, b, c, d, e] if a.as_str() == Some("是")
                && b.as_f64() == Some(1.0)
                && c.as_str() == Some("Y")
                && d.as_f64() == Some(0.0)
                && e.is_null()),
            "{values:?}"
        );
    }

    #[test]
    fn heights_are_dropped_and_arcs_become_segments() {
        // Outlines as CAD, survey and ArcGIS exports hold them: a polygon with heights, a circle
        // of arcs (r = 10), and a multi-surface of half a disc (r = 5) closed by a straight edge.
        let dir = tempfile::tempdir().unwrap();
        let (path, mut ds, srs) = new_gpkg(dir.path(), "outlines.gpkg");
        let layer = ds
            .create_layer(LayerOptions {
                name: "outlines",
                srs: Some(&srs),
                ty: OGRwkbGeometryType::wkbUnknown,
                options: None,
            })
            .unwrap();
        for wkt in [
            "POLYGON Z ((500000 3400000 5, 500010 3400000 5, 500010 3400010 5, 500000 3400010 5, 500000 3400000 5))",
            "CURVEPOLYGON (CIRCULARSTRING (500020 3400000, 500040 3400000, 500020 3400000))",
            "MULTISURFACE (CURVEPOLYGON (COMPOUNDCURVE (CIRCULARSTRING (500050 3400000, 500055 3400005, 500060 3400000), (500060 3400000, 500050 3400000))))",
        ] {
            let mut f = gdal::vector::Feature::new(layer.defn()).unwrap();
            f.set_geometry(Geometry::from_wkt(wkt).unwrap()).unwrap();
            f.create(&layer).unwrap();
        }
        drop(ds);
        let data = read_layer(&path, None, None, "EPSG:4549").unwrap();
        let areas: Vec<f64> = data
            .features
            .iter()
            .map(|f| {
                assert!(f.rejected.is_none(), "{:?}", f.rejected);
                f.geometry.as_ref().unwrap().unsigned_area()
            })
            .collect();
        let circle = std::f64::consts::PI * 100.0;
        assert!((areas[0] - 100.0).abs() < 1e-6, "{areas:?}");
        assert!((areas[1] / circle - 1.0).abs() < 0.005, "{areas:?}");
        assert!((areas[2] / (circle / 8.0) - 1.0).abs() < 0.005, "{areas:?}");
    }
}
