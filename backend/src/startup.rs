//! `Application::build`: migrate, connect, bind (port 0 in tests) and return a handle.

use std::net::{IpAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpMessage, HttpRequest, HttpServer, ResponseError};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::auth::JwtKeys;
use crate::config::Settings;
use crate::db::{self, Db};
use crate::error::{self, AppError};
use crate::http;
use crate::providers::Providers;

/// Shared state handed to every handler.
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub jwt: JwtKeys,
    /// Abuse limits: logins, registrations, create-order, unverified callbacks.
    pub limits: crate::auth::limiter::Limits,
    /// Open live event streams, capped per user and in all.
    pub streams: crate::live::StreamSlots,
    pub providers: Providers,
    /// Base URL of the in-process provider emulator (development).
    pub emulator_url: Option<String>,
    /// Committed events for live streams and the dispatcher.
    pub hub: crate::live::EventHub,
    /// Where outbound events go.
    pub sinks: crate::db::events::Sinks,
    /// Background provider checks of the pending orders someone is watching.
    pub watcher: crate::service::watcher::Watcher,
    /// Payment records that decide nothing, written in the background.
    pub records: crate::service::records::Recorder,
    /// Password hashing on its own bounded threads.
    pub hasher: crate::auth::password::Hasher,
    /// Raised on SIGTERM/SIGINT; jobs and event streams wind down (see `shutdown`).
    pub shutdown: crate::shutdown::Shutdown,
    /// Token versions of recently seen accounts (revocation checks).
    pub sessions: crate::auth::sessions::Sessions,
    /// Merchant apps' parsed token keys and their users' accounts (bring your own auth).
    pub app_tokens: crate::auth::app_tokens::AppTokens,
}

impl AppState {
    pub fn new(
        settings: Arc<Settings>,
        db: Db,
        providers: Providers,
        emulator_url: Option<String>,
    ) -> std::io::Result<Self> {
        let hasher = crate::auth::password::Hasher::new(
            settings.password_hash_threads,
            settings.password_hash_queue,
            Duration::from_secs(settings.password_hash_wait_secs),
        )?;
        Ok(AppState {
            app_tokens: crate::auth::app_tokens::AppTokens::new(),
            sessions: crate::auth::sessions::Sessions::new(Duration::from_secs(
                settings.auth_cache_ttl_secs,
            )),
            hasher,
            shutdown: crate::shutdown::Shutdown::new(),
            providers,
            emulator_url,
            hub: crate::live::EventHub::new(db.backend()),
            watcher: crate::service::watcher::Watcher::new(),
            records: crate::service::records::Recorder::new(),
            sinks: crate::db::events::Sinks {
                webhook_urls: settings.lifecycle.webhook_urls.clone(),
                telegram: settings.lifecycle.telegram_enabled(),
            },
            jwt: JwtKeys::new(
                settings.jwt_secret.expose().as_bytes(),
                settings.jwt_ttl_minutes * 60,
            ),
            limits: crate::auth::limiter::Limits::new(&settings),
            streams: crate::live::StreamSlots::new(
                settings.limits.stream_max_per_user,
                settings.limits.stream_max_total,
            ),
            settings,
            db,
        })
    }

    /// The state a command-line task (`fenpay reconcile`) works with: migrated database,
    /// provider clients, no server and no jobs. In development the providers are the
    /// emulator at `EMULATOR_URL`, else the one `fenpay serve` runs at `EMULATOR_BIND`.
    pub async fn for_command(settings: Settings) -> anyhow::Result<AppState> {
        db::migrate(settings.database_url.expose()).await?;
        let db = Db::connect_with(
            settings.database_url.expose(),
            settings.database_pool_size.min(4),
            settings.database_timeouts,
        )
        .await?;
        let emulator_url = match (&settings.emulator.external_url, settings.emulator.enabled) {
            (Some(url), _) => Some(url.clone()),
            (None, true) => Some(format!("http://{}", settings.emulator.bind)),
            (None, false) => None,
        };
        let dev_keys = match emulator_url {
            Some(_) => Some(crate::devkeys::DevKeys::load_or_generate(
                &settings.dev_keys_dir,
            )?),
            None => None,
        };
        let providers =
            crate::providers::build(&settings, dev_keys.as_ref(), emulator_url.as_deref())?;
        Ok(AppState::new(
            Arc::new(settings),
            db,
            providers,
            emulator_url,
        )?)
    }

    /// The client address used for rate limiting: the TCP peer, or with `TRUST_PROXY`
    /// the address the trusted proxies saw (see [`forwarded_client`]).
    pub fn client_ip(&self, req: &HttpRequest) -> IpAddr {
        let peer = req
            .peer_addr()
            .map(|a| a.ip().to_canonical())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !self.settings.trust_proxy {
            return peer;
        }
        let hops: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        forwarded_client(peer, &hops, &self.settings.trusted_proxies)
    }
}

