mod isolation;
mod orders;
mod quizzes;
mod statements;
