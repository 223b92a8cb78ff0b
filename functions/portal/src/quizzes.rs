//! Quizzes: administrators define them (the answer key stays here), participants list the
//! ones open to them and make attempts graded on the server. An attempt queues a
//! `quiz.completed` event, so the program's rules award its points exactly once.

use crate::{Call, Permission, Portal, Route};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use carrot::http::{Problem, json_object, json_response, no_route};
use carrot::ports::Clock;
use carrot::service::quiz::{attempt, offers, put_quiz};
use serde_json::{Value, json};

const DEFINE: &str = "PUT /v1/programs/{program}/quizzes/{quiz}";
const LIST: &str = "GET /v1/programs/{program}/participants/{participant}/quizzes";
const ATTEMPT: &str =
    "POST /v1/programs/{program}/participants/{participant}/quizzes/{quiz}/attempts";

pub(crate) const ROUTES: &[Route] = &[
    Route {
        key: DEFINE,
        permission: Permission::Admin,
    },
    Route {
        key: LIST,
        permission: Permission::ParticipantsRead,
    },
    Route {
        key: ATTEMPT,
        permission: Permission::EventsWrite,
    },
];

impl<C: Clock> Portal<C> {
    pub(crate) async fn quizzes(
        &self,
        route: &str,
        call: &Call<'_>,
    ) -> Result<ApiGatewayV2httpResponse, Problem> {
        let quiz = call
            .request
            .path_parameters
            .get("quiz")
            .map(String::as_str)
            .unwrap_or_default();
        match route {
            DEFINE => {
                let body = Value::Object(json_object(call.body)?);
                let (quiz, created) =
                    put_quiz(&self.store, call.program, quiz, &body, call.actor, call.now).await?;
                Ok(json_response(if created { 201 } else { 200 }, &quiz))
            }
            LIST => {
                let offers = offers(
                    &self.store,
                    &self.programs,
                    call.program,
                    call.participant,
                    call.now,
                )
                .await?;
                Ok(json_response(200, &json!({ "quizzes": offers })))
            }
            ATTEMPT => {
                let body = json_object(call.body)?;
                let (graded, created) = attempt(
                    &self.store,
                    &self.queue,
                    call.program,
                    call.participant,
                    quiz,
                    &body,
                    call.now,
                )
                .await?;
                Ok(json_response(if created { 201 } else { 200 }, &graded))
            }
            other => Err(no_route(other)),
        }
    }
}
