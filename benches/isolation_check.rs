//! How long the isolation check takes for many customers: `cargo bench --bench isolation_check`
//! prints the median of several runs over 1,000 customers, each with one namespace and
//! six NetworkPolicies (Standard isolation, platform namespaces configured, groups of ten
//! with an open zone). Under `cargo test` it runs once over a few customers, as a check
//! that it still works.

use std::time::{Duration, Instant};

use customer_operator::api::{Customer, CustomerGroup};
use customer_operator::desired::MapDirectory;
use customer_operator::isolation::analyse;
use customer_operator::settings::Settings;
use customer_operator::verify::{self, World};
use serde_json::json;

const ZONE_SIZE: usize = 10;

fn world(customers: usize, settings: &Settings) -> World {
    let zones = customers.div_ceil(ZONE_SIZE);
    let groups: Vec<CustomerGroup> = (0..zones)
        .map(|z| {
            serde_json::from_value(json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "CustomerGroup",
                "metadata": {"name": format!("zone-{z:04}")},
                "spec": {"displayName": "Zone", "network": {"allowWithinGroup": true}}
            }))
            .unwrap()
        })
        .collect();
    let customers: Vec<Customer> = (0..customers)
        .map(|i| {
            serde_json::from_value(json!({
                "apiVersion": "customers.dev/v1alpha1", "kind": "Customer",
                "metadata": {"name": format!("customer-{i:05}")},
                "spec": {"displayName": "Customer", "contactEmail": "ops@customer.example",
                         "group": format!("zone-{:04}", i / ZONE_SIZE)}
            }))
            .unwrap()
        })
        .collect();
    let dir = MapDirectory::new(customers.clone(), groups.clone());
    let mut world = World {
        customers,
        groups,
        ..Default::default()
    };
    for customer in &world.customers {
        let wanted = customer_operator::desired::desired(customer, &dir, settings).unwrap();
        world.namespaces.extend(wanted.namespaces);
        world.policies.extend(wanted.network_policies);
    }
    world
}

fn check(world: &World, settings: &Settings) -> (Duration, usize, usize) {
    let started = Instant::now();
    let model = verify::model(world, settings).unwrap();
    let analysis = analyse(&model.network, &model.tenancy, &model.declared, None);
    let elapsed = started.elapsed();
    (elapsed, analysis.links.len(), analysis.findings.len())
}

fn main() {
    let benchmark = std::env::args().any(|a| a == "--bench");
    let (customers, runs) = if benchmark { (1000, 7) } else { (30, 1) };
    let settings = Settings {
        platform_namespaces: vec!["ingress-nginx".into()],
        ..Settings::default()
    };
    let built = Instant::now();
    let world = world(customers, &settings);
    let per_namespace = world.policies.len() / world.namespaces.len();
    assert_eq!(per_namespace, 6, "six policies per namespace");
    let build_time = built.elapsed();
    let mut times = Vec::new();
    for _ in 0..runs {
        let (elapsed, links, findings) = check(&world, &settings);
        assert_eq!(links, customers * (ZONE_SIZE - 1), "zone links");
        assert_eq!(findings, 0, "no undeclared path");
        times.push(elapsed);
    }
    println!(
        "isolation check: {customers} customers, {} namespaces, {} NetworkPolicies: {}; building the objects took {:.1} ms",
        world.namespaces.len(),
        world.policies.len(),
        summary(times),
        build_time.as_secs_f64() * 1e3,
    );

    // The dense case: ten customers each hold a foreign allow-all policy, so every other
    // customer is admitted into them (and reported).
    let mut exposed = world.clone();
    for i in 0..10.min(customers) {
        exposed.policies.push(
            serde_json::from_value(json!({
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "allow-all", "namespace": format!("customer-{:05}", i * customers / 10)},
                "spec": {"podSelector": {}, "ingress": [{}]}
            }))
            .unwrap(),
        );
    }
    let mut times = Vec::new();
    for _ in 0..runs {
        let (elapsed, _, findings) = check(&exposed, &settings);
        assert_eq!(
            findings,
            10.min(customers) * (customers - ZONE_SIZE),
            "admitted from outside the zone"
        );
        times.push(elapsed);
    }
    println!(
        "with 10 foreign allow-all policies ({} undeclared openings): {}",
        10.min(customers) * (customers - ZONE_SIZE),
        summary(times)
    );
}

/// `median X ms over N runs (min, max)`.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "median {:.1} ms over {} runs (min {:.1} ms, max {:.1} ms)",
        ms(times[times.len() / 2]),
        times.len(),
        ms(times[0]),
        ms(times[times.len() - 1])
    )
}
