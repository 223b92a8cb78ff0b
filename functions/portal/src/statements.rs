//! What a participant sees of their standing: the statement, the ledger page by page, and
//! the program's rules in plain terms (the same sentences `carrot validate` prints).

use crate::{Call, Permission, Portal, Route};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use carrot::domain::describe::plain_rules;
use carrot::domain::error::FieldError;
use carrot::http::{Problem, json_response, no_route};
use carrot::ports::{Clock, ProgramReader};
use carrot::service::statement::{DEFAULT_PAGE, MAX_PAGE, StatementError, ledger, statement};

const STATEMENT: &str = "GET /v1/programs/{program}/participants/{participant}";
const LEDGER: &str = "GET /v1/programs/{program}/participants/{participant}/ledger";
const RULES: &str = "GET /v1/programs/{program}/rules";

pub(crate) const ROUTES: &[Route] = &[
    Route {
        key: STATEMENT,
        permission: Permission::ParticipantsRead,
    },
    Route {
        key: LEDGER,
        permission: Permission::ParticipantsRead,
    },
    Route {
        key: RULES,
        permission: Permission::ParticipantsRead,
    },
];

impl<C: Clock> Portal<C> {
    pub(crate) async fn statements(
        &self,
        route: &str,
        call: &Call<'_>,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        match route {
            STATEMENT => statement(
                &self.store,
                &self.programs,
                call.program,
                call.participant,
                call.now,
            )
            .await
            .map(|statement| json_response(200, &statement))
            .map_err(problem),
            LEDGER => {
                let query = &call.request.query_string_parameters;
                let limit = match query.first("limit") {
                    None => DEFAULT_PAGE,
                    Some(text) => text
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            Problem::invalid(
                                "the page size is not valid",
                                vec![FieldError::new(
                                    "limit",
                                    format!(
                                        "must be a whole number from 1 to {MAX_PAGE}, got {text:?}"
                                    ),
                                )],
                            )
                        })?,
                };
                ledger(
                    &self.store,
                    call.program,
                    call.participant,
                    limit,
                    query.first("after"),
                )
                .await
                .map(|page| json_response(200, &page))
                .map_err(problem)
            }
            RULES => {
                let versions = self
                    .programs
                    .versions(call.program)
                    .await
                    .map_err(|e| Problem::unavailable(&e))?
                    .ok_or_else(|| problem(StatementError::NoProgram(call.program.to_owned())))?;
                Ok(json_response(200, &plain_rules(&versions, call.now)))
            }
            other => Err(no_route(other)),
        }
    }
}

fn problem(error: StatementError) -> Problem {
    match error {
        StatementError::NoProgram(_) => {
            Problem::new(404, "not-found", "No configuration", error.to_string())
        }
        StatementError::NotEnrolled(_) => {
            Problem::new(404, "not-found", "No such participant", error.to_string())
        }
        StatementError::BadCursor => Problem::invalid(
            "the cursor is not valid",
            vec![FieldError::new(
                "after",
                "must be the `next` of a previous page of this ledger",
            )],
        ),
        StatementError::Store(error) => Problem::unavailable(&error),
        StatementError::Corrupt(what) => {
            tracing::error!(%what, "corrupt participant state");
            Problem::new(
                500,
                "internal",
                "Stored state is unreadable",
                "the participant's stored state could not be read",
            )
        }
    }
}
