//! The resolver against a real CNCF distribution registry with pushed synthetic images.

// Only the registry half of tests/support (also `support::registry`): this binary needs
// no fake GitHub.
#[path = "support/registry.rs"]
mod registry_support;

use digestif::reference::{Digest, Reference};
use digestif::registry::{RegistryConfig, RequestKind, Resolver, Status};
use registry_support::{Options, TestRegistry};

fn parse(text: &str) -> Reference {
    Reference::parse(text).expect("reference")
}

fn digest(text: &str) -> Digest {
    Digest::parse(text).expect("digest")
}

fn resolver(config: RegistryConfig) -> Resolver {
    Resolver::new(config).expect("resolver")
}

fn count(r: &Resolver, kind: RequestKind) -> u64 {
    r.counts()
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.count)
        .sum()
}

#[tokio::test]
async fn index_pin_stays_an_index_pin_and_tag_only_gets_the_index_digest() {
    let reg = TestRegistry::start().await;
    let amd = reg.push_image("app", None, "linux/amd64", "1", false).await;
    let arm = reg.push_image("app", None, "linux/arm64", "1", false).await;
    let old = reg
        .push_index("app", "1.0", &[&amd, &arm], false, "a", false)
        .await;

    let res = resolver(reg.resolver_config());
    let up = res
        .resolve(&parse(&reg.reference("app", "1.0", Some(&old))), None)
        .await;
    assert_eq!(up.status, Status::UpToDate, "{up:?}");
    assert_eq!(count(&res, RequestKind::ManifestHead), 1);
    assert_eq!(
        count(&res, RequestKind::ManifestGet),
        0,
        "HEAD answers an up-to-date pin"
    );

    // New amd64 build: the index moves, and the index pin follows the index.
    let amd2 = reg.push_image("app", None, "linux/amd64", "2", false).await;
    let new = reg
        .push_index("app", "1.0", &[&amd2, &arm], false, "b", false)
        .await;
    let res = resolver(reg.resolver_config());
    let stale = res
        .resolve(&parse(&reg.reference("app", "1.0", Some(&old))), None)
        .await;
    assert_eq!(stale.status, Status::Stale, "{stale:?}");
    assert_eq!(stale.current, Some(digest(&new)));
    assert_eq!(stale.proposed(), Some(&digest(&new)));
    assert_eq!(stale.platform, None);

    let unpinned = res
        .resolve(&parse(&reg.reference("app", "1.0", None)), None)
        .await;
    assert_eq!(unpinned.status, Status::Unpinned);
    assert_eq!(unpinned.current, Some(digest(&new)), "the index digest");

    // Metadata for the PR body: platforms of the index, created and labels of amd64.
    let meta = res
        .metadata(&parse(&reg.reference("app", "1.0", None)), &digest(&new))
        .await
        .expect("metadata");
    assert_eq!(meta.platforms, vec!["linux/amd64", "linux/arm64"]);
    assert_eq!(meta.created.as_deref(), Some("2026-11-01T12:00:00Z"));
    assert_eq!(meta.revision.as_deref(), Some("rev-2"));
    assert_eq!(
        meta.source.as_deref(),
        Some("https://github.com/example/image")
    );
    let before = res.requests_sent();
    res.metadata(&parse(&reg.reference("app", "1.0", None)), &digest(&new))
        .await
        .unwrap();
    assert_eq!(res.requests_sent(), before, "metadata is cached by digest");
}

