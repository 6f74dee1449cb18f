//! The scheduler driven by a simulated clock: each step takes a given
//! time, and every decision is checked against the rules.

use super::*;

const MIB: u64 = 1 << 20;

fn step(id: &str, kind: Kind, needs: &[usize], memory_mib: u64) -> Step {
    Step {
        id: id.to_string(),
        kind,
        needs: needs.to_vec(),
        memory_bytes: memory_mib * MIB,
        disk_bytes: Some(0),
    }
}

fn bounds(memory_mib: u64) -> Bounds {
    Bounds {
        memory_bytes: memory_mib * MIB,
        parallel_builds: None,
        deliveries: 1,
        disk_bytes: None,
    }
}

/// Start and end of every step that ran, and each step's final state.
struct Simulated {
    spans: Vec<Option<(u64, u64)>>,
    states: Vec<State>,
}

/// Runs the graph on a simulated clock: step `n` takes `took[n]` units
/// and fails when `fails[n]`. Checks at every instant that no bound is
/// exceeded and that no step started before what it needs succeeded.
fn simulate(scheduler: &mut Scheduler, took: &[u64], fails: &[usize]) -> Simulated {
    let count = scheduler.steps().len();
    let mut spans: Vec<Option<(u64, u64)>> = vec![None; count];
    let mut now = 0;
    let mut running: Vec<(u64, usize)> = Vec::new();
    loop {
        for n in scheduler.start_ready() {
            for &m in &scheduler.steps()[n].needs {
                assert_eq!(scheduler.state(m), &State::Succeeded, "{n} before {m}");
            }
            spans[n] = Some((now, now + took[n]));
            running.push((now + took[n], n));
        }
        check_bounds(scheduler);
        if running.is_empty() {
            assert!(scheduler.is_done(), "nothing runs and steps still wait");
            break;
        }
        // The next to end (ties: plan order).
        running.sort();
        let (end, n) = running.remove(0);
        now = end;
        scheduler.finished(n, !fails.contains(&n));
    }
    Simulated {
        spans,
        states: (0..count).map(|n| scheduler.state(n).clone()).collect(),
    }
}

fn check_bounds(scheduler: &Scheduler) {
    let steps = scheduler.steps();
    let running: Vec<usize> = (0..steps.len())
        .filter(|&n| scheduler.state(n) == &State::Running)
        .collect();
    let builds: Vec<usize> = running
        .iter()
        .copied()
        .filter(|&n| steps[n].kind == Kind::Build)
        .collect();
    let memory: u64 = builds.iter().map(|&n| steps[n].memory_bytes).sum();
    assert!(
        memory <= scheduler.bounds.memory_bytes || builds.len() == 1,
        "builds {builds:?} take {memory} bytes"
    );
    if let Some(limit) = scheduler.bounds.parallel_builds {
        assert!(builds.len() <= limit as usize);
    }
    let deliveries = running
        .iter()
        .filter(|&&n| steps[n].kind == Kind::Delivery)
        .count();
    assert!(deliveries <= scheduler.bounds.deliveries as usize);
    if let Some(disk) = scheduler.bounds.disk_bytes {
        let used: u64 = running.iter().map(|&n| steps[n].disk_bytes.unwrap()).sum();
        assert!(used <= disk || running.len() == 1, "disk {used} > {disk}");
    }
}

/// The seed's shape: preflight, cluster, three builds, their deliveries,
/// a pulled database with its delivery, deploys (the database needs no
/// build; the api needs the database and its image), the test.
fn seed() -> Vec<Step> {
    vec![
        step("preflight", Kind::Preflight, &[], 0),         // 0
        step("cluster", Kind::Cluster, &[0], 0),            // 1
        step("build/api", Kind::Build, &[0], 600),          // 2
        step("build/worker", Kind::Build, &[0], 300),       // 3
        step("build/hapi", Kind::Build, &[0], 900),         // 4
        step("deliver/api", Kind::Delivery, &[1, 2], 0),    // 5
        step("deliver/worker", Kind::Delivery, &[1, 3], 0), // 6
        step("deliver/hapi", Kind::Delivery, &[1, 4], 0),   // 7
        step("deliver/postgres", Kind::Delivery, &[1], 0),  // 8
        step("deploy/postgres", Kind::Deploy, &[8], 0),     // 9
        step("deploy/api", Kind::Deploy, &[9, 5, 6, 7], 0), // 10
        step("test", Kind::Test, &[9, 10], 0),              // 11
    ]
}

