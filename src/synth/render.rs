//! Rendering the scene model into pixels for any pixel grid (satellite tiles, the drone
//! orthophoto): rasterised land cover, reflectance signatures, ground texture that is the same on
//! both dates, crop rows, phenology, clouds and their shadows, sensor radiometry and noise.
//!
//! Pure: arrays out, no IO. Every random value is a hash of (seed, date, band, pixel), so a tile
//! renders the same bytes whichever thread renders it and whichever tiles are rendered around it.

use super::model::{Cover, Scene, ORIGIN};
use super::rng::hash_normal;
use geo::{BoundingRect, Polygon};
use rayon::prelude::*;

/// Which image to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shot {
    /// The before satellite image.
    Before,
    /// The after satellite image (clouds, no-data wedge, other sensor radiometry).
    After,
    /// The drone orthophoto (after cover, RGB camera).
    Drone,
}

/// A pixel grid to render: an affine map from pixel (column, row) to scene coordinates.
#[derive(Debug, Clone)]
pub struct PixelGrid {
    /// GDAL-order affine transform from pixel to EPSG:4549 coordinates.
    pub to_scene: [f64; 6],
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Global pixel offset used to seed per-pixel noise (keeps tile overlaps identical).
    pub noise_offset: (i64, i64),
}

impl PixelGrid {
    fn pixel_to_scene(&self, c: f64, r: f64) -> (f64, f64) {
        let g = &self.to_scene;
        (g[0] + c * g[1] + r * g[2], g[3] + c * g[4] + r * g[5])
    }

    fn scene_to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        crate::rasterize::map_to_pixel(&self.to_scene, x, y)
    }
}

/// Rendered bands: reflectance × 10000 for satellite shots (B, G, R, NIR), 0–255 for the drone
/// (R, G, B), plus validity (false where the sensor recorded nothing).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Band-sequential pixel values, row-major.
    pub bands: Vec<Vec<f32>>,
    /// Where the image has data.
    pub valid: Vec<bool>,
}

/// Fills `target[i] = value` for pixels whose centre lies inside the polygon (even-odd rule).
pub fn rasterize(grid: &PixelGrid, poly: &Polygon<f64>, value: i32, target: &mut [i32]) {
    crate::rasterize::fill_polygon(&grid.to_scene, grid.width, grid.height, poly, value, target);
}

fn overlaps(grid: &PixelGrid, poly: &Polygon<f64>) -> bool {
    let Some(b) = poly.bounding_rect() else {
        return false;
    };
    let corners = [
        grid.scene_to_pixel(b.min().x, b.min().y),
        grid.scene_to_pixel(b.max().x, b.min().y),
        grid.scene_to_pixel(b.min().x, b.max().y),
        grid.scene_to_pixel(b.max().x, b.max().y),
    ];
    let (c0, c1) = corners
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (r0, r1) = corners
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    c1 >= 0.0 && r1 >= 0.0 && c0 <= grid.width as f64 && r0 <= grid.height as f64
}

/// Value noise on a lattice of `spacing` metres, bilinearly interpolated: the same ground texture
/// whatever the pixel size that samples it.
fn value_noise(seed: u64, layer: u64, x: f64, y: f64, spacing: f64) -> f32 {
    let u = (x - ORIGIN.0) / spacing;
    let v = (ORIGIN.1 - y) / spacing;
    let (i, j) = (u.floor(), v.floor());
    let (fu, fv) = ((u - i) as f32, (v - j) as f32);
    let (i, j) = (i as i64 as u64, j as i64 as u64);
    let n = |a: u64, b: u64| hash_normal(&[seed, layer, a, b]);
    let top = n(i, j) * (1.0 - fu) + n(i.wrapping_add(1), j) * fu;
    let bot = n(i, j.wrapping_add(1)) * (1.0 - fu) + n(i.wrapping_add(1), j.wrapping_add(1)) * fu;
    top * (1.0 - fv) + bot * fv
}

fn row_amplitude(c: Cover) -> f32 {
    match c {
        Cover::Crop => 0.08,
        Cover::Paddy => 0.06,
        Cover::Stubble => 0.10,
        Cover::Mature => 0.07,
        Cover::Orchard => 0.12,
        _ => 0.0,
    }
}

