//! Group additions of workers converged together, sent together: one `PATCH /groups/{id}` adds up
//! to 20 members (`members@odata.bind`, learn.microsoft.com/graph/api/group-post-members), so a
//! round of joiners costs a request per 20 memberships of a group instead of one per membership.
//!
//! Every worker converged in the round joins first ([`GroupAdds::join`]); each converges on its
//! own and hands its additions over ([`Participant::add`]), or leaves without any (dropping its
//! [`Participant`]). Once none is still converging, the additions go out in `$batch`es of such
//! PATCHes, and each participant gets the result of its own. Graph refuses a whole PATCH when one
//! of its members is one already (400 "... already exist") or does not exist: such a PATCH is
//! split in halves and sent again, down to single members, for which "already a member" is success.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use crate::graph::requests::{self, MAX_MEMBERS_PER_PATCH};
use crate::graph::{GraphClient, GraphError, GraphResponse};

/// The additions of one round of convergence.
#[derive(Debug)]
pub struct GroupAdds {
    graph: GraphClient,
    state: Mutex<State>,
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Participants still converging: neither handed their additions over nor left.
    converging: usize,
    pending: Vec<Add>,
    flushing: bool,
    done: HashMap<u64, Result<(), GraphError>>,
    next_ticket: u64,
}

#[derive(Debug, Clone)]
struct Add {
    ticket: u64,
    group: String,
    user: String,
}

/// One worker's place in a round; dropping it without [`Participant::add`] leaves the round.
#[derive(Debug)]
pub struct Participant {
    round: Option<Arc<GroupAdds>>,
}

impl GroupAdds {
    pub fn new(graph: GraphClient) -> Arc<Self> {
        Arc::new(Self {
            graph,
            state: Mutex::default(),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// A place in the round. Every participant must join before any hands its additions over:
    /// they go out once no participant is still converging.
    pub fn join(self: &Arc<Self>) -> Participant {
        self.lock().converging += 1;
        Participant {
            round: Some(Arc::clone(self)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for the results of `tickets`, sending the round's additions when it falls to us.
    async fn results(self: &Arc<Self>, tickets: &[u64]) -> Vec<Result<(), GraphError>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch = {
                let mut state = self.lock();
                if tickets.iter().all(|t| state.done.contains_key(t)) {
                    return tickets
                        .iter()
                        .filter_map(|t| state.done.remove(t))
                        .collect();
                }
                match state.converging == 0 && !state.flushing && !state.pending.is_empty() {
                    true => {
                        state.flushing = true;
                        Some(std::mem::take(&mut state.pending))
                    }
                    false => None,
                }
            };
            match batch {
                // In a task of its own, so that the results are stored even if this waiter
                // is dropped, and a panic fails the additions instead of hanging the round.
                Some(batch) => {
                    let round = Arc::clone(self);
                    tokio::spawn(async move {
                        let tickets: Vec<u64> = batch.iter().map(|a| a.ticket).collect();
                        let graph = round.graph.clone();
                        let results = match tokio::spawn(send(graph, batch)).await {
                            Ok(results) => results,
                            Err(panic) => tickets
                                .into_iter()
                                .map(|t| {
                                    let why = format!("adding group members panicked: {panic}");
                                    (t, Err(GraphError::Decode(why)))
                                })
                                .collect(),
                        };
                        let mut state = round.lock();
                        state.done.extend(results);
                        state.flushing = false;
                        drop(state);
                        round.changed.notify_waiters();
                    });
                }
                None => notified.await,
            }
        }
    }
}

impl Participant {
    /// Adds `user` to each of `groups` together with the round's other additions; one result per
    /// group, in order.
    pub async fn add(mut self, user: &str, groups: &[String]) -> Vec<Result<(), GraphError>> {
        let Some(round) = self.round.take() else {
            return Vec::new();
        };
        let tickets: Vec<u64> = {
            let mut state = round.lock();
            state.converging -= 1;
            let tickets: Vec<u64> = groups
                .iter()
                .map(|group| {
                    let ticket = state.next_ticket;
                    state.next_ticket += 1;
                    state.pending.push(Add {
                        ticket,
                        group: group.clone(),
                        user: user.to_owned(),
                    });
                    ticket
                })
                .collect();
            tickets
        };
        round.changed.notify_waiters();
        round.results(&tickets).await
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        if let Some(round) = self.round.take() {
            round.lock().converging -= 1;
            round.changed.notify_waiters();
        }
    }
}

/// Sends the additions, PATCHes of up to 20 members of a group in `$batch`es; a PATCH refused for
/// one of its members goes again in halves.
async fn send(graph: GraphClient, adds: Vec<Add>) -> Vec<(u64, Result<(), GraphError>)> {
    let mut by_group: BTreeMap<String, Vec<Add>> = BTreeMap::new();
    for add in adds {
        by_group.entry(add.group.clone()).or_default().push(add);
    }
    let mut work: Vec<Vec<Add>> = by_group
        .into_values()
        .flat_map(|adds| {
            adds.chunks(MAX_MEMBERS_PER_PATCH)
                .map(<[Add]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect();
    let mut results = Vec::new();
    while !work.is_empty() {
        let patches = work
            .iter()
            .enumerate()
            .map(|(index, chunk)| {
                let users: Vec<&str> = chunk.iter().map(|a| a.user.as_str()).collect();
                requests::add_members(&chunk[0].group, &users).id(format!("g{index}"))
            })
            .collect();
        let responses = match graph.batch(patches).await {
            Ok(responses) => responses,
            Err(error) => {
                results.extend(
                    work.into_iter()
                        .flatten()
                        .map(|add| (add.ticket, Err(error.clone()))),
                );
                break;
            }
        };
        let mut again = Vec::new();
        for (chunk, response) in work.into_iter().zip(responses) {
            match response.error() {
                None => results.extend(chunk.into_iter().map(|add| (add.ticket, Ok(())))),
                Some(_) if chunk.len() > 1 && one_member_refused(&response) => {
                    let (left, right) = chunk.split_at(chunk.len() / 2);
                    again.push(left.to_vec());
                    again.push(right.to_vec());
                }
                Some(error) => {
                    results.extend(
                        chunk
                            .into_iter()
                            .map(|add| (add.ticket, Err(error.clone()))),
                    );
                }
            }
        }
        work = again;
    }
    results
}

/// A 400 naming the members (one already in the group, or one that does not exist), as opposed
/// to the group itself (404) or the caller (403).
fn one_member_refused(response: &GraphResponse) -> bool {
    response.status == 400
        && response.error_message().is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("already exist")
                || m.contains("do not exist")
                || m.contains("does not exist")
        })
}
