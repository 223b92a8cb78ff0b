//! Redemption: the catalog (administrators define items, participants browse what they may
//! order), orders with an idempotency key, their cancellation and fulfilment, and transfers
//! from a partner account to its team. The rules live in `carrot::service::redeem`.

use crate::{Call, Permission, Portal, Route};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use carrot::domain::catalog::{CatalogItem, OrderRequest, StatusChange, TransferRequest};
use carrot::domain::error::FieldError;
use carrot::domain::program::Program;
use carrot::http::{Problem, json_object, json_response, no_route};
use carrot::ports::{Clock, PortError, ProgramReader};
use carrot::service::Refusal;
use carrot::service::redeem::{Redeem, RedeemError};
use serde_json::json;
use std::sync::Arc;

const ITEM: &str = "PUT /v1/programs/{program}/catalog/{item}";
const CATALOG: &str = "GET /v1/programs/{program}/catalog";
const PLACE: &str = "POST /v1/programs/{program}/participants/{participant}/orders";
const ORDERS: &str = "GET /v1/programs/{program}/participants/{participant}/orders";
const ORDER: &str = "GET /v1/programs/{program}/participants/{participant}/orders/{order}";
const CANCEL: &str = "POST /v1/programs/{program}/participants/{participant}/orders/{order}/cancel";
const FULFIL: &str =
    "PUT /v1/programs/{program}/participants/{participant}/orders/{order}/fulfilment";
const TRANSFER: &str = "POST /v1/programs/{program}/participants/{participant}/transfers";

pub(crate) const ROUTES: &[Route] = &[
    Route {
        key: ITEM,
        permission: Permission::Admin,
    },
    Route {
        key: CATALOG,
        permission: Permission::ParticipantsRead,
    },
    Route {
        key: PLACE,
        permission: Permission::RedemptionsWrite,
    },
    Route {
        key: ORDERS,
        permission: Permission::ParticipantsRead,
    },
    Route {
        key: ORDER,
        permission: Permission::ParticipantsRead,
    },
    Route {
        key: CANCEL,
        permission: Permission::RedemptionsWrite,
    },
    Route {
        key: FULFIL,
        permission: Permission::Admin,
    },
    Route {
        key: TRANSFER,
        permission: Permission::RedemptionsWrite,
    },
];

/// Page sizes of the catalog and the order list.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

impl<C: Clock> Portal<C> {
    pub(crate) async fn redeem(
        &self,
        route: &str,
        call: &Call<'_>,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let program = self.program(call.program).await?;
        let service = Redeem {
            store: &self.store,
            outbound: &self.outbound,
            program: &program,
            now: call.now,
            actor: call.actor,
        };
        let path = |name: &str| call.path(name);
        let query = |name: &str| call.request.query_string_parameters.first(name);
        let participant = call.participant;
        match route {
            ITEM => {
                let item = CatalogItem::from_json(path("item"), &json_object(call.body)?)
                    .map_err(|errors| Problem::invalid("the catalog item is not valid", errors))?;
                service.put_item(&item).await.map_err(problem)?;
                Ok(json_response(200, &item))
            }
            CATALOG => {
                // A rep's JWT (`/v1/me/catalog`) names the participant; a key may ask for one.
                let only_for = Some(participant)
                    .filter(|p| !p.is_empty())
                    .or_else(|| query("participant"));
                let (items, next) = service
                    .catalog(only_for, query("after"), limit(query("limit"))?)
                    .await
                    .map_err(problem)?;
                Ok(json_response(200, &json!({"items": items, "next": next})))
            }
            PLACE => {
                let request = OrderRequest::from_json(&json_object(call.body)?)
                    .map_err(|errors| Problem::invalid("the order is not valid", errors))?;
                let placed = service
                    .place(participant, &request)
                    .await
                    .map_err(problem)?;
                let status = if placed.created { 201 } else { 200 };
                Ok(json_response(status, &placed.order))
            }
            ORDERS => {
                let (orders, next) = service
                    .orders(participant, query("after"), limit(query("limit"))?)
                    .await
                    .map_err(problem)?;
                Ok(json_response(200, &json!({"orders": orders, "next": next})))
            }
            ORDER => {
                let order = service
                    .order(participant, path("order"))
                    .await
                    .map_err(problem)?;
                Ok(json_response(200, &order))
            }
            CANCEL => {
                let order = service
                    .cancel(participant, path("order"))
                    .await
                    .map_err(problem)?;
                Ok(json_response(200, &order))
            }
            FULFIL => {
                let change = StatusChange::from_json(&json_object(call.body)?)
                    .map_err(|errors| Problem::invalid("the fulfilment is not valid", errors))?;
                let order = service
                    .fulfil(participant, path("order"), &change)
                    .await
                    .map_err(problem)?;
                Ok(json_response(200, &order))
            }
            TRANSFER => {
                let request = TransferRequest::from_json(&json_object(call.body)?)
                    .map_err(|errors| Problem::invalid("the transfer is not valid", errors))?;
                let transfer = service
                    .transfer(participant, &request)
                    .await
                    .map_err(problem)?;
                let status = if transfer.created { 201 } else { 200 };
                Ok(json_response(status, &transfer))
            }
            _ => Err(no_route(route)),
        }
    }

    async fn program(&self, program: &str) -> Result<Arc<Program>, Problem> {
        match self.programs.versions(program).await {
            Ok(Some(versions)) => Ok(versions.latest().clone()),
            Ok(None) => Err(Problem::new(
                404,
                "not-found",
                "Not found",
                format!("program {program} has no configuration"),
            )),
            Err(error) => Err(Problem::unavailable(&error)),
        }
    }
}

fn limit(given: Option<&str>) -> Result<usize, Problem> {
    let Some(given) = given else {
        return Ok(DEFAULT_LIMIT);
    };
    given
        .parse()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            Problem::invalid(
                "the page size is not valid",
                vec![FieldError::new(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIMIT}, got {given:?}"),
                )],
            )
        })
}

fn problem(error: RedeemError) -> Problem {
    let conflict = |kind, title, detail: String| Problem::new(409, kind, title, detail);
    match error {
        // The refusals every portal service shares answer with the same problem types.
        RedeemError::Invalid(errors) => {
            Refusal::Invalid("the request is not valid".into(), errors).into()
        }
        RedeemError::NotFound(what) => Refusal::NotFound(format!("{what} does not exist")).into(),
        RedeemError::KeyReused(detail) => Refusal::Mismatch(detail).into(),
        RedeemError::Insufficient(shortfall) => conflict(
            "insufficient-points",
            "Not enough points",
            format!(
                "{} points needed, {} available",
                shortfall.needed, shortfall.available
            ),
        )
        .with(
            "points",
            json!({"available": shortfall.available, "needed": shortfall.needed}),
        ),
        RedeemError::OutOfStock { item, left } => conflict(
            "out-of-stock",
            "Out of stock",
            format!("{item} has {left} left"),
        )
        .with("left", json!(left)),
        RedeemError::NotOffered(detail) => {
            conflict("not-offered", "Not offered to this participant", detail)
        }
        RedeemError::Refused(detail) => Refusal::Conflict(detail).into(),
        RedeemError::Contended => Problem::new(
            503,
            "contended",
            "Too many concurrent changes",
            "other changes to the same points kept winning; retry with the same request, it is idempotent",
        ),
        RedeemError::Store(error @ PortError::Permanent(_)) => {
            tracing::error!(%error, "redemption failed");
            Problem::new(
                500,
                "internal",
                "Internal error",
                "the request could not be completed",
            )
        }
        RedeemError::Store(error) => Problem::unavailable(&error),
    }
}
