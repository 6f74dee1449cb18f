//! The deploy steps, `deploy/<name>`: a step's manifests applied (as they
//! are, or through [`super::super::overlay`]s naming the pushed images), then
//! its waits; a wait that times out fails the step with the namespace's
//! pods and events.

use super::super::overlay::{self, Rewrite};
use super::super::{APPLY_TIMEOUT, build, kube};
use super::{Failure, Kube, Recorder, StepError, failure_line, file_name};
use crate::journal::Event;
use crate::plan::{Apply, DeployStep, Plan};
use crate::process::Spec;

/// The deploy steps' context.
pub struct Deploy<'a> {
    pub plan: &'a Plan,
    pub kube: &'a Kube,
    /// Plan images as pushed to a registry, renamed so in deployed
    /// manifests; none for `load` delivery.
    pub rewrites: &'a [Rewrite],
    pub recorder: &'a Recorder,
}

impl Deploy<'_> {
    /// Applies a deploy step and waits for what it names.
    pub fn run(&self, name: &str) -> Result<(), Failure> {
        let Some(deploy) = self.plan.deploy.iter().find(|d| d.name == name) else {
            return Ok(());
        };
        let id = format!("deploy/{name}");
        let (recorder, kube) = (self.recorder, self.kube);
        recorder.step(&id, || {
            for argv in self.applies(&id, deploy)? {
                let mut spec = Spec::new(&argv, APPLY_TIMEOUT);
                spec.env = kube.env();
                recorder.checked(&id, &spec)?;
            }
            for wait in &deploy.waits {
                let mut spec = Spec::new(&kube.kubectl.wait(wait, deploy.namespace.as_deref()), kube::wait_deadline(wait));
                spec.env = kube.env();
                let ran = recorder.command(&id, &spec)?;
                if ran.success() {
                    continue;
                }
                let namespace = wait.namespace.as_deref().or(deploy.namespace.as_deref());
                let events = kube.gather(
                    recorder,
                    &id,
                    &kube.kubectl.events(namespace),
                    &file_name(&format!("{id}-events"), "txt"),
                    "the events of the namespace waited in, oldest first",
                )
                .unwrap_or_else(|why| why);
                let pods = kube.gather(
                    recorder,
                    &id,
                    &kube.kubectl.pods(namespace),
                    &file_name(&format!("{id}-pods"), "txt"),
                    "the pods of the namespace waited in",
                )
                .unwrap_or_else(|why| why);
                let output = ran.tail_text();
                return Err(StepError::Failed {
                    message: format!(
                        "`{}` did not see its resources ready ({}): {}\n  not ready:\n{}\n  last events:\n{}",
                        build::shell_words(&spec.argv),
                        ran.describe(spec.timeout),
                        output.lines().last().unwrap_or_default(),
                        indent(&last_lines(&pods, 30)),
                        indent(&last_lines(&events, 15)),
                    ),
                    output: format!(
                        "{events}\n{output}\nloadmaster: error: {}",
                        failure_line(&spec, &ran)
                    ),
                    node: None,
                    facts: None,
                });
            }
            Ok(())
        })
    }

    /// The `kubectl apply` commands of a deploy step: its files as they
    /// are, or, when images went to a registry, overlays of them that name
    /// the pushed images ([`overlay`]), written under `deploy/` in the run
    /// directory.
    fn applies(&self, id: &str, deploy: &DeployStep) -> Result<Vec<Vec<String>>, StepError> {
        let namespace = deploy.namespace.as_deref();
        let kubectl = &self.kube.kubectl;
        if self.rewrites.is_empty() {
            return Ok(kubectl.apply(namespace, &deploy.apply));
        }
        let dir = self
            .recorder
            .journal
            .dir()
            .join("deploy")
            .join(&deploy.name);
        let overlays = overlay::write(&deploy.apply, self.rewrites, &dir).map_err(|e| {
            StepError::failed(format!(
                "cannot write the kustomize overlays that name the pushed images into {}: {e}",
                dir.display()
            ))
        })?;
        self.recorder.record(&Event::note(
            Some(id),
            format!(
                "applying overlays in {} that pin {} pushed image(s) by digest",
                dir.display(),
                self.rewrites.len()
            ),
        ));
        Ok(overlays
            .into_iter()
            .flat_map(|dir| kubectl.apply(namespace, &Apply::Kustomize { dir }))
            .collect())
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("    {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
