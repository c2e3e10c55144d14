//! Records, for the run manifest, the git commit and the versions of the protocol crates
//! this binary was built with (read from Cargo.lock).

fn main() {
    let lock = std::fs::read_to_string("../Cargo.lock").unwrap_or_default();
    for name in ["rustls", "h2", "openssl-src", "hyper"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        let version = lock
            .find(&needle)
            .map(|i| &lock[i + needle.len()..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("unknown");
        let var = format!("H2LAB_DEP_{}", name.to_uppercase().replace('-', "_"));
        println!("cargo:rustc-env={var}={version}");
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=H2LAB_GIT_COMMIT={commit}");
    println!("cargo:rerun-if-changed=../Cargo.lock");
    println!("cargo:rerun-if-changed=../.git/HEAD");
}
