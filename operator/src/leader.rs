//! Leader election on a coordination.k8s.io Lease, so that two operator replicas never
//! reconcile at once. A replica that loses the lease exits (and is restarted) rather than risk
//! a second writer, as controller-runtime does.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseParams};
use std::time::Duration;
use tokio::sync::watch;

/// How long a lease stays valid without renewal; a standby takes over at most this long (plus
/// one poll) after the leader dies.
pub const LEASE_DURATION_SECONDS: u64 = 10;
/// Renew this long before the lease would expire.
pub const LEASE_GRACE_SECONDS: u64 = 3;

/// Where and as whom to run the election.
pub struct Election {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
}

/// Blocks until this process holds the lease; returns a channel that turns `false` if the
/// lease is ever lost.
pub async fn acquire(client: Client, election: Election) -> anyhow::Result<watch::Receiver<bool>> {
    let manager = LeaseManagerBuilder::new(client, &election.lease_name)
        .with_namespace(&election.namespace)
        .with_parameters(LeaseParams::new(
            election.identity.clone(),
            LEASE_DURATION_SECONDS,
            LEASE_GRACE_SECONDS,
        ))
        .build()
        .await?;
    let (mut channel, _task) = manager.watch().await;
    tracing::info!(lease = %election.lease_name, identity = %election.identity, "waiting for leadership");
    while !*channel.borrow_and_update() {
        if channel.changed().await.is_err() {
            anyhow::bail!("lease manager stopped before this process became leader");
        }
    }
    tracing::info!(identity = %election.identity, "became leader");
    Ok(channel)
}

/// Resolves when leadership is lost (or the lease manager stops).
pub async fn lost(mut channel: watch::Receiver<bool>) {
    loop {
        if channel.changed().await.is_err() || !*channel.borrow_and_update() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
