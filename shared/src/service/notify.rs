//! The notification sender: turns each queued request into at most one email or SMS, and
//! records the provider's feedback (deliveries, opens, bounces, complaints).
//!
//! A request's id is its idempotency key. The sender decides (preferences, suppression,
//! quiet hours, frequency caps), renders, then claims the id in the delivery log before it
//! calls the provider and marks it sent after; a redelivery finds the entry and stops. A
//! provider failure gives the claim back, so the retry can send. A sender that dies between
//! the provider's answer and the log write leaves the claim `sending`: SES's `Send` event for
//! the email marks it sent, so the redelivery does not mail again.

use crate::domain::message::{
    Accepted, Channel, Claim, Decision, DeliveryEntry, DeliveryStatus, NotificationRequest,
    Recipient, email_tags, parse_ses_event, parse_ses_send, unsubscribe_token,
};
use crate::domain::mime::{Mailbox, build_email};
use crate::domain::program::Program;
use crate::domain::template::{MessageContext, render};
use crate::ports::{
    Clock, DeliveryStore, FeedbackStore, Mailer, OutgoingEmail, PortError, ProgramReader,
    SmsSender, TokenSecret,
};
use jiff::{SignedDuration, Timestamp};

/// A `Sending` entry this old with no word from the provider is taken to have failed before
/// the provider accepted it, and is sent again. Shorter than the queue's retries last
/// (5 receives, 60 s apart), so the message is not dead-lettered meanwhile; far longer than
/// SES takes to publish an accepted email's `Send` event, which settles the entry as sent.
const SETTLE: SignedDuration = SignedDuration::from_secs(150);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent(Channel),
    /// The request was already handled (sent, skipped, or still deferred).
    Duplicate,
    Skipped(String),
    Deferred(Timestamp),
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The request can never be sent as it is (left for the dead-letter queue).
    #[error("unprocessable request: {0}")]
    Unprocessable(String),
    #[error("program {0} has no configuration")]
    NoProgram(String),
    /// Another delivery of the same request is sending it right now: retry later.
    #[error("request {0} is being sent by another delivery")]
    InFlight(String),
    #[error(transparent)]
    Store(#[from] PortError),
}

pub struct Sender<S, P, M, T, K, C> {
    pub store: S,
    pub programs: P,
    pub mailer: M,
    pub sms: T,
    pub secret: K,
    pub clock: C,
    /// The verified SES identity mail is sent from.
    pub from_email: String,
    /// Where the API is served (unsubscribe links point there), without a trailing slash.
    pub api_base_url: String,
}

