//! Kubernetes-level evidence: what `kubectl` prints about pods and events,
//! read back into typed facts.
//!
//! Four shapes are read, wherever they appear in a log (a CI job prints them
//! after a failed wait; the runner saves them at a failed step): `kubectl get
//! pods` tables (`-o wide`, `-A` too), `kubectl describe pod`, `kubectl get
//! events` tables and the events section of a describe, and the JSON of
//! `get pods -o json` / `get events -o json`. Each becomes a
//! [`ContainerStatus`] or a [`KubeEvent`]: the API server's own words
//! (waiting reasons, last termination reasons with exit codes, restart
//! counts, event reasons), which the rules may take as decisive.
//!
//! Tables are read by their shape, not their column offsets: CI runners
//! prefix every line with a timestamp, which moves the columns.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One container of a pod (or the pod itself, where a table row gives only
/// its STATUS column), as the API server reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerStatus {
    pub namespace: Option<String>,
    pub pod: String,
    /// `None` for a `get pods` row, which speaks for the whole pod.
    pub container: Option<String>,
    pub image: Option<String>,
    pub state: State,
    /// The instance before the current one, when it was restarted.
    pub last_termination: Option<Termination>,
    pub restarts: Option<u32>,
    pub ready: Option<bool>,
    /// The container's memory limit as the spec wrote it (`128Mi`).
    pub memory_limit: Option<String>,
}

/// A container's current state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum State {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running,
    Terminated(Termination),
    /// A `get pods` STATUS that is neither: `Pending`, `Completed`,
    /// `Init:0/1`, `Evicted`, `Terminating`.
    Shown {
        status: String,
    },
}

/// How a container instance ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Termination {
    /// `OOMKilled`, `Error`, `Completed`, `ContainerCannotRun`...
    pub reason: Option<String>,
    /// Absent where only a table's STATUS column said it.
    pub exit_code: Option<i32>,
    pub message: Option<String>,
}

/// An event, from an events table, a describe's events or JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KubeEvent {
    pub namespace: Option<String>,
    /// `pod/NAME` where the listing names it; a describe's events concern
    /// the described object, named here.
    pub object: Option<String>,
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// The waiting reasons kubelet reports, as a `get pods` STATUS shows them.
const WAITING_REASONS: [&str; 11] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "ContainerCreating",
    "PodInitializing",
    "ImageInspectError",
];

/// The termination reasons a `get pods` STATUS shows.
const TERMINATION_REASONS: [&str; 5] = [
    "OOMKilled",
    "Error",
    "ContainerCannotRun",
    "StartError",
    "DeadlineExceeded",
];

impl State {
    /// A `get pods` STATUS column (`Init:` prefixes kept out).
    fn from_table(status: &str) -> State {
        let bare = status.strip_prefix("Init:").unwrap_or(status);
        if WAITING_REASONS.contains(&bare) {
            State::Waiting {
                reason: bare.to_string(),
                message: None,
            }
        } else if TERMINATION_REASONS.contains(&bare) {
            State::Terminated(Termination {
                reason: Some(bare.to_string()),
                exit_code: None,
                message: None,
            })
        } else if bare == "Running" {
            State::Running
        } else {
            State::Shown {
                status: status.to_string(),
            }
        }
    }

    /// The waiting reason, if waiting.
    pub fn waiting_reason(&self) -> Option<&str> {
        match self {
            State::Waiting { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl ContainerStatus {
    /// `pod e2e/api-1, container api`.
    pub fn name(&self) -> String {
        let pod = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.pod),
            None => self.pod.clone(),
        };
        match &self.container {
            Some(c) => format!("pod {pod}, container {c}"),
            None => format!("pod {pod}"),
        }
    }

    /// The termination reasons of this container, current and last.
    pub fn terminations(&self) -> impl Iterator<Item = &Termination> {
        let current = match &self.state {
            State::Terminated(t) => Some(t),
            _ => None,
        };
        current.into_iter().chain(self.last_termination.as_ref())
    }
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.as_deref().unwrap_or("terminated"))?;
        if let Some(code) = self.exit_code {
            write!(f, " (exit code {code})")?;
        }
        Ok(())
    }
}