const SEED_TOOK: [u64; 12] = [1, 5, 30, 10, 60, 4, 2, 12, 3, 6, 5, 8];

#[test]
fn the_cluster_comes_up_while_images_build_and_each_image_goes_when_built() {
    let mut scheduler = Scheduler::new(seed(), bounds(4096), Policy::FailFast).unwrap();
    let run = simulate(&mut scheduler, &SEED_TOOK, &[]);
    let span = |n: usize| run.spans[n].unwrap();
    // Cluster and all three builds start together, after the preflight.
    for n in 1..=4 {
        assert_eq!(span(n).0, 1, "{}", seed()[n].id);
    }
    // The worker's delivery starts when its build ends, long before the
    // unrelated builds end.
    assert_eq!(span(6).0, span(3).1);
    assert!(span(6).0 < span(2).1 && span(6).0 < span(4).1);
    // The pulled database is delivered and deployed before any build ends.
    assert!(span(9).0 < span(3).1, "{:?}", run.spans);
    // The api waits for everything it needs; the test for every deploy.
    assert_eq!(span(10).0, span(7).1);
    assert_eq!(span(11).0, span(10).1);
    // The critical path: preflight, the longest build, its delivery, the
    // api, the test: 1 + 60 + 12 + 5 + 8.
    assert_eq!(span(11).1, 86);
    assert!(run.states.iter().all(|s| s == &State::Succeeded));
}

#[test]
fn builds_share_the_memory_budget_first_fit_in_plan_order() {
    // 1000 MiB: api (600) and worker (300) fit together; hapi (900) waits
    // for memory, and starts when api's 600 are back.
    let mut scheduler = Scheduler::new(seed(), bounds(1000), Policy::FailFast).unwrap();
    let mut probe = scheduler.clone();
    probe.start_ready();
    probe.finished(0, true);
    assert_eq!(probe.start_ready(), vec![1, 2, 3]);
    assert_eq!(probe.waits(4), vec![Wait::MemoryBudget]);
    let run = simulate(&mut scheduler, &SEED_TOOK, &[]);
    let span = |n: usize| run.spans[n].unwrap();
    assert_eq!((span(2).0, span(3).0), (1, 1));
    assert_eq!(span(4).0, span(2).1, "{:?}", run.spans);
}

#[test]
fn a_later_build_that_fits_starts_beside_an_earlier_one_that_does_not() {
    let steps = vec![
        step("build/a", Kind::Build, &[], 700),
        step("build/b", Kind::Build, &[], 700),
        step("build/c", Kind::Build, &[], 200),
    ];
    let mut scheduler = Scheduler::new(steps, bounds(1000), Policy::FailFast).unwrap();
    assert_eq!(scheduler.start_ready(), vec![0, 2]);
    assert_eq!(scheduler.waits(1), vec![Wait::MemoryBudget]);
}

#[test]
fn a_build_above_the_whole_budget_runs_alone() {
    let steps = vec![
        step("build/small", Kind::Build, &[], 100),
        step("build/huge", Kind::Build, &[], 3000),
        step("build/other", Kind::Build, &[], 100),
    ];
    let mut scheduler = Scheduler::new(steps, bounds(1000), Policy::FailFast).unwrap();
    let run = simulate(&mut scheduler, &[5, 5, 5], &[]);
    let span = |n: usize| run.spans[n].unwrap();
    // small and other together; huge alone, after them.
    assert_eq!((span(0).0, span(2).0), (0, 0));
    assert_eq!(span(1), (5, 10));
    // Alone, it starts at once.
    let mut alone = Scheduler::new(
        vec![step("build/huge", Kind::Build, &[], 3000)],
        bounds(1000),
        Policy::FailFast,
    )
    .unwrap();
    assert_eq!(alone.start_ready(), vec![0]);
}

