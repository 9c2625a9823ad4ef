//! The `landline` command: parse the command line, load the configuration, start logging, and
//! hand over to [`landline::run`]. Exit codes: 0 done, 1 failed while running, 2 bad
//! configuration (nothing was started).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use landline::config::{self, Config};

/// landline: a PSTN gateway between SIP/WebRTC clients and G.711 SIP trunks.
#[derive(Debug, Parser)]
#[command(name = "landline", version, propagate_version = true)]
#[command(
    after_help = "Configuration layers: FILE, then /etc/landline/landline.toml if it \
    exists, then LANDLINE__SECTION__KEY environment variables (e.g. \
    LANDLINE__MEDIA__PUBLIC_ADDRESS=203.0.113.10). RUST_LOG overrides [log] level."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or SIGINT.
    Run(ConfigArgs),
    /// Validate the configuration and print what it sets up, without starting anything.
    ///
    /// Exits 0 when valid, 2 (with the file, key, problem and fix) when not.
    CheckConfig(ConfigArgs),
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// The configuration file.
    #[arg(short, long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Run(args) | Command::CheckConfig(args)) = &cli.command;
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("landline: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::CheckConfig(_) => {
            println!(
                "configuration OK ({}): {}",
                config.sources.join(" + "),
                config.summary()
            );
            ExitCode::SUCCESS
        }
        Command::Run(_) => run(config),
    }
}

fn run(config: Config) -> ExitCode {
    if let Err(e) = landline::ops::logging::init(&config.log) {
        eprintln!("landline: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("control")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        files = %config.sources.join(" + "),
        "starting"
    );
    match runtime.block_on(landline::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "landline stopped");
            ExitCode::FAILURE
        }
    }
}
