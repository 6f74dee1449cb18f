//! `loadmaster push` end to end: real engines, a real registry (Debian's
//! `docker-registry` on loopback), a real containerd pulling the result.
//! What was uploaded is counted from the registry's own access log.

mod support;

use loadmaster::deliver::Source;
use loadmaster::engine::{Engine, EngineKind};
use loadmaster::push::{self, Pusher, RegistryTarget, RetryPolicy, progress::Silent};
use serde_json::Value;
use std::io::Read;
use std::process::{Output, Stdio};
use std::time::Duration;
use support::registry::{LoggedRequest, TestRegistry};
use support::{
    Layer, NodeOptions, TempDir, TestCluster, TestImage, config_on_node, engines_under_test,
    loadmaster_command, node_targets,
};

const MIB: u64 = 1 << 20;

/// `loadmaster --engine E push IMAGE --registry R -o json` with `env`, and
/// no auth file but the ones `env` names.
fn push_cli(
    kind: EngineKind,
    image: &str,
    registry: &str,
    env: &[(&str, &str)],
) -> (Output, Value) {
    let mut command = loadmaster_command(&[
        "--engine",
        kind.name(),
        "push",
        image,
        "--registry",
        registry,
        "-o",
        "json",
    ]);
    isolate_credentials(&mut command, env);
    let output = command.output().expect("run loadmaster push");
    let report = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output, report)
}

/// Keeps the user's own auth files out of a test.
fn isolate_credentials(command: &mut std::process::Command, env: &[(&str, &str)]) {
    command
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env("DOCKER_CONFIG", "/nonexistent");
    for (name, value) in env {
        command.env(name, value);
    }
}

