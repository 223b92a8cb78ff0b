//! `POST /v1/programs/{program}/events`: authenticate the signed request, validate every event, queue the
//! accepted ones, answer per event.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use carrot::http::{Permission, Problem, Route, authenticate, body_bytes, json_response};
use carrot::ports::{Clock, EventQueue, KeyStore};
use carrot::service::ingest::ingest;

/// The one route this function serves.
pub const ROUTES: &[Route] = &[Route {
    key: "POST /v1/programs/{program}/events",
    permission: Permission::EventsWrite,
}];

pub struct Ingest<K, Q, C> {
    pub keys: K,
    pub queue: Q,
    pub clock: C,
}

impl<K: KeyStore, Q: EventQueue, C: Clock> Ingest<K, Q, C> {
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
        let caller = authenticate(&self.keys, request, &body, now, ROUTES[0].permission).await?;
        let report = ingest(&self.queue, &caller, &body, now).await?;
        Ok(json_response(202, &report))
    }
}
