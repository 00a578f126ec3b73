//! The `fenpay` command line: serve | migrate | openapi | create-admin | verify-ledger |
//! emulator | doctor | trigger | replay | reconcile.

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
    telemetry::init();
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
