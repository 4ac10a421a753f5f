//! GDAL's 16-bit image checksum (what `gdalinfo -checksum` prints), computed over pixels we read
//! ourselves: if our reading path decodes a file the way GDAL does, the checksums agree.

/// The primes GDAL cycles through, one per pixel, across rows.
const PRIMES: [i64; 11] = [7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43];

/// Converts a pixel value to the 32-bit integer GDAL sums: integers as they are, floating-point
/// values rounded half up (like GDALCopyWords), NaN and infinities as `i32::MIN`.
fn as_checksum_int(v: f64, floating: bool) -> i64 {
    if !floating {
        return v.clamp(i32::MIN as f64, i32::MAX as f64) as i64;
    }
    if !v.is_finite() {
        return i32::MIN as i64;
    }
    let r = (v + 0.5).floor();
    if r < -2147483647.0 {
        -2147483647
    } else if r > 2147483647.0 {
        2147483647
    } else {
        r as i64
    }
}

/// GDAL's checksum of a band's pixels given row by row (`values.len()` = width × height).
pub fn gdal_checksum(values: &[f64], floating: bool) -> u16 {
    let mut sum: i64 = 0;
    let mut prime = 0usize;
    for &v in values {
        let iv = as_checksum_int(v, floating);
        // C's `%` truncates toward zero, as Rust's does.
        sum += iv % PRIMES[prime];
        prime = (prime + 1) % PRIMES.len();
        sum &= 0xffff;
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_known_values() {
        // 7 % 7 + 11 % 11 + 14 % 13 = 1
        assert_eq!(gdal_checksum(&[7.0, 11.0, 14.0], false), 1);
        assert_eq!(gdal_checksum(&[], false), 0);
        // Floats round half up before the sum: 6.5 -> 7 -> 0.
        assert_eq!(gdal_checksum(&[6.5], true), 0);
        assert_eq!(gdal_checksum(&[6.4], true), 6);
    }

    #[test]
    fn negative_remainders_follow_c() {
        // -8 % 7 = -1 in C; the running sum is masked to 16 bits.
        assert_eq!(gdal_checksum(&[-8.0], false), 0xffff);
    }
}
