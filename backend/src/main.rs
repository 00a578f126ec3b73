//! The `fenpay` command line: serve | migrate | openapi | create-admin | verify-ledger |
//! emulator | doctor | trigger | replay | reconcile | app.

use std::io::Read;

use api_types::auth::RegisterRequest;
use clap::{Parser, Subcommand};
use fenpay::{db, service, telemetry, Application, Settings};
use validator::Validate;

#[global_allocator]
static GLOBAL: fenpay::MiMalloc = fenpay::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fenpay",
    version,
    about = "Self-hosted payment backend for WeChat Pay v3 and Alipay"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run migrations and serve the API, the SPA and (in development) the emulator.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Run only the WeChat Pay v3 + Alipay emulator (keys in DEV_KEYS_DIR, generated once).
    Emulator,
    /// Check every account's points and membership against its balance ledger; prints
    /// the differences and exits non-zero when there is any.
    VerifyLedger,
    /// Create an administrator (or promote an existing user after checking its password).
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Read from FENPAY_ADMIN_PASSWORD, or from stdin when absent.
        #[arg(long, env = "FENPAY_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Check the configuration and credentials without starting the server: every
    /// problem names its variable (non-zero exit on any); prints what would be signed.
    Doctor {
        /// Also call the providers' read-only endpoints (certificates, a query of a
        /// trade that does not exist) and report what they answered.
        #[arg(long)]
        probe: bool,
    },
    /// Reconcile the providers' daily bills of one China-time day with orders and refunds
    /// now; prints a summary and the differences. Exit code 0: no differences, 1:
    /// differences, 2: a bill not ready, a provider failure or another error.
    Reconcile {
        /// The day, `YYYY-MM-DD` (China time, as the providers cut their bills).
        #[arg(long)]
        date: chrono::NaiveDate,
        /// One provider (`wechat` or `alipay`); every configured one when omitted.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Manage merchant apps (other applications using fenpay with an API key). Answers are
    /// JSON on stdout; exit code 2 for bad input or an unknown app, 1 for other failures.
    #[command(subcommand)]
    App(AppCommand),
    /// Manage the product catalog (the same rules as the admin API; each change is in the
    /// audit log with actor `cli`). Answers are JSON lines on stdout; exit code 2 for bad
    /// input, an unknown product or a refused change, 1 for other failures.
    #[command(subcommand)]
    Product(ProductCommand),
    /// WeChat Pay consumer complaints (消费者投诉 2.0).
    #[command(subcommand)]
    Complaints(ComplaintsCommand),
    /// Development: drive the emulator against the running server.
    #[command(subcommand)]
    Trigger(Trigger),
    /// Send a stored notification (a payment record) to the local server's callback
    /// route again; it goes through verification again.
    Replay {
        /// The payment record's id (GET /api/v1/admin/orders/{order_no} lists them).
        payment_record_id: i64,
        /// The server's base URL (default: http://$BIND_ADDR).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProductCommand {
    /// Every product, on sale or retired, in display order.
    List,
    /// Add a product (on sale at once, shown last).
    Create {
        /// `points` or `membership`.
        #[arg(long, value_parser = ["points", "membership"])]
        kind: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        price_fen: i64,
        #[arg(long)]
        points: Option<i64>,
        #[arg(long)]
        membership_days: Option<i64>,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long)]
        rank: Option<i32>,
        /// Units for sale (omit: unlimited).
        #[arg(long)]
        stock: Option<i64>,
    },
    /// Change a product; new orders only (orders already created keep their snapshot).
    Update {
        id: i64,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        price_fen: Option<i64>,
        #[arg(long)]
        points: Option<i64>,
        #[arg(long)]
        membership_days: Option<i64>,
        #[arg(long)]
        tier: Option<String>,
        #[arg(long)]
        rank: Option<i32>,
    },
    /// Take a product off sale (its orders stay intact).
    Retire { id: i64 },
    /// Put a retired product on sale again.
    Restore { id: i64 },
    /// Add units to a limited-stock product.
    Restock {
        id: i64,
        #[arg(long)]
        add: i64,
    },
    /// Show products in this order (ids not listed follow in their current order).
    Reorder { ids: Vec<i64> },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app; prints {"app_id","api_key","webhook_secret","epay_pid","epay_key"}
    /// once (the key and secrets are never shown again).
    Create {
        #[arg(long)]
        name: String,
        /// Absolute http(s) URL that receives the app's signed events.
        #[arg(long)]
        webhook_url: Option<String>,
        /// `live` (sk_live_ keys) or `test` (sk_test_ keys, for the emulator).
        #[arg(long, default_value = "live", value_parser = ["live", "test"])]
        mode: String,
        /// A host the app's return_url may point at (repeat the option for more;
        /// `*.example.com` allows subdomains).
        #[arg(long = "return-host")]
        return_hosts: Vec<String>,
        /// `builtin` (fenpay credits points / memberships) or `webhook` (the app does).
        #[arg(long, default_value = "builtin", value_parser = ["builtin", "webhook"])]
        fulfilment: String,
        /// Largest order in fen (default and upper bound: MERCHANT_MAX_AMOUNT_FEN).
        #[arg(long)]
        max_amount_fen: Option<i64>,
        /// Draw epay (易支付) credentials and enable the epay gateway for the app.
        #[arg(long)]
        epay: bool,
    },
    /// Replace an app's API key; prints {"app_id","api_key"}. The old key stops working at once.
    RotateKey { app_id: String },
    /// One JSON object per app and line, without secrets.
    List,
    /// Revoke an app: its key is refused from now on, for good.
    Revoke { app_id: String },
    /// Change an app's settings; prints the app (and an epay key drawn by `--epay on`).
    Set {
        app_id: String,
        #[arg(long)]
        name: Option<String>,
        /// A URL, or `none` to remove it.
        #[arg(long)]
        webhook_url: Option<String>,
        /// The allowed return hosts, comma-separated (replaces the list; "" clears it).
        #[arg(long)]
        return_hosts: Option<String>,
        #[arg(long, value_parser = ["builtin", "webhook"])]
        fulfilment: Option<String>,
        #[arg(long)]
        max_amount_fen: Option<i64>,
        /// `on` enables the epay gateway (drawing credentials when the app has none),
        /// `off` disables it.
        #[arg(long, value_parser = ["on", "off"])]
        epay: Option<String>,
    },
    /// Replace an app's webhook signing secret; prints {"app_id","webhook_secret"}.
    RotateWebhookSecret { app_id: String },
    /// Accept the app's own user tokens on the contract routes (bring your own auth);
    /// replaces the app's token configuration and prints it (without the secret).
    SetJwt {
        app_id: String,
        /// The exact `iss` of the app's tokens.
        #[arg(long)]
        issuer: String,
        /// Tokens must carry this in `aud` (recommended).
        #[arg(long)]
        audience: Option<String>,
        /// A file holding the HS256 shared secret (its bytes, a trailing newline dropped).
        #[arg(long)]
        hs256_secret_file: Option<std::path::PathBuf>,
        /// A PEM file of RS256 / ES256 public keys, or a JWKS document (`{"keys": [...]}`).
        #[arg(long)]
        public_keys_file: Option<std::path::PathBuf>,
    },
    /// Stop accepting the app's own user tokens.
    ClearJwt { app_id: String },
}

