//! Automatic call distribution, sans-IO: which waiting call rings which agent, when.
//!
//! Time and events go in (an agent logs in or pauses, a call is queued, an agent answers or
//! fails to, a call ends, the clock moves); actions come out (ring this agent for this call,
//! stop ringing, the call waited too long). The driver places the INVITEs and plays the hold
//! audio; this module only decides, so every routing rule is tested on a virtual clock.
//!
//! Rules:
//! - A call waits in one queue; calls are served by priority, then by arrival.
//! - It rings the **longest-idle available** agent who has every skill the queue requires
//!   and speaks the call's language.
//! - No answer within `ring_timeout`: the agent is paused ("no answer", so a phone left
//!   unattended stops getting calls) and the call goes back to the head of its queue, to the
//!   next agent; agents who already failed this call are not rung again for it.
//! - A busy/unreachable agent (486, 408, 480...) is treated the same way, without the pause.
//! - After a call, the agent is in wrap-up for `wrap_up`, then available again.
//! - A call that waited `max_wait` without being answered is given up (`Expired`): the
//!   driver apologises, offers a callback and ends the call (or overflows).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    Offline,
    Available,
    Ringing { call: String },
    OnCall { call: String },
    WrapUp { until: Duration },
    Paused { reason: String },
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub skills: HashSet<String>,
    pub languages: HashSet<String>,
    pub state: AgentState,
    /// When the agent last became available (longest idle = smallest).
    pub idle_since: Duration,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub name: String,
    /// Skills an agent needs for this queue (all of them).
    pub skills: Vec<String>,
    pub max_wait: Duration,
    /// Where a call goes after `max_wait` here (None: it expires).
    pub overflow: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct AcdConfig {
    pub ring_timeout: Duration,
    pub wrap_up: Duration,
}

