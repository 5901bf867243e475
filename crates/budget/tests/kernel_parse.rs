//! Property tests for the kernel reader's parsers, which serve the memory and the thread
//! budget alike: arbitrary input never panics, and generated valid input parses back to what
//! was generated.

use crashguard_budget::kernel::{
    CgroupMount, CgroupVersion, Format, Limit, V1_UNLIMITED_THRESHOLD, cgroup_dir, parse_decimal,
    parse_keyed, parse_loadavg_tasks, parse_meminfo_total, parse_mountinfo, parse_pressure,
    parse_proc_cgroup, parse_statm, parse_status, parse_status_threads, parse_u64, parse_v1_limit,
    parse_v2_limit,
};

fn mount(root: &str, mount_point: &str) -> CgroupMount {
    CgroupMount {
        version: CgroupVersion::V2,
        root: root.into(),
        mount_point: mount_point.into(),
        options: String::new(),
    }
}
use proptest::prelude::*;

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        let _ = parse_u64(Format::Count, &s);
        let _ = parse_v1_limit(&s);
        let _ = parse_v2_limit(&s);
        let _ = parse_statm(&s);
        let _ = parse_status_threads(&s);
        let _ = parse_meminfo_total(&s);
        let _ = parse_keyed(Format::MemoryEvents, &s, "oom_kill");
        let _ = parse_pressure(&s);
        let _ = parse_proc_cgroup(&s);
        let _ = parse_mountinfo(&s);
        let _ = parse_status(&s);
        let _ = parse_loadavg_tasks(&s);
        let _ = parse_decimal(&s);
        let _ = cgroup_dir(&mount(&s, &s), &s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // The thread budget reads files as bytes and parses them lossily.
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_status(&text);
        let _ = parse_status_threads(&text);
        let _ = parse_proc_cgroup(&text);
        let _ = parse_mountinfo(&text);
        let _ = parse_v2_limit(&text);
        let _ = parse_u64(Format::Count, &text);
        let _ = parse_loadavg_tasks(&text);
    }

    #[test]
    fn file_like_text_never_panics(s in "([a-z0-9_:=./\\\\ -]{0,12}[ \n]){0,12}") {
        let _ = parse_statm(&s);
        let _ = parse_meminfo_total(&s);
        let _ = parse_keyed(Format::MemoryEvents, &s, "oom_kill");
        let _ = parse_pressure(&s);
        let _ = parse_proc_cgroup(&s);
        let _ = parse_mountinfo(&s);
    }

    #[test]
    fn status_thread_counts_round_trip(n in any::<u64>(), before in "(Name:\tx\n)?(VmRSS:\t1 kB\n)?") {
        let text = format!("{before}Threads:\t{n}\nSigQ:\t0/1\n");
        prop_assert_eq!(parse_status_threads(&text), Ok(n));
    }

    #[test]
    fn integers_round_trip(n in any::<u64>(), ws in "[ \t\n]{0,3}") {
        prop_assert_eq!(parse_decimal(&n.to_string()), Some(n));
        prop_assert_eq!(parse_u64(Format::Count, &format!("{ws}{n}{ws}")), Ok(n));
        prop_assert_eq!(parse_v2_limit(&format!("{n}\n")), Ok(Limit::Value(n)));
        let v1 = if n >= V1_UNLIMITED_THRESHOLD { Limit::Unlimited } else { Limit::Value(n) };
        prop_assert_eq!(parse_v1_limit(&format!("{n}\n")), Ok(v1));
        let status_text = format!("Name:\tx\nUid:\t7 7 7 7\nThreads:\t{n}\n");
        prop_assert_eq!(parse_status(&status_text).threads, Some(n));
        prop_assert_eq!(parse_loadavg_tasks(&format!("0.05 0.13 0.06 1/{n} 5054\n")), Ok(n));
    }

    #[test]
    fn statm_round_trips(size in any::<u64>(), resident in any::<u64>(), rest in proptest::collection::vec(any::<u32>(), 0..6)) {
        let tail: String = rest.iter().map(|r| format!(" {r}")).collect();
        let s = parse_statm(&format!("{size} {resident}{tail}\n")).unwrap();
        prop_assert_eq!((s.size_pages, s.resident_pages), (size, resident));
    }

    #[test]
    fn meminfo_round_trips(kb in 0u64..(u64::MAX / 1024), before in proptest::collection::vec("[A-Z][a-z]{1,8}", 0..4)) {
        let mut text: String = before.iter().map(|k| format!("{k}:   {kb} kB\n")).collect();
        text.push_str(&format!("MemTotal:       {kb} kB\nMemFree: 1 kB\n"));
        prop_assert_eq!(parse_meminfo_total(&text), Ok(kb * 1024));
    }

    #[test]
    fn keyed_finds_the_key_among_others(v in any::<u64>(), others in proptest::collection::vec(("[a-z_]{1,10}", any::<u64>()), 0..8)) {
        let mut text: String = others
            .iter()
            .filter(|(k, _)| k != "oom_kill")
            .map(|(k, n)| format!("{k} {n}\n"))
            .collect();
        text.push_str(&format!("oom_kill {v}\n"));
        prop_assert_eq!(parse_keyed(Format::MemoryEvents, &text, "oom_kill"), Ok(Some(v)));
        prop_assert_eq!(parse_keyed(Format::MemoryEvents, &text, "no_such_key"), Ok(None));
    }

    #[test]
    fn pressure_round_trips(some in 0u32..10_000, full in proptest::option::of(0u32..10_000)) {
        let fmt = |v: u32| format!("{}.{:02}", v / 100, v % 100);
        let mut text = format!("some avg10={} avg60=0.00 avg300=0.00 total=12\n", fmt(some));
        if let Some(f) = full {
            text.push_str(&format!("full avg10={} avg60=0.00 avg300=0.00 total=3\n", fmt(f)));
        }
        let p = parse_pressure(&text).unwrap();
        prop_assert!((p.some_avg10 - f64::from(some) / 100.0).abs() < 1e-9);
        prop_assert_eq!(p.full_avg10.is_some(), full.is_some());
    }

    #[test]
    fn proc_cgroup_round_trips(v1 in "(/[a-z0-9_.:-]{1,10}){0,4}", v2 in "(/[a-z0-9_.:-]{1,10}){0,4}") {
        let v1 = if v1.is_empty() { "/".to_owned() } else { v1 };
        let v2 = if v2.is_empty() { "/".to_owned() } else { v2 };
        let text = format!("12:pids:/x\n4:cpu,memory:{v1}\n1:name=systemd:/\n0::{v2}\n");
        let p = parse_proc_cgroup(&text).unwrap();
        prop_assert_eq!(p.len(), 4);
        prop_assert_eq!(p[1].controllers().collect::<Vec<_>>(), vec!["cpu", "memory"]);
        prop_assert_eq!(&p[1].path, &v1);
        prop_assert!(p[3].is_v2());
        prop_assert_eq!(&p[3].path, &v2);
    }

    #[test]
    fn mountinfo_round_trips_with_escapes(mp in "/[a-z ]{1,12}(/[a-z\\\\]{1,6}){0,2}", optional in 0usize..3) {
        let escaped = mp.replace('\\', "\\134").replace(' ', "\\040");
        let opt: String = (0..optional).map(|i| format!(" shared:{i}")).collect();
        let text = format!(
            "1 0 8:1 / / rw{opt} - ext4 /dev/sda1 rw\n30 1 0:26 / {escaped} rw{opt} - cgroup2 cgroup2 rw\n"
        );
        let m = parse_mountinfo(&text).unwrap();
        prop_assert_eq!(m, vec![CgroupMount {
            version: CgroupVersion::V2,
            root: "/".into(),
            mount_point: mp,
            options: "rw".into(),
        }]);
    }
}