#[tokio::test]
async fn platform_pins_follow_their_platform_including_variants() {
    let reg = TestRegistry::start().await;
    let amd = reg
        .push_image("multi", None, "linux/amd64", "1", true)
        .await;
    let armv7 = reg
        .push_image("multi", None, "linux/arm/v7", "1", true)
        .await;
    let arm64 = reg
        .push_image("multi", None, "linux/arm64", "1", true)
        .await;
    // A Docker manifest list this time.
    reg.push_index("multi", "3", &[&amd, &armv7, &arm64], true, "a", false)
        .await;
    let amd2 = reg
        .push_image("multi", None, "linux/amd64", "2", true)
        .await;
    let armv7_2 = reg
        .push_image("multi", None, "linux/arm/v7", "2", true)
        .await;
    let new = reg
        .push_index("multi", "3", &[&amd2, &armv7_2, &arm64], true, "b", false)
        .await;

    let res = resolver(reg.resolver_config());
    let a = res
        .resolve(
            &parse(&reg.reference("multi", "3", Some(&amd.digest))),
            None,
        )
        .await;
    assert_eq!(a.status, Status::Stale, "{a:?}");
    assert_eq!(a.current, Some(digest(&amd2.digest)), "amd64 stays amd64");
    assert_eq!(a.tag_digest, Some(digest(&new)));
    assert_eq!(a.platform.as_deref(), Some("linux/amd64"));

    let v7 = res
        .resolve(
            &parse(&reg.reference("multi", "3", Some(&armv7.digest))),
            None,
        )
        .await;
    assert_eq!(v7.status, Status::Stale, "{v7:?}");
    assert_eq!(
        v7.current,
        Some(digest(&armv7_2.digest)),
        "arm/v7, not arm64"
    );
    assert_eq!(v7.platform.as_deref(), Some("linux/arm/v7"));

    // arm64's manifest did not change although the list did: nothing to do.
    let a64 = res
        .resolve(
            &parse(&reg.reference("multi", "3", Some(&arm64.digest))),
            None,
        )
        .await;
    assert_eq!(a64.status, Status::UpToDate, "{a64:?}");
    assert_eq!(a64.current, Some(digest(&arm64.digest)));
    assert_eq!(a64.proposed(), None);

    // The whole resolution cost one HEAD of the tag, whatever the number of references.
    let heads_of_tag = res
        .counts()
        .iter()
        .filter(|c| c.kind == RequestKind::ManifestHead)
        .map(|c| c.count)
        .sum::<u64>();
    assert_eq!(heads_of_tag, 4, "1 tag HEAD + 3 pinned-digest HEADs");

    // arm/v7 dropped from the list: the platform is gone, nothing is proposed.
    reg.push_index("multi", "3", &[&amd2, &arm64], true, "c", false)
        .await;
    let res = resolver(reg.resolver_config());
    let gone = res
        .resolve(
            &parse(&reg.reference("multi", "3", Some(&armv7.digest))),
            None,
        )
        .await;
    assert_eq!(gone.status, Status::PlatformGone, "{gone:?}");
    assert_eq!(gone.proposed(), None);
    assert!(gone.message.unwrap().contains("linux/arm/v7"));
}

#[tokio::test]
async fn a_re_push_with_the_same_platform_images_is_unchanged_content() {
    let reg = TestRegistry::start().await;
    let amd = reg
        .push_image("base", None, "linux/amd64", "1", false)
        .await;
    let arm = reg
        .push_image("base", None, "linux/arm64", "1", false)
        .await;
    let old = reg
        .push_index("base", "stable", &[&amd, &arm], false, "a", false)
        .await;
    // Same images, new index (new annotation, added attestation).
    let new = reg
        .push_index("base", "stable", &[&amd, &arm], false, "b", true)
        .await;
    assert_ne!(old, new);
    let res = resolver(reg.resolver_config());
    let r = res
        .resolve(&parse(&reg.reference("base", "stable", Some(&old))), None)
        .await;
    assert_eq!(r.status, Status::UnchangedContent, "{r:?}");
    assert_eq!(r.proposed(), None);
    assert_eq!(r.tag_digest, Some(digest(&new)));

    // A single-platform tag: a new manifest is simply stale.
    let one = reg
        .push_image("single", Some("v1"), "linux/amd64", "1", true)
        .await;
    let two = reg
        .push_image("single", Some("v1"), "linux/amd64", "2", true)
        .await;
    let r = res
        .resolve(
            &parse(&reg.reference("single", "v1", Some(&one.digest))),
            None,
        )
        .await;
    assert_eq!(r.status, Status::Stale);
    assert_eq!(r.current, Some(digest(&two.digest)));
}

