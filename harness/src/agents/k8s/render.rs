//! The Job and the headless Service that run `h2lab load` as N agents: an Indexed Job
//! (each pod gets its index in JOB_COMPLETION_INDEX), no retries (a replaced pod would
//! send its share late), a deadline, and the release reachable at `<job>-0.<service>`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, PersistentVolumeClaimVolumeSource, PodAffinityTerm,
    PodAntiAffinity, PodSpec, PodTemplateSpec, ResourceRequirements, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// The container's name, which the pod failure policy refers to.
pub const CONTAINER: &str = "h2lab";
/// Where a results volume is mounted in each pod.
pub const RESULTS_MOUNT: &str = "/results";
/// The label every agent pod carries, with the Job's name.
pub const JOB_LABEL: &str = "h2lab.dev/job";

/// What to render, validated.
#[derive(Debug, Clone)]
pub struct RenderSpec {
    /// Job (and Service) name.
    pub name: String,
    /// Namespace, if not the current one.
    pub namespace: Option<String>,
    /// How many agents.
    pub agents: usize,
    /// Agents' weights, when not equal.
    pub weights: Option<Vec<u32>>,
    /// Container image with `h2lab` on its PATH.
    pub image: String,
    /// `h2lab load` arguments (without the agent flags).
    pub load_args: Vec<String>,
    /// Start at this wall-clock time (RFC 3339) instead of agent 0's release.
    pub start_at: Option<String>,
    /// Port of agent 0's release.
    pub release_port: u16,
    /// How long agents wait for the release.
    pub release_timeout: Duration,
    /// How late an agent may start.
    pub start_tolerance: Duration,
    /// CPU request per agent (no CPU limit: throttling would show as scheduler lag).
    pub cpu: String,
    /// Memory request and limit per agent.
    pub memory: String,
    /// The whole Job's deadline.
    pub deadline: Duration,
    /// A PersistentVolumeClaim for results (ReadWriteMany), else they go to stdout.
    pub results_claim: Option<String>,
}

/// The rendered objects.
#[derive(Debug, Clone)]
pub struct Manifests {
    /// Headless Service giving agent 0 its DNS name for the release.
    pub service: Service,
    /// The Indexed Job.
    pub job: Job,
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// The environment each agent's container gets (Kubernetes adds JOB_COMPLETION_INDEX).
pub fn agent_env(spec: &RenderSpec) -> Vec<EnvVar> {
    let mut out = vec![env("H2LAB_AGENTS", spec.agents.to_string())];
    if let Some(w) = &spec.weights {
        let list: Vec<String> = w.iter().map(u32::to_string).collect();
        out.push(env("H2LAB_AGENT_WEIGHTS", list.join(",")));
    }
    match &spec.start_at {
        Some(t0) => out.push(env("H2LAB_START_AT", t0.clone())),
        None => {
            out.push(env(
                "H2LAB_RELEASE_FROM",
                format!("{}-0.{}:{}", spec.name, spec.name, spec.release_port),
            ));
            out.push(env("H2LAB_RELEASE_TIMEOUT", secs(spec.release_timeout)));
        }
    }
    out.push(env(
        "H2LAB_START_TOLERANCE",
        format!("{}ms", spec.start_tolerance.as_millis()),
    ));
    out.push(env(
        "H2LAB_RESULTS",
        if spec.results_claim.is_some() {
            RESULTS_MOUNT
        } else {
            "stdout"
        },
    ));
    out
}

/// Renders the Service and the Job.
pub fn render(spec: &RenderSpec) -> Manifests {
    let labels: BTreeMap<String, String> = [
        ("app.kubernetes.io/name", "h2lab"),
        ("app.kubernetes.io/component", "load-agent"),
        (JOB_LABEL, spec.name.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let selector: BTreeMap<String, String> = [(JOB_LABEL.to_string(), spec.name.clone())]
        .into_iter()
        .collect();
    let meta = ObjectMeta {
        name: Some(spec.name.clone()),
        namespace: spec.namespace.clone(),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };
    let service = Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Agents report to agent 0 before any readiness exists.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("release".into()),
                port: i32::from(spec.release_port),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    let mut args = vec!["load".to_string()];
    args.extend(spec.load_args.iter().cloned());
    args.push("--quiet".into());
    let quantity = |q: &str| Quantity(q.to_string());
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["h2lab".into()]),
        args: Some(args),
        env: Some(agent_env(spec)),
        ports: Some(vec![ContainerPort {
            name: Some("release".into()),
            container_port: i32::from(spec.release_port),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), quantity(&spec.cpu)),
                    ("memory".to_string(), quantity(&spec.memory)),
                ]
                .into_iter()
                .collect(),
            ),
            limits: Some(
                [("memory".to_string(), quantity(&spec.memory))]
                    .into_iter()
                    .collect(),
            ),
            ..ResourceRequirements::default()
        }),
        volume_mounts: spec.results_claim.as_ref().map(|_| {
            vec![VolumeMount {
                name: "results".into(),
                mount_path: RESULTS_MOUNT.into(),
                ..VolumeMount::default()
            }]
        }),
        ..Container::default()
    };
    // Agents on distinct nodes where the cluster has them: the point is more than one
    // machine's network and CPU.
    let spread = Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector.clone()),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    };
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        subdomain: Some(spec.name.clone()),
        containers: vec![container],
        affinity: Some(spread),
        volumes: spec.results_claim.as_ref().map(|claim| {
            vec![Volume {
                name: "results".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    ..PersistentVolumeClaimVolumeSource::default()
                }),
                ..Volume::default()
            }]
        }),
        ..PodSpec::default()
    };
    let n = spec.agents as i32;
    let job = Job {
        metadata: meta,
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(n),
            parallelism: Some(n),
            // A failed agent fails the run: a replacement would send its share late.
            backoff_limit: Some(0),
            pod_failure_policy: Some(PodFailurePolicy {
                rules: vec![
                    PodFailurePolicyRule {
                        action: "FailJob".into(),
                        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                            container_name: Some(CONTAINER.into()),
                            operator: "NotIn".into(),
                            values: vec![0],
                        }),
                        ..PodFailurePolicyRule::default()
                    },
                    PodFailurePolicyRule {
                        action: "FailJob".into(),
                        on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                            type_: "DisruptionTarget".into(),
                            status: "True".into(),
                        }]),
                        ..PodFailurePolicyRule::default()
                    },
                ],
            }),
            active_deadline_seconds: Some(spec.deadline.as_secs().max(1) as i64),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        ..Job::default()
    };
    Manifests { service, job }
}

