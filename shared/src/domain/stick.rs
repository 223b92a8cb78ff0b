//! The stick: the non-use policy a monthly close applies to each rep.
//!
//! Fewer than `notice_below` logins in a month puts a rep on notice and tells their manager. A
//! month with none is a strike: the first gives a one-time notice and puts the rep on the
//! to-be-suspended list, the second suspends (or terminates) the account. With
//! `forgive_after_months`, a strike older than that many months is forgotten.

use super::error::FieldErrors;
use super::rules::Fields;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What counts as a login for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    /// Distinct days with a login.
    LoginDays,
    /// Every `portal.login` event.
    Logins,
}

/// What the second strike does to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sanction {
    Suspend,
    Terminate,
}

impl Sanction {
    /// The participant status it sets.
    pub fn status(self) -> &'static str {
        match self {
            Sanction::Suspend => "suspended",
            Sanction::Terminate => "terminated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NonUse {
    pub usage: Usage,
    /// Fewer logins than this in a month is a notice (0: no notices, only strikes).
    pub notice_below: i64,
    pub notify_manager: bool,
    /// Reps enrolled fewer than this many days before the month's end are not judged yet.
    pub grace_days: i64,
    pub sanction: Sanction,
    /// A strike this many months old or older is forgotten (0: never).
    pub forgive_after_months: i64,
}

impl NonUse {
    pub(crate) fn parse(value: &Value, path: &str, errors: &mut FieldErrors) -> Option<NonUse> {
        let f = Fields::of(
            value,
            path,
            &[
                "usage",
                "notice_below",
                "notify_manager",
                "grace_days",
                "second_strike",
                "forgive_after_months",
            ],
            errors,
        )?;
        let usage = match f.get("usage").map(|v| v.as_str()) {
            None | Some(Some("login_days")) => Usage::LoginDays,
            Some(Some("logins")) => Usage::Logins,
            Some(_) => {
                errors.push(
                    f.at("usage"),
                    format!(
                        "must be \"login_days\" or \"logins\", got {}",
                        f.get("usage").expect("present")
                    ),
                );
                Usage::LoginDays
            }
        };
        let sanction = match f.get("second_strike").map(|v| v.as_str()) {
            None | Some(Some("suspend")) => Sanction::Suspend,
            Some(Some("terminate")) => Sanction::Terminate,
            Some(_) => {
                errors.push(
                    f.at("second_strike"),
                    format!(
                        "must be \"suspend\" or \"terminate\", got {}",
                        f.get("second_strike").expect("present")
                    ),
                );
                Sanction::Suspend
            }
        };
        Some(NonUse {
            usage,
            notice_below: f
                .int("notice_below", 0..=31 * 100, false, errors)
                .unwrap_or(0),
            notify_manager: f.get("notify_manager").is_none() || f.flag("notify_manager", errors),
            grace_days: f.int("grace_days", 0..=365, false, errors).unwrap_or(14),
            sanction,
            forgive_after_months: f
                .int("forgive_after_months", 0..=120, false, errors)
                .unwrap_or(0),
        })
    }

