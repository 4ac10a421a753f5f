//! Drawing the packet's pictures (pure: arrays and polygons in, RGB images out): true-colour chips
//! with one contrast stretch for both dates, a change-score heat map, the change polygon, the
//! parcel boundary, dashed permit footprints, a scale bar, a north arrow and text labels.

use super::input::Chip;
use ab_glyph::{FontRef, PxScale};
use geo::MultiPolygon;
use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_polygon_mut, draw_text_mut, text_size};
use imageproc::point::Point;
use imageproc::rect::Rect;
use ndarray::Array2;
use serde::Serialize;
use std::sync::OnceLock;

/// DejaVu Sans Bold, ASCII subset (licence: `assets/fonts/LICENSE-DejaVu.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold-ascii.ttf");

/// Lower and upper percentiles of the contrast stretch.
pub const STRETCH_PERCENTILES: (f64, f64) = (0.02, 0.98);
/// Chips are enlarged by a whole factor until their longer side reaches this many pixels.
const MIN_DISPLAY_PX: usize = 480;
/// The largest enlargement.
const MAX_SCALE: usize = 16;
const HEADER_PX: u32 = 30;
const FOOTER_PX: u32 = 66;
const TEXT_PX: f32 = 14.0;

/// Colour of the change polygon.
pub const CHANGE_RGB: [u8; 3] = [255, 32, 32];
/// Colour of the parcel boundary.
pub const PARCEL_RGB: [u8; 3] = [255, 221, 0];
/// Colour of permit footprints (dashed).
pub const PERMIT_RGB: [u8; 3] = [0, 229, 255];
const INK: Rgb<u8> = Rgb([17, 24, 39]);
const PAPER: Rgb<u8> = Rgb([255, 255, 255]);
const HEADER_BG: Rgb<u8> = Rgb([31, 41, 55]);

fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// One linear stretch per band, shared by both dates: `lo` maps to 0 and `hi` to 255.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stretch {
    /// Value mapped to 0, per band (red, green, blue).
    pub lo: [f32; 3],
    /// Value mapped to 255, per band.
    pub hi: [f32; 3],
}

impl Stretch {
    /// Maps a value of band `b` to a byte.
    pub fn byte(&self, b: usize, v: f32) -> u8 {
        let t = (v - self.lo[b]) / (self.hi[b] - self.lo[b]);
        (t.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// The value at quantile `q` of sorted values (nearest rank below).
fn quantile(sorted: &[f32], q: f64) -> Option<f32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).floor() as usize;
    sorted.get(i).copied()
}

/// The value at quantile `q` (nearest rank below), reordering `values` partially.
fn select_quantile(values: &mut [f32], q: f64) -> Option<f32> {
    if values.is_empty() {
        return None;
    }
    let i = ((values.len() - 1) as f64 * q).floor() as usize;
    let (_, v, _) = values.select_nth_unstable_by(i, f32::total_cmp);
    Some(*v)
}

/// The 2–98 % stretch of each band over the valid pixels of both chips together, so that the
/// same ground looks the same on both dates unless it changed.
pub fn joint_stretch(chips: &[&Chip]) -> Stretch {
    let mut s = Stretch {
        lo: [0.0; 3],
        hi: [1.0; 3],
    };
    for b in 0..3 {
        let mut values: Vec<f32> = Vec::new();
        for chip in chips {
            let (h, w) = chip.valid.dim();
            if chip.rgb.dim() != (3, h, w) {
                continue;
            }
            for ((r, c), ok) in chip.valid.indexed_iter() {
                let v = chip.rgb[(b, r, c)];
                if *ok && v.is_finite() {
                    values.push(v);
                }
            }
        }
        if let (Some(lo), Some(hi)) = (
            select_quantile(&mut values, STRETCH_PERCENTILES.0),
            select_quantile(&mut values, STRETCH_PERCENTILES.1),
        ) {
            s.lo[b] = lo;
            s.hi[b] = if hi > lo { hi } else { lo + 1.0 };
        }
    }
    s
}

/// Stretched bytes of a chip, band-sequential red, green, blue, alpha (255 where observed).
pub fn stretched_bands(chip: &Chip, stretch: &Stretch) -> [Vec<u8>; 4] {
    let (h, w) = chip.valid.dim();
    let mut out: [Vec<u8>; 4] = Default::default();
    for band in out.iter_mut() {
        band.reserve(h * w);
    }
    for r in 0..h {
        for c in 0..w {
            let ok = chip.valid[(r, c)];
            for (b, band) in out.iter_mut().take(3).enumerate() {
                let v = chip.rgb.get((b, r, c)).copied().unwrap_or(f32::NAN);
                band.push(if ok && v.is_finite() {
                    stretch.byte(b, v)
                } else {
                    0
                });
            }
            out[3].push(if ok { 255 } else { 0 });
        }
    }
    out
}

/// The value range of the heat map: 0 to the 98th percentile of the observed scores.
pub fn score_range(score: &Array2<f32>) -> (f32, f32) {
    let mut v: Vec<f32> = score.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f32::total_cmp);
    let lo = 0.0f32.min(v.first().copied().unwrap_or(0.0));
    let hi = quantile(&v, STRETCH_PERCENTILES.1).unwrap_or(1.0);
    (lo, if hi > lo { hi } else { lo + 1.0 })
}

