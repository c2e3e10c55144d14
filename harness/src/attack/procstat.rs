//! The target's memory and CPU while an attack runs: every process of its process group
//! (a proxy's workers, a host's app), read from /proc.

use std::fs;

use serde::Serialize;

/// One reading of a process group.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the sampling began.
    pub t: f64,
    /// Resident memory of all the group's processes, bytes.
    pub rss_bytes: u64,
    /// CPU time of all the group's processes so far, seconds (user + system).
    pub cpu_seconds: f64,
    /// Processes in the group.
    pub processes: u32,
}

/// Fields 5 (pgrp), 14 (utime) and 15 (stime) of a `/proc/PID/stat` line, read after the
/// command name's closing parenthesis (the name may hold spaces and parentheses).
pub fn parse_stat(line: &str) -> Option<(i32, u64, u64)> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // rest starts at field 3 (state): pgrp is field 5, utime 14, stime 15.
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime = fields.get(11)?.parse().ok()?;
    let stime = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime, stime))
}

/// Resident pages, the second field of `/proc/PID/statm`.
pub fn parse_statm(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// The process group of `pid`.
pub fn group_of(pid: i32) -> Option<i32> {
    let line = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&line).map(|(pgrp, _, _)| pgrp)
}

/// Reads every process of group `pgrp` now; `t` is stamped on the sample.
pub fn sample_group(pgrp: i32, t: f64) -> Sample {
    let ticks = clock_ticks();
    let page = page_size();
    let mut s = Sample {
        t,
        rss_bytes: 0,
        cpu_seconds: 0.0,
        processes: 0,
    };
    let Ok(dir) = fs::read_dir("/proc") else {
        return s;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process may end between listing and reading: skip it.
        let Ok(line) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((group, utime, stime)) = parse_stat(&line) else {
            continue;
        };
        if group != pgrp {
            continue;
        }
        let pages = fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|t| parse_statm(&t))
            .unwrap_or(0);
        s.rss_bytes += pages * page;
        s.cpu_seconds += (utime + stime) as f64 / ticks;
        s.processes += 1;
    }
    s
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64)
}

/// Peak memory and CPU use (cores) of the samples within `[from, to)` seconds.
pub fn summarise(samples: &[Sample], from: f64, to: f64) -> Option<(u64, f64)> {
    let within: Vec<&Sample> = samples.iter().filter(|s| s.t >= from && s.t < to).collect();
    let (first, last) = (within.first()?, within.last()?);
    let peak = within.iter().map(|s| s.rss_bytes).max()?;
    let span = last.t - first.t;
    let cores = if span > 0.0 {
        (last.cpu_seconds - first.cpu_seconds) / span
    } else {
        0.0
    };
    Some((peak, cores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (my (odd) app) S 1 4200 4200 0 -1 4194560 100 0 0 0 37 12 0 0 20 0 3 0 99 1000 50";
        assert_eq!(parse_stat(line), Some((4200, 37, 12)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_statm("1000 250 30 1 0 200 0\n"), Some(250));
    }

    #[test]
    fn the_test_process_group_is_found_and_measured() {
        let me = std::process::id() as i32;
        let group = group_of(me).expect("own stat");
        let s = sample_group(group, 0.0);
        assert!(s.processes >= 1);
        assert!(s.rss_bytes > 1 << 20, "rss {}", s.rss_bytes);
    }

    #[test]
    fn peaks_and_cores_come_from_the_window_asked_for() {
        let at = |t: f64, rss: u64, cpu: f64| Sample {
            t,
            rss_bytes: rss,
            cpu_seconds: cpu,
            processes: 1,
        };
        let s = [
            at(0.0, 10, 0.0),
            at(1.0, 30, 0.5),
            at(2.0, 20, 1.5),
            at(3.0, 90, 1.6),
        ];
        assert_eq!(summarise(&s, 1.0, 3.0), Some((30, 1.0)));
        assert_eq!(summarise(&s, 5.0, 6.0), None);
    }
}
