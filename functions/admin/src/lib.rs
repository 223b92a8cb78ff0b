//! Program administration and the points calculator, all under `/v1/programs/{program}`:
//! - `PUT` on the program's root stores a new version of its configuration, in force from its
//!   effective time; `GET` reads the latest back with the schedule;
//! - `PUT …/participants/{participant}` enrols (or updates) a participant and releases the
//!   events parked for them; `POST …/imports` enrols many from CSV or JSON Lines (`import.rs`);
//! - `POST …/participants/{participant}/adjustments` queues an administrator's credit or
//!   debit, awarded exactly once like any event;
//! - `POST …/calculator` says what a hypothetical event would earn, writing nothing;
//! - the period close's routes (`close.rs`): leaderboards, close state, reports, drawings,
//!   the stick's lists, and reinstating a participant;
//! - messaging (`messages.rs`): the public unsubscribe link, preferences, delivery logs,
//!   segment histories and read rates.

mod close;
mod import;
mod messages;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use carrot::domain::envelope::{ADJUSTMENT_TYPE, parse_event};
use carrot::domain::error::{FieldError, FieldErrors, check_identifier};
use carrot::domain::money::json_kind;
use carrot::domain::participant::Enrolling;
use carrot::domain::program::Program;
use carrot::domain::queued::QueuedEvent;
use carrot::http::{
    Caller, Permission, Problem, Route, authenticate, body_bytes, json_object, json_response,
    no_route, path_parameter,
};
use carrot::ports::{
    AwardStore, Clock, CloseStore, EngageStore, EnrolmentStore, EventQueue, KeyStore, LiveIndex,
    Outbound, PortError, PreferenceStore, ProgramReader, ProgramWriter, QueueMessage, TokenSecret,
};
use carrot::service::award::AwardError;
use carrot::service::calculator::{QuoteError, quote};
use carrot::service::enrol::enrol;
use serde_json::{Value, json};

/// Adjustments are events of their participant under this id prefix.
const ADJUSTMENT_PREFIX: &str = "adj:";

const PUT_PROGRAM: &str = "PUT /v1/programs/{program}";
const GET_PROGRAM: &str = "GET /v1/programs/{program}";
const PARTICIPANT: &str = "PUT /v1/programs/{program}/participants/{participant}";
const ADJUSTMENTS: &str = "POST /v1/programs/{program}/participants/{participant}/adjustments";
const IMPORTS: &str = "POST /v1/programs/{program}/imports";
const CALCULATOR: &str = "POST /v1/programs/{program}/calculator";
const LEADERBOARD: &str = "GET /v1/programs/{program}/leaderboards/{board}";
const CLOSE: &str = "GET /v1/programs/{program}/closes/{period}";
const REPORT: &str = "GET /v1/programs/{program}/reports/{period}";
const REPORT_PAGE: &str = "GET /v1/programs/{program}/reports/{period}/html";
const DRAWING: &str = "GET /v1/programs/{program}/drawings/{drawing}/{period}";
const LIST: &str = "GET /v1/programs/{program}/lists/{period}/{list}";
const REINSTATE: &str = "POST /v1/programs/{program}/participants/{participant}/reinstate";
const PREFERENCES: &str = "GET /v1/programs/{program}/participants/{participant}/preferences";
const PUT_PREFERENCES: &str = "PUT /v1/programs/{program}/participants/{participant}/preferences";
const DELIVERIES: &str = "GET /v1/programs/{program}/participants/{participant}/messages";
const SEGMENTS: &str = "GET /v1/programs/{program}/participants/{participant}/segments";
const MESSAGE_STATS: &str = "GET /v1/programs/{program}/messages/{month}";

const fn route(key: &'static str, permission: Permission) -> Route {
    Route { key, permission }
}

