//! The whole-customer quota (`spec.quota.total`) shared out over the customer's
//! namespaces: pure, from what each namespace's ResourceQuota holds and uses now to the
//! hard limits it should hold next.
//!
//! For each resource of the total, every namespace gets what it uses plus an even share
//! of what all of them leave free (whole units; CPU in millicores; the units that do not
//! divide evenly go in name order). When fewer units are free than there are
//! namespaces, each namespace gets one, so none is starved while another holds the last
//! units idle. A namespace can use at most the largest of its limit as written, its
//! limit as enforced and its usage until a new limit lands ([`Observed::reachable`]),
//! and a raise only spends headroom that exists even if none of the lowerings of the
//! same round has landed yet. So what all namespaces together can reach never exceeds
//! the total by more than one unit per namespace but one (`n - 1` units for `n`
//! namespaces), and only while they grow at the same instant into the last free units.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::validate::nanos;

/// Nano-units in one whole unit.
const UNIT: i128 = 1_000_000_000;
/// Nano-units in one millicore, the unit CPU is shared out in.
const MILLI: i128 = 1_000_000;

/// What one namespace's ResourceQuota holds now, for one resource, in nano-units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Its hard limit as written (`spec.hard`); `None` when the quota does not limit the
    /// resource (or does not exist yet).
    pub hard: Option<i128>,
    /// The hard limit quota admission enforces (`status.hard`, which the quota
    /// controller copies from `spec.hard` a moment after each change).
    pub enforced: Option<i128>,
    /// What the namespace uses (`status.used`); `None` while the quota controller has
    /// not counted it yet.
    pub used: Option<i128>,
}

impl Observed {
    /// What the namespace uses, 0 while uncounted.
    fn used(self) -> i128 {
        self.used.unwrap_or(0).max(0)
    }

    /// The most the namespace can use before a new limit lands: quota admission admits
    /// nothing beyond the enforced limit, the limit written may become enforced at any
    /// moment, and what is used stays used. A namespace without a limit yet counts with
    /// its usage (see the README on objects that existed before their quota).
    fn reachable(self) -> i128 {
        [self.hard, self.enforced]
            .into_iter()
            .flatten()
            .fold(self.used(), i128::max)
    }
}

/// The unit a resource is shared out in, in nano-units.
fn unit_of(resource: &str) -> i128 {
    if resource == "cpu" || resource.ends_with(".cpu") {
        MILLI
    } else {
        UNIT
    }
}

/// The next hard limit of each namespace (same order as `namespaces`) for one resource
/// whose total is `total` nano-units.
pub fn share(resource: &str, total: i128, namespaces: &[(&str, Observed)]) -> Vec<i128> {
    let unit = unit_of(resource);
    let count = namespaces.len() as i128;
    if count == 0 {
        return Vec::new();
    }
    let used: i128 = namespaces.iter().map(|(_, o)| o.used()).sum();
    let free_units = (total - used).max(0) / unit;
    // Fewer free units than namespaces: one each, so that none is starved while the
    // others hold the last units idle; this is where the overshoot bound comes from.
    let (each, extra) = if free_units >= count {
        (free_units / count, free_units % count)
    } else {
        (i128::from(free_units > 0), 0)
    };
    let mut order: Vec<usize> = (0..namespaces.len()).collect();
    order.sort_by_key(|&i| namespaces[i].0);
    let mut target = vec![0; namespaces.len()];
    for (rank, &i) in order.iter().enumerate() {
        let units = each + i128::from((rank as i128) < extra);
        target[i] = namespaces[i].1.used() + units * unit;
    }
    let lowered = |i: usize| namespaces[i].1.hard.is_some_and(|hard| target[i] < hard);
    // Headroom nobody can reach even if no lowering of this round lands, within the
    // bound of one unit per namespace but one.
    let mut headroom =
        total + (count - 1) * unit - namespaces.iter().map(|(_, o)| o.reachable()).sum::<i128>();
    let mut next = vec![0; namespaces.len()];
    for &i in &order {
        let observed = namespaces[i].1;
        next[i] = if lowered(i) {
            target[i]
        } else {
            let raise = (target[i] - observed.reachable()).clamp(0, headroom.max(0));
            headroom -= raise;
            target[i].min(observed.reachable() + raise)
        };
    }
    next
}

/// The hard limits of every namespace for every resource of `total` (a namespace
/// missing from `observed` counts as new: no limit, nothing used), each held to `caps`
/// (`spec.quota.hard`) where it names the resource too.
pub fn hard_limits(
    total: &BTreeMap<String, Quantity>,
    caps: &BTreeMap<String, Quantity>,
    namespaces: &[&str],
    observed: &BTreeMap<String, BTreeMap<String, Observed>>,
) -> BTreeMap<String, BTreeMap<String, Quantity>> {
    let mut out: BTreeMap<String, BTreeMap<String, Quantity>> = namespaces
        .iter()
        .map(|ns| (ns.to_string(), caps.clone()))
        .collect();
    for (resource, limit) in total {
        let Some(limit) = nanos(&limit.0) else {
            continue;
        };
        let per_namespace: Vec<(&str, Observed)> = namespaces
            .iter()
            .map(|ns| {
                let seen = observed.get(*ns).and_then(|o| o.get(resource)).copied();
                (*ns, seen.unwrap_or_default())
            })
            .collect();
        let cap = caps.get(resource).and_then(|q| nanos(&q.0));
        for ((ns, _), hard) in per_namespace
            .iter()
            .zip(share(resource, limit, &per_namespace))
        {
            let hard = cap.map_or(hard, |cap| cap.min(hard));
            out.entry(ns.to_string())
                .or_default()
                .insert(resource.clone(), Quantity(format_nanos(hard)));
        }
    }
    out
}

