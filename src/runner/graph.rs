//! The step graph of `up` and `run`: which step may start now, and why the
//! others wait.
//!
//! Pure: steps with their needs and resource demands in, decisions out; the
//! executor ([`super::executor`]) runs what this module starts. A step
//! starts when every step it needs has succeeded and the resources it takes
//! are free: builds share the memory budget (as [`super::schedule`] packs
//! them) and at most `parallel_builds` run at once; deliveries share a
//! bound of their own, since they all feed the same nodes' imports; the
//! disk budget, when there is one, counts the demand of every step in
//! flight, a demand that only its needs make known (the size of an image
//! being built) measured as soon as they have succeeded. Among the steps
//! that could start, the one with the longest chain of steps waiting on it
//! goes first (list scheduling by height: the service image whose database
//! the app's deploy waits for is delivered before an image only the app's
//! deploy names), then the plan's order decides (first fit: a later step
//! that fits starts beside an earlier one that does not), so that a run is
//! reproducible.
//!
//! A build estimated above the whole memory budget runs alone, as the
//! batch schedule runs it: refusing it would leave nothing to run, and
//! estimates are upper bounds.
//!
//! Failure: fail fast (the default) cancels every step that has not
//! started; keep going cancels only what depends on the failure, directly
//! or not. An interrupt cancels everything that has not started.

pub use crate::journal::Wait;
use serde::{Deserialize, Serialize};

/// What a step is, for the resources it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Preflight,
    Cluster,
    Build,
    /// Finding the registry a `delivery: registry` plan pushes to.
    Registry,
    Delivery,
    Deploy,
    Test,
}

/// One step to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    pub kind: Kind,
    /// Indexes of the steps that must succeed first.
    pub needs: Vec<usize>,
    /// Expected memory at its peak (builds: counted against the budget).
    pub memory_bytes: u64,
    /// Disk it takes while it runs (counted against the disk budget).
    /// None: known only once the steps it needs have succeeded (a
    /// delivery's image size, when a build it needs makes the image):
    /// [`Scheduler::measure`] asks for it then. Unknown, it counts as the
    /// whole budget.
    pub disk_bytes: Option<u64>,
}

/// The resources steps share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The memory builds may take at once.
    pub memory_bytes: u64,
    /// The most builds at once (`budget.parallelBuilds`), none: no limit.
    pub parallel_builds: Option<u32>,
    /// The most deliveries at once.
    pub deliveries: u32,
    /// The disk steps in flight may take at once (`budget.disk`).
    pub disk_bytes: Option<u64>,
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Start nothing more; what runs ends.
    FailFast,
    /// Start everything that does not depend on a failed step.
    KeepGoing,
}

/// Why a step will not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// It needs, directly or not, this step, which failed.
    Depends(usize),
    /// Fail fast: this step failed, so nothing more starts.
    FailFast(usize),
    Interrupted,
}

/// Where a step is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Waiting,
    Running,
    Succeeded,
    Failed,
    Cancelled(Cancel),
}

/// Why a graph cannot be run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("step {step} needs step number {need}, which does not exist")]
    Unknown { step: String, need: usize },
    #[error("steps {0:?} need each other, so none can start")]
    Cycle(Vec<String>),
}

/// The graph and where each step is.
#[derive(Clone, Debug)]
pub struct Scheduler {
    steps: Vec<Step>,
    bounds: Bounds,
    policy: Policy,
    states: Vec<State>,
    /// The steps in the order they are offered what they wait for: the
    /// highest first (see the module doc), plan order among equals.
    priority: Vec<usize>,
}