#[derive(Subcommand)]
enum ComplaintsCommand {
    /// Register the complaint notification URL with WeChat Pay (create it, or replace
    /// another); prints what was done. Exit code 1 on failure.
    RegisterUrl {
        /// Default: WECHAT_COMPLAINT_NOTIFY_URL (`$PUBLIC_BASE_URL/api/v1/callbacks/wechat/complaints`).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum Trigger {
    /// The buyer pays the order at the emulator, which notifies the server.
    Paid {
        order_no: String,
        /// How long to wait for the server to apply the notification.
        #[arg(long, default_value_t = 15)]
        wait_secs: u64,
    },
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("fenpay: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        print!("{}", fenpay::http::openapi::spec_json());
        return Ok(());
    }
    if let Command::App(_) | Command::Product(_) = command {
        // stdout carries the answer (JSON) only.
        telemetry::init_stderr();
    } else {
        telemetry::init();
    }
    if let Command::Doctor { probe } = command {
        let _ = dotenvy::dotenv();
        let vars = std::env::vars().collect();
        let report = fenpay::doctor::run(&vars, probe).await;
        print!("{}", report.render());
        if !report.problems.is_empty() {
            anyhow::bail!("{} configuration problem(s)", report.problems.len());
        }
        return Ok(());
    }
    let settings = Settings::from_env()?;
    match command {
        Command::Doctor { .. } => Ok(()),
        Command::Trigger(Trigger::Paid {
            order_no,
            wait_secs,
        }) => {
            let status = fenpay::devtools::trigger_paid(
                &settings,
                &order_no,
                std::time::Duration::from_secs(wait_secs),
            )
            .await?;
            println!("order {order_no}: {status}");
            if status == "pending" {
                anyhow::bail!("the server did not apply the notification within {wait_secs} s (is `fenpay serve` running with this configuration?)");
            }
            Ok(())
        }
        Command::Replay {
            payment_record_id,
            url,
        } => {
            let r = fenpay::devtools::replay(&settings, payment_record_id, url.as_deref()).await?;
            println!("POST {} -> {}\n{}", r.url, r.status, r.body);
            if r.status >= 300 {
                anyhow::bail!(
                    "the server refused the replayed notification ({})",
                    r.status
                );
            }
            Ok(())
        }
        Command::Openapi => Ok(()),
        Command::Reconcile { date, provider } => {
            let code = reconcile(settings, date, provider.as_deref()).await;
            std::process::exit(code);
        }
        Command::App(cmd) => {
            let code = app_command(settings, cmd).await;
            std::process::exit(code);
        }
        Command::Product(cmd) => {
            let code = product_command(settings, cmd).await;
            std::process::exit(code);
        }
        Command::Complaints(ComplaintsCommand::RegisterUrl { url }) => {
            let url = url.unwrap_or_else(|| settings.wechat.complaint_notify_url.clone());
            let state = fenpay::startup::AppState::for_command(settings).await?;
            let client = state
                .providers
                .wechat
                .clone()
                .ok_or_else(|| anyhow::anyhow!("WeChat Pay is not configured"))?;
            let done = service::complaints::register_notify_url(&client, &url).await?;
            match done {
                service::complaints::Registered::Created => println!("registered {url}"),
                service::complaints::Registered::Replaced { old } => {
                    println!("registered {url} (replaced {old})")
                }
                service::complaints::Registered::Unchanged => println!("already registered: {url}"),
            }
            Ok(())
        }
        Command::Serve => serve(settings).await,
        Command::Emulator => {
            if !settings.is_development() {
                anyhow::bail!("APP_ENV=production: the provider emulator runs in development only");
            }
            let keys = fenpay::devkeys::DevKeys::load_or_generate(&settings.dev_keys_dir)?;
            let emu = fenpay::emulator::start(fenpay::emulator::config_for(&settings, &keys))?;
            tracing::info!(url = %emu.base_url, keys = %settings.dev_keys_dir.display(), "provider emulator listening");
            println!("emulator listening on {}", emu.base_url);
            emu.server.await?;
            Ok(())
        }
        Command::Migrate => {
            let applied = db::migrate(settings.database_url.expose()).await?;
            println!("applied {} migration(s): {applied:?}", applied.len());
            Ok(())
        }
        Command::VerifyLedger => {
            db::migrate(settings.database_url.expose()).await?;
            let pool = db::Db::connect(settings.database_url.expose(), 1).await?;
            let (checked, mismatches) = db::ledger::verify(&pool).await?;
            for m in &mismatches {
                println!(
                    "MISMATCH {} ({}): points {} vs ledger {}, tier {:?} vs {:?}, expires {:?} vs {:?}",
                    m.username,
                    m.user_id,
                    m.points_balance,
                    m.ledger_points,
                    m.membership_tier,
                    m.ledger_tier,
                    m.membership_expires_at,
                    m.ledger_expires_at
                );
            }
            println!(
                "{checked} account(s) checked, {} mismatch(es)",
                mismatches.len()
            );
            if !mismatches.is_empty() {
                anyhow::bail!("the ledger does not match {} account(s)", mismatches.len());
            }
            Ok(())
        }
        Command::CreateAdmin {
            username,
            email,
            password,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut buf = String::new();
                    std::io::stdin().read_to_string(&mut buf)?;
                    buf.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let req = RegisterRequest {
                username,
                password,
                email,
            };
            if let Err(errors) = req.validate() {
                anyhow::bail!("invalid admin account: {errors}");
            }
            db::migrate(settings.database_url.expose()).await?;
            let pool = db::Db::connect(settings.database_url.expose(), 1).await?;
            let hasher =
                fenpay::auth::password::Hasher::new(1, 1, std::time::Duration::from_secs(120))?;
            let user = service::accounts::create_admin(&pool, &hasher, req)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("admin {} ({}) ready", user.username, user.id);
            Ok(())
        }
    }
}

/// `fenpay app ...`: prints the answer as JSON; the exit code (0 done, 2 bad input or an
/// unknown app, 1 anything else).
async fn app_command(settings: Settings, cmd: AppCommand) -> i32 {
    use fenpay::domain::apps::{Fulfilment, KeyMode};
    use fenpay::error::AppError;
    use serde_json::json;
    use service::apps;

    let state = match fenpay::startup::AppState::for_command(settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fenpay: {e:#}");
            return 1;
        }
    };
    let fulfilment = |s: &str| Fulfilment::parse(s).unwrap_or(Fulfilment::Builtin);
    let answer: Result<Vec<serde_json::Value>, AppError> = async {
        Ok(match cmd {
            AppCommand::Create {
                name,
                webhook_url,
                mode,
                return_hosts,
                fulfilment: f,
                max_amount_fen,
                epay,
            } => {
                let issued = apps::create(
                    &state,
                    apps::NewApp {
                        name,
                        mode: KeyMode::parse(&mode).unwrap_or(KeyMode::Live),
                        webhook_url,
                        return_hosts,
                        fulfilment: fulfilment(&f),
                        max_amount_fen,
                        epay,
                    },
                )
                .await?;
                vec![json!({
                    "app_id": issued.app.id,
                    "api_key": issued.api_key,
                    "webhook_secret": issued.app.webhook_secret,
                    "epay_pid": issued.app.epay_pid,
                    "epay_key": issued.app.epay_key,
                })]
            }
            AppCommand::RotateKey { app_id } => {
                let issued = apps::rotate_key(&state, &app_id).await?;
                vec![json!({"app_id": issued.app.id, "api_key": issued.api_key})]
            }
            AppCommand::List => apps::list(&state)
                .await?
                .iter()
                .map(|a| {
                    let v = apps::view(a);
                    json!({
                        "id": v.id,
                        "name": v.name,
                        "mode": v.mode,
                        "key_prefix": v.key_prefix,
                        "webhook_url": v.webhook_url,
                        "return_hosts": v.return_hosts,
                        "fulfilment": v.fulfilment,
                        "max_amount_fen": v.max_amount_fen,
                        "epay_pid": v.epay_pid,
                        "epay_enabled": v.epay_enabled,
                        "revoked": v.revoked,
                        "created_at": v.created_at,
                    })
                })
                .collect(),
            AppCommand::Revoke { app_id } => {
                let app = apps::revoke(&state, &app_id).await?;
                vec![json!({"app_id": app.id, "revoked": true})]
            }
            AppCommand::Set {
                app_id,
                name,
                webhook_url,
                return_hosts,
                fulfilment: f,
                max_amount_fen,
                epay,
            } => {
                let changes = apps::AppChanges {
                    name,
                    webhook_url: webhook_url.map(|u| (u != "none").then_some(u)),
                    return_hosts: return_hosts.map(|h| {
                        h.split(',')
                            .map(str::trim)
                            .filter(|h| !h.is_empty())
                            .map(String::from)
                            .collect()
                    }),
                    fulfilment: f.as_deref().map(fulfilment),
                    max_amount_fen,
                    epay: epay.map(|e| e == "on"),
                };
                let (app, epay_key) = apps::update(&state, &app_id, changes).await?;
                let mut v = serde_json::to_value(apps::view(&app)).unwrap_or_default();
                if let Some(key) = epay_key {
                    v["epay_key"] = json!(key);
                }
                vec![v]
            }
            AppCommand::RotateWebhookSecret { app_id } => {
                let app = apps::rotate_webhook_secret(&state, &app_id).await?;
                vec![json!({"app_id": app.id, "webhook_secret": app.webhook_secret})]
            }
            AppCommand::SetJwt {
                app_id,
                issuer,
                audience,
                hs256_secret_file,
                public_keys_file,
            } => {
                let read = |path: Option<std::path::PathBuf>| -> Result<Option<String>, AppError> {
                    path.map(|p| {
                        std::fs::read_to_string(&p)
                            .map(|text| text.trim_end_matches(['\r', '\n']).to_string())
                            .map_err(|e| {
                                AppError::bad_request(
                                    "invalid_jwt_config",
                                    format!("cannot read {}: {e}", p.display()),
                                )
                            })
                    })
                    .transpose()
                };
                let req = api_types::app_tokens::AppJwtRequest {
                    issuer,
                    audience,
                    hs256_secret: read(hs256_secret_file)?,
                    public_keys: read(public_keys_file)?,
                };
                let config =
                    service::app_tokens::set_jwt(&state.db, &state.settings, &app_id, &req).await?;
                vec![serde_json::to_value(config).unwrap_or_default()]
            }
            AppCommand::ClearJwt { app_id } => {
                let config = service::app_tokens::clear_jwt(&state.db, &app_id).await?;
                vec![serde_json::to_value(config).unwrap_or_default()]
            }
        })
    }
    .await;
    print_answer(answer)
}

/// Print a command's JSON lines (exit 0), or its error on stderr: exit 2 for bad input,
/// an unknown target or a refused change, 1 otherwise.
fn print_answer(answer: Result<Vec<serde_json::Value>, fenpay::error::AppError>) -> i32 {
    use fenpay::error::AppError;
    match answer {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            0
        }
        Err(e) => {
            eprintln!("fenpay: {e} ({})", e.code());
            match e {
                AppError::BadRequest { .. }
                | AppError::Validation(_)
                | AppError::NotFound(_)
                | AppError::Conflict { .. } => 2,
                _ => 1,
            }
        }
    }
}

