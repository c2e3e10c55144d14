//! Network namespaces standing in for pods: one target namespace with a bridge, and one
//! namespace per agent joined to it by a veth pair, each with its own loopback, ports
//! and `/etc/hosts` (`ip netns exec` binds `/etc/netns/NS/hosts` over it), the way pods
//! get theirs. Everything is removed on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Why the namespaces cannot be made here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root for network namespaces".into());
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        return Some("needs iproute2 (`ip`)".into());
    }
    None
}

/// The namespaces of one test.
pub struct Lab {
    /// The target's namespace.
    pub target: String,
    /// The agents' namespaces, by index.
    pub agents: Vec<String>,
    tag: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The target's address on the bridge.
pub const TARGET_IP: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);

/// Agent `i`'s address on the bridge.
pub fn agent_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 201, 0, 10 + i as u8)
}

impl Lab {
    /// A target namespace and `agents` agent namespaces on one bridge; `hosts` lines go
    /// into every agent's /etc/hosts.
    pub fn new(agents: usize, hosts: &[(String, Ipv4Addr)]) -> Lab {
        // Short and unique per process and test: interface names have 15 bytes.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let mut lab = Lab {
            target: format!("h2lt{tag}"),
            agents: Vec::new(),
            tag,
        };
        ip(&["netns", "add", &lab.target]);
        ip(&["-n", &lab.target, "link", "set", "lo", "up"]);
        ip(&["-n", &lab.target, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            &lab.target,
            "addr",
            "add",
            &format!("{TARGET_IP}/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", &lab.target, "link", "set", "br0", "up"]);
        for i in 0..agents {
            let ns = format!("h2la{}x{i}", lab.tag);
            ip(&["netns", "add", &ns]);
            lab.agents.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            let (inner, outer) = (format!("eth{i}"), format!("p{i}"));
            ip(&[
                "link",
                "add",
                &inner,
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &outer,
                "netns",
                &lab.target,
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", agent_ip(i)),
                "dev",
                &inner,
            ]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
            ip(&["-n", &lab.target, "link", "set", &outer, "master", "br0"]);
            ip(&["-n", &lab.target, "link", "set", &outer, "up"]);
            let etc = lab.etc(&ns);
            std::fs::create_dir_all(&etc).unwrap();
            let mut text = String::from("127.0.0.1 localhost\n");
            for (name, addr) in hosts {
                text.push_str(&format!("{addr} {name}\n"));
            }
            std::fs::write(etc.join("hosts"), text).unwrap();
        }
        lab
    }

    fn etc(&self, ns: &str) -> PathBuf {
        PathBuf::from("/etc/netns").join(ns)
    }

    /// A listener bound inside namespace `ns` (a socket stays in the namespace it was
    /// made in, whichever thread then serves it).
    pub fn listen(&self, ns: &str, addr: SocketAddr) -> TcpListener {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("namespace file");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            TcpListener::bind(addr).expect("bind in namespace")
        })
        .join()
        .unwrap()
    }

    /// `program args` run in namespace `ns` with only the environment `env`, as a pod's
    /// container runs.
    pub fn command(
        &self,
        ns: &str,
        env: &[(String, String)],
        program: &str,
        args: &[String],
    ) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, "env", "-i"]);
        c.args(env.iter().map(|(k, v)| format!("{k}={v}")));
        c.arg(program).args(args);
        c
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends and bridge with it.
        for ns in self.agents.iter().chain(std::iter::once(&self.target)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            let _ = std::fs::remove_dir_all(self.etc(ns));
        }
    }
}