/// The client behind a chain of proxies: walking `X-Forwarded-For` from the right (each
/// proxy appends the address it saw), the first address that is not a trusted proxy. The
/// left part of the header is whatever the client sent, so it is never believed; a peer
/// that is not a trusted proxy is the client itself, whatever it claims.
pub fn forwarded_client(peer: IpAddr, hops: &[&str], trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let hop = hop.trim();
        if hop.is_empty() {
            // `a, , b` or a trailing comma: no hop there.
            continue;
        }
        match hop_address(hop) {
            Some(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    return client;
                }
            }
            // Garbage where an address should be: stop at the last good hop.
            None => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, or an address with a port as some proxies
/// write it (`1.2.3.4:5678`, `[2001:db8::1]:443`, `[2001:db8::1]`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = hop.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
}

/// Shared state as handlers receive it.
pub type AppStateHandle = web::Data<AppState>;

/// A built, bound, not yet awaited server.
pub struct Application {
    port: u16,
    server: Server,
    pub state: web::Data<AppState>,
    /// The in-process emulator, when enabled (its server is already spawned).
    pub emulator: Option<web::Data<crate::emulator::EmulatorState>>,
}

impl Application {
    /// Run migrations, connect the pool and bind `settings.bind` (use port 0 for tests).
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let applied = db::migrate(settings.database_url.expose()).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied database migrations");
        }
        let db = Db::connect_with(
            settings.database_url.expose(),
            settings.database_pool_size,
            settings.database_timeouts,
        )
        .await?
        .with_order_cache(db::cache::OrderCacheConfig {
            capacity: settings.order_cache_size,
            ttl: Duration::from_secs(settings.order_cache_ttl_secs),
        })
        .with_clock_offset(settings.clock_offset_secs);
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot bind BIND_ADDR={}: {e}", settings.bind))?;
        let actual = listener.local_addr()?;
        settings.rebase_default_urls(&actual.to_string());
        let external = settings.emulator.external_url.clone();
        let dev_keys = if settings.emulator.enabled || external.is_some() {
            Some(crate::devkeys::DevKeys::load_or_generate(
                &settings.dev_keys_dir,
            )?)
        } else {
            None
        };
        let emulator = match (&dev_keys, external) {
            (_, Some(url)) => {
                tracing::info!(%url, "using an external provider emulator");
                Some((url, None))
            }
            (Some(keys), None) => {
                let emu = crate::emulator::start(crate::emulator::config_for(&settings, keys))?;
                tracing::info!(url = %emu.base_url, "provider emulator listening");
                tokio::spawn(emu.server);
                Some((emu.base_url, Some(emu.state)))
            }
            (None, None) => None,
        };
        let emulator_url = emulator.as_ref().map(|(url, _)| url.clone());
        let providers =
            crate::providers::build(&settings, dev_keys.as_ref(), emulator_url.as_deref())?;
        let mut app =
            Application::with_listener(Arc::new(settings), db, listener, providers, emulator_url)?;
        app.emulator = emulator.and_then(|(_, state)| state);
        Ok(app)
    }

    /// Serve on an already bound listener with an already connected pool.
    pub fn with_listener(
        settings: Arc<Settings>,
        db: Db,
        listener: TcpListener,
        providers: Providers,
        emulator_url: Option<String>,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState::new(
            settings.clone(),
            db,
            providers,
            emulator_url,
        )?);
        crate::jobs::spawn(state.clone());
        let app_state = state.clone();
        let security = Arc::new(http::security_headers::SecurityHeaders::new(&settings));
        let server = HttpServer::new(move || {
            let settings = app_state.settings.clone();
            let security = security.clone();
            App::new()
                .wrap(cors(&settings))
                // Every error leaves as JSON, actix's own (405, 413, ...) and a
                // middleware's refusal included.
                .wrap_fn(|req, srv| {
                    let fut = actix_web::dev::Service::call(srv, req);
                    async move {
                        match fut.await {
                            Ok(res) => Ok(error::ensure_json(res)),
                            Err(e) => Err(error::JsonRefusal(e).into()),
                        }
                    }
                })
                // CSP, nosniff, Referrer-Policy, framing, HSTS: on the final response
                // (after the JSON conversion, whose content type decides the policy).
                .wrap_fn(move |req, srv| {
                    let security = security.clone();
                    let fut = actix_web::dev::Service::call(srv, req);
                    async move {
                        let mut res = fut.await?;
                        security.apply(&mut res);
                        Ok(res)
                    }
                })
                .wrap_fn(|req, srv| {
                    let request_id = req.extensions().get::<RequestId>().copied();
                    let fut = actix_web::dev::Service::call(srv, req);
                    async move {
                        let mut res = fut.await?;
                        if let Some(id) = request_id {
                            if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                                res.headers_mut()
                                    .insert(HeaderName::from_static("x-request-id"), value);
                            }
                        }
                        Ok(res)
                    }
                })
                .wrap(TracingLogger::<crate::telemetry::RedactedSpan>::new())
                // Metrics: time and status by route pattern (atomics only, see `metrics`).
                .wrap_fn(|req, srv| {
                    let started = std::time::Instant::now();
                    let fut = actix_web::dev::Service::call(srv, req);
                    async move {
                        let res = fut.await?;
                        let pattern = res.request().match_pattern();
                        let status = res.status().as_u16();
                        crate::metrics::http_request(pattern.as_deref(), status, started.elapsed());
                        Ok(res)
                    }
                })
                .app_data(app_state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(settings.body_limit_bytes)
                        .error_handler(|err, _| error::json_error(err).into()),
                )
                .app_data(web::PayloadConfig::default().limit(settings.body_limit_bytes))
                .app_data(
                    web::QueryConfig::default()
                        .error_handler(|err, _| error::query_error(err).into()),
                )
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|err, _| error::path_error(err).into()),
                )
                .configure(http::configure)
                .route("/metrics", web::get().to(crate::metrics::guarded))
                .service(actix_web::web::redirect("/docs", "/docs/"))
                .configure(|cfg| spa(cfg, &settings))
        })
        .listen(listener)?
        // A client that closes its side has gone (browsers never half-close): drop its
        // request at once, so an event stream gives its slot back without waiting for a
        // write to fail.
        .h1_allow_half_closed(false)
        .workers(settings.http_workers)
        // Signals are handled by `run_until_stopped` (graceful shutdown of everything).
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout_secs)
        .run();
        Ok(Application {
            port,
            server,
            state,
            emulator: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serve until SIGTERM or SIGINT, then shut down gracefully within
    /// `SHUTDOWN_TIMEOUT_SECS`: event streams get a final event, the server stops
    /// accepting and drains the requests in flight, jobs finish or release their claims.
    /// An error when the bound was reached first.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let state = self.state.clone();
        let settings = state.settings.clone();
        let metrics = match &settings.metrics_bind {
            Some(bind) => {
                let (server, addr) = crate::metrics::serve_separately(state.clone(), bind)?;
                tracing::info!(%addr, "metrics listening");
                let handle = server.handle();
                tokio::spawn(server);
                Some(handle)
            }
            None => None,
        };
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        tokio::select! {
            r = &mut server => return Ok(r??),
            _ = crate::shutdown::signal() => {}
        }
        let bound = Duration::from_secs(settings.shutdown_timeout_secs);
        let deadline = tokio::time::Instant::now() + bound;
        state.shutdown.trigger();
        let drained = tokio::time::timeout_at(deadline, async {
            // Stop accepting; wait for the requests in flight (streams end on the flag).
            handle.stop(true).await;
            let _ = (&mut server).await;
            state.shutdown.drained().await;
            // Records of the last callbacks (duplicates, forgeries) queued for the writer.
            state.records.flushed(bound).await;
        })
        .await;
        if let Some(m) = metrics {
            m.stop(false).await;
        }
        match drained {
            Ok(()) => {
                tracing::info!("shut down cleanly");
                Ok(())
            }
            Err(_) => anyhow::bail!(
                "shutdown took longer than SHUTDOWN_TIMEOUT_SECS={}: work still in flight was abandoned (job claims expire with their lease)",
                settings.shutdown_timeout_secs
            ),
        }
    }

    /// Split into the server future and the shared state (tests spawn the server).
    pub fn into_parts(self) -> (Server, web::Data<AppState>) {
        (self.server, self.state)
    }
}

fn cors(settings: &Settings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers(["authorization", "content-type", "idempotency-key"])
        .expose_headers(["x-request-id", "retry-after"])
        .max_age(3600);
    for origin in &settings.cors_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

fn spa(cfg: &mut web::ServiceConfig, settings: &Settings) {
    if settings.static_dir.join("index.html").is_file() {
        cfg.service(http::spa::service(settings.static_dir.clone()));
    } else {
        cfg.default_service(web::to(|req: HttpRequest| async move {
            if req.path().starts_with("/api") {
                AppError::NotFound("route").error_response()
            } else {
                http::spa::not_built()
            }
        }));
    }
}