async fn product_command(settings: Settings, cmd: ProductCommand) -> i32 {
    use fenpay::db::products::CatalogOp;
    use fenpay::error::AppError;
    use fenpay::service::audit::Actor;
    use service::catalog;

    let state = match fenpay::startup::AppState::for_command(settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fenpay: {e:#}");
            return 1;
        }
    };
    let actor = Actor::cli();
    let answer: Result<Vec<serde_json::Value>, AppError> = async {
        let one = |p: api_types::product::ProductResponse| {
            vec![serde_json::to_value(p).unwrap_or_default()]
        };
        let all = |l: api_types::console::AdminProductList| {
            l.items
                .into_iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect::<Vec<_>>()
        };
        Ok(match cmd {
            ProductCommand::List => all(catalog::list_all(&state.db).await?),
            ProductCommand::Create {
                kind,
                name,
                description,
                price_fen,
                points,
                membership_days,
                tier,
                rank,
                stock,
            } => {
                let req = api_types::console::ProductCreate {
                    kind,
                    name,
                    description,
                    price_fen,
                    points,
                    membership_days,
                    membership_tier: tier,
                    tier_rank: rank,
                    stock,
                };
                one(catalog::apply(&state.db, &actor, catalog::create_op(&req)).await?)
            }
            ProductCommand::Update {
                id,
                name,
                description,
                price_fen,
                points,
                membership_days,
                tier,
                rank,
            } => {
                let req = api_types::console::ProductPatchRequest {
                    name,
                    description,
                    price_fen,
                    points,
                    membership_days,
                    membership_tier: tier,
                    tier_rank: rank,
                };
                one(catalog::apply(&state.db, &actor, catalog::update_op(id, &req)?).await?)
            }
            ProductCommand::Retire { id } => {
                one(catalog::apply(&state.db, &actor, CatalogOp::SetActive(id, false)).await?)
            }
            ProductCommand::Restore { id } => {
                one(catalog::apply(&state.db, &actor, CatalogOp::SetActive(id, true)).await?)
            }
            ProductCommand::Restock { id, add } => {
                one(catalog::apply(&state.db, &actor, CatalogOp::Restock(id, add)).await?)
            }
            ProductCommand::Reorder { ids } => {
                all(catalog::reorder(&state.db, &actor, &ids).await?)
            }
        })
    }
    .await;
    print_answer(answer)
}

