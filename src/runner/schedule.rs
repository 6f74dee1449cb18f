//! The build schedule: which builds run together, so that the memory they
//! are expected to need at once stays within the budget.
//!
//! Pure: estimates and a budget in, batches out. Batches run one after the
//! other; the builds of one batch run together. Packing is first-fit over
//! the builds from the largest down, so that big builds do not end up alone
//! at the end while small ones could have run beside them.

/// One build to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    pub estimate_bytes: u64,
}

/// The batches, each a list of indexes into the items given (in the
/// items' order within a batch), and a warning per build that cannot fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub batches: Vec<Vec<usize>>,
    pub warnings: Vec<String>,
}

/// Places `items` into batches whose estimates add up to at most `budget`
/// and hold at most `max_parallel` builds (no limit when `None`). A build
/// whose estimate alone exceeds the budget runs alone, with a warning: it
/// may still fit (estimates are upper bounds), and refusing would leave
/// the user nothing to run.
pub fn plan(items: &[Item], budget: u64, max_parallel: Option<u32>) -> Schedule {
    let limit = max_parallel.map_or(usize::MAX, |n| n.max(1) as usize);
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Stable: equal estimates keep the plan's order.
    order.sort_by_key(|&n| std::cmp::Reverse(items[n].estimate_bytes));
    let mut batches: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut warnings = Vec::new();
    for n in order {
        let estimate = items[n].estimate_bytes;
        if estimate > budget {
            warnings.push(format!(
                "build {} is estimated at {} bytes, more than the whole budget of {budget} bytes: it runs alone and may fail for lack of memory (give the engine more memory, or lower the estimate with images[].build.memory if it is too high)",
                items[n].name, estimate
            ));
            batches.push((u64::MAX, vec![n]));
            continue;
        }
        match batches.iter_mut().find(|(used, members)| {
            members.len() < limit && used.saturating_add(estimate) <= budget
        }) {
            Some((used, members)) => {
                *used += estimate;
                members.push(n);
            }
            None => batches.push((estimate, vec![n])),
        }
    }
    Schedule {
        batches: batches
            .into_iter()
            .map(|(_, mut members)| {
                members.sort_unstable();
                members
            })
            .collect(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn items(estimates: &[u64]) -> Vec<Item> {
        estimates
            .iter()
            .enumerate()
            .map(|(n, &mib)| Item {
                name: format!("image{n}"),
                estimate_bytes: mib * MIB,
            })
            .collect()
    }

    #[test]
    fn a_large_budget_runs_every_build_together() {
        let schedule = plan(&items(&[256, 512, 128]), 4096 * MIB, None);
        assert_eq!(schedule.batches, vec![vec![0, 1, 2]]);
        assert!(schedule.warnings.is_empty());
    }

    #[test]
    fn a_small_budget_serialises_builds() {
        let schedule = plan(&items(&[256, 256, 256]), 300 * MIB, None);
        assert_eq!(schedule.batches, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn builds_are_packed_largest_first_within_the_budget() {
        // 700 and 300 fill one batch; 600 and 400 the next: two batches,
        // where plan order (700, 600, 400, 300) taken greedily needs three.
        let schedule = plan(&items(&[700, 600, 400, 300]), 1000 * MIB, None);
        assert_eq!(schedule.batches, vec![vec![0, 3], vec![1, 2]]);
    }

    #[test]
    fn parallel_builds_caps_a_batch() {
        let schedule = plan(&items(&[10, 10, 10, 10, 10]), 4096 * MIB, Some(2));
        assert_eq!(schedule.batches, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn an_oversized_build_runs_alone_with_a_warning() {
        let schedule = plan(&items(&[100, 3000, 100]), 1000 * MIB, None);
        assert_eq!(schedule.batches, vec![vec![1], vec![0, 2]]);
        assert_eq!(schedule.warnings.len(), 1);
        assert!(
            schedule.warnings[0].contains("image1"),
            "{:?}",
            schedule.warnings
        );
    }

    #[test]
    fn no_builds_no_batches() {
        assert_eq!(plan(&[], MIB, None).batches, Vec::<Vec<usize>>::new());
    }
}
