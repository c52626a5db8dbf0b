//! A call handed to people, sans-IO: from the moment it is queued to the end of the call.
//! The caller hears where they are in line, then hold prompts with a gap between them; the
//! router's decisions come in (ring an agent, stop ringing, overflow, expiry); an agent
//! who answers hears the summary alone (the whisper), then caller and agent are bridged;
//! an agent who does not answer or refuses returns the call to the queue; nobody in time,
//! or the caller pressing 1, books a callback. Never dead air, never a dropped call.
//!
//! Time is a [`Duration`] on the call's clock. The driver (`call/escalate.rs`) owns the
//! router channel, the agent's leg, the media and the store, and carries out [`Out`]s.

#[cfg(test)]
mod tests;

use crate::registrar::Binding;
use std::collections::VecDeque;
use std::time::Duration;

/// Silence between hold prompts.
pub const HOLD_GAP: Duration = Duration::from_secs(4);
/// After a transfer the caller hears the transfer line first: hold starts after this.
pub const TRANSFER_HOLD: Duration = Duration::from_secs(3);

/// What the router says about this call.
#[derive(Debug, Clone)]
pub enum Route {
    Ring {
        agent: String,
        binding: Box<Binding>,
    },
    CancelRing,
    Overflow {
        queue: String,
    },
    Expired,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Tell the caller their place in line (and that 1 books a callback).
    Announce {
        position: usize,
    },
    PlayHold,
    /// Place a leg to this agent's phone (with the handoff summary in its headers).
    Ring {
        agent: String,
        binding: Box<Binding>,
    },
    /// The agent's leg leaves the call (CANCEL while it rings, BYE once answered).
    ReleaseAgent,
    /// The agent took the call: the bot steps back, both sides start being transcribed.
    AgentTookCall {
        agent: String,
    },
    /// Play the rendered summary to the agent alone.
    Whisper,
    /// Stop what the caller hears and bridge caller and agent.
    Connect,
    /// Nobody will take the call now: the bot books a callback and says so.
    Callback,
    Router(RouterNote),
    /// The caller hung up while waiting (for the escalation's outcome).
    CallerLeft,
    /// The queue changed (overflow).
    Overflowed {
        queue: String,
    },
}

/// What the router must be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterNote {
    /// The rung agent answered.
    Answered,
    /// The rung agent did not take the call (or could not be rung): next agent.
    RingFailed,
    /// The caller left the queue (hung up, or chose a callback).
    Abandon,
    /// The agent who had the call is free (wrap-up).
    Ended { agent: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// In line (an agent may be ringing).
    Waiting,
    /// The agent answered; the summary is still being rendered.
    AwaitWhisper,
    /// The agent hears the summary.
    Whispering,
    Bridged,
    /// Booked a callback or the call ended.
    Over,
}

pub struct Handover {
    queue: String,
    phase: Phase,
    /// The agent being rung, then the one who took the call.
    ringing: Option<String>,
    agent: Option<String>,
    /// Where the caller is in line, told once the handoff line has been said.
    announce: Option<usize>,
    hold_at: Option<Duration>,
    /// The summary for the agent: None (none wanted), Some(false) being rendered,
    /// Some(true) ready to play.
    whisper: Option<bool>,
    out: VecDeque<Out>,
}

impl Handover {
    /// The call joined `queue` at `position`; `whisper`: a summary is being rendered.
    pub fn queued(queue: String, position: usize, whisper: bool) -> Handover {
        Handover {
            queue,
            phase: Phase::Waiting,
            ringing: None,
            agent: None,
            announce: Some(position),
            hold_at: None,
            whisper: whisper.then_some(false),
            out: VecDeque::new(),
        }
    }