/// Nano-units as a quantity: whole units when they divide, else millis, else nanos.
pub fn format_nanos(n: i128) -> String {
    if n % UNIT == 0 {
        format!("{}", n / UNIT)
    } else if n % MILLI == 0 {
        format!("{}m", n / MILLI)
    } else {
        format!("{n}n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(hard: i128, used: i128) -> Observed {
        Observed {
            hard: Some(hard * UNIT),
            enforced: Some(hard * UNIT),
            used: Some(used * UNIT),
        }
    }

    fn pods(total: i128, namespaces: &[(&str, Observed)]) -> Vec<i128> {
        share("pods", total * UNIT, namespaces)
            .into_iter()
            .map(|n| n / UNIT)
            .collect()
    }

    /// The most every namespace together can use once `next` lands, or before, whichever
    /// is larger for each.
    fn reachable_sum(namespaces: &[(&str, Observed)], next: &[i128]) -> i128 {
        namespaces
            .iter()
            .zip(next)
            .map(|((_, o), n)| o.reachable().max(*n * UNIT).max(o.used()))
            .sum::<i128>()
            / UNIT
    }

    #[test]
    fn new_namespaces_split_the_total_evenly() {
        let new = Observed::default();
        assert_eq!(pods(10, &[("a", new), ("b", new), ("c", new)]), [4, 3, 3]);
    }

    #[test]
    fn each_gets_its_usage_plus_an_even_share_of_what_is_free() {
        // 4 + 1 + 0 used of 10: 5 free, one whole unit each and the other two in name
        // order: targets 6, 3, 1. c lowers to 1; a may grow by what is left even if c's
        // lowering has not landed, within the bound.
        let before = [("a", seen(4, 4)), ("b", seen(3, 1)), ("c", seen(3, 0))];
        let next = pods(10, &before);
        assert_eq!(next, [6, 3, 1]);
        assert!(reachable_sum(&before, &next) <= 10 + 2);
        // Fewer units free than namespaces: one each.
        let next = pods(
            10,
            &[("a", seen(6, 6)), ("b", seen(3, 3)), ("c", seen(1, 0))],
        );
        assert_eq!(next, [7, 4, 1]);
    }

    #[test]
    fn what_all_can_reach_stays_within_one_unit_per_namespace_but_one() {
        for hards in [[4, 3, 3], [8, 1, 1], [1, 1, 8], [0, 0, 10]] {
            for used in [[0, 0, 0], [4, 3, 3], [1, 0, 7], [0, 0, 10], [4, 0, 0]] {
                let namespaces: Vec<(&str, Observed)> = ["a", "b", "c"]
                    .into_iter()
                    .zip(hards.iter().zip(used))
                    .map(|(ns, (h, u))| (ns, seen(*h, u.min(*h))))
                    .collect();
                let next = pods(10, &namespaces);
                assert!(
                    reachable_sum(&namespaces, &next) <= 10 + 2,
                    "hards {hards:?} used {used:?}: next {next:?}"
                );
            }
        }
    }

    #[test]
    fn repeated_rounds_let_one_namespace_take_all_the_others_leave() {
        let mut state = [seen(4, 0), seen(3, 0), seen(3, 0)];
        for _ in 0..20 {
            // Namespace a uses all it is given; the quota controller enforces each limit.
            state[0].used = state[0].hard;
            for s in &mut state {
                s.enforced = s.hard;
            }
            let namespaces: Vec<(&str, Observed)> =
                ["a", "b", "c"].into_iter().zip(state).collect();
            let next = share("pods", 10 * UNIT, &namespaces);
            for (s, n) in state.iter_mut().zip(next) {
                s.hard = Some(n);
            }
        }
        assert_eq!(state[0].hard, Some(10 * UNIT));
        assert_eq!(state[1].hard, Some(0));
    }

    #[test]
    fn a_limit_written_but_not_yet_enforced_counts_at_its_larger_value() {
        // b was lowered from 7 to 3 a moment ago; admission still enforces 7.
        let b = Observed {
            enforced: Some(7 * UNIT),
            ..seen(3, 3)
        };
        let next = pods(10, &[("a", seen(3, 3)), ("b", b)]);
        assert_eq!(
            next,
            [4, 5],
            "a grows only by the bound into what b may still reach"
        );
    }

    #[test]
    fn over_the_total_every_namespace_is_held_at_its_usage() {
        let next = pods(5, &[("a", seen(4, 4)), ("b", seen(3, 3))]);
        assert_eq!(next, [4, 3]);
    }

    #[test]
    fn cpu_is_shared_in_millicores_and_caps_hold() {
        let total = BTreeMap::from([("requests.cpu".to_string(), Quantity("1".into()))]);
        let caps = BTreeMap::from([
            ("requests.cpu".to_string(), Quantity("300m".into())),
            ("pods".to_string(), Quantity("5".into())),
        ]);
        let out = hard_limits(&total, &caps, &["a", "b", "c"], &BTreeMap::new());
        assert_eq!(out["a"]["requests.cpu"].0, "300m");
        assert_eq!(out["a"]["pods"].0, "5");
        let out = hard_limits(&total, &BTreeMap::new(), &["a", "b", "c"], &BTreeMap::new());
        let shares: Vec<&str> = out.values().map(|m| m["requests.cpu"].0.as_str()).collect();
        assert_eq!(shares, ["334m", "333m", "333m"]);
    }

    #[test]
    fn quantities_print_in_the_largest_unit_that_divides() {
        assert_eq!(format_nanos(3 * UNIT), "3");
        assert_eq!(format_nanos(1_500 * MILLI), "1500m");
        assert_eq!(format_nanos(7), "7n");
    }
}
