//! `h2lab k8s render` and `h2lab k8s collect`: the generator as a Kubernetes Indexed
//! Job, and its agents' results merged back into one run.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use super::agent::MAX_AGENTS;
use super::load::{duration, LoadArgs};
use super::{bad_input, print_out, UsageError};
use crate::agents::k8s::collect::{self, JobRef};
use crate::agents::k8s::scenario;
use crate::agents::k8s::{render, RenderSpec};
use crate::agents::start::parse_start_at;
use crate::model::LoadModel;

/// Flags of `h2lab k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: K8sCommand,
}

/// Subcommands of `h2lab k8s`.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Write the Indexed Job and headless Service that run `h2lab load` as N agents
    /// (the load from a scenario's cell, the flags after `--`, or `--load`), checked as
    /// each agent will run them.
    Render(Box<RenderArgs>),
    /// Gather the agents' results (pod logs through kubectl, saved logs, or a shared
    /// volume) and merge them into one results directory.
    Collect(CollectArgs),
}

/// Flags of `h2lab k8s render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A scenario whose cell (an `external:URL` topology) gives the load, instead of
    /// flags after `--`.
    #[arg(value_name = "SCENARIO", conflicts_with_all = ["load", "load_args"])]
    pub scenario: Option<PathBuf>,
    /// The scenario's cell to render, when it has more than one.
    #[arg(long, value_name = "ID", requires = "scenario")]
    pub cell: Option<String>,
    /// How many agents (pods) share the load.
    #[arg(long, value_name = "N")]
    pub agents: usize,
    /// Container image with `h2lab` on its PATH.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Name of the Job and its Service (a DNS label).
    #[arg(long, default_value = "h2lab-load", value_name = "NAME")]
    pub name: String,
    /// Namespace of both objects (else kubectl's current one).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Agents' weights, e.g. `2,1,1` (default equal).
    #[arg(long, value_name = "LIST")]
    pub weights: Option<String>,
    /// Start every agent at this wall-clock time (RFC 3339 or Unix seconds) instead of
    /// on agent 0's release once all pods run. Needs synchronised node clocks.
    #[arg(long, value_name = "T0")]
    pub start_at: Option<String>,
    /// Port of agent 0's release.
    #[arg(long, default_value_t = 7070, value_name = "PORT")]
    pub release_port: u16,
    /// How long agents wait for every pod to be scheduled and report.
    #[arg(long, value_parser = duration, default_value = "5m", value_name = "DUR")]
    pub release_timeout: Duration,
    /// How late an agent may start and still send.
    #[arg(long, value_parser = duration, default_value = "1s", value_name = "DUR")]
    pub start_tolerance: Duration,
    /// CPU request per agent (no CPU limit is set: CFS throttling would show up as
    /// generator lag).
    #[arg(long, default_value = "1", value_name = "QTY")]
    pub cpu: String,
    /// Memory request and limit per agent.
    #[arg(long, default_value = "512Mi", value_name = "QTY")]
    pub memory: String,
    /// The Job's activeDeadlineSeconds (default: the wait for the start, warm-up,
    /// duration and request timeout, plus 60 s).
    #[arg(long, value_parser = duration, value_name = "DUR")]
    pub deadline: Option<Duration>,
    /// A ReadWriteMany PersistentVolumeClaim the agents write their results to (for long
    /// runs, whose logs the kubelet may rotate); else results go to the pods' logs.
    #[arg(long, value_name = "CLAIM")]
    pub results_claim: Option<String>,
    /// Directory to write service.json and job.json into; without it, one List on
    /// standard output (`| kubectl apply -f -`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The load's flags as one string (instead of after `--`), e.g.
    /// `--load "-r 20000 -c 64 -d 60s http://app:8080/"`.
    #[arg(
        long,
        value_name = "ARGS",
        conflicts_with = "load_args",
        allow_hyphen_values = true
    )]
    pub load: Option<String>,
    /// The load's flags, as for `h2lab load`.
    #[arg(last = true, value_name = "LOAD ARGS")]
    pub load_args: Vec<String>,
}

/// Flags of `h2lab k8s collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// The Job whose pods' logs to read with kubectl.
    #[arg(long, default_value = "h2lab-load", value_name = "NAME")]
    pub job: String,
    /// Its namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// The kubectl to run.
    #[arg(long, default_value = "kubectl", env = "KUBECTL", value_name = "PATH")]
    pub kubectl: String,
    /// Read saved pod logs instead of asking kubectl (`kubectl logs POD > FILE`).
    #[arg(long, num_args = 1.., value_name = "FILE", conflicts_with = "volume")]
    pub logs: Vec<PathBuf>,
    /// Read the shared results volume (its agent-I directories) instead.
    #[arg(long, value_name = "DIR")]
    pub volume: Option<PathBuf>,
    /// Results directory to write (default reports/merged-<time>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The load's flags parsed as `h2lab load` would.