impl<S, P, M, T, K, C> Sender<S, P, M, T, K, C>
where
    S: DeliveryStore + FeedbackStore,
    P: ProgramReader,
    M: Mailer,
    T: SmsSender,
    K: TokenSecret,
    C: Clock,
{
    /// Handles one notifications-queue message. Safe to call any number of times.
    pub async fn send(&self, body: &str) -> Result<Outcome, NotifyError> {
        let request: NotificationRequest = serde_json::from_str(body)
            .map_err(|e| NotifyError::Unprocessable(format!("not a notification request: {e}")))?;
        let now = self.clock.now();
        let program = self
            .programs
            .versions(&request.program)
            .await?
            .map(|v| v.latest().clone())
            .ok_or_else(|| NotifyError::NoProgram(request.program.clone()))?;
        let entry = |status| entry_of(&request, status);
        let Some((participant, prefs)) = self
            .store
            .recipient(&request.program, &request.participant)
            .await?
        else {
            // Nobody to write a log entry for: nothing to send, nothing to keep.
            return Ok(Outcome::Skipped("not_enrolled".into()));
        };
        let existing = self
            .store
            .delivery(&request.program, &request.participant, &request.id)
            .await?;
        let settled = existing.as_ref().map(|e| self.settled(e, now));
        match settled {
            Some(Settled::Done) => return Ok(Outcome::Duplicate),
            Some(Settled::Pending) => return Err(NotifyError::InFlight(request.id.clone())),
            Some(Settled::Retry | Settled::Due) | None => {}
        }
        let decision = crate::domain::message::decide(
            &request,
            &participant.profile,
            &participant.status,
            &prefs,
            &program.notifications,
            now,
        );
        if let (Some(Settled::Retry), Some(stale)) = (settled, &existing) {
            // The stale claim counted a nudge: give it back with the claim, so the resend
            // counts it once.
            let cap = match &decision {
                Decision::Send { cap, .. } => cap.as_ref().map(|(week, max)| (week.as_str(), *max)),
                _ => None,
            };
            self.store
                .unclaim(&request.program, &request.participant, stale, cap)
                .await?;
        }
        // A number that replied STOP is skipped now, not deferred to the morning first.
        if request.channel == Channel::Sms
            && !matches!(decision, Decision::Skip(_))
            && let Some(phone) = &participant.profile.phone
            && self.sms.opted_out(phone).await?
        {
            return self.skip(&request, "opted_out").await;
        }
        let (address, cap) = match decision {
            Decision::Skip(reason) => return self.skip(&request, reason.as_str()).await,
            Decision::Defer(until) => {
                let deferred = entry(DeliveryStatus::Deferred {
                    until: until.to_string(),
                });
                return match self
                    .store
                    .defer(&request.program, &request.participant, &deferred, body)
                    .await
                {
                    Ok(()) => Ok(Outcome::Deferred(until)),
                    Err(PortError::ConditionFailed) => Ok(Outcome::Duplicate),
                    Err(e) => Err(e.into()),
                };
            }
            Decision::Send { address, cap } => (address, cap),
        };
        let message = self
            .compose(&request, &program, &participant.profile, &address)
            .await?;
        let claim = entry(DeliveryStatus::Sending {
            since: now.to_string(),
        });
        let cap = cap.as_ref().map(|(week, max)| (week.as_str(), *max));
        match self
            .store
            .claim(&request.program, &request.participant, &claim, cap)
            .await?
        {
            Claim::Claimed => {}
            Claim::Exists(_) => return Ok(Outcome::Duplicate),
            Claim::CapReached => return self.skip(&request, "capped").await,
        }
        let sent = match &message {
            Composed::Email(email) => self.mailer.send_email(email).await,
            Composed::Sms(text) => self.sms.send_sms(&address, text, !request.essential).await,
        };
        let provider_id = match sent {
            Ok(id) => id,
            Err(error) => {
                self.store
                    .unclaim(&request.program, &request.participant, &claim, cap)
                    .await?;
                return Err(match error {
                    PortError::Permanent(reason) => NotifyError::Unprocessable(reason),
                    other => other.into(),
                });
            }
        };
        let done = entry(DeliveryStatus::Sent {
            at: self.clock.now().to_string(),
            provider_id,
        });
        match self
            .store
            .mark_sent(&request.program, &request.participant, &done)
            .await
        {
            // No longer `sending`: SES's `Send` event was recorded first.
            Ok(()) | Err(PortError::ConditionFailed) => Ok(Outcome::Sent(request.channel)),
            Err(e) => Err(e.into()),
        }
    }

    /// Handles one message of the email-events queue (SES events through SNS). `Ok(true)`:
    /// something was recorded.
    pub async fn feedback(&self, body: &str) -> Result<bool, NotifyError> {
        if let Some(accepted) = parse_ses_send(body).map_err(NotifyError::Unprocessable)? {
            return self.accepted(&accepted).await;
        }
        match parse_ses_event(body).map_err(NotifyError::Unprocessable)? {
            Some(feedback) => {
                self.store.record(&feedback).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// SES accepted an email: a claim still `sending` (its sender has not logged SES's answer
    /// yet, or died before it could) is marked sent with SES's message id, as the sender
    /// would have.
    async fn accepted(&self, accepted: &Accepted) -> Result<bool, NotifyError> {
        let Some(claim) = self
            .store
            .delivery(&accepted.program, &accepted.participant, &accepted.id)
            .await?
            .filter(|entry| matches!(entry.status, DeliveryStatus::Sending { .. }))
        else {
            // Already marked sent by its sender (the usual case), or not a message of the log.
            return Ok(false);
        };
        let done = DeliveryEntry {
            status: DeliveryStatus::Sent {
                at: accepted.at.clone(),
                provider_id: accepted.message_id.clone(),
            },
            ..claim
        };
        match self
            .store
            .mark_sent(&accepted.program, &accepted.participant, &done)
            .await
        {
            Ok(()) => Ok(true),
            // The sender marked it meanwhile.
            Err(PortError::ConditionFailed) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn settled(&self, existing: &DeliveryEntry, now: Timestamp) -> Settled {
        match &existing.status {
            DeliveryStatus::Sent { .. } | DeliveryStatus::Skipped { .. } => Settled::Done,
            DeliveryStatus::Deferred { until } => {
                match until.parse::<Timestamp>() {
                    // The deferral is released to the queue when it is due; an early copy waits.
                    Ok(until) if until > now => Settled::Done,
                    _ => Settled::Due,
                }
            }
            // The provider accepted it (it reported a delivery or a bounce): sent.
            DeliveryStatus::Sending { .. }
                if existing.delivered_at.is_some() || existing.bounced_at.is_some() =>
            {
                Settled::Done
            }
            DeliveryStatus::Sending { since } => match since.parse::<Timestamp>() {
                Ok(since) if now.duration_since(since) < SETTLE => Settled::Pending,
                _ => Settled::Retry,
            },
        }
    }

    /// Records a final skip for `reason`; a duplicate when an entry appeared meanwhile.
    async fn skip(
        &self,
        request: &NotificationRequest,
        reason: &str,
    ) -> Result<Outcome, NotifyError> {
        let skipped = entry_of(
            request,
            DeliveryStatus::Skipped {
                reason: reason.to_owned(),
            },
        );
        match self
            .store
            .skip(&request.program, &request.participant, &skipped)
            .await
        {
            Ok(()) => Ok(Outcome::Skipped(reason.to_owned())),
            Err(PortError::ConditionFailed) => Ok(Outcome::Duplicate),
            Err(e) => Err(e.into()),
        }
    }

    async fn compose(
        &self,
        request: &NotificationRequest,
        program: &Program,
        profile: &crate::domain::participant::Profile,
        address: &str,
    ) -> Result<Composed, NotifyError> {
        let config = &program.notifications;
        let unsubscribe_url = if request.essential || request.recipient == Recipient::Manager {
            None
        } else {
            let secret = self.secret.secret().await?;
            let token = unsubscribe_token(&secret, &request.program, &request.participant);
            Some(format!(
                "{}/v1/unsubscribe?token={token}",
                self.api_base_url
            ))
        };
        let locale = config.locale_for(&profile.locale, &program.locale);
        let context = MessageContext::new(
            &program.name,
            config,
            profile,
            request,
            unsubscribe_url.clone(),
        );
        let rendered = render(&request.kind, request.recipient, locale, &context)
            .map_err(|e| NotifyError::Unprocessable(e.to_string()))?;
        Ok(match request.channel {
            Channel::Sms => Composed::Sms(rendered.sms),
            Channel::Email => {
                let from = Mailbox {
                    name: config
                        .from_name
                        .clone()
                        .unwrap_or_else(|| program.name.clone()),
                    address: self.from_email.clone(),
                };
                let raw_mime = build_email(
                    &from,
                    address,
                    &rendered.subject,
                    &rendered.text,
                    &rendered.html,
                    unsubscribe_url.as_deref(),
                )
                .map_err(|e| NotifyError::Unprocessable(e.to_string()))?;
                Composed::Email(OutgoingEmail {
                    from: self.from_email.clone(),
                    to: address.to_owned(),
                    raw_mime,
                    tags: email_tags(request),
                })
            }
        })
    }
}

/// The log entry of `request` in `status`, with no provider feedback yet.
fn entry_of(request: &NotificationRequest, status: DeliveryStatus) -> DeliveryEntry {
    DeliveryEntry {
        id: request.id.clone(),
        kind: request.kind.clone(),
        channel: request.channel,
        recipient: request.recipient,
        status,
        created_at: request.created_at.clone(),
        delivered_at: None,
        opened_at: None,
        bounced_at: None,
        complained_at: None,
    }
}

#[derive(Clone, Copy)]
enum Settled {
    /// Handled for good.
    Done,
    /// Claimed moments ago by another delivery: wait.
    Pending,
    /// A stale claim with no word from the provider: give it back and send.
    Retry,
    /// Deferred and now due: send.
    Due,
}

enum Composed {
    Email(OutgoingEmail),
    Sms(String),
}
