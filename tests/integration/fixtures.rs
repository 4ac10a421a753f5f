//! The CC0 rasters in `fixtures/`: catalogue and read them on any machine, shared data or not.

use crate::common::{run, stdout};
use landwatch::ingest::catalog::open_raster;
use landwatch::ingest::checksum::gdal_checksum;
use landwatch::ingest::read::read_band_window;
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/rasterio")
}

#[test]
fn fixture_rasters_catalogue_and_checksum() {
    let o = run(["catalog", "--json", fixtures().to_str().unwrap()]);
    assert!(o.status.success());
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let get = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    let byte = get("byte.tif");
    assert_eq!(byte["info"]["crs"]["epsg"], 26711);
    assert_eq!(byte["info"]["bands"][0]["role"], "gray");
    let tenth = get("rgb-byte-tenth.tif");
    assert!(tenth["info"]["crs"]["epsg"].is_null());
    assert!(tenth["info"]["crs"]["wkt"]
        .as_str()
        .unwrap()
        .contains("UTM"));
    assert_eq!(tenth["info"]["nodata"], 0.0);
    let float = get("float_raster_with_nodata.tif");
    assert_eq!(float["info"]["data_type"], "Float32");
    assert!(float["info"]["nodata"].as_f64().unwrap() < -3e38);

    for (name, floating, sums) in [
        ("byte.tif", false, vec![4672u16]),
        ("rgb-byte-tenth.tif", false, vec![43839, 45180, 47242]),
        ("float_raster_with_nodata.tif", true, vec![64970]),
    ] {
        let ds = open_raster(&fixtures().join(name)).unwrap();
        let (w, h) = ds.raster_size();
        for (b, want) in sums.iter().enumerate() {
            let px = read_band_window::<f64>(&ds, b + 1, 0, 0, w, h).unwrap();
            assert_eq!(gdal_checksum(&px, floating), *want, "{name} band {}", b + 1);
        }
    }
}