impl fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(image) = &self.image {
            write!(f, " (image {image})")?;
        }
        match &self.state {
            State::Waiting { reason, message } => {
                write!(f, ": waiting, {reason}")?;
                if let Some(m) = message {
                    write!(f, ": {m}")?;
                }
            }
            State::Running => write!(f, ": running")?,
            State::Terminated(t) => write!(f, ": terminated, {t}")?,
            State::Shown { status } => write!(f, ": {status}")?,
        }
        if let Some(last) = &self.last_termination {
            write!(f, "; last terminated: {last}")?;
        }
        if let Some(restarts) = self.restarts.filter(|&r| r > 0) {
            write!(f, "; {restarts} restarts")?;
        }
        Ok(())
    }
}

impl fmt::Display for KubeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.warning { "Warning" } else { "Normal" };
        write!(f, "event {kind} {}", self.reason)?;
        if let Some(object) = &self.object {
            write!(f, " on {object}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What was read, with the 1-based line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Container(ContainerStatus),
    Event(KubeEvent),
}

/// Every pod status and event the lines hold, in line order.
pub fn read(lines: &[String]) -> Vec<(usize, Found)> {
    let mut found = Vec::new();
    found.extend(pod_tables(lines));
    found.extend(event_tables(lines));
    found.extend(describes(lines));
    found.extend(json_documents(lines));
    found.sort_by_key(|(line, _)| *line);
    found
}

/// A line without a leading CI timestamp (`2024-05-01T10:00:00.123Z `).
pub fn unprefixed(line: &str) -> &str {
    let trimmed = line.trim_start();
    let first = trimmed.split(' ').next().unwrap_or("");
    let b = first.as_bytes();
    let stamped = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[10] == b'T'
        && first.ends_with('Z');
    if stamped {
        &trimmed[first.len()..]
    } else {
        line
    }
}

/// The header tokens of a line, upper case words only.
fn header_words(line: &str) -> Vec<&str> {
    unprefixed(line).split_whitespace().collect()
}

/// `get pods` tables: a header holding NAME READY STATUS RESTARTS, then
/// rows whose READY is `N/M`.
fn pod_tables(lines: &[String]) -> Vec<(usize, Found)> {
    let mut found = Vec::new();
    let mut in_table: Option<bool> = None; // Some(has NAMESPACE column)
    for (index, line) in lines.iter().enumerate() {
        let words = header_words(line);
        let is_header = words
            .windows(4)
            .any(|w| w == ["NAME", "READY", "STATUS", "RESTARTS"]);
        if is_header {
            in_table = Some(words.first() == Some(&"NAMESPACE"));
            continue;
        }
        let Some(namespaced) = in_table else { continue };
        match pod_row(&words, namespaced) {
            Some(status) => found.push((index + 1, Found::Container(status))),
            None => in_table = None,
        }
    }
    found
}

/// A `get pods` row: `[NAMESPACE] NAME N/M STATUS RESTARTS[ (30s ago)] AGE ...`.
fn pod_row(words: &[&str], namespaced: bool) -> Option<ContainerStatus> {
    let at = words.iter().position(|w| is_ready_count(w))?;
    // `kubectl get all` names them `pod/NAME`.
    let name = words.get(at.checked_sub(1)?)?;
    let pod = name.strip_prefix("pod/").unwrap_or(name).to_string();
    let namespace = namespaced
        .then(|| at.checked_sub(2).and_then(|i| words.get(i)))
        .flatten()
        .map(|s| s.to_string());
    let status = words.get(at + 1)?;
    let restarts: u32 = words.get(at + 2)?.parse().ok()?;
    let (ready, total) = words[at].split_once('/')?;
    Some(ContainerStatus {
        namespace,
        pod,
        container: None,
        image: None,
        state: State::from_table(status),
        last_termination: None,
        restarts: Some(restarts),
        ready: Some(ready == total),
        memory_limit: None,
    })
}

fn is_ready_count(word: &str) -> bool {
    word.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.chars().all(|c| c.is_ascii_digit())
            && b.chars().all(|c| c.is_ascii_digit())
    })
}