#[tokio::test]
async fn a_deleted_tag_is_a_readable_error_and_digest_only_is_not_updatable() {
    let reg = TestRegistry::start().await;
    let img = reg
        .push_image("gone", Some("old"), "linux/amd64", "1", false)
        .await;
    reg.delete_tag("gone", "old");
    let res = resolver(reg.resolver_config());
    let r = res
        .resolve(
            &parse(&reg.reference("gone", "old", Some(&img.digest))),
            None,
        )
        .await;
    assert_eq!(r.status, Status::Error);
    let msg = r.message.unwrap();
    assert!(msg.starts_with(&format!("{}: ", reg.addr)), "{msg}");
    assert!(msg.contains("not found"), "{msg}");

    let missing = res
        .resolve(&parse(&reg.reference("nope", "1", None)), None)
        .await;
    assert_eq!(missing.status, Status::Error);

    let d = res
        .resolve(&parse(&format!("{}/gone@{}", reg.addr, img.digest)), None)
        .await;
    assert_eq!(d.status, Status::NotUpdatable);
}

#[tokio::test]
async fn basic_auth_registry() {
    let reg = TestRegistry::start_with(Options {
        basic: Some(("alice".into(), "s3cret".into())),
        ..Options::default()
    })
    .await;
    let img = reg
        .push_image("private", Some("1"), "linux/amd64", "1", false)
        .await;
    let res = resolver(reg.resolver_config());
    let r = res
        .resolve(&parse(&reg.reference("private", "1", None)), None)
        .await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    assert_eq!(r.current, Some(digest(&img.digest)));

    // Without credentials: a readable authentication error.
    let mut anon = reg.resolver_config();
    anon.credentials.clear();
    let r = resolver(anon)
        .resolve(&parse(&reg.reference("private", "1", None)), None)
        .await;
    assert_eq!(r.status, Status::Error);
    assert!(r.message.unwrap().contains("authentication required"));
}

#[tokio::test]
async fn tls_registry_with_an_extra_ca() {
    let reg = TestRegistry::start_with(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    let img = reg
        .push_image("secure", Some("1"), "linux/amd64", "1", false)
        .await;
    let res = resolver(reg.resolver_config());
    let r = res
        .resolve(&parse(&reg.reference("secure", "1", None)), None)
        .await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    assert_eq!(r.current, Some(digest(&img.digest)));

    // Without the CA the certificate is not trusted: a TLS error, not a panic.
    let mut untrusted = reg.resolver_config();
    untrusted.extra_roots_pem.clear();
    let r = resolver(untrusted)
        .resolve(&parse(&reg.reference("secure", "1", None)), None)
        .await;
    assert_eq!(r.status, Status::Error);
    let msg = r.message.unwrap();
    assert!(msg.contains("TLS") || msg.contains("certificate"), "{msg}");
}

#[tokio::test]
async fn bearer_token_registry() {
    let reg = TestRegistry::start_with(Options {
        token: Some(("bob".into(), "hunter2".into())),
        ..Options::default()
    })
    .await;
    let img = reg
        .push_image("tokened", Some("1"), "linux/amd64", "1", false)
        .await;

    // Anonymous pull tokens are enough to resolve.
    let mut anon = reg.resolver_config();
    anon.credentials.clear();
    let res = resolver(anon);
    let r = res
        .resolve(&parse(&reg.reference("tokened", "1", None)), None)
        .await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
    assert_eq!(r.current, Some(digest(&img.digest)));
    assert_eq!(count(&res, RequestKind::Token), 1);
    // The token is reused for the next request on the same repository.
    res.resolve(&parse(&reg.reference("tokened", "other", None)), None)
        .await;
    assert_eq!(count(&res, RequestKind::Token), 1);

    // With credentials (realm host listed for them) it works too.
    let res = resolver(reg.resolver_config());
    let r = res
        .resolve(&parse(&reg.reference("tokened", "1", None)), None)
        .await;
    assert_eq!(r.status, Status::Unpinned, "{r:?}");
}

#[tokio::test]
async fn caches_stay_within_their_limits_least_recently_used_out() {
    let reg = TestRegistry::start().await;
    let mut refs = Vec::new();
    for i in 0..12 {
        let tag = format!("t{i}");
        let img = reg
            .push_image("many", Some(&tag), "linux/amd64", &tag, false)
            .await;
        refs.push(parse(&reg.reference("many", &tag, Some(&img.digest))));
    }
    let mut c = reg.resolver_config();
    c.cache_entries = 5;
    let res = resolver(c);
    for r in &refs {
        assert_eq!(res.resolve(r, None).await.status, Status::UpToDate);
    }
    let usage: std::collections::BTreeMap<_, _> = res.cache_usage().into_iter().collect();
    assert_eq!(usage["tags"].entries, 5, "{usage:?}");
    assert_eq!(usage["tags"].evictions, 7, "{usage:?}");
    assert!(usage["tags"].bytes > 0);
    // The five newest are answered from the cache, an evicted one is asked again.
    let sent = res.requests_sent();
    res.resolve(&refs[11], None).await;
    assert_eq!(res.requests_sent(), sent);
    res.resolve(&refs[0], None).await;
    assert_eq!(res.requests_sent(), sent + 1);
}

#[tokio::test]
async fn one_head_per_tag_for_many_concurrent_references() {
    let reg = TestRegistry::start().await;
    let img = reg
        .push_image("busy", Some("1"), "linux/amd64", "1", false)
        .await;
    let res = resolver(reg.resolver_config());
    let text = reg.reference("busy", "1", Some(&img.digest));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (res, r) = (res.clone(), parse(&text));
        tasks.spawn(async move { res.resolve(&r, None).await });
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().status, Status::UpToDate);
    }
    assert_eq!(res.requests_sent(), 1, "{:?}", res.counts());
}