/// Renders one shot of the scene on a pixel grid.
///
/// The grid is rendered with a one-pixel margin that is cut away afterwards, so the blur at a tile's
/// edge sees the same neighbours as anywhere else and adjacent tiles agree pixel for pixel.
pub fn render(scene: &Scene, grid: &PixelGrid, shot: Shot) -> Rendered {
    let g = &grid.to_scene;
    let wide = PixelGrid {
        to_scene: [
            g[0] - g[1] - g[2],
            g[1],
            g[2],
            g[3] - g[4] - g[5],
            g[4],
            g[5],
        ],
        width: grid.width + 2,
        height: grid.height + 2,
        noise_offset: (grid.noise_offset.0 - 1, grid.noise_offset.1 - 1),
    };
    let full = render_with_margin(scene, &wide, shot);
    let crop = |v: &Vec<f32>| -> Vec<f32> {
        (0..grid.height)
            .flat_map(|r| {
                v[(r + 1) * wide.width + 1..(r + 1) * wide.width + 1 + grid.width]
                    .iter()
                    .copied()
            })
            .collect()
    };
    let valid = (0..grid.height)
        .flat_map(|r| {
            full.valid[(r + 1) * wide.width + 1..(r + 1) * wide.width + 1 + grid.width]
                .iter()
                .copied()
        })
        .collect();
    Rendered {
        bands: full.bands.iter().map(crop).collect(),
        valid,
    }
}

fn render_with_margin(scene: &Scene, grid: &PixelGrid, shot: Shot) -> Rendered {
    let n = grid.width * grid.height;
    let mut parcel_map = vec![-1i32; n];
    for (i, p) in scene.parcels.iter().enumerate() {
        if overlaps(grid, &p.polygon) {
            rasterize(grid, &p.polygon, i as i32, &mut parcel_map);
        }
    }
    let mut object_map = vec![-1i32; n];
    for (i, o) in scene.objects.iter().enumerate() {
        if (o.existing || shot != Shot::Before) && overlaps(grid, &o.polygon) {
            rasterize(grid, &o.polygon, i as i32, &mut object_map);
        }
    }
    let mut nodata_map = vec![-1i32; n];
    if shot == Shot::After {
        rasterize(grid, &scene.after_nodata, 1, &mut nodata_map);
    }

    let seed = scene.seed;
    let shot_id = shot as u64;
    let nbands = 4;
    // Ground reflectance, band-interleaved per pixel while computing.
    let mut refl = vec![0f32; n * nbands];
    refl.par_chunks_mut(grid.width * nbands)
        .enumerate()
        .for_each(|(row, out)| {
            for col in 0..grid.width {
                let idx = row * grid.width + col;
                let (x, y) = grid.pixel_to_scene(col as f64 + 0.5, row as f64 + 0.5);
                let pi = parcel_map[idx];
                let parcel = (pi >= 0).then(|| &scene.parcels[pi as usize]);
                let oi = object_map[idx];
                let (cover, gain) = if oi >= 0 {
                    let o = &scene.objects[oi as usize];
                    (o.cover, [o.gain; 4])
                } else if let Some(p) = parcel {
                    let c = if shot == Shot::Before {
                        p.cover_before
                    } else {
                        p.cover_after
                    };
                    (c, p.gain)
                } else {
                    (Cover::Road, [1.0; 4])
                };
                let tex = 1.0
                    + 0.05 * value_noise(seed, 1, x, y, 4.0)
                    + 0.03 * value_noise(seed, 2, x, y, 1.0);
                let mut rows = 1.0f32;
                if oi < 0 && cover.has_rows() {
                    if let Some(p) = parcel {
                        let (s, c) = p.row_angle.sin_cos();
                        let t = ((x - ORIGIN.0) as f32 * c + (ORIGIN.1 - y) as f32 * s)
                            * (std::f32::consts::TAU / p.row_period_m);
                        rows = 1.0 + row_amplitude(cover) * t.sin();
                    }
                }
                let sig = cover.signature();
                for b in 0..nbands {
                    let mut v = sig[b] * gain[b] * tex;
                    if cover.is_vegetation() {
                        v *= rows;
                        if shot != Shot::Before {
                            if let Some(p) = parcel.filter(|_| oi < 0) {
                                v *= p.phenology[b];
                            }
                        }
                    } else if cover.has_rows() {
                        v *= rows;
                    }
                    out[col * nbands + b] = v;
                }
            }
        });

    // The sensor's point spread: a small blur mixes the pixels along every edge.
    let refl = blur_interleaved(&refl, grid.width, grid.height, nbands);

    let (gain, offset) = match shot {
        Shot::After => (scene.dates.after_gain, scene.dates.after_offset),
        _ => ([1.0; 4], [0.0; 4]),
    };
    let mut valid = vec![true; n];
    let out_bands = if shot == Shot::Drone { 3 } else { 4 };
    let mut bands = vec![vec![0f32; n]; out_bands];
    let mut pixels: Vec<(usize, [f32; 4], bool)> = (0..n)
        .into_par_iter()
        .map(|idx| {
            let (row, col) = (idx / grid.width, idx % grid.width);
            let (x, y) = grid.pixel_to_scene(col as f64 + 0.5, row as f64 + 0.5);
            let mut v = [0f32; 4];
            v.copy_from_slice(&refl[idx * nbands..idx * nbands + nbands]);
            if shot == Shot::After {
                if nodata_map[idx] >= 0 {
                    return (idx, [0.0; 4], false);
                }
                let (mut alpha, mut shade) = (0f32, 0f32);
                for c in &scene.clouds {
                    alpha = alpha.max(c.opacity(x, y));
                    shade = shade.max(c.opacity(x - c.shadow_offset.0, y - c.shadow_offset.1));
                }
                if alpha > 0.0 || shade > 0.0 {
                    let puff = 1.0 + 0.08 * value_noise(seed, 3, x, y, 6.0);
                    const CLOUD: [f32; 4] = [6200.0, 6300.0, 6400.0, 6600.0];
                    for b in 0..4 {
                        let shaded = v[b] * (1.0 - 0.65 * shade) + 120.0 * shade;
                        v[b] = (1.0 - alpha) * shaded + alpha * CLOUD[b] * puff;
                    }
                }
            }
            let (gx, gy) = (
                col as i64 + grid.noise_offset.0,
                row as i64 + grid.noise_offset.1,
            );
            let mut out = [0f32; 4];
            if shot == Shot::Drone {
                // An RGB camera: gamma-encoded bytes with its own white balance.
                const WB: [f32; 3] = [1.0, 0.97, 1.04];
                for (k, b) in [2usize, 1, 0].iter().enumerate() {
                    let lin = (v[*b] / 2800.0).max(0.0);
                    let dn = 255.0 * lin.powf(1.0 / 1.7) * WB[k];
                    let noise = hash_normal(&[seed, shot_id, k as u64, gx as u64, gy as u64]);
                    out[k] = (dn + noise * 2.0).clamp(1.0, 255.0);
                }
            } else {
                for b in 0..4 {
                    let val = v[b] * gain[b] + offset[b];
                    let noise = hash_normal(&[seed, shot_id, b as u64, gx as u64, gy as u64]);
                    out[b] = (val + noise * (0.02 * val + 15.0)).clamp(1.0, 65535.0);
                }
            }
            (idx, out, true)
        })
        .collect();
    for (idx, out, ok) in pixels.drain(..) {
        valid[idx] = ok;
        for (b, band) in bands.iter_mut().enumerate() {
            band[idx] = out[b];
        }
    }
    Rendered { bands, valid }
}

