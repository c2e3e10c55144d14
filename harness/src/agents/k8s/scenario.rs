//! A scenario's cell as the `h2lab load` arguments each agent pod runs. In a cluster the
//! agents load an app that is already running there, so only `external:URL` cells can be
//! rendered; a cell the lab would start its own servers for is refused with what to write.

use crate::model::plan::{Offer, RequestBody};
use crate::model::{Cell, Plan, Topology};

/// Largest filler body put into the pod's arguments (they live in the Job object, which
/// the API server stores whole).
pub const MAX_INLINE_BODY: usize = 64 * 1024;

/// Picks the cell to render: `id` when given, else the plan's only cell.
pub fn pick<'a>(plan: &'a Plan, id: Option<&str>) -> Result<&'a Cell, String> {
    let ids = || {
        plan.cells
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match id {
        Some(id) => plan
            .cells
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| format!("--cell {id}: no such cell; the scenario has {}", ids())),
        None if plan.cells.len() == 1 => Ok(&plan.cells[0]),
        None => Err(format!(
            "the scenario has {} cells; pick one with --cell: {}",
            plan.cells.len(),
            ids()
        )),
    }
}

/// The cell's load as `h2lab load` arguments.
pub fn load_args(plan: &Plan, cell: &Cell) -> Result<Vec<String>, String> {
    let refuse = |why: String| Err(format!("cell {}: {why}", cell.id));
    let Topology::External(url) = &cell.topology else {
        return refuse(
            "its topology starts servers on this machine; in a cluster the agents load an app already running there: use topology = [\"external:http://app.ns.svc:8080\"]".into(),
        );
    };
    if cell.engine != "h2lab" {
        return refuse(format!(
            "engine `{}`: only h2lab runs as agents",
            cell.engine
        ));
    }
    if cell.attack.is_some() {
        return refuse("an attacked cell cannot be split among agents".into());
    }
    if cell.load.search.is_some() {
        return refuse("a capacity search decides each step from the last: run it with h2lab search, then render the rate it found".into());
    }
    if plan.target.cacert.is_some() {
        return refuse("[target] cacert names a file on this machine, which the pods do not have: build it into the image, or use insecure = true".into());
    }
    let first = &cell.request.requests[0];
    if cell
        .request
        .requests
        .iter()
        .any(|r| r.method != first.method || r.headers != first.headers || r.body != first.body)
    {
        return refuse("its request mix varies method, headers or body; agents send one request per path (h2lab load URL /path...)".into());
    }
    let mut args: Vec<String> = Vec::new();
    let mut flag = |f: &str, v: String| {
        args.push(f.to_string());
        args.push(v);
    };
    flag("-c", cell.load.connections.to_string());
    flag("-m", cell.load.streams.to_string());
    if let Some(rate) = cell.load.rate {
        flag("-r", rate.to_string());
    }
    flag("-d", humantime::format_duration(plan.duration).to_string());
    flag(
        "--warmup",
        humantime::format_duration(plan.warmup).to_string(),
    );
    flag(
        "--timeout",
        humantime::format_duration(plan.timeout).to_string(),
    );
    match &cell.offer {
        Offer::Tls(alpn) => {
            flag("--alpn", alpn.join(","));
            flag(
                "--tls-stack",
                format!("{:?}", cell.client_tls).to_lowercase(),
            );
            flag("--tls-min", cell.tls_min.clone());
            flag("--tls-max", cell.tls_max.clone());
        }
        Offer::H1 => flag("--proto", "h1".into()),
        Offer::H2c => flag("--proto", "h2c".into()),
        Offer::H2cUpgrade => flag("--proto", "h2c-upgrade".into()),
    }
    if let Some(sni) = &plan.target.sni {
        flag("--sni", sni.clone());
    }
    if let Some(host) = &plan.target.host {
        flag("-H", format!("Host: {host}"));
    }
    if !first.method.eq_ignore_ascii_case("GET") {
        flag("-X", first.method.clone());
    }
    for (k, v) in &first.headers {
        flag("-H", format!("{k}: {v}"));
    }
    match &first.body {
        RequestBody::Empty => {}
        RequestBody::Filler { bytes } if *bytes <= MAX_INLINE_BODY => {
            flag("--body", "x".repeat(*bytes))
        }
        RequestBody::Filler { bytes } => {
            return refuse(format!(
                "body_bytes = {bytes}: more than {MAX_INLINE_BODY} bytes do not belong in a Job's arguments"
            ))
        }
        RequestBody::File { path, .. } => {
            return refuse(format!(
                "body_file {} is a file on this machine, which the pods do not have",
                path.display()
            ))
        }
    }
    if plan.target.insecure {
        args.push("--insecure".into());
    }
    let origin = url.trim_end_matches('/');
    let mut first_url = true;
    for r in &cell.request.requests {
        // A mix's weight becomes that many turns in the paths' round-robin.
        for _ in 0..r.weight.max(1) {
            args.push(if first_url {
                format!("{origin}{}", r.path)
            } else {
                r.path.clone()
            });
            first_url = false;
        }
    }
    Ok(args)
}
