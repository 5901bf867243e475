//! `MemoryBudget`: how much memory the service may use, and when to act.
//!
//! A budget has a *base* in bytes and two shares of it:
//!
//! | constructor              | base                        | soft default | hard default |
//! |--------------------------|-----------------------------|--------------|--------------|
//! | `bytes(n)`               | `n`                         | 0.85         | 1.0 (= `n`)  |
//! | `cgroup_fraction(f)`     | `f` x the cgroup's limit    | 0.85         | 0.95         |
//! | `ram_fraction(f)`        | `f` x `MemTotal`            | 0.85         | 0.95         |
//!
//! The fraction forms keep a 5% margin below their base by default because they are enforced
//! by a sampler that looks every 100 ms: a service allocating 1 GiB/s grows by 100 MiB between
//! two looks, and the point is to act before the kernel does. The `bytes` form is meant for
//! the allocator, which checks every request, so its hard threshold is the budget itself.
//!
//! `cgroup_fraction` in a cgroup without a memory limit (or outside any memory cgroup) takes
//! the fraction of `MemTotal` instead, and says so in [`ResolvedBudget::note`]: a budget that
//! silently did nothing would be worse, and refusing to start on a developer machine without
//! limits would be unhelpful.

use super::probe::MemorySample;
use crate::error::{BudgetKind, Error, MissingLimit, Result, Share};
use crate::kernel::Limit;

/// Default soft share of the base.
pub const DEFAULT_SOFT: f64 = 0.85;
/// Default hard share of the base for the fraction forms.
pub const DEFAULT_HARD_FRACTION: f64 = 0.95;

/// How much memory the service may use; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryBudget {
    base: Base,
    soft: f64,
    hard: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Base {
    Bytes(u64),
    CgroupFraction(f64),
    RamFraction(f64),
}

/// What a budget's base was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetBasis {
    /// A fixed number of bytes.
    Bytes,
    /// A share of the cgroup's effective memory limit.
    Cgroup {
        /// The limit.
        limit_bytes: u64,
    },
    /// A share of physical memory.
    Ram {
        /// `MemTotal`.
        mem_total_bytes: u64,
    },
    /// `cgroup_fraction` found no cgroup limit and took the share of physical memory.
    RamFallback {
        /// `MemTotal`.
        mem_total_bytes: u64,
    },
}

/// The figure a budget is compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Live heap bytes counted by `BudgetAllocator`.
    Heap,
    /// Resident set size.
    Rss,
    /// The cgroup's usage minus its inactive page cache (see
    /// [`CgroupSample::working_set_bytes`](super::CgroupSample::working_set_bytes)).
    CgroupWorkingSet,
}

impl Measure {
    /// A short lowercase name for messages and breadcrumbs.
    pub fn name(self) -> &'static str {
        match self {
            Measure::Heap => "heap",
            Measure::Rss => "rss",
            Measure::CgroupWorkingSet => "cgroup working set",
        }
    }
}

/// A budget turned into byte thresholds against the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedBudget {
    /// The base in bytes.
    pub budget_bytes: u64,
    /// Crossing this calls the soft callback.
    pub soft_bytes: u64,
    /// Crossing this ends the process with the memory exit code.
    pub hard_bytes: u64,
    /// Where the base came from.
    pub basis: BudgetBasis,
    /// What the sampler compares with the thresholds.
    pub measure: Measure,
}

impl ResolvedBudget {
    /// A remark worth logging about how the budget was resolved, if any.
    pub fn note(&self) -> Option<&'static str> {
        match self.basis {
            BudgetBasis::RamFallback { .. } => Some(
                "no cgroup memory limit found; the budget is a fraction of physical memory instead",
            ),
            _ => None,
        }
    }

    /// The figure to compare against the thresholds in `sample`, with the measure it came
    /// from (it differs from [`Self::measure`] only when that figure is missing: then RSS).
    pub fn usage(&self, sample: &MemorySample) -> Option<(Measure, u64)> {
        let preferred = match self.measure {
            Measure::Heap => sample.heap_bytes,
            Measure::Rss => sample.rss_bytes,
            Measure::CgroupWorkingSet => sample.cgroup.as_ref().and_then(|c| c.working_set_bytes()),
        };
        match preferred {
            Some(v) => Some((self.measure, v)),
            None => sample.rss_bytes.map(|v| (Measure::Rss, v)),
        }
    }
}

impl MemoryBudget {
    /// A budget of `n` bytes; hard threshold `n`, soft 85% of it.
    pub fn bytes(n: u64) -> Self {
        MemoryBudget {
            base: Base::Bytes(n),
            soft: DEFAULT_SOFT,
            hard: 1.0,
        }
    }

