//! `POST /v1/programs/{program}/imports`: enrols participants in bulk from CSV or JSON Lines,
//! reporting what became of each row.

use crate::Admin;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use carrot::domain::error::FieldError;
use carrot::domain::import::{Format, parse};
use carrot::http::{Caller, Problem, header, json_response};
use carrot::ports::{Clock, EnrolmentStore, EventQueue};
use carrot::service::enrol::{RowResult, import};
use serde_json::json;

/// Every valid row is written and every bad one reported (the default), or, with
/// `?mode=all-or-nothing`, nothing is written unless every row is valid.
const MODES: [&str; 2] = ["per-row", "all-or-nothing"];

impl<K, S, Q, C, O, M, U> Admin<K, S, Q, C, O, M, U>
where
    S: EnrolmentStore,
    Q: EventQueue,
    C: Clock,
{
    pub(crate) async fn import(
        &self,
        caller: &Caller,
        request: &ApiGatewayV2httpRequest,
        body: &[u8],
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let content_type = header(request, "content-type").unwrap_or_default();
        let format = Format::of_content_type(content_type).ok_or_else(|| {
            Problem::new(
                415,
                "unsupported-media-type",
                "The body's format is not supported",
                format!(
                    "send text/csv (a header row, then one participant a row) or application/x-ndjson (one participant object a line), got {content_type:?}"
                ),
            )
        })?;
        let mode = request
            .query_string_parameters
            .first("mode")
            .unwrap_or(MODES[0]);
        if !MODES.contains(&mode) {
            return Err(Problem::invalid(
                "the import mode is not valid",
                vec![FieldError::new(
                    "mode",
                    format!("must be per-row or all-or-nothing, got {mode:?}"),
                )],
            ));
        }
        let now = self.clock.now();
        let parsed = parse(format, body, now)
            .map_err(|errors| Problem::invalid("the file cannot be imported", errors))?;
        let rejected: Vec<RowResult> = parsed
            .rejected
            .into_iter()
            .map(RowResult::rejected)
            .collect();
        if mode == "all-or-nothing" && !rejected.is_empty() {
            return Err(Problem::invalid(
                format!(
                    "{} of {} rows are not valid: nothing was imported",
                    rejected.len(),
                    rejected.len() + parsed.rows.len()
                ),
                Vec::new(),
            )
            .with("results", json!(rejected)));
        }
        let mut results =
            import(&self.store, &self.queue, &caller.program, &parsed.rows, now).await;
        results.extend(rejected);
        results.sort_by_key(|r| r.line);
        let count = |outcome: &str| results.iter().filter(|r| r.outcome == outcome).count();
        tracing::info!(
            program = %caller.program,
            key = %caller.key_id,
            rows = results.len(),
            errors = count("error"),
            "import"
        );
        Ok(json_response(
            200,
            &json!({
                "mode": mode,
                "rows": results.len(),
                "created": count("created"),
                "updated": count("updated"),
                "unchanged": count("unchanged"),
                "errors": count("error"),
                "results": results,
            }),
        ))
    }
}
