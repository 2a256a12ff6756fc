//! `m2mhub request`: one request through the client library, the response printed as JSON.

use clap::{Parser, ValueEnum};
use m2mhub::client::{Client, Options, TlsOptions};
use m2mhub::config::Secret;
use m2mhub::onem2m::{Operation, ResourceType};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
pub struct Args {
    /// mqtt://host:port#cse-id, or http://host:port
    #[arg(long, short)]
    endpoint: String,
    /// Originator (X-M2M-Origin / fr): an AE-ID, or "" / C / S to register.
    #[arg(long, short, default_value = "")]
    from: String,
    /// Seconds to wait for the response.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// MQTT client ID (default: A::<originator>).
    #[arg(long)]
    client_id: Option<String>,
    /// Release version indicator.
    #[arg(long, default_value = "3")]
    rvi: String,
    /// Resource type to create: a number or ae, cnt, cin, sub, acp, grp, csr. For discover,
    /// the type to look for.
    #[arg(long)]
    ty: Option<String>,
    /// Content: JSON, or @file to read it from a file.
    #[arg(long, short)]
    content: Option<String>,
    /// Result content (rcn).
    #[arg(long)]
    rcn: Option<u64>,
    /// Filter criteria as a JSON object, e.g. '{"lbl":["room:1"],"lim":10}'.
    #[arg(long)]
    fc: Option<String>,
    /// CA certificate that signed the server's, for mqtts:// and https:// (default: the
    /// system roots).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Client certificate to present (PEM), with --key-file.
    #[arg(long)]
    cert_file: Option<PathBuf>,
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// User name (MQTT CONNECT, or HTTP Basic).
    #[arg(long, short)]
    username: Option<String>,
    /// Password for --username; better given in M2MHUB_PASSWORD than on the command line,
    /// where other users of the machine can see it.
    #[arg(long, env = "M2MHUB_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    operation: Op,
    /// Target address (`to`), e.g. cse-in/myae/cnt or /id-in/cse-in.
    target: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Op {
    Create,
    Retrieve,
    Update,
    Delete,
    Discover,
    Notify,
}

fn resource_type(s: &str) -> Result<u64, String> {
    let named = match s {
        "acp" => Some(ResourceType::AccessControlPolicy),
        "ae" => Some(ResourceType::Ae),
        "cnt" => Some(ResourceType::Container),
        "cin" => Some(ResourceType::ContentInstance),
        "cb" => Some(ResourceType::CseBase),
        "grp" => Some(ResourceType::Group),
        "csr" => Some(ResourceType::RemoteCse),
        "sub" => Some(ResourceType::Subscription),
        _ => None,
    };
    match named {
        Some(t) => Ok(t.code() as u64),
        None => s
            .parse()
            .map_err(|_| format!("--ty '{s}' is neither a number nor a type name")),
    }
}

fn json_arg(name: &str, s: &str) -> Result<Value, String> {
    let text = match s.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read {path}: {e}"))?
        }
        None => s.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| format!("{name} is not valid JSON: {e}"))
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("m2mhub request: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(send(args)) {
        Ok((rsp, failed)) => {
            println!("{}", serde_json::to_string_pretty(&rsp).unwrap_or_default());
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("m2mhub request: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Transport(msg)) => {
            eprintln!("m2mhub request: {msg}");
            ExitCode::from(3)
        }
    }
}

enum Failure {
    Usage(String),
    Transport(String),
}

async fn send(args: Args) -> Result<(Value, bool), Failure> {
    let content = args
        .content
        .as_deref()
        .map(|c| json_arg("--content", c))
        .transpose()
        .map_err(Failure::Usage)?;
    let ty = args
        .ty
        .as_deref()
        .map(resource_type)
        .transpose()
        .map_err(Failure::Usage)?;
    let mut fc = match args
        .fc
        .as_deref()
        .map(|f| json_arg("--fc", f))
        .transpose()
        .map_err(Failure::Usage)?
    {
        None => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err(Failure::Usage("--fc must be a JSON object".into())),
    };
    let opts = Options {
        timeout: Duration::from_secs(args.timeout.max(1)),
        client_id: args.client_id.clone(),
        rvi: args.rvi.clone(),
        tls: TlsOptions {
            ca_file: args.ca_file.clone(),
            cert_file: args.cert_file.clone(),
            key_file: args.key_file.clone(),
        },
        username: args.username.clone(),
        password: args.password.clone().map(Secret::new),
    };
    let client = Client::connect(&args.endpoint, &args.from, opts)
        .await
        .map_err(|e| Failure::Transport(e.to_string()))?;
    let op = match args.operation {
        Op::Create => Operation::Create,
        Op::Retrieve | Op::Discover => Operation::Retrieve,
        Op::Update => Operation::Update,
        Op::Delete => Operation::Delete,
        Op::Notify => Operation::Notify,
    };
    let mut req = client.request(op, &args.target);
    req.rcn = args.rcn;
    req.pc = content;
    match args.operation {
        Op::Create => {
            req.ty = Some(ty.ok_or_else(|| Failure::Usage("create needs --ty".into()))?);
            if req.pc.is_none() {
                return Err(Failure::Usage("create needs --content".into()));
            }
        }
        Op::Update | Op::Notify if req.pc.is_none() => {
            return Err(Failure::Usage("this operation needs --content".into()));
        }
        Op::Discover => {
            let fc = fc.get_or_insert_with(Map::new);
            fc.insert("fu".into(), Value::from(1));
            if let Some(ty) = ty {
                fc.insert("ty".into(), Value::from(vec![ty]));
            }
        }
        _ => {}
    }
    req.fc = fc;
    let rsp = client
        .send(req)
        .await
        .map_err(|e| Failure::Transport(e.to_string()))?;
    Ok((rsp.to_value(), rsp.rsc.is_error()))
}
