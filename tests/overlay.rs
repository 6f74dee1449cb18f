//! Deployed manifests name the pushed images: the overlays the runner
//! writes for `delivery: registry`, rendered by the real `kubectl
//! kustomize` (offline, no API server needed), for manifest files and for a
//! kustomize directory. Every spelling of a plan image is renamed and
//! pinned by digest; an image the plan does not deliver, or another tag of
//! a plan image, is left alone; the user's files are not changed.

mod support;

use loadmaster::archive::{Digest, normalize_reference};
use loadmaster::plan::Apply;
use loadmaster::process::on_path;
use loadmaster::runner::overlay::{self, Rewrite};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::TempDir;

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      initContainers:
        - name: migrate
          image: docker.io/library/app:1
      containers:
        - name: app
          image: app:1
        - name: sidecar
          image: busybox:1.36
        - name: previous
          image: app:2
";

const POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: svc
spec:
  containers:
    - name: svc
      image: localhost/svc:1
";

fn digest(fill: char) -> Digest {
    Digest::from_hex(&fill.to_string().repeat(64)).unwrap()
}

fn rewrites() -> Vec<Rewrite> {
    vec![
        Rewrite {
            from: normalize_reference("app:1").unwrap(),
            to: "127.0.0.1:5000/e2e/library/app".to_string(),
            digest: digest('a'),
        },
        Rewrite {
            from: normalize_reference("localhost/svc:1").unwrap(),
            to: "registry.local:5000/e2e/svc".to_string(),
            digest: digest('b'),
        },
    ]
}

/// `kubectl kustomize DIR`: the YAML `kubectl apply -k DIR` would send.
fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every `image:` value, sorted.
fn images(yaml: &str) -> Vec<String> {
    let mut images: Vec<String> = yaml
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- image: "))
        .chain(
            yaml.lines()
                .filter_map(|line| line.trim().strip_prefix("image: ")),
        )
        .map(str::to_string)
        .collect();
    images.sort();
    images
}

/// DEPLOYMENT's images once rewritten (sorted): both spellings of `app:1`
/// pinned, `app:2` and busybox as they were.
fn deployment_rewritten() -> Vec<String> {
    let mut images = vec![
        "app:2".to_string(),
        "busybox:1.36".to_string(),
        pinned("127.0.0.1:5000/e2e/library/app", 'a'),
        pinned("127.0.0.1:5000/e2e/library/app", 'a'),
    ];
    images.sort();
    images
}

fn pinned(name: &str, fill: char) -> String {
    format!("{name}@{}", digest(fill))
}

fn kubectl_here() -> bool {
    if on_path("kubectl") {
        return true;
    }
    eprintln!("note: kubectl is not on PATH: skipping the overlay tests");
    false
}

#[test]
fn manifest_files_are_copied_into_overlays_that_pin_plan_images() {
    if !kubectl_here() {
        return;
    }
    let dir = TempDir::new("lm-overlay");
    let plan_dir = dir.path.join("plan");
    std::fs::create_dir_all(plan_dir.join("more")).unwrap();
    let files: Vec<PathBuf> = vec![plan_dir.join("app.yaml"), plan_dir.join("more/app.yaml")];
    std::fs::write(&files[0], DEPLOYMENT).unwrap();
    std::fs::write(&files[1], POD).unwrap();
    let overlays = overlay::write(
        &Apply::Manifests {
            paths: files.clone(),
        },
        &rewrites(),
        &dir.path.join("run/deploy/app"),
    )
    .unwrap();
    // One overlay per file, in the plan's order, though both are app.yaml.
    assert_eq!(overlays.len(), 2, "{overlays:?}");
    let deployment = kustomize(&overlays[0]);
    assert_eq!(images(&deployment), deployment_rewritten(), "{deployment}");
    let pod = kustomize(&overlays[1]);
    assert_eq!(
        images(&pod),
        [pinned("registry.local:5000/e2e/svc", 'b')],
        "{pod}"
    );
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), DEPLOYMENT);
    assert_eq!(std::fs::read_to_string(&files[1]).unwrap(), POD);
}

#[test]
fn a_kustomize_directory_is_referenced_and_its_own_images_rewritten() {
    if !kubectl_here() {
        return;
    }
    let dir = TempDir::new("lm-overlay");
    let base = dir.path.join("plan/deploy/services");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("deployment.yaml"), DEPLOYMENT).unwrap();
    std::fs::write(base.join("pod.yaml"), POD).unwrap();
    let kustomization =
        "resources:\n  - deployment.yaml\n  - pod.yaml\ncommonLabels:\n  team: e2e\n";
    std::fs::write(base.join("kustomization.yaml"), kustomization).unwrap();
    // Before: the directory as the user wrote it, plan images by tag.
    let before = kustomize(&base);
    assert!(before.contains("image: app:1"), "{before}");
    let overlays = overlay::write(
        &Apply::Kustomize { dir: base.clone() },
        &rewrites(),
        &dir.path.join("runs/20261129/deploy/services"),
    )
    .unwrap();
    assert_eq!(overlays.len(), 1);
    let after = kustomize(&overlays[0]);
    let mut want = deployment_rewritten();
    want.push(pinned("registry.local:5000/e2e/svc", 'b'));
    want.sort();
    assert_eq!(images(&after), want, "{after}");
    // The user's kustomization still applies: its labels are there.
    assert!(after.contains("team: e2e"), "{after}");
    assert_eq!(
        std::fs::read_to_string(base.join("kustomization.yaml")).unwrap(),
        kustomization
    );
}

#[test]
fn without_plan_images_in_them_manifests_render_unchanged() {
    if !kubectl_here() {
        return;
    }
    let dir = TempDir::new("lm-overlay");
    let file = dir.path.join("pod.yaml");
    std::fs::write(&file, POD).unwrap();
    let app_only = &rewrites()[..1];
    let overlays = overlay::write(
        &Apply::Manifests {
            paths: vec![file.clone()],
        },
        app_only,
        &dir.path.join("run"),
    )
    .unwrap();
    assert_eq!(images(&kustomize(&overlays[0])), ["localhost/svc:1"]);
}