#[test]
fn parallel_builds_caps_the_builds_at_once() {
    let steps: Vec<Step> = (0..5)
        .map(|n| step(&format!("build/{n}"), Kind::Build, &[], 10))
        .collect();
    let mut scheduler = Scheduler::new(
        steps,
        Bounds {
            parallel_builds: Some(2),
            ..bounds(4096)
        },
        Policy::FailFast,
    )
    .unwrap();
    let mut probe = scheduler.clone();
    assert_eq!(probe.start_ready(), vec![0, 1]);
    assert_eq!(probe.waits(2), vec![Wait::BuildSlot]);
    let run = simulate(&mut scheduler, &[3, 4, 1, 1, 1], &[]);
    // 2 takes the first slot freed (0's, at 3), then 3 at 4 (2 ended),
    // 4 at 4 too (1 ended at 4).
    let starts: Vec<u64> = run.spans.iter().map(|s| s.unwrap().0).collect();
    assert_eq!(starts, vec![0, 0, 3, 4, 4]);
}

#[test]
fn deliveries_keep_to_their_own_bound() {
    let steps: Vec<Step> = (0..4)
        .map(|n| step(&format!("deliver/{n}"), Kind::Delivery, &[], 0))
        .collect();
    for (limit, expected) in [(1, vec![0, 2, 4, 6]), (2, vec![0, 0, 2, 2])] {
        let mut scheduler = Scheduler::new(
            steps.clone(),
            Bounds {
                deliveries: limit,
                ..bounds(1)
            },
            Policy::FailFast,
        )
        .unwrap();
        let run = simulate(&mut scheduler, &[2, 2, 2, 2], &[]);
        let starts: Vec<u64> = run.spans.iter().map(|s| s.unwrap().0).collect();
        assert_eq!(starts, expected, "bound {limit}");
    }
    // Builds and deploys are not deliveries: they do not take the slot.
    let steps = vec![
        step("deliver/a", Kind::Delivery, &[], 0),
        step("deliver/b", Kind::Delivery, &[], 0),
        step("deploy/c", Kind::Deploy, &[], 0),
        step("build/d", Kind::Build, &[], 1),
    ];
    let mut scheduler = Scheduler::new(steps, bounds(10), Policy::FailFast).unwrap();
    assert_eq!(scheduler.start_ready(), vec![0, 2, 3]);
    assert_eq!(scheduler.waits(1), vec![Wait::DeliverySlot]);
}

/// Bench/up's podman round that ran over its critical path: the service
/// image, listed last and needing no build, waited in plan order behind
/// an image only the app's deploy names, and so did the database's deploy
/// and the app after it. The one more steps wait on goes first; among
/// equals, the plan's order.
#[test]
fn the_delivery_more_steps_wait_on_goes_first() {
    let steps = vec![
        step("deliver/web", Kind::Delivery, &[], 0),
        step("deliver/postgres", Kind::Delivery, &[], 0),
        step("deploy/db", Kind::Deploy, &[1], 0),
        step("deploy/app", Kind::Deploy, &[0, 2], 0),
        step("deliver/tool", Kind::Delivery, &[], 0),
        step("test", Kind::Test, &[3, 4], 0),
    ];
    let mut scheduler = Scheduler::new(steps, bounds(10), Policy::FailFast).unwrap();
    assert_eq!(
        scheduler.start_ready(),
        vec![1],
        "postgres first: db, app and the test wait on it"
    );
    assert_eq!(scheduler.waits(0), vec![Wait::DeliverySlot]);
    scheduler.finished(1, true);
    // web (app and the test wait on it) before tool (only the test does).
    assert_eq!(scheduler.start_ready(), vec![0, 2]);
    assert_eq!(scheduler.waits(4), vec![Wait::DeliverySlot]);
}

/// `steps` under a disk budget of 1000 MiB, with room for two deliveries
/// at once (so that the disk is what holds one back).
fn with_disk_budget(steps: Vec<Step>) -> Scheduler {
    let bounds = Bounds {
        deliveries: 2,
        disk_bytes: Some(1000 * MIB),
        ..bounds(100)
    };
    Scheduler::new(steps, bounds, Policy::FailFast).unwrap()
}