/// `fenpay reconcile`: the exit code (0 no differences, 1 differences, 2 not done).
async fn reconcile(settings: Settings, date: chrono::NaiveDate, provider: Option<&str>) -> i32 {
    use api_types::payment::PaymentMethod;
    use api_types::reconciliation::ReconStatus;
    use service::reconciliation::{self as recon, Trigger};
    let state = match fenpay::startup::AppState::for_command(settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fenpay: {e:#}");
            return 2;
        }
    };
    let methods = match provider {
        None => recon::configured(&state),
        Some("wechat") => vec![PaymentMethod::Wechat],
        Some("alipay") => vec![PaymentMethod::Alipay],
        Some(other) => {
            eprintln!("fenpay: --provider must be wechat or alipay, got {other}");
            return 2;
        }
    };
    if methods.is_empty() {
        eprintln!("fenpay: no payment provider is configured");
        return 2;
    }
    let mut code = 0;
    for m in methods {
        let run = match recon::run_day(&state, m, date, Trigger::Hand).await {
            Ok(Some(run)) => run,
            Ok(None) => {
                eprintln!("{} {date}: not run", m.as_str());
                code = 2;
                continue;
            }
            Err(e) => {
                eprintln!("{} {date}: {e}", m.as_str());
                code = 2;
                continue;
            }
        };
        let r = &run.reconciliation;
        if r.status != ReconStatus::Done {
            println!(
                "{} {date}: {} ({})",
                m.as_str(),
                r.status.as_str(),
                r.error.as_deref().unwrap_or("")
            );
            code = 2;
            continue;
        }
        println!(
            "{} {date}: {} matched, {} difference(s), {} applied; bill payments {} fen, refunds {} fen, fees {} fen, net {} fen; ours: payments {} fen, refunds {} fen",
            m.as_str(),
            r.matched_count,
            r.difference_count,
            r.applied_count,
            r.bill_payments_fen,
            r.bill_refunds_fen,
            r.bill_fees_fen,
            r.net_fen,
            r.our_payments_fen,
            r.our_refunds_fen
        );
        for i in run.items.iter().filter(|i| i.kind.is_difference()) {
            println!(
                "  {:<26} order {} refund {} ours {:?} {} / provider {:?} {}{}: {}",
                i.kind.as_str(),
                i.order_no.as_deref().unwrap_or("-"),
                i.out_refund_no.as_deref().unwrap_or("-"),
                i.our_amount_fen,
                i.our_status.as_deref().unwrap_or("-"),
                i.provider_amount_fen,
                i.provider_status.as_deref().unwrap_or("-"),
                if i.applied { " [applied]" } else { "" },
                i.detail
            );
        }
        if r.difference_count > 0 && code == 0 {
            code = 1;
        }
    }
    code
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(
        env = ?settings.app_env,
        bind = %settings.bind,
        database = %db::Backend::from_url(settings.database_url.expose()).map(|b| format!("{b:?}")).unwrap_or_default(),
        "starting fenpay"
    );
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "listening");
    app.run_until_stopped().await?;
    Ok(())
}
