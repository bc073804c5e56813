//! The intake Lambda function: see `hrsync_lambda` and `infra/template.yaml`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hrsync_lambda::run(hrsync_lambda::Function::Intake).await
}
