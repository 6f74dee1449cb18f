//! The plan file: `loadmaster check` on malformed plans (each error at its
//! exact line and column, with what was expected), defaults, the example
//! plans, and the JSON Schema that editors use, checked with a validator.

mod support;

use loadmaster::plan::{self, PlanError, TeardownAction};
use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{TempDir, loadmaster};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plans")
        .join(name)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("loadmaster.yaml")
}

/// Runs `loadmaster check -f FILE`, expects exit 2, and returns stderr.
fn check_fails(file: &Path) -> String {
    let output = loadmaster(&["check", "-f", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}: {stderr}",
        file.display()
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout for an invalid plan"
    );
    stderr
}

/// The expected `file:line:column: message` prefix for a fixture.
fn at(name: &str, line: usize, column: usize) -> String {
    format!("{}:{line}:{column}: ", fixture(name).display())
}

#[test]
fn syntax_and_shape_errors_name_line_column_and_what_was_expected() {
    let cases = [
        // `engine` indented one space more than `name`: the YAML parser
        // stops at the colon after it.
        (
            "bad-indentation.yaml",
            4,
            10,
            "mapping values are not allowed in this context: check the indentation",
        ),
        (
            "wrong-type.yaml",
            5,
            19,
            "budget.parallelBuilds: invalid type: string \"two\", expected u32",
        ),
        (
            "unknown-field.yaml",
            6,
            5,
            "images[0]: unknown field `biuld`, expected one of `name`, `build`, `pull`, `archive`",
        ),
        (
            "missing-required.yaml",
            5,
            3,
            "test: missing field `command`",
        ),
        (
            "bad-duration.yaml",
            6,
            12,
            "test.timeout: \"10 minutes\" is not a duration with units, like 90s, 5m",
        ),
        (
            "bad-size.yaml",
            7,
            11,
            // A bare number is a YAML integer: refused as one, saying what
            // was expected.
            "budget.memory: invalid type: integer `2048`, expected a size with a unit, like 512MiB, 2GiB",
        ),
    ];
    for (name, line, column, message) in cases {
        let stderr = check_fails(&fixture(name));
        let expected = format!("{}{message}", at(name, line, column));
        assert!(
            stderr.contains(&expected),
            "{name}: expected\n  {expected}\nin\n  {stderr}"
        );
    }
}

#[test]
fn a_needs_cycle_is_reported_with_the_steps_in_it() {
    let stderr = check_fails(&fixture("needs-cycle.yaml"));
    // base needs app, app needs db, and db (no `needs`) follows base.
    let expected = format!(
        "{}deploy[0].needs: these steps need each other, so none can start: base -> app -> db -> base",
        at("needs-cycle.yaml", 7, 12)
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("\"db\" gives no needs, so it follows the step before it, \"base\""),
        "{stderr}"
    );
}

#[test]
fn every_rule_broken_is_reported_at_once_in_file_order() {
    let stderr = check_fails(&fixture("many-problems.yaml"));
    let name = "many-problems.yaml";
    let expected = [
        (
            3,
            9,
            "cluster.name: \"Demo_Cluster\" is not a kind cluster name",
        ),
        (7, 16, "images[0].build.context: "),
        (8, 5, "images[1]: an image comes from one place"),
        (
            8,
            11,
            "images[1].name: images[0] is the same image (localhost/app:1)",
        ),
        (
            14,
            13,
            "deploy[0].needs[0]: no deploy step is named \"databse\"; the steps are: app",
        ),
        (
            16,
            18,
            "deploy[0].wait[0].rollout: \"pod/app\": give deployment/NAME",
        ),
        (17, 9, "deploy[0].wait[1]: a condition wait needs resource"),
    ];
    assert!(stderr.contains("7 problem(s)"), "{stderr}");
    let mut from = 0;
    for (line, column, message) in expected {
        let want = format!("{}{message}", at(name, line, column));
        let found = stderr[from..]
            .find(&want)
            .unwrap_or_else(|| panic!("expected, in order,\n  {want}\nin\n{stderr}"));
        from += found + want.len();
    }
    assert!(stderr.contains("no-such-dir (directory)"), "{stderr}");
}