/// Every route this function serves with a key, and the permission it needs.
pub const ROUTES: &[Route] = &[
    route(PUT_PROGRAM, Permission::Admin),
    route(GET_PROGRAM, Permission::Admin),
    route(PARTICIPANT, Permission::Admin),
    route(ADJUSTMENTS, Permission::Admin),
    route(IMPORTS, Permission::Admin),
    // What a portal shows its reps: the calculator and the leaderboards.
    route(CALCULATOR, Permission::ParticipantsRead),
    route(LEADERBOARD, Permission::ParticipantsRead),
    route(CLOSE, Permission::Admin),
    route(REPORT, Permission::Admin),
    route(REPORT_PAGE, Permission::Admin),
    route(DRAWING, Permission::Admin),
    route(LIST, Permission::Admin),
    route(REINSTATE, Permission::Admin),
    route(PREFERENCES, Permission::Admin),
    route(PUT_PREFERENCES, Permission::Admin),
    route(DELIVERIES, Permission::Admin),
    route(SEGMENTS, Permission::Admin),
    route(MESSAGE_STATS, Permission::Admin),
];

/// The routes served without a key: the unsubscribe link's token is its credential.
pub const TOKEN_ROUTES: &[&str] = &["GET /v1/unsubscribe", "POST /v1/unsubscribe"];

pub struct Admin<K, S, Q, C, O, M, U> {
    pub keys: K,
    pub store: S,
    pub queue: Q,
    pub clock: C,
    /// Outbound events (a reinstated participant).
    pub outbound: O,
    /// How long the award function caches program versions: a new version takes effect no
    /// sooner than this after it is stored, so no warm function applies an older one to an
    /// event the new one covers.
    pub config_lead: std::time::Duration,
    /// Preferences, delivery logs and message statistics.
    pub messages: M,
    /// The secret that signs unsubscribe links.
    pub unsubscribe: U,
}

