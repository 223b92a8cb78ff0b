//! A participant's points as they can use them: the balance is the sum of the ledger; of it,
//! points still in their lock period are pending, and points past their expiry date are
//! gone even before the expiry entry that records it is written.
//!
//! Lots live on the profile as counters: `pend@{date}` (deposited on that date) and
//! `exp@{date}` (valid through that date).

use super::engine::{EXPIRY_LOT, PENDING_LOT};
use serde::Serialize;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
