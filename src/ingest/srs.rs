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

/// The legacy Chinese datum a CRS is on (Beijing 1954, New Beijing, Xian 1980), if any, read from
/// its WKT (EPSG's `Xian 1980` and an ArcGIS `.prj`'s `D_Xian_1980` alike).
pub fn legacy_datum(srs: &SpatialRef) -> Option<&'static str> {
    let wkt = srs.to_wkt().ok()?.to_ascii_lowercase().replace('_', " ");
    [
        ("new beijing", "New Beijing"),
        ("beijing 1954", "Beijing 1954"),
        ("xian 1980", "Xian 1980"),
    ]
    .into_iter()
    .find(|(key, _)| wkt.contains(key))
    .map(|(_, name)| name)
}

/// What is wrong with transforming coordinates between `from` and `to` when one of them is on a
/// legacy Chinese datum and the other is not on the same: PROJ converts Xian 1980 by its
/// ellipsoid alone and Beijing 1954 by a country-wide approximation, where the offsets to CGCS2000
/// or WGS 84 run to tens of metres and are converted with a province's own parameters. `None`
/// when both are on the same datum or neither is legacy.
pub fn legacy_datum_problem(from: &SpatialRef, to: &SpatialRef) -> Option<String> {
    let (a, b) = (legacy_datum(from), legacy_datum(to));
    if a == b {
        return None;
    }
    let datum = a.or(b)?;
    let what = if a.is_some() {
        format!("{datum} coordinates converted to another datum")
    } else {
        format!("coordinates converted to {datum}")
    };
    Some(format!(
        "{what} without the province's conversion parameters (PROJ has none for {datum}: {}), \
         which can leave them metres to tens of metres off; convert the data to CGCS2000 with \
         the official parameters first",
        if datum == "Xian 1980" {
            "only the ellipsoid changes"
        } else {
            "a country-wide approximation"
        }
    ))
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
    fn legacy_datums_are_recognised_and_their_conversion_is_called_approximate() {
        let xian = parse_crs("EPSG:2385").unwrap();
        let beijing = parse_crs("EPSG:2437").unwrap();
        let cgcs = parse_crs("EPSG:4549").unwrap();
        assert_eq!(legacy_datum(&xian), Some("Xian 1980"));
        assert_eq!(legacy_datum(&beijing), Some("Beijing 1954"));
        assert_eq!(legacy_datum(&cgcs), None);
        assert_eq!(legacy_datum(&parse_crs("EPSG:32651").unwrap()), None);
        // An ArcGIS .prj names the datum its own way.
        let esri = SpatialRef::from_esri(
            "PROJCS[\"Xian_1980_3_Degree_GK_CM_120E\",GEOGCS[\"GCS_Xian_1980\",DATUM[\"D_Xian_1980\",\
             SPHEROID[\"Xian_1980\",6378140.0,298.257]],PRIMEM[\"Greenwich\",0.0],\
             UNIT[\"Degree\",0.0174532925199433]],PROJECTION[\"Gauss_Kruger\"],\
             PARAMETER[\"False_Easting\",500000.0],PARAMETER[\"False_Northing\",0.0],\
             PARAMETER[\"Central_Meridian\",120.0],PARAMETER[\"Scale_Factor\",1.0],\
             PARAMETER[\"Latitude_Of_Origin\",0.0],UNIT[\"Meter\",1.0]]",
        )
        .unwrap();
        assert_eq!(legacy_datum(&esri), Some("Xian 1980"));
        let p = legacy_datum_problem(&xian, &cgcs).unwrap();
        assert!(
            p.contains("Xian 1980 coordinates converted to another") && p.contains("ellipsoid"),
            "{p}"
        );
        let p = legacy_datum_problem(&cgcs, &beijing).unwrap();
        assert!(p.contains("coordinates converted to Beijing 1954"), "{p}");
        assert_eq!(legacy_datum_problem(&xian, &esri), None);
        assert_eq!(
            legacy_datum_problem(&cgcs, &parse_crs("EPSG:32651").unwrap()),
            None
        );
    }

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