/// Expects `check` to report exactly `expected` (line, column, message
/// start), in this order, for a fixture.
fn expect_problems(name: &str, expected: &[(usize, usize, &str)]) {
    let stderr = check_fails(&fixture(name));
    assert!(
        stderr.contains(&format!("{} problem(s)", expected.len())),
        "{stderr}"
    );
    let mut from = 0;
    for (line, column, message) in expected {
        let want = format!("{}{message}", at(name, *line, *column));
        let found = stderr[from..]
            .find(&want)
            .unwrap_or_else(|| panic!("expected, in order,\n  {want}\nin\n{stderr}"));
        from += found + want.len();
    }
}

#[test]
fn an_existing_cluster_needs_a_context_and_a_registry_and_takes_no_kind_settings() {
    expect_problems(
        "existing-problems.yaml",
        &[
            (
                3,
                3,
                "cluster: an existing cluster is reached through a kubeconfig context: add `context: NAME`",
            ),
            (
                3,
                3,
                "cluster: an existing cluster's nodes are not touched, so images go through a registry: add `delivery: {mode: registry, registry: HOST[/PREFIX]}`",
            ),
            (
                5,
                14,
                "cluster.nodeImage: an existing cluster (provider: existing) is not created",
            ),
            (
                6,
                13,
                "cluster.existing: `provider: existing` is never created or deleted already",
            ),
        ],
    );
    expect_problems(
        "existing-load.yaml",
        &[
            (5, 12, "cluster.context: the context is empty"),
            (6, 15, "cluster.kubeconfig: "),
            (
                8,
                11,
                "cluster.delivery.mode: an existing cluster's nodes are not touched, so images cannot be loaded into them: use `mode: registry`",
            ),
        ],
    );
    expect_problems(
        "existing-registry-problems.yaml",
        &[
            (
                7,
                5,
                "cluster.delivery: an existing cluster needs `registry: HOST[/PREFIX]`",
            ),
            (
                9,
                11,
                "images[0].name: \"app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" names an image by digest only: a push needs a tag",
            ),
        ],
    );
}

#[test]
fn an_image_cache_that_cannot_serve_is_reported_where_it_is() {
    expect_problems(
        "image-cache-problems.yaml",
        &[
            (
                8,
                5,
                "cluster.imageCache: the image cache serves loads into the nodes, and this cluster's images go through a registry",
            ),
            (8, 10, "cluster.imageCache.dir: give the cache's directory"),
            (
                9,
                14,
                "cluster.imageCache.maxSize: a cache of 0 bytes keeps nothing",
            ),
        ],
    );
}

#[test]
fn delivery_settings_that_do_not_apply_are_reported_where_they_are() {
    expect_problems(
        "kind-delivery-problems.yaml",
        &[
            (
                4,
                12,
                "cluster.context: only an existing cluster is reached through a kubeconfig: add `provider: existing`",
            ),
            (
                7,
                15,
                "cluster.delivery.registry: only `mode: registry` takes this",
            ),
            (
                8,
                16,
                "cluster.delivery.allowHttp: only `mode: registry` takes this",
            ),
        ],
    );
    expect_problems(
        "registry-problems.yaml",
        &[(
            6,
            15,
            "cluster.delivery.registry: registry \"http://registry.example.com:5000/team\" asks for plain HTTP to registry.example.com:5000, which is not this machine: anything on the network could read or change the images; use HTTPS (drop `http://`), or allow plain HTTP if the network is trusted (`--allow-http`; in a plan, `allowHttp: true`)",
        )],
    );
    let stderr = check_fails(&fixture("bad-delivery-mode.yaml"));
    assert!(
        stderr.contains(&format!(
            "{}cluster.delivery.mode: unknown variant `push`, expected `load` or `registry`",
            at("bad-delivery-mode.yaml", 5, 11)
        )),
        "{stderr}"
    );
}

