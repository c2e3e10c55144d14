//! The cost of each hop, from the servers' own Server-Timing entries: behind `sut proxy`
//! (and nginx, Apache, HAProxy when installed), an app with a known 20 ms delay shows it
//! as app time, and the proxy's overhead is what it adds on top, over HTTP/1.1 and HTTP/2.

mod support;

use support::{h2lab, sut};

fn hops(r: &serde_json::Value) -> (f64, f64, f64) {
    let h = &r["hops_us"];
    let proxy = ["proxy", "nginx", "apache", "haproxy"]
        .iter()
        .find_map(|n| h[n]["p50"].as_f64())
        .unwrap_or_else(|| panic!("no proxy entry in {h}"));
    (
        h["app"]["p50"].as_f64().unwrap(),
        proxy,
        r["latency_us"]["p50"].as_f64().unwrap(),
    )
}

#[test]
fn a_known_delay_at_the_app_is_app_time_not_proxy_time() {
    let app = sut(&["app", "--listen", "127.0.0.1:0"]);
    let upstream = format!("http://{}", app.addr);
    let proxy = sut(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--upstream",
        &upstream,
    ]);
    for proto in ["h1", "h2c"] {
        let url = format!("http://{}/delay/20", proxy.addr);
        let r = h2lab(&[&url, "-c", "4", "-m", "2", "-d", "1s", "--proto", proto]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let (app_us, proxy_us, latency_us) = hops(&r.json);
        assert!(
            (20_000.0..25_000.0).contains(&app_us),
            "{proto}: app {app_us} us"
        );
        assert!(
            proxy_us >= app_us,
            "{proto}: the proxy's time includes the app's"
        );
        assert!(
            proxy_us - app_us < 5_000.0,
            "{proto}: the proxy adds {} us to a 20 ms app",
            proxy_us - app_us
        );
        assert!(
            latency_us >= proxy_us,
            "{proto}: the client waits for all of it"
        );
        assert!(r.json["hops_us"]["app"]["count"].as_u64().unwrap() > 100);
    }
}

#[test]
fn real_proxies_report_their_own_entry() {
    use h2lab_common::launch::{self, ProxyKind, ProxySpec, ProxyTls};
    let app = sut(&["app", "--listen", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let pki = h2lab_common::pki::Pki::generate(h2lab_common::pki::KeyType::Ecdsa)
        .unwrap()
        .write_to(dir.path(), "ecdsa")
        .unwrap();
    for kind in ProxyKind::ALL {
        if kind.find().is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is installed in CI",
                kind.name()
            );
            continue;
        }
        let spec = ProxySpec {
            kind,
            backend: app.addr,
            backend_h2: false,
            chain: pki.chain.clone(),
            key: pki.key.clone(),
            workers: 1,
            tls: ProxyTls {
                enabled: false,
                ..ProxyTls::default()
            },
        };
        let proxy = launch::start_proxy(&spec, std::time::Duration::from_secs(30)).unwrap();
        let url = format!("http://{}/delay/20", proxy.addr);
        let r = h2lab(&[&url, "-c", "2", "-d", "1s", "--proto", "h1"]);
        assert_eq!(r.code, 0, "{}: {}", kind.name(), r.stderr);
        let (app_us, proxy_us, _) = hops(&r.json);
        assert!(
            r.json["hops_us"][kind.name()].is_object(),
            "{}: {}",
            kind.name(),
            r.json["hops_us"]
        );
        assert!(
            (20_000.0..25_000.0).contains(&app_us),
            "{}: app {app_us}",
            kind.name()
        );
        // Real proxies' timers have millisecond resolution.
        assert!(
            (19_000.0..30_000.0).contains(&proxy_us),
            "{}: {proxy_us} us around a 20 ms app",
            kind.name()
        );
    }
}