/// A separable [1/4, 1/2, 1/4] blur of band-interleaved pixels (edges replicate).
fn blur_interleaved(src: &[f32], w: usize, h: usize, nb: usize) -> Vec<f32> {
    let mut tmp = vec![0f32; src.len()];
    tmp.par_chunks_mut(w * nb).enumerate().for_each(|(r, out)| {
        let row = &src[r * w * nb..(r + 1) * w * nb];
        for c in 0..w {
            let (l, rr) = (c.saturating_sub(1), (c + 1).min(w - 1));
            for b in 0..nb {
                out[c * nb + b] =
                    0.25 * row[l * nb + b] + 0.5 * row[c * nb + b] + 0.25 * row[rr * nb + b];
            }
        }
    });
    let mut out = vec![0f32; src.len()];
    out.par_chunks_mut(w * nb).enumerate().for_each(|(r, o)| {
        let (u, d) = (r.saturating_sub(1), (r + 1).min(h - 1));
        for i in 0..w * nb {
            o[i] =
                0.25 * tmp[u * w * nb + i] + 0.5 * tmp[r * w * nb + i] + 0.25 * tmp[d * w * nb + i];
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::model::{build_scene, PIXEL_M};

    fn tile(size: usize) -> PixelGrid {
        PixelGrid {
            to_scene: [ORIGIN.0, PIXEL_M, 0.0, ORIGIN.1, 0.0, -PIXEL_M],
            width: size,
            height: size,
            noise_offset: (0, 0),
        }
    }

    #[test]
    fn rasterize_fills_pixel_centres() {
        let g = PixelGrid {
            to_scene: [0.0, 1.0, 0.0, 10.0, 0.0, -1.0],
            width: 10,
            height: 10,
            noise_offset: (0, 0),
        };
        let sq = crate::synth::model::rotated_rect(5.0, 5.0, 4.0, 4.0, 0.0);
        let mut t = vec![0; 100];
        rasterize(&g, &sq, 1, &mut t);
        assert_eq!(t.iter().filter(|v| **v == 1).count(), 16);
    }

    #[test]
    fn tiles_render_the_same_pixels_as_the_whole() {
        let scene = build_scene(256, 4);
        let whole = render(&scene, &tile(256), Shot::After);
        let mut part = tile(64);
        part.to_scene[0] += 100.0 * PIXEL_M;
        part.to_scene[3] -= 60.0 * PIXEL_M;
        part.noise_offset = (100, 60);
        let sub = render(&scene, &part, Shot::After);
        for r in 0..64 {
            for c in 0..64 {
                let a = whole.bands[3][(60 + r) * 256 + 100 + c];
                let b = sub.bands[3][r * 64 + c];
                assert_eq!(a, b, "pixel {r},{c}");
            }
        }
    }
}
