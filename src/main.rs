//! The `wagate` binary: parse the configuration and run the gateway
//! ([`wagate::app::run`] does the rest).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = wagate::config::Config::parse_args();
    match wagate::app::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Logged once, here; `{:#}` prints the whole context chain.
            tracing::error!(error = %format!("{err:#}"), "wagate stopped with an error");
            eprintln!("wagate: {err:#}");
            ExitCode::FAILURE
        }
    }
}
