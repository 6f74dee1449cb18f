//! The crate's layers only look down.
//!
//! Reads every file under `src/`, finds which top-level modules each
//! top-level module names through `crate::` paths (unit-test modules
//! aside: a test may reach anywhere), and fails on a cycle between modules
//! and on any name of a module in a higher layer than the one naming it.
//! Modules of one layer may use each other, as long as no cycle forms.
//!
//! The layers are those of the design ("Shape of the code"), top first. A
//! new top-level module must be placed in one, so that where it sits is
//! decided, not drifted into.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, top first: each uses only its own and those below it.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["report"],
    &["runner"],
    &["monitor", "triage", "doctor", "events"],
    &["plan", "journal"],
    &["deliver", "push", "registry"],
    &["engine", "cluster", "archive", "kind_config"],
    &["process", "host", "units", "time", "finding"],
];

/// Plain data (the plan, the run's events): the modules that do I/O
/// convert into these types, so these name none of them.
const PLAIN_DATA: &[&str] = &["plan", "journal"];
const INPUT_OUTPUT: &[&str] = &["deliver", "push", "registry"];

/// Which top-level modules each top-level module names.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn modules_form_no_cycle() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "modules that reach each other: {cycles:?}\n  fix: move what both need into a module below them"
    );
}

#[test]
fn every_module_uses_only_its_layer_and_those_below() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let problems = layer_problems(&graph, LAYERS);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn plan_and_journal_are_plain_data() {
    let graph = module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let problems: Vec<String> = PLAIN_DATA
        .iter()
        .flat_map(|data| {
            graph[*data]
                .iter()
                .filter(|name| INPUT_OUTPUT.contains(&name.as_str()))
                .map(move |name| format!("`{data}` uses `{name}`: convert into its types where {name} is called instead"))
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_see_an_upward_name_and_a_cycle() {
    // The checks themselves, on a made-up crate: without this, a parser
    // that found no names at all would pass the two tests above.
    let dir = std::env::temp_dir().join(format!("loadmaster-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("engine")).unwrap();
    let files = [
        ("lib.rs", "pub mod engine; pub mod journal; pub mod time;"),
        (
            "engine/mod.rs",
            "use crate::{time::{self, Timestamp}, journal};\nfn f() -> crate::journal::Event { todo!() }",
        ),
        (
            "journal.rs",
            "use crate::engine::Engine;\n#[cfg(test)]\nmod tests {\n    use crate::cli;\n}\n",
        ),
        ("time.rs", "//! A leaf.\n"),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text).unwrap();
    }
    let graph = module_graph(&dir);
    std::fs::remove_dir_all(&dir).unwrap();

    let names = |module: &str| -> Vec<&str> { graph[module].iter().map(String::as_str).collect() };
    assert_eq!(names("engine"), ["journal", "time"]);
    // The unit-test module's `crate::cli` is not counted.
    assert_eq!(names("journal"), ["engine"]);
    assert_eq!(cycles(&graph), [vec!["engine", "journal"]]);
    let layers: &[&[&str]] = &[&["journal"], &["engine"], &["time"]];
    assert_eq!(
        layer_problems(&graph, layers),
        ["`engine` (layer 2) uses `journal`, which is above it (layer 1)"]
    );
    assert_eq!(
        layer_problems(&graph, &[&["journal", "engine"]]),
        ["`time` is in no layer: place it in tests/layers.rs's LAYERS"]
    );
}

/// The graph of the top-level modules under `src`.
fn module_graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let top = relative.components().next().unwrap().as_os_str();
            let top = top.to_str().unwrap().trim_end_matches(".rs").to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let used = graph.entry(top.clone()).or_default();
            used.extend(crate_names(without_unit_tests(&text)).filter(|name| *name != top));
        }
    }
    // Only names of modules count (`crate::Error` would be an item of lib.rs).
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for used in graph.values_mut() {
        used.retain(|name| modules.contains(name));
    }
    graph
}

/// The text before the first `#[cfg(test)] mod NAME {`: unit tests come
/// last in every file of the crate.
fn without_unit_tests(text: &str) -> &str {
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod ") {
            return &text[..offset + at];
        }
        offset += at + 1;
        rest = &rest[at + 1..];
    }
    text
}

/// The first path segment after every `crate::`, including each of a
/// group's (`crate::{a::X, b}`).
fn crate_names(text: &str) -> impl Iterator<Item = String> + '_ {
    text.match_indices("crate::").flat_map(|(at, _)| {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Only the segments that start an entry of this group name
            // modules; nested groups (`a::{B, C}`) hold items.
            let mut names = vec![identifier(group.trim_start())];
            let mut depth = 0;
            for (at, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => names.push(identifier(group[at + 1..].trim_start())),
                    _ => {}
                }
            }
            names
        } else {
            vec![identifier(rest)]
        }
    })
}

fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every strongly connected group of two or more modules, each sorted.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut pending = vec![from.clone()];
        while let Some(module) = pending.pop() {
            for next in graph.get(&module).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    pending.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|module| (module, reach(module))).collect();
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for (module, reaches) in &reached {
        let group: Vec<String> = reaches
            .iter()
            .filter(|other| reached[other].contains(*module))
            .cloned()
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

/// Each use of a module in a higher layer, and each module in no layer.
fn layer_problems(graph: &Graph, layers: &[&[&str]]) -> Vec<String> {
    let layer_of = |module: &str| layers.iter().position(|layer| layer.contains(&module));
    let mut problems = Vec::new();
    for (module, used) in graph {
        let Some(own) = layer_of(module) else {
            problems.push(format!(
                "`{module}` is in no layer: place it in tests/layers.rs's LAYERS"
            ));
            continue;
        };
        for name in used {
            if let Some(theirs) = layer_of(name).filter(|&theirs| theirs < own) {
                problems.push(format!(
                    "`{module}` (layer {}) uses `{name}`, which is above it (layer {})",
                    own + 1,
                    theirs + 1
                ));
            }
        }
    }
    problems
}
