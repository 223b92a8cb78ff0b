//! The participant and portal API: what a dealer portal and the program's administrators
//! call for a participant's points. Each module serves one capability and lists its routes:
//! - `statements`: the participant summary, the ledger, the program's rules in plain terms;
//! - `redeem`: the catalog, orders (cancellation, fulfilment) and partner transfers;
//! - `quizzes`, `leads`, `spins`: quizzes graded here, leads an admin approves, spin to win.
//!
//! A machine client signs with a key of the program the path names (`/v1/programs/{program}`).
//! A portal that calls directly sends a rep's JWT to the `/v1/me/…` aliases instead: API
//! Gateway's JWT authorizer verifies it, and the program and participant come from its claims.

mod leads;
mod quizzes;
mod redeem;
mod spins;
mod statements;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use carrot::adapters::dynamo::{CachedPrograms, DynamoStore};
use carrot::adapters::secrets::SecretsKeyStore;
use carrot::adapters::sns::SnsOutbound;
use carrot::adapters::sqs::SqsEventQueue;
pub use carrot::http::{Permission, Route};
use carrot::http::{Problem, authenticate, body_bytes, jwt_rep, no_route, path_parameter};
use carrot::ports::Clock;
use jiff::Timestamp;

pub struct Portal<C> {
    pub keys: SecretsKeyStore,
    pub store: DynamoStore,
    /// The events queue: quiz attempts and approved leads become events the rules award.
    pub queue: SqsEventQueue,
    /// Outbound events (orders for fulfilment).
    pub outbound: SnsOutbound,
    pub programs: CachedPrograms<DynamoStore>,
    pub clock: C,
}

/// An authenticated request, ready for a module to serve.
pub struct Call<'a> {
    pub program: &'a str,
    /// The `{participant}` of the path, or the rep a JWT speaks for; empty when the route
    /// names none.
    pub participant: &'a str,
    /// Who acts: the key id, or `jwt:{subject}`.
    pub actor: &'a str,
    pub body: &'a [u8],
    pub request: &'a ApiGatewayV2httpRequest,
    pub now: Timestamp,
}

impl Call<'_> {
    /// A path parameter of the route (`order`, `lead`, …), empty when it has none.
    pub fn path(&self, name: &str) -> &str {
        path_parameter(self.request, name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Module {
    Statements,
    Redeem,
    Quizzes,
    Leads,
    Spins,
}

const PARTICIPANT_PREFIX: &str = "/v1/programs/{program}/participants/{participant}";
const PROGRAM_PREFIX: &str = "/v1/programs/{program}";
const ME_PREFIX: &str = "/v1/me";

fn modules() -> impl Iterator<Item = (Module, &'static Route)> {
    [
        (Module::Statements, statements::ROUTES),
        (Module::Redeem, redeem::ROUTES),
        (Module::Quizzes, quizzes::ROUTES),
        (Module::Leads, leads::ROUTES),
        (Module::Spins, spins::ROUTES),
    ]
    .into_iter()
    .flat_map(|(module, routes)| routes.iter().map(move |route| (module, route)))
}

/// The `/v1/me/…` alias of a route a rep may call for themselves: every route except the
/// administrators'.
pub fn me_alias(route: &Route) -> Option<String> {
    if route.permission == Permission::Admin {
        return None;
    }
    let (method, path) = route.key.split_once(' ')?;
    let rest = path
        .strip_prefix(PARTICIPANT_PREFIX)
        .or_else(|| path.strip_prefix(PROGRAM_PREFIX))?;
    Some(format!("{method} {ME_PREFIX}{rest}"))
}

/// The routes a key may call, with the permission each needs.
pub fn routes() -> Vec<Route> {
    modules().map(|(_, route)| *route).collect()
}

/// Every route key the function serves: the keyed routes and their `/v1/me` aliases.
pub fn route_keys() -> Vec<String> {
    modules()
        .flat_map(|(_, route)| std::iter::once(route.key.to_owned()).chain(me_alias(route)))
        .collect()
}

impl<C: Clock> Portal<C> {
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
        let route_key = request.route_key.as_deref().unwrap_or_default();
        let (program, participant, actor);
        let (module, route) = if route_key.split_once(' ').is_some_and(|(_, path)| {
            path == ME_PREFIX || path.starts_with(&format!("{ME_PREFIX}/"))
        }) {
            let found = modules()
                .find(|(_, route)| me_alias(route).as_deref() == Some(route_key))
                .ok_or_else(|| no_route(route_key))?;
            let rep = jwt_rep(request)?;
            actor = format!("jwt:{}", rep.subject);
            program = rep.program;
            participant = rep.participant;
            found
        } else {
            let found = modules()
                .find(|(_, route)| route.key == route_key)
                .ok_or_else(|| no_route(route_key))?;
            let caller = authenticate(&self.keys, request, &body, now, found.1.permission).await?;
            actor = caller.key_id;
            program = caller.program;
            participant = path_parameter(request, "participant").to_owned();
            found
        };
        let call = Call {
            program: &program,
            participant: &participant,
            actor: &actor,
            body: &body,
            request,
            now,
        };
        match module {
            Module::Statements => self.statements(route.key, &call).await,
            Module::Redeem => self.redeem(route.key, &call).await,
            Module::Quizzes => self.quizzes(route.key, &call).await,
            Module::Leads => self.leads(route.key, &call).await,
            Module::Spins => self.spins(route.key, &call).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reps_get_aliases_of_their_routes_and_never_of_admin_routes() {
        let order = Route {
            key: "POST /v1/programs/{program}/participants/{participant}/orders",
            permission: Permission::RedemptionsWrite,
        };
        assert_eq!(me_alias(&order).as_deref(), Some("POST /v1/me/orders"));
        let summary = Route {
            key: "GET /v1/programs/{program}/participants/{participant}",
            permission: Permission::ParticipantsRead,
        };
        assert_eq!(me_alias(&summary).as_deref(), Some("GET /v1/me"));
        let catalog = Route {
            key: "GET /v1/programs/{program}/catalog",
            permission: Permission::ParticipantsRead,
        };
        assert_eq!(me_alias(&catalog).as_deref(), Some("GET /v1/me/catalog"));
        let approve = Route {
            key: "POST /v1/programs/{program}/participants/{participant}/leads/{lead}/approve",
            permission: Permission::Admin,
        };
        assert_eq!(me_alias(&approve), None);
    }
}
