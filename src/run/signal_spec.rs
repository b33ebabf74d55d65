//! Signals as the command line names them: `15`, `TERM`, `SIGTERM`,
//! `RTMIN+3`, `SIGRTMAX`; and `--rewrite S:R` pairs.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::signalfd;

/// A signal number from its name or number (1 to `SIGRTMAX`).
pub(crate) fn parse_signal(text: &str) -> Result<i32, String> {
    let trimmed = text.trim();
    let number = match trimmed.parse::<i32>() {
        Ok(number) => number,
        Err(_) => by_name(trimmed).ok_or_else(|| {
            format!("{text:?} is not a signal: expected a number or a name like TERM, SIGUSR1 or RTMIN+2")
        })?,
    };
    if !(1..=signalfd::MAX).contains(&number) {
        return Err(format!(
            "{number} is not a signal: expected 1 to {}",
            signalfd::MAX
        ));
    }
    Ok(number)
}

fn by_name(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let offset = |rest: &str| -> Option<i32> {
        match rest {
            "" => Some(0),
            _ => rest.parse::<i32>().ok(),
        }
    };
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return Some(signalfd::RTMIN + offset(rest.strip_prefix('+').unwrap_or(rest))?);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        let back = match rest {
            "" => 0,
            _ => rest.strip_prefix('-')?.parse::<i32>().ok()?,
        };
        return Some(signalfd::MAX - back);
    }
    nix::sys::signal::Signal::from_str(&format!("SIG{bare}"))
        .ok()
        .map(|signal| signal as i32)
}

/// One `--rewrite S:R`: pidguard handles a received S as if it were R; R
/// of 0 drops S.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewrite {
    /// The signal received.
    pub(crate) from: i32,
    /// What it is handled as; 0: dropped.
    pub(crate) to: i32,
}

/// Parses `S:R` (names or numbers; R may be 0).
pub(crate) fn parse_rewrite(text: &str) -> Result<Rewrite, String> {
    let (from, to) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected S:R, e.g. TERM:QUIT, 15:3 or HUP:0"))?;
    let from = parse_signal(from)?;
    if !signalfd::is_received(from) {
        return Err(format!(
            "{text:?}: {} never reaches pidguard's handling (it cannot be caught, or it is the reaper's SIGCHLD)",
            super::signals::name(from)
        ));
    }
    let to = match to.trim() {
        "0" => 0,
        other => parse_signal(other)?,
    };
    Ok(Rewrite { from, to })
}

/// Every rewrite, by the signal received. A signal given twice keeps the
/// last rewrite, as a later option overrides an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rewrites(BTreeMap<i32, i32>);

impl Rewrites {
    /// The table for `rewrites`.
    pub(crate) fn new(rewrites: &[Rewrite]) -> Self {
        Self(rewrites.iter().map(|r| (r.from, r.to)).collect())
    }

    /// What `number` is handled as; `None` when it is dropped.
    pub(crate) fn apply(&self, number: i32) -> Option<i32> {
        match self.0.get(&number) {
            Some(0) => None,
            Some(&to) => Some(to),
            None => Some(number),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse_signal("15"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("sigusr1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("SIGSTKFLT"), Ok(libc::SIGSTKFLT));
        assert_eq!(parse_signal("RTMIN"), Ok(34));
        assert_eq!(parse_signal("SIGRTMIN+3"), Ok(37));
        assert_eq!(parse_signal("RTMAX"), Ok(64));
        assert_eq!(parse_signal("RTMAX-1"), Ok(63));
        assert_eq!(parse_signal("32"), Ok(32));
        for bad in ["0", "65", "-1", "TERMINATE", "", "RTMAX+1"] {
            let error = parse_signal(bad).expect_err(bad);
            assert!(!error.is_empty(), "{bad}");
        }
    }

    #[test]
    fn rewrites_map_drop_and_pass_the_rest() {
        let rewrites = Rewrites::new(&[
            parse_rewrite("TERM:QUIT").expect("valid"),
            parse_rewrite("2:0").expect("valid"),
        ]);
        assert_eq!(rewrites.apply(libc::SIGTERM), Some(libc::SIGQUIT));
        assert_eq!(rewrites.apply(libc::SIGINT), None);
        assert_eq!(rewrites.apply(libc::SIGHUP), Some(libc::SIGHUP));
        assert_eq!(
            parse_rewrite("USR1:KILL"),
            Ok(Rewrite {
                from: libc::SIGUSR1,
                to: libc::SIGKILL
            })
        );
    }

    #[test]
    fn rewrites_name_what_is_wrong() {
        for (bad, says) in [
            ("TERM", "S:R"),
            ("KILL:TERM", "cannot be caught"),
            ("CHLD:TERM", "SIGCHLD"),
            ("TERM:NOPE", "not a signal"),
        ] {
            let error = parse_rewrite(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
