//! Order statistics of `f32` values in the order of `f32::total_cmp`, found on integer keys: the
//! keys compare as plain unsigned integers, which selection does several times faster than
//! through a comparison closure, and map back to the very same values.

/// The unsigned key of `x` whose integer order is `f32::total_cmp`'s order of the values.
#[inline]
pub fn total_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The value of a key made by [`total_key`] (bit for bit).
#[inline]
pub fn from_total_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// The values at the given 0-based ranks in `total_cmp` order (each rank below the number of
/// values): what indexing a sorted copy would give. Also returns the keys, in no particular
/// order, for callers that go on with the same values.
pub fn ranked(values: Vec<f32>, ranks: &[usize]) -> (Vec<f32>, Vec<u32>) {
    // Same size and alignment: the keys reuse the values' allocation.
    let mut keys: Vec<u32> = values.into_iter().map(total_key).collect();
    let out = ranks
        .iter()
        .map(|&r| from_total_key(*keys.select_nth_unstable(r).1))
        .collect();
    (out, keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn keys_order_and_round_trip_as_total_cmp(a in any::<u32>(), b in any::<u32>()) {
            let (x, y) = (f32::from_bits(a), f32::from_bits(b));
            prop_assert_eq!(total_key(x).cmp(&total_key(y)), x.total_cmp(&y));
            prop_assert_eq!(from_total_key(total_key(x)).to_bits(), a);
        }

        #[test]
        fn ranked_values_are_those_of_a_sorted_copy(
            v in proptest::collection::vec(any::<u32>().prop_map(f32::from_bits), 1..300),
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..4),
        ) {
            let mut sorted = v.clone();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let ranks: Vec<usize> = picks.iter().map(|i| i.index(v.len())).collect();
            let (got, keys) = ranked(v.clone(), &ranks);
            for (r, g) in ranks.iter().zip(&got) {
                prop_assert_eq!(g.to_bits(), sorted[*r].to_bits());
            }
            let mut back: Vec<u32> = keys.iter().map(|k| from_total_key(*k).to_bits()).collect();
            let mut want: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
            back.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(back, want);
        }
    }
}