#[test]
fn defaults_are_filled_and_needs_resolved() {
    let plan = plan::load(&fixture("defaults.yaml")).unwrap();
    assert_eq!(plan.images[0].reference, "docker.io/library/app:1");
    assert!(matches!(plan.images[0].source, plan::ImageSource::Engine));
    // No `needs`: after the step before. `needs: []`: nothing.
    let needs: Vec<(&str, Vec<String>)> = plan
        .deploy
        .iter()
        .map(|step| (step.name.as_str(), step.needs.clone()))
        .collect();
    assert_eq!(
        needs,
        vec![
            ("first", vec![]),
            ("second", vec!["first".to_string()]),
            ("independent", vec![]),
        ]
    );
    assert_eq!(plan.deploy_order, ["first", "second", "independent"]);
    let wait = &plan.deploy[1].waits[0];
    assert!(matches!(&wait.until, plan::WaitFor::JobComplete { job } if job == "migrate"));
    assert_eq!(wait.timeout, plan::WAIT_TIMEOUT);
    let test = plan.test.as_ref().unwrap();
    assert_eq!(test.timeout, plan::TEST_TIMEOUT);
    assert_eq!(test.workdir, fixture(""));
    assert_eq!(
        test.command,
        plan::CommandLine::Argv(vec!["go".into(), "test".into(), "./...".into()])
    );
    assert_eq!(plan.teardown.on_success, TeardownAction::Delete);
    assert_eq!(plan.teardown.on_failure, TeardownAction::Keep);
    // A kind cluster, created and deleted by loadmaster, images loaded.
    assert_eq!(plan.cluster.provider, plan::Provider::Kind);
    assert_eq!(plan.cluster.delivery, plan::Delivery::Load);
    assert!(!plan.cluster.existing);
}

#[test]
fn teardown_follows_flag_then_environment_then_plan() {
    let plan = plan::load(&fixture("defaults.yaml")).unwrap();
    let teardown = plan.teardown;
    assert_eq!(
        teardown.action(true, None, None).unwrap(),
        TeardownAction::Delete
    );
    assert_eq!(
        teardown.action(false, None, None).unwrap(),
        TeardownAction::Keep
    );
    assert_eq!(
        teardown.action(true, None, Some("keep")).unwrap(),
        TeardownAction::Keep
    );
    assert_eq!(
        teardown
            .action(false, Some(TeardownAction::Delete), Some("keep"))
            .unwrap(),
        TeardownAction::Delete
    );
    let error = teardown.action(true, None, Some("sometimes")).unwrap_err();
    assert!(matches!(error, PlanError::BadTeardownEnv { .. }));
    assert!(error.to_string().contains("use keep or delete"), "{error}");
}

#[test]
fn the_example_plans_check_clean() {
    for name in ["operator-e2e", "kind", "local", "existing"] {
        let path = example(name);
        let output = loadmaster(&["check", "-f", path.to_str().unwrap(), "-o", "json"]);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let resolved: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(resolved["file"], path.to_str().unwrap());
    }
    let plan = plan::load(&example("operator-e2e")).unwrap();
    assert_eq!(plan.cluster.name, "aianalysis-e2e");
    let built: Vec<&str> = plan
        .images
        .iter()
        .filter(|image| matches!(image.source, plan::ImageSource::Build(_)))
        .map(|image| image.name.as_str())
        .collect();
    assert_eq!(built.len(), 3, "{built:?}");
    assert_eq!(
        plan.deploy_order,
        ["namespace", "postgresql", "redis", "services"]
    );
    assert!(plan.budget.memory.is_some());
    let existing = plan::load(&example("existing")).unwrap();
    assert_eq!(
        existing.cluster.provider,
        plan::Provider::Existing {
            context: "staging-e2e".to_string(),
            kubeconfig: None
        }
    );
    assert_eq!(
        existing.cluster.delivery,
        plan::Delivery::Registry {
            registry: Some("registry.example.com/e2e".to_string()),
            allow_http: false
        }
    );
    assert!(
        existing.cluster.existing,
        "an existing cluster is never deleted"
    );
    // `plan check` is the same command.
    let output = loadmaster(&["plan", "check", "-f", example("local").to_str().unwrap()]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid plan"));
}

/// The schema `loadmaster schema` prints.
fn printed_schema() -> Value {
    let output = loadmaster(&["schema"]);
    assert!(output.status.success());
    serde_json::from_slice(&output.stdout).expect("the schema is JSON")
}

/// A YAML plan as the JSON an editor's validator sees.
fn plan_as_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap()
}