#[derive(Debug, Parser)]
#[command(name = "h2lab load", no_binary_name = false)]
struct LoadOnly {
    #[command(flatten)]
    load: LoadArgs,
}

/// Flags the renderer sets itself, per pod.
const OWN_FLAGS: [&str; 8] = [
    "--agent",
    "--agent-weights",
    "--start-at",
    "--release-from",
    "--release-timeout",
    "--start-tolerance",
    "--results",
    "--quiet",
];
/// Flags that name files on this machine, which a pod does not have.
const LOCAL_FILES: [&str; 3] = ["--json", "--hlog", "--body-file"];

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl RenderArgs {
    fn load_args(&self) -> Result<Vec<String>, UsageError> {
        let args = match (&self.scenario, &self.load) {
            (Some(path), _) => {
                let plan = crate::scenario::load(path).map_err(|e| UsageError(e.to_string()))?;
                let cell = scenario::pick(&plan, self.cell.as_deref())
                    .map_err(|e| UsageError(format!("{}: {e}", path.display())))?;
                scenario::load_args(&plan, cell)
                    .map_err(|e| UsageError(format!("{}: {e}", path.display())))?
            }
            (None, Some(line)) => shlex::split(line)
                .ok_or_else(|| UsageError(format!("--load `{line}`: unbalanced quotes")))?,
            (None, None) => self.load_args.clone(),
        };
        if args.is_empty() {
            return Err(UsageError(
                "no load given: a SCENARIO, or `h2lab load` flags after `--` (or in --load), e.g. -- -r 10000 -d 60s http://app:8080/".into(),
            ));
        }
        for a in &args {
            let flag = a.split('=').next().unwrap_or(a);
            if OWN_FLAGS.contains(&flag) {
                return Err(UsageError(format!(
                    "load argument {flag}: the Job sets it for each pod (use k8s render's own --agents, --weights, --start-at...)"
                )));
            }
            if LOCAL_FILES.contains(&flag) {
                return Err(UsageError(format!(
                    "load argument {flag}: names a file on this machine, which the pods do not have (results come back with k8s collect)"
                )));
            }
        }
        Ok(args)
    }

    /// Validates everything, checking the load as each agent will run it.
    pub fn to_spec(&self, now: SystemTime) -> Result<RenderSpec, UsageError> {
        if !is_dns_label(&self.name) || self.name.len() > 50 {
            return Err(UsageError(format!(
                "--name `{}`: needs lower-case letters, digits and '-', at most 50 (pods are named NAME-INDEX-xxxxx)",
                self.name
            )));
        }
        if let Some(ns) = self.namespace.as_deref().filter(|n| !is_dns_label(n)) {
            return Err(UsageError(format!("--namespace `{ns}`: not a DNS label")));
        }
        if self.agents == 0 || self.agents > MAX_AGENTS {
            return Err(UsageError(format!(
                "--agents {}: between 1 and {MAX_AGENTS}",
                self.agents
            )));
        }
        if self.image.trim().is_empty() || self.image.contains(char::is_whitespace) {
            return Err(UsageError(format!(
                "--image `{}`: not an image reference",
                self.image
            )));
        }
        if self.release_port == 0 {
            return Err(UsageError(
                "--release-port 0: give the port agent 0 listens on".into(),
            ));
        }
        for (flag, q) in [("--cpu", &self.cpu), ("--memory", &self.memory)] {
            if !is_quantity(q) {
                return Err(UsageError(format!(
                    "{flag} `{q}`: not a Kubernetes quantity (e.g. 500m, 2, 512Mi)"
                )));
            }
        }
        if let Some(claim) = self.results_claim.as_deref().filter(|c| !is_dns_label(c)) {
            return Err(UsageError(format!(
                "--results-claim `{claim}`: not a claim name"
            )));
        }
        let t0 = match &self.start_at {
            Some(t) => Some(
                parse_start_at(t).map_err(|why| UsageError(format!("--start-at `{t}`: {why}")))?,
            ),
            None => None,
        };
        let load_args = self.load_args()?;
        let mut argv = vec!["h2lab load".to_string()];
        argv.extend(load_args.iter().cloned());
        let mut parsed = LoadOnly::try_parse_from(&argv)
            .map_err(|e| UsageError(format!("load arguments: {}", e.render().to_string().trim())))?
            .load;
        parsed.agents.agent_weights = self.weights.clone();
        parsed.agents.start_at = Some("0".into());
        parsed.agents.release_from = None;
        parsed.agents.results = None;
        let mut cfg = None;
        for i in 0..self.agents {
            parsed.agents.agent = Some(format!("{i}/{}", self.agents));
            let (c, plan) = parsed.to_config_offline(|_| None).map_err(|e| {
                UsageError(format!(
                    "load arguments, as agent {i} of {}: {e}",
                    self.agents
                ))
            })?;
            cfg.get_or_insert((c, plan));
        }
        let (cfg, plan) = cfg.expect("at least one agent");
        let weights = plan
            .map(|p| p.share.weights)
            .filter(|w| w.iter().any(|&x| x != 1));
        let deadline = match self.deadline {
            Some(d) => d,
            None => {
                let run = match (cfg.duration, cfg.model) {
                    (Some(d), _) => d,
                    (None, LoadModel::Open { rate }) => {
                        Duration::from_secs_f64(cfg.requests.unwrap_or(0) as f64 / rate)
                    }
                    (None, LoadModel::Closed) => {
                        return Err(UsageError(
                            "a closed-loop load bounded by -n only has no known length: give -d or --deadline".into(),
                        ))
                    }
                };
                let wait = match t0 {
                    Some(t0) => t0.duration_since(now).unwrap_or_default(),
                    None => self.release_timeout,
                };
                wait + cfg.warmup + run + cfg.timeout + Duration::from_secs(60)
            }
        };
        Ok(RenderSpec {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            agents: self.agents,
            weights,
            image: self.image.clone(),
            load_args,
            start_at: self.start_at.clone(),
            release_port: self.release_port,
            release_timeout: self.release_timeout,
            start_tolerance: self.start_tolerance,
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            deadline,
            results_claim: self.results_claim.clone(),
        })
    }
}

