//! Routing escalated calls to people: queues and agents (`acd`, the sans-IO decisions) with
//! a thin tokio driver around them. The endpoint tells the router who is registered; a call
//! that needs a person enqueues itself and then hears back: ring this agent (with the
//! contact to INVITE), stop ringing, or nobody came in time.

pub mod acd;

use crate::config::Config;
use crate::registrar::Binding;
use acd::{Acd, AcdConfig, AcdError, Action, AgentState, QueueConfig};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Why the router could not do what a call or the API asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Acd(#[from] AcdError),
    #[error("{0} is not registered")]
    NotRegistered(String),
    #[error("routing task is gone")]
    Gone,
}

/// What the router tells a queued call.
#[derive(Debug, Clone)]
pub enum RouteEvent {
    /// INVITE this agent now.
    Ring {
        agent: String,
        binding: Box<Binding>,
    },
    /// Stop ringing the agent (no answer in time, or the agent went away).
    CancelRing { agent: String },
    /// The call waited its queue's max wait and moved to the overflow queue.
    Overflow { queue: String },
    /// Nobody answered within the queue's max wait.
    Expired,
}

/// An agent as the console sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentStatus {
    pub id: String,
    pub state: String,
    pub registered: bool,
    pub skills: Vec<String>,
    pub languages: Vec<String>,
}

enum Cmd {
    Registration {
        agent: String,
        binding: Option<Binding>,
    },
    Enqueue {
        call: String,
        queue: String,
        language: String,
        priority: i32,
        /// Only this agent first (a transfer to a named colleague).
        agent: Option<String>,
        events: mpsc::Sender<RouteEvent>,
        reply: oneshot::Sender<Result<usize, RouteError>>,
    },
    Abandon {
        call: String,
    },
    Answered {
        call: String,
    },
    RingFailed {
        call: String,
    },
    DirectCall {
        agent: String,
        call: String,
    },
    Ended {
        agent: String,
    },
    SetState {
        agent: String,
        available: bool,
        reason: String,
        reply: oneshot::Sender<Result<(), RouteError>>,
    },
    Agents {
        reply: oneshot::Sender<Vec<AgentStatus>>,
    },
    Binding {
        agent: String,
        reply: oneshot::Sender<Option<Binding>>,
    },
}

/// Handle to the routing task (cheap to clone).
#[derive(Clone)]
pub struct Router {
    tx: mpsc::Sender<Cmd>,
}

struct Driver {
    acd: Acd,
    clock: Instant,
    bindings: HashMap<String, Binding>,
    calls: HashMap<String, mpsc::Sender<RouteEvent>>,
}

impl Router {
    /// Starts the routing task with the configured queues and agent accounts (all offline
    /// until they register).
    pub fn start(cfg: &Config) -> Router {
        let r = &cfg.routing;
        let queues = r
            .queues
            .iter()
            .map(|q| QueueConfig {
                name: q.name.clone(),
                skills: q.skills.clone(),
                max_wait: Duration::from_secs(q.max_wait_secs),
                overflow: (!q.overflow.is_empty()).then(|| q.overflow.clone()),
            })
            .collect();
        let mut acd = Acd::new(
            AcdConfig {
                ring_timeout: Duration::from_secs(r.ring_timeout_secs),
                wrap_up: Duration::from_secs(r.wrap_up_secs),
            },
            queues,
        );
        // A supervisor without skills only supervises: never offered calls.
        for a in cfg
            .agents
            .iter()
            .filter(|a| !(a.supervisor && a.skills.is_empty()))
        {
            acd.add_agent(&a.username, &a.skills, &a.languages);
        }
        let (tx, rx) = mpsc::channel(1024);
        let d = Driver {
            acd,
            clock: Instant::now(),
            bindings: HashMap::new(),
            calls: HashMap::new(),
        };
        tokio::spawn(d.run(rx));
        Router { tx }
    }

    fn send(&self, c: Cmd) {
        if self.tx.try_send(c).is_err() {
            tracing::error!("routing task is gone or overloaded; command dropped");
        }
    }

    /// An agent's registration changed (`None`: no contact left).
    pub fn registration(&self, agent: &str, binding: Option<Binding>) {
        self.send(Cmd::Registration {
            agent: agent.into(),
            binding,
        });
    }

