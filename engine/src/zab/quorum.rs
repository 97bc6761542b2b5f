//! Quorum arithmetic: how many voters make a majority, and the highest zxid a majority
//! has made durable (the commit point).
//!
//! Observers never vote, so callers pass only the voters' acknowledged zxids (the
//! leader's own durable zxid included). Acks are cumulative: a voter at zxid `z` has
//! every proposal up to `z` durable, so "a majority has `z`" means at least a majority
//! of the values are `>= z`, and the commit point is the majority-th largest value.

use super::Zxid;

/// The smallest number of voters that is more than half of `voters`.
pub const fn majority(voters: usize) -> usize {
    voters / 2 + 1
}

/// The highest zxid that at least `quorum` of the `acked` values reach (0 when
/// `quorum` is 0 or more than there are values). Reorders `acked` (it selects in
/// place: O(n), no allocation).
pub fn commit_point(acked: &mut [Zxid], quorum: usize) -> Zxid {
    if quorum == 0 || quorum > acked.len() {
        return 0;
    }
    // The quorum-th largest value: at least `quorum` values are >= it.
    let (_, kth, _) = acked.select_nth_unstable_by(quorum - 1, |a, b| b.cmp(a));
    *kth
}

/// Whether at least `quorum` of `acked` reach `zxid` (the independent check the
/// leader's debug assertions use).
pub fn reached_by(acked: &[Zxid], zxid: Zxid, quorum: usize) -> bool {
    acked.iter().filter(|&&a| a >= zxid).count() >= quorum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_of_small_ensembles() {
        assert_eq!(majority(1), 1);
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
        assert_eq!(majority(7), 4);
    }

    #[test]
    fn three_voters_commit_what_two_have() {
        assert_eq!(commit_point(&mut [5, 3, 9], majority(3)), 5);
        assert_eq!(commit_point(&mut [0, 0, 9], majority(3)), 0);
        assert_eq!(commit_point(&mut [4, 4, 0], majority(3)), 4);
        assert_eq!(commit_point(&mut [7, 7, 7], majority(3)), 7);
    }

    #[test]
    fn five_voters_commit_what_three_have() {
        assert_eq!(commit_point(&mut [10, 1, 8, 3, 6], majority(5)), 6);
        assert_eq!(commit_point(&mut [10, 0, 0, 0, 9], majority(5)), 0);
        assert_eq!(commit_point(&mut [2, 2, 2, 0, 0], majority(5)), 2);
    }

    #[test]
    fn single_voter_commits_its_own() {
        assert_eq!(commit_point(&mut [3], majority(1)), 3);
    }

    #[test]
    fn degenerate_quorums_commit_nothing() {
        assert_eq!(commit_point(&mut [], 1), 0);
        assert_eq!(commit_point(&mut [5], 0), 0);
        assert_eq!(commit_point(&mut [5, 6], 3), 0);
    }

    #[test]
    fn commit_point_agrees_with_the_direct_count() {
        // Every vector over a small alphabet: the point is reached, the next is not.
        for n in 1..=5usize {
            let q = majority(n);
            for code in 0..4usize.pow(n as u32) {
                let acked: Vec<Zxid> = (0..n).map(|i| ((code >> (2 * i)) & 3) as Zxid).collect();
                let p = commit_point(&mut acked.clone(), q);
                assert!(reached_by(&acked, p, q), "{acked:?} -> {p}");
                assert!(!reached_by(&acked, p + 1, q), "{acked:?} -> {p}");
            }
        }
    }
}