impl Manifests {
    /// Each object as its own JSON document, with its file name.
    pub fn files(&self) -> Vec<(&'static str, String)> {
        let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("JSON") + "\n";
        vec![
            (
                "service.json",
                pretty(serde_json::to_value(&self.service).expect("typed")),
            ),
            (
                "job.json",
                pretty(serde_json::to_value(&self.job).expect("typed")),
            ),
        ]
    }

    /// Both objects in one `v1 List`, for `kubectl apply -f -`.
    pub fn list(&self) -> String {
        let list = serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": [serde_json::to_value(&self.service).expect("typed"), serde_json::to_value(&self.job).expect("typed")],
        });
        serde_json::to_string_pretty(&list).expect("JSON") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RenderSpec {
        RenderSpec {
            name: "h2lab-load".into(),
            namespace: Some("perf".into()),
            agents: 3,
            weights: None,
            image: "ghcr.io/example/h2lab:1".into(),
            load_args: vec!["-r".into(), "3000".into(), "http://app:8080/".into()],
            start_at: None,
            release_port: 7070,
            release_timeout: Duration::from_secs(300),
            start_tolerance: Duration::from_secs(1),
            cpu: "1".into(),
            memory: "512Mi".into(),
            deadline: Duration::from_secs(600),
            results_claim: None,
        }
    }

    #[test]
    fn the_job_is_indexed_without_retries_and_agents_find_agent_zero() {
        let m = render(&spec());
        let v = serde_json::to_value(&m.job).unwrap();
        assert_eq!(v["apiVersion"], "batch/v1");
        assert_eq!(v["kind"], "Job");
        let s = &v["spec"];
        assert_eq!(s["completionMode"], "Indexed");
        assert_eq!(
            (s["completions"].as_i64(), s["parallelism"].as_i64()),
            (Some(3), Some(3))
        );
        assert_eq!(s["backoffLimit"], 0);
        assert_eq!(s["activeDeadlineSeconds"], 600);
        assert_eq!(s["podFailurePolicy"]["rules"][0]["action"], "FailJob");
        let pod = &s["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["subdomain"], "h2lab-load");
        let env = &pod["containers"][0]["env"];
        assert!(env
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "H2LAB_RELEASE_FROM"
                && e["value"] == "h2lab-load-0.h2lab-load:7070"));
        assert!(pod["containers"][0]["resources"]["limits"]
            .get("cpu")
            .is_none());
        let svc = serde_json::to_value(&m.service).unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["selector"][JOB_LABEL], "h2lab-load");
        assert_eq!(pod["containers"][0]["args"][0], "load");
    }

    #[test]
    fn a_start_time_and_a_volume_replace_the_release_and_stdout() {
        let mut s = spec();
        s.start_at = Some("2026-12-03T10:00:00Z".into());
        s.results_claim = Some("h2lab-results".into());
        s.weights = Some(vec![2, 1, 1]);
        let names: Vec<String> = agent_env(&s)
            .into_iter()
            .map(|e| format!("{}={}", e.name, e.value.unwrap_or_default()))
            .collect();
        assert!(
            names.contains(&"H2LAB_START_AT=2026-12-03T10:00:00Z".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"H2LAB_RESULTS=/results".to_string()));
        assert!(names.contains(&"H2LAB_AGENT_WEIGHTS=2,1,1".to_string()));
        assert!(!names.iter().any(|n| n.starts_with("H2LAB_RELEASE_FROM")));
        let v = serde_json::to_value(render(&s).job).unwrap();
        assert_eq!(
            v["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "h2lab-results"
        );
    }
}
