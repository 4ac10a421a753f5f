//! Reading vector layers (parcels, control layers, permits) through OGR: any format GDAL reads
//! (GeoPackage, Shapefile, GeoJSON, FileGDB …), reprojected to the working CRS, invalid geometries
//! repaired (`MakeValid`) or reported, attributes as JSON values.

use super::srs;
use super::IngestError;
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

/// Opens a vector file read-only, saying plainly when there is no file or GDAL cannot read it.
pub fn open_vector(path: &Path) -> Result<Dataset, IngestError> {
    super::init_gdal();
    if !path.exists() && !path.to_string_lossy().starts_with("/vsi") {
        return Err(IngestError::NotFound {
            path: path.to_path_buf(),
        });
    }
    Dataset::open_ex(
        path,
        DatasetOptions {
            open_flags: GdalOpenFlags::GDAL_OF_VECTOR | GdalOpenFlags::GDAL_OF_READONLY,
            ..Default::default()
        },
    )
    .map_err(|e| IngestError::NotOpenableVector {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// The named layer of a vector file, else its first, naming the layers there are when it has
/// not the one asked for.
pub fn layer_of<'a>(
    ds: &'a Dataset,
    path: &Path,
    layer: Option<&str>,
) -> Result<gdal::vector::Layer<'a>, IngestError> {
    match layer {
        Some(name) => ds.layer_by_name(name).map_err(|_| {
            let names: Vec<String> = ds.layers().map(|l| l.name()).collect();
            IngestError::NoLayer {
                path: path.to_path_buf(),
                detail: format!("no layer '{name}' (layers: {})", names.join(", ")),
            }
        }),
        None => ds.layer(0).map_err(|e| IngestError::NoLayer {
            path: path.to_path_buf(),
            detail: format!("no layer: {e}"),
        }),
    }
}

/// Reads one layer (the named one, else the first) into the working CRS.
pub fn read_layer(
    path: &Path,
    layer: Option<&str>,
    target_crs: &str,
) -> Result<VectorLayerData, IngestError> {
    let ds = open_vector(path)?;
    let mut lyr = layer_of(&ds, path, layer)?;
    let layer_name = lyr.name();
    let src_srs = lyr.spatial_ref().ok_or_else(|| IngestError::NoCrs {
        path: path.to_path_buf(),
    })?;
    let source_crs = srs::describe(&src_srs).label();
    let target = srs::parse_crs(target_crs).map_err(|e| IngestError::Crs {
        path: path.to_path_buf(),
        detail: format!("working CRS '{target_crs}': {e}"),
    })?;
    let ct = srs::transform(&src_srs, &target).map_err(|e| IngestError::Crs {
        path: path.to_path_buf(),
        detail: format!("cannot transform layer {layer_name} to {target_crs}: {e}"),
    })?;
    let field_names: Vec<String> = lyr.defn().fields().map(|f| f.name()).collect();
    let mut features = Vec::new();
    for f in lyr.features() {
        let fid = f.fid();
        let mut attributes = BTreeMap::new();
        for (i, name) in field_names.iter().enumerate() {
            attributes.insert(name.clone(), field_value(f.field(i).ok().flatten()));
        }
        let (mut repaired, mut rejected) = (None, None);
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
                if !g.is_valid() {
                    match g.make_valid(&Default::default()) {
                        Ok(v) if v.is_valid() && !v.is_empty() => {
                            repaired = Some("invalid geometry (self-intersection or unclosed ring) repaired with MakeValid".to_string());
                            g = v;
                        }
                        _ => {
                            rejected =
                                Some("invalid geometry that MakeValid cannot repair".to_string())
                        }
                    }
                }
                if rejected.is_some() {
                    None
                } else if let Err(e) = g.transform_inplace(&ct) {
                    rejected = Some(format!("cannot be transformed to {target_crs}: {e}"));
                    None
                } else {
                    match g.to_geo() {
                        Ok(geo_g) => {
                            let polys = polygons_of(geo_g);
                            if polys.is_empty() {
                                rejected = Some("not a polygon".to_string());
                                None
                            } else {
                                Some(geo::MultiPolygon::new(polys))
                            }
                        }
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
        });
    }
    Ok(VectorLayerData {
        path: path.to_path_buf(),
        layer: layer_name,
        source_crs,
        features,
    })
}