impl<K, S, Q, C, O, M, U> Admin<K, S, Q, C, O, M, U>
where
    K: KeyStore,
    S: ProgramReader
        + ProgramWriter
        + EnrolmentStore
        + AwardStore
        + CloseStore
        + LiveIndex
        + EngageStore,
    Q: EventQueue,
    C: Clock,
    O: Outbound,
    M: PreferenceStore,
    U: TokenSecret,
{
    pub async fn handle(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        // The unsubscribe link is followed from an email: its token is the credential.
        match request.route_key.as_deref() {
            Some("GET /v1/unsubscribe") => return self.unsubscribe(&request, false).await,
            Some("POST /v1/unsubscribe") => return self.unsubscribe(&request, true).await,
            _ => {}
        }
        match self.respond(&request).await {
            Ok(response) => response,
            Err(problem) => problem.into_response(),
        }
    }

    async fn respond(
        &self,
        request: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let now = self.clock.now();
        let body = body_bytes(request)?;
        let route_key = request.route_key.as_deref().unwrap_or_default();
        let route = ROUTES
            .iter()
            .find(|r| r.key == route_key)
            .ok_or_else(|| no_route(route_key))?;
        let caller = authenticate(&self.keys, request, &body, now, route.permission).await?;
        let path = |name: &str| path_parameter(request, name);
        let participant = path("participant");
        match route.key {
            PUT_PROGRAM => self.put_program(&caller, &body).await,
            GET_PROGRAM => self.get_program(&caller).await,
            PARTICIPANT => self.put_participant(&caller, participant, &body).await,
            ADJUSTMENTS => self.adjust(&caller, participant, &body).await,
            IMPORTS => self.import(&caller, request, &body).await,
            CALCULATOR => self.calculate(&caller, &body).await,
            LEADERBOARD => self.leaderboard(&caller, path("board"), request).await,
            CLOSE => self.close_state(&caller, path("period")).await,
            REPORT => self.report(&caller, path("period")).await,
            REPORT_PAGE => self.report_page(&caller, path("period")).await,
            DRAWING => {
                self.drawing(&caller, path("drawing"), path("period"), request)
                    .await
            }
            LIST => {
                self.list(&caller, path("period"), path("list"), request)
                    .await
            }
            REINSTATE => self.reinstate(&caller, participant).await,
            PREFERENCES => self.preferences(&caller, participant).await,
            PUT_PREFERENCES => self.put_preferences(&caller, participant, &body).await,
            DELIVERIES => self.deliveries(&caller, participant).await,
            SEGMENTS => self.segments(&caller, participant).await,
            MESSAGE_STATS => self.message_stats(&caller, path("month")).await,
            _ => unreachable!("every route in ROUTES is dispatched"),
        }
    }

    async fn put_program(
        &self,
        caller: &Caller,
        body: &[u8],
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let text = std::str::from_utf8(body).map_err(|_| {
            Problem::invalid(
                "the body is not UTF-8 text",
                vec![FieldError::new("$", "must be UTF-8 YAML or JSON")],
            )
        })?;
        let now = self.clock.now();
        let versions = self
            .store
            .versions(&caller.program)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        let deployed = versions.as_ref().map(|v| v.latest().clone());
        let previous = deployed.as_ref().map_or(0, |p| p.version);
        let program = Program::parse(text, previous + 1)
            .map_err(|errors| Problem::invalid("the program configuration is not valid", errors))?;
        if program.id != caller.program {
            return Err(Problem::new(
                403,
                "forbidden",
                "The key may not do this",
                format!(
                    "a key of program {:?} cannot configure program {:?}",
                    caller.program, program.id
                ),
            ));
        }
        let mut errors = versions
            .as_ref()
            .map(|v| program.check_versions(&v.all()))
            .unwrap_or_default();
        // A change applies to events from its effective time on, never retroactively (past
        // awards are corrected with adjustments, which the ledger shows as such), and no
        // sooner than every warm function has seen it.
        let earliest = now.checked_add(self.config_lead).unwrap_or(now);
        let effective_from = program.effective_from.unwrap_or(earliest);
        if effective_from < earliest {
            errors.push(FieldError::new(
                "effective_from",
                format!("{effective_from} is too early: a change never applies retroactively and takes effect at least {}s after it is stored (from {earliest}); correct past awards with adjustments", self.config_lead.as_secs_f64()),
            ));
        }
        if !errors.is_empty() {
            return Err(Problem::invalid(
                "the program configuration is not valid",
                errors,
            ));
        }
        match self
            .store
            .put(&program, previous, effective_from, now)
            .await
        {
            Ok(()) => Ok(json_response(
                200,
                &json!({
                    "program": program.id,
                    "version": program.version,
                    "effective_from": effective_from.to_string(),
                    "rules": program.rules.len(),
                    "campaigns": program.campaigns.len(),
                    "budgets": program.budgets.len(),
                }),
            )),
            Err(PortError::ConditionFailed) => Err(Problem::new(
                409,
                "conflict",
                "The configuration changed meanwhile",
                "another version was stored at the same time; fetch it and try again",
            )),
            Err(other) => Err(Problem::unavailable(&other)),
        }
    }

    async fn get_program(&self, caller: &Caller) -> Result<ApiGatewayV2httpResponse, Problem> {
        let versions = self
            .store
            .versions(&caller.program)
            .await
            .map_err(|e| Problem::unavailable(&e))?
            .ok_or_else(|| {
                Problem::new(
                    404,
                    "not-found",
                    "No configuration",
                    format!("program {:?} has no configuration yet", caller.program),
                )
            })?;
        let latest = versions.latest();
        let schedule: Vec<Value> = versions
            .schedule()
            .into_iter()
            .map(|(from, version)| json!({"version": version, "effective_from": from.to_string()}))
            .collect();
        Ok(json_response(
            200,
            &json!({
                "program": latest.id,
                "version": latest.version,
                "schedule": schedule,
                "document": latest.document,
            }),
        ))
    }

    /// Queues `points.adjusted` for the participant; the award function records it exactly
    /// once under the adjustment's own id, so a repeated request is one adjustment.
    async fn adjust(
        &self,
        caller: &Caller,
        participant: &str,
        body: &[u8],
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let request = json_object(body)?;
        let mut errors = FieldErrors::default();
        check_identifier(&mut errors, "participant", participant);
        for key in request
            .keys()
            .filter(|k| !["id", "points", "reason"].contains(&k.as_str()))
        {
            errors.push(
                key.clone(),
                "is not an adjustment field (expected id, points, reason)",
            );
        }
        let id = match request.get("id") {
            Some(Value::String(id)) => {
                check_identifier(&mut errors, "id", id);
                // The event id is the adjustment id behind a prefix, within the 128 of any id.
                if id.len() + ADJUSTMENT_PREFIX.len() > 128 && id.len() <= 128 {
                    errors.push(
                        "id",
                        format!(
                            "must be at most {} characters",
                            128 - ADJUSTMENT_PREFIX.len()
                        ),
                    );
                }
                id.clone()
            }
            other => {
                errors.push(
                    "id",
                    format!(
                        "is required: a unique id for this adjustment (a retry reuses it), got {}",
                        other.map_or("nothing", json_kind)
                    ),
                );
                String::new()
            }
        };
        let now = self.clock.now();
        let envelope = json!({
            "id": format!("{ADJUSTMENT_PREFIX}{id}"),
            "participant": participant,
            "type": ADJUSTMENT_TYPE,
            "occurred_at": now.to_string(),
            "attributes": {
                "points": request.get("points").cloned().unwrap_or(Value::Null),
                "reason": request.get("reason").cloned().unwrap_or(Value::Null),
                "by": caller.key_id,
            },
        });
        let event = match parse_event(&envelope, "", now) {
            Ok(event) if errors.is_empty() => event,
            parsed => {
                // The caller sent points and reason at the top level: name them so. A field
                // checked above already (the id) is not reported a second time.
                for mut e in parsed.err().into_iter().flatten() {
                    e.field = e.field.trim_start_matches("attributes.").to_owned();
                    if !errors.0.iter().any(|known| known.field == e.field) {
                        errors.0.push(e);
                    }
                }
                return Err(Problem::invalid("the adjustment is not valid", errors.0));
            }
        };
        let queued = QueuedEvent {
            program: caller.program.clone(),
            received_at: now,
            event,
        };
        let message = QueueMessage {
            id: "0".into(),
            body: queued.to_message(),
        };
        if let Some(Err(error)) = self.queue.send(&[message]).await.into_iter().next() {
            return Err(Problem::unavailable(&error));
        }
        tracing::info!(program = %caller.program, key = %caller.key_id, "adjustment queued");
        Ok(json_response(
            202,
            &json!({"id": id, "event_id": queued.event.id, "status": "accepted"}),
        ))
    }

    async fn calculate(
        &self,
        caller: &Caller,
        body: &[u8],
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let mut request = json_object(body)?;
        let now = self.clock.now();
        // A hypothetical event: it needs no id, and happens now unless the caller says when.
        request
            .entry("id")
            .or_insert_with(|| Value::String("calculator".into()));
        request
            .entry("occurred_at")
            .or_insert_with(|| Value::String(now.to_string()));
        let event = parse_event(&Value::Object(request), "", now)
            .map_err(|errors| Problem::invalid("the event is not valid", errors))?;
        match quote(&self.store, &self.store, &caller.program, &event, now).await {
            Ok(quote) => Ok(json_response(200, &quote)),
            Err(QuoteError::NotEnrolled(participant)) => Err(Problem::new(
                404,
                "not-found",
                "No such participant",
                format!("participant {participant:?} is not enrolled in this program"),
            )),
            Err(QuoteError::Award(AwardError::NoProgram(program))) => Err(Problem::new(
                404,
                "not-found",
                "No configuration",
                format!("program {program:?} has no configuration yet"),
            )),
            Err(QuoteError::Award(error)) => Err(Problem::new(
                503,
                "unavailable",
                "The calculator is unavailable",
                error.to_string(),
            )),
        }
    }

    async fn put_participant(
        &self,
        caller: &Caller,
        participant: &str,
        body: &[u8],
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let mut errors = FieldErrors::default();
        check_identifier(&mut errors, "participant", participant);
        if let Err(errors) = errors.into_result(()) {
            return Err(Problem::invalid(
                "the participant id in the path is not valid",
                errors,
            ));
        }
        let value = Value::Object(json_object(body)?);
        let now = self.clock.now();
        let enrolling = Enrolling::from_json(&value, &[], now)
            .map_err(|errors| Problem::invalid("the profile is not valid", errors))?;
        let enrolment = enrol(
            &self.store,
            &self.queue,
            &caller.program,
            participant,
            enrolling,
            now,
        )
        .await
        .map_err(|e| Problem::unavailable(&e))?;
        Ok(json_response(
            if enrolment.created { 201 } else { 200 },
            &enrolment,
        ))
    }
}