#[test]
fn the_schema_is_draft_2020_12_and_accepts_every_example() {
    let schema = printed_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(
        jsonschema::meta::is_valid(&schema),
        "not a valid JSON Schema"
    );
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let mut plans: Vec<PathBuf> = vec![
        example("operator-e2e"),
        example("kind"),
        example("local"),
        example("existing"),
    ];
    plans.push(fixture("defaults.yaml"));
    for path in plans {
        let errors: Vec<String> = validator
            .iter_errors(&plan_as_json(&path))
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
}

#[test]
fn the_schema_rejects_what_check_rejects() {
    let validator = jsonschema::draft202012::new(&printed_schema()).unwrap();
    let valid = plan_as_json(&example("operator-e2e"));
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut plan = valid.clone();
        edit(&mut plan);
        plan
    };
    let cases: [(&str, Value); 8] = [
        (
            "unknown top-level field",
            broken(&|p| p["clustr"] = Value::from("x")),
        ),
        (
            "unknown field in an image build",
            broken(&|p| p["images"][0]["build"]["contxt"] = Value::from(".")),
        ),
        (
            "missing cluster name",
            broken(&|p| {
                p["cluster"].as_object_mut().unwrap().remove("name");
            }),
        ),
        (
            "duration without a unit",
            broken(&|p| p["test"]["timeout"] = Value::from("45")),
        ),
        (
            "size without a unit",
            broken(&|p| p["budget"]["memory"] = Value::from("12")),
        ),
        (
            "another format version",
            broken(&|p| p["apiVersion"] = Value::from("loadmaster/v2")),
        ),
        (
            "an unknown provider",
            broken(&|p| p["cluster"]["provider"] = Value::from("eks")),
        ),
        (
            "an unknown delivery mode",
            broken(&|p| p["cluster"]["delivery"] = serde_json::json!({"mode": "push"})),
        ),
    ];
    for (what, plan) in cases {
        assert!(
            !validator.is_valid(&plan),
            "the schema accepts a plan with {what}"
        );
    }
    // And the same unknown field is an error for `check`, listing the valid ones.
    let dir = TempDir::new("lm-plan");
    let file = dir.path.join("loadmaster.yaml");
    let text = std::fs::read_to_string(fixture("defaults.yaml"))
        .unwrap()
        .replace(
            "  name: demo\n",
            "  name: demo\n  nodeImg: kindest/node:v1.31.0\n",
        )
        .replace(
            "manifests/",
            &format!("{}/manifests/", fixture("").display()),
        );
    std::fs::write(&file, text).unwrap();
    let error = plan::load(&file).unwrap_err().to_string();
    assert!(
        error.contains(
            ":4:3: cluster: unknown field `nodeImg`, expected one of `name`, `engine`, `nodeImage`"
        ),
        "{error}"
    );
}

#[test]
fn a_missing_plan_file_says_how_to_give_one() {
    let output = loadmaster(&["check", "-f", "/nonexistent/loadmaster.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read plan /nonexistent/loadmaster.yaml")
            && stderr.contains("-f FILE"),
        "{stderr}"
    );
}

/// The plan: an unknown field, a number where the cluster name goes
/// and an image name with a space. serde alone stopped at the first; all
/// three come in one report, in file order, in text and as JSON.
#[test]
fn shape_problems_and_broken_rules_are_reported_together() {
    let name = "shape-and-rule-problems.yaml";
    expect_problems(
        name,
        &[
            (
                3,
                9,
                "cluster.name: invalid type: integer `42`, expected a string",
            ),
            (
                4,
                3,
                "cluster: unknown field `colour`, expected one of `name`",
            ),
            (
                6,
                11,
                "images[0].name: \"my app:1\" is not a valid image reference",
            ),
        ],
    );
    let output = loadmaster(&["check", "-f", fixture(name).to_str().unwrap(), "-o", "json"]);
    assert_eq!(output.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report on stdout");
    assert_eq!(report["valid"], false);
    let places: Vec<(u64, u64, &str)> = report["problems"]
        .as_array()
        .expect("a list of problems")
        .iter()
        .map(|p| {
            (
                p["line"].as_u64().unwrap(),
                p["column"].as_u64().unwrap(),
                p["at"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            (3, 9, "cluster.name"),
            (4, 3, "cluster"),
            (6, 11, "images[0].name")
        ]
    );
}
