use super::*;

fn home_with(files: &[(&str, &str)]) -> (tempfile::TempDir, SshConfig) {
    let home = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = home.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let cfg = SshConfig::user(home.path()).unwrap();
    (home, cfg)
}

#[test]
fn first_value_wins_identities_accumulate_includes_and_negation() {
    let (home, cfg) = home_with(&[
        (
            ".ssh/config",
            "# global\nUser globaluser\nInclude conf.d/*.conf\n\
             Host devbox\n  HostName 127.0.0.1\n  Port=2222\n  IdentityFile ~/.ssh/id_devbox\n\
             Host *.corp !bad.corp\n  User corp\n  ProxyJump jump\n\
             Host dev*\n  Port 9999\n  IdentityFile \"~/.ssh/id %r\"\n  IdentitiesOnly yes\n\
             Host *\n  UserKnownHostsFile ~/.ssh/kh1 %d/kh2\n  GlobalKnownHostsFile none\n",
        ),
        (".ssh/conf.d/a.conf", "Host devbox\n  User fromincl\n"),
        (".ssh/conf.d/b.conf", "Host other\n  HostName other.example\n"),
        (".ssh/conf.d/.hidden.conf", "Host hidden\n"),
    ]);
    let home = home.path();
    let r = cfg.resolve("devbox", "me");
    assert_eq!((r.hostname.as_str(), r.port), ("127.0.0.1", 2222));
    // The global User line comes first: it wins over the Include's.
    assert_eq!(r.user, "globaluser");
    assert_eq!(r.identity_files, vec![home.join(".ssh/id_devbox"), home.join(".ssh/id globaluser")]);
    assert!(r.identities_only);
    assert_eq!(r.known_hosts_files, vec![home.join(".ssh/kh1"), home.join("kh2")]);
    assert!(r.unsupported.is_empty());
    assert!(cfg.resolve("a.corp", "me").unsupported.iter().any(|u| u.starts_with("ProxyJump jump")));
    assert!(cfg.resolve("bad.corp", "me").unsupported.is_empty());
    assert_eq!(cfg.resolve("other", "me").identity_files.len(), 3, "the default identities");
    // In file order (the Include first), without pattern-only and negated entries; a dot file is not globbed.
    assert_eq!(cfg.concrete_aliases(), vec!["devbox", "other"]);
}

#[test]
fn include_inside_host_is_conditional_and_match_blocks() {
    let (_home, cfg) = home_with(&[
        (
            ".ssh/config",
            "Host a\n  Include inc\nHost b\n  Port 1\n\
             Match host 10.0.0.* user deploy\n  Port 3\n\
             Match exec \"true\"\n  Port 4\n\
             Host *\n  HostName %h.example.com\n",
        ),
        (".ssh/inc", "Port 2\nUser deploy\nHostName 10.0.0.5\n"),
    ]);
    assert_eq!(cfg.resolve("a", "me").port, 2);
    assert_eq!(cfg.resolve("b", "me").port, 1);
    let c = cfg.resolve("c", "me");
    assert_eq!((c.port, c.hostname.as_str()), (22, "c.example.com"));
    assert!(cfg.warnings.iter().any(|w| w.contains("Match exec")), "{:?}", cfg.warnings);
}

#[test]
fn absolute_include_and_proxy_command_first_wins() {
    let home = tempfile::tempdir().unwrap();
    let extra = home.path().join("elsewhere.conf");
    std::fs::write(&extra, "Host far\n  ProxyCommand none\n  ProxyJump j\n").unwrap();
    let text = format!("Include {}\nHost near\n  ProxyCommand nc %h %p\n", extra.display());
    let cfg = SshConfig::from_text(home.path(), &text);
    assert_eq!(cfg.concrete_aliases(), vec!["far", "near"]);
    // `ProxyCommand none` came first: ProxyJump is ignored, as ssh does.
    assert!(cfg.resolve("far", "me").unsupported.is_empty());
    assert!(cfg.resolve("near", "me").unsupported[0].starts_with("ProxyCommand nc %h %p"));
}

#[test]
fn lines_split_like_ssh() {
    assert_eq!(split_line("  Port=22 "), Some(("port".into(), vec!["22".into()])));
    assert_eq!(split_line("Host = a b"), Some(("host".into(), vec!["a".into(), "b".into()])));
    assert_eq!(split_line("IdentityFile \"/a b/c\" # note"), Some(("identityfile".into(), vec!["/a b/c".into()])));
    assert_eq!(split_line("   # comment"), None);
    assert_eq!(split_line(""), None);
}

#[test]
fn wildcards() {
    assert!(wildcard_match("*", "x"));
    assert!(wildcard_match("a*c", "abbbc"));
    assert!(wildcard_match("[10.0.0.?]:22*", "[10.0.0.5]:2222"));
    assert!(!wildcard_match("a?c", "ac"));
    assert!(pattern_list_matches(&["*.corp".into(), "!bad.corp".into()], "Good.Corp"));
    assert!(!pattern_list_matches(&["*.corp".into(), "!bad.corp".into()], "bad.corp"));
}

#[test]
fn trust_options_before_any_block_are_refused_by_name() {
    let (_home, cfg) = home_with(&[(
        ".ssh/config",
        "KnownHostsCommand = -ssh-ed25519,ecdsa-*\nHostKeyAlgorithms -ssh-ed25519\nHost=-",
    )]);
    let r = cfg.resolve("devbox", "me");
    assert!(r.unsupported.iter().any(|u| u.starts_with("KnownHostsCommand")), "{r:?}");
    assert_eq!(r.host_key_algorithms.as_deref(), Some("-ssh-ed25519"));
}