#[tokio::test]
async fn a_vanished_pinned_manifest_falls_back_to_the_from_platform() {
    let reg = TestRegistry::start().await;
    let amd = reg
        .push_image("vanish", None, "linux/amd64", "1", false)
        .await;
    let arm = reg
        .push_image("vanish", None, "linux/arm64", "1", false)
        .await;
    reg.push_index("vanish", "1", &[&amd, &arm], false, "a", false)
        .await;
    let amd2 = reg
        .push_image("vanish", None, "linux/amd64", "2", false)
        .await;
    let arm2 = reg
        .push_image("vanish", None, "linux/arm64", "2", false)
        .await;
    let new = reg
        .push_index("vanish", "1", &[&amd2, &arm2], false, "b", false)
        .await;
    // The old arm64 manifest is deleted from the registry (garbage collected upstream).
    let url = format!("http://{}/v2/vanish/manifests/{}", reg.addr, arm.digest);
    let status = reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 202);

    let res = resolver(reg.resolver_config());
    let text = reg.reference("vanish", "1", Some(&arm.digest));
    // `FROM --platform=linux/arm64` says which platform the pin was.
    let r = res.resolve(&parse(&text), Some("linux/arm64")).await;
    assert_eq!(r.status, Status::Stale, "{r:?}");
    assert_eq!(r.current, Some(digest(&arm2.digest)));
    assert_eq!(r.platform.as_deref(), Some("linux/arm64"));
    // Without it, the tag's index is all there is to go on.
    let r = res.resolve(&parse(&text), None).await;
    assert_eq!(r.status, Status::Stale, "{r:?}");
    assert_eq!(r.current, Some(digest(&new)));
    assert!(r.message.unwrap().contains("no longer in the registry"));
}

#[tokio::test]
async fn concurrent_challenges_share_one_token_request() {
    let reg = TestRegistry::start_with(Options {
        token: Some(("bob".into(), "hunter2".into())),
        ..Options::default()
    })
    .await;
    let img = reg
        .push_image("many", Some("0"), "linux/amd64", "1", false)
        .await;
    for t in 1..12 {
        reg.push_image("many", Some(&t.to_string()), "linux/amd64", "1", false)
            .await;
    }
    let res = resolver(reg.resolver_config());
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..12 {
        let (res, r) = (
            res.clone(),
            parse(&reg.reference("many", &t.to_string(), None)),
        );
        tasks.spawn(async move { res.resolve(&r, None).await });
    }
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.status, Status::Unpinned, "{r:?}");
        assert_eq!(r.current, Some(digest(&img.digest)));
    }
    assert_eq!(count(&res, RequestKind::Token), 1, "{:?}", res.counts());
    // Requests sent before the token arrived are answered 401 and sent again once.
    let heads = count(&res, RequestKind::ManifestHead);
    assert!((12..=20).contains(&heads), "{heads}");
}
