//! Runs the auth-server as a local process configured from the Deployment the operator
//! rendered: the same environment (secret references resolved), the mounted Secrets written
//! to a directory and kept in sync (as the kubelet would, with a delay), ports on 127.0.0.1.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::Client;
use palisade_wire::contract::env;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// A running local auth-server; killed when dropped.
pub struct LocalAuthServer {
    child: Child,
    pub public: String,
    pub admin: String,
    pub dir: PathBuf,
    sync: tokio::task::JoinHandle<()>,
}

async fn secret_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    Ok(s.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

async fn write_volume(client: &Client, ns: &str, secret: &str, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (key, value) in secret_data(client, ns, secret).await? {
        // Write then rename, as the kubelet swaps its symlink: readers never see half a file.
        let tmp = dir.join(format!(".{key}.tmp"));
        std::fs::write(&tmp, &value)?;
        std::fs::rename(&tmp, dir.join(key))?;
    }
    Ok(())
}

impl LocalAuthServer {
    /// Path of the auth-server binary built next to the running executable.
    pub fn binary() -> PathBuf {
        let exe = std::env::current_exe().expect("own path");
        let mut dir = exe.parent().expect("dir").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        dir.join("palisade-auth-server")
    }

    /// Starts the auth-server of Deployment `ns/name` on `public`/`admin` (host:port on
    /// 127.0.0.1). Mounted Secrets are re-synced every `sync_every`.
    pub async fn start(
        client: &Client,
        ns: &str,
        name: &str,
        public: &str,
        admin: &str,
        sync_every: Duration,
    ) -> anyhow::Result<Self> {
        let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
            .get(name)
            .await?;
        let pod = deployment
            .spec
            .and_then(|s| s.template.spec)
            .ok_or_else(|| anyhow::anyhow!("Deployment {name} has no pod spec"))?;
        let container = pod
            .containers
            .first()
            .ok_or_else(|| anyhow::anyhow!("no container"))?;
        let dir =
            std::env::temp_dir().join(format!("palisade-local-{ns}-{name}-{}", std::process::id()));
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for e in container.env.clone().unwrap_or_default() {
            let value = match (e.value, e.value_from.and_then(|v| v.secret_key_ref)) {
                (Some(v), _) => v,
                (None, Some(sel)) => {
                    let data = secret_data(client, ns, &sel.name).await?;
                    String::from_utf8(data.get(&sel.key).cloned().unwrap_or_default())?
                }
                _ => continue,
            };
            vars.insert(e.name, value);
        }
        // Mounted Secret volumes become directories under `dir`, mirroring the mount paths.
        let mut mounts = Vec::new();
        for m in container.volume_mounts.clone().unwrap_or_default() {
            let Some(secret) = pod
                .volumes
                .as_ref()
                .and_then(|vs| vs.iter().find(|v| v.name == m.name))
                .and_then(|v| v.secret.as_ref())
                .and_then(|s| s.secret_name.clone())
            else {
                continue;
            };
            let local = dir.join(m.mount_path.trim_start_matches('/'));
            write_volume(client, ns, &secret, &local).await?;
            for value in vars.values_mut() {
                if value.starts_with(&m.mount_path) {
                    *value = value.replacen(&m.mount_path, local.to_str().unwrap(), 1);
                }
            }
            mounts.push((secret, local));
        }
        vars.insert(env::PUBLIC_ADDR.into(), public.into());
        vars.insert(env::ADMIN_ADDR.into(), admin.into());
        vars.insert(env::LOG_FORMAT.into(), "json".into());
        let log = std::fs::File::create(dir.join("auth-server.log"))?;
        let child = Command::new(Self::binary())
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&vars)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let (c, namespace) = (client.clone(), ns.to_string());
        let sync = tokio::spawn(async move {
            loop {
                tokio::time::sleep(sync_every).await;
                for (secret, local) in &mounts {
                    let _ = write_volume(&c, &namespace, secret, local).await;
                }
            }
        });
        let server = LocalAuthServer {
            child,
            public: public.into(),
            admin: admin.into(),
            dir,
            sync,
        };
        server.wait_ready(Duration::from_secs(30)).await?;
        Ok(server)
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let start = std::time::Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("http://{}/readyz", self.public)).await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if start.elapsed() > timeout {
                let log = std::fs::read_to_string(self.log()).unwrap_or_default();
                anyhow::bail!("auth-server not ready after {timeout:?}:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The file the process's stdout and stderr go to.
    pub fn log(&self) -> PathBuf {
        self.dir.join("auth-server.log")
    }

    /// Waits for the process (used by the demo runner).
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

impl Drop for LocalAuthServer {
    fn drop(&mut self) {
        self.sync.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