    /// The call comes back to `queue` after an agent transferred it (blind): the caller
    /// hears the transfer line, then hold.
    pub fn transferred(now: Duration, queue: String, whisper: bool) -> Handover {
        let mut h = Handover::queued(queue, 0, whisper);
        h.announce = None;
        h.hold_at = Some(now + TRANSFER_HOLD);
        h
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The agent who took the call.
    pub fn agent(&self) -> Option<&str> {
        self.agent.as_deref()
    }

    pub fn whispering(&self) -> bool {
        self.phase == Phase::Whispering
    }

    /// Waiting for the render of the whisper (the driver awaits it in its loop).
    pub fn awaiting_whisper(&self) -> bool {
        self.phase == Phase::AwaitWhisper
    }

    pub fn is_over(&self) -> bool {
        self.phase == Phase::Over
    }

    pub fn poll_output(&mut self) -> Option<Out> {
        self.out.pop_front()
    }

    pub fn next_deadline(&self) -> Option<Duration> {
        self.hold_at.filter(|_| self.phase == Phase::Waiting)
    }

    fn waiting(&self) -> bool {
        self.phase == Phase::Waiting
    }

    /// What the caller last heard ended: their place in line, or the gap before the next
    /// hold prompt.
    pub fn on_caller_playback_done(&mut self, now: Duration) {
        if !self.waiting() {
            return;
        }
        match self.announce.take() {
            Some(position) => self.out.push_back(Out::Announce { position }),
            None => self.hold_at = Some(now + HOLD_GAP),
        }
    }

    pub fn on_timer(&mut self, now: Duration) {
        if self.waiting() && self.hold_at.is_some_and(|h| now >= h) {
            self.hold_at = None;
            self.out.push_back(Out::PlayHold);
        }
    }

    /// A key from the caller: true when it was theirs to use (1 = call me back).
    pub fn on_digit(&mut self, d: char) -> bool {
        if d != '1' || !self.waiting() {
            return false;
        }
        self.release_ringing();
        self.out.push_back(Out::Router(RouterNote::Abandon));
        self.out.push_back(Out::Callback);
        self.phase = Phase::Over;
        true
    }

    pub fn on_route(&mut self, now: Duration, r: Route) {
        if !self.waiting() {
            if let Route::Ring { .. } = r {
                // Taken already (or over): the router must look again.
                self.out.push_back(Out::Router(RouterNote::RingFailed));
            }
            return;
        }
        match r {
            Route::Ring { agent, binding } => {
                if self.ringing.is_some() {
                    self.out.push_back(Out::Router(RouterNote::RingFailed));
                    return;
                }
                self.ringing = Some(agent.clone());
                self.out.push_back(Out::Ring { agent, binding });
            }
            Route::CancelRing => {
                if self.release_ringing() {
                    self.hold_at.get_or_insert(now + HOLD_GAP);
                }
            }
            Route::Overflow { queue } => {
                self.queue = queue.clone();
                self.out.push_back(Out::Overflowed { queue });
            }
            Route::Expired => {
                self.release_ringing();
                self.out.push_back(Out::Callback);
                self.phase = Phase::Over;
            }
        }
    }

    /// The agent's phone could not be rung or did not take the call: back in line.
    pub fn on_agent_failed(&mut self, now: Duration) {
        if self.waiting() && self.ringing.take().is_some() {
            self.out.push_back(Out::Router(RouterNote::RingFailed));
            self.hold_at.get_or_insert(now + HOLD_GAP);
        }
    }

    /// The rung agent answered: they hear the summary (once it is rendered), then the
    /// caller.
    pub fn on_agent_answered(&mut self) {
        let Some(agent) = self.ringing.take().filter(|_| self.waiting()) else {
            return;
        };
        self.agent = Some(agent.clone());
        self.hold_at = None;
        self.out.push_back(Out::Router(RouterNote::Answered));
        self.out.push_back(Out::AgentTookCall { agent });
        match self.whisper {
            Some(true) => {
                self.phase = Phase::Whispering;
                self.out.push_back(Out::Whisper);
            }
            Some(false) => self.phase = Phase::AwaitWhisper,
            None => self.connect(),
        }
    }

    /// The summary is rendered (`ok`) or could not be.
    pub fn on_whisper_rendered(&mut self, ok: bool) {
        match self.phase {
            Phase::AwaitWhisper if ok => {
                self.whisper = Some(true);
                self.phase = Phase::Whispering;
                self.out.push_back(Out::Whisper);
            }
            Phase::AwaitWhisper => self.connect(),
            Phase::Waiting => self.whisper = ok.then_some(true),
            _ => {}
        }
    }

    /// The agent heard the whisper.
    pub fn on_whisper_played(&mut self) {
        if self.phase == Phase::Whispering {
            self.connect();
        }
    }

    /// The call ends (whoever hung up): the router learns whether an agent is free now
    /// or a caller left the line.
    pub fn on_call_end(&mut self) {
        match (&self.phase, self.agent.take()) {
            (Phase::Over, _) => {}
            (_, Some(agent)) => self.out.push_back(Out::Router(RouterNote::Ended { agent })),
            (_, None) => {
                self.release_ringing();
                self.out.push_back(Out::Router(RouterNote::Abandon));
                self.out.push_back(Out::CallerLeft);
            }
        }
        self.phase = Phase::Over;
    }

    /// An attended transfer: the colleague the agent consulted has the caller now.
    pub fn taken_over_by(&mut self, agent: String) {
        self.ringing = None;
        self.agent = Some(agent);
        self.hold_at = None;
        self.phase = Phase::Bridged;
    }

    /// The agent handed the call on (transfer): the next one is the router's to find.
    pub fn on_transferred_away(&mut self) -> Option<String> {
        let agent = self.agent.take();
        self.phase = Phase::Over;
        agent
    }

    fn connect(&mut self) {
        self.phase = Phase::Bridged;
        self.out.push_back(Out::Connect);
    }

    /// Stops ringing an agent: true if one was ringing.
    fn release_ringing(&mut self) -> bool {
        if self.ringing.take().is_some() {
            self.out.push_back(Out::ReleaseAgent);
            true
        } else {
            false
        }
    }
}
