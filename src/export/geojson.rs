//! RFC 7946 GeoJSON: WGS84 longitude/latitude, counter-clockwise exterior rings, written by serde.

use super::{write_atomic, ExportError};
use crate::ingest::srs;
use gdal::spatial_ref::CoordTransform;
use geo::{Geometry, LineString, MultiPolygon, Polygon, Winding};
use serde_json::{json, Map, Value};
use std::path::Path;

/// Decimal places of written coordinates: 1e-9° is about 0.1 mm, far below any pixel.
const DECIMALS: i32 = 9;

/// Transforms geometries from a CRS to WGS84 (lon/lat).
pub struct ToWgs84 {
    ct: CoordTransform,
}

impl ToWgs84 {
    /// A transformation from `crs` (`EPSG:xxxx` or WKT) to WGS84.
    pub fn new(crs: &str) -> Result<ToWgs84, gdal::errors::GdalError> {
        let from = srs::parse_crs(crs)?;
        let to = srs::wgs84()?;
        Ok(ToWgs84 {
            ct: srs::transform(&from, &to)?,
        })
    }

    /// Transforms one point.
    pub fn point(&self, x: f64, y: f64) -> Result<(f64, f64), gdal::errors::GdalError> {
        let (mut xs, mut ys) = ([x], [y]);
        srs::transform_points(&self.ct, &mut xs, &mut ys)?;
        Ok((xs[0], ys[0]))
    }

    fn ring(&self, ring: &LineString<f64>) -> Result<LineString<f64>, gdal::errors::GdalError> {
        let mut xs: Vec<f64> = ring.coords().map(|c| c.x).collect();
        let mut ys: Vec<f64> = ring.coords().map(|c| c.y).collect();
        if !xs.is_empty() {
            srs::transform_points(&self.ct, &mut xs, &mut ys)?;
        }
        Ok(LineString::from(xs.into_iter().zip(ys).collect::<Vec<_>>()))
    }

    /// Transforms a polygon.
    pub fn polygon(&self, p: &Polygon<f64>) -> Result<Polygon<f64>, gdal::errors::GdalError> {
        let ext = self.ring(p.exterior())?;
        let holes = p
            .interiors()
            .iter()
            .map(|r| self.ring(r))
            .collect::<Result<_, _>>()?;
        Ok(Polygon::new(ext, holes))
    }

    /// Transforms a multipolygon.
    pub fn multi_polygon(
        &self,
        m: &MultiPolygon<f64>,
    ) -> Result<MultiPolygon<f64>, gdal::errors::GdalError> {
        Ok(MultiPolygon::new(
            m.0.iter()
                .map(|p| self.polygon(p))
                .collect::<Result<_, _>>()?,
        ))
    }
}

fn round(v: f64) -> f64 {
    let k = 10f64.powi(DECIMALS);
    (v * k).round() / k
}

fn ring_json(ring: &LineString<f64>, ccw: bool) -> Value {
    let mut r = ring.clone();
    if ccw {
        r.make_ccw_winding();
    } else {
        r.make_cw_winding();
    }
    Value::Array(
        r.coords()
            .map(|c| json!([round(c.x), round(c.y)]))
            .collect(),
    )
}

fn polygon_coords(p: &Polygon<f64>) -> Value {
    let mut rings = vec![ring_json(p.exterior(), true)];
    rings.extend(p.interiors().iter().map(|r| ring_json(r, false)));
    Value::Array(rings)
}

/// A GeoJSON geometry object (RFC 7946 winding) for a polygon or multipolygon in WGS84.
pub fn geometry_json(g: &Geometry<f64>) -> Value {
    match g {
        Geometry::Polygon(p) => json!({"type": "Polygon", "coordinates": polygon_coords(p)}),
        Geometry::MultiPolygon(m) => json!({
            "type": "MultiPolygon",
            "coordinates": m.0.iter().map(polygon_coords).collect::<Vec<_>>()
        }),
        Geometry::Point(p) => json!({"type": "Point", "coordinates": [round(p.x()), round(p.y())]}),
        _ => Value::Null,
    }
}

/// A feature: WGS84 geometry (or none) and properties.
pub fn feature(geometry: Option<&Geometry<f64>>, properties: Map<String, Value>) -> Value {
    json!({
        "type": "Feature",
        "geometry": geometry.map(geometry_json).unwrap_or(Value::Null),
        "properties": properties,
    })
}

/// Writes a FeatureCollection atomically; `members` are extra top-level members (e.g. `name`).
pub fn write_feature_collection(
    path: &Path,
    features: Vec<Value>,
    members: Map<String, Value>,
) -> Result<(), ExportError> {
    let mut fc = Map::new();
    fc.insert("type".into(), "FeatureCollection".into());
    for (k, v) in members {
        fc.insert(k, v);
    }
    fc.insert("features".into(), Value::Array(features));
    let mut text =
        serde_json::to_string_pretty(&Value::Object(fc)).map_err(|e| ExportError::Invalid {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exterior_rings_are_counter_clockwise() {
        let cw = Polygon::new(
            LineString::from(vec![
                (0.0, 0.0),
                (0.0, 1.0),
                (1.0, 1.0),
                (1.0, 0.0),
                (0.0, 0.0),
            ]),
            vec![],
        );
        let v = geometry_json(&Geometry::Polygon(cw));
        let ring = v["coordinates"][0].as_array().unwrap();
        // Shoelace sum > 0 means counter-clockwise.
        let pts: Vec<(f64, f64)> = ring
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        let s: f64 = pts
            .windows(2)
            .map(|w| w[0].0 * w[1].1 - w[1].0 * w[0].1)
            .sum();
        assert!(s > 0.0);
    }

    #[test]
    fn transforms_cgcs2000_to_lon_lat() {
        let t = ToWgs84::new("EPSG:4549").unwrap();
        let (lon, lat) = t.point(561_152.0, 3_449_344.0).unwrap();
        assert!(
            (120.6..120.7).contains(&lon) && (31.1..31.2).contains(&lat),
            "{lon} {lat}"
        );
    }
}
