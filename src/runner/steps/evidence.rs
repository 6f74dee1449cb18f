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
use crate::triage::{self, Diagnosis, render};
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
            self.kube.gather(
                recorder,
                step,
                &argv,
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
        if self.kube.kubeconfig.is_some() {
            let kubectl = &self.kube.kubectl;
            self.kube.gather(
                recorder,
                step,
                &kubectl.events(None),
                "events.txt",
                "the cluster's events, oldest first",
            );
            self.kube
                .gather(recorder, step, &kubectl.pods(None), "pods.txt", "every pod");
            if step == "test" || step.starts_with("deploy/") {
                self.pod_logs(step);
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
            None => triage::triage_log(output, step),
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
            recorder.reporter.note(
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
    /// ready or failed.
    fn pod_logs(&self, step: &str) {
        let (recorder, kube) = (self.recorder, self.kube);
        let listing = kube.gather(
            recorder,
            step,
            &kube.kubectl.pods_json(),
            "pods.json",
            "every pod as JSON: what the pods whose logs were read were chosen from",
        );
        let pods = match pods::unready(&listing, &pods::plan_namespaces(self.plan)) {
            Ok(pods) => pods,
            Err(error) => {
                recorder.note(
                    Some(step),
                    format!(
                        "pod logs not gathered: kubectl's pod listing is not JSON ({error}): {}",
                        listing.lines().next().unwrap_or_default()
                    ),
                );
                return;
            }
        };
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
            kube.gather(
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
                    kube.gather(
                        recorder,
                        step,
                        &kube.kubectl.pod_logs(
                            &pod.namespace,
                            &pod.name,
                            &container.name,
                            previous,
                        ),
                        &file_name(&format!("{stem}-{}{suffix}", container.name), "log"),
                        &format!("{about}: the log of container {}{which}", container.name),
                    );
                }
            }
        }
    }
}
