//! Leads: a rep tips a lead on a new partner; it is pending until an administrator approves
//! it (its `lead.submitted` event is queued once, and the rules award the points) or rejects
//! it with a reason.

use crate::{Call, Permission, Portal, Route};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use carrot::http::{Problem, json_object, json_response, no_route};
use carrot::ports::Clock;
use carrot::service::lead::{LeadStore, approve, page, reject, submit};
use serde_json::json;

const SUBMIT: &str = "POST /v1/programs/{program}/participants/{participant}/leads";
const OWN: &str = "GET /v1/programs/{program}/participants/{participant}/leads";
const LIST: &str = "GET /v1/programs/{program}/leads";
const APPROVE: &str = "POST /v1/programs/{program}/participants/{participant}/leads/{lead}/approve";
const REJECT: &str = "POST /v1/programs/{program}/participants/{participant}/leads/{lead}/reject";

pub(crate) const ROUTES: &[Route] = &[
    Route {
        key: SUBMIT,
        permission: Permission::EventsWrite,
    },
    Route {
        key: OWN,
        permission: Permission::ParticipantsRead,
    },
    Route {
        key: LIST,
        permission: Permission::Admin,
    },
    Route {
        key: APPROVE,
        permission: Permission::Admin,
    },
    Route {
        key: REJECT,
        permission: Permission::Admin,
    },
];

impl<C: Clock> Portal<C> {
    pub(crate) async fn leads(
        &self,
        route: &str,
        call: &Call<'_>,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let request = call.request;
        let lead = request
            .path_parameters
            .get("lead")
            .map(String::as_str)
            .unwrap_or_default();
        let query = |name: &str| request.query_string_parameters.first(name);
        match route {
            SUBMIT => {
                let body = json_object(call.body)?;
                let (tipped, created) = submit(
                    &self.store,
                    &self.programs,
                    call.program,
                    call.participant,
                    &body,
                    call.now,
                )
                .await?;
                Ok(json_response(if created { 201 } else { 200 }, &tipped))
            }
            OWN => {
                let leads = self
                    .store
                    .leads(call.program, call.participant)
                    .await
                    .map_err(|e| Problem::unavailable(&e))?;
                Ok(json_response(200, &json!({ "leads": leads })))
            }
            LIST => {
                let page = page(
                    &self.store,
                    call.program,
                    query("status"),
                    query("after"),
                    query("limit"),
                )
                .await?;
                Ok(json_response(200, &page))
            }
            APPROVE => {
                let decided = approve(
                    &self.store,
                    &self.queue,
                    call.program,
                    call.participant,
                    lead,
                    call.actor,
                    call.now,
                )
                .await?;
                Ok(json_response(200, &decided))
            }
            REJECT => {
                let body = json_object(call.body)?;
                let decided = reject(
                    &self.store,
                    call.program,
                    call.participant,
                    lead,
                    &body,
                    call.actor,
                    call.now,
                )
                .await?;
                Ok(json_response(200, &decided))
            }
            other => Err(no_route(other)),
        }
    }
}
