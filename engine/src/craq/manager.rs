//! The chain's manager as the server runs it (the Zab leader, which heads the chain):
//! which configuration comes next, one change at a time. Pure: the caller says who Zab
//! counts as synchronised, when members asked for read leases, and the time.
//!
//! Rules (the manager duties of the module docs of `craq`):
//! - a member Zab no longer counts (its link dropped, or silent past syncLimit) gets no
//!   lease from then on and leaves the chain once every lease it may hold has run out:
//!   a lease it asked for at time `t` ends by `t + lease_ms` (it runs from the asker's
//!   sending time, before `t`), so at `last ask + lease_ms` it holds none;
//! - a synchronised learner outside the chain joins at the tail (lowest id first), once
//!   no removal is due: every member is a complete copy when it joins (Zab synchronised
//!   it), and the tail catches it up with what the chain wrote since;
//! - the head is the manager itself and never leaves (losing it is an election).

use std::collections::{BTreeMap, HashMap};

use super::ServerId;

#[derive(Debug)]
pub struct Manager {
    me: ServerId,
    lease_ms: u64,
    /// When each member last asked for a lease.
    last_ask: HashMap<ServerId, u64>,
    /// Members being removed, with the time their leases have surely run out.
    removing: BTreeMap<ServerId, u64>,
}

impl Manager {
    pub fn new(me: ServerId, lease_ms: u64) -> Self {
        Manager {
            me,
            lease_ms,
            last_ask: HashMap::new(),
            removing: BTreeMap::new(),
        }
    }

    /// `member` asked for a lease at `now`; whether it may get one.
    pub fn asked(&mut self, member: ServerId, now: u64) -> bool {
        self.last_ask.insert(member, now);
        !self.removing.contains_key(&member)
    }

    /// The configuration that follows `chain` (head first), if any: one change.
    pub fn next(
        &mut self,
        chain: &[ServerId],
        synced: &[ServerId],
        now: u64,
    ) -> Option<Vec<ServerId>> {
        debug_assert_eq!(chain.first(), Some(&self.me), "the manager heads its chain");
        for &m in chain
            .iter()
            .filter(|&&m| m != self.me && !synced.contains(&m))
        {
            // One that never asked holds no lease of this manager's.
            let deadline = self
                .last_ask
                .get(&m)
                .map_or(now, |asked| asked + self.lease_ms + 1);
            self.removing.entry(m).or_insert_with(|| {
                tracing::info!(
                    member = m,
                    wait_ms = deadline.saturating_sub(now),
                    "CRAQ: removing a lost member once its lease has run out"
                );
                deadline
            });
        }
        self.removing.retain(|m, _| chain.contains(m));
        let due = self
            .removing
            .iter()
            .find(|&(_, &at)| now >= at)
            .map(|(&m, _)| m);
        if let Some(m) = due {
            self.removing.remove(&m);
            self.last_ask.remove(&m);
            return Some(chain.iter().copied().filter(|&x| x != m).collect());
        }
        let joining = synced
            .iter()
            .copied()
            .filter(|m| !chain.contains(m) && *m != self.me)
            .min()?;
        let mut next = chain.to_vec();
        next.push(joining);
        Some(next)
    }

    /// Whether `member` is on its way out.
    pub fn removing(&self, member: ServerId) -> bool {
        self.removing.contains_key(&member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronised_learners_join_at_the_tail_one_at_a_time() {
        let mut m = Manager::new(1, 300);
        assert_eq!(m.next(&[1], &[3, 2], 0), Some(vec![1, 2]));
        assert_eq!(m.next(&[1, 2], &[3, 2], 0), Some(vec![1, 2, 3]));
        assert_eq!(m.next(&[1, 2, 3], &[3, 2], 0), None, "nothing to change");
    }

    #[test]
    fn a_lost_member_leaves_only_after_its_last_lease_ran_out() {
        let mut m = Manager::new(1, 300);
        assert!(m.asked(2, 1_000));
        // 2 is lost at 1,100: it may hold a lease until 1,300.
        assert_eq!(m.next(&[1, 2, 3], &[3], 1_100), None);
        assert!(!m.asked(2, 1_150), "no lease for a member on its way out");
        // Its ask at 1,150 got nothing, so the first one still bounds it.
        assert_eq!(m.next(&[1, 2, 3], &[3], 1_300), None);
        assert_eq!(m.next(&[1, 2, 3], &[3], 1_301), Some(vec![1, 3]));
        assert!(!m.removing(2));
        // It comes back synchronised: at the tail.
        assert_eq!(m.next(&[1, 3], &[3, 2], 2_000), Some(vec![1, 3, 2]));
    }

    #[test]
    fn removals_come_before_joins_and_a_member_that_never_asked_goes_at_once() {
        let mut m = Manager::new(1, 300);
        // 2 never asked for a lease (it holds none); 4 waits to join.
        assert_eq!(m.next(&[1, 2, 3], &[3, 4], 50), Some(vec![1, 3]));
        assert_eq!(m.next(&[1, 3], &[3, 4], 50), Some(vec![1, 3, 4]));
    }
}