/// `get events` tables: a header holding TYPE and REASON (and MESSAGE),
/// then rows with `Normal` or `Warning` in them.
fn event_tables(lines: &[String]) -> Vec<(usize, Found)> {
    let mut found = Vec::new();
    let mut namespaced: Option<bool> = None;
    for (index, line) in lines.iter().enumerate() {
        let words = header_words(line);
        // `get events` writes its header in capitals, `describe` (pasted
        // without its `Events:` line) as `Type Reason Age From Message`.
        // (Under its `Events:` line, the describe reader has it.)
        let has = |name: &str| words.iter().any(|w| w.eq_ignore_ascii_case(name));
        let described = !words.contains(&"TYPE")
            && index > 0
            && unprefixed(&lines[index - 1]).trim() == "Events:";
        if has("type") && has("reason") && has("message") && !described {
            namespaced = Some(words.first() == Some(&"NAMESPACE"));
            continue;
        }
        let Some(has_namespace) = namespaced else {
            continue;
        };
        // `describe` underlines its event header with dashes.
        if line.trim().chars().all(|c| c == '-' || c == ' ') && line.contains("--") {
            continue;
        }
        match event_row(unprefixed(line), has_namespace) {
            Some(event) => found.push((index + 1, Found::Event(event))),
            None => namespaced = None,
        }
    }
    found
}

/// `[NAMESPACE] LAST-SEEN TYPE REASON OBJECT MESSAGE`.
fn event_row(line: &str, namespaced: bool) -> Option<KubeEvent> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "Normal" || *w == "Warning")?;
    let reason = words.get(at + 1)?.to_string();
    let object = words.get(at + 2).filter(|w| w.contains('/'));
    let message_from = at + 2 + usize::from(object.is_some());
    Some(KubeEvent {
        namespace: namespaced.then(|| words[0].to_string()),
        object: object.map(|s| s.to_string()),
        warning: words[at] == "Warning",
        reason,
        message: rest_after_words(line, message_from),
    })
}

/// The text of `line` from its `n`th word (0-based) on, spacing kept.
fn rest_after_words(line: &str, n: usize) -> String {
    let mut rest = line.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end().to_string()
}

/// `kubectl describe pod` outputs: their containers and their events.
fn describes(lines: &[String]) -> Vec<(usize, Found)> {
    let mut found = Vec::new();
    let mut describe: Option<Describe> = None;
    for (index, raw) in lines.iter().enumerate() {
        let line = unprefixed(raw);
        let trimmed = line.trim();
        let (key, value) = match trimmed.split_once(':') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (trimmed, ""),
        };
        // A describe starts at its top-level `Name:`.
        if key == "Name" && !line.starts_with(' ') && !value.is_empty() {
            if let Some(done) = describe.take() {
                found.extend(done.finish());
            }
            describe = Some(Describe::new(value));
            continue;
        }
        // An excerpt may hold a describe's events without its top.
        if key == "Events" && !line.starts_with(' ') && describe.is_none() {
            let mut events_only = Describe::new("");
            events_only.section = Section::Events;
            describe = Some(events_only);
            continue;
        }
        let Some(d) = describe.as_mut() else { continue };
        if !d.read(line, key, value, index + 1) {
            found.extend(describe.take().map(Describe::finish).unwrap_or_default());
        }
    }
    if let Some(done) = describe {
        found.extend(done.finish());
    }
    found
}

/// The describe being read.
struct Describe {
    pod: String,
    namespace: Option<String>,
    section: Section,
    containers: Vec<(usize, ContainerStatus)>,
    /// Which state the next `Reason:` / `Exit Code:` belongs to.
    in_last_state: bool,
    in_limits: bool,
    events: Vec<(usize, KubeEvent)>,
    is_pod: bool,
}

#[derive(PartialEq)]
enum Section {
    Top,
    Containers,
    Events,
    Other,
}

impl Describe {
    fn new(name: &str) -> Describe {
        Describe {
            pod: name.to_string(),
            namespace: None,
            section: Section::Top,
            containers: Vec::new(),
            in_last_state: false,
            in_limits: false,
            events: Vec::new(),
            is_pod: false,
        }
    }

