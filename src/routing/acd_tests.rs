//! The ACD rules on a virtual clock.
use super::*;

fn s(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn acd() -> Acd {
    let mut a = Acd::new(
        AcdConfig {
            ring_timeout: s(15),
            wrap_up: s(10),
        },
        vec![
            QueueConfig {
                name: "billing".into(),
                skills: strings(&["billing"]),
                max_wait: s(120),
                overflow: None,
            },
            QueueConfig {
                name: "technical".into(),
                skills: strings(&["technical"]),
                max_wait: s(60),
                overflow: None,
            },
        ],
    );
    a.add_agent(
        "alice",
        &strings(&["billing", "technical"]),
        &strings(&["en"]),
    );
    a.add_agent("bob", &strings(&["billing"]), &strings(&["en", "zh"]));
    a.add_agent("carol", &strings(&["technical"]), &strings(&["zh"]));
    a
}

fn ring(call: &str, agent: &str) -> Action {
    Action::Ring {
        call: call.into(),
        agent: agent.into(),
    }
}

#[test]
fn longest_idle_agent_with_the_skill_and_language_rings() {
    let mut a = acd();
    a.set_available("bob", s(0)).unwrap();
    a.set_available("alice", s(5)).unwrap();
    a.set_available("carol", s(1)).unwrap();
    // Billing in English: bob has been idle longest.
    assert_eq!(
        a.enqueue("c1", "billing", "en", 0, s(10)).unwrap(),
        [ring("c1", "bob")]
    );
    // Technical in Chinese: only carol speaks it.
    assert_eq!(
        a.enqueue("c2", "technical", "zh", 0, s(11)).unwrap(),
        [ring("c2", "carol")]
    );
    // Technical in English: alice.
    assert_eq!(
        a.enqueue("c3", "technical", "en", 0, s(12)).unwrap(),
        [ring("c3", "alice")]
    );
    // Nobody left: the next call waits, with its position.
    assert!(a
        .enqueue("c4", "billing", "en", 0, s(13))
        .unwrap()
        .is_empty());
    assert_eq!(a.position("c4"), Some(1));
    assert_eq!(
        a.enqueue("unknown", "sales", "en", 0, s(13)),
        Err(AcdError::UnknownQueue("sales".into()))
    );
}

#[test]
fn ring_timeout_moves_on_and_pauses_the_silent_agent() {
    let mut a = acd();
    a.set_available("bob", s(0)).unwrap();
    a.set_available("alice", s(1)).unwrap();
    assert_eq!(
        a.enqueue("c1", "billing", "en", 0, s(2)).unwrap(),
        [ring("c1", "bob")]
    );
    assert_eq!(a.next_deadline(), Some(s(17)));
    assert!(a.on_time(s(16)).is_empty());
    assert_eq!(
        a.on_time(s(17)),
        [
            Action::CancelRing {
                call: "c1".into(),
                agent: "bob".into()
            },
            ring("c1", "alice")
        ]
    );
    assert_eq!(
        a.agent("bob").unwrap().state,
        AgentState::Paused {
            reason: "no answer".into()
        }
    );
    // Alice is busy (486): nobody else may take it, the call waits; bob comes back.
    assert!(a.ring_failed("c1", s(18)).is_empty());
    // Bob already failed this call: he is not rung for it again.
    assert!(a.set_available("bob", s(20)).unwrap().is_empty());
    a.add_agent("dave", &strings(&["billing"]), &[]);
    assert_eq!(
        a.set_available("dave", s(21)).unwrap(),
        [ring("c1", "dave")]
    );
    a.answered("c1").unwrap();
    assert_eq!(
        a.agent("dave").unwrap().state,
        AgentState::OnCall { call: "c1".into() }
    );
}

#[test]
fn wrap_up_then_available_and_priority_first() {
    let mut a = acd();
    a.set_available("bob", s(0)).unwrap();
    assert_eq!(
        a.enqueue("c1", "billing", "en", 0, s(1)).unwrap(),
        [ring("c1", "bob")]
    );
    a.answered("c1").unwrap();
    assert!(a
        .enqueue("c2", "billing", "en", 0, s(2))
        .unwrap()
        .is_empty());
    assert!(a
        .enqueue("c3", "billing", "en", 5, s(3))
        .unwrap()
        .is_empty());
    assert_eq!(a.position("c3"), Some(1));
    assert_eq!(a.position("c2"), Some(2));
    // The call ends at 30 s: wrap-up until 40 s, then the priority call rings first.
    assert!(a.call_ended("bob", s(30)).is_empty());
    assert_eq!(
        a.agent("bob").unwrap().state,
        AgentState::WrapUp { until: s(40) }
    );
    assert_eq!(a.next_deadline(), Some(s(40)));
    assert_eq!(a.on_time(s(40)), [ring("c3", "bob")]);
}

#[test]
fn max_wait_expires_and_abandon_frees_a_ringing_agent() {
    let mut a = acd();
    assert!(a
        .enqueue("c1", "technical", "en", 0, s(0))
        .unwrap()
        .is_empty());
    assert_eq!(
        a.on_time(s(60)),
        [Action::Expired {
            call: "c1".into(),
            queue: "technical".into()
        }]
    );
    assert_eq!(a.position("c1"), None);
    a.set_available("alice", s(61)).unwrap();
    assert_eq!(
        a.enqueue("c2", "technical", "en", 0, s(62)).unwrap(),
        [ring("c2", "alice")]
    );
    assert_eq!(
        a.abandon("c2", s(63)),
        [Action::CancelRing {
            call: "c2".into(),
            agent: "alice".into()
        }]
    );
    assert_eq!(a.agent("alice").unwrap().state, AgentState::Available);
    // Pausing a ringing agent hands the call on.
    assert_eq!(
        a.enqueue("c3", "technical", "en", 0, s(64)).unwrap(),
        [ring("c3", "alice")]
    );
    assert_eq!(
        a.set_unavailable("alice", Some("lunch"), s(65)).unwrap(),
        [Action::CancelRing {
            call: "c3".into(),
            agent: "alice".into()
        }]
    );
    assert_eq!(a.position("c3"), Some(1));
}

#[test]
fn a_call_overflows_once_then_expires() {
    let mut a = acd();
    a.queues.get_mut("technical").unwrap().overflow = Some("billing".into());
    a.queues.get_mut("billing").unwrap().overflow = Some("technical".into());
    assert!(a
        .enqueue("c1", "technical", "en", 0, s(0))
        .unwrap()
        .is_empty());
    assert!(a
        .enqueue("c2", "billing", "en", 0, s(30))
        .unwrap()
        .is_empty());
    assert_eq!(a.next_deadline(), Some(s(60)));
    assert_eq!(
        a.on_time(s(60)),
        [Action::Overflow {
            call: "c1".into(),
            from: "technical".into(),
            to: "billing".into()
        }]
    );
    // It keeps its place by arrival: ahead of c2, which came later.
    assert_eq!(a.set_available("bob", s(70)).unwrap(), [ring("c1", "bob")]);
    assert_eq!(a.ring_failed("c1", s(71)), [ring("c2", "bob")]);
    a.answered("c2").unwrap();
    // Billing's max wait counts from the overflow (60 + 120); it never goes back.
    assert!(a.on_time(s(179)).is_empty());
    assert_eq!(
        a.on_time(s(180)),
        [Action::Expired {
            call: "c1".into(),
            queue: "billing".into()
        }]
    );
}

#[test]
fn a_transfer_to_a_named_agent_rings_only_them_then_falls_back_to_the_queue() {
    let mut a = acd();
    a.set_available("bob", s(0)).unwrap();
    a.set_available("alice", s(1)).unwrap();
    a.set_available("carol", s(2)).unwrap();
    // carol lacks the billing skill, yet a transfer to her rings her (not bob, idle longer).
    assert_eq!(
        a.enqueue_for("c1", "billing", "en", 10, Some("carol"), s(3))
            .unwrap(),
        [ring("c1", "carol")]
    );
    // She does not answer: the billing queue's longest-idle agent gets it.
    let out = a.on_time(s(18));
    assert_eq!(
        out,
        [
            Action::CancelRing {
                call: "c1".into(),
                agent: "carol".into()
            },
            ring("c1", "bob")
        ]
    );
    // A paused target is skipped at once; an unknown one is an error.
    let mut a = acd();
    a.set_available("bob", s(0)).unwrap();
    a.set_unavailable("alice", Some("lunch"), s(0)).unwrap();
    assert_eq!(
        a.enqueue_for("c2", "billing", "en", 10, Some("alice"), s(1))
            .unwrap(),
        [ring("c2", "bob")]
    );
    assert_eq!(
        a.enqueue_for("c3", "billing", "en", 0, Some("nobody"), s(1)),
        Err(AcdError::UnknownAgent("nobody".into()))
    );
}

#[test]
fn an_agent_on_a_call_to_their_extension_gets_no_queued_call_until_it_ends() {
    let mut a = acd();
    a.set_available("bob", s(0)).unwrap();
    a.direct_call("bob", "x1");
    assert_eq!(
        a.agent("bob").unwrap().state,
        AgentState::OnCall { call: "x1".into() }
    );
    // Billing waits: bob is busy with the direct call.
    assert!(a
        .enqueue("c1", "billing", "en", 0, s(1))
        .unwrap()
        .is_empty());
    // The direct call ends: wrap-up (10 s), then the waiting call rings bob.
    assert!(a.call_ended("bob", s(5)).is_empty());
    assert_eq!(a.on_time(s(15)), [ring("c1", "bob")]);
    // A paused agent stays paused through a direct call.
    a.set_unavailable("alice", Some("lunch"), s(20)).unwrap();
    a.direct_call("alice", "x2");
    assert!(matches!(
        a.agent("alice").unwrap().state,
        AgentState::Paused { .. }
    ));
}
