//! Runs a provider's auth-server as a local process on 127.0.0.1, configured from the
//! Deployment the operator rendered (used by `scripts/demo`):
//!   run-local-auth-server <namespace> <name> <public host:port> <admin host:port>

use palisade_e2e::local_auth_server::LocalAuthServer;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [ns, name, public, admin] = args.as_slice() else {
        anyhow::bail!(
            "usage: run-local-auth-server <namespace> <name> <public host:port> <admin host:port>"
        );
    };
    let client = kube::Client::try_default().await?;
    let server =
        LocalAuthServer::start(&client, ns, name, public, admin, Duration::from_secs(5)).await?;
    println!(
        "auth-server for {ns}/{name} ready on http://{public} (admin http://{admin}); logs in {}",
        server.dir.display()
    );
    // Ctrl-C, or SIGTERM from the demo's cleanup: either way the server stops with this
    // process (dropping it kills the child), instead of outliving it on the demo's ports.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => stopped?,
        _ = term.recv() => {}
    }
    drop(server);
    Ok(())
}
