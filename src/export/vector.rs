//! Vector writing through OGR: GeoPackage (and any other OGR format) layers of polygons with
//! typed attributes.

use super::{commit, gdal_err, temp_path, ExportError};
use crate::ingest::srs;
use chrono::NaiveDate;
use gdal::vector::{
    FieldDefn, FieldValue, LayerAccess, LayerOptions, OGRFieldType, OGRwkbGeometryType, ToGdal,
};
use gdal::DriverManager;
use std::path::Path;

/// The type of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// UTF-8 text.
    Text,
    /// 64-bit integer.
    Integer,
    /// Double.
    Real,
    /// True/false.
    Boolean,
    /// Calendar date.
    Date,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// Integer.
    Integer(i64),
    /// Real number.
    Real(f64),
    /// Boolean.
    Boolean(bool),
    /// Date.
    Date(NaiveDate),
    /// No value.
    Null,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Self {
        s.map(Value::Text).unwrap_or(Value::Null)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Value::Date(v)
    }
}

/// A layer to write: its name, CRS, attribute schema and features.
#[derive(Debug, Clone)]
pub struct VectorLayer {
    /// Layer name.
    pub name: String,
    /// CRS as `EPSG:xxxx` or WKT.
    pub crs: String,
    /// Attribute names and types, in order.
    pub fields: Vec<(String, FieldKind)>,
    /// Geometries with one value per field.
    pub features: Vec<(geo::Geometry<f64>, Vec<Value>)>,
}

/// Writes layers into a new vector file with an OGR driver (`GPKG`, `ESRI Shapefile`, …),
/// atomically. `timestamp` pins the GeoPackage's last-change time (for byte-identical output).
pub fn write_vector(
    path: &Path,
    driver_name: &str,
    layers: &[VectorLayer],
    timestamp: Option<&str>,
) -> Result<(), ExportError> {
    crate::ingest::init_gdal();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(super::io_err(dir))?;
    }
    let tmp = temp_path(path);
    let _ = std::fs::remove_file(&tmp);
    let e = gdal_err(path);
    if let Some(ts) = timestamp {
        gdal::config::set_thread_local_config_option("OGR_CURRENT_DATE", ts).map_err(&e)?;
    }
    let result = (|| {
        let driver = DriverManager::get_driver_by_name(driver_name).map_err(&e)?;
        let mut ds = driver.create_vector_only(&tmp).map_err(&e)?;
        for spec in layers {
            let srs = srs::parse_crs(&spec.crs).map_err(&e)?;
            let mut txn = ds.start_transaction().map_err(&e)?;
            {
                let mut layer = txn
                    .create_layer(LayerOptions {
                        name: &spec.name,
                        srs: Some(&srs),
                        ty: OGRwkbGeometryType::wkbMultiPolygon,
                        options: None,
                    })
                    .map_err(&e)?;
                for (name, kind) in &spec.fields {
                    let ogr_type = match kind {
                        FieldKind::Text => OGRFieldType::OFTString,
                        FieldKind::Integer => OGRFieldType::OFTInteger64,
                        FieldKind::Real => OGRFieldType::OFTReal,
                        FieldKind::Boolean => OGRFieldType::OFTInteger,
                        FieldKind::Date => OGRFieldType::OFTDate,
                    };
                    if *kind == FieldKind::Boolean {
                        crate::gdal_ext::add_boolean_field(&layer, name).map_err(|detail| {
                            ExportError::Gdal {
                                path: path.to_path_buf(),
                                detail,
                            }
                        })?;
                    } else {
                        let fd = FieldDefn::new(name, ogr_type).map_err(&e)?;
                        fd.add_to_layer(&layer).map_err(&e)?;
                    }
                }
                for (fi, (geom, values)) in spec.features.iter().enumerate() {
                    if values.len() != spec.fields.len() {
                        return Err(ExportError::Invalid {
                            path: path.to_path_buf(),
                            detail: format!(
                                "layer {}: feature {fi} has {} values for {} fields",
                                spec.name,
                                values.len(),
                                spec.fields.len()
                            ),
                        });
                    }
                    let multi = match geom {
                        geo::Geometry::Polygon(p) => {
                            geo::Geometry::MultiPolygon(geo::MultiPolygon::new(vec![p.clone()]))
                        }
                        other => other.clone(),
                    };
                    let g = multi.to_gdal().map_err(&e)?;
                    let mut feature = gdal::vector::Feature::new(layer.defn()).map_err(&e)?;
                    feature.set_geometry(g).map_err(&e)?;
                    for (i, v) in values.iter().enumerate() {
                        match v {
                            Value::Text(s) => feature.set_field_string(i, s),
                            Value::Integer(n) => feature.set_field_integer64(i, *n),
                            Value::Real(x) => feature.set_field_double(i, *x),
                            Value::Boolean(b) => feature.set_field_integer(i, *b as i32),
                            Value::Date(d) => feature.set_field(i, &FieldValue::DateValue(*d)),
                            Value::Null => feature.set_field_null(i),
                        }
                        .map_err(&e)?;
                    }
                    feature.create(&layer).map_err(&e)?;
                }
                // `layer` borrows the transaction; end the borrow before committing.
                let _ = &mut layer;
            }
            txn.commit().map_err(&e)?;
        }
        ds.close().map_err(&e)?;
        Ok(())
    })();
    if timestamp.is_some() {
        let _ = gdal::config::clear_thread_local_config_option("OGR_CURRENT_DATE");
    }
    if result.is_err() {
        // The file under its final name is untouched; no half-written one is left beside it.
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    commit(&tmp, path)
}
