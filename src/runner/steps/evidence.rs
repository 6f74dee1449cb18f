//! What a failed step leaves behind: the nodes' logs (`kind export logs`,
//! else each node container's log), the cluster's events and pods, the
//! logs and descriptions of the pods that are not ready ([`super::super::pods`])
//! for a failed deploy or test, each file listed in the journal; and a
//! diagnosis (`diagnosis.json`, `diagnosis.md` in the run directory).

use super::super::{MAX_PODS_READ, kube, pods};
use super::{OnCluster, StepError, file_name};
use crate::journal::Event;
use crate::plan::Provider;
use crate::process;
use crate::triage::evidence::ContainerLog;
use crate::triage::{self, Diagnosis, Evidence, Fact, Source, render};
use std::collections::BTreeSet;
use std::path::Path;

impl OnCluster<'_> {
    /// After a failed step: logs gathered into the run directory, and a
    /// diagnosis written beside them.
    pub fn leave_evidence(&self, step: &str, error: &StepError) {
        let StepError::Failed {
            output,
            node,
            facts,
            ..
        } = error
        else {
            return;
        };
        // A failed pre-flight created nothing to gather from: its findings,
        // in the journal and the error, are the whole story.
        if step == super::preflight::STEP {
            return;
        }
        let recorder = self.recorder;
        let logs = recorder.journal.dir().join("logs");
        let is_kind = self.plan.cluster.provider == Provider::Kind;
        if is_kind && process::on_path("kind") {
            let argv = kube::kind_export_logs(&self.plan.cluster.name, &logs.join("kind"));
            // What could not be read is in the file and the journal.
            let _ = super::gather(
                recorder,
                step,
                &argv,
                kube::kind_env(self.engine.kind()),
                "kind-export.txt",
                "`kind export logs` (the nodes' logs are under logs/kind/)",
            );
        } else {
            for name in self.nodes {
                let text = self
                    .engine
                    .container_logs(name, 500)
                    .unwrap_or_else(|e| format!("cannot read the logs of node {name}: {e}"));
                let file = file_name(&format!("node-{name}"), "log");
                if std::fs::write(logs.join(&file), text).is_ok() {
                    recorder.record(&Event::log_file(
                        step,
                        Path::new("logs").join(file),
                        format!("the log of node {name}'s container"),
                    ));
                }
            }
        }
        let mut pod_evidence = Vec::new();
        if self.kube.kubeconfig.is_some() {
            let kubectl = &self.kube.kubectl;
            let _ = self.kube.gather(
                recorder,
                step,
                &kubectl.events(None),
                "events.txt",
                "the cluster's events, oldest first",
            );
            let _ = self
                .kube
                .gather(recorder, step, &kubectl.pods(None), "pods.txt", "every pod");
            if step == "test" || step.starts_with("deploy/") {
                pod_evidence = self.pod_logs(step);
            }
        }
        let diagnosis: Diagnosis = match node {
            Some(node) => triage::collect::diagnose_load(
                self.engine,
                &triage::collect::LoadFailure {
                    node: Some(node),
                    error: output,
                    facts: facts.as_deref(),
                    archive: None,
                },
            ),
            // The step's output, and what the API server and the crashed
            // containers said about the pods that were not ready.
            None => {
                let mut case = triage::log::scan(output, step);
                if !pod_evidence.is_empty() {
                    case.inputs
                        .push("the pods' statuses and logs gathered at the failure".into());
                    case.evidence.extend(pod_evidence);
                }
                triage::diagnose(&case)
            }
        };
        // Triage that finds no cause would only contradict the error: the
        // error says it all, and the gathered logs stay.
        if diagnosis.root_cause.is_none() {
            recorder.record(&Event::note(
                Some(step),
                "no diagnosis written: triage found no cause beyond the step's error",
            ));
            return;
        }
        let dir = recorder.journal.dir();
        let written = std::fs::write(dir.join("diagnosis.json"), render::json(&diagnosis))
            .and_then(|()| std::fs::write(dir.join("diagnosis.md"), render::markdown(&diagnosis)));
        if let Err(error) = written {
            recorder.reporter.notice(
                None,
                &format!(
                    "warning: cannot write the diagnosis into {}: {error}",
                    dir.display()
                ),
            );
        }
    }

    /// The logs (a restarted container's previous instance's too) and
    /// descriptions of the pods in the plan's namespaces that are not
    /// ready or failed; returned as evidence: those pods' statuses, and the
    /// last lines of each log read.
    fn pod_logs(&self, step: &str) -> Vec<Evidence> {
        let (recorder, kube) = (self.recorder, self.kube);
        const LISTING: &str = "pods.json";
        let listing = kube
            .gather(
                recorder,
                step,
                &kube.kubectl.pods_json(),
                LISTING,
                "every pod as JSON: what the pods whose logs were read were chosen from",
            )
            .and_then(|listing| {
                let pods = pods::unready(&listing, &pods::plan_namespaces(self.plan))
                    .map_err(|error| format!("kubectl's pod listing is not JSON ({error})"))?;
                Ok((listing, pods))
            });
        let (listing, pods) = match listing {
            Ok(read) => read,
            Err(why) => {
                recorder.note(
                    Some(step),
                    format!(
                        "pod logs not gathered: {}",
                        why.lines().next().unwrap_or_default()
                    ),
                );
                return Vec::new();
            }
        };
        let namespaces = pods::plan_namespaces(self.plan);
        let mut evidence = pod_statuses(&listing, &format!("logs/{LISTING}"), &namespaces);
        if pods.len() > MAX_PODS_READ {
            recorder.note(
                Some(step),
                format!(
                    "{} pods are not ready; the logs of the first {MAX_PODS_READ} are gathered",
                    pods.len()
                ),
            );
        }
        for pod in pods.iter().take(MAX_PODS_READ) {
            let about = format!("pod {}/{} ({})", pod.namespace, pod.name, pod.why);
            let stem = format!("pod-{}-{}", pod.namespace, pod.name);
            let _ = kube.gather(
                recorder,
                step,
                &kube.kubectl.describe_pod(&pod.namespace, &pod.name),
                &file_name(&format!("{stem}-describe"), "txt"),
                &format!("{about}: `kubectl describe`"),
            );
            for container in &pod.containers {
                let instances: &[bool] = if container.restarted {
                    &[false, true]
                } else {
                    &[false]
                };
                for &previous in instances {
                    let (suffix, which) = if previous {
                        ("-previous", " (its instance before the last restart)")
                    } else {
                        ("", "")
                    };
                    let file = file_name(&format!("{stem}-{}{suffix}", container.name), "log");
                    let log = kube.gather(
                        recorder,
                        step,
                        &kube.kubectl.pod_logs(
                            &pod.namespace,
                            &pod.name,
                            &container.name,
                            previous,
                        ),
                        &file,
                        &format!("{about}: the log of container {}{which}", container.name),
                    );
                    // A log that could not be read says nothing of the
                    // container: the reason is in the file and the journal.
                    // The kubelet answers for a log it no longer has with
                    // a line of its own: that is not the container's.
                    let log = log.ok().filter(|log| !log.starts_with(KUBELET_LOG_GONE));
                    if let Some(log) = log {
                        evidence.push(Evidence::new(
                            Source::Log {
                                file: format!("logs/{file}"),
                                line: 1,
                            },
                            Fact::ContainerLog(ContainerLog {
                                namespace: pod.namespace.clone(),
                                pod: pod.name.clone(),
                                container: container.name.clone(),
                                previous,
                                last_lines: last_lines(&log),
                            }),
                        ));
                    }
                }
            }
        }
        evidence
    }
}

