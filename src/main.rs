//! The `x402-facilitator` binary: command-line parsing only; everything else
//! lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use x402_facilitator::app::App;
use x402_facilitator::config::{self, ConfigError, ConfigSource, Settings};
use x402_facilitator::telemetry;

#[derive(Parser, Debug)]
#[command(
    name = "x402-facilitator",
    version,
    about = "x402 payment facilitator for Cardano"
)]
struct Cli {
    /// Configuration file (default: config/config.json, optional). Also X402_CONFIG.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Validate the configuration and print it with every secret redacted.
    CheckConfig,
    /// Exit 0 when the local /health answers healthy or degraded (for Docker's HEALTHCHECK).
    Healthcheck {
        /// Base URL to probe instead of the configured host and port.
        #[arg(long)]
        url: Option<String>,
    },
    /// Run a complete paid request on the embedded devnet and print each step.
    #[cfg(feature = "buyer")]
    Demo {
        /// The asset transfer method the demo's resource server asks for.
        #[arg(long, value_enum, default_value_t = x402_facilitator::demo::DemoMethod::Default)]
        method: x402_facilitator::demo::DemoMethod,
        /// Pay through this running facilitator instead of an in-process one
        /// (its chain must be the devnet given by --devnet).
        #[arg(long, requires = "devnet")]
        facilitator: Option<String>,
        /// Base URL of the devnet (faucet and /devnet/api/v0) the facilitator uses.
        #[arg(long, requires = "facilitator")]
        devnet: Option<String>,
        /// Confirmations the resource server asks for (with --facilitator).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=20))]
        confirmations: u32,
    },
    /// The demo needs a buyer (keys, signing), which this build leaves out.
    #[cfg(not(feature = "buyer"))]
    #[command(hide = true)]
    Demo {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        _args: Vec<String>,
    },
}

fn load_settings(cli: &Cli) -> Result<Settings, ConfigError> {
    let env_config = std::env::var("X402_CONFIG").ok();
    let source = ConfigSource::resolve(cli.config.as_deref(), env_config.as_deref());
    let env: Vec<(String, String)> = std::env::vars().collect();
    config::load(&source, &env)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async_main(cli))
}

async fn async_main(cli: Cli) -> ExitCode {
    let command = cli.command.as_ref().map_or("serve", |c| match c {
        Command::Serve => "serve",
        Command::CheckConfig => "check-config",
        Command::Healthcheck { .. } => "healthcheck",
        Command::Demo { .. } => "demo",
    });

    // Step 1: configuration.
    let settings = match load_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            if command != "healthcheck" {
                telemetry::init_bootstrap();
            }
            telemetry::startup_failure("config", &e.to_string());
            return ExitCode::from(1);
        }
    };

    match cli.command {
        Some(Command::CheckConfig) => {
            println!("{}", settings.redacted_json());
            ExitCode::SUCCESS
        }
        Some(Command::Healthcheck { url }) => healthcheck(&settings, url).await,
        #[cfg(not(feature = "buyer"))]
        Some(Command::Demo { .. }) => {
            eprintln!(
                "demo: this binary was built without the `buyer` feature (no keys, no signing); \
                 build with default features to run it"
            );
            ExitCode::from(2)
        }
        #[cfg(feature = "buyer")]
        Some(Command::Demo {
            facilitator: Some(facilitator),
            devnet: Some(devnet),
            confirmations,
            ..
        }) => match x402_facilitator::demo::run_against(&facilitator, &devnet, confirmations).await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e}");
                ExitCode::from(1)
            }
        },
        #[cfg(feature = "buyer")]
        Some(Command::Demo { method, .. }) => {
            let mut settings = settings;
            // The demo prints its own story; service logs only for problems.
            settings.logging.level =
                x402_facilitator::config::LogLevel::parse("warn").unwrap_or_default();
            telemetry::init(&settings);
            match x402_facilitator::demo::run_with(settings, method).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Some(Command::Serve) | None => serve(settings).await,
    }
}

async fn serve(settings: Settings) -> ExitCode {
    telemetry::init(&settings);
    let networks: Vec<&str> = settings
        .served_networks()
        .iter()
        .map(|n| n.caip2())
        .collect();
    tracing::info!(step = "config", networks = ?networks, env = ?settings.env, "startup: configuration loaded");
    let app = match App::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            telemetry::startup_failure(e.step(), &e.to_string());
            return ExitCode::from(1);
        }
    };
    // Step 6: signal handlers.
    let shutdown = match shutdown_signal() {
        Ok(f) => f,
        Err(e) => {
            telemetry::startup_failure(
                "signals",
                &format!("could not install signal handlers: {e}"),
            );
            return ExitCode::from(1);
        }
    };
    x402_facilitator::alloc::release_startup_heap();
    tracing::info!(step = "signals", "startup complete; serving");
    match app.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server error");
            ExitCode::from(1)
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "signal received"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "signal received"),
        }
    })
}

async fn healthcheck(settings: &Settings, url: Option<String>) -> ExitCode {
    let base = url.unwrap_or_else(|| {
        let host = match settings.server.host.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
            h => h,
        };
        format!("http://{host}:{}", settings.server.port)
    });
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::from(1);
        }
    };
    let url = format!("{}/health", base.trim_end_matches('/'));
    let body: serde_json::Value = match client.get(&url).send().await {
        Ok(r) => match r.json().await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("healthcheck: {url}: unreadable answer: {e}");
                return ExitCode::from(1);
            }
        },
        Err(e) => {
            eprintln!("healthcheck: {url}: {e}");
            return ExitCode::from(1);
        }
    };
    let status = body
        .get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("unknown");
    println!("{status}");
    if status == "healthy" || status == "degraded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