/// Viridis, sampled at five stops and interpolated linearly.
fn viridis(t: f32) -> Rgb<u8> {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = t.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let mix = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

/// Where the chip lies on the ground, and how it is enlarged for display.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// GDAL geotransform of the chip.
    pub geo_transform: [f64; 6],
    /// Chip width in pixels.
    pub width: usize,
    /// Chip height in pixels.
    pub height: usize,
    /// Metres per CRS unit (1 for metre CRSs).
    pub metres_per_unit: f64,
}

impl Frame {
    /// The whole enlargement factor used for display.
    pub fn scale(&self) -> usize {
        let long = self.width.max(self.height).max(1);
        MIN_DISPLAY_PX.div_ceil(long).clamp(1, MAX_SCALE)
    }

    /// World → fractional chip pixel (column, row), inverting the full affine transform.
    pub fn to_pixel(&self, x: f64, y: f64) -> (f64, f64) {
        let g = &self.geo_transform;
        let det = g[1] * g[5] - g[2] * g[4];
        if det == 0.0 {
            return (f64::NAN, f64::NAN);
        }
        let (dx, dy) = (x - g[0], y - g[3]);
        (
            (g[5] * dx - g[2] * dy) / det,
            (-g[4] * dx + g[1] * dy) / det,
        )
    }

    /// Ground metres per chip pixel (along a row).
    pub fn metres_per_pixel(&self) -> f64 {
        let g = &self.geo_transform;
        g[1].hypot(g[4]) * self.metres_per_unit
    }

    /// The direction of north in display pixels (unit vector, y down).
    fn north(&self) -> (f64, f64) {
        let (c0, r0) = self.to_pixel(self.geo_transform[0], self.geo_transform[3]);
        let (c1, r1) = self.to_pixel(self.geo_transform[0], self.geo_transform[3] + 1.0);
        let (dx, dy) = (c1 - c0, r1 - r0);
        let n = dx.hypot(dy);
        if n.is_finite() && n > 0.0 {
            (dx / n, dy / n)
        } else {
            (0.0, -1.0)
        }
    }
}

/// The polygons drawn on every chip.
#[derive(Debug, Clone, Copy)]
pub struct Overlays<'a> {
    /// The change polygon (red).
    pub change: &'a MultiPolygon<f64>,
    /// The parcel (yellow).
    pub parcel: &'a MultiPolygon<f64>,
    /// Permit footprints (cyan, dashed).
    pub permits: &'a [&'a MultiPolygon<f64>],
}

/// Text on a chip: a title in the header, up to three lines in the footer.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Header, e.g. `BEFORE  2026-04-14 02:51  satellite GF-2 PMS`.
    pub title: String,
    /// Footer lines (centre coordinates, …).
    pub footer: Vec<String>,
}