/// A Kubernetes resource quantity: a number, then an optional suffix.
fn is_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi",
    ];
    let digits = q.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &q[digits.len()..];
    !digits.is_empty()
        && digits
            .parse::<f64>()
            .is_ok_and(|v| v > 0.0 && v.is_finite())
        && !digits.contains(['e', 'E', '+', '-'])
        && SUFFIXES.contains(&suffix)
}

fn render_cmd(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let spec = match args.to_spec(SystemTime::now()) {
        Ok(s) => s,
        Err(e) => return bad_input(e),
    };
    let manifests = render(&spec);
    match &args.out {
        None => print_out(&manifests.list()),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --out {}", dir.display()))?;
            for (name, text) in manifests.files() {
                let path = dir.join(name);
                crate::output::atomic_write(&path, |w| w.write_all(text.as_bytes()))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let ns = spec
                .namespace
                .as_ref()
                .map(|n| format!(" -n {n}"))
                .unwrap_or_default();
            print_out(&format!(
                "wrote {dir}/service.json and {dir}/job.json ({n} agents)\n\
                 next: kubectl apply -f {dir}\n      \
                 kubectl wait{ns} --for=condition=complete --timeout={t}s job/{name}\n      \
                 h2lab k8s collect{ns2} --job {name} --out reports/{name}\n",
                dir = dir.display(),
                n = spec.agents,
                t = spec.deadline.as_secs(),
                name = spec.name,
                ns2 = spec
                    .namespace
                    .as_ref()
                    .map(|n| format!(" --namespace {n}"))
                    .unwrap_or_default(),
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn collect_cmd(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let files = if let Some(dir) = &args.volume {
        crate::agents::read_dirs(std::slice::from_ref(dir)).map_err(UsageError)
    } else {
        let logs = if args.logs.is_empty() {
            JobRef {
                kubectl: args.kubectl.clone(),
                name: args.job.clone(),
                namespace: args.namespace.clone(),
            }
            .logs()
            .map_err(|e| UsageError(e.to_string()))
        } else {
            args.logs
                .iter()
                .map(|p| {
                    std::fs::read(p)
                        .map(|b| (p.display().to_string(), b))
                        .map_err(|e| UsageError(format!("--logs {}: {e}", p.display())))
                })
                .collect()
        };
        logs.and_then(|l| collect::from_logs(&l).map_err(|e| UsageError(e.to_string())))
    };
    match files {
        Ok(files) => super::merge::merge_into(&files, args.out.as_deref()),
        Err(e) => bad_input(e),
    }
}

/// Runs `h2lab k8s`.
pub fn run(args: &K8sArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        K8sCommand::Render(r) => render_cmd(r),
        K8sCommand::Collect(c) => collect_cmd(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<RenderSpec, UsageError> {
        let mut argv = vec!["render", "--agents", "3", "--image", "h2lab:1"];
        argv.extend_from_slice(extra);
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            r: RenderArgs,
        }
        let w = Wrap::try_parse_from(argv).map_err(|e| UsageError(e.to_string()))?;
        w.r.to_spec(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    #[test]
    fn the_load_is_checked_as_every_agent_will_run_it() {
        let s = args(&[
            "--",
            "-r",
            "3000",
            "-c",
            "6",
            "-d",
            "30s",
            "http://app.perf.svc:8080/",
        ])
        .unwrap();
        assert_eq!(s.load_args[0], "-r");
        // 5 min release wait + 30 s + 10 s timeout + 60 s.
        assert_eq!(s.deadline, Duration::from_secs(300 + 30 + 10 + 60));
        let err = args(&["--", "-r", "3000", "-c", "2", "http://app:8080/"]).unwrap_err();
        assert!(
            err.0.contains("as agent 2 of 3") && err.0.contains("too few"),
            "{}",
            err.0
        );
        let err = args(&["--", "--agent", "0/3", "http://app:8080/"]).unwrap_err();
        assert!(err.0.contains("--agent: the Job sets it"), "{}", err.0);
        let err = args(&["--", "--json", "x.json", "http://app:8080/"]).unwrap_err();
        assert!(err.0.contains("file on this machine"), "{}", err.0);
        let err = args(&["--", "-r", "x", "http://app:8080/"]).unwrap_err();
        assert!(err.0.starts_with("load arguments:"), "{}", err.0);
        let err = args(&["--cpu", "one", "--", "http://app:8080/"]).unwrap_err();
        assert!(err.0.contains("--cpu `one`"), "{}", err.0);
        let err = args(&["--name", "Load_1", "--", "http://app:8080/"]).unwrap_err();
        assert!(err.0.contains("--name"), "{}", err.0);
    }

    #[test]
    fn weights_a_start_time_and_a_load_string_are_taken() {
        let s = args(&[
            "--weights",
            "2,1,1",
            "--start-at",
            "1800000120",
            "--load",
            "-r 4000 -c 8 -d 60s -H 'x-run: a b' http://app:8080/",
        ])
        .unwrap();
        assert_eq!(s.weights, Some(vec![2, 1, 1]));
        assert_eq!(s.load_args[7], "x-run: a b");
        // 120 s until T0 + 60 s + 10 s + 60 s.
        assert_eq!(s.deadline, Duration::from_secs(120 + 60 + 10 + 60));
        let err = args(&["--weights", "2,1", "--", "http://app:8080/"]).unwrap_err();
        assert!(err.0.contains("2 weights for 3 agents"), "{}", err.0);
    }

    fn scenario(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn a_scenarios_external_cell_becomes_the_pods_load() {
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/k8s-agents.toml");
        let err = args(&[repo]).unwrap_err();
        assert!(
            err.0.contains("has 2 cells; pick one with --cell"),
            "{}",
            err.0
        );
        let id = err
            .0
            .rsplit(": ")
            .next()
            .unwrap()
            .split(", ")
            .last()
            .unwrap()
            .to_string();
        let s = args(&[repo, "--cell", &id]).unwrap();
        let joined = s.load_args.join(" ");
        for part in [
            "-c 64",
            "-m 8",
            "-r 40000",
            "-d 1m",
            "--warmup 5s",
            "--proto h2c",
            "http://app.perf.svc:8080/plaintext",
        ] {
            assert!(joined.contains(part), "{part}: {joined}");
        }
        let mine = scenario(
            "[scenario]\nname = \"x\"\nduration = \"3s\"\n[axes]\ntopology = [\"direct-edge\"]\nload = [{ rate = 100 }]\n",
        );
        let err = args(&[mine.path().to_str().unwrap()]).unwrap_err();
        assert!(err.0.contains("use topology = [\"external:"), "{}", err.0);
        let err = args(&[repo, "--", "http://app:8080/"]).unwrap_err();
        assert!(err.0.contains("cannot be used with"), "{}", err.0);
    }

    #[test]
    fn quantities_are_checked() {
        for ok in ["1", "500m", "0.5", "512Mi", "2Gi"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "0", "-1", "1x", "Mi", "1e3"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
