//! `fakewa --listen 127.0.0.1:PORT`: the fake WhatsApp server as a process,
//! WebSocket at `/ws/chat` and the admin API on the same port.

use std::net::SocketAddr;

use clap::Parser;

/// A fake WhatsApp server for tests and benchmarks (never for production).
#[derive(Debug, Parser)]
#[command(name = "fakewa", version)]
struct Args {
    /// Address to listen on (WebSocket `/ws/chat` and `/admin/...`).
    #[arg(long, env = "FAKEWA_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Keep a transcript of every stanza in memory (off for long benchmarks).
    #[arg(long, env = "FAKEWA_RECORD_STANZAS", default_value_t = false)]
    record_stanzas: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the address line.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "fakewa=info".into()),
        )
        .init();
    let args = Args::parse();
    let config = fakewa::Config {
        listen: args.listen,
        record_stanzas: args.record_stanzas,
        ..fakewa::Config::default()
    };
    let server = fakewa::FakeServer::start(config).await?;
    // The one line scripts read to learn the port.
    println!("fakewa listening on {}", server.addr());
    tokio::signal::ctrl_c().await?;
    drop(server);
    Ok(())
}