/// A canvas with a header, the enlarged chip and a footer.
struct Canvas {
    img: RgbImage,
    scale: usize,
    frame: Frame,
    /// Top of the chip area.
    top: u32,
    chip_w: u32,
    chip_h: u32,
}

impl Canvas {
    fn new(frame: Frame) -> Canvas {
        let scale = frame.scale();
        let chip_w = (frame.width * scale) as u32;
        let chip_h = (frame.height * scale) as u32;
        let width = chip_w.max(MIN_DISPLAY_PX as u32);
        let img = RgbImage::from_pixel(width, HEADER_PX + chip_h + FOOTER_PX, PAPER);
        Canvas {
            img,
            scale,
            frame,
            top: HEADER_PX,
            chip_w,
            chip_h,
        }
    }

    /// Fills the chip area from a per-chip-pixel colour function (`None` = unobserved).
    fn paint(&mut self, colour: impl Fn(usize, usize) -> Option<Rgb<u8>>) {
        let k = self.scale;
        for r in 0..self.frame.height {
            for c in 0..self.frame.width {
                let px = colour(r, c);
                for dy in 0..k {
                    for dx in 0..k {
                        let (x, y) = ((c * k + dx) as u32, (r * k + dy) as u32);
                        let p = px.unwrap_or_else(|| {
                            // Unobserved: grey hatching, never mistaken for ground.
                            if ((x + y) / 6) % 2 == 0 {
                                Rgb([120, 120, 120])
                            } else {
                                Rgb([150, 150, 150])
                            }
                        });
                        self.img.put_pixel(x, y + self.top, p);
                    }
                }
            }
        }
    }

    fn in_chip(&self, x: i64, y: i64) -> bool {
        x >= 0
            && y >= self.top as i64
            && x < self.chip_w as i64
            && y < (self.top + self.chip_h) as i64
    }

    fn stamp(&mut self, cx: f64, cy: f64, radius: f64, colour: Rgb<u8>) {
        let r = radius.ceil() as i64;
        let (x0, y0) = (cx.round() as i64, cy.round() as i64);
        for dy in -r..=r {
            for dx in -r..=r {
                let (x, y) = (x0 + dx, y0 + dy);
                let (fx, fy) = (x as f64 - cx, y as f64 - cy);
                if fx * fx + fy * fy <= radius * radius + 0.25 && self.in_chip(x, y) {
                    self.img.put_pixel(x as u32, y as u32, colour);
                }
            }
        }
    }

    /// Display coordinates of a world point.
    fn display(&self, x: f64, y: f64) -> (f64, f64) {
        let (c, r) = self.frame.to_pixel(x, y);
        let k = self.scale as f64;
        (c * k, r * k + self.top as f64)
    }