#[test]
fn limits_accept_max_and_the_v1_sentinels() {
    assert_eq!(parse_v2_limit("max\n"), Ok(Limit::Unlimited));
    assert_eq!(
        parse_v1_limit("9223372036854771712\n"),
        Ok(Limit::Unlimited)
    );
    assert_eq!(
        parse_v1_limit("9223372036854710272\n"),
        Ok(Limit::Unlimited)
    ); // 64 KiB pages
    assert_eq!(parse_v1_limit("-1\n"), Ok(Limit::Unlimited));
    assert_eq!(parse_v1_limit("536870912\n"), Ok(Limit::Value(536_870_912)));
    assert!(parse_v2_limit("").is_err());
    assert!(parse_v2_limit("12 34").is_err());
    assert!(parse_v2_limit("-5").is_err());
    let e = parse_v2_limit("lots").unwrap_err();
    assert_eq!(
        e.to_string(),
        "cgroup v2 limit: not a non-negative integer: \"lots\""
    );
}

#[test]
fn keyed_rejects_a_key_without_a_number() {
    assert!(parse_keyed(Format::MemoryEvents, "oom_kill\n", "oom_kill").is_err());
    assert!(parse_keyed(Format::MemoryEvents, "oom_kill many\n", "oom_kill").is_err());
    // A key that merely starts like the wanted one is a different key.
    assert_eq!(
        parse_keyed(Format::MemoryEvents, "oom_kill_disable 1\n", "oom_kill"),
        Ok(None)
    );
}

#[test]
fn mountinfo_picks_the_memory_v1_mount_by_super_options() {
    let text = "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                35 31 0:32 /docker/x /sys/fs/cgroup/memory rw,relatime master:1 - cgroup cgroup rw,memory\n";
    let m = parse_mountinfo(text).unwrap();
    let v1 = m.iter().find(|m| m.carries("memory")).unwrap();
    assert_eq!(v1.version, CgroupVersion::V1);
    assert_eq!(
        (v1.root.as_str(), v1.mount_point.as_str()),
        ("/docker/x", "/sys/fs/cgroup/memory")
    );
    assert!(parse_mountinfo("1 2 3 4 5\n").is_err());
}

#[test]
fn cgroup_dir_handles_roots_namespaces_and_traversal() {
    assert_eq!(
        cgroup_dir(&mount("/", "/sys/fs/cgroup"), "/a/b"),
        "/sys/fs/cgroup/a/b"
    );
    assert_eq!(
        cgroup_dir(&mount("/", "/sys/fs/cgroup"), "/"),
        "/sys/fs/cgroup"
    );
    assert_eq!(
        cgroup_dir(&mount("/docker/x", "/sys/fs/cgroup/memory"), "/docker/x"),
        "/sys/fs/cgroup/memory"
    );
    assert_eq!(
        cgroup_dir(&mount("/docker/x", "/sys/fs/cgroup/memory"), "/docker/x/y"),
        "/sys/fs/cgroup/memory/y"
    );
    // "/docker/xy" is not under "/docker/x".
    assert_eq!(cgroup_dir(&mount("/docker/x", "/m"), "/docker/xy"), "/m");
    // A namespaced view outside the mount, and `..` components, stay at the mount point.
    assert_eq!(
        cgroup_dir(&mount("/", "/sys/fs/cgroup"), "/../../x"),
        "/sys/fs/cgroup"
    );
    assert_eq!(cgroup_dir(&mount("/", "/"), "/"), "/");
}
