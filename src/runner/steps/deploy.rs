//! The deploy steps, `deploy/<name>`: first the image names its manifests
//! use checked against what was delivered and what the nodes hold
//! ([`super::super::pull_policy`]; a name that will not resolve fails the
//! step before anything is applied, rather than a wait timing out on it);
//! then its manifests applied (as they are, or through
//! [`super::super::overlay`]s naming the pushed images), then its waits; a
//! wait that times out fails the step with the namespace's pods and
//! events. `--skip-preflight` skips the name check too, and the journal
//! says so.

use super::super::manifests::ImageUse;
use super::super::overlay::{self, Rewrite};
use super::super::pull_policy::{self, Holdings};
use super::super::{APPLY_TIMEOUT, build, kube};
use super::{Failure, Kube, Recorder, StepError, failure_line, file_name};
use crate::archive::{ImageReference, normalize_reference};
use crate::engine::Engine;
use crate::journal::Event;
use crate::plan::{Apply, DeployStep, Plan};
use crate::process::Spec;
use std::collections::HashSet;

/// The deploy steps' context.
pub struct Deploy<'a> {
    pub plan: &'a Plan,
    pub kube: &'a Kube,
    /// Plan images as pushed to a registry, renamed so in deployed
    /// manifests; none for `load` delivery.
    pub rewrites: &'a [Rewrite],
    /// The images the step's manifests use; `Err`: why they are unknown
    /// (noted when the graph was made).
    pub uses: &'a Result<Vec<ImageUse>, String>,
    /// The engine the nodes run on, and the nodes (none for an existing
    /// cluster: out of reach).
    pub engine: &'a Engine,
    pub nodes: &'a [String],
    /// Who said to skip the pre-flight, which skips the name check too.
    pub skipped_by: Option<&'a str>,
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
            self.check_names(&id)?;
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

    /// Fails when a name the manifests use will not resolve on the nodes;
    /// warnings are noted. What the nodes hold is read only when the plan's
    /// images alone leave a name in doubt.
    fn check_names(&self, id: &str) -> Result<(), StepError> {
        let Ok(uses) = self.uses else {
            return Ok(());
        };
        if let Some(by) = self.skipped_by {
            self.recorder.note(
                Some(id),
                format!(
                    "image names not checked before applying: the pre-flight was skipped ({by})"
                ),
            );
            return Ok(());
        }
        let delivered = &self.plan.images;
        let mut mismatches = pull_policy::check(
            uses,
            &Holdings {
                delivered,
                held: None,
            },
        );
        if mismatches.is_empty() {
            return Ok(());
        }
        match self.node_images() {
            Ok(held) => {
                mismatches = pull_policy::check(uses, &Holdings { delivered, held: Some(&held) });
            }
            Err(why) => self.recorder.note(
                Some(id),
                format!("image names judged by the plan's images alone: what the nodes hold is unknown ({why})"),
            ),
        }
        let (errors, warnings): (Vec<_>, Vec<_>) =
            mismatches.iter().partition(|mismatch| mismatch.is_error());
        for warning in warnings {
            self.recorder.note(Some(id), format!("warning: {warning}"));
        }
        if errors.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = errors.iter().map(|error| format!("  {error}")).collect();
        Err(StepError::failed(format!(
            "{} image name(s) will not resolve on the nodes: nothing was applied\n{}",
            errors.len(),
            lines.join("\n")
        )))
    }

    /// The images every node holds (`ctr images ls -q` in each), by
    /// reference; `Err` when a node cannot say, or there is none in reach.
    fn node_images(&self) -> Result<HashSet<ImageReference>, String> {
        let mut every: Option<HashSet<ImageReference>> = None;
        for node in self.nodes {
            let listed = self
                .engine
                .exec_output(
                    node,
                    &["ctr", "--namespace", "k8s.io", "images", "ls", "-q"],
                )
                .map_err(|e| format!("cannot list the images of node {node}: {e}"))?;
            // Image IDs (`sha256:…`) are no names.
            let held: HashSet<ImageReference> = listed
                .lines()
                .filter(|line| !line.starts_with("sha256:"))
                .filter_map(|line| normalize_reference(line.trim()).ok())
                .collect();
            every = Some(match every {
                Some(every) => every.intersection(&held).cloned().collect(),
                None => held,
            });
        }
        every.ok_or_else(|| "no node of the cluster is in reach".to_string())
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
