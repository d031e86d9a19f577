//! Keys spread evenly over partitions, and appends split to fit the log.
//!
//! Goal: object and workflow keys land on partitions in equal shares, whatever their shape:
//! sequential names that differ only at the end (`user-0` … `user-99999`), short numbered
//! names (`acct0` … `acct15`), random bytes. The first partition key hash (FNV-1a, split by
//! its top bits) put `user-0` … `user-999` 310 / 0 / 90 / 600 on 4 partitions; xxh3 must not.
//! The hash is frozen (partition keys are in invocation ids and store keys): a fixed vector
//! pins it. It is not Restate's (which hashes a key's bytes followed by 0xff): an id of
//! Restate's pins that difference, and that its ids and ours share one format.
//!
//! Method: count keys per partition with the server's own `partition_key_of` and
//! `partition_of`, and compare each share with the even share.

use ratchet::fsm::partition_key_of;
use ratchet::partition::partition_of;

fn counts(keys: impl Iterator<Item = String>, n: u16) -> Vec<u64> {
    let mut c = vec![0u64; usize::from(n)];
    for k in keys {
        c[usize::from(partition_of(partition_key_of(&k), n))] += 1;
    }
    c
}

/// Largest relative deviation of any partition from the even share.
fn max_deviation(c: &[u64]) -> f64 {
    let total: u64 = c.iter().sum();
    let even = total as f64 / c.len() as f64;
    c.iter().map(|&x| (x as f64 - even).abs() / even).fold(0.0, f64::max)
}

#[test]
fn sequential_keys_spread_within_a_few_percent() {
    for n in [2u16, 4, 8, 16] {
        let c = counts((0..100_000).map(|i| format!("user-{i}")), n);
        let d = max_deviation(&c);
        assert!(d < 0.04, "{n} partitions: {c:?} deviates {:.1}% from even", d * 100.0);
    }
}

#[test]
fn random_keys_spread_within_a_few_percent() {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let keys = (0..100_000).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        format!("{x:016x}")
    });
    let c = counts(keys, 8);
    let d = max_deviation(&c);
    assert!(d < 0.04, "{c:?} deviates {:.1}% from even", d * 100.0);
}

#[test]
fn the_cases_that_collided_before_no_longer_do() {
    // user-0 … user-999 on 4 partitions: every partition within 15% of 250 (binomial spread
    // at this size is about 5%), where FNV-1a gave 310 / 0 / 90 / 600.
    let c = counts((0..1000).map(|i| format!("user-{i}")), 4);
    assert!(max_deviation(&c) < 0.15, "{c:?}");
    // acct0 … acct15 on 8 partitions used 2 of 8 before; now most are used.
    let c = counts((0..16).map(|i| format!("acct{i}")), 8);
    let used = c.iter().filter(|&&x| x > 0).count();
    assert!(used >= 6, "16 keys use only {used} of 8 partitions: {c:?}");
}

#[test]
fn the_hash_is_frozen() {
    // xxh3-64 with seed 0 of the key's bytes; these values must never change.
    assert_eq!(partition_key_of(""), 0x2D06_8005_38D3_94C2);
    assert_eq!(partition_key_of("user-0"), partition_key_of("user-0"));
    assert_ne!(partition_key_of("user-0"), partition_key_of("user-1"));
    let pinned: Vec<u64> = ["a", "user-0", "acct15"].iter().map(|k| partition_key_of(k)).collect();
    assert_eq!(pinned, PINNED.to_vec(), "the partition key hash changed");
}

/// `partition_key_of` of "a", "user-0", "acct15" (xxh3-64, seed 0).
const PINNED: [u64; 3] = [0xE6C6_32B6_1E96_4E1F, 0xF92B_CD19_1370_A1E0, 0x37B3_2D60_E218_7F35];

#[test]
fn restates_partition_keys_differ_but_its_ids_have_our_format() {
    use ratchet::fsm::workflow_id;
    use ratchet::protocol::ids::InvocationId;
    // Restate 1.7.12's id of the run of workflow `PWf` with key `wk`: our parser reads it, and
    // its partition key is xxh3-64 of the key's bytes followed by 0xff (what Rust's `Hash`
    // writes for a string), not `partition_key_of` (xxh3-64 of the bytes alone).
    let restates: InvocationId = "inv_1jgaCjfFuWAp2LTSlNA9oIonX8oi0FGn6a".parse().expect("parse");
    assert_eq!(restates.to_string(), "inv_1jgaCjfFuWAp2LTSlNA9oIonX8oi0FGn6a");
    assert_eq!(restates.partition_key, 0x3925_1C13_3CBF_57E0);
    assert_eq!(restates.partition_key, xxhash_rust::xxh3::xxh3_64(b"wk\xff"));
    assert_ne!(restates.partition_key, partition_key_of("wk"));
    // Ours for the same workflow: another id, in the same format.
    let ours = workflow_id("PWf", "wk");
    assert_eq!(ours.partition_key, partition_key_of("wk"));
    assert_ne!(ours, restates);
    let text = ours.to_string();
    assert!(text.starts_with("inv_1") && text.len() == 38, "{text}");
    assert_eq!(text.parse::<InvocationId>(), Ok(ours));
    // The id in the `w 1` example of docs/partitioning.md.
    let pk = |id: &str| id.parse::<InvocationId>().map(|i| i.partition_key);
    let restates_w1 = format!("inv_19CEkzYgAFrm{}", "0".repeat(22));
    assert_eq!(pk(&restates_w1), Ok(xxhash_rust::xxh3::xxh3_64(b"w 1\xff")));
    assert!(workflow_id("Approval", "w 1").to_string().starts_with("inv_19uEaxbtszjB"));
}

#[test]
fn appends_are_split_in_order_within_the_log_limit() {
    use ratchet::log::APPEND_RECORD_OVERHEAD_BYTES as O;
    use ratchet::partition::split_appends;
    let max = 1000;
    let bodies: Vec<Vec<u8>> = [300, 300, 300, 5000, 10, 950 - O, 1]
        .iter()
        .enumerate()
        .map(|(i, &n)| vec![i as u8; n])
        .collect();
    let chunks = split_appends(bodies.clone(), max);
    // Order and contents are kept.
    assert_eq!(chunks.concat(), bodies);
    for c in &chunks {
        let bytes: usize = c.iter().map(|b| b.len() + O).sum();
        // Within the limit, unless one record alone is over it (the log refuses that one).
        assert!(bytes <= max || c.len() == 1, "{bytes}");
    }
    let sizes: Vec<Vec<usize>> = chunks.iter().map(|c| c.iter().map(Vec::len).collect()).collect();
    assert_eq!(
        sizes,
        vec![vec![300, 300], vec![300], vec![5000], vec![10], vec![950 - O], vec![1]]
    );
    assert!(split_appends(Vec::new(), max).is_empty());
}
