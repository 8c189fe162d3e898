//! The dependency rules of the layout, read from `cargo metadata`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Workspace crates and the workspace crates each one depends on (any kind).
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .filter(|d| names.contains(d))
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut stack = vec![from.to_owned()];
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        for dep in graph.get(&name).into_iter().flatten() {
            if dep == to {
                return true;
            }
            stack.push(dep.clone());
        }
    }
    false
}

#[test]
fn identity_never_depends_on_credentials() {
    let graph = workspace_graph();
    assert!(graph.contains_key("sesame-identity") && graph.contains_key("sesame-credentials"));
    assert!(
        !reaches(&graph, "sesame-identity", "sesame-credentials"),
        "{graph:#?}"
    );
}

#[test]
fn domains_and_core_stay_below_the_edges() {
    let graph = workspace_graph();
    for low in [
        "sesame-core",
        "sesame-identity",
        "sesame-credentials",
        "sesame-events",
        "sesame-outbound",
        "sesame-federation",
    ] {
        for high in ["sesame-http", "sesame", "sesame-app", "sesame-store-sqlite"] {
            assert!(!reaches(&graph, low, high), "{low} depends on {high}");
        }
    }
    assert!(!reaches(&graph, "sesame-core", "sesame-identity"));
    assert!(!reaches(&graph, "sesame-credentials", "sesame-identity"));
    // Calls out know nothing of Sesame; providers know nothing of profiles.
    assert!(graph["sesame-outbound"].is_empty(), "{graph:#?}");
    assert!(!reaches(&graph, "sesame-federation", "sesame-identity"));
}

#[test]
fn the_graph_check_detects_a_forbidden_edge() {
    let mut graph = workspace_graph();
    graph
        .get_mut("sesame-core")
        .unwrap()
        .insert("sesame-credentials".into());
    assert!(reaches(&graph, "sesame-identity", "sesame-credentials"));
}
