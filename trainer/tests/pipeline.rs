//! The parent pipeline (`.gitlab-ci.yml`) starts a crate's child pipeline exactly when that
//! crate, a workspace crate it depends on, or a workspace-wide file changed. These tests hold
//! its `changes:` lists to `cargo metadata`, so that a new dependency cannot silently leave a
//! crate untested, and map example changes to the child pipelines that must run.
//!
//! They live in the trainer because its child pipeline runs them, and that pipeline starts
//! whenever the graph can change: a new workspace dependency rewrites `Cargo.lock`, which
//! starts every child, and so does an edit of `.gitlab-ci.yml`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

/// Files every crate is built from.
const WORKSPACE_FILES: [&str; 5] =
    ["Cargo.toml", "Cargo.lock", "rustfmt.toml", "clippy.toml", ".gitlab-ci.yml"];

/// What a child's jobs read beyond its crates' folders, by child.
const EXTRA_INPUTS: [(&str, &[&str]); 3] = [
    ("registry-client", &["scripts/mlflow-server.sh"]),
    ("trainer", &["data/**/*"]),
    ("ml-ui", &["data/**/*", "k8s/**/*", ".dockerignore"]),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Workspace crates by folder, each with the folders of the workspace crates it depends on
/// (normal, build and dev dependencies).
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let workspace = PathBuf::from(metadata["workspace_root"].as_str().unwrap());
    let folder = |manifest_dir: &Path| {
        manifest_dir.strip_prefix(&workspace).unwrap().to_str().unwrap().to_owned()
    };
    let mut graph = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap());
        let deps = package["dependencies"].as_array().unwrap().iter();
        let local = deps.filter_map(|d| d["path"].as_str()).map(|p| folder(Path::new(p)));
        graph.insert(folder(manifest.parent().unwrap()), local.collect());
    }
    graph
}

/// `krate` and every workspace crate it depends on, directly or not.
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, krate: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![krate.to_owned()];
    while let Some(next) = todo.pop() {
        if seen.insert(next.clone()) {
            todo.extend(graph[&next].iter().cloned());
        }
    }
    seen
}

/// Child pipelines of `.gitlab-ci.yml`, by crate folder, with their `changes:` paths.
fn child_pipelines() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(root().join(".gitlab-ci.yml")).unwrap();
    let parent: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut children = BTreeMap::new();
    for (name, job) in parent.as_mapping().unwrap() {
        let Some(include) = job.get("trigger").and_then(|t| t.get("include")) else { continue };
        let include = include.as_str().unwrap();
        let krate = include.strip_suffix("/.gitlab-ci.yml").unwrap();
        assert_eq!(name.as_str(), Some(krate), "a child pipeline's job is named after its crate");
        assert_eq!(job["trigger"]["strategy"].as_str(), Some("depend"), "{krate}");
        children.insert(krate.to_owned(), change_paths(krate, job));
    }
    children
}

/// The paths of every rule of a trigger job, checked to be the same list in every rule.
fn change_paths(krate: &str, job: &Value) -> Vec<String> {
    let rules = job["rules"].as_sequence().unwrap();
    let lists: Vec<Vec<String>> = rules
        .iter()
        .map(|rule| {
            let paths = rule["changes"]["paths"].as_sequence().unwrap();
            paths.iter().map(|p| p.as_str().unwrap().to_owned()).collect()
        })
        .collect();
    assert!(lists.windows(2).all(|w| w[0] == w[1]), "{krate}: rules list different paths");
    let merge_request =
        rules.iter().find(|r| r["if"].as_str().is_some_and(|c| c.contains("merge_request_event")));
    let compare_to = merge_request.and_then(|r| r["changes"]["compare_to"].as_str());
    assert_eq!(compare_to, Some("refs/heads/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"), "{krate}");
    lists.into_iter().next().unwrap()
}

/// GitLab's `changes:` match, for the two shapes the parent uses: a file, or `folder/**/*`.
fn matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix("/**/*") {
        Some(folder) => path.starts_with(&format!("{folder}/")),
        None => {
            assert!(!pattern.contains('*'), "unsupported pattern {pattern}");
            pattern == path
        }
    }
}

/// The children a merge request that changes `paths` starts.
fn children_started(paths: &[&str]) -> BTreeSet<String> {
    let children = child_pipelines();
    let started = children
        .into_iter()
        .filter(|(_, patterns)| paths.iter().any(|path| patterns.iter().any(|p| matches(p, path))));
    started.map(|(krate, _)| krate).collect()
}

#[test]
fn change_lists_follow_cargo_metadata() {
    let graph = dependency_graph();
    let children = child_pipelines();
    let extras: BTreeMap<&str, &[&str]> = EXTRA_INPUTS.into();
    for (krate, paths) in &children {
        let crates = closure(&graph, krate).into_iter().map(|c| format!("{c}/**/*"));
        let mut expected: BTreeSet<String> = WORKSPACE_FILES.map(String::from).into();
        expected.extend(crates);
        expected.extend(extras[krate.as_str()].iter().map(|e| (*e).to_owned()));
        let actual: BTreeSet<String> = paths.iter().cloned().collect();
        assert_eq!(actual, expected, "changes of the {krate} child pipeline");
        assert_eq!(actual.len(), paths.len(), "{krate} lists a path twice");
    }
}

#[test]
fn every_crate_is_built_by_a_child_pipeline() {
    let graph = dependency_graph();
    let children = child_pipelines();
    for krate in graph.keys() {
        let own = root().join(krate).join(".gitlab-ci.yml");
        assert_eq!(children.contains_key(krate), own.is_file(), "{krate}: child pipeline file");
        let covered = children.keys().any(|child| closure(&graph, child).contains(krate));
        assert!(covered, "no child pipeline builds {krate}");
    }
}

#[test]
fn changed_paths_start_the_right_child_pipelines() {
    let all = ["ml-ui", "registry-client", "trainer"];
    let table: [(&[&str], &[&str]); 14] = [
        (&["README.md"], &[]),
        (&["README.md", "data/mnist/t10k-labels-idx1-ubyte.gz"], &["ml-ui", "trainer"]),
        (&["docs/guide.md", "scripts/test.sh"], &[]),
        (&["registry-client/src/lib.rs"], &all),
        (&["registry-client/Cargo.toml"], &all),
        (&["scripts/mlflow-server.sh"], &["registry-client"]),
        (&["shared/src/card.rs"], &["ml-ui", "trainer"]),
        (&["trainer/config.toml"], &["ml-ui", "trainer"]),
        (&["ml-ui/src/main.rs"], &["ml-ui"]),
        (&["ml-ui/.gitlab-ci.yml", "k8s/base/deployment.yaml"], &["ml-ui"]),
        (&["Cargo.lock"], &all),
        (&["Cargo.toml"], &all),
        (&[".gitlab-ci.yml"], &all),
        (&["clippy.toml"], &all),
    ];
    for (paths, expected) in table {
        let expected: BTreeSet<String> = expected.iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(children_started(paths), expected, "changing {paths:?}");
    }
}