    /// Strokes a closed ring with an optional dash pattern (on, off) in display pixels.
    fn ring(&mut self, pts: &[(f64, f64)], width: f64, colour: Rgb<u8>, dash: Option<(f64, f64)>) {
        let mut travelled = 0.0;
        for w in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            let len = (x1 - x0).hypot(y1 - y0);
            if !len.is_finite() {
                continue;
            }
            let steps = (len * 2.0).ceil().max(1.0) as usize;
            for i in 0..=steps {
                let t = i as f64 / steps as f64;
                let d = travelled + t * len;
                if let Some((on, off)) = dash {
                    if d % (on + off) >= on {
                        continue;
                    }
                }
                self.stamp(x0 + t * (x1 - x0), y0 + t * (y1 - y0), width / 2.0, colour);
            }
            travelled += len;
        }
    }

    /// Draws a multipolygon's rings: a dark halo, then the colour.
    fn polygons(&mut self, m: &MultiPolygon<f64>, width: f64, colour: [u8; 3], dash: bool) {
        let dash = dash.then_some((10.0, 7.0));
        let rings: Vec<Vec<(f64, f64)>> =
            m.0.iter()
                .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()))
                .map(|ring| ring.coords().map(|c| self.display(c.x, c.y)).collect())
                .collect();
        for ring in &rings {
            self.ring(ring, width + 2.0, Rgb([0, 0, 0]), dash);
        }
        for ring in &rings {
            self.ring(ring, width, Rgb(colour), dash);
        }
    }

    fn overlays(&mut self, o: &Overlays) {
        self.polygons(o.parcel, 2.0, PARCEL_RGB, false);
        for p in o.permits {
            self.polygons(p, 2.0, PERMIT_RGB, true);
        }
        self.polygons(o.change, 2.5, CHANGE_RGB, false);
    }

    fn text(&mut self, x: i32, y: i32, size: f32, colour: Rgb<u8>, s: &str) {
        if let Some(f) = font() {
            draw_text_mut(&mut self.img, colour, x, y, PxScale::from(size), f, s);
        }
    }

    fn text_width(size: f32, s: &str) -> u32 {
        font()
            .map(|f| text_size(PxScale::from(size), f, s).0)
            .unwrap_or(0)
    }

    fn header(&mut self, title: &str) {
        let w = self.img.width();
        draw_filled_rect_mut(
            &mut self.img,
            Rect::at(0, 0).of_size(w, HEADER_PX),
            HEADER_BG,
        );
        self.text(8, 7, TEXT_PX + 1.0, PAPER, title);
    }

    fn footer(&mut self, lines: &[String], x0: i32) {
        let y0 = (self.top + self.chip_h) as i32 + 6;
        for (i, line) in lines.iter().take(3).enumerate() {
            self.text(x0, y0 + 19 * i as i32, TEXT_PX - 1.0, INK, line);
        }
    }

    /// A scale bar in the chip's lower left corner: four alternating segments and a length label.
    fn scale_bar(&mut self) {
        let m_per_display_px = self.frame.metres_per_pixel() / self.scale as f64;
        if !(m_per_display_px.is_finite() && m_per_display_px > 0.0) {
            return;
        }
        let target_m = self.chip_w as f64 * 0.3 * m_per_display_px;
        let length_m = nice_length(target_m);
        let bar_px = (length_m / m_per_display_px).round() as i32;
        if bar_px < 8 {
            return;
        }
        let label = format_metres(length_m);
        let label_w = Canvas::text_width(TEXT_PX - 2.0, &label) as i32;
        let (bx, by) = (8, (self.top + self.chip_h) as i32 - 36);
        let box_w = (bar_px + 16).max(label_w + 16) as u32;
        draw_filled_rect_mut(&mut self.img, Rect::at(bx, by).of_size(box_w, 30), PAPER);
        let (x0, y0) = (bx + 8, by + 19);
        draw_filled_rect_mut(
            &mut self.img,
            Rect::at(x0 - 1, y0 - 1).of_size(bar_px as u32 + 2, 8),
            INK,
        );
        for i in 0..4 {
            if i % 2 == 1 {
                let a = x0 + bar_px * i / 4;
                let b = x0 + bar_px * (i + 1) / 4;
                draw_filled_rect_mut(
                    &mut self.img,
                    Rect::at(a, y0).of_size((b - a).max(1) as u32, 6),
                    PAPER,
                );
            }
        }
        self.text(x0, by + 2, TEXT_PX - 2.0, INK, &label);
    }

    /// A north arrow in the chip's upper right corner.
    fn north_arrow(&mut self) {
        let (nx, ny) = self.frame.north();
        let (px, py) = (-ny, nx);
        let (bw, bh) = (34u32, 50u32);
        let bx = self.chip_w as i32 - bw as i32 - 6;
        let by = self.top as i32 + 6;
        if bx < 0 {
            return;
        }
        draw_filled_rect_mut(&mut self.img, Rect::at(bx, by).of_size(bw, bh), PAPER);
        let (cx, cy) = (bx as f64 + bw as f64 / 2.0, by as f64 + 31.0);
        let tip = (cx + nx * 14.0, cy + ny * 14.0);
        let tail = (cx - nx * 12.0, cy - ny * 12.0);
        let pt = |p: (f64, f64)| Point::new(p.0.round() as i32, p.1.round() as i32);
        let left = (tail.0 + px * 8.0, tail.1 + py * 8.0);
        let right = (tail.0 - px * 8.0, tail.1 - py * 8.0);
        let centre = (cx - nx * 5.0, cy - ny * 5.0);
        draw_polygon_mut(&mut self.img, &[pt(tip), pt(left), pt(centre)], INK);
        draw_polygon_mut(
            &mut self.img,
            &[pt(tip), pt(centre), pt(right)],
            Rgb([107, 114, 128]),
        );
        let n_w = Canvas::text_width(TEXT_PX, "N") as i32;
        self.text(bx + (bw as i32 - n_w) / 2, by + 1, TEXT_PX, INK, "N");
    }

    fn legend(&mut self, y: i32) {
        let items = [
            (CHANGE_RGB, false, "suspected change"),
            (PARCEL_RGB, false, "parcel"),
            (PERMIT_RGB, true, "permit"),
        ];
        let mut x = 8;
        for (colour, dashed, label) in items {
            let pieces: &[(i32, u32)] = if dashed {
                &[(0, 6), (10, 6)]
            } else {
                &[(0, 16)]
            };
            for (dx, len) in pieces {
                draw_filled_rect_mut(
                    &mut self.img,
                    Rect::at(x + dx, y + 6).of_size(*len, 4),
                    Rgb(colour),
                );
            }
            self.text(x + 20, y, TEXT_PX - 2.0, INK, label);
            x += 28 + Canvas::text_width(TEXT_PX - 2.0, label) as i32;
        }
    }
}

