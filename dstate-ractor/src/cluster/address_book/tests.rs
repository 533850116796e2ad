use super::*;

const MIN: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_millis(800);

const DEFER: Duration = Duration::from_millis(500);
const ME: NodeId = NodeId(5);

fn book() -> AddressBook {
    AddressBook::new(ME, MIN, MAX, DEFER, 7)
}

fn none() -> HashSet<NodeId> {
    HashSet::new()
}

#[test]
fn seeds_are_dialled_at_once_and_only_once_while_dialling() {
    let now = Instant::now();
    let mut book = book();
    book.add_seed("a:1".into(), now);
    assert_eq!(book.poll_dials(now, &none()), vec!["a:1".to_string()]);
    assert!(book.poll_dials(now + MAX * 10, &none()).is_empty());
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap() {
    let start = Instant::now();
    let mut book = book();
    book.add_seed("a:1".into(), start);
    let mut now = start;
    let mut waits = Vec::new();
    for _ in 0..6 {
        assert_eq!(book.poll_dials(now, &none()).len(), 1);
        book.on_dial_failed("a:1", now);
        let failed_at = now;
        // Find the first millisecond at which the address is due again.
        let mut probe = failed_at;
        loop {
            probe += Duration::from_millis(1);
            let mut copy = AddressBook {
                me: ME,
                defer: DEFER,
                entries: book.entries.clone(),
                min_backoff: MIN,
                max_backoff: MAX,
                rng: SmallRng::seed_from_u64(0),
            };
            if !copy.poll_dials(probe, &none()).is_empty() {
                break;
            }
        }
        waits.push(probe - failed_at);
        now = probe;
    }
    assert!(
        waits[0] >= MIN.mul_f64(0.8) && waits[0] <= MIN.mul_f64(1.2) + Duration::from_millis(1)
    );
    assert!(waits[1] > waits[0]);
    for wait in &waits {
        assert!(
            *wait <= MAX.mul_f64(1.2) + Duration::from_millis(1),
            "{waits:?}"
        );
    }
    assert!(waits[5] >= MAX.mul_f64(0.8), "{waits:?}");
}

#[test]
fn a_connected_node_is_not_dialled_and_is_redialled_after_it_leaves() {
    let now = Instant::now();
    let mut book = book();
    book.add_seed("a:1".into(), now);
    assert_eq!(book.poll_dials(now, &none()).len(), 1);
    book.on_joined(NodeId(1), &["a:1"]);
    assert!(book.poll_dials(now + MAX * 4, &none()).is_empty());

    let left = now + MAX * 5;
    book.on_left(NodeId(1), left);
    assert_eq!(
        book.poll_dials(left + MIN * 2, &none()),
        vec!["a:1".to_string()]
    );
}

#[test]
fn learned_addresses_of_a_connected_node_are_not_dialled() {
    let now = Instant::now();
    let mut book = book();
    book.learn("b:2".into(), NodeId(2), now);
    let connected: HashSet<NodeId> = [NodeId(2)].into();
    assert!(book.poll_dials(now, &connected).is_empty());
    // Marked connected: after the node leaves it is redialled.
    book.on_left(NodeId(2), now);
    assert_eq!(
        book.poll_dials(now + MIN * 2, &none()),
        vec!["b:2".to_string()]
    );
}

#[test]
fn a_restarted_node_replaces_its_old_learned_address() {
    let now = Instant::now();
    let mut book = book();
    book.learn("b:2".into(), NodeId(2), now);
    book.learn("b:3".into(), NodeId(2), now);
    assert_eq!(book.poll_dials(now, &none()), vec!["b:3".to_string()]);
}

#[test]
fn one_node_is_dialled_on_one_address_at_a_time() {
    let now = Instant::now();
    let mut book = book();
    book.add_seed("seed:1".into(), now);
    book.add_seed("alias:1".into(), now);
    book.on_joined(NodeId(1), &["seed:1", "alias:1"]);
    book.on_left(NodeId(1), now);
    assert_eq!(book.poll_dials(now + MIN * 2, &none()).len(), 1);
}

#[test]
fn unreachable_learned_addresses_are_forgotten_but_seeds_stay() {
    let mut now = Instant::now();
    let mut book = book();
    book.add_seed("seed:1".into(), now);
    book.learn("gone:2".into(), NodeId(2), now);
    for _ in 0..LEARNED_FAILURE_LIMIT {
        for address in book.poll_dials(now, &none()) {
            book.on_dial_failed(&address, now);
        }
        now += MAX * 2;
    }
    assert_eq!(book.poll_dials(now, &none()), vec!["seed:1".to_string()]);
}

#[test]
fn own_address_is_never_dialled_again() {
    let now = Instant::now();
    let mut book = book();
    book.add_seed("me:1".into(), now);
    assert_eq!(book.poll_dials(now, &none()).len(), 1);
    book.on_own_address("me:1");
    book.on_dial_failed("me:1", now);
    assert!(book.poll_dials(now + MAX * 10, &none()).is_empty());
}

#[test]
fn stuck_dials_expire_as_failures() {
    let now = Instant::now();
    let mut book = book();
    book.add_seed("slow:1".into(), now);
    assert_eq!(book.poll_dials(now, &none()).len(), 1);
    assert!(book
        .expire_dials(now + Duration::from_secs(1), Duration::from_secs(5))
        .is_empty());
    assert_eq!(
        book.expire_dials(now + Duration::from_secs(5), Duration::from_secs(5)),
        vec!["slow:1".to_string()]
    );
    assert_eq!(
        book.poll_dials(now + Duration::from_secs(6), &none()).len(),
        1
    );
}

#[test]
fn higher_node_ids_are_given_time_to_dial_first() {
    let now = Instant::now();
    let mut book = book();
    book.learn("low:1".into(), NodeId(1), now);
    book.learn("high:9".into(), NodeId(9), now);
    assert_eq!(book.poll_dials(now, &none()), vec!["low:1".to_string()]);
    assert!(book.poll_dials(now + DEFER / 2, &none()).is_empty());
    let connected: HashSet<NodeId> = [NodeId(9)].into();
    assert!(
        book.poll_dials(now + DEFER, &connected).is_empty(),
        "it dialled us meanwhile"
    );
    book.on_left(NodeId(9), now + DEFER);
    assert!(book.poll_dials(now + DEFER + MIN * 2, &none()).is_empty());
    assert_eq!(
        book.poll_dials(now + DEFER * 2 + MIN * 2, &none()),
        vec!["high:9".to_string()]
    );
}

#[test]
fn this_node_is_never_learned() {
    let now = Instant::now();
    let mut book = book();
    book.learn("me:5".into(), ME, now);
    assert!(book.poll_dials(now + DEFER * 4, &none()).is_empty());
}
