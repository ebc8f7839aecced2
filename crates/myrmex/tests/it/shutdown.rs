//! Shutdown with running jobs; Drop never blocks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use myrmex::{Event, SchedulerError, TriggerSpec};

use crate::util::{T0, env, t, wait_for};

#[test]
fn shutdown_waits_for_running_jobs() {
    let env = env(2);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let finished = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&finished);
    env.scheduler
        .schedule(TriggerSpec::once(t(T0)), move |_| {
            go_rx.lock().unwrap().recv().ok();
            f.store(true, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    wait_for(&env.events, "started", |e| {
        matches!(e, Event::RunStarted { .. })
    });
    let releaser = std::thread::spawn(move || go_tx.send(()).unwrap());
    env.scheduler.shutdown(Duration::from_secs(3600)).unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "shutdown returned before the run ended"
    );
    releaser.join().unwrap();
    assert!(matches!(
        env.scheduler.shutdown(Duration::ZERO),
        Err(SchedulerError::ShutDown)
    ));
    assert!(matches!(
        env.scheduler.schedule(TriggerSpec::Manual, |_| Ok(())),
        Err(SchedulerError::ShutDown)
    ));
}

#[test]
fn shutdown_past_its_grace_cancels_and_reports() {
    let env = env(1);
    env.scheduler
        .schedule(TriggerSpec::once(t(T0)), |ctx| {
            ctx.cancellation().wait();
            Ok(())
        })
        .unwrap();
    wait_for(&env.events, "started", |e| {
        matches!(e, Event::RunStarted { .. })
    });
    let r = env.scheduler.shutdown(Duration::ZERO);
    assert!(
        matches!(r, Err(SchedulerError::ShutdownTimedOut { running: 1 })),
        "{r:?}"
    );
}

#[test]
fn drop_does_not_block_on_a_running_job() {
    let env = env(1);
    let (tx, rx) = mpsc::channel::<()>();
    let rx = Mutex::new(rx);
    env.scheduler
        .schedule(TriggerSpec::once(t(T0)), move |ctx| {
            // Ends when the test ends the channel or the token is cancelled.
            while !ctx.is_cancelled() {
                if rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_millis(10))
                    .is_ok()
                {
                    break;
                }
            }
            Ok(())
        })
        .unwrap();
    wait_for(&env.events, "started", |e| {
        matches!(e, Event::RunStarted { .. })
    });
    drop(env.scheduler);
    drop(tx);
}
