//! The thread budget: how many threads a process means to have, and what to do beyond it.

use crate::{BudgetKind, Error, Result, Share};

/// What happens when the hard limit of a [`ThreadBudget`] is crossed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadPolicy {
    /// Guarded spawns return `Err(SpawnError)`; the process carries on.
    #[default]
    Error,
    /// Guarded spawns return `Err` and the exhaustion callback is asked to end the process
    /// (the `crashguard` facade turns it into a graceful shutdown with exit code 81); the
    /// sampler's hard crossing does the same.
    Exit,
}

/// A budget of threads for one process.
///
/// `max` is the number of threads the service is sized for. The soft share (default 0.8) is an
/// early warning: the sampler calls back and leaves a breadcrumb once per crossing. The hard
/// share (default 1.0) is the limit: guarded spawns beyond it fail, and under
/// [`ThreadPolicy::Exit`] the process is asked to shut down.
///
/// The constructor and the setters never fail, so a budget reads naturally inside a
/// configuration chain; [`ThreadBudget::validate`] (called by [`install`](super::install) and by
/// `crashguard::Config::install`) rejects a zero budget or shares outside `(0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ThreadBudget {
    max: usize,
    soft: f64,
    hard: f64,
    policy: ThreadPolicy,
    count_process: bool,
}

impl ThreadBudget {
    /// A budget of `max` threads (must be at least 1, see [`ThreadBudget::validate`]).
    pub fn max(max: usize) -> Self {
        ThreadBudget {
            max,
            soft: 0.8,
            hard: 1.0,
            policy: ThreadPolicy::Error,
            count_process: false,
        }
    }

    /// The share of `max` at which the soft warning fires (default 0.8).
    pub fn soft_share(mut self, share: f64) -> Self {
        self.soft = share;
        self
    }

    /// The share of `max` beyond which spawns fail (default 1.0).
    pub fn hard_share(mut self, share: f64) -> Self {
        self.hard = share;
        self
    }

    /// What crossing the hard limit does (default [`ThreadPolicy::Error`]).
    pub fn policy(mut self, policy: ThreadPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Also refuse a guarded spawn when the process's real thread count (`Threads:` of
    /// `/proc/self/status`, which includes threads other libraries created) has reached the
    /// hard limit. Off by default: it costs one read of `/proc/self/status` per spawn, about
    /// as much as the spawn itself.
    pub fn count_process_threads(mut self, on: bool) -> Self {
        self.count_process = on;
        self
    }

    /// Checks the budget: `max >= 1`, both shares in `(0, 1]`, soft not above hard.
    pub fn validate(&self) -> Result<()> {
        if self.max == 0 {
            return Err(Error::ZeroThreads);
        }
        for (which, value) in [(Share::Soft, self.soft), (Share::Hard, self.hard)] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(Error::InvalidShare {
                    budget: BudgetKind::Threads,
                    which,
                    value,
                });
            }
        }
        if self.soft > self.hard {
            return Err(Error::SoftAboveHard {
                budget: BudgetKind::Threads,
                soft: self.soft,
                hard: self.hard,
            });
        }
        Ok(())
    }

    /// The configured maximum.
    pub fn max_threads(&self) -> usize {
        self.max
    }

    /// The thread count at which the soft warning fires: `ceil(max * soft)`, at least 1.
    pub fn soft_limit(&self) -> usize {
        share_of(self.max, self.soft).min(self.hard_limit())
    }

    /// The most threads allowed: `ceil(max * hard)`, at least 1.
    pub fn hard_limit(&self) -> usize {
        share_of(self.max, self.hard)
    }

    /// The policy at the hard limit.
    pub fn policy_kind(&self) -> ThreadPolicy {
        self.policy
    }

    /// Whether guarded spawns also check the process's real thread count.
    pub fn counts_process_threads(&self) -> bool {
        self.count_process
    }
}

fn share_of(max: usize, share: f64) -> usize {
    let share = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        1.0
    };
    // Budgets are far below 2^52, where f64 holds every integer exactly.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let n = (max as f64 * share).ceil() as usize;
    n.clamp(1, max.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults() {
        let b = ThreadBudget::max(256);
        assert!(b.validate().is_ok());
        assert_eq!(b.hard_limit(), 256);
        assert_eq!(b.soft_limit(), 205);
        assert_eq!(b.policy_kind(), ThreadPolicy::Error);
    }

    #[test]
    fn invalid_budgets() {
        assert!(matches!(
            ThreadBudget::max(0).validate(),
            Err(Error::ZeroThreads)
        ));
        assert!(ThreadBudget::max(4).soft_share(0.0).validate().is_err());
        assert!(ThreadBudget::max(4).hard_share(1.5).validate().is_err());
        assert!(
            ThreadBudget::max(4)
                .hard_share(f64::NAN)
                .validate()
                .is_err()
        );
        assert!(matches!(
            ThreadBudget::max(4)
                .soft_share(0.9)
                .hard_share(0.5)
                .validate(),
            Err(Error::SoftAboveHard {
                budget: BudgetKind::Threads,
                ..
            })
        ));
        assert!(matches!(
            ThreadBudget::max(4).hard_share(1.5).validate(),
            Err(Error::InvalidShare {
                budget: BudgetKind::Threads,
                which: Share::Hard,
                ..
            })
        ));
        assert_eq!(
            ThreadBudget::max(0).validate().unwrap_err().to_string(),
            "a thread budget must allow at least one thread"
        );
    }

    proptest! {
        #[test]
        fn limits_are_ordered(max in 1usize..1_000_000, soft in 0.001f64..=1.0, hard in 0.001f64..=1.0) {
            let b = ThreadBudget::max(max).soft_share(soft.min(hard)).hard_share(hard);
            prop_assert!(b.validate().is_ok());
            prop_assert!(b.soft_limit() >= 1);
            prop_assert!(b.soft_limit() <= b.hard_limit());
            prop_assert!(b.hard_limit() <= max);
        }
    }
}
