use super::tasks::Tasks;
use super::AppError;
use crate::config::ConfigError;
use tokio::sync::watch;

#[tokio::test]
async fn a_task_that_ends_or_panics_before_shutdown_is_an_error_naming_it() {
    let (stop_tx, stop_rx) = watch::channel(false);
    let until_stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks = Tasks::default();
    tasks.spawn("HTTP server", until_stopped());
    tasks.spawn("poller", async { panic!("poller bug") });
    let ended = tasks.next_ended().await.unwrap();
    assert_eq!(ended.to_string(), "the poller task panicked");
    assert!(std::error::Error::source(&ended).is_some());
    let _ = stop_tx.send(true);
    assert!(tasks.join_all().await.is_ok(), "the server stopped cleanly");

    let mut tasks = Tasks::default();
    tasks.spawn("discovery", async {});
    let ended = tasks.next_ended().await.unwrap();
    assert_eq!(ended.to_string(), "the discovery task ended unexpectedly");

    // A panic while stopping is an error too.
    let mut tasks = Tasks::default();
    tasks.spawn("reloader", async {
        tokio::task::yield_now().await;
        panic!("late")
    });
    assert!(matches!(
        tasks.join_all().await,
        Err(AppError::TaskEnded {
            task: "reloader",
            source: Some(_)
        })
    ));
}

#[tokio::test]
async fn an_internal_failure_exits_3_which_the_systemd_unit_restarts() {
    let mut tasks = Tasks::default();
    tasks.spawn("poller", async { panic!("poller bug") });
    let ended = tasks.next_ended().await.unwrap();
    assert_eq!(ended.exit_code(), 3);
    let config = AppError::Config(ConfigError::Invalid(vec!["x".into()]));
    assert_eq!(config.exit_code(), 1);
    // The unit restarts on failure except for the operator's own mistakes (1).
    let unit = include_str!("../../deploy/systemd/avepoint-elements-exporter.service");
    assert!(unit.contains("Restart=on-failure"));
    let prevented: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("RestartPreventExitStatus="))
        .flat_map(|v| v.split_whitespace())
        .collect();
    assert_eq!(prevented, ["1"]);
    let docs = include_str!("../../docs/configuration.md");
    assert!(docs.contains("3 for an internal failure"));
}