    /// The verdict on one rep's month. `None`: not judged (not active, or enrolled within the
    /// grace days), or fine.
    pub fn judge(&self, rep: &Conduct) -> Option<Verdict> {
        if !rep.active || rep.days_enrolled < self.grace_days {
            return None;
        }
        let usage = match self.usage {
            Usage::LoginDays => rep.login_days,
            Usage::Logins => rep.logins,
        };
        if usage > 0 {
            return (usage < self.notice_below).then_some(Verdict::Notice);
        }
        let standing = match rep.last_strike_months_ago {
            Some(ago) if self.forgive_after_months == 0 || ago < self.forgive_after_months => {
                rep.strikes
            }
            _ => 0,
        };
        Some(if standing == 0 {
            Verdict::FirstStrike
        } else {
            Verdict::Sanctioned(self.sanction)
        })
    }
}

/// What the policy reads of a rep's month.
#[derive(Debug, Clone, PartialEq)]
pub struct Conduct {
    pub active: bool,
    /// Days from enrolment to the end of the month.
    pub days_enrolled: i64,
    pub login_days: i64,
    pub logins: i64,
    /// Strikes so far, and how many months before this one the last was given.
    pub strikes: i64,
    pub last_strike_months_ago: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Some logins, fewer than required: a notice, and the manager is told.
    Notice,
    /// No login, no standing strike: a one-time notice and the to-be-suspended list.
    FirstStrike,
    /// No login with a strike standing: the account is suspended or terminated.
    Sanctioned(Sanction),
}

impl Verdict {
    /// The notification kind the rep receives.
    pub fn notice_kind(self) -> &'static str {
        match self {
            Verdict::Notice => "non_use.notice",
            Verdict::FirstStrike => "non_use.first_strike",
            Verdict::Sanctioned(Sanction::Suspend) => "non_use.suspended",
            Verdict::Sanctioned(Sanction::Terminate) => "non_use.terminated",
        }
    }
}

/// Whole months from `from` to `to` (`2026-09` to `2026-11` is 2).
pub fn months_between(from: &str, to: &str) -> Option<i64> {
    let parse = |m: &str| -> Option<i64> {
        let (y, mo) = m.split_once('-')?;
        Some(y.parse::<i64>().ok()? * 12 + mo.parse::<i64>().ok()? - 1)
    };
    Some(parse(to)? - parse(from)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(value: Value) -> NonUse {
        let mut errors = FieldErrors::default();
        let policy = NonUse::parse(&value, "non_use", &mut errors).unwrap();
        assert!(errors.is_empty(), "{:?}", errors.0);
        policy
    }

    fn rep(login_days: i64, strikes: i64, ago: Option<i64>) -> Conduct {
        Conduct {
            active: true,
            days_enrolled: 100,
            login_days,
            logins: login_days * 2,
            strikes,
            last_strike_months_ago: ago,
        }
    }

    #[test]
    fn the_ladder_notices_then_strikes_then_sanctions() {
        let p = policy(json!({"notice_below": 4}));
        assert_eq!(p.judge(&rep(5, 0, None)), None);
        assert_eq!(p.judge(&rep(2, 0, None)), Some(Verdict::Notice));
        assert_eq!(p.judge(&rep(0, 0, None)), Some(Verdict::FirstStrike));
        assert_eq!(
            p.judge(&rep(0, 1, Some(1))),
            Some(Verdict::Sanctioned(Sanction::Suspend))
        );
        // Without forgiveness, a strike years ago still stands.
        assert_eq!(
            p.judge(&rep(0, 1, Some(30))),
            Some(Verdict::Sanctioned(Sanction::Suspend))
        );
    }

    #[test]
    fn forgiveness_grace_and_status_spare_a_rep() {
        let p = policy(
            json!({"second_strike": "terminate", "forgive_after_months": 6,
            "grace_days": 20, "usage": "logins"}),
        );
        assert_eq!(p.judge(&rep(0, 1, Some(6))), Some(Verdict::FirstStrike));
        assert_eq!(
            p.judge(&rep(0, 1, Some(5))),
            Some(Verdict::Sanctioned(Sanction::Terminate))
        );
        let new = Conduct {
            days_enrolled: 19,
            ..rep(0, 0, None)
        };
        assert_eq!(p.judge(&new), None);
        let suspended = Conduct {
            active: false,
            ..rep(0, 1, Some(1))
        };
        assert_eq!(p.judge(&suspended), None);
    }

    #[test]
    fn bad_policies_name_their_fields() {
        let mut errors = FieldErrors::default();
        NonUse::parse(
            &json!({"usage": "clicks", "second_strike": "ban", "grace_days": -1}),
            "non_use",
            &mut errors,
        );
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "non_use.usage",
                "non_use.second_strike",
                "non_use.grace_days"
            ]
        );
    }

    #[test]
    fn months_between_counts_across_years() {
        assert_eq!(months_between("2025-11", "2026-02"), Some(3));
    }
}
