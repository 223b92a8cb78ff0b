//! A participant's points as they can use them: the balance is the sum of the ledger; of it,
//! points still in their lock period are pending, and points past their expiry date are
//! gone even before the expiry entry that records it is written.
//!
//! Lots live on the profile as counters: `pend@{date}` (deposited on that date) and
//! `exp@{date}` (valid through that date).

use super::engine::{Added, EXPIRY_LOT, PENDING_LOT, Scope};
use super::ledger::{EntryStatus, EventRecord};
use super::period::Periods;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Wallet {
    /// The sum of every ledger entry.
    pub balance: i64,
    /// Spendable now.
    pub available: i64,
    /// Waiting for their deposit day.
    pub pending: i64,
    /// Past their expiry date, not yet recorded as expired in the ledger.
    pub expired: i64,
    /// Deposit day → points, for pending lots.
    pub deposits: BTreeMap<String, i64>,
    /// Expiry date → points still valid until then.
    pub expiring: BTreeMap<String, i64>,
}

impl Wallet {
    /// The wallet on `today` (`2026-11-22`, in the program's time zone).
    pub fn of(balance: i64, profile_counters: &HashMap<String, i64>, today: &str) -> Self {
        let mut wallet = Wallet {
            balance,
            ..Wallet::default()
        };
        for (name, &points) in profile_counters {
            if points <= 0 {
                continue;
            }
            if let Some(date) = name.strip_prefix(PENDING_LOT)
                && date > today
            {
                wallet.pending += points;
                *wallet.deposits.entry(date.to_owned()).or_default() += points;
            } else if let Some(date) = name.strip_prefix(EXPIRY_LOT) {
                if date < today {
                    wallet.expired += points;
                } else {
                    *wallet.expiring.entry(date.to_owned()).or_default() += points;
                }
            }
        }
        // Penalties and clawbacks can leave less than the lots add up to.
        wallet.expired = wallet.expired.min((balance - wallet.pending).max(0));
        wallet.available = (balance - wallet.pending - wallet.expired).max(0);
        wallet
    }

    /// Lots past their date: `(counter name, points)` the next award turns into expiry
    /// entries, oldest first, never more than the balance leaves.
    pub fn expired_lots(
        balance: i64,
        profile_counters: &HashMap<String, i64>,
        today: &str,
    ) -> Vec<(String, i64, i64)> {
        let wallet = Wallet::of(balance, profile_counters, today);
        let mut lots: Vec<(&String, i64)> = profile_counters
            .iter()
            .filter(|(name, points)| {
                **points > 0
                    && name
                        .strip_prefix(EXPIRY_LOT)
                        .is_some_and(|date| date < today)
            })
            .map(|(name, points)| (name, *points))
            .collect();
        lots.sort();
        let mut left = wallet.expired;
        lots.into_iter()
            .map(|(name, stored)| {
                let expires = stored.min(left);
                left -= expires;
                (name.clone(), stored, expires)
            })
            .collect()
    }
}

/// A participant as a spend sees them: who they are, their balance and their wallet lots.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Holder {
    pub participant: String,
    pub status: String,
    pub role: String,
    #[serde(default)]
    pub tier: Option<String>,
    pub distributor: String,
    /// `partner` for an account that holds a partner's points for its team.
    #[serde(default)]
    pub account: Option<String>,
    pub balance: i64,
    /// The profile's numeric attributes: the wallet lots (`pend@…`, `exp@…`) among them.
    #[serde(skip)]
    pub counters: HashMap<String, i64>,
}

impl Holder {
    pub fn is_partner(&self) -> bool {
        self.account.as_deref() == Some("partner")
    }

    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    pub fn wallet(&self, today: &str) -> Wallet {
        Wallet::of(self.balance, &self.counters, today)
    }

    /// Plans a spend of `points` on `today`: see [`Wallet::debit`].
    pub fn debit(&self, today: &str, points: i64) -> Result<Debit, Shortfall> {
        Wallet::debit(self.balance, &self.counters, today, points)
    }
}

