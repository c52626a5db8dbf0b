//! A call with people, scripted: the router, the agent's phone and the caller act, the
//! handover says what must happen; on virtual time.

use super::*;
use crate::transport::Flow;
use proptest::prelude::*;

const S: Duration = Duration::from_secs(1);

fn binding(agent: &str) -> Box<Binding> {
    let uri = format!("sip:{agent}@127.0.0.1:5080");
    Box::new(Binding {
        contact: format!("<{uri}>"),
        uri: voxdesk_sip::uri::Uri::parse(&uri).unwrap(),
        expires_at_ms: 0,
        flow: Flow::Udp("127.0.0.1:5080".parse().unwrap()),
        call_id: "reg".into(),
        cseq: 1,
        user_agent: None,
    })
}

fn ring(agent: &str) -> Route {
    Route::Ring {
        agent: agent.into(),
        binding: binding(agent),
    }
}

/// The handover and what it asked for since the last look.
struct Line {
    h: Handover,
    now: Duration,
}

impl Line {
    fn new(whisper: bool) -> Line {
        Line {
            h: Handover::queued("support".into(), 2, whisper),
            now: Duration::ZERO,
        }
    }

    fn out(&mut self) -> Vec<Out> {
        std::iter::from_fn(|| self.h.poll_output()).collect()
    }

    /// Moves on by `d`, firing timers on the way; the caller hears each hold prompt to
    /// its end after 5 s.
    fn wait(&mut self, d: Duration) -> Vec<Out> {
        let end = self.now + d;
        let mut all = Vec::new();
        while let Some(t) = self.h.next_deadline().filter(|t| *t <= end) {
            self.now = t;
            self.h.on_timer(t);
            let o = self.out();
            if o.contains(&Out::PlayHold) {
                self.now += 5 * S;
                self.h.on_caller_playback_done(self.now);
            }
            all.extend(o);
        }
        self.now = self.now.max(end);
        all
    }

    fn holds(o: &[Out]) -> usize {
        o.iter().filter(|o| **o == Out::PlayHold).count()
    }
}

#[test]
fn the_caller_hears_their_place_then_hold_prompts_with_gaps() {
    let mut l = Line::new(false);
    l.h.on_caller_playback_done(l.now);
    assert_eq!(l.out(), vec![Out::Announce { position: 2 }]);
    l.h.on_caller_playback_done(l.now);
    assert!(l.out().is_empty());
    assert_eq!(l.h.next_deadline(), Some(HOLD_GAP));
    // 4 s gap, 5 s prompt, 4 s gap...: 3 prompts in 30 s.
    let o = l.wait(30 * S);
    assert_eq!(Line::holds(&o), 3);
}

#[test]
fn an_agent_who_answers_hears_the_summary_then_the_caller() {
    let mut l = Line::new(true);
    l.h.on_whisper_rendered(true);
    l.h.on_route(l.now, ring("agent1"));
    assert!(matches!(&l.out()[..], [Out::Ring { agent, .. }] if agent == "agent1"));
    l.h.on_agent_answered();
    assert_eq!(
        l.out(),
        vec![
            Out::Router(RouterNote::Answered),
            Out::AgentTookCall {
                agent: "agent1".into()
            },
            Out::Whisper
        ]
    );
    assert!(l.h.whispering());
    l.h.on_whisper_played();
    assert_eq!(l.out(), vec![Out::Connect]);
    assert_eq!(l.h.agent(), Some("agent1"));
    l.h.on_call_end();
    assert_eq!(
        l.out(),
        vec![Out::Router(RouterNote::Ended {
            agent: "agent1".into()
        })]
    );
}

#[test]
fn an_agent_who_answers_before_the_summary_is_rendered_waits_for_it() {
    let mut l = Line::new(true);
    l.h.on_route(l.now, ring("agent1"));
    l.out();
    l.h.on_agent_answered();
    l.out();
    assert!(l.h.awaiting_whisper());
    l.h.on_whisper_rendered(true);
    assert_eq!(l.out(), vec![Out::Whisper]);
}

#[test]
fn a_summary_that_cannot_be_rendered_connects_at_once() {
    let mut l = Line::new(true);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    l.out();
    l.h.on_whisper_rendered(false);
    assert_eq!(l.out(), vec![Out::Connect]);
}

#[test]
fn without_a_whisper_the_agent_is_connected_on_answer() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    assert_eq!(l.out().last(), Some(&Out::Connect));
}

