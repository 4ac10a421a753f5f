//! Order statistics of `f32` (and `f64`) values in `total_cmp` order, found on integer keys: the
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

/// [`total_key`] for `f64`: the unsigned key whose integer order is `f64::total_cmp`'s.
#[inline]
pub fn total_key64(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

/// The value of a key made by [`total_key64`] (bit for bit).
#[inline]
pub fn from_total_key64(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// The median of `f64` values (the upper middle one) in `total_cmp` order, 0 when there are
/// none: the value `select_nth_unstable_by(len / 2, f64::total_cmp)` gives, bit for bit, found on
/// the integer keys.
pub fn median64(values: &[f64]) -> f64 {
    let mut keys: Vec<u64> = values.iter().map(|v| total_key64(*v)).collect();
    if keys.is_empty() {
        return 0.0;
    }
    let mid = keys.len() / 2;
    from_total_key64(*keys.select_nth_unstable(mid).1)
}

/// The values at the given 0-based ranks in `total_cmp` order (each rank below the number of
/// values): what indexing a sorted copy would give. Also returns the keys, in no particular
/// order, for callers that go on with the same values.
pub fn ranked(values: Vec<f32>, ranks: &[usize]) -> (Vec<f32>, Vec<u32>) {
    // Same size and alignment: the keys reuse the values' allocation.
    let mut keys: Vec<u32> = values.into_iter().map(total_key).collect();
    if keys.len() < RADIX_MIN {
        let out = ranks
            .iter()
            .map(|&r| from_total_key(*keys.select_nth_unstable(r).1))
            .collect();
        return (out, keys);
    }
    let out = radix_ranked(&keys, ranks)
        .into_iter()
        .map(from_total_key)
        .collect();
    (out, keys)
}

/// From this many values on, [`ranked`] counts the keys' top sixteen bits instead of selecting:
/// one pass over the keys and a second over the few that share the wanted rank's top bits.
const RADIX_MIN: usize = 1 << 14;

/// The keys at the given ranks (each below `keys.len()`), by a histogram of their top sixteen
/// bits: the rank's bucket is found by counting, then the rank is selected among the keys of that
/// bucket alone. The same keys as selecting among all of them.
fn radix_ranked(keys: &[u32], ranks: &[usize]) -> Vec<u32> {
    let mut count = vec![0u32; 1 << 16];
    for k in keys {
        count[(k >> 16) as usize] += 1;
    }
    ranks
        .iter()
        .map(|&r| {
            // The bucket holding rank `r`, and how many keys lie in the buckets below it.
            let (mut bucket, mut below) = (0usize, 0usize);
            for (b, c) in count.iter().enumerate() {
                if below + *c as usize > r {
                    bucket = b;
                    break;
                }
                below += *c as usize;
            }
            let mut same: Vec<u32> = keys
                .iter()
                .copied()
                .filter(|k| (k >> 16) as usize == bucket)
                .collect();
            *same.select_nth_unstable(r - below).1
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn f64_keys_order_and_round_trip_as_total_cmp(a in any::<u64>(), b in any::<u64>()) {
            let (x, y) = (f64::from_bits(a), f64::from_bits(b));
            prop_assert_eq!(total_key64(x).cmp(&total_key64(y)), x.total_cmp(&y));
            prop_assert_eq!(from_total_key64(total_key64(x)).to_bits(), a);
        }

        #[test]
        fn the_f64_median_is_the_one_selection_by_total_cmp_gives(
            v in proptest::collection::vec(
                prop_oneof![
                    4 => -1e3f64..1e3,
                    1 => proptest::sample::select(vec![0.0, -0.0, 2.5, f64::NAN, -f64::NAN, f64::INFINITY]),
                ],
                0..200,
            ),
        ) {
            let mut want = v.clone();
            let want = if want.is_empty() {
                0.0
            } else {
                let mid = want.len() / 2;
                *want.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1
            };
            prop_assert_eq!(median64(&v).to_bits(), want.to_bits());
        }

        #[test]
        fn keys_order_and_round_trip_as_total_cmp(a in any::<u32>(), b in any::<u32>()) {
            let (x, y) = (f32::from_bits(a), f32::from_bits(b));
            prop_assert_eq!(total_key(x).cmp(&total_key(y)), x.total_cmp(&y));
            prop_assert_eq!(from_total_key(total_key(x)).to_bits(), a);
        }

        #[test]
        fn counting_finds_the_keys_selection_finds(
            // Many values sharing few top bits (as imagery does), and any bits at all.
            narrow in proptest::collection::vec(0u32..4096, RADIX_MIN..RADIX_MIN + 2000),
            spread in proptest::collection::vec(any::<u32>(), 1..3000),
            high in any::<u32>(),
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..4),
        ) {
            let mut keys: Vec<u32> = narrow.iter().map(|k| (high & 0xffff_0000) | k).collect();
            keys.extend(&spread);
            let ranks: Vec<usize> = picks.iter().map(|i| i.index(keys.len())).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            let want: Vec<u32> = ranks.iter().map(|r| sorted[*r]).collect();
            prop_assert_eq!(radix_ranked(&keys, &ranks), want);
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