/// How a spend of points is written: the balance must still be at least `floor` when the
/// write lands, and the expiry lots named lose what the spend takes from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debit {
    pub points: i64,
    /// `points` plus what the balance holds back as read (pending and expired points). A
    /// concurrent credit, deposit or expiry only raises what the balance must clear, or
    /// leaves it exact: the condition `balance >= floor` never lets available points go
    /// below zero.
    pub floor: i64,
    /// The expiry lots the spend empties, oldest first, each as a negative addition (the
    /// ledger record keeps them, so a refund gives the same lots back).
    pub lots: Vec<Added>,
}

/// A spend refused: what the participant could spend, and what it needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub available: i64,
    pub needed: i64,
}

impl Wallet {
    /// Plans a spend of `points` (> 0) from the wallet as read on `today`. Points that expire
    /// soonest go first, so a later expiry never takes points already spent; points that do
    /// not expire (no lot) go last.
    pub fn debit(
        balance: i64,
        profile_counters: &HashMap<String, i64>,
        today: &str,
        points: i64,
    ) -> Result<Debit, Shortfall> {
        let wallet = Wallet::of(balance, profile_counters, today);
        if points > wallet.available {
            return Err(Shortfall {
                available: wallet.available,
                needed: points,
            });
        }
        let mut left = points;
        let mut lots = Vec::new();
        for (date, &held) in &wallet.expiring {
            if left == 0 {
                break;
            }
            let taken = held.min(left);
            left -= taken;
            lots.push(Added {
                scope: Scope::Profile,
                name: format!("{EXPIRY_LOT}{date}"),
                by: -taken,
            });
        }
        Ok(Debit {
            points,
            floor: points + (balance - wallet.available),
            lots,
        })
    }
}

/// A ledger entry that moves points by a participant's own action (an order, a refund, a
/// transfer, a spin): keyed by its cause, counted on the day and month it happened in the
/// program's time zone, never toward leaderboards (no month item changes).
pub struct Entry<'a> {
    pub event_id: String,
    pub participant: &'a str,
    pub points: i64,
    pub event_type: &'a str,
    /// Expiry lots the entry moves (negative for a spend), kept so it can be undone exactly.
    pub lots: Vec<Added>,
    pub attributes: Map<String, Value>,
    pub note: Option<String>,
}

