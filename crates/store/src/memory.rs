//! Sizes checked against the memory there is, before anything is allocated.
//!
//! A flag such as `--d-sae 4000000000` asks for a dictionary of hundreds of
//! gigabytes; allocating it aborts the process ("memory allocation of ...
//! bytes failed"). Every command that allocates from a size it was given
//! estimates the bytes first and calls [`check`], which fails with a
//! [`MemoryError`] naming the flag, the bytes needed and the bytes available.
//!
//! The memory available is, in order:
//!
//! 1. `KIBITZER_MEMORY_BYTES` (a number of bytes) when set: to allow more
//!    than the check sees (swap, memory about to be freed) or to test it;
//! 2. on Linux, `MemAvailable` of `/proc/meminfo`, lowered to what the
//!    control group's `memory.max` leaves (cgroup v2) when that is smaller;
//! 3. elsewhere, nothing is known, and only sizes no process can address
//!    (above `isize::MAX` bytes) are refused.
//!
//! Estimates are for the host: a dictionary trained on a GPU is still
//! initialised on the host first.

use std::path::Path;

/// The environment variable that overrides the memory available, in bytes.
pub const MEMORY_ENV: &str = "KIBITZER_MEMORY_BYTES";

/// How much memory there is for a new allocation, and where that number
/// came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    /// Bytes available, or `None` when the system does not say.
    pub bytes: Option<u64>,
    /// Where the number comes from (for messages).
    pub source: String,
}

/// A size that does not fit in memory.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what}: needs about {} ({needed} bytes), but {} available ({origin}); use smaller values{}",
    human(*needed),
    available.map_or_else(|| "no more than isize::MAX bytes can be".to_string(), |b| format!("{} ({b} bytes) is", human(b as u128))),
    if available.is_some() { format!(", or set {MEMORY_ENV} to the bytes the check should allow") } else { String::new() }
)]
pub struct MemoryError {
    /// The flag or field and its value (`--d-sae 4000000000`).
    pub what: String,
    /// Bytes the estimate needs.
    pub needed: u128,
    /// Bytes available, when known.
    pub available: Option<u64>,
    /// Where the available number came from.
    pub origin: String,
}

/// Bytes of `count` f32 values: `count * 4`, saturating.
pub fn f32_bytes(count: u128) -> u128 {
    count.saturating_mul(4)
}

/// The product of `factors`, saturating (sizes multiplied without overflow).
pub fn product(factors: &[usize]) -> u128 {
    factors
        .iter()
        .fold(1u128, |acc, &f| acc.saturating_mul(f as u128))
}

/// The memory available now (see the module documentation for the order).
pub fn available() -> Available {
    if let Ok(text) = std::env::var(MEMORY_ENV)
        && let Ok(bytes) = text.trim().parse::<u64>()
    {
        return Available {
            bytes: Some(bytes),
            source: format!("{MEMORY_ENV}={bytes}"),
        };
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_available(&text));
    let cgroup = cgroup_room(Path::new("/sys/fs/cgroup"));
    match (meminfo, cgroup) {
        (Some(m), Some(c)) if c < m => Available {
            bytes: Some(c),
            source: "the control group's memory.max less memory.current".into(),
        },
        (Some(m), _) => Available {
            bytes: Some(m),
            source: "MemAvailable in /proc/meminfo".into(),
        },
        (None, Some(c)) => Available {
            bytes: Some(c),
            source: "the control group's memory.max less memory.current".into(),
        },
        (None, None) => Available {
            bytes: None,
            source: "the system does not report available memory".into(),
        },
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    let unit = match words.next() {
        Some("kB") | Some("KB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

/// What a cgroup v2 limit leaves (`memory.max - memory.current`), if set.
fn cgroup_room(root: &Path) -> Option<u64> {
    let max = std::fs::read_to_string(root.join("memory.max")).ok()?;
    let max: u64 = max.trim().parse().ok()?; // "max": no limit
    let current: u64 = std::fs::read_to_string(root.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(current))
}

/// Refuses `needed` bytes for `what` (a flag and its value, such as
/// `--d-sae 4000000000`) when they exceed the memory [`available`].
pub fn check(what: impl Into<String>, needed: u128) -> Result<(), MemoryError> {
    check_against(what, needed, &available())
}

/// [`check`] against a given [`Available`].
pub fn check_against(
    what: impl Into<String>,
    needed: u128,
    available: &Available,
) -> Result<(), MemoryError> {
    let limit = available.bytes.map_or(isize::MAX as u128, |b| b as u128);
    if needed <= limit {
        return Ok(());
    }
    Err(MemoryError {
        what: what.into(),
        needed,
        available: available.bytes,
        origin: available.source.clone(),
    })
}

/// `bytes` in binary units (`1.5 GiB`).
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_available_and_cgroup_room() {
        let text = "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(mem_available(text), Some(22_000_000 * 1024));
        assert_eq!(mem_available("MemTotal: 5 kB\n"), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_room(dir.path()), None);
        std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
        std::fs::write(dir.path().join("memory.current"), "100\n").unwrap();
        assert_eq!(cgroup_room(dir.path()), None, "no limit");
        std::fs::write(dir.path().join("memory.max"), "1000\n").unwrap();
        assert_eq!(cgroup_room(dir.path()), Some(900));
    }

    #[test]
    fn refuses_what_does_not_fit_naming_flag_and_bytes() {
        let small = Available {
            bytes: Some(1 << 30),
            source: "a test".into(),
        };
        assert!(check_against("--d-sae 8", 1 << 20, &small).is_ok());
        let err = check_against(
            "--d-sae 4000000000",
            f32_bytes(product(&[4_000_000_000, 64])),
            &small,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--d-sae 4000000000"), "{err}");
        assert!(err.contains("1024000000000 bytes"), "{err}");
        assert!(
            err.contains("1.0 GiB (1073741824 bytes) is available (a test)"),
            "{err}"
        );
        assert!(err.contains(MEMORY_ENV), "{err}");
        // Nothing known: only what no process can address is refused.
        let unknown = Available {
            bytes: None,
            source: "unknown".into(),
        };
        assert!(check_against("x", 1 << 40, &unknown).is_ok());
        let err = check_against(
            "--d-in 99999999999",
            product(&[usize::MAX, usize::MAX]),
            &unknown,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("isize::MAX"), "{err}");
        assert_eq!(human(1536), "1.5 KiB");
        assert!(available().source.len() > 3);
    }
}
