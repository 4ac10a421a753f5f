//! Whole-window buffers kept by each thread from one cell to the next.
//!
//! A cell's window is about a million pixels, so a band-major array of its four bands is 16 MB:
//! large enough that the allocator hands it back to the kernel when it is freed, and the next
//! cell's copy is zeroed and faulted in again page by page (~2 % of a scan's CPU for the mapped
//! after bands alone). A buffer taken from here keeps whatever the thread last left in it: only
//! arrays that are written in full before they are read may use one.

use std::cell::RefCell;

/// Buffers a thread keeps between cells (one per array that uses the pool).
const KEEP: usize = 1;

thread_local! {
    static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` values for an array the caller writes in full before reading any of it:
/// the values in it are unspecified (those a previous cell left, or zero).
pub(crate) fn take_f32(len: usize) -> Vec<f32> {
    let mut v = F32.with(|p| p.borrow_mut().pop()).unwrap_or_default();
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, 0.0);
    }
    v
}

/// Returns a buffer taken with [`take_f32`] (or any other) for the thread's next cell.
pub(crate) fn give_f32(v: Vec<f32>) {
    F32.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < KEEP {
            p.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_at_the_length_asked_for() {
        give_f32(vec![1.0; 10]);
        let v = take_f32(4);
        assert_eq!(v.len(), 4);
        assert!(v.capacity() >= 10, "the buffer given back is the one taken");
        give_f32(v);
        let v = take_f32(12);
        assert_eq!(v.len(), 12);
        assert_eq!(
            &v[4..],
            &[0.0; 8],
            "growth beyond the kept values is zeroed"
        );
        assert_eq!(take_f32(3).len(), 3, "an empty pool gives a new buffer");
    }
}