impl Entry<'_> {
    pub fn record(self, at: Timestamp, zone: &TimeZone) -> EventRecord {
        let periods = Periods::of(at, zone);
        EventRecord {
            event_id: self.event_id,
            participant: self.participant.to_owned(),
            status: EntryStatus::Awarded,
            points: self.points,
            rules: Vec::new(),
            config: None,
            adds: self.lots,
            pending_until: None,
            expires_on: None,
            event_type: Some(self.event_type.to_owned()),
            occurred_at: Some(at.to_string()),
            received_at: Some(at.to_string()),
            month: Some(periods.month),
            day: Some(periods.day),
            attributes: Some(self.attributes),
            reverses: None,
            reversed_by: None,
            note: self.note,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counters(lots: &[(&str, i64)]) -> HashMap<String, i64> {
        lots.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn pending_waits_for_its_day_and_expired_points_are_gone() {
        let lots = counters(&[
            ("pend@2026-11-30", 300),
            ("pend@2026-11-16", 50), // deposited already
            ("exp@2026-10-31", 120), // expired
            ("exp@2028-11-30", 530),
            ("p:daily-login", 40), // not a lot
        ]);
        let wallet = Wallet::of(650, &lots, "2026-11-22");
        assert_eq!(wallet.pending, 300);
        assert_eq!(wallet.expired, 120);
        assert_eq!(wallet.available, 650 - 300 - 120);
        assert_eq!(
            wallet.deposits,
            BTreeMap::from([("2026-11-30".into(), 300)])
        );
        assert_eq!(
            wallet.expiring,
            BTreeMap::from([("2028-11-30".into(), 530)])
        );
        // The last valid day still counts as valid.
        assert_eq!(Wallet::of(650, &lots, "2026-10-31").expired, 0);
    }

    #[test]
    fn expiry_never_takes_more_than_the_balance_leaves() {
        // 200 earned and expired, but a 150 penalty already took most of it.
        let lots = counters(&[("exp@2026-10-31", 200)]);
        let wallet = Wallet::of(50, &lots, "2026-11-22");
        assert_eq!((wallet.expired, wallet.available), (50, 0));
        assert_eq!(
            Wallet::expired_lots(50, &lots, "2026-11-22"),
            vec![("exp@2026-10-31".to_owned(), 200, 50)]
        );
    }

    #[test]
    fn a_spend_takes_the_soonest_expiring_points_first_and_never_pending_ones() {
        let lots = counters(&[
            ("pend@2026-11-30", 300),
            ("exp@2026-10-31", 120), // expired: not spendable
            ("exp@2027-01-31", 100),
            ("exp@2026-12-31", 80),
        ]);
        // 300 pending + 120 expired + 180 in live lots + 100 that never expire.
        let balance = 700;
        assert_eq!(
            Wallet::debit(balance, &lots, "2026-11-22", 281),
            Err(Shortfall {
                available: 280,
                needed: 281
            })
        );
        let debit = Wallet::debit(balance, &lots, "2026-11-22", 150).unwrap();
        assert_eq!(debit.floor, 150 + 300 + 120);
        let taken: Vec<(&str, i64)> = debit.lots.iter().map(|a| (a.name.as_str(), a.by)).collect();
        assert_eq!(
            taken,
            vec![("exp@2026-12-31", -80), ("exp@2027-01-31", -70)]
        );
        // Beyond the lots, the points that never expire.
        let debit = Wallet::debit(balance, &lots, "2026-11-22", 280).unwrap();
        assert_eq!(debit.lots.iter().map(|a| a.by).sum::<i64>(), -180);
    }

    proptest! {
        /// A spend never takes more than is available; once written, exactly the spent points
        /// are gone from what is available, pending and expired points are untouched, and no
        /// later lot is touched while an earlier one still holds points.
        #[test]
        fn a_debit_never_overdraws_and_empties_lots_oldest_first(
            lots in proptest::collection::btree_map(
                (0usize..2, 1u8..28),
                0i64..500,
                0..8,
            ),
            extra in -200i64..500,
            points in 1i64..2_000,
        ) {
            let counters: HashMap<String, i64> = lots
                .iter()
                .map(|((kind, day), p)| {
                    let prefix = if *kind == 0 { PENDING_LOT } else { EXPIRY_LOT };
                    (format!("{prefix}2026-11-{day:02}"), *p)
                })
                .collect();
            let today = "2026-11-14";
            let balance = (counters.values().sum::<i64>() + extra).max(0);
            let before = Wallet::of(balance, &counters, today);
            match Wallet::debit(balance, &counters, today, points) {
                Err(shortfall) => {
                    prop_assert!(points > before.available);
                    prop_assert_eq!(shortfall.available, before.available);
                }
                Ok(debit) => {
                    prop_assert!(points <= before.available);
                    prop_assert_eq!(debit.floor, points + balance - before.available);
                    prop_assert!(balance >= debit.floor);
                    let mut after = counters.clone();
                    for lot in &debit.lots {
                        let held = after.get_mut(&lot.name).unwrap();
                        prop_assert!(lot.by < 0 && *held >= -lot.by);
                        *held += lot.by;
                    }
                    let taken: i64 = debit.lots.iter().map(|a| -a.by).sum();
                    prop_assert!(taken <= points);
                    let wallet = Wallet::of(balance - points, &after, today);
                    prop_assert_eq!(wallet.available, before.available - points);
                    prop_assert_eq!(wallet.pending, before.pending);
                    prop_assert_eq!(wallet.expired, before.expired);
                    // Every lot before the last one touched is empty.
                    if let Some(last) = debit.lots.last() {
                        for (date, held) in &wallet.expiring {
                            if format!("{EXPIRY_LOT}{date}") < last.name {
                                prop_assert_eq!(*held, 0);
                            }
                        }
                    }
                }
            }
        }
    }
}
