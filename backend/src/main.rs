//! The `fenpay` command line: serve | migrate | openapi | create-admin.

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
    let settings = Settings::from_env()?;
    match command {
        Command::Openapi => Ok(()),
        Command::Serve => serve(settings).await,
        Command::Emulator => {
            if !settings.is_development() {
                anyhow::bail!("APP_ENV=production: the provider emulator runs in development only");
            }
            let keys = fenpay::devkeys::DevKeys::load_or_generate(&settings.dev_keys_dir)?;
            let emu = fenpay::emulator::start(fenpay::emulator::EmulatorConfig::from_dev_keys(
                &settings, &keys,
            ))?;
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
