//! Spin to win: a participant spends the program's `spin.cost` for a chance at a prize (off
//! unless the program's `spin` section enables it); every spin is kept with what is needed
//! to audit its draw.

use crate::{Call, Permission, Portal, Route};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use carrot::http::{Problem, json_object, json_response, no_route};
use carrot::ports::Clock;
use carrot::service::spin::{spin, spins};
use serde_json::json;

const SPIN: &str = "POST /v1/programs/{program}/participants/{participant}/spins";
const LIST: &str = "GET /v1/programs/{program}/participants/{participant}/spins";

pub(crate) const ROUTES: &[Route] = &[
    Route {
        key: SPIN,
        permission: Permission::RedemptionsWrite,
    },
    Route {
        key: LIST,
        permission: Permission::ParticipantsRead,
    },
];

impl<C: Clock> Portal<C> {
    pub(crate) async fn spins(
        &self,
        route: &str,
        call: &Call<'_>,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        match route {
            SPIN => {
                let body = json_object(call.body)?;
                let (spin, created) = spin(
                    &self.store,
                    &self.programs,
                    &self.outbound,
                    call.program,
                    call.participant,
                    &body,
                    call.now,
                )
                .await?;
                Ok(json_response(if created { 201 } else { 200 }, &spin))
            }
            LIST => {
                let spins = spins(&self.store, call.program, call.participant).await?;
                Ok(json_response(200, &json!({ "spins": spins })))
            }
            other => Err(no_route(other)),
        }
    }
}
