//! `avepoint-elements-exporter`: wires the library to the process: the parsed command line,
//! logging, the async runtime, signals, stdout and exit codes. Everything else, the meaning
//! of the flags included, lives in the library.

use std::process::ExitCode;

use avepoint_elements_exporter::app::{self, AppError, Checked, Cli, Mode, Options};
use avepoint_elements_exporter::{BuildInfo, LineLayer, LogFormat};
use clap::Parser;
use tracing_subscriber::prelude::*;

/// jemalloc, configured to give freed memory back (see Cargo.toml and .cargo/config.toml).
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(1),
            };
        }
    };
    let pod_name = std::env::var("POD_NAME").ok();
    let mode = cli.mode();
    match mode {
        Mode::Version => {
            print_out(&BuildInfo::current().version_text());
            return ExitCode::SUCCESS;
        }
        Mode::CheckDemoConfig => {
            let Some(runtime) = runtime(&mut tokio::runtime::Builder::new_current_thread()) else {
                return ExitCode::from(1);
            };
            return report(runtime.block_on(app::check_demo_config()));
        }
        Mode::CheckConfig => return report(app::check_config(&cli, pod_name.as_deref())),
        Mode::Once | Mode::Daemon => {}
    }
    let options = match cli.options(pod_name.as_deref()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    init_logging(cli.log_level(), cli.log_format());
    let Some(runtime) = runtime(&mut tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::from(1);
    };
    if mode == Mode::Once {
        let code = run_once(&runtime, options);
        runtime.shutdown_timeout(std::time::Duration::from_millis(500));
        return code;
    }
    run_daemon(runtime, options)
}

/// The crate's own log lines at `level`, dependencies' only at warn and above, in `format`.
fn init_logging(level: tracing::Level, format: LogFormat) {
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::WARN.min(level))
        .with_target("avepoint_elements_exporter", level);
    tracing_subscriber::registry()
        .with(filter)
        .with(LineLayer::new(format))
        .init();
}

/// A check's summary on stdout (0), or its problems on stderr (1).
fn report(checked: Checked) -> ExitCode {
    match checked {
        Checked::Valid(summary) => {
            print_out(&summary);
            ExitCode::SUCCESS
        }
        Checked::Invalid(problems) => {
            for problem in problems {
                eprintln!("{problem}");
            }
            ExitCode::from(1)
        }
    }
}

/// Writes `bytes` to stdout and flushes it. Unlike `print!` it never panics: the caller
/// decides what a failure means (a closed pipe, `| head -1`, is [`closed_pipe`]).
fn write_out(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush())
}

/// Writes `text` to stdout; a closed pipe (`| head -1`) ends the output quietly instead of
/// panicking as `print!` does.
fn print_out(text: &str) {
    let _ = write_out(text.as_bytes());
}

/// Whether a write failed because the reader went away (`| head -1`): nothing to report.
fn closed_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

/// Runs the daemon until a signal ends it; the exit code says how it ended (see
/// [`AppError::exit_code`]).
fn run_daemon(runtime: tokio::runtime::Runtime, options: Options) -> ExitCode {
    let config_file = options.config_file.clone();
    let result = runtime.block_on(app::run(options, shutdown_signal()));
    // Do not wait for stray blocking tasks: shutdown must finish within seconds.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, in the log format chosen, with a hint when the exporter was started
            // without a config.
            let error = e.chain();
            match (e.hint(&config_file), &e) {
                (_, AppError::TaskEnded { .. }) => tracing::error!(error, "exiting"),
                (Some(hint), _) => tracing::error!(error, hint, "cannot start"),
                (None, _) => tracing::error!(error, "cannot start"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// `--once`: one pass, the exposition on stdout, failures on stderr; 0 when all succeeded.
fn run_once(runtime: &tokio::runtime::Runtime, options: Options) -> ExitCode {
    let config_file = options.config_file.clone();
    match runtime.block_on(app::once(options)) {
        Ok(pass) => {
            // Output cut short (a full disk, a closed pipe) must not pass for a whole file:
            // the cron recipe renames it into place only on exit 0. A closed pipe (`| head`)
            // is the reader's choice and says nothing; anything else gets one line.
            let written = write_out(&pass.exposition);
            for failure in &pass.failures {
                tracing::error!(failure = %failure, "poll failed");
            }
            if let Err(e) = &written {
                if !closed_pipe(e) {
                    tracing::error!(error = %e, "cannot write the exposition to stdout");
                }
            }
            if !pass.failures.is_empty() {
                tracing::error!(failed = pass.failures.len(), "not every poll succeeded");
            }
            if pass.failures.is_empty() && written.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            let error = e.chain();
            match e.hint(&config_file) {
                Some(hint) => tracing::error!(error, hint, "cannot poll"),
                None => tracing::error!(error, "cannot poll"),
            }
            ExitCode::from(1)
        }
    }
}

/// The async runtime, or `None` after saying why it cannot start.
fn runtime(builder: &mut tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cannot start the async runtime: {e}"))
        .ok()
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