/// 1, 2 or 5 × 10ⁿ metres, the largest not above `target`.
pub fn nice_length(target: f64) -> f64 {
    if !(target.is_finite() && target > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(target.log10().floor());
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v <= target)
        .unwrap_or(p)
}

fn format_metres(m: f64) -> String {
    if m >= 1000.0 {
        format!("{} km", m / 1000.0)
    } else {
        format!("{m} m")
    }
}

/// A true-colour chip with overlays, scale bar, north arrow and labels.
pub fn true_colour(
    chip: &Chip,
    stretch: &Stretch,
    frame: Frame,
    overlays: &Overlays,
    labels: &Labels,
) -> RgbImage {
    let mut cv = Canvas::new(frame);
    cv.paint(|r, c| {
        if !chip.valid.get((r, c)).copied().unwrap_or(false) {
            return None;
        }
        let mut px = [0u8; 3];
        for (b, v) in px.iter_mut().enumerate() {
            let x = chip.rgb.get((b, r, c)).copied().unwrap_or(f32::NAN);
            if !x.is_finite() {
                return None;
            }
            *v = stretch.byte(b, x);
        }
        Some(Rgb(px))
    });
    cv.overlays(overlays);
    cv.scale_bar();
    cv.north_arrow();
    cv.header(&labels.title);
    cv.footer(&labels.footer, 8);
    let y = (cv.top + cv.chip_h) as i32 + 6 + 19 * labels.footer.len().min(2) as i32;
    cv.legend(y);
    cv.img
}

