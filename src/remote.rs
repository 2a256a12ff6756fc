//! Registration with a remote CSE (an MN-CSE with its IN-CSE, digest §6.1): create our
//! `<remoteCSE>` on the registrar, mirror the registrar's CSEBase as a local `<remoteCSE>`,
//! and check the registration at every interval, creating it again when the registrar lost it
//! (a registrar that restarted on a fresh database). Runs through the client library over the
//! registrar's MQTT broker or HTTP binding.

use crate::client::{Client, Options};
use crate::config::RemoteCseConfig;
use crate::cse::{Cse, Registrar};
use crate::onem2m::primitive::ADVERTISED_RELEASES;
use crate::onem2m::{MqttUrl, ResourceType, Rsc};
use serde_json::{json, Value};
use std::time::Duration;

/// Keeps this CSE registered with `remote` for as long as the process runs.
pub fn spawn(cse: Cse, remote: RemoteCseConfig) {
    tokio::spawn(run(cse, remote));
}

fn endpoint(remote: &RemoteCseConfig) -> String {
    let poa = remote.poa[0].trim_end_matches('/');
    if MqttUrl::is_mqtt(poa) {
        format!("{poa}#{}", remote.cse_id)
    } else {
        poa.to_string()
    }
}

async fn run(cse: Cse, remote: RemoteCseConfig) {
    let interval = Duration::from_secs(remote.reregister_interval_s);
    let me = cse.identity().clone();
    let opts = Options {
        timeout: Duration::from_secs(10),
        ..Options::default()
    }
    .with_peer_auth(&remote.auth());
    let mut client: Option<Client> = None;
    let mut registered = false;
    loop {
        if client.is_none() {
            match Client::connect(&endpoint(&remote), &me.csi, opts.clone()).await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tracing::warn!(registrar = %remote.cse_id, error = %e, "cannot reach the registrar")
                }
            }
        }
        if let Some(c) = &client {
            match ensure(c, &cse, &remote, registered).await {
                Ok(()) if !registered => {
                    tracing::info!(registrar = %remote.cse_id, "registered with the registrar CSE");
                    registered = true;
                }
                Ok(()) => {}
                Err(why) => {
                    tracing::warn!(registrar = %remote.cse_id, %why, "registration not confirmed; trying again");
                    registered = false;
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// One round: our `<remoteCSE>` on the registrar exists (or is created), and the registrar is
/// mirrored here.
///
/// Until this process has seen the registration confirmed, it starts by creating it (a 4105
/// says it exists): a registrar that requires credentials lets us act as our CSE-ID only once
/// our registration has bound it to them, so a retrieve first could not even be delivered.
/// Later rounds retrieve it, and create it again if the registrar lost it.
async fn ensure(
    c: &Client,
    cse: &Cse,
    remote: &RemoteCseConfig,
    confirmed: bool,
) -> Result<(), String> {
    let me = cse.identity();
    let registrar_cb = format!("/{}/{}", remote.cse_id, remote.name);
    let ours = format!("{registrar_cb}/{}", me.id());
    let exists = if confirmed {
        let found = c.retrieve(&ours).await.map_err(|e| e.to_string())?;
        match found.rsc {
            Rsc::OK => true,
            Rsc::NOT_FOUND => false,
            other => {
                return Err(format!(
                    "the registrar answered {other}: {}",
                    found.dbg().unwrap_or_default()
                ))
            }
        }
    } else {
        false
    };
    if !exists {
        let csr = json!({"m2m:csr": {
            "rn": me.id(),
            "csi": me.csi,
            "cb": cse.cse_base_address(),
            "rr": true,
            "poa": remote.own_poa,
            "cst": cse.kind().cst(),
            "srv": ADVERTISED_RELEASES,
        }});
        let made = c
            .create(&registrar_cb, ResourceType::RemoteCse, csr)
            .await
            .map_err(|e| e.to_string())?;
        if made.rsc != Rsc::CREATED && made.rsc != Rsc::CONFLICT {
            return Err(format!(
                "the registrar answered {}: {}",
                made.rsc,
                made.dbg().unwrap_or_default()
            ));
        }
    }
    let cb = c.retrieve(&registrar_cb).await.map_err(|e| e.to_string())?;
    let attrs = cb
        .pc
        .as_ref()
        .and_then(|pc| pc.get("m2m:cb"))
        .and_then(Value::as_object)
        .ok_or_else(|| format!("the registrar's CSEBase could not be read ({})", cb.rsc))?;
    cse.mirror_registrar(Registrar {
        csi: format!("/{}", remote.cse_id),
        cb: registrar_cb,
        poa: remote.poa.clone(),
        base: attrs.clone(),
    })
    .await
    .map_err(|e| e.to_string())
}
