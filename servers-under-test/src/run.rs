//! Runs one `sut` subcommand: binds, prints the readiness line, serves until SIGTERM or
//! SIGINT, then shuts down gracefully (and stops the app process, for the module).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{App, AppOptions, ForwardedHeaders, HostingModel, Stall};
use crate::cli::{self, Cli, Command, Hosting, UpstreamProto, UsageError};
use crate::handler::Handler;
use crate::host::{self, AppProcessOptions, ModuleHandler, Supervisor};
use crate::proxy::ProxyHandler;
use crate::server::{self, Limits, ServerOptions};

/// Runs the command. Errors of type [`UsageError`] mean bad flags (exit 2).
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // The control runtime lives on the main thread for the whole process: it handles
    // signals and owns the module's app process (whose parent-death signal is per thread).
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the control runtime")?;
    let shutdown = CancellationToken::new();
    match cli.command {
        Command::Edge(a) => {
            let opts = cli::server_options(&a.listen, &a.tls, &a.limits)?;
            let app = App::new(AppOptions {
                hosting: a.hosting,
                forwarded: a.forwarded(),
                pairing_token: None,
                stall: a.stall.map(|(period, duration)| Stall {
                    period,
                    duration,
                    origin: std::time::Instant::now(),
                }),
            });
            serve(&control, opts, shutdown, move |_| app.clone(), None)
        }
        Command::Proxy(a) => {
            let opts = cli::server_options(&a.listen, &a.tls, &a.limits)?;
            let upstream = cli::parse_upstream(&a.upstream)?;
            let fwd = a
                .forward
                .to_options(matches!(a.upstream_proto, UpstreamProto::H2))?;
            serve(
                &control,
                opts,
                shutdown,
                move |_| ProxyHandler::new(upstream, fwd.clone()),
                None,
            )
        }
        Command::Host(a) => {
            let opts = cli::server_options(&a.listen, &a.tls, &a.limits)?;
            match a.hosting {
                Hosting::InProcess => {
                    let app = App::new(AppOptions {
                        hosting: HostingModel::InProcess,
                        forwarded: ForwardedHeaders::default(),
                        pairing_token: None,
                        stall: None,
                    });
                    serve(&control, opts, shutdown, move |_| app.clone(), None)
                }
                Hosting::OutOfProcess => {
                    let exe = std::env::current_exe().context("cannot find the sut executable")?;
                    let args = vec![
                        "app".to_string(),
                        "--workers".to_string(),
                        a.app_workers.to_string(),
                    ];
                    let supervisor = Supervisor::new(
                        AppProcessOptions {
                            exe,
                            args,
                            env: a.app_env.clone(),
                            log: a.app_log.clone(),
                            startup_timeout: a.startup_timeout,
                            max_backoff: a.max_restart_backoff,
                        },
                        control.handle().clone(),
                        shutdown.clone(),
                    );
                    let fwd = a.forward.to_options(false)?;
                    let _guard = control.enter();
                    if a.eager_start {
                        supervisor.start();
                    }
                    let sup = supervisor.clone();
                    serve(
                        &control,
                        opts,
                        shutdown,
                        move |_| ModuleHandler::new(sup.clone(), fwd.clone()),
                        Some(supervisor),
                    )
                }
            }
        }
        Command::App(a) => {
            let token = std::env::var(host::PAIRING_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty());
            let listen = match (a.listen, std::env::var(host::APP_PORT_ENV)) {
                (Some(addr), _) => addr,
                (None, Ok(port)) => {
                    let port: u16 = port.parse().map_err(|_| {
                        UsageError(format!(
                            "${} is `{port}`, not a port number",
                            host::APP_PORT_ENV
                        ))
                    })?;
                    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
                }
                (None, Err(_)) => {
                    return Err(UsageError(format!(
                        "--listen is required when ${} is not set",
                        host::APP_PORT_ENV
                    ))
                    .into())
                }
            };
            let hosting = a.hosting.unwrap_or(if token.is_some() {
                HostingModel::OutOfProcess
            } else {
                HostingModel::BehindProxy
            });
            let app = App::new(AppOptions {
                hosting,
                forwarded: ForwardedHeaders {
                    enabled: !a.no_forwarded_headers,
                    trusted: Vec::new(),
                },
                pairing_token: token,
                stall: None,
            });
            let opts = ServerOptions {
                listen,
                tls: None,
                h2c: true,
                workers: a.workers.max(1),
                limits: Limits {
                    ..a.limits.to_limits()
                },
            };
            serve(&control, opts, shutdown, move |_| app.clone(), None)
        }
    }
}

fn serve<H, F>(
    control: &tokio::runtime::Runtime,
    opts: ServerOptions,
    shutdown: CancellationToken,
    make_handler: F,
    supervisor: Option<Arc<Supervisor>>,
) -> anyhow::Result<()>
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let bound = server::bind(opts)?;
    let addr = bound.local_addr();
    let line = bound.listening_line();
    let workers = bound.spawn(make_handler, shutdown.clone())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").context("cannot write the readiness line")?;
        out.flush().context("cannot write the readiness line")?;
    }
    tracing::info!(%addr, "listening");
    control.block_on(async {
        wait_for_signal().await;
        tracing::info!("shutting down");
        shutdown.cancel();
        if let Some(sup) = &supervisor {
            sup.stopped().await;
        }
    });
    workers.join();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
