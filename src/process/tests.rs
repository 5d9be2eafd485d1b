use super::*;

#[test]
fn jobs_run_on_one_long_lived_thread() {
    let first = on_spawner_thread(|| std::thread::current().id());
    let second = std::thread::spawn(|| on_spawner_thread(|| std::thread::current().id()))
        .join()
        .unwrap();
    assert_eq!(first, second);
    assert_ne!(first, std::thread::current().id());
}

/// A child forked from a short-lived thread is signalled when that
/// thread ends; one forked from the spawner thread outlives it.
#[test]
fn children_die_with_their_forking_thread_unless_it_is_the_spawner() {
    use std::os::unix::process::ExitStatusExt;
    let sleeper = || {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        die_with_parent(&mut cmd, Signal::SIGKILL);
        cmd
    };
    let mut cmd = sleeper();
    let mut short = std::thread::spawn(move || cmd.spawn().unwrap())
        .join()
        .unwrap();
    let status = short.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");

    let cmd = sleeper();
    let mut long = std::thread::spawn(move || {
        on_spawner_thread(move || {
            let mut cmd = cmd;
            cmd.spawn().unwrap()
        })
    })
    .join()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(long.try_wait().unwrap().is_none(), "killed with its caller");
    long.kill().unwrap();
    long.wait().unwrap();
}