    /// Reads one line; false when the line cannot belong to a describe.
    fn read(&mut self, line: &str, key: &str, value: &str, number: usize) -> bool {
        let top_level = !line.starts_with(' ') && !line.is_empty();
        if top_level {
            self.section = match key {
                "Containers" | "Init Containers" => {
                    self.is_pod = true;
                    Section::Containers
                }
                "Events" => Section::Events,
                "Namespace" => {
                    self.namespace = Some(value.to_string());
                    Section::Top
                }
                _ if line.contains(':') => Section::Other,
                // Not `Key: value`: the describe has ended.
                _ => return false,
            };
            return true;
        }
        match self.section {
            Section::Containers => self.read_container(line, key, value, number),
            Section::Events => {
                if let Some(event) = self.describe_event(line) {
                    self.events.push((number, event));
                }
            }
            Section::Top | Section::Other => {}
        }
        true
    }

    fn read_container(&mut self, line: &str, key: &str, value: &str, number: usize) {
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && value.is_empty() && line.trim_end().ends_with(':') {
            self.in_last_state = false;
            self.in_limits = false;
            self.containers.push((
                number,
                ContainerStatus {
                    namespace: self.namespace.clone(),
                    pod: self.pod.clone(),
                    container: Some(key.to_string()),
                    image: None,
                    state: State::Shown {
                        status: "unknown".into(),
                    },
                    last_termination: None,
                    restarts: None,
                    ready: None,
                    memory_limit: None,
                },
            ));
            return;
        }
        let Some((_, c)) = self.containers.last_mut() else {
            return;
        };
        match key {
            "Image" => c.image = Some(value.to_string()),
            "State" => {
                self.in_last_state = false;
                self.in_limits = false;
                c.state = match value {
                    "Running" => State::Running,
                    "Waiting" => State::Waiting {
                        reason: String::new(),
                        message: None,
                    },
                    "Terminated" => State::Terminated(Termination {
                        reason: None,
                        exit_code: None,
                        message: None,
                    }),
                    other => State::Shown {
                        status: other.to_string(),
                    },
                };
            }
            "Last State" => {
                self.in_last_state = true;
                self.in_limits = false;
                if value == "Terminated" {
                    c.last_termination = Some(Termination {
                        reason: None,
                        exit_code: None,
                        message: None,
                    });
                }
            }
            "Reason" | "Exit Code" | "Message" => {
                let termination = if self.in_last_state {
                    c.last_termination.as_mut()
                } else {
                    match &mut c.state {
                        State::Terminated(t) => Some(t),
                        State::Waiting { reason, message } => {
                            match key {
                                "Reason" => *reason = value.to_string(),
                                "Message" => *message = Some(value.to_string()),
                                _ => {}
                            }
                            None
                        }
                        _ => None,
                    }
                };
                if let Some(t) = termination {
                    match key {
                        "Reason" => t.reason = Some(value.to_string()),
                        "Exit Code" => t.exit_code = value.parse().ok(),
                        _ => t.message = Some(value.to_string()),
                    }
                }
            }
            "Ready" => {
                self.in_last_state = false;
                c.ready = Some(value == "True");
            }
            "Restart Count" => c.restarts = value.parse().ok(),
            "Limits" => self.in_limits = true,
            "Requests" | "Environment" | "Mounts" => self.in_limits = false,
            "memory" if self.in_limits => c.memory_limit = Some(value.to_string()),
            _ => {}
        }
    }

    /// `Type Reason Age From Message`: `Warning  BackOff  30s (x9 over 2m56s)  kubelet  Back-off ...`.
    fn describe_event(&self, line: &str) -> Option<KubeEvent> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let kind = *words.first()?;
        if kind != "Normal" && kind != "Warning" {
            return None;
        }
        let reason = words.get(1)?.to_string();
        // Age: one word, or `98s (x5 over 3m2s)`.
        let mut at = 3;
        if words.get(at).is_some_and(|w| w.starts_with("(x")) {
            while words.get(at).is_some_and(|w| !w.ends_with(')')) {
                at += 1;
            }
            at += 1;
        }
        // From: `kubelet`, `default-scheduler`, or older `kubelet, node`.
        while words.get(at).is_some_and(|w| w.ends_with(',')) {
            at += 1;
        }
        at += 1;
        Some(KubeEvent {
            namespace: self.namespace.clone(),
            object: (!self.pod.is_empty()).then(|| format!("pod/{}", self.pod)),
            warning: kind == "Warning",
            reason,
            message: rest_after_words(line, at),
        })
    }

    fn finish(self) -> Vec<(usize, Found)> {
        let is_pod = self.is_pod;
        let mut found: Vec<(usize, Found)> = self
            .containers
            .into_iter()
            .map(|(line, c)| (line, Found::Container(c)))
            .collect();
        // The events of another kind of object are not a pod's.
        found.extend(self.events.into_iter().map(|(l, mut e)| {
            if !is_pod {
                e.object = None;
            }
            (l, Found::Event(e))
        }));
        found
    }
}