fn assert_succeeded(kind: EngineKind, output: &Output) {
    assert!(
        output.status.success(),
        "{kind}: exit {:?}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The digests whose uploads finished among `requests`.
fn finished_uploads(requests: &[LoggedRequest]) -> Vec<String> {
    let mut digests: Vec<String> = requests
        .iter()
        .filter_map(LoggedRequest::finished_upload)
        .collect();
    digests.sort();
    digests
}

fn layers_of(kind: EngineKind, image: &str) -> Vec<String> {
    Engine::new(kind).image_inspect(image).unwrap().layers
}

fn normalized_id(id: &str) -> String {
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn pushes_then_uploads_nothing_then_only_the_changed_layer() {
    for kind in engines_under_test() {
        let registry = TestRegistry::start();
        let target = format!("{}/ci", registry.host());
        let image = TestImage::named(kind);
        // The base layer is larger than one upload chunk: it goes in PATCHes.
        let base = Layer {
            bytes: 20 * MIB,
            seed: 11,
        };
        image.build(&[
            base,
            Layer {
                bytes: MIB,
                seed: 12,
            },
        ]);
        let layers = layers_of(kind, &image.name);
        let config = normalized_id(&image.id());

        // Cold: both layers and the config.
        let (output, report) = push_cli(kind, &image.name, &target, &[]);
        assert_succeeded(kind, &output);
        let pushed = &report["images"][0];
        let repository = format!("ci/{}", image.name.split(':').next().unwrap());
        assert_eq!(
            pushed["pushed"],
            format!("{}/{repository}:1", registry.host()),
            "{kind}: {report}"
        );
        assert_eq!(pushed["config"], config.as_str(), "{kind}");
        let mut expected = layers.clone();
        expected.push(config.clone());
        expected.sort();
        let cold = registry.requests();
        assert_eq!(finished_uploads(&cold), expected, "{kind}");
        assert!(
            cold.iter().any(|r| r.method == "PATCH" && r.status == 202),
            "{kind}: the 20 MiB layer went in chunks: {cold:?}"
        );
        // What the registry serves under the tag is the manifest reported.
        let manifest = fetch_manifest(&registry, &repository, "1");
        assert_eq!(
            format!("sha256:{}", sha256_hex(&manifest)),
            pushed["digest"].as_str().unwrap(),
            "{kind}"
        );
        let manifest: Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["config"]["digest"], config.as_str(), "{kind}");
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar"
        );

        // Unchanged: nothing uploaded, the engine not even read.
        let (output, report) = push_cli(kind, &image.name, &target, &[]);
        assert_succeeded(kind, &output);
        let again = &registry.requests()[cold.len()..];
        assert!(
            !again.iter().any(LoggedRequest::uploads_blob),
            "{kind}: a re-push uploaded: {again:?}"
        );
        assert!(
            again
                .iter()
                .any(|r| r.method == "PUT" && r.target.contains("/manifests/1")),
            "{kind}: the tag was put again"
        );
        assert_eq!(
            report["images"][0]["read_source"], false,
            "{kind}: {report}"
        );
        assert_eq!(report["images"][0]["blobs_skipped"], 3, "{kind}");
        assert_eq!(report["images"][0]["digest"], pushed["digest"], "{kind}");

        // One layer changed: that layer and the new config, nothing else.
        image.build(&[
            base,
            Layer {
                bytes: MIB,
                seed: 13,
            },
        ]);
        let changed_layers = layers_of(kind, &image.name);
        assert_eq!(
            changed_layers[0], layers[0],
            "{kind}: the base layer is shared"
        );
        let seen = registry.requests().len();
        let (output, report) = push_cli(kind, &image.name, &target, &[]);
        assert_succeeded(kind, &output);
        let mut expected = vec![changed_layers[1].clone(), normalized_id(&image.id())];
        expected.sort();
        assert_eq!(
            finished_uploads(&registry.requests()[seen..]),
            expected,
            "{kind}: {report}"
        );
        assert_eq!(report["images"][0]["blobs_uploaded"], 2, "{kind}");
        assert_eq!(report["images"][0]["blobs_skipped"], 1, "{kind}");
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_blob_pushed_to_one_repository_is_mounted_into_the_next() {
    for kind in engines_under_test() {
        let registry = TestRegistry::start();
        let shared = Layer {
            bytes: 2 * MIB,
            seed: 21,
        };
        let first = TestImage::named(kind);
        first.build(&[
            shared,
            Layer {
                bytes: 4096,
                seed: 22,
            },
        ]);
        let second = TestImage::named(kind);
        second.build(&[
            shared,
            Layer {
                bytes: 4096,
                seed: 23,
            },
        ]);
        let base = layers_of(kind, &first.name)[0].clone();

        let engine = Engine::new(kind);
        let target = RegistryTarget::parse(&registry.host(), false).unwrap();
        let images = [first.name.clone(), second.name.clone()];
        let reports = push::push_images(&engine, &images, &target, &Silent).unwrap();

        assert_eq!(reports[0].blobs_uploaded, 3, "{kind}: {reports:?}");
        assert_eq!(reports[1].blobs_mounted, 1, "{kind}: {reports:?}");
        assert_eq!(reports[1].blobs_uploaded, 2, "{kind}: {reports:?}");
        let mounts: Vec<LoggedRequest> = registry
            .requests()
            .into_iter()
            .filter(|r| r.target.contains("mount="))
            .collect();
        assert_eq!(mounts.len(), 1, "{kind}: {mounts:?}");
        assert_eq!(mounts[0].status, 201, "{kind}");
        assert!(
            mounts[0].target.contains(&base.replace(':', "%3A"))
                || mounts[0].target.contains(&base),
            "{kind}: {mounts:?}"
        );
        assert_eq!(
            finished_uploads(&registry.requests())
                .iter()
                .filter(|d| **d == base)
                .count(),
            1,
            "{kind}: the shared layer was uploaded once"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_declined_mount_falls_back_to_an_upload() {
    for kind in engines_under_test() {
        let registry = TestRegistry::start();
        let shared = Layer {
            bytes: MIB,
            seed: 71,
        };
        let first = TestImage::named(kind);
        first.build(&[shared]);
        let second = TestImage::named(kind);
        second.build(&[
            shared,
            Layer {
                bytes: 4096,
                seed: 72,
            },
        ]);
        let base = layers_of(kind, &first.name)[0].clone();
        let engine = Engine::new(kind);
        let target = RegistryTarget::parse(&registry.host(), false).unwrap();
        let mut pusher = Pusher::new(&engine, &target, &Silent).unwrap();
        pusher
            .push(&first.name, Source::Engine { image: &first.name })
            .unwrap();
        // The layer leaves the first repository: a mount from there is
        // refused (202), and the registry opens an upload instead.
        let first_repository = first.name.split(':').next().unwrap();
        let deleted = registry.request(
            "DELETE",
            &format!("/v2/{first_repository}/blobs/{base}"),
            "",
        );
        assert!(deleted.starts_with("HTTP/1.1 202"), "{deleted}");

        let report = pusher
            .push(
                &second.name,
                Source::Engine {
                    image: &second.name,
                },
            )
            .unwrap();
        assert_eq!(report.blobs_mounted, 0, "{kind}: {report:?}");
        assert_eq!(report.blobs_uploaded, 3, "{kind}: {report:?}");
        let requests = registry.requests();
        let mounts: Vec<&LoggedRequest> = requests
            .iter()
            .filter(|r| r.target.contains("mount="))
            .collect();
        assert_eq!(mounts.len(), 1, "{kind}: {mounts:?}");
        assert_eq!(mounts[0].status, 202, "{kind}");
        // The upload the declined mount opened was cancelled.
        assert!(
            requests.iter().any(|r| r.method == "DELETE"
                && r.target.contains("/blobs/uploads/")
                && r.status == 204),
            "{kind}: {requests:?}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_registry_restarted_mid_push_is_ridden_out_by_retries() {
    for kind in engines_under_test() {
        let mut registry = TestRegistry::start();
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 64 * MIB,
            seed: 81,
        }]);
        let engine = Engine::new(kind);
        let target = RegistryTarget::parse(&registry.host(), false).unwrap();
        // More patient than the default, for a loaded machine: the
        // restart must fall inside the retries.
        let policy = RetryPolicy {
            attempts: 10,
            max_wait: Duration::from_secs(2),
            ..RetryPolicy::default()
        };
        let report = std::thread::scope(|scope| {
            let pushing = scope.spawn(|| {
                let mut pusher = Pusher::with_policy(&engine, &target, &Silent, policy).unwrap();
                pusher.push(&image.name, Source::Engine { image: &image.name })
            });
            // Down for a second: the next request finds nothing listening.
            registry.wait_for_a_chunk();
            registry.kill();
            std::thread::sleep(Duration::from_secs(1));
            registry.restart();
            pushing.join().unwrap()
        })
        .unwrap_or_else(|error| panic!("{kind}: {error}"));

        assert!(!report.retries.is_empty(), "{kind}: {report:?}");
        assert_eq!(report.blobs_uploaded, 2, "{kind}: {report:?}");
        // The upload was resumed where the registry said it stood, not
        // started again.
        let requests = registry.requests();
        assert!(
            requests.iter().any(|r| r.method == "GET"
                && r.target.contains("/blobs/uploads/")
                && r.status == 204),
            "{kind}: {requests:?}"
        );
        assert_eq!(
            requests
                .iter()
                .filter(|r| r.method == "POST" && r.target.ends_with("/blobs/uploads/"))
                .count(),
            2,
            "{kind}: one upload for the layer, one for the config: {requests:?}"
        );
        let repository = image.name.split(':').next().unwrap();
        let manifest = fetch_manifest(&registry, repository, "1");
        assert_eq!(
            format!("sha256:{}", sha256_hex(&manifest)),
            report.digest.to_string(),
            "{kind}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn credentials_come_from_docker_config_and_a_wrong_password_is_a_clear_error() {
    let password = "s3cret-pw-lm";
    for kind in engines_under_test() {
        let registry = TestRegistry::with_user("ci", password);
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 4096,
            seed: 31,
        }]);
        let config_dir = TempDir::new("lmt-docker-config");
        let write_config = |pair: &str| write_docker_config(&config_dir, &registry, pair);
        let docker_config = config_dir.path.to_str().unwrap();
        let env = [("DOCKER_CONFIG", docker_config)];

        // No credentials at all.
        let (output, _) = push_cli(kind, &image.name, &registry.host(), &[]);
        assert_eq!(output.status.code(), Some(1), "{kind}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("docker login {}", registry.host())),
            "{kind}: {stderr}"
        );

        // The right ones.
        write_config(&format!("ci:{password}"));
        let (output, report) = push_cli(kind, &image.name, &registry.host(), &env);
        assert_succeeded(kind, &output);
        assert_eq!(report["images"][0]["blobs_uploaded"], 2, "{kind}: {report}");

        // A wrong password: refused, named, with the fix, and not printed.
        let wrong = "wrong-pw-lm";
        write_config(&format!("ci:{wrong}"));
        let (output, report) = push_cli(kind, &image.name, &registry.host(), &env);
        assert_eq!(output.status.code(), Some(1), "{kind}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("refused the credentials"),
            "{kind}: {stderr}"
        );
        assert!(
            stderr.contains(docker_config),
            "{kind}: names the file: {stderr}"
        );
        assert!(
            stderr.contains(&format!("docker login {}", registry.host())),
            "{kind}: {stderr}"
        );
        assert!(report["failure"]["error"].is_string(), "{kind}: {report}");
        let printed = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
        for secret in [
            wrong.to_string(),
            password.to_string(),
            base64_encode(format!("ci:{wrong}").as_bytes()),
        ] {
            assert!(!printed.contains(&secret), "{kind}: printed a credential");
        }
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_registry_killed_mid_push_fails_the_push_after_visible_retries() {
    for kind in engines_under_test() {
        let mut registry = TestRegistry::start();
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 96 * MIB,
            seed: 41,
        }]);
        let mut command = loadmaster_command(&[
            "--engine",
            kind.name(),
            "push",
            &image.name,
            "--registry",
            &registry.host(),
            "-o",
            "json",
        ]);
        isolate_credentials(&mut command, &[]);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Killed once the first chunk of the layer arrived.
        registry.wait_for_a_chunk();
        registry.kill();
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();

        assert_eq!(status.code(), Some(1), "{kind}: {stderr}");
        assert!(stderr.contains("failed 5 times"), "{kind}: {stderr}");
        assert_eq!(stderr.matches("retry: ").count(), 4, "{kind}: {stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let retries = report["failure"]["retries"].as_array().unwrap();
        assert_eq!(retries.len(), 4, "{kind}: {report}");
        assert_eq!(retries[3]["attempt"], 4, "{kind}");
        assert!(retries[0]["wait_ms"].as_u64() < retries[3]["wait_ms"].as_u64());

        // Nothing was tagged: the manifest goes last.
        registry.restart();
        let repository = image.name.split(':').next().unwrap();
        let tags = registry.request("GET", &format!("/v2/{repository}/tags/list"), "");
        assert!(
            tags.starts_with("HTTP/1.1 404"),
            "{kind}: the failed push left a tag: {tags}"
        );
    }
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_kind_node_pulls_the_pushed_image_with_the_same_config() {
    for target in node_targets() {
        let kind = target.kind;
        let registry = TestRegistry::start();
        let image = TestImage::named(kind);
        image.build(&[
            Layer {
                bytes: MIB,
                seed: 51,
            },
            Layer {
                bytes: MIB,
                seed: 52,
            },
        ]);
        let (output, report) = push_cli(kind, &image.name, &format!("{}/ci", registry.host()), &[]);
        assert_succeeded(kind, &output);
        let pushed = report["images"][0]["pushed"].as_str().unwrap().to_string();

        let cluster = TestCluster::start(
            kind,
            0,
            &NodeOptions {
                host_network: true,
                ..target.nodes()
            },
        );
        let node = cluster.control_plane();
        cluster.exec(
            node,
            &[
                "ctr",
                "-n",
                "k8s.io",
                "images",
                "pull",
                "--plain-http",
                &pushed,
            ],
        );
        assert_eq!(
            config_on_node(&cluster, node, &pushed),
            normalized_id(&image.id()),
            "{target}"
        );
    }
}

#[test]
fn plain_http_to_another_host_is_refused_before_anything_runs() {
    let output = loadmaster_command(&["push", "app:1", "--registry", "http://192.0.2.10:5000/ci"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-http"), "{stderr}");
    assert!(stderr.contains("192.0.2.10"), "{stderr}");
}

#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn pushes_an_image_from_an_archive() {
    for kind in engines_under_test() {
        let registry = TestRegistry::start();
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 9 * MIB,
            seed: 61,
        }]);
        let saved = support::engine_output(kind, &["save", &image.name]);
        assert!(saved.status.success());
        let engine = Engine::new(kind);
        let target = RegistryTarget::parse(&registry.host(), false).unwrap();
        let mut pusher = Pusher::new(&engine, &target, &Silent).unwrap();
        let source = Source::Archive {
            reader: Box::new(std::io::Cursor::new(saved.stdout)),
            label: "saved.tar".into(),
            image: Some(&image.name),
            known: None,
            platform: None,
        };
        let report = pusher.push(&image.name, source).unwrap();
        assert_eq!(
            report.config.to_string(),
            normalized_id(&image.id()),
            "{kind}"
        );
        assert_eq!(report.blobs_uploaded, 2, "{kind}: {report:?}");
        assert!(report.read_source);
    }
}

/// The manifest the registry serves for `repository:tag`.
fn fetch_manifest(registry: &TestRegistry, repository: &str, tag: &str) -> Vec<u8> {
    let answer = registry.request(
        "GET",
        &format!("/v2/{repository}/manifests/{tag}"),
        "Accept: application/vnd.oci.image.manifest.v1+json\r\n",
    );
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.as_bytes().to_vec()
}

fn sha256_hex(bytes: &[u8]) -> String {
    loadmaster::archive::Digest::of(bytes).hex()
}

/// A docker `config.json` in `dir` holding `pair` (`user:password`) for
/// `registry`.
fn write_docker_config(dir: &TempDir, registry: &TestRegistry, pair: &str) {
    let auth = base64_encode(pair.as_bytes());
    std::fs::write(
        dir.path.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// HTTPS to a registry whose certificate comes from a CA of its own: the CA
/// given with --cert-dir (the engines' certs.d layout) makes it trusted;
/// without it the push fails before any request reaches the registry, and
/// the error says where the CA would go.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn a_tls_registry_is_trusted_through_its_ca_and_refused_without_it() {
    for kind in engines_under_test() {
        let registry = TestRegistry::with_tls();
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 4096,
            seed: 41,
        }]);
        let https = format!("https://{}/tls", registry.host());
        let push = |extra: &[&str]| {
            let mut args = vec!["--engine", kind.name(), "push", &image.name, "--registry"];
            args.extend([https.as_str(), "-o", "json"]);
            args.extend(extra);
            let mut command = loadmaster_command(&args);
            isolate_credentials(&mut command, &[]);
            command.output().expect("run loadmaster push")
        };

        let refused = push(&[]);
        assert_eq!(refused.status.code(), Some(1), "{kind}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("certs.d") && stderr.contains("--cert-dir"),
            "{kind}: says where the CA goes: {stderr}"
        );
        assert!(
            registry.requests().is_empty(),
            "{kind}: no request got through: {:?}",
            registry.requests()
        );

        let ca_dir = registry.ca_dir();
        let trusted = push(&["--cert-dir", ca_dir.to_str().unwrap()]);
        assert_succeeded(kind, &trusted);
        let report: Value = serde_json::from_slice(&trusted.stdout).unwrap();
        assert_eq!(report["images"][0]["blobs_uploaded"], 2, "{kind}: {report}");
        assert!(
            registry
                .requests()
                .iter()
                .any(|r| r.method == "PUT" && r.target.starts_with("/v2/tls/") && r.status == 201),
            "{kind}: the manifest arrived over HTTPS: {:?}",
            registry.requests()
        );
    }
}

/// Bearer authentication, as hosted registries ask for it: the registry
/// sends the client to a token server (its realm) with the credentials of
/// the auth file; real RS256 tokens, checked by the registry. Wrong
/// credentials are refused by the realm: a clear error, no password shown.
#[test]
#[cfg_attr(not(engine_tests), ignore = "needs LOADMASTER_TEST_ENGINES")]
fn bearer_tokens_come_from_the_realm_with_the_auth_files_credentials() {
    let password = "t0ken-pw-lm";
    for kind in engines_under_test() {
        let registry = TestRegistry::with_token_auth("ci", password);
        let image = TestImage::named(kind);
        image.build(&[Layer {
            bytes: 4096,
            seed: 51,
        }]);
        let config_dir = TempDir::new("lmt-docker-config");
        let write_config = |pair: &str| write_docker_config(&config_dir, &registry, pair);
        let env = [("DOCKER_CONFIG", config_dir.path.to_str().unwrap())];

        write_config(&format!("ci:{password}"));
        let (output, report) = push_cli(kind, &image.name, &registry.host(), &env);
        assert_succeeded(kind, &output);
        assert_eq!(report["images"][0]["blobs_uploaded"], 2, "{kind}: {report}");
        let requests = registry.requests();
        assert!(
            requests.iter().any(|r| r.status == 401),
            "{kind}: the registry asked for a token: {requests:?}"
        );
        assert!(
            requests
                .iter()
                .any(|r| r.method == "PUT" && r.target.contains("/manifests/") && r.status == 201),
            "{kind}: the manifest was accepted with the token: {requests:?}"
        );

        let wrong = "wr0ng-pw-lm";
        write_config(&format!("ci:{wrong}"));
        let (output, _) = push_cli(kind, &image.name, &registry.host(), &env);
        assert_eq!(output.status.code(), Some(1), "{kind}");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        assert!(printed.contains(&registry.host()), "{kind}: {printed}");
        assert!(
            printed.contains("refused the credentials")
                && printed.contains(&format!("docker login {}", registry.host())),
            "{kind}: says why and how to fix it: {printed}"
        );
        for secret in [
            wrong.to_string(),
            base64_encode(format!("ci:{wrong}").as_bytes()),
        ] {
            assert!(
                !printed.contains(&secret),
                "{kind}: printed a secret: {printed}"
            );
        }
    }
}