impl Scheduler {
    /// A graph whose needs name existing steps and form no cycle.
    pub fn new(steps: Vec<Step>, bounds: Bounds, policy: Policy) -> Result<Scheduler, GraphError> {
        for step in &steps {
            if let Some(&need) = step.needs.iter().find(|&&n| n >= steps.len()) {
                return Err(GraphError::Unknown {
                    step: step.id.clone(),
                    need,
                });
            }
        }
        if let Some(cycle) = cycle(&steps) {
            return Err(GraphError::Cycle(
                cycle.into_iter().map(|n| steps[n].id.clone()).collect(),
            ));
        }
        let heights = heights(&steps);
        let mut priority: Vec<usize> = (0..steps.len()).collect();
        priority.sort_by_key(|&n| (std::cmp::Reverse(heights[n]), n));
        Ok(Scheduler {
            states: vec![State::Waiting; steps.len()],
            steps,
            bounds,
            policy,
            priority,
        })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn state(&self, n: usize) -> &State {
        &self.states[n]
    }

    /// With a disk budget, asks `size` for the disk demand of every
    /// waiting step that has none yet and whose needs have all succeeded:
    /// called before [`Scheduler::start_ready`], so that no step starts
    /// on a guess. Without a budget, demands do not count and nothing is
    /// asked.
    pub fn measure(&mut self, size: &mut dyn FnMut(usize) -> u64) {
        if self.bounds.disk_bytes.is_none() {
            return;
        }
        for n in 0..self.steps.len() {
            let ready = self.states[n] == State::Waiting
                && self.steps[n]
                    .needs
                    .iter()
                    .all(|&m| self.states[m] == State::Succeeded);
            if ready && self.steps[n].disk_bytes.is_none() {
                self.steps[n].disk_bytes = Some(size(n));
            }
        }
    }

    /// Marks as running, and returns in plan order, every waiting step
    /// that can start now, offering what is free to the highest first.
    pub fn start_ready(&mut self) -> Vec<usize> {
        let mut started = Vec::new();
        for index in 0..self.priority.len() {
            let n = self.priority[index];
            if self.states[n] == State::Waiting && self.waits(n).is_empty() {
                self.states[n] = State::Running;
                started.push(n);
            }
        }
        started.sort_unstable();
        started
    }

    /// Why waiting step `n` cannot start now: the steps it needs that have
    /// not succeeded, else the resources it lacks; empty when it can start
    /// (or is not waiting).
    pub fn waits(&self, n: usize) -> Vec<Wait> {
        if self.states[n] != State::Waiting {
            return Vec::new();
        }
        let step = &self.steps[n];
        let pending: Vec<Wait> = step
            .needs
            .iter()
            .filter(|&&m| self.states[m] != State::Succeeded)
            .map(|&m| Wait::Step {
                step: self.steps[m].id.clone(),
            })
            .collect();
        if !pending.is_empty() {
            return pending;
        }
        let mut waits = Vec::new();
        match step.kind {
            Kind::Build => {
                let running = self.running(Kind::Build);
                if self
                    .bounds
                    .parallel_builds
                    .is_some_and(|limit| running.len() >= limit.max(1) as usize)
                {
                    waits.push(Wait::BuildSlot);
                }
                let used: u64 = running.iter().map(|&m| self.memory(m)).sum();
                if used.saturating_add(self.memory(n)) > self.bounds.memory_bytes
                    && !running.is_empty()
                {
                    waits.push(Wait::MemoryBudget);
                }
            }
            Kind::Delivery
                if self.running(Kind::Delivery).len() >= self.bounds.deliveries.max(1) as usize =>
            {
                waits.push(Wait::DeliverySlot);
            }
            _ => {}
        }
        if let Some(disk) = self.bounds.disk_bytes {
            let in_flight: Vec<usize> = (0..self.steps.len())
                .filter(|&m| self.states[m] == State::Running)
                .collect();
            let used = in_flight
                .iter()
                .fold(0u64, |used, &m| used.saturating_add(self.disk(m, disk)));
            // Alone, a step runs whatever its demand: nothing else can free
            // disk for it.
            let demand = self.disk(n, disk);
            if demand > 0 && used.saturating_add(demand) > disk && !in_flight.is_empty() {
                waits.push(Wait::DiskBudget);
            }
        }
        waits
    }

    /// A build's memory as the budget counts it: one above the whole
    /// budget takes all of it, so that it runs alone.
    fn memory(&self, n: usize) -> u64 {
        let bytes = self.steps[n].memory_bytes;
        if bytes > self.bounds.memory_bytes {
            u64::MAX / 4
        } else {
            bytes
        }
    }

    /// Step `n`'s disk demand against a budget of `budget` bytes: an
    /// unknown one takes it all.
    fn disk(&self, n: usize, budget: u64) -> u64 {
        self.steps[n].disk_bytes.unwrap_or(budget)
    }

    fn running(&self, kind: Kind) -> Vec<usize> {
        (0..self.steps.len())
            .filter(|&m| self.states[m] == State::Running && self.steps[m].kind == kind)
            .collect()
    }

    /// Records the end of running step `n`; after a failure, returns the
    /// steps cancelled because of it (in plan order).
    pub fn finished(&mut self, n: usize, succeeded: bool) -> Vec<usize> {
        debug_assert_eq!(self.states[n], State::Running, "{}", self.steps[n].id);
        if succeeded {
            self.states[n] = State::Succeeded;
            return Vec::new();
        }
        self.states[n] = State::Failed;
        let doomed: Vec<usize> = match self.policy {
            Policy::FailFast => (0..self.steps.len())
                .filter(|&m| self.states[m] == State::Waiting)
                .collect(),
            Policy::KeepGoing => self.dependents(n),
        };
        for &m in &doomed {
            self.states[m] = State::Cancelled(match self.policy {
                Policy::KeepGoing => Cancel::Depends(n),
                Policy::FailFast if self.dependents(n).contains(&m) => Cancel::Depends(n),
                Policy::FailFast => Cancel::FailFast(n),
            });
        }
        doomed
    }

    /// Cancels every step that has not started; returns them.
    pub fn interrupt(&mut self) -> Vec<usize> {
        let doomed: Vec<usize> = (0..self.steps.len())
            .filter(|&m| self.states[m] == State::Waiting)
            .collect();
        for &m in &doomed {
            self.states[m] = State::Cancelled(Cancel::Interrupted);
        }
        doomed
    }

    /// The waiting steps that need `n`, directly or not, in plan order.
    fn dependents(&self, n: usize) -> Vec<usize> {
        let mut doomed = vec![false; self.steps.len()];
        doomed[n] = true;
        // Needs point anywhere in the list: repeat until nothing changes.
        let mut changed = true;
        while changed {
            changed = false;
            for m in 0..self.steps.len() {
                if !doomed[m] && self.steps[m].needs.iter().any(|&k| doomed[k]) {
                    doomed[m] = true;
                    changed = true;
                }
            }
        }
        (0..self.steps.len())
            .filter(|&m| m != n && doomed[m] && self.states[m] == State::Waiting)
            .collect()
    }

    /// True when nothing runs and nothing more can start.
    pub fn is_done(&self) -> bool {
        !self
            .states
            .iter()
            .any(|s| matches!(s, State::Waiting | State::Running))
    }

    pub fn any_running(&self) -> bool {
        self.states.contains(&State::Running)
    }
}

/// A cycle of needs, as step indexes, if there is one.
/// Each step's height: the length of the longest chain of steps that need
/// it, directly or not (0 for a step nothing needs). The graph has no
/// cycle ([`cycle`] was asked first).
fn heights(steps: &[Step]) -> Vec<usize> {
    fn height(n: usize, needed_by: &[Vec<usize>], memo: &mut [Option<usize>]) -> usize {
        if let Some(known) = memo[n] {
            return known;
        }
        let found = needed_by[n]
            .iter()
            .map(|&m| 1 + height(m, needed_by, memo))
            .max()
            .unwrap_or(0);
        memo[n] = Some(found);
        found
    }
    let mut needed_by = vec![Vec::new(); steps.len()];
    for (n, step) in steps.iter().enumerate() {
        for &need in &step.needs {
            needed_by[need].push(n);
        }
    }
    let mut memo = vec![None; steps.len()];
    (0..steps.len())
        .map(|n| height(n, &needed_by, &mut memo))
        .collect()
}

fn cycle(steps: &[Step]) -> Option<Vec<usize>> {
    // 0: not seen, 1: on the current path, 2: done.
    let mut mark = vec![0u8; steps.len()];
    fn visit(
        n: usize,
        steps: &[Step],
        mark: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        mark[n] = 1;
        path.push(n);
        for &m in &steps[n].needs {
            if mark[m] == 1 {
                let from = path.iter().position(|&k| k == m).unwrap_or(0);
                return Some(path[from..].to_vec());
            }
            if mark[m] == 0
                && let Some(found) = visit(m, steps, mark, path)
            {
                return Some(found);
            }
        }
        path.pop();
        mark[n] = 2;
        None
    }
    (0..steps.len()).find_map(|n| {
        if mark[n] == 0 {
            visit(n, steps, &mut mark, &mut Vec::new())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests;
