//! The period close's routes: live and frozen leaderboards, the close's state, the report
//! (JSON and HTML), drawing records with their entrant lists, the stick's lists, and
//! reinstating a suspended or terminated participant.

use crate::Admin;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use carrot::domain::close::ClosePeriod;
use carrot::domain::error::FieldError;
use carrot::domain::period::Periods;
use carrot::domain::report::{Report, render_html};
use carrot::domain::rules::Period;
use carrot::http::{Caller, Problem, html_response, json_response};
use carrot::ports::{Clock, CloseStore, LiveIndex, Outbound, ProgramReader};
use carrot::service::leaderboard::live_standings;
use serde_json::{Value, json};

/// The stick's lists a close publishes.
const LISTS: [&str; 4] = ["zero-logins", "notices", "to-be-suspended", "sanctioned"];

fn query<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.query_string_parameters.first(name)
}

fn not_found(detail: String) -> Problem {
    Problem::new(404, "not-found", "Not found", detail)
}

fn period_of(label: &str, field: &str) -> Result<ClosePeriod, Problem> {
    ClosePeriod::parse(label).map_err(|reason| {
        Problem::invalid(
            "the period is not valid",
            vec![FieldError::new(field, reason)],
        )
    })
}

/// The page a cursor from an earlier answer's `next` names (`after`; the first page without).
fn cursor(request: &ApiGatewayV2httpRequest) -> Result<u32, Problem> {
    match query(request, "after") {
        None => Ok(0),
        Some(text) => text.parse().map_err(|_| {
            Problem::invalid(
                "the cursor is not valid",
                vec![FieldError::new(
                    "after",
                    format!("must be a cursor from `next`, got {text:?}"),
                )],
            )
        }),
    }
}

/// The cursor of the page after `page`, if any.
fn next(page: u32, pages: u32) -> Option<String> {
    (page + 1 < pages).then(|| (page + 1).to_string())
}