    /// A budget of `fraction` of the cgroup's memory limit (`0 < fraction <= 1`).
    pub fn cgroup_fraction(fraction: f64) -> Self {
        MemoryBudget {
            base: Base::CgroupFraction(fraction),
            soft: DEFAULT_SOFT,
            hard: DEFAULT_HARD_FRACTION,
        }
    }

    /// A budget of `fraction` of physical memory (`0 < fraction <= 1`).
    pub fn ram_fraction(fraction: f64) -> Self {
        MemoryBudget {
            base: Base::RamFraction(fraction),
            soft: DEFAULT_SOFT,
            hard: DEFAULT_HARD_FRACTION,
        }
    }

    /// Sets the soft share of the base (`0 < share <= hard share`).
    pub fn soft(mut self, share: f64) -> Self {
        self.soft = share;
        self
    }

    /// Sets the hard share of the base (`0 < share <= 1`).
    pub fn hard(mut self, share: f64) -> Self {
        self.hard = share;
        self
    }

    /// The soft share.
    pub fn soft_share(&self) -> f64 {
        self.soft
    }

    /// The hard share.
    pub fn hard_share(&self) -> f64 {
        self.hard
    }

    /// The fixed byte count of a `bytes` budget; `None` for the fraction forms.
    pub fn fixed_bytes(&self) -> Option<u64> {
        match self.base {
            Base::Bytes(n) => Some(n),
            Base::CgroupFraction(_) | Base::RamFraction(_) => None,
        }
    }

    /// Checks the settings without looking at the machine.
    pub fn validate(&self) -> Result<()> {
        match self.base {
            Base::Bytes(0) => {
                return Err(Error::ZeroBytes);
            }
            Base::Bytes(_) => {}
            Base::CgroupFraction(f) => check_share(Share::CgroupFraction, f)?,
            Base::RamFraction(f) => check_share(Share::RamFraction, f)?,
        }
        check_share(Share::Soft, self.soft)?;
        check_share(Share::Hard, self.hard)?;
        if self.soft > self.hard {
            return Err(Error::SoftAboveHard {
                budget: BudgetKind::Memory,
                soft: self.soft,
                hard: self.hard,
            });
        }
        Ok(())
    }

    /// Turns the budget into byte thresholds using the limits in `sample`.
    pub fn resolve(&self, sample: &MemorySample) -> Result<ResolvedBudget> {
        self.validate()?;
        let ram = || {
            sample.mem_total_bytes.ok_or(Error::NoLimit {
                limit: MissingLimit::MemTotal,
            })
        };
        let (budget_bytes, basis, measure) = match self.base {
            Base::Bytes(n) => {
                let measure = if sample.heap_bytes.is_some() {
                    Measure::Heap
                } else {
                    Measure::Rss
                };
                (n, BudgetBasis::Bytes, measure)
            }
            Base::CgroupFraction(f) => match sample.cgroup.as_ref().map(|c| c.limit) {
                Some(Limit::Value(limit)) => (
                    scale(limit, f),
                    BudgetBasis::Cgroup { limit_bytes: limit },
                    Measure::CgroupWorkingSet,
                ),
                Some(Limit::Unlimited) | None => {
                    let total = ram()?;
                    (
                        scale(total, f),
                        BudgetBasis::RamFallback {
                            mem_total_bytes: total,
                        },
                        Measure::Rss,
                    )
                }
            },
            Base::RamFraction(f) => {
                let total = ram()?;
                (
                    scale(total, f),
                    BudgetBasis::Ram {
                        mem_total_bytes: total,
                    },
                    Measure::Rss,
                )
            }
        };
        let hard_bytes = scale(budget_bytes, self.hard);
        let soft_bytes = scale(budget_bytes, self.soft);
        if soft_bytes == 0 {
            return Err(Error::ResolvesToZero {
                base_bytes: budget_bytes,
            });
        }
        Ok(ResolvedBudget {
            budget_bytes,
            soft_bytes,
            hard_bytes,
            basis,
            measure,
        })
    }
}

fn check_share(which: Share, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidShare {
            budget: BudgetKind::Memory,
            which,
            value,
        })
    }
}

/// `n x f` rounded down; exact for `f == 1` (an `f64` cannot hold every `u64`).
fn scale(n: u64, f: f64) -> u64 {
    if f >= 1.0 {
        n
    } else {
        // Float-to-int `as` saturates and maps NaN to 0; `f` was validated anyway.
        (n as f64 * f) as u64
    }
}