    /// Queues `call`; returns its position, or why it cannot wait (unknown queue).
    pub async fn enqueue(
        &self,
        call: &str,
        queue: &str,
        language: &str,
        priority: i32,
        events: mpsc::Sender<RouteEvent>,
    ) -> Result<usize, RouteError> {
        self.enqueue_for(call, queue, language, priority, None, events)
            .await
    }

    /// As `enqueue`, ringing `agent` first (see `Acd::enqueue_for`).
    pub async fn enqueue_for(
        &self,
        call: &str,
        queue: &str,
        language: &str,
        priority: i32,
        agent: Option<&str>,
        events: mpsc::Sender<RouteEvent>,
    ) -> Result<usize, RouteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Enqueue {
            call: call.into(),
            queue: queue.into(),
            language: language.into(),
            priority,
            agent: agent.map(String::from),
            events,
            reply,
        });
        rx.await.unwrap_or(Err(RouteError::Gone))
    }

    pub fn abandon(&self, call: &str) {
        self.send(Cmd::Abandon { call: call.into() });
    }
    pub fn answered(&self, call: &str) {
        self.send(Cmd::Answered { call: call.into() });
    }
    pub fn ring_failed(&self, call: &str) {
        self.send(Cmd::RingFailed { call: call.into() });
    }
    /// `agent` answered a call to their extension: busy until `ended`.
    pub fn direct_call(&self, agent: &str, call: &str) {
        self.send(Cmd::DirectCall {
            agent: agent.into(),
            call: call.into(),
        });
    }
    pub fn ended(&self, agent: &str) {
        self.send(Cmd::Ended {
            agent: agent.into(),
        });
    }

    /// Available, or paused with a reason (console API, feature codes).
    pub async fn set_state(
        &self,
        agent: &str,
        available: bool,
        reason: &str,
    ) -> Result<(), RouteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::SetState {
            agent: agent.into(),
            available,
            reason: reason.into(),
            reply,
        });
        rx.await.unwrap_or(Err(RouteError::Gone))
    }

    /// Where an account's softphone is registered now (agents and supervisors).
    pub async fn binding(&self, agent: &str) -> Option<Binding> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Binding {
            agent: agent.into(),
            reply,
        });
        rx.await.ok().flatten()
    }

    pub async fn agents(&self) -> Vec<AgentStatus> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Agents { reply });
        rx.await.unwrap_or_default()
    }
}

fn state_name(s: &AgentState) -> String {
    match s {
        AgentState::Offline => "offline".into(),
        AgentState::Available => "available".into(),
        AgentState::Ringing { .. } => "ringing".into(),
        AgentState::OnCall { .. } => "on-call".into(),
        AgentState::WrapUp { .. } => "wrap-up".into(),
        AgentState::Paused { reason } => format!("paused: {reason}"),
    }
}