#[test]
fn the_disk_budget_counts_every_step_in_flight() {
    let mut steps = vec![
        step("build/a", Kind::Build, &[], 1),
        step("deliver/b", Kind::Delivery, &[], 0),
        step("deliver/c", Kind::Delivery, &[], 0),
    ];
    steps[0].disk_bytes = Some(600 * MIB);
    steps[1].disk_bytes = Some(600 * MIB);
    steps[2].disk_bytes = Some(300 * MIB);
    let mut scheduler = with_disk_budget(steps);
    // a (600) and c (300) fit; b (600) waits for disk, not for a slot.
    assert_eq!(scheduler.start_ready(), vec![0, 2]);
    assert_eq!(scheduler.waits(1), vec![Wait::DiskBudget]);
    scheduler.finished(0, true);
    assert_eq!(scheduler.start_ready(), vec![1]);
}

#[test]
fn a_delivery_of_a_built_image_counts_its_size_once_built() {
    // The built image's delivery has no size until its build ends; the
    // pulled image's delivery is in flight by then.
    let mut steps = vec![
        step("build/app", Kind::Build, &[], 1),
        step("deliver/app", Kind::Delivery, &[0], 0),
        step("deliver/db", Kind::Delivery, &[], 0),
    ];
    steps[1].disk_bytes = None;
    steps[2].disk_bytes = Some(600 * MIB);
    let mut scheduler = with_disk_budget(steps);
    let mut asked = Vec::new();
    let mut size = |n: usize| {
        asked.push(n);
        800 * MIB
    };
    scheduler.measure(&mut size);
    assert_eq!(scheduler.start_ready(), vec![0, 2]);
    scheduler.finished(0, true);
    scheduler.measure(&mut size);
    // Measured once built: 800 beside db's 600 is over the budget, so it
    // waits for disk, not for a slot, while db is in flight.
    assert_eq!(scheduler.steps()[1].disk_bytes, Some(800 * MIB));
    assert!(scheduler.start_ready().is_empty());
    assert_eq!(scheduler.waits(1), vec![Wait::DiskBudget]);
    scheduler.finished(2, true);
    scheduler.measure(&mut size);
    assert_eq!(scheduler.start_ready(), vec![1]);
    assert_eq!(asked, [1], "asked once, after its build");
    // Without a budget nothing is asked.
    let mut unmeasured = step("deliver/x", Kind::Delivery, &[], 0);
    unmeasured.disk_bytes = None;
    let mut free = Scheduler::new(vec![unmeasured], bounds(100), Policy::FailFast).unwrap();
    free.measure(&mut |_| unreachable!("no disk budget"));
}

#[test]
fn a_step_waits_for_what_it_needs_by_name() {
    let mut scheduler = Scheduler::new(seed(), bounds(4096), Policy::FailFast).unwrap();
    assert_eq!(scheduler.start_ready(), vec![0]);
    assert_eq!(
        scheduler.waits(5),
        vec![
            Wait::Step {
                step: "cluster".into()
            },
            Wait::Step {
                step: "build/api".into()
            }
        ]
    );
    assert!(
        scheduler.waits(0).is_empty(),
        "a running step waits for nothing"
    );
    assert_eq!(Wait::DeliverySlot.to_string(), "delivery slot");
}

#[test]
fn fail_fast_starts_nothing_more_and_lets_running_steps_end() {
    let mut scheduler = Scheduler::new(seed(), bounds(4096), Policy::FailFast).unwrap();
    // build/worker (3) fails at 11; api and hapi go on to their end.
    let run = simulate(&mut scheduler, &SEED_TOOK, &[3]);
    assert_eq!(run.states[3], State::Failed);
    assert_eq!(run.states[2], State::Succeeded);
    assert_eq!(run.states[4], State::Succeeded);
    // deliver/worker depends on it; deliver/api is only stopped by fail fast.
    assert_eq!(run.states[6], State::Cancelled(Cancel::Depends(3)));
    assert_eq!(run.states[5], State::Cancelled(Cancel::FailFast(3)));
    assert_eq!(run.states[11], State::Cancelled(Cancel::Depends(3)));
    // What had started before the failure ran: the database's deploy.
    assert_eq!(run.states[9], State::Succeeded);
    for n in [5, 6, 7, 10, 11] {
        assert!(run.spans[n].is_none(), "{n} started");
    }
}

#[test]
fn keep_going_finishes_what_does_not_depend_on_the_failure() {
    let mut scheduler = Scheduler::new(seed(), bounds(4096), Policy::KeepGoing).unwrap();
    let run = simulate(&mut scheduler, &SEED_TOOK, &[3]);
    for n in [5, 7, 8, 9] {
        assert_eq!(run.states[n], State::Succeeded, "{}", seed()[n].id);
    }
    // Transitively: the api's deploy needs deliver/worker, the test the api.
    for n in [6, 10, 11] {
        assert_eq!(run.states[n], State::Cancelled(Cancel::Depends(3)));
    }
}

