//! Sizes checked against the machine's memory before anything is allocated: a request for
//! more than the machine has (a spec asking for `10¹⁰` points, say) is a typed error that
//! says what was asked for, never an allocation failure.

use crate::error::{DataError, Result};

/// The physical memory of this machine in bytes (`MemTotal` of `/proc/meminfo`); `None`
/// where it cannot be read (then [`check_memory`] checks only that the size is addressable).
pub fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The bytes of `rows × cols` values of `f64` (exact, no overflow).
pub fn matrix_bytes(rows: usize, cols: usize) -> u128 {
    rows as u128 * cols as u128 * 8
}

/// Checks that `bytes`, what `what` needs, fit in this machine's memory (and in the address
/// space).
///
/// ```
/// use geomem_data::{check_memory, matrix_bytes};
/// assert!(check_memory("1000 points of dimension 30", matrix_bytes(1000, 30)).is_ok());
/// let e = check_memory("10^10 points of dimension 30", matrix_bytes(10_000_000_000, 30)).unwrap_err();
/// assert!(e.to_string().contains("10^10 points"));
/// ```
///
/// # Errors
/// [`DataError::TooLarge`] when they do not fit.
pub fn check_memory(what: &str, bytes: u128) -> Result<()> {
    let available = physical_memory().map_or(isize::MAX as u128, u128::from).min(isize::MAX as u128);
    if bytes <= available {
        return Ok(());
    }
    Err(DataError::TooLarge { what: what.to_string(), bytes, available })
}