impl Driver {
    fn now(&self) -> Duration {
        self.clock.elapsed()
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let deadline = self.acd.next_deadline().map(|d| self.clock + d);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                c = rx.recv() => match c {
                    Some(c) => self.on_cmd(c),
                    None => return,
                },
                _ = sleep => {
                    let now = self.now();
                    self.acd.on_time(now)
                }
            };
            self.apply(actions);
        }
    }

    fn on_cmd(&mut self, c: Cmd) -> Vec<Action> {
        let now = self.now();
        match c {
            Cmd::Registration { agent, binding } => {
                let first = match binding.clone() {
                    Some(b) => self.bindings.insert(agent.clone(), b).is_none(),
                    None => {
                        self.bindings.remove(&agent);
                        false
                    }
                };
                let Some(a) = self.acd.agent(&agent) else {
                    return Vec::new(); // a supervisor: reachable, never offered calls
                };
                let offline = a.state == AgentState::Offline;
                match binding {
                    Some(_) => {
                        if first && offline {
                            tracing::info!(%agent, "agent registered: available");
                            return self.acd.set_available(&agent, now).unwrap_or_default();
                        }
                        Vec::new()
                    }
                    None => {
                        tracing::info!(%agent, "agent unregistered: offline");
                        self.acd
                            .set_unavailable(&agent, None, now)
                            .unwrap_or_default()
                    }
                }
            }
            Cmd::Enqueue {
                call,
                queue,
                language,
                priority,
                agent,
                events,
                reply,
            } => match self.acd.enqueue_for(
                &call,
                &queue,
                &language,
                priority,
                agent.as_deref(),
                now,
            ) {
                Ok(actions) => {
                    self.calls.insert(call.clone(), events);
                    let pos = self.acd.position(&call).unwrap_or(1);
                    let _ = reply.send(Ok(pos));
                    actions
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    Vec::new()
                }
            },
            Cmd::Abandon { call } => {
                self.calls.remove(&call);
                self.acd.abandon(&call, now)
            }
            Cmd::Answered { call } => {
                self.calls.remove(&call);
                if let Err(e) = self.acd.answered(&call) {
                    tracing::warn!(error = %e, "answered call was not ringing");
                }
                Vec::new()
            }
            Cmd::RingFailed { call } => self.acd.ring_failed(&call, now),
            Cmd::DirectCall { agent, call } => {
                self.acd.direct_call(&agent, &call);
                Vec::new()
            }
            Cmd::Ended { agent } => self.acd.call_ended(&agent, now),
            Cmd::SetState {
                agent,
                available,
                reason,
                reply,
            } => {
                let r = if available {
                    if !self.bindings.contains_key(&agent) {
                        let _ = reply.send(Err(RouteError::NotRegistered(agent)));
                        return Vec::new();
                    }
                    self.acd.set_available(&agent, now)
                } else {
                    self.acd.set_unavailable(&agent, Some(&reason), now)
                };
                match r {
                    Ok(a) => {
                        let _ = reply.send(Ok(()));
                        a
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        Vec::new()
                    }
                }
            }
            Cmd::Agents { reply } => {
                let list = self
                    .acd
                    .agents()
                    .map(|a| {
                        let mut skills: Vec<String> = a.skills.iter().cloned().collect();
                        skills.sort();
                        let mut languages: Vec<String> = a.languages.iter().cloned().collect();
                        languages.sort();
                        AgentStatus {
                            id: a.id.clone(),
                            state: state_name(&a.state),
                            registered: self.bindings.contains_key(&a.id),
                            skills,
                            languages,
                        }
                    })
                    .collect();
                let _ = reply.send(list);
                Vec::new()
            }
            Cmd::Binding { agent, reply } => {
                let _ = reply.send(self.bindings.get(&agent).cloned());
                Vec::new()
            }
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        let mut work = actions;
        while !work.is_empty() {
            let mut next = Vec::new();
            for a in work {
                match a {
                    Action::Ring { call, agent } => {
                        let target = self.calls.get(&call).cloned();
                        match (self.bindings.get(&agent).cloned(), target) {
                            (Some(binding), Some(tx)) => {
                                tracing::info!(%call, %agent, "routing: ring agent");
                                if tx
                                    .try_send(RouteEvent::Ring {
                                        agent,
                                        binding: Box::new(binding),
                                    })
                                    .is_err()
                                {
                                    next.extend(self.acd.abandon(&call, self.now()));
                                    self.calls.remove(&call);
                                }
                            }
                            (None, Some(_)) => next.extend(self.acd.ring_failed(&call, self.now())),
                            (_, None) => next.extend(self.acd.abandon(&call, self.now())),
                        }
                    }
                    Action::CancelRing { call, agent } => {
                        if let Some(tx) = self.calls.get(&call) {
                            let _ = tx.try_send(RouteEvent::CancelRing { agent });
                        }
                    }
                    Action::Overflow { call, from, to } => {
                        tracing::info!(%call, %from, %to, "routing: overflow");
                        if let Some(tx) = self.calls.get(&call) {
                            let _ = tx.try_send(RouteEvent::Overflow { queue: to });
                        }
                    }
                    Action::Expired { call, queue } => {
                        tracing::info!(%call, %queue, "routing: nobody answered in time");
                        if let Some(tx) = self.calls.remove(&call) {
                            let _ = tx.try_send(RouteEvent::Expired);
                        }
                    }
                }
            }
            work = next;
        }
    }
}
