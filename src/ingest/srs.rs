//! Coordinate reference systems: parsing user CRS strings, naming them, transforming coordinates.
//!
//! Every `SpatialRef` made here uses the traditional GIS axis order (x = easting/longitude), so
//! EPSG:4326 coordinates come back as lon/lat, never lat/lon.

use gdal::spatial_ref::{AxisMappingStrategy, CoordTransform, SpatialRef};
use serde::{Deserialize, Serialize};

/// A CRS as catalogued: its EPSG code where one is known, its name, and its WKT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrsInfo {
    /// The EPSG code, when the CRS is (or is identified as) an EPSG CRS.
    pub epsg: Option<u32>,
    /// The CRS's name, e.g. `CGCS2000 / 3-degree Gauss-Kruger CM 120E`.
    pub name: String,
    /// The full WKT (WKT1 as GDAL writes it).
    pub wkt: String,
    /// Whether the CRS is geographic (degrees) rather than projected.
    pub geographic: bool,
    /// Metres per linear unit of a projected CRS (1 for metres, 0.3048… for US feet).
    pub linear_unit_m: Option<f64>,
}

impl CrsInfo {
    /// The shortest faithful label: `EPSG:4549`, or the WKT when there is no code.
    pub fn label(&self) -> String {
        match self.epsg {
            Some(code) => format!("EPSG:{code}"),
            None => self.wkt.clone(),
        }
    }
}

/// A CRS as a message can show it: the name given (`EPSG:4549`), or `(WKT)` for a WKT text too
/// long to read in a line.
pub fn short(crs: &str) -> &str {
    if crs.len() > 40 {
        "(WKT)"
    } else {
        crs
    }
}

/// Parses a CRS the way a user writes it (`EPSG:4549`, `4549`, a WKT or PROJ string).
pub fn parse_crs(text: &str) -> gdal::errors::Result<SpatialRef> {
    let t = text.trim();
    let mut srs = if let Ok(code) = t.parse::<u32>() {
        SpatialRef::from_epsg(code)?
    } else {
        SpatialRef::from_definition(t)?
    };
    srs.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    Ok(srs)
}

/// WGS84 longitude/latitude in traditional GIS order.
pub fn wgs84() -> gdal::errors::Result<SpatialRef> {
    parse_crs("EPSG:4326")
}

/// Describes a CRS: identifies an EPSG code where possible.
pub fn describe(srs: &SpatialRef) -> CrsInfo {
    let wkt = srs.to_wkt().unwrap_or_default();
    let mut epsg = match (srs.auth_name().as_deref(), srs.auth_code()) {
        (Some("EPSG"), Ok(code)) if code > 0 => Some(code as u32),
        _ => None,
    };
    if epsg.is_none() {
        // AutoIdentifyEPSG only recognises a few well-known families (UTM, WGS84 …) and changes
        // nothing when it fails; work on a copy so the original stays untouched.
        if let Ok(mut copy) = SpatialRef::from_wkt(&wkt) {
            if copy.auto_identify_epsg().is_ok() {
                if let (Some("EPSG"), Ok(code)) = (copy.auth_name().as_deref(), copy.auth_code()) {
                    epsg = (code > 0).then_some(code as u32);
                }
            }
        }
    }
    let geographic = srs.is_geographic();
    CrsInfo {
        epsg,
        name: srs.name().unwrap_or_else(|| "unnamed".to_string()),
        wkt,
        geographic,
        linear_unit_m: (!geographic).then(|| srs.linear_units()),
    }
}

/// Whether two CRSs are the same for our purposes (same datum, projection and units).
pub fn same_crs(a: &SpatialRef, b: &SpatialRef) -> bool {
    a == b
}

/// A coordinate transformation between two CRSs in traditional axis order.
pub fn transform(from: &SpatialRef, to: &SpatialRef) -> gdal::errors::Result<CoordTransform> {
    let mut f = from.clone();
    let mut t = to.clone();
    f.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    t.set_axis_mapping_strategy(AxisMappingStrategy::TraditionalGisOrder);
    CoordTransform::new(&f, &t)
}

/// Transforms points in place; fails when any point cannot be transformed.
pub fn transform_points(
    ct: &CoordTransform,
    xs: &mut [f64],
    ys: &mut [f64],
) -> gdal::errors::Result<()> {
    ct.transform_coords(xs, ys, &mut [])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_epsg_and_keeps_lon_lat_order() {
        let cgcs = parse_crs("EPSG:4549").unwrap();
        let info = describe(&cgcs);
        assert_eq!(info.epsg, Some(4549));
        assert_eq!(info.label(), "EPSG:4549");
        assert!(!info.geographic);
        let ct = transform(&cgcs, &wgs84().unwrap()).unwrap();
        let (mut x, mut y) = ([500_000.0], [3_460_000.0]);
        transform_points(&ct, &mut x, &mut y).unwrap();
        // CM 120E, about 31.26 N: longitude first.
        assert!((x[0] - 120.0).abs() < 1e-6, "{x:?}");
        assert!((y[0] - 31.26).abs() < 0.05, "{y:?}");
    }
}