impl<K, S, Q, C, O, M, U> Admin<K, S, Q, C, O, M, U>
where
    S: ProgramReader + CloseStore + LiveIndex,
    C: Clock,
    O: Outbound,
{
    /// `GET /v1/programs/{program}/leaderboards/{board}?period=2026-11`: the frozen standings of a closed period,
    /// or the live ones of an open period (default: the current one).
    pub(crate) async fn leaderboard(
        &self,
        caller: &Caller,
        board_id: &str,
        request: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let versions = self
            .store
            .versions(&caller.program)
            .await
            .map_err(|e| Problem::unavailable(&e))?
            .ok_or_else(|| {
                not_found(format!("program {:?} has no configuration", caller.program))
            })?;
        let program = versions.latest();
        let board = program
            .close
            .boards
            .iter()
            .find(|b| b.id == board_id)
            .ok_or_else(|| not_found(format!("the program has no leaderboard {board_id:?}")))?;
        let label = match query(request, "period") {
            Some(label) => label.to_owned(),
            None => {
                let now = Periods::of(self.clock.now(), &program.time_zone);
                match board.period {
                    Period::Quarter => now.quarter,
                    Period::Year => now.year,
                    _ => now.month,
                }
            }
        };
        let period = period_of(&label, "period")?;
        if period.period() != board.period {
            return Err(Problem::invalid(
                "the period is not the board's",
                vec![FieldError::new(
                    "period",
                    format!(
                        "board {board_id:?} runs per {}, got {label:?}",
                        board.period.name()
                    ),
                )],
            ));
        }
        let frozen = self
            .store
            .document(&caller.program, &label, &format!("board#{board_id}"), 0)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        if let Some((text, _)) = frozen {
            let document: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            return Ok(json_response(200, &document));
        }
        if !board.is_live() {
            return Err(Problem::new(
                409,
                "published-at-close",
                "Published at close",
                format!(
                    "board {board_id:?} ranks {} by {}: its standings are published when {label} closes",
                    board.ranks_name(),
                    board.metric.name()
                ),
            ));
        }
        let (standings, exact) = live_standings(&self.store, &caller.program, board, &period)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        Ok(json_response(
            200,
            &json!({
                "board": board.id,
                "title": board.title,
                "metric": board.metric.name(),
                "period": label,
                "ranks": board.ranks_name(),
                "final": false,
                "exact": exact,
                "standings": [{"within": null, "rows": standings.shown(board.show)}],
            }),
        ))
    }

    /// `GET /v1/programs/{program}/closes/{period}`: whether the period is closed, and how far its close got.
    pub(crate) async fn close_state(
        &self,
        caller: &Caller,
        label: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        period_of(label, "period")?;
        let state = self
            .store
            .state(&caller.program, label)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        Ok(json_response(
            200,
            &match state {
                None => json!({"period": label, "status": "open"}),
                Some(state) => json!({
                    "period": label,
                    "status": if state.done { "closed" } else { "closing" },
                    "config_version": state.config_version,
                    "frozen_at": state.frozen_at,
                    "effects_applied": state.applied,
                }),
            },
        ))
    }

    async fn report_of(&self, caller: &Caller, label: &str) -> Result<Report, Problem> {
        period_of(label, "period")?;
        let (text, _) = self
            .store
            .document(&caller.program, label, "report", 0)
            .await
            .map_err(|e| Problem::unavailable(&e))?
            .ok_or_else(|| not_found(format!("{label} is not closed yet: no report")))?;
        serde_json::from_str(&text).map_err(|e| {
            tracing::error!(error = %e, "stored report unreadable");
            Problem::new(
                500,
                "internal",
                "Internal error",
                "the stored report is unreadable",
            )
        })
    }

    /// `GET /v1/programs/{program}/reports/{period}`.
    pub(crate) async fn report(
        &self,
        caller: &Caller,
        label: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        Ok(json_response(200, &self.report_of(caller, label).await?))
    }

    /// `GET /v1/programs/{program}/reports/{period}/html`.
    pub(crate) async fn report_page(
        &self,
        caller: &Caller,
        label: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        Ok(html_response(
            200,
            render_html(&self.report_of(caller, label).await?),
        ))
    }

    /// `GET /v1/programs/{program}/drawings/{drawing}/{period}?page=N`: the record, and a page of its entrants.
    pub(crate) async fn drawing(
        &self,
        caller: &Caller,
        drawing: &str,
        label: &str,
        request: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        period_of(label, "period")?;
        let page = cursor(request)?;
        let missing = || not_found(format!("no drawing {drawing:?} was drawn for {label}"));
        let (record, _) = self
            .store
            .document(&caller.program, label, &format!("drawing#{drawing}"), 0)
            .await
            .map_err(|e| Problem::unavailable(&e))?
            .ok_or_else(missing)?;
        let (entrants, pages) = self
            .store
            .document(&caller.program, label, &format!("entrants#{drawing}"), page)
            .await
            .map_err(|e| Problem::unavailable(&e))?
            .ok_or_else(missing)?;
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
        Ok(json_response(
            200,
            &json!({
                "record": parse(&record),
                "entrants": parse(&entrants),
                "next": next(page, pages),
            }),
        ))
    }

    /// `GET /v1/programs/{program}/lists/{period}/{list}?after={cursor}`: one of the stick's lists of a closed month.
    pub(crate) async fn list(
        &self,
        caller: &Caller,
        label: &str,
        list: &str,
        request: &ApiGatewayV2httpRequest,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        period_of(label, "period")?;
        if !LISTS.contains(&list) {
            return Err(not_found(format!(
                "no list {list:?} (the lists are {LISTS:?})"
            )));
        }
        let page = cursor(request)?;
        let (entries, pages) = self
            .store
            .document(&caller.program, label, &format!("list#{list}"), page)
            .await
            .map_err(|e| Problem::unavailable(&e))?
            .ok_or_else(|| {
                not_found(format!(
                    "{label} is not closed, or the cursor is past the end"
                ))
            })?;
        Ok(json_response(
            200,
            &json!({
                "period": label,
                "list": list,
                "participants": serde_json::from_str::<Value>(&entries).unwrap_or(Value::Null),
                "next": next(page, pages),
            }),
        ))
    }

    /// `POST /v1/programs/{program}/participants/{participant}/reinstate`: active again, strikes cleared, and an
    /// outbound `participant.reinstated` event so the portal restores access.
    pub(crate) async fn reinstate(
        &self,
        caller: &Caller,
        participant: &str,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let now = self.clock.now().to_string();
        let changed = self
            .store
            .reinstate(&caller.program, participant, &now)
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        if !changed {
            return Err(Problem::new(
                409,
                "not-sanctioned",
                "Nothing to reinstate",
                format!(
                    "participant {participant:?} is not enrolled, or is not suspended or terminated"
                ),
            ));
        }
        let event = json!({
            "id": format!("{}:{now}:participant.reinstated:{participant}", caller.program),
            "type": "participant.reinstated",
            "program": caller.program,
            "participant": participant,
            "status": "active",
            "occurred_at": now,
            "by": caller.key_id,
        });
        self.outbound
            .publish("participant.reinstated", &event.to_string())
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        tracing::info!(program = %caller.program, key = %caller.key_id, "participant reinstated");
        Ok(json_response(
            200,
            &json!({"participant": participant, "status": "active"}),
        ))
    }
}
