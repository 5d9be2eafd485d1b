use super::*;

#[test]
fn throttle_allows_one_line_per_interval() {
    let start = Instant::now();
    let mut t = Throttle::new(Duration::from_secs(5), start);
    let at = |ms| start + Duration::from_millis(ms);
    assert!(!t.due(at(0)));
    assert!(!t.due(at(4_999)));
    assert!(t.due(at(5_000)));
    assert!(!t.due(at(5_001)));
    assert!(!t.due(at(9_999)));
    assert!(t.due(at(10_000)));
    // A long stall gives one line, then the interval starts over.
    assert!(t.due(at(60_000)));
    assert!(!t.due(at(64_000)));
    assert!(t.due(at(65_000)));
}

#[test]
fn sizes_are_decimal_like_docker() {
    assert_eq!(human(0), "0 B");
    assert_eq!(human(999), "999 B");
    assert_eq!(human(1_000), "1.0 kB");
    assert_eq!(human(209_715_200), "209.7 MB");
    assert_eq!(human(3_000_000_000), "3.0 GB");
}

#[test]
fn lines_show_totals_rate_and_layers_in_flight() {
    let t = Transfer::with_bars("downloading", "downloaded", false);
    t.expect("sha256:aaaaaaaaaaaaaaaaaaaa", 2_000_000);
    t.expect("sha256:bbbbbbbbbbbbbbbbbbbb", 3_000_000);
    t.expect("sha256:cccccccccccccccccccc", 5_000_000);
    t.skipped("sha256:cccccccccccccccccccc", 5_000_000);
    let _r = t.reader("sha256:aaaaaaaaaaaaaaaaaaaa", 2_000_000, tokio::io::empty());
    t.advance("sha256:aaaaaaaaaaaaaaaaaaaa", 1_000_000);
    let line = t.state().line("downloading", Duration::from_secs(2));
    assert_eq!(
        line,
        "downloading: 1/3 layers, 6.0 MB of 10.0 MB (60%), 500.0 kB/s; aaaaaaaaaaaa 1.0 MB/2.0 MB"
    );
    t.finish("sha256:aaaaaaaaaaaaaaaaaaaa");
    assert!(
        t.summary().starts_with("downloaded 2/3 layers, 6.0 MB in "),
        "{}",
        t.summary()
    );
}

#[tokio::test]
async fn the_reader_counts_bytes_and_finishes_at_eof() {
    let t = Transfer::with_bars("pushing", "pushed", false);
    let data = vec![7u8; 100_000];
    let mut r = t.reader("sha256:dddd", data.len() as u64, &data[..]);
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut out)
        .await
        .unwrap();
    assert_eq!(out, data);
    let (finished, count, done, size) = t.state().totals();
    assert_eq!((finished, count, done, size), (1, 1, 100_000, 100_000));
    // A retry opens the layer again and counts from zero.
    let _again = t.reader("sha256:dddd", data.len() as u64, &data[..]);
    assert_eq!(t.state().totals(), (0, 1, 0, 100_000));
}
