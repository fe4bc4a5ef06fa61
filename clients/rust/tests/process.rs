//! Starting, configuring and stopping the proxy process.

mod common;

use std::fs;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Layout, TempDir};
use layerpipe::{Error, ImageProxy, ImageProxyConfig};

#[test]
fn a_missing_program_is_a_start_error() {
    let err = ImageProxy::new_with_config(ImageProxyConfig {
        program: PathBuf::from("/nonexistent/layerpipe-proxy"),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/layerpipe-proxy"),
        "{err}"
    );
}

#[test]
fn a_program_that_is_not_a_proxy_fails_initialize() {
    // `false` exits at once: the socket reaches EOF before any reply.
    let err = ImageProxy::new_with_config(ImageProxyConfig {
        program: PathBuf::from("false"),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, Error::ProxyExited(status) if status.code() == Some(1)),
        "{err:?}"
    );
}

#[test]
fn finalize_waits_for_a_zero_exit_and_closes_open_handles() {
    let program = require_proxy!("finalize_waits_for_a_zero_exit_and_closes_open_handles");
    let layout = Layout::build();

    // Nothing opened.
    common::start(&program).finalize().unwrap();

    // An image and a fully read blob left unfinished.
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let blob = &layout.layers[0];
    let (mut reader, finish) = proxy.get_blob(&image, &blob.digest, blob.size()).unwrap();
    let mut data = Vec::new();
    reader.read_to_end(&mut data).unwrap();
    assert!(data == blob.bytes);
    proxy.finalize().unwrap();
    let err = finish.finish().unwrap_err();
    assert!(matches!(err, Error::Closed(_)), "{err:?}");
}

#[test]
fn flags_and_a_socket_on_another_fd_are_understood() {
    let program = require_proxy!("flags_and_a_socket_on_another_fd_are_understood");
    let layout = Layout::build();
    let scratch = TempDir::new("flags");
    let authfile = scratch.path().join("auth.json");
    fs::write(&authfile, br#"{"auths":{}}"#).unwrap();
    let certs = scratch.path().join("certs");
    fs::create_dir_all(&certs).unwrap();

    let configs = vec![
        ImageProxyConfig {
            sockfd: Some(5),
            authfile: Some(authfile.clone()),
            cert_dir: Some(certs.clone()),
            insecure_skip_tls_verification: true,
            insecure_policy: true,
            ..common::config(&program)
        },
        ImageProxyConfig {
            // The auth file must not land on the socket's fd number.
            sockfd: Some(100),
            auth_data: Some(File::open(&authfile).unwrap()),
            no_creds: false,
            ..common::config(&program)
        },
        ImageProxyConfig {
            no_creds: true,
            ..common::config(&program)
        },
    ];
    for config in configs {
        let described = format!("{config:?}");
        let proxy =
            ImageProxy::new_with_config(config).unwrap_or_else(|e| panic!("{described}: {e}"));
        let image = proxy.open_image(&layout.reference()).unwrap();
        assert_eq!(
            proxy.fetch_manifest(&image).unwrap().0,
            layout.manifest.digest,
            "{described}"
        );
        proxy
            .finalize()
            .unwrap_or_else(|e| panic!("{described}: {e}"));
    }
}

#[test]
fn dropping_the_proxy_without_finalize_lets_the_child_exit() {
    let program = require_proxy!("dropping_the_proxy_without_finalize_lets_the_child_exit");
    let layout = Layout::build();
    let proxy = common::start(&program);
    let image = proxy.open_image(&layout.reference()).unwrap();
    let blob = &layout.layers[1];
    let (reader, finish) = proxy.get_blob(&image, &blob.digest, blob.size()).unwrap();
    drop(proxy);
    // The handles keep the connection; finishing after the proxy handle is gone still works
    // (the pipe is closed unread, so the verdict is a failure, not a hang).
    drop(reader);
    assert!(finish.finish().is_err());
}

const HELPER_ENV: &str = "LAYERPIPE_RS_PDEATHSIG_HELPER";

/// Run in a child process by the test below: starts a proxy, reports, then waits to be killed.
#[test]
fn pdeathsig_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let program = common::proxy_program().unwrap();
    let _proxy = common::start(&program);
    println!("READY");
    loop {
        thread::sleep(Duration::from_secs(60));
    }
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        if let Ok(text) = fs::read_to_string(path) {
            children.extend(text.split_whitespace().map(|p| p.parse::<u32>().unwrap()));
        }
    }
    children
}

/// Gone, or a zombie nobody reaps (PID 1 in a container may not).
fn is_dead(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|rest| rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

#[test]
fn the_proxy_dies_with_its_parent() {
    let program = require_proxy!("the_proxy_dies_with_its_parent");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pdeathsig_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, "1")
        .env("LAYERPIPE_PROXY_PROGRAM", &program)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(helper.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("helper ended before READY").unwrap();
        if line.trim_end().ends_with("READY") {
            break;
        }
    }
    let proxies = children_of(helper.id());
    assert_eq!(proxies.len(), 1, "the helper's children: {proxies:?}");
    let proxy_pid = proxies[0];
    assert!(!is_dead(proxy_pid));

    helper.kill().unwrap();
    helper.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_dead(proxy_pid) {
        assert!(
            Instant::now() < deadline,
            "proxy {proxy_pid} outlived its parent"
        );
        thread::sleep(Duration::from_millis(50));
    }
}