/// A heat map of the change score with the same overlays, a colour ramp and labels.
pub fn heat_map(
    score: &Array2<f32>,
    range: (f32, f32),
    frame: Frame,
    overlays: &Overlays,
    labels: &Labels,
) -> RgbImage {
    let mut cv = Canvas::new(frame);
    let (lo, hi) = range;
    cv.paint(|r, c| {
        let v = score.get((r, c)).copied().unwrap_or(f32::NAN);
        v.is_finite().then(|| viridis((v - lo) / (hi - lo)))
    });
    cv.overlays(overlays);
    cv.scale_bar();
    cv.north_arrow();
    cv.header(&labels.title);
    cv.footer(&labels.footer, 8);
    let y = (cv.top + cv.chip_h) as i32 + 6 + 19 * labels.footer.len().min(2) as i32;
    cv.legend(y);
    // The colour ramp at the right end of the legend's row: low … high.
    let w = cv.img.width() as i32;
    let (rx, rw) = (w - 150, 100);
    let lo_label = format!("{lo:.1}");
    let lw = Canvas::text_width(TEXT_PX - 2.0, &lo_label) as i32;
    cv.text(rx - lw - 5, y, TEXT_PX - 2.0, INK, &lo_label);
    for i in 0..rw {
        let col = viridis(i as f32 / (rw - 1) as f32);
        draw_filled_rect_mut(&mut cv.img, Rect::at(rx + i, y + 3).of_size(1, 10), col);
    }
    cv.text(rx + rw + 5, y, TEXT_PX - 2.0, INK, &format!("{hi:.1}"));
    cv.img
}

/// PNG bytes of an image (deterministic: fixed compression and filter; fast compression, which
/// costs about a fifth of the default's time for files a little larger).
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, image::ImageError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn chip(v: f32, w: usize, h: usize) -> Chip {
        Chip {
            rgb: Array3::from_elem((3, h, w), v),
            valid: Array2::from_elem((h, w), true),
            geo_transform: [1000.0, 0.5, 0.0, 2000.0, 0.0, -0.5],
        }
    }

    #[test]
    fn font_loads() {
        assert!(font().is_some());
        assert!(Canvas::text_width(14.0, "100 m") > 20);
    }

    #[test]
    fn stretch_is_shared_by_both_dates() {
        let mut a = chip(100.0, 10, 10);
        let b = chip(300.0, 10, 10);
        a.valid[(0, 0)] = false;
        a.rgb[(0, 0, 0)] = 1.0e9;
        let s = joint_stretch(&[&a, &b]);
        assert_eq!(s.lo, [100.0; 3]);
        assert_eq!(s.hi, [300.0; 3]);
        assert_eq!(s.byte(0, 100.0), 0);
        assert_eq!(s.byte(0, 300.0), 255);
    }

    #[test]
    fn nice_lengths() {
        assert_eq!(nice_length(73.0), 50.0);
        assert_eq!(nice_length(19.9), 10.0);
        assert_eq!(nice_length(2.5), 2.0);
        assert_eq!(nice_length(1200.0), 1000.0);
    }

    #[test]
    fn pixel_coordinates_invert_the_geotransform() {
        let f = Frame {
            geo_transform: [1000.0, 0.5, 0.0, 2000.0, 0.0, -0.5],
            width: 10,
            height: 10,
            metres_per_unit: 1.0,
        };
        assert_eq!(f.to_pixel(1002.5, 1999.0), (5.0, 2.0));
        assert_eq!(f.north(), (0.0, -1.0));
        assert_eq!(f.scale(), 16);
        assert_eq!(f.metres_per_pixel(), 0.5);
    }

    #[test]
    fn draws_the_change_polygon_in_red() {
        use geo::polygon;
        let c = chip(100.0, 40, 40);
        let change = MultiPolygon::new(vec![polygon![
            (x: 1005.0, y: 1995.0), (x: 1010.0, y: 1995.0), (x: 1010.0, y: 1990.0),
            (x: 1005.0, y: 1990.0), (x: 1005.0, y: 1995.0)
        ]]);
        let empty = MultiPolygon::new(vec![]);
        let frame = Frame {
            geo_transform: c.geo_transform,
            width: 40,
            height: 40,
            metres_per_unit: 1.0,
        };
        let s = joint_stretch(&[&c]);
        let img = true_colour(
            &c,
            &s,
            frame,
            &Overlays {
                change: &change,
                parcel: &empty,
                permits: &[],
            },
            &Labels::default(),
        );
        // The polygon's west edge at x = 1005 is chip column 10, display column 10 × 12.
        let k = frame.scale() as u32;
        let y = HEADER_PX + 15 * k;
        assert_eq!(img.get_pixel(10 * k, y).0, CHANGE_RGB);
    }
}
