//! Kubernetes: the agents as an Indexed Job (`render`) and their results gathered back
//! (`collect`). Manifests are typed (k8s-openapi), never string templates.

pub mod collect;
pub mod render;
pub mod scenario;

pub use render::{render, Manifests, RenderSpec};
