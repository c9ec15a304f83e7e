//! The process's open-file limit: every connected session holds a socket, so
//! the soft limit (often 1,024 by default) and not memory is what first caps
//! the number of sessions one gateway can hold. At start it is raised to the
//! hard limit, and the session count that leaves room for is logged.

/// File descriptors kept for everything that is not a session's socket:
/// the store's files, HTTP clients and connections, webhook and media
/// requests, the runtime's own.
pub const RESERVED: u64 = 1_024;

/// Raises the soft open-file limit to the hard limit and logs the outcome:
/// the limit now in force and about how many sessions it allows. Never
/// fails the start: a limit that cannot be raised is logged as a warning.
pub fn raise_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(
            open_files = limit,
            sessions = sessions_allowed(limit),
            "open-file limit"
        ),
        Err(error) => tracing::warn!(
            %error,
            "cannot raise the open-file limit; it bounds how many sessions can connect"
        ),
    }
}

/// About how many connected sessions an open-file limit of `limit` allows
/// (one socket each, beyond [`RESERVED`]).
pub fn sessions_allowed(limit: u64) -> u64 {
    limit.saturating_sub(RESERVED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_raised_to_the_hard_limit() {
        raise_limit();
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        // `increase_nofile_limit` stops at the hard limit (and, on macOS, at
        // the kernel's per-process maximum); on Linux the two are equal.
        if cfg!(target_os = "linux") {
            assert_eq!(soft, hard);
        }
        assert_eq!(sessions_allowed(100), 0);
        assert_eq!(sessions_allowed(65_536), 64_512);
    }
}