#[test]
fn no_hold_prompt_once_an_agent_has_the_call() {
    let mut l = Line::new(false);
    l.h.on_caller_playback_done(l.now);
    l.h.on_caller_playback_done(l.now);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    l.out();
    assert_eq!(l.h.next_deadline(), None);
    assert!(l.wait(60 * S).is_empty());
    l.h.on_caller_playback_done(l.now);
    assert!(l.out().is_empty());
}

#[test]
fn ring_no_answer_releases_the_agent_and_hold_goes_on() {
    let mut l = Line::new(false);
    // The handoff line, then the place in line, were heard.
    l.h.on_caller_playback_done(l.now);
    l.h.on_caller_playback_done(l.now);
    l.out();
    l.h.on_route(l.now, ring("agent1"));
    l.out();
    l.h.on_route(l.now, Route::CancelRing);
    assert_eq!(l.out(), vec![Out::ReleaseAgent]);
    assert_eq!(
        Line::holds(&l.wait(10 * S)),
        1,
        "no dead air after the ring"
    );
    l.h.on_route(l.now, ring("agent2"));
    let o = l.out();
    assert!(
        matches!(&o[..], [Out::Ring { agent, .. }] if agent == "agent2"),
        "{o:?}"
    );
}

#[test]
fn an_agent_who_refuses_sends_the_call_back_to_the_router() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.out();
    l.h.on_agent_failed(l.now);
    assert_eq!(l.out(), vec![Out::Router(RouterNote::RingFailed)]);
    assert_eq!(Line::holds(&l.wait(5 * S)), 1);
}

#[test]
fn a_second_ring_while_one_rings_is_refused() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.out();
    l.h.on_route(l.now, ring("agent2"));
    assert_eq!(l.out(), vec![Out::Router(RouterNote::RingFailed)]);
}

#[test]
fn a_ring_after_an_agent_took_the_call_is_refused() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    l.out();
    l.h.on_route(l.now, ring("agent2"));
    assert_eq!(l.out(), vec![Out::Router(RouterNote::RingFailed)]);
}

#[test]
fn overflow_moves_the_call_to_another_queue() {
    let mut l = Line::new(false);
    l.h.on_route(
        l.now,
        Route::Overflow {
            queue: "billing".into(),
        },
    );
    assert_eq!(
        l.out(),
        vec![Out::Overflowed {
            queue: "billing".into()
        }]
    );
    assert_eq!(l.h.queue(), "billing");
}

#[test]
fn nobody_in_time_books_a_callback_and_stops_ringing() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.out();
    l.h.on_route(l.now, Route::Expired);
    assert_eq!(l.out(), vec![Out::ReleaseAgent, Out::Callback]);
    assert!(l.h.is_over());
    assert!(
        l.wait(60 * S).is_empty(),
        "no hold prompt after the callback"
    );
    l.h.on_call_end();
    assert!(l.out().is_empty(), "the router already expired it");
}

#[test]
fn pressing_1_while_waiting_books_a_callback_and_leaves_the_line() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.out();
    assert!(l.h.on_digit('1'));
    assert_eq!(
        l.out(),
        vec![
            Out::ReleaseAgent,
            Out::Router(RouterNote::Abandon),
            Out::Callback
        ]
    );
    assert!(!l.h.on_digit('1'), "once");
}

#[test]
fn other_keys_and_keys_with_an_agent_are_not_the_lines() {
    let mut l = Line::new(false);
    assert!(!l.h.on_digit('2'));
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    assert!(!l.h.on_digit('1'));
}

#[test]
fn a_caller_who_hangs_up_in_line_is_an_abandoned_call() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.out();
    l.h.on_call_end();
    assert_eq!(
        l.out(),
        vec![
            Out::ReleaseAgent,
            Out::Router(RouterNote::Abandon),
            Out::CallerLeft
        ]
    );
}

#[test]
fn a_caller_who_hangs_up_during_the_whisper_frees_the_agent() {
    let mut l = Line::new(true);
    l.h.on_whisper_rendered(true);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    l.out();
    l.h.on_call_end();
    assert_eq!(
        l.out(),
        vec![Out::Router(RouterNote::Ended {
            agent: "agent1".into()
        })]
    );
    l.h.on_whisper_played();
    assert!(l.out().is_empty(), "nothing to connect after the end");
}

#[test]
fn an_agent_answering_after_the_call_ended_changes_nothing() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_call_end();
    l.out();
    l.h.on_agent_answered();
    assert!(l.out().is_empty());
    assert_eq!(l.h.agent(), None);
}

