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
use crate::host::{self, AppProcessOptions, AppReady, ModuleContract, ModuleHandler, Supervisor};
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
                serial: a
                    .serial_service
                    .map(|t| Arc::new(crate::app::Serial::new(t))),
                extra_latency: a.extra_latency,
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
                        serial: None,
                        extra_latency: cli::extra_latency_from_env()?,
                    });
                    serve(&control, opts, shutdown, move |_| app.clone(), None)
                }
                Hosting::OutOfProcess => {
                    let supervisor = Supervisor::new(
                        app_process(&a)?,
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
                        Some((supervisor, a.wait_for_app)),
                    )
                }
            }
        }
        Command::App(a) => {
            let token = std::env::var(host::H2LAB_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty());
            let listen = match (a.listen, std::env::var(host::H2LAB_PORT_ENV)) {
                (Some(addr), _) => addr,
                (None, Ok(port)) => {
                    let port: u16 = port.parse().map_err(|_| {
                        UsageError(format!(
                            "${} is `{port}`, not a port number",
                            host::H2LAB_PORT_ENV
                        ))
                    })?;
                    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
                }
                (None, Err(_)) => {
                    return Err(UsageError(format!(
                        "--listen is required when ${} is not set",
                        host::H2LAB_PORT_ENV
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
                serial: None,
                extra_latency: cli::extra_latency_from_env()?,
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

/// The module's app process as the flags describe it: `sut app`, or `--app-command`.
fn app_process(a: &cli::HostArgs) -> anyhow::Result<AppProcessOptions> {
    let (exe, args, ready) = match &a.app_command {
        Some(command) => {
            let (program, args) = command
                .split_first()
                .ok_or_else(|| UsageError("--app-command needs a program".into()))?;
            (
                program.into(),
                args.to_vec(),
                AppReady::Probe(a.app_ready.clone()),
            )
        }
        None => {
            if a.module_contract != ModuleContract::H2lab {
                return Err(UsageError(
                    "--module-contract ancm hosts a program given with --app-command (the built-in app speaks the h2lab contract)".into(),
                )
                .into());
            }
            let exe = std::env::current_exe().context("cannot find the sut executable")?;
            let args = vec![
                "app".to_string(),
                "--workers".to_string(),
                a.app_workers.to_string(),
            ];
            (exe, args, AppReady::ListeningLine)
        }
    };
    if let Some(name) = &a.app_port_env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(
                UsageError(format!("--app-port-env `{name}` is not a variable name")).into(),
            );
        }
    }
    Ok(AppProcessOptions {
        exe,
        args,
        env: a.app_env.clone(),
        cwd: a.app_cwd.clone(),
        log: a.app_log.clone(),
        startup_timeout: a.startup_timeout,
        max_backoff: a.max_restart_backoff,
        contract: a.module_contract,
        port_env: a.app_port_env.clone(),
        path_base: a.forward.path_base.clone(),
        ready,
        rapid_fails_per_minute: a.rapid_fails_per_minute,
    })
}

/// Binds, starts the workers, (for the module with `--wait-for-app`, waits for the app's
/// first start), prints the readiness line, and serves until a signal.
fn serve<H, F>(
    control: &tokio::runtime::Runtime,
    opts: ServerOptions,
    shutdown: CancellationToken,
    make_handler: F,
    supervisor: Option<(Arc<Supervisor>, bool)>,
) -> anyhow::Result<()>
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    let bound = server::bind(opts)?;
    let addr = bound.local_addr();
    let line = bound.listening_line();
    let workers = bound.spawn(make_handler, shutdown.clone())?;
    if let Some((sup, true)) = &supervisor {
        let first = control.block_on(async {
            let _guard = control.enter();
            tokio::select! {
                r = sup.first_start() => Some(r),
                _ = wait_for_signal() => None,
            }
        });
        let failed = match first {
            Some(Ok(())) => None,
            Some(Err(why)) => Some(why),
            None => Some("stopped by a signal before the app started".into()),
        };
        if let Some(why) = failed {
            shutdown.cancel();
            control.block_on(sup.stopped());
            workers.join();
            anyhow::bail!(why);
        }
    }
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
        if let Some((sup, _)) = &supervisor {
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