/// JSON documents of pods and events: a line that opens `{` starts one.
fn json_documents(lines: &[String]) -> Vec<(usize, Found)> {
    let mut found = Vec::new();
    let mut skip_to = 0;
    for (index, line) in lines.iter().enumerate() {
        if index < skip_to || !unprefixed(line).trim_start().starts_with('{') {
            continue;
        }
        let text = lines[index..]
            .iter()
            .map(|l| unprefixed(l))
            .collect::<Vec<_>>()
            .join("\n");
        let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Object>();
        let Some(Ok(object)) = stream.next() else {
            continue;
        };
        skip_to = index + text[..stream.byte_offset()].matches('\n').count() + 1;
        let at = index + 1;
        for pod in object.items.iter().chain(object.as_pod.as_ref()) {
            found.extend(pod.statuses().map(|c| (at, Found::Container(c))));
        }
        for event in object.items_events.iter().chain(object.as_event.as_ref()) {
            found.push((at, Found::Event(event.to_event())));
        }
    }
    found
}

/// A JSON document: a `List` of pods or events, a `Pod` or an `Event`.
#[derive(Default)]
struct Object {
    items: Vec<JsonPod>,
    items_events: Vec<JsonEvent>,
    as_pod: Option<JsonPod>,
    as_event: Option<JsonEvent>,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Object, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let mut object = Object::default();
        let parse = |v: &serde_json::Value| -> Option<Item> {
            match v.get("kind").and_then(|k| k.as_str()) {
                Some("Pod") => serde_json::from_value(v.clone()).ok().map(Item::Pod),
                Some("Event") => serde_json::from_value(v.clone()).ok().map(Item::Event),
                _ => None,
            }
        };
        let items: Vec<&serde_json::Value> = match kind {
            "List" | "PodList" | "EventList" => value
                .get("items")
                .and_then(|i| i.as_array())
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            _ => vec![&value],
        };
        for item in items {
            match (parse(item), kind) {
                (Some(Item::Pod(p)), "Pod") => object.as_pod = Some(p),
                (Some(Item::Event(e)), "Event") => object.as_event = Some(e),
                (Some(Item::Pod(p)), _) => object.items.push(p),
                (Some(Item::Event(e)), _) => object.items_events.push(e),
                (None, _) => {}
            }
        }
        Ok(object)
    }
}

enum Item {
    Pod(JsonPod),
    Event(JsonEvent),
}

// The parts of core/v1 Pod and Event read here; everything else is ignored.

#[derive(Deserialize)]
struct JsonPod {
    metadata: JsonMeta,
    #[serde(default)]
    spec: JsonSpec,
    #[serde(default)]
    status: JsonPodStatus,
}

