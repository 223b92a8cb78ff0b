//! Program administration: `PUT /v1/program` stores a new version of the caller's program
//! configuration; `PUT /v1/participants/{participant}` enrols (or updates) a participant and
//! releases the events parked for them.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use carrot::domain::error::{FieldError, FieldErrors, check_identifier};
use carrot::domain::participant::Profile;
use carrot::domain::program::Program;
use carrot::http::{Caller, Problem, authenticate, body_bytes, json_response};
use carrot::ports::{
    Clock, EnrolmentStore, EventQueue, KeyStore, PortError, ProgramReader, ProgramWriter,
};
use carrot::service::enrol::enrol;
use serde_json::json;

/// The permission a key needs for these routes.
pub const SCOPE: &str = "admin";

pub struct Admin<K, S, Q, C> {
    pub keys: K,
    pub store: S,
    pub queue: Q,
    pub clock: C,
}

impl<K, S, Q, C> Admin<K, S, Q, C>
where
    K: KeyStore,
    S: ProgramReader + ProgramWriter + EnrolmentStore,
    Q: EventQueue,
    C: Clock,
{
    pub async fn handle(&self, request: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
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
        let caller = authenticate(&self.keys, request, &body, now, SCOPE).await?;
        let route = request.route_key.as_deref().unwrap_or_default();
        match route {
            "PUT /v1/program" => self.put_program(&caller, &body).await,
            "PUT /v1/participants/{participant}" => {
                let participant = request
                    .path_parameters
                    .get("participant")
                    .map(String::as_str)
                    .unwrap_or_default();
                self.put_participant(&caller, participant, &body).await
            }
            other => Err(Problem::new(
                404,
                "not-found",
                "No such route",
                format!("{other:?} is not served here"),
            )),
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
        let current = self
            .store
            .current(&caller.program)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        let previous = current.map_or(0, |p| p.version);
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
        match self.store.put(&program, previous, self.clock.now()).await {
            Ok(()) => Ok(json_response(
                200,
                &json!({"program": program.id, "version": program.version}),
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
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            Problem::invalid(
                "the body is not valid JSON",
                vec![FieldError::new("$", e.to_string())],
            )
        })?;
        let profile = Profile::from_json(&value)
            .map_err(|errors| Problem::invalid("the profile is not valid", errors))?;
        let enrolment = enrol(
            &self.store,
            &self.queue,
            &caller.program,
            participant,
            &profile,
            self.clock.now(),
        )
        .await
        .map_err(|e| Problem::unavailable(&e))?;
        Ok(json_response(
            if enrolment.created { 201 } else { 200 },
            &enrolment,
        ))
    }
}