/// The statuses, in the pod listing, of the containers in the plan's
/// namespaces (every namespace when it names none): the failed ones are
/// the diagnosis's evidence, the ready ones what still works.
fn pod_statuses(listing: &str, file: &str, namespaces: &BTreeSet<String>) -> Vec<Evidence> {
    let lines: Vec<String> = listing.lines().map(str::to_string).collect();
    triage::kube::read(&lines)
        .into_iter()
        .filter_map(|(line, found)| match found {
            triage::kube::Found::Container(status)
                if namespaces.is_empty()
                    || status
                        .namespace
                        .as_ref()
                        .is_some_and(|ns| namespaces.contains(ns)) =>
            {
                let source = Source::Log {
                    file: file.to_string(),
                    line,
                };
                Some(
                    Evidence::new(source, Fact::PodContainer(status))
                        .with_excerpt(lines[line - 1].trim()),
                )
            }
            _ => None,
        })
        .collect()
}

/// What the kubelet answers, successfully, for a container log it no
/// longer has (a crashed instance already cleaned up).
const KUBELET_LOG_GONE: &str = "unable to retrieve container logs for ";

/// How many of a log's last lines a diagnosis quotes: a crash's own words
/// are its last few.
const QUOTED_LINES: usize = 3;

/// A log's last non-empty lines, without kubectl's `--timestamps` prefix.
fn last_lines(log: &str) -> Vec<String> {
    let mut lines: Vec<String> = log
        .lines()
        .rev()
        .map(|line| triage::kube::unprefixed(line).trim().to_string())
        .filter(|line| !line.is_empty())
        .take(QUOTED_LINES)
        .collect();
    lines.reverse();
    lines
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn a_logs_last_lines_lose_their_timestamps() {
        let log = "2026-12-03T09:00:00.000000001Z starting\n\
                   2026-12-03T09:00:00.100000000Z reading config\n\n\
                   2026-12-03T09:00:00.200000000Z opened\n\
                   2026-12-03T09:00:00.300000000Z fault: cannot open /etc/app/config.yaml\n";
        assert_eq!(
            last_lines(log),
            [
                "reading config",
                "opened",
                "fault: cannot open /etc/app/config.yaml"
            ]
        );
        assert!(last_lines("").is_empty());
    }
}
