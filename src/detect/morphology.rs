//! Binary morphology and connected components on boolean masks (through `imageproc`).

use image::{GrayImage, Luma};
use imageproc::distance_transform::Norm;
use imageproc::region_labelling::{connected_components, Connectivity};
use ndarray::Array2;

fn to_gray(mask: &Array2<bool>) -> GrayImage {
    let (h, w) = mask.dim();
    let raw: Vec<u8> = mask.iter().map(|v| if *v { 255 } else { 0 }).collect();
    // The buffer has exactly w × h bytes, so `from_raw` cannot fail.
    GrayImage::from_raw(w as u32, h as u32, raw)
        .unwrap_or_else(|| GrayImage::new(w as u32, h as u32))
}

fn from_gray(img: GrayImage) -> Array2<bool> {
    let (w, h) = img.dimensions();
    let raw: Vec<bool> = img.into_raw().into_iter().map(|v| v > 0).collect();
    Array2::from_shape_vec((h as usize, w as usize), raw)
        .unwrap_or_else(|_| Array2::from_elem((h as usize, w as usize), false))
}

/// Opening (erosion then dilation) with a (2r+1)² square: removes specks and lines thinner than it.
pub fn open(mask: &Array2<bool>, r: u8) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    from_gray(imageproc::morphology::open(&to_gray(mask), Norm::LInf, r))
}

/// Closing (dilation then erosion) with a (2r+1)² square: fills gaps and holes narrower than it.
pub fn close(mask: &Array2<bool>, r: u8) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    from_gray(imageproc::morphology::close(&to_gray(mask), Norm::LInf, r))
}

/// Dilation with a (2r+1)² square.
pub fn dilate(mask: &Array2<bool>, r: u8) -> Array2<bool> {
    if r == 0 {
        return mask.clone();
    }
    from_gray(imageproc::morphology::dilate(&to_gray(mask), Norm::LInf, r))
}

/// 8-connected components: 0 is background, components are numbered from 1 in raster order of
/// their first pixel. Returns the labels and the number of components.
pub fn components(mask: &Array2<bool>) -> (Array2<u32>, usize) {
    let img = to_gray(mask);
    let labels = connected_components(&img, Connectivity::Eight, Luma([0u8]));
    let (w, h) = labels.dimensions();
    let raw = labels.into_raw();
    let max = raw.iter().copied().max().unwrap_or(0);
    let out = Array2::from_shape_vec((h as usize, w as usize), raw)
        .unwrap_or_else(|_| Array2::zeros((h as usize, w as usize)));
    (out, max as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_removes_specks_closing_fills_holes() {
        let mut m = Array2::from_elem((12, 12), false);
        for y in 2..9 {
            for x in 2..9 {
                m[[y, x]] = true;
            }
        }
        m[[5, 5]] = false; // a hole
        m[[0, 11]] = true; // a speck
        let o = open(&m, 1);
        assert!(!o[[0, 11]]);
        let c = close(&o, 1);
        assert!(c[[5, 5]]);
        assert!(c[[2, 2]] && c[[8, 8]]);
    }

    #[test]
    fn components_are_eight_connected() {
        let mut m = Array2::from_elem((5, 5), false);
        m[[0, 0]] = true;
        m[[1, 1]] = true; // diagonal: same component
        m[[4, 4]] = true;
        let (l, n) = components(&m);
        assert_eq!(n, 2);
        assert_eq!(l[[0, 0]], l[[1, 1]]);
        assert_ne!(l[[0, 0]], l[[4, 4]]);
        assert_eq!(l[[2, 2]], 0);
    }
}
