//! Runs the `httpwg` binary against an address and returns what it printed; it is killed
//! when it outlives its time.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{ConformError, Options};

/// The suite's binary: `$H2LAB_HTTPWG`, else `httpwg` on the PATH or in ~/.cargo/bin.
pub fn locate() -> Result<PathBuf, ConformError> {
    if let Some(p) = std::env::var_os("H2LAB_HTTPWG") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(ConformError::Missing(p.display().to_string()))
        };
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("httpwg"))
        .find(|p| p.is_file())
        .ok_or_else(|| ConformError::Missing("httpwg".into()))
}

/// Runs the suite; its stdout and stderr together.
pub fn run(addr: SocketAddr, opts: &Options) -> Result<String, ConformError> {
    let mut cmd = Command::new(locate()?);
    // Verbose: each case is named as it starts, so a case the suite panics in is known.
    cmd.arg("-v")
        .arg("-a")
        .arg(addr.to_string())
        .arg("--frame-timeout")
        .arg(opts.frame_timeout_ms.to_string())
        .arg("--connect-timeout")
        .arg("2000");
    if let Some(f) = &opts.filter {
        cmd.arg("-f").arg(f);
    }
    // The suite preallocates 256 MiB of buffers by default; 16 MiB serve its cases.
    // One case at a time: 107 cases at once on a small machine measure its scheduler.
    cmd.env("SEQUENTIAL", "1")
        .env("BUFFET_NUM_BUFS", "4096")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + opts.timeout;
    let mut killed = false;
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut text = reader.join().unwrap_or_default();
    text.push_str(&err_reader.join().unwrap_or_default());
    if killed {
        tracing::warn!(
            "the suite ran past {:?} and was stopped; its cases so far are kept",
            opts.timeout
        );
    }
    Ok(text)
}
