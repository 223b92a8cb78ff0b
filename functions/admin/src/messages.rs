//! Messaging routes: the public unsubscribe endpoint (its token authenticates it), a
//! participant's preferences, delivery log and segment history, and the read rate per
//! message kind.

use crate::Admin;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use carrot::domain::error::FieldError;
use carrot::domain::message::verify_unsubscribe_token;
use carrot::domain::report::escape;
use carrot::http::{Caller, Problem, html_response, json_response};
use carrot::ports::{EngageStore, PortError, PreferenceStore, TokenSecret};
use serde_json::{Value, json};

fn unavailable(error: PortError) -> Problem {
    Problem::unavailable(&error)
}

/// A small page for a person who followed a link from an email.
fn page(status: u16, title: &str, body: &str) -> ApiGatewayV2httpResponse {
    html_response(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head><body style=\"font-family:sans-serif;max-width:36em;margin:3em auto;padding:0 1em\"><h1>{title}</h1>{body}</body></html>",
            title = escape(title)
        ),
    )
}

impl<K, S, Q, C, O, M, U> Admin<K, S, Q, C, O, M, U>
where
    S: EngageStore,
    M: PreferenceStore,
    U: TokenSecret,
{
    /// `GET` shows a confirmation with a button (link scanners prefetch GETs, so a GET never
    /// changes anything); `POST` (the button, or a mail client's RFC 8058 one-click request)
    /// unsubscribes from every email that is not an essential notice.
    pub(crate) async fn unsubscribe(
        &self,
        request: &ApiGatewayV2httpRequest,
        confirm: bool,
    ) -> ApiGatewayV2httpResponse {
        let token = request
            .query_string_parameters
            .first("token")
            .unwrap_or_default();
        let secret = match self.unsubscribe.secret().await {
            Ok(secret) => secret,
            Err(error) => return Problem::unavailable(&error).into_response(),
        };
        let Some((program, participant)) = verify_unsubscribe_token(&secret, token) else {
            return page(
                400,
                "This link is not valid",
                "<p>The unsubscribe link is incomplete or was changed. Open it again from the email, or ask your program manager.</p>",
            );
        };
        if !confirm {
            let action = format!("/v1/unsubscribe?token={}", escape(token));
            return page(
                200,
                "Unsubscribe from program emails?",
                &format!(
                    "<p>You will no longer get reminders, journeys or the weekly digest by email. Notices about your account still reach you.</p><form method=\"post\" action=\"{action}\"><button type=\"submit\">Unsubscribe</button></form>"
                ),
            );
        }
        let result = async {
            let mut preferences = self.messages.preferences(&program, &participant).await?;
            if !preferences.email_unsubscribed {
                preferences.email_unsubscribed = true;
                self.messages
                    .set_preferences(&program, &participant, &preferences)
                    .await?;
            }
            Ok::<_, PortError>(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(program, "unsubscribed by link");
                page(
                    200,
                    "You are unsubscribed",
                    "<p>You will no longer get program emails other than notices about your account. You can subscribe again in the partner portal.</p>",
                )
            }
            // The participant left the program since the email was sent: nothing to change.
            Err(PortError::ConditionFailed) => page(
                200,
                "You are unsubscribed",
                "<p>You are no longer in this program, so no more emails will come.</p>",
            ),
            Err(error) => Problem::unavailable(&error).into_response(),
        }
    }

    pub(crate) async fn preferences(
        &self,
        caller: &Caller,
        participant: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let preferences = self
            .messages
            .preferences(&caller.program, participant)
            .await
            .map_err(unavailable)?;
        Ok(json_response(200, &preferences))
    }

    /// Sets the choices a participant makes (`email_unsubscribed`, `sms_opted_out`); the
    /// suppression that bounces and complaints set is not theirs to lift here.
    pub(crate) async fn put_preferences(
        &self,
        caller: &Caller,
        participant: &str,
        body: &[u8],
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            Problem::invalid(
                "the body is not JSON",
                vec![FieldError::new("$", format!("must be a JSON object: {e}"))],
            )
        })?;
        let Some(object) = value.as_object() else {
            return Err(Problem::invalid(
                "the preferences are not valid",
                vec![FieldError::new("$", "must be an object")],
            ));
        };
        const CHOICES: [&str; 2] = ["email_unsubscribed", "sms_opted_out"];
        let mut errors = Vec::new();
        for (name, value) in object {
            if !CHOICES.contains(&name.as_str()) {
                errors.push(FieldError::new(
                    name.as_str(),
                    format!("is not a preference (expected one of {CHOICES:?})"),
                ));
            } else if !value.is_boolean() {
                errors.push(FieldError::new(name.as_str(), "must be true or false"));
            }
        }
        if !errors.is_empty() {
            return Err(Problem::invalid("the preferences are not valid", errors));
        }
        let mut preferences = self
            .messages
            .preferences(&caller.program, participant)
            .await
            .map_err(unavailable)?;
        if let Some(Value::Bool(v)) = object.get("email_unsubscribed") {
            preferences.email_unsubscribed = *v;
        }
        if let Some(Value::Bool(v)) = object.get("sms_opted_out") {
            preferences.sms_opted_out = *v;
        }
        match self
            .messages
            .set_preferences(&caller.program, participant, &preferences)
            .await
        {
            Ok(()) => Ok(json_response(200, &preferences)),
            Err(PortError::ConditionFailed) => Err(Problem::new(
                404,
                "not-found",
                "Not found",
                format!("participant {participant:?} is not enrolled"),
            )),
            Err(error) => Err(unavailable(error)),
        }
    }

    pub(crate) async fn deliveries(
        &self,
        caller: &Caller,
        participant: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let deliveries = self
            .messages
            .deliveries(&caller.program, participant)
            .await
            .map_err(unavailable)?;
        Ok(json_response(
            200,
            &json!({"participant": participant, "messages": deliveries}),
        ))
    }

    pub(crate) async fn segments(
        &self,
        caller: &Caller,
        participant: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let history = self
            .store
            .segment_history(&caller.program, participant)
            .await
            .map_err(unavailable)?;
        Ok(json_response(
            200,
            &json!({
                "participant": participant,
                "segment": history.last().map(|c| c.to.clone()),
                "history": history,
            }),
        ))
    }

    /// Sent, delivered, opened, bounced and complained per kind, with the read rate.
    pub(crate) async fn message_stats(
        &self,
        caller: &Caller,
        month: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        if carrot::domain::close::ClosePeriod::parse(month).map_or(true, |p| p.label.len() != 7) {
            return Err(Problem::invalid(
                "the month is not valid",
                vec![FieldError::new("month", "must be a month like 2026-11")],
            ));
        }
        let stats = self
            .messages
            .message_stats(&caller.program, month)
            .await
            .map_err(unavailable)?;
        let kinds: Vec<Value> = stats
            .iter()
            .map(|k| {
                json!({
                    "kind": k.kind,
                    "sent": k.sent,
                    "delivered": k.delivered,
                    "opened": k.opened,
                    "bounced": k.bounced,
                    "complained": k.complained,
                    "read_rate": (k.delivered > 0).then(|| k.opened as f64 / k.delivered as f64),
                })
            })
            .collect();
        Ok(json_response(200, &json!({"month": month, "kinds": kinds})))
    }
}