#[test]
fn a_blind_transfer_puts_the_caller_back_in_line_with_hold_after_the_transfer_line() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    l.out();
    assert_eq!(l.h.on_transferred_away(), Some("agent1".into()));
    let mut t = Line {
        h: Handover::transferred(l.now, "sales".into(), false),
        now: l.now,
    };
    assert_eq!(t.h.next_deadline(), Some(l.now + TRANSFER_HOLD));
    assert_eq!(Line::holds(&t.wait(TRANSFER_HOLD)), 1);
    t.h.on_route(t.now, ring("agent2"));
    t.h.on_agent_answered();
    assert_eq!(t.out().last(), Some(&Out::Connect));
}

#[test]
fn an_attended_transfer_hands_the_call_to_the_colleague() {
    let mut l = Line::new(false);
    l.h.on_route(l.now, ring("agent1"));
    l.h.on_agent_answered();
    l.out();
    l.h.taken_over_by("agent2".into());
    l.h.on_call_end();
    assert_eq!(
        l.out(),
        vec![Out::Router(RouterNote::Ended {
            agent: "agent2".into()
        })]
    );
}

#[derive(Debug, Clone)]
enum Step {
    Wait(u64),
    PlaybackDone,
    Ring(u8),
    CancelRing,
    Overflow,
    Expired,
    Answered,
    Failed,
    Rendered(bool),
    WhisperPlayed,
    Digit(char),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..20).prop_map(Step::Wait),
        Just(Step::PlaybackDone),
        (1u8..3).prop_map(Step::Ring),
        Just(Step::CancelRing),
        Just(Step::Overflow),
        Just(Step::Expired),
        Just(Step::Answered),
        Just(Step::Failed),
        any::<bool>().prop_map(Step::Rendered),
        Just(Step::WhisperPlayed),
        prop_oneof![Just('1'), Just('5')].prop_map(Step::Digit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Whatever the order, every agent rung is released or took the call, the router
    /// hears about every end, and nothing is asked for after the end.
    #[test]
    fn any_order_keeps_agents_and_the_router_in_step(steps in proptest::collection::vec(step(), 1..30), whisper in any::<bool>()) {
        let mut l = Line::new(whisper);
        let mut outs = Vec::new();
        for s in &steps {
            match s {
                Step::Wait(secs) => outs.extend(l.wait(Duration::from_secs(*secs))),
                Step::PlaybackDone => l.h.on_caller_playback_done(l.now),
                Step::Ring(n) => l.h.on_route(l.now, ring(&format!("agent{n}"))),
                Step::CancelRing => l.h.on_route(l.now, Route::CancelRing),
                Step::Overflow => l.h.on_route(l.now, Route::Overflow { queue: "o".into() }),
                Step::Expired => l.h.on_route(l.now, Route::Expired),
                Step::Answered => l.h.on_agent_answered(),
                Step::Failed => l.h.on_agent_failed(l.now),
                Step::Rendered(ok) => l.h.on_whisper_rendered(*ok),
                Step::WhisperPlayed => l.h.on_whisper_played(),
                Step::Digit(d) => { l.h.on_digit(*d); }
            }
            outs.extend(l.out());
        }
        l.h.on_call_end();
        outs.extend(l.out());
        let rings = outs.iter().filter(|o| matches!(o, Out::Ring { .. })).count();
        let released = outs.iter().filter(|o| **o == Out::ReleaseAgent).count();
        let failed = outs.iter().filter(|o| **o == Out::Router(RouterNote::RingFailed)).count();
        let took = outs.iter().filter(|o| matches!(o, Out::AgentTookCall { .. })).count();
        // Every ring ends one way: released, refused/failed, or the agent took the call.
        // (A RingFailed also answers a Ring that was never placed.)
        prop_assert!(rings <= released + failed + took, "{:?}", outs);
        prop_assert!(took <= 1);
        // An agent who took the call is freed at the end exactly once.
        let ended = outs.iter().filter(|o| matches!(o, Out::Router(RouterNote::Ended { .. }))).count();
        prop_assert_eq!(ended, took);
        // Connected at most once, and only after the agent took the call.
        let connects = outs.iter().filter(|o| **o == Out::Connect).count();
        prop_assert!(connects <= took);
        // A callback and an agent never both.
        let callbacks = outs.iter().filter(|o| **o == Out::Callback).count();
        prop_assert!(callbacks + took <= 1, "{:?}", outs);
        // Over: nothing more.
        prop_assert!(l.h.is_over());
        l.h.on_route(l.now, Route::CancelRing);
        l.h.on_caller_playback_done(l.now);
        prop_assert_eq!(l.h.next_deadline(), None);
        prop_assert!(l.out().is_empty());
    }
}