impl Default for AcdConfig {
    fn default() -> Self {
        AcdConfig {
            ring_timeout: Duration::from_secs(15),
            wrap_up: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Place a call to this agent for this caller.
    Ring { call: String, agent: String },
    /// Stop ringing (timeout); the call goes to another agent.
    CancelRing { call: String, agent: String },
    /// The call waited `max_wait` in `from` and now waits in `to` (the queue's overflow).
    Overflow {
        call: String,
        from: String,
        to: String,
    },
    /// The call waited `max_wait` without reaching anyone (and has nowhere to overflow).
    Expired { call: String, queue: String },
}

#[derive(Debug, Clone)]
struct Waiting {
    call: String,
    queue: String,
    language: String,
    priority: i32,
    /// Arrival (the order within a priority; kept when the call overflows).
    since: Duration,
    /// When it joined its current queue (that queue's `max_wait` counts from here).
    joined: Duration,
    /// Queues it already overflowed from (never back into one of them).
    visited: Vec<String>,
    /// Agents who did not answer this call.
    tried: HashSet<String>,
    /// Ringing this agent since.
    ringing: Option<(String, Duration)>,
    /// Only this agent may take the call (a transfer to a person; the queue's skills do not
    /// apply). Dropped when that agent fails to take it: the queue serves it from then on.
    target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcdError {
    #[error("no queue named {0:?}")]
    UnknownQueue(String),
    #[error("no agent {0:?}")]
    UnknownAgent(String),
    #[error("call {0:?} is not queued")]
    UnknownCall(String),
}

pub struct Acd {
    cfg: AcdConfig,
    queues: BTreeMap<String, QueueConfig>,
    agents: BTreeMap<String, Agent>,
    /// In arrival order; served by priority then arrival.
    calls: Vec<Waiting>,
}

impl Acd {
    pub fn new(cfg: AcdConfig, queues: Vec<QueueConfig>) -> Acd {
        Acd {
            cfg,
            queues: queues.into_iter().map(|q| (q.name.clone(), q)).collect(),
            agents: BTreeMap::new(),
            calls: Vec::new(),
        }
    }

    pub fn agent(&self, id: &str) -> Option<&Agent> {
        self.agents.get(id)
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// Position (1-based) of a waiting call in its queue, as the caller would be told.
    pub fn position(&self, call: &str) -> Option<usize> {
        let w = self.calls.iter().find(|w| w.call == call)?;
        let mut ahead: Vec<&Waiting> = self
            .calls
            .iter()
            .filter(|o| o.queue == w.queue && o.ringing.is_none())
            .collect();
        ahead.sort_by_key(|o| (-o.priority, o.since));
        ahead.iter().position(|o| o.call == call).map(|p| p + 1)
    }

    /// Adds or updates an agent account (offline until it logs in).
    pub fn add_agent(&mut self, id: &str, skills: &[String], languages: &[String]) {
        let a = self.agents.entry(id.to_string()).or_insert(Agent {
            id: id.to_string(),
            skills: HashSet::new(),
            languages: HashSet::new(),
            state: AgentState::Offline,
            idle_since: Duration::ZERO,
        });
        a.skills = skills.iter().cloned().collect();
        a.languages = languages.iter().cloned().collect();
    }

    /// The agent is ready for calls (registered, `*21`, or back from a pause).
    pub fn set_available(&mut self, id: &str, now: Duration) -> Result<Vec<Action>, AcdError> {
        let a = self
            .agents
            .get_mut(id)
            .ok_or_else(|| AcdError::UnknownAgent(id.into()))?;
        if matches!(
            a.state,
            AgentState::Ringing { .. } | AgentState::OnCall { .. }
        ) {
            return Ok(Vec::new()); // busy: the end of the call makes it available
        }
        if a.state != AgentState::Available {
            a.state = AgentState::Available;
            a.idle_since = now;
        }
        Ok(self.dispatch(now))
    }

    /// Paused with a reason (`*22`, the console), or offline (unregistered).
    pub fn set_unavailable(
        &mut self,
        id: &str,
        reason: Option<&str>,
        now: Duration,
    ) -> Result<Vec<Action>, AcdError> {
        let a = self
            .agents
            .get_mut(id)
            .ok_or_else(|| AcdError::UnknownAgent(id.into()))?;
        let ringing = match &a.state {
            AgentState::Ringing { call } => Some(call.clone()),
            _ => None,
        };
        a.state = match reason {
            Some(r) => AgentState::Paused { reason: r.into() },
            None => AgentState::Offline,
        };
        let mut out = Vec::new();
        if let Some(call) = ringing {
            out.push(Action::CancelRing {
                call: call.clone(),
                agent: id.into(),
            });
            self.requeue(&call, id);
        }
        out.extend(self.dispatch(now));
        Ok(out)
    }

    /// A call needs a person. `priority`: higher goes first (a call returned after a
    /// failed transfer gets a boost).
    pub fn enqueue(
        &mut self,
        call: &str,
        queue: &str,
        language: &str,
        priority: i32,
        now: Duration,
    ) -> Result<Vec<Action>, AcdError> {
        self.enqueue_for(call, queue, language, priority, None, now)
    }

    /// As `enqueue`, for one agent first (`target`, e.g. a transfer to a named colleague):
    /// only they are rung while they can take it; if they do not answer or are away
    /// (paused, offline) the call falls back to the queue's agents.
    pub fn enqueue_for(
        &mut self,
        call: &str,
        queue: &str,
        language: &str,
        priority: i32,
        target: Option<&str>,
        now: Duration,
    ) -> Result<Vec<Action>, AcdError> {
        if !self.queues.contains_key(queue) {
            return Err(AcdError::UnknownQueue(queue.into()));
        }
        // A target who cannot take calls now: straight to the queue.
        let target = match target {
            Some(t) => {
                let a = self
                    .agents
                    .get(t)
                    .ok_or_else(|| AcdError::UnknownAgent(t.into()))?;
                matches!(a.state, AgentState::Available | AgentState::WrapUp { .. })
                    .then(|| t.to_string())
            }
            None => None,
        };
        self.calls.retain(|w| w.call != call);
        self.calls.push(Waiting {
            call: call.into(),
            queue: queue.into(),
            language: language.into(),
            priority,
            since: now,
            joined: now,
            visited: Vec::new(),
            tried: HashSet::new(),
            ringing: None,
            target,
        });
        Ok(self.dispatch(now))
    }

    /// The caller hung up or took a callback while waiting.
    pub fn abandon(&mut self, call: &str, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(i) = self.calls.iter().position(|w| w.call == call) {
            let w = self.calls.remove(i);
            if let Some((agent, _)) = w.ringing {
                out.push(Action::CancelRing {
                    call: call.into(),
                    agent: agent.clone(),
                });
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.state = AgentState::Available;
                }
            }
        }
        out.extend(self.dispatch(now));
        out
    }

    /// The agent picked up: the call leaves the queue.
    pub fn answered(&mut self, call: &str) -> Result<(), AcdError> {
        let i = self
            .calls
            .iter()
            .position(|w| w.call == call && w.ringing.is_some())
            .ok_or_else(|| AcdError::UnknownCall(call.into()))?;
        let w = self.calls.remove(i);
        if let Some((agent, _)) = w.ringing {
            if let Some(a) = self.agents.get_mut(&agent) {
                a.state = AgentState::OnCall { call: call.into() };
            }
        }
        Ok(())
    }

    /// The agent's phone refused or failed (486, 408, 480, transport error): next agent.
    pub fn ring_failed(&mut self, call: &str, now: Duration) -> Vec<Action> {
        let agent = self
            .calls
            .iter()
            .find(|w| w.call == call)
            .and_then(|w| w.ringing.as_ref().map(|(a, _)| a.clone()));
        if let Some(agent) = agent {
            if let Some(a) = self.agents.get_mut(&agent) {
                a.state = AgentState::Available;
            }
            self.requeue(call, &agent);
        }
        self.dispatch(now)
    }

    /// The agent answered a call dialled to their extension (not offered by the ACD): no
    /// queued call is offered to them until it ends (`call_ended`, then wrap-up). A paused
    /// or ringing agent keeps that state.
    pub fn direct_call(&mut self, agent: &str, call: &str) {
        if let Some(a) = self.agents.get_mut(agent) {
            if matches!(a.state, AgentState::Available | AgentState::WrapUp { .. }) {
                a.state = AgentState::OnCall { call: call.into() };
            }
        }
    }

    /// A bridged call ended: the agent wraps up.
    pub fn call_ended(&mut self, agent: &str, now: Duration) -> Vec<Action> {
        if let Some(a) = self.agents.get_mut(agent) {
            if matches!(a.state, AgentState::OnCall { .. }) {
                a.state = AgentState::WrapUp {
                    until: now + self.cfg.wrap_up,
                };
            }
        }
        self.on_time(now)
    }

    /// The next time `on_time` has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        let rings = self
            .calls
            .iter()
            .filter_map(|w| w.ringing.as_ref().map(|(_, t)| *t + self.cfg.ring_timeout));
        let waits = self
            .calls
            .iter()
            .filter_map(|w| self.queues.get(&w.queue).map(|q| w.joined + q.max_wait));
        let wraps = self.agents.values().filter_map(|a| match a.state {
            AgentState::WrapUp { until } => Some(until),
            _ => None,
        });
        rings.chain(waits).chain(wraps).min()
    }

    /// The clock moved: ring timeouts, the end of wrap-up, calls waiting too long.
    pub fn on_time(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        for a in self.agents.values_mut() {
            if let AgentState::WrapUp { until } = a.state {
                if now >= until {
                    a.state = AgentState::Available;
                    a.idle_since = until;
                }
            }
        }
        let timed_out: Vec<(String, String)> = self
            .calls
            .iter()
            .filter_map(|w| match &w.ringing {
                Some((agent, since)) if now >= *since + self.cfg.ring_timeout => {
                    Some((w.call.clone(), agent.clone()))
                }
                _ => None,
            })
            .collect();
        for (call, agent) in timed_out {
            out.push(Action::CancelRing {
                call: call.clone(),
                agent: agent.clone(),
            });
            if let Some(a) = self.agents.get_mut(&agent) {
                a.state = AgentState::Paused {
                    reason: "no answer".into(),
                };
            }
            self.requeue(&call, &agent);
        }
        let queues = &self.queues;
        let mut keep = Vec::with_capacity(self.calls.len());
        for mut w in std::mem::take(&mut self.calls) {
            let q = queues.get(&w.queue);
            if w.ringing.is_some() || q.map(|q| now < w.joined + q.max_wait).unwrap_or(false) {
                keep.push(w);
                continue;
            }
            let to = q
                .and_then(|q| q.overflow.clone())
                .filter(|to| queues.contains_key(to) && !w.visited.contains(to));
            match to {
                Some(to) => {
                    let from = std::mem::replace(&mut w.queue, to.clone());
                    out.push(Action::Overflow {
                        call: w.call.clone(),
                        from: from.clone(),
                        to,
                    });
                    w.visited.push(from);
                    w.joined = now;
                    keep.push(w);
                }
                None => out.push(Action::Expired {
                    call: w.call,
                    queue: w.queue,
                }),
            }
        }
        self.calls = keep;
        out.extend(self.dispatch(now));
        out
    }

    fn requeue(&mut self, call: &str, failed_agent: &str) {
        if let Some(w) = self.calls.iter_mut().find(|w| w.call == call) {
            w.ringing = None;
            w.tried.insert(failed_agent.to_string());
            if w.target.as_deref() == Some(failed_agent) {
                w.target = None;
            }
        }
    }

    /// Matches waiting calls with available agents.
    fn dispatch(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        let mut order: Vec<usize> = (0..self.calls.len())
            .filter(|&i| self.calls[i].ringing.is_none())
            .collect();
        order.sort_by_key(|&i| (-self.calls[i].priority, self.calls[i].since));
        for i in order {
            let w = &self.calls[i];
            let Some(q) = self.queues.get(&w.queue) else {
                continue;
            };
            let best = self
                .agents
                .values()
                .filter(|a| a.state == AgentState::Available)
                .filter(|a| !w.tried.contains(&a.id))
                .filter(|a| match &w.target {
                    Some(t) => &a.id == t,
                    None => {
                        q.skills.iter().all(|s| a.skills.contains(s))
                            && (a.languages.is_empty() || a.languages.contains(&w.language))
                    }
                })
                .min_by_key(|a| (a.idle_since, a.id.clone()))
                .map(|a| a.id.clone());
            if let Some(agent) = best {
                let call = w.call.clone();
                if let Some(a) = self.agents.get_mut(&agent) {
                    a.state = AgentState::Ringing { call: call.clone() };
                }
                self.calls[i].ringing = Some((agent.clone(), now));
                out.push(Action::Ring { call, agent });
            }
        }
        out
    }
}

#[cfg(test)]
#[path = "acd_tests.rs"]
mod tests;
