//! TLS on both bindings, with a site CA made for the test: MQTT over TLS and HTTPS verified
//! against the CA, passwords over TLS, and client certificates that authenticate as their CN
//! (OpenMTC's `ca_certs`, `cert_file`, `key_file`).

mod common;
use common::certs::Pki;
use common::*;
use m2mhub::client::{Client, ClientError, Options, TlsOptions};
use m2mhub::config::Secret;
use m2mhub::onem2m::{ResourceType, Rsc};
use serde_json::json;

/// A hub with TLS listeners that takes nobody without credentials; user `Ca` has a password.
fn tls_hub(pki: &Pki, require_client_cert: bool) -> Hub {
    let pw = pki.dir.path().join("passwords");
    passwd(&pw, "Ca", "Ca-secret");
    Hub::start_with(&[
        ("M2MHUB_SECURITY__ANONYMOUS", "nobody"),
        ("M2MHUB_SECURITY__PASSWORD_FILE", pw.to_str().unwrap()),
        ("M2MHUB_MQTT__TLS_LISTEN", "127.0.0.1:0"),
        ("M2MHUB_HTTP__TLS_LISTEN", "127.0.0.1:0"),
        ("M2MHUB_TLS__CERT_FILE", pki.cert_file.to_str().unwrap()),
        ("M2MHUB_TLS__KEY_FILE", pki.key_file.to_str().unwrap()),
        ("M2MHUB_TLS__CA_CERTS", pki.ca_file.to_str().unwrap()),
        (
            "M2MHUB_TLS__REQUIRE_CLIENT_CERT",
            if require_client_cert { "true" } else { "false" },
        ),
    ])
}

fn with_password(pki: &Pki, user: &str, password: &str) -> Options {
    Options {
        tls: TlsOptions {
            ca_file: Some(pki.ca_file.clone()),
            ..TlsOptions::default()
        },
        username: Some(user.into()),
        password: Some(Secret::new(password)),
        ..Options::default()
    }
}

fn with_certificate(pki: &Pki, cn: &str) -> Options {
    let (cert, key) = pki.client(cn);
    Options {
        tls: TlsOptions {
            ca_file: Some(pki.ca_file.clone()),
            cert_file: Some(cert),
            key_file: Some(key),
        },
        ..Options::default()
    }
}

/// Registers `ae` (named `rn`) and writes a reading; both must succeed.
async fn register_and_write(c: &Client, rn: &str) {
    let r = c
        .create(
            "cse-in",
            ResourceType::Ae,
            json!({"m2m:ae":{"rn":rn,"api":"Ntls","rr":false}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    let r = c
        .create(
            &format!("cse-in/{rn}"),
            ResourceType::Container,
            json!({"m2m:cnt":{"rn":"c"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
}

#[tokio::test]
async fn mqtts_and_https_with_a_password_verified_against_the_site_ca() {
    let pki = Pki::new("m2mhub test CA");
    let hub = tls_hub(&pki, false);
    let mqtts = format!("mqtts://127.0.0.1:{}#id-in", hub.mqtts.unwrap().port());
    let https = format!("https://localhost:{}", hub.https.unwrap().port());

    let c = Client::connect(&mqtts, "Ca", with_password(&pki, "Ca", "Ca-secret"))
        .await
        .unwrap();
    register_and_write(&c, "overmqtts").await;
    let h = Client::connect(&https, "Ca", with_password(&pki, "Ca", "Ca-secret"))
        .await
        .unwrap();
    let r = h.retrieve("cse-in/overmqtts/c").await.unwrap();
    assert_eq!(r.rsc, Rsc::OK, "{r:?}");
    // A wrong password is refused over TLS too.
    let e = Client::connect(&mqtts, "Ca", with_password(&pki, "Ca", "wrong"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, ClientError::Connect(..)), "{e}");

    // A client that does not trust the site CA does not talk to the hub at all.
    let stranger = Pki::new("another CA");
    let e = Client::connect(&mqtts, "Ca", with_password(&stranger, "Ca", "Ca-secret"))
        .await
        .err()
        .expect("the hub's certificate was accepted without its CA");
    assert!(matches!(e, ClientError::Connect(..)), "{e}");
    let h = Client::connect(&https, "Ca", with_password(&stranger, "Ca", "Ca-secret"))
        .await
        .unwrap();
    assert!(h.retrieve("cse-in").await.is_err());
}

#[tokio::test]
async fn a_client_certificate_authenticates_as_its_cn() {
    let pki = Pki::new("m2mhub test CA");
    let hub = tls_hub(&pki, false);
    let mqtts = format!("mqtts://127.0.0.1:{}#id-in", hub.mqtts.unwrap().port());
    let https = format!("https://127.0.0.1:{}", hub.https.unwrap().port());

    // No password: the certificate is the credential, Ccert.
    let c = Client::connect(&mqtts, "Ccert", with_certificate(&pki, "Ccert"))
        .await
        .unwrap();
    register_and_write(&c, "cert").await;
    let h = Client::connect(&https, "Ccert", with_certificate(&pki, "Ccert"))
        .await
        .unwrap();
    let r = h
        .create(
            "cse-in/cert/c",
            ResourceType::ContentInstance,
            json!({"m2m:cin":{"con":"via https"}}),
        )
        .await
        .unwrap();
    assert_eq!(r.rsc, Rsc::CREATED, "{r:?}");
    // The certificate's CN is who the client is: it cannot act as someone else.
    let other = Client::connect(&https, "Ca", with_certificate(&pki, "Cother"))
        .await
        .unwrap();
    let r = other.retrieve("cse-in/cert/c").await.unwrap();
    assert_eq!(r.rsc, Rsc::ORIGINATOR_HAS_NO_PRIVILEGE, "{r:?}");
    // Without a certificate or a password, nobody gets in.
    let bare = Options {
        tls: TlsOptions {
            ca_file: Some(pki.ca_file.clone()),
            ..TlsOptions::default()
        },
        ..Options::default()
    };
    assert!(Client::connect(&mqtts, "Cx", bare).await.is_err());
}

#[tokio::test]
async fn require_client_cert_turns_away_clients_without_one() {
    let pki = Pki::new("m2mhub test CA");
    let hub = tls_hub(&pki, true);
    let mqtts = format!("mqtts://127.0.0.1:{}#id-in", hub.mqtts.unwrap().port());
    // With TLS 1.3 the client learns of the refusal only when it reads: a short wait.
    let quick = Options {
        timeout: std::time::Duration::from_secs(2),
        ..with_password(&pki, "Ca", "Ca-secret")
    };
    let e = Client::connect(&mqtts, "Ca", quick)
        .await
        .err()
        .expect("a client without a certificate got in");
    assert!(matches!(e, ClientError::Connect(..)), "{e}");
    let c = Client::connect(&mqtts, "Ccert", with_certificate(&pki, "Ccert"))
        .await
        .unwrap();
    register_and_write(&c, "cert").await;
    // The plain listener is still there for this machine's own tools.
    let mut local = Device::connect_as(hub.mqtt, "Ca", "Ca-secret").await;
    local.listen_responses("Ca").await;
    assert_eq!(rsc(&local.request("Ca", retrieve("cse-in")).await), 2000);
}