#[derive(Default, Deserialize)]
struct JsonMeta {
    #[serde(default)]
    name: String,
    namespace: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpec {
    #[serde(default)]
    init_containers: Vec<JsonContainer>,
    #[serde(default)]
    containers: Vec<JsonContainer>,
}

#[derive(Deserialize)]
struct JsonContainer {
    name: String,
    #[serde(default)]
    resources: JsonResources,
}

#[derive(Default, Deserialize)]
struct JsonResources {
    #[serde(default)]
    limits: std::collections::BTreeMap<String, serde_json::Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonPodStatus {
    phase: Option<String>,
    reason: Option<String>,
    message: Option<String>,
    #[serde(default)]
    init_container_statuses: Vec<JsonContainerStatus>,
    #[serde(default)]
    container_statuses: Vec<JsonContainerStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonContainerStatus {
    name: String,
    image: Option<String>,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: u32,
    #[serde(default)]
    state: JsonState,
    #[serde(default)]
    last_state: JsonState,
}

#[derive(Default, Deserialize)]
struct JsonState {
    waiting: Option<JsonReason>,
    running: Option<serde_json::Value>,
    terminated: Option<JsonTerminated>,
}

#[derive(Deserialize)]
struct JsonReason {
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonTerminated {
    reason: Option<String>,
    exit_code: Option<i32>,
    message: Option<String>,
}

impl JsonTerminated {
    fn to_termination(&self) -> Termination {
        Termination {
            reason: self.reason.clone(),
            exit_code: self.exit_code,
            message: self.message.clone(),
        }
    }
}

impl JsonPod {
    /// One status per container that has one; a pod with none (Pending,
    /// unscheduled, evicted) gives one for the pod, from its phase.
    fn statuses(&self) -> impl Iterator<Item = ContainerStatus> + '_ {
        let limit = |name: &str| {
            self.spec
                .init_containers
                .iter()
                .chain(&self.spec.containers)
                .find(|c| c.name == name)
                .and_then(|c| c.resources.limits.get("memory"))
                .map(|v| v.as_str().map_or(v.to_string(), str::to_string))
        };
        let containers: Vec<ContainerStatus> = self
            .status
            .init_container_statuses
            .iter()
            .chain(&self.status.container_statuses)
            .map(|s| ContainerStatus {
                namespace: self.metadata.namespace.clone(),
                pod: self.metadata.name.clone(),
                container: Some(s.name.clone()),
                image: s.image.clone(),
                state: if let Some(w) = &s.state.waiting {
                    State::Waiting {
                        reason: w.reason.clone().unwrap_or_default(),
                        message: w.message.clone(),
                    }
                } else if let Some(t) = &s.state.terminated {
                    State::Terminated(t.to_termination())
                } else if s.state.running.is_some() {
                    State::Running
                } else {
                    State::Shown {
                        status: "unknown".into(),
                    }
                },
                last_termination: s.last_state.terminated.as_ref().map(|t| t.to_termination()),
                restarts: Some(s.restart_count),
                ready: Some(s.ready),
                memory_limit: limit(&s.name),
            })
            .collect();
        let pod_only = containers.is_empty().then(|| ContainerStatus {
            namespace: self.metadata.namespace.clone(),
            pod: self.metadata.name.clone(),
            container: None,
            image: None,
            state: State::Shown {
                status: [
                    &self.status.phase,
                    &self.status.reason,
                    &self.status.message,
                ]
                .into_iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
                .join(": "),
            },
            last_termination: None,
            restarts: None,
            ready: Some(false),
            memory_limit: None,
        });
        containers.into_iter().chain(pod_only)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEvent {
    #[serde(default)]
    involved_object: JsonObjectRef,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    metadata: JsonMeta,
}

#[derive(Default, Deserialize)]
struct JsonObjectRef {
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

impl JsonEvent {
    fn to_event(&self) -> KubeEvent {
        let object = match (&self.involved_object.kind, &self.involved_object.name) {
            (Some(kind), Some(name)) => Some(format!("{}/{name}", kind.to_lowercase())),
            _ => None,
        };
        KubeEvent {
            namespace: self
                .involved_object
                .namespace
                .clone()
                .or_else(|| self.metadata.namespace.clone()),
            object,
            warning: self.kind == "Warning",
            reason: self.reason.clone(),
            message: self.message.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    fn fixture(name: &str) -> Vec<String> {
        let path = format!(
            "{}/tests/fixtures/kubectl/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        lines(&std::fs::read_to_string(path).unwrap())
    }

    fn containers(found: &[(usize, Found)]) -> Vec<&ContainerStatus> {
        found
            .iter()
            .filter_map(|(_, f)| match f {
                Found::Container(c) => Some(c),
                Found::Event(_) => None,
            })
            .collect()
    }

    fn events(found: &[(usize, Found)]) -> Vec<&KubeEvent> {
        found
            .iter()
            .filter_map(|(_, f)| match f {
                Found::Event(e) => Some(e),
                Found::Container(_) => None,
            })
            .collect()
    }

    #[test]
    fn wide_tables_with_and_without_namespaces() {
        let found = read(&fixture("pods-wide-all.txt"));
        let pods = containers(&found);
        assert_eq!(pods.len(), 7);
        assert_eq!(pods[0].namespace.as_deref(), Some("e2e"));
        assert_eq!(pods[0].pod, "api-6b8f7c9d4-x2x9q");
        assert_eq!(pods[0].state.waiting_reason(), Some("CrashLoopBackOff"));
        assert_eq!(pods[0].restarts, Some(4));
        assert_eq!(pods[0].ready, Some(false));
        assert_eq!(pods[4].state.waiting_reason(), Some("ImagePullBackOff"));
        assert_eq!(pods[5].namespace.as_deref(), Some("kube-system"));
        let found = read(&fixture("pods-wide.txt"));
        let pods = containers(&found);
        assert_eq!(pods.len(), 5);
        assert_eq!(pods[0].namespace, None);
        assert!(
            matches!(&pods[1].state, State::Terminated(t) if t.reason.as_deref() == Some("Error"))
        );
        assert_eq!(pods[2].state, State::Running);
        assert_eq!(pods[2].ready, Some(true));
    }

    #[test]
    fn plain_tables_behind_ci_timestamps() {
        // GitHub Actions prefixes each line with its time.
        let found = read(&lines(
            "2024-03-01T10:00:00.1234567Z NAME                   READY   STATUS              RESTARTS   AGE\n\
             2024-03-01T10:00:00.1234567Z app-5f6d7c8b9-abcde   0/1     ErrImageNeverPull   0          5m\n\
             2024-03-01T10:00:00.1234567Z db-0                  0/1     OOMKilled           3          5m\n\
             2024-03-01T10:00:01.0000000Z done",
        ));
        let pods = containers(&found);
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0].state.waiting_reason(), Some("ErrImageNeverPull"));
        assert!(
            matches!(&pods[1].state, State::Terminated(t) if t.reason.as_deref() == Some("OOMKilled"))
        );
        assert_eq!(found[0].0, 2);
    }

    #[test]
    fn events_tables_name_reason_object_and_message() {
        let found = read(&fixture("events-all.txt"));
        let all = events(&found);
        let failed = all
            .iter()
            .find(|e| e.reason == "Failed" && e.message.starts_with("Failed to pull"))
            .unwrap();
        assert!(failed.warning);
        assert_eq!(failed.object.as_deref(), Some("pod/worker-5d9c8b7f6-kq4zt"));
        assert_eq!(failed.namespace.as_deref(), Some("e2e"));
        assert!(failed.message.ends_with("connect: connection refused"));
        let unhealthy = all.iter().find(|e| e.reason == "Unhealthy").unwrap();
        assert_eq!(unhealthy.namespace.as_deref(), Some("kube-system"));
        assert!(unhealthy.message.starts_with("Readiness probe failed"));
    }

    #[test]
    fn describe_gives_states_last_terminations_restarts_and_events() {
        let found = read(&fixture("describe/api-6b8f7c9d4-x2x9q.txt"));
        let all = containers(&found);
        assert_eq!(all.len(), 3);
        let api = all
            .iter()
            .find(|c| c.container.as_deref() == Some("api"))
            .unwrap();
        assert_eq!(api.namespace.as_deref(), Some("e2e"));
        assert_eq!(api.image.as_deref(), Some("localhost/lm-e2e-api:1"));
        assert_eq!(api.state.waiting_reason(), Some("CrashLoopBackOff"));
        let last = api.last_termination.as_ref().unwrap();
        assert_eq!(
            (last.reason.as_deref(), last.exit_code),
            (Some("Error"), Some(1))
        );
        assert_eq!(api.restarts, Some(4));
        assert_eq!(api.ready, Some(false));
        let init = all
            .iter()
            .find(|c| c.container.as_deref() == Some("wait-for-db"))
            .unwrap();
        assert!(matches!(&init.state, State::Terminated(t) if t.exit_code == Some(0)));
        let backoff = events(&found)
            .into_iter()
            .find(|e| e.reason == "BackOff")
            .unwrap();
        assert!(backoff.warning);
        assert!(
            backoff
                .message
                .starts_with("Back-off restarting failed container api")
        );
        assert_eq!(backoff.object.as_deref(), Some("pod/api-6b8f7c9d4-x2x9q"));
    }

    #[test]
    fn describe_of_an_unpullable_pod_has_the_pull_error() {
        let found = read(&fixture("describe/worker-5d9c8b7f6-kq4zt.txt"));
        let worker = containers(&found)[0].clone();
        assert_eq!(worker.state.waiting_reason(), Some("ImagePullBackOff"));
        assert!(
            events(&found)
                .iter()
                .any(|e| e.reason == "Failed" && e.message.contains("Failed to pull image"))
        );
    }

    #[test]
    fn json_pod_lists_give_every_container() {
        let found = read(&fixture("pods.json"));
        let all = containers(&found);
        let api = all
            .iter()
            .find(|c| c.pod.starts_with("api-") && c.container.as_deref() == Some("api"))
            .unwrap();
        assert_eq!(api.state.waiting_reason(), Some("CrashLoopBackOff"));
        assert_eq!(api.restarts, Some(4));
        assert_eq!(api.last_termination.as_ref().unwrap().exit_code, Some(1));
        assert!(
            all.iter()
                .any(|c| c.state.waiting_reason() == Some("ImagePullBackOff"))
        );
    }

    #[test]
    fn json_oom_kill_pending_pod_and_events() {
        let text = r#"{
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "cache-0", "namespace": "e2e"},
            "spec": {"containers": [{"name": "cache", "image": "redis:7", "resources": {"limits": {"memory": "64Mi"}}}]},
            "status": {
                "phase": "Running",
                "containerStatuses": [{
                    "name": "cache", "image": "docker.io/library/redis:7", "ready": false, "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container=cache"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
                }]
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "big-0", "namespace": "e2e"},
            "spec": {"containers": [{"name": "big", "image": "app:1"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
        }
    ]
}
{"apiVersion": "v1", "kind": "Event", "metadata": {"name": "big-0.1", "namespace": "e2e"}, "involvedObject": {"kind": "Pod", "name": "big-0", "namespace": "e2e"}, "reason": "FailedScheduling", "message": "0/1 nodes are available: 1 Insufficient memory.", "type": "Warning"}
"#;
        let found = read(&lines(text));
        let all = containers(&found);
        assert_eq!(all.len(), 2);
        let last = all[0].last_termination.as_ref().unwrap();
        assert_eq!(
            (last.reason.as_deref(), last.exit_code),
            (Some("OOMKilled"), Some(137))
        );
        assert_eq!(all[0].memory_limit.as_deref(), Some("64Mi"));
        assert_eq!(all[1].container, None);
        assert_eq!(
            all[1].state,
            State::Shown {
                status: "Pending".into()
            }
        );
        let event = events(&found)[0];
        assert_eq!(event.reason, "FailedScheduling");
        assert_eq!(event.object.as_deref(), Some("pod/big-0"));
        assert_eq!(found.last().unwrap().0, 28);
    }

    /// Real kubectl output, as a public issue quotes it (kubeedge on kind:
    /// `get all` and a describe's events without the describe's top).
    #[test]
    fn a_quoted_get_all_and_events_excerpt() {
        let path = format!(
            "{}/tests/fixtures/triage-corpus/cases/013-pod-imagepullbackoff-tag-not-found.log",
            env!("CARGO_MANIFEST_DIR")
        );
        let found = read(&lines(&std::fs::read_to_string(path).unwrap()));
        let pods = containers(&found);
        assert_eq!(pods.len(), 1);
        assert_eq!(pods[0].pod, "cloudcore-644d8f55df-sj7xc");
        assert_eq!(pods[0].state.waiting_reason(), Some("ImagePullBackOff"));
        let all = events(&found);
        assert_eq!(all.len(), 6);
        let failed = all.iter().find(|e| e.reason == "Failed").unwrap();
        assert!(failed.warning);
        assert_eq!(failed.object, None);
        assert!(
            failed.message.starts_with(
                "Failed to pull image \"kubeedge/cloudcore:v1.12.19\": rpc error: code = NotFound"
            ),
            "{}",
            failed.message
        );
        assert_eq!(all[1].reason, "Pulling");
    }

    #[test]
    fn ordinary_text_is_no_table() {
        let found = read(&lines(
            "Name: not a describe\nREADY to go\nNAME READY STATUS RESTARTS\nnothing here 1/1\n{ not json",
        ));
        assert!(found.is_empty(), "{found:?}");
    }
}