#[test]
fn an_interrupt_cancels_everything_not_started() {
    let mut scheduler = Scheduler::new(seed(), bounds(4096), Policy::KeepGoing).unwrap();
    scheduler.start_ready();
    scheduler.finished(0, true);
    assert_eq!(scheduler.start_ready(), vec![1, 2, 3, 4]);
    let cancelled = scheduler.interrupt();
    assert_eq!(cancelled, (5..12).collect::<Vec<_>>());
    assert!(scheduler.start_ready().is_empty());
    assert!(!scheduler.is_done(), "running steps still end");
    for n in 1..=4 {
        scheduler.finished(n, false);
    }
    assert!(scheduler.is_done());
    assert!((5..12).all(|n| scheduler.state(n) == &State::Cancelled(Cancel::Interrupted)));
}

#[test]
fn needs_that_cannot_be_met_are_refused() {
    let unknown = Scheduler::new(
        vec![step("a", Kind::Deploy, &[4], 0)],
        bounds(1),
        Policy::FailFast,
    );
    assert_eq!(
        unknown.unwrap_err(),
        GraphError::Unknown {
            step: "a".into(),
            need: 4
        }
    );
    let cyclic = Scheduler::new(
        vec![
            step("a", Kind::Deploy, &[], 0),
            step("b", Kind::Deploy, &[2], 0),
            step("c", Kind::Deploy, &[1], 0),
        ],
        bounds(1),
        Policy::FailFast,
    );
    assert_eq!(
        cyclic.unwrap_err(),
        GraphError::Cycle(vec!["b".into(), "c".into()])
    );
}

/// Random graphs (needs only on earlier steps, as plans give them, and
/// some on later ones), bounds and failures: every decision keeps the
/// rules ([`simulate`] checks them), every step ends in a final state, and
/// the same input gives the same run.
#[test]
fn random_graphs_keep_every_rule_and_are_reproducible() {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below.max(1)
    };
    let kinds = [Kind::Build, Kind::Delivery, Kind::Deploy, Kind::Cluster];
    for _ in 0..400 {
        let count = 1 + next(12) as usize;
        let steps: Vec<Step> = (0..count)
            .map(|n| {
                let needs: Vec<usize> = (0..n).filter(|_| next(4) == 0).collect();
                let mut s = step(
                    &format!("s{n}"),
                    kinds[next(4) as usize],
                    &needs,
                    next(1500),
                );
                s.disk_bytes = Some(next(700) * MIB);
                s
            })
            .collect();
        let bounds = Bounds {
            memory_bytes: (100 + next(1500)) * MIB,
            parallel_builds: [None, Some(1), Some(2)][next(3) as usize],
            deliveries: 1 + next(2) as u32,
            disk_bytes: [None, Some(1000 * MIB)][next(2) as usize],
        };
        let policy = [Policy::FailFast, Policy::KeepGoing][next(2) as usize];
        let took: Vec<u64> = (0..count).map(|_| 1 + next(20)).collect();
        let fails: Vec<usize> = (0..count).filter(|_| next(8) == 0).collect();
        let mut first = Scheduler::new(steps.clone(), bounds, policy).unwrap();
        let a = simulate(&mut first, &took, &fails);
        let mut second = Scheduler::new(steps.clone(), bounds, policy).unwrap();
        let b = simulate(&mut second, &took, &fails);
        assert_eq!(a.spans, b.spans);
        for (n, state) in a.states.iter().enumerate() {
            assert!(!matches!(state, State::Waiting | State::Running));
            if let State::Cancelled(Cancel::Depends(m)) = state {
                assert_eq!(a.states[*m], State::Failed);
            }
            if policy == Policy::KeepGoing && matches!(state, State::Cancelled(_)) {
                // Only what depends on a failure is left out.
                assert!(matches!(state, State::Cancelled(Cancel::Depends(_))), "{n}");
            }
        }
        if fails.is_empty() {
            assert!(a.states.iter().all(|s| s == &State::Succeeded));
        }
    }
}
