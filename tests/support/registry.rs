//! A real CNCF distribution registry (`docker-registry serve`) on a free loopback port, with
//! filesystem storage in a temp dir, and synthetic images pushed with oci-client's push API.
//!
//! Options: htpasswd Basic auth, TLS with a throwaway CA (openssl CLI), and token auth with a
//! small axum token server that signs RS256 JWTs carrying the signing cert in `x5c`, which
//! distribution checks against its `rootcertbundle`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use digestif::registry::{Credential, RegistryConfig, Secret};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::json;
use sha2::Digest as _;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// htpasswd (bcrypt) Basic auth with this user and password.
    pub basic: Option<(String, String)>,
    /// Serve HTTPS with a certificate from a throwaway CA.
    pub tls: bool,
    /// Token auth (`auth: token`) backed by a token server in this process; it accepts
    /// these Basic credentials for push and gives anonymous pull tokens.
    pub token: Option<(String, String)>,
    /// Write distribution's access log (one Apache combined-format line per request) to
    /// `access_log_path()`, for benchmarks that count the requests each client sent.
    pub access_log: bool,
}

pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`
    pub addr: String,
    pub options: Options,
    /// The CA that signed the TLS certificate (PEM).
    pub ca_pem: Option<Vec<u8>>,
    client: Client,
    auth: RegistryAuth,
    token_server: Option<tokio::task::JoinHandle<()>>,
    /// `127.0.0.1:<port>` of the token server.
    pub token_addr: Option<String>,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = &self.token_server {
            t.abort();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run helper tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a leaf for 127.0.0.1/localhost signed by it: (ca.pem, leaf.pem, leaf.key).
fn make_tls(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=digestif test CA",
        ])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem")));
    run(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(p("leaf.key"))
        .arg("-out")
        .arg(p("leaf.csr")));
    std::fs::write(
        p("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
        .arg("-in")
        .arg(p("leaf.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-extfile")
        .arg(p("ext.cnf"))
        .arg("-out")
        .arg(p("leaf.pem")));
    (p("ca.pem"), p("leaf.pem"), p("leaf.key"))
}

impl TestRegistry {
    /// Starts a plain-HTTP registry without auth.
    pub async fn start() -> TestRegistry {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> TestRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: digestif-test\n",
            !options.access_log,
            storage.display()
        );
        let mut ca_pem = None;
        if options.tls {
            let (ca, leaf, key) = make_tls(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                leaf.display(),
                key.display()
            ));
            ca_pem = Some(std::fs::read(ca).unwrap());
        }
        if let Some((user, pass)) = &options.basic {
            let htpasswd = dir.path().join("htpasswd");
            run(Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&htpasswd)
                .args([user, pass]));
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: digestif-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let mut token_server = None;
        let mut token_addr = None;
        if let Some((user, pass)) = &options.token {
            let (handle, taddr, bundle) =
                token::start(dir.path(), user.clone(), pass.clone()).await;
            config.push_str(&format!(
                "auth:\n  token:\n    realm: http://{taddr}/token\n    service: digestif-test\n    issuer: digestif-test-issuer\n    rootcertbundle: {}\n",
                bundle.display()
            ));
            token_server = Some(handle);
            token_addr = Some(taddr);
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        // distribution writes its access log to stdout.
        let stdout = if options.access_log {
            Stdio::from(std::fs::File::create(dir.path().join("access.log")).unwrap())
        } else {
            Stdio::null()
        };
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(stdout)
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        let auth = match (&options.basic, &options.token) {
            (Some((u, p)), _) | (_, Some((u, p))) => RegistryAuth::Basic(u.clone(), p.clone()),
            _ => RegistryAuth::Anonymous,
        };
        let client = Client::new(ClientConfig {
            protocol: if options.tls {
                ClientProtocol::Https
            } else {
                ClientProtocol::Http
            },
            extra_root_certificates: ca_pem
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            ..ClientConfig::default()
        });
        let reg = TestRegistry {
            child,
            dir,
            addr,
            options,
            ca_pem,
            client,
            auth,
            token_server,
            token_addr,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!("registry on {} did not start:\n{log}", self.addr);
    }

    /// The access log file (written only with `Options::access_log`).
    pub fn access_log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
    }

    /// Settings for digestif's resolver that reach this registry (plain HTTP listed as
    /// insecure, the CA trusted, the credentials known).
    pub fn resolver_config(&self) -> RegistryConfig {
        let mut c = RegistryConfig::default();
        if !self.options.tls {
            c.insecure.insert(self.addr.clone());
        }
        if let Some(pem) = &self.ca_pem {
            c.extra_roots_pem.push(pem.clone());
        }
        if let Some((u, p)) = self.options.basic.as_ref().or(self.options.token.as_ref()) {
            let mut token_hosts = std::collections::BTreeSet::new();
            token_hosts.extend(self.token_addr.clone());
            c.credentials.insert(
                self.addr.clone(),
                Credential {
                    username: u.clone(),
                    password: Secret::new(p.clone()),
                    token_hosts,
                },
            );
        }
        c
    }

    /// `127.0.0.1:<port>/<repo>:<tag>[@digest]`
    pub fn reference(&self, repo: &str, tag: &str, digest: Option<&str>) -> String {
        match digest {
            Some(d) => format!("{}/{repo}:{tag}@{d}", self.addr),
            None => format!("{}/{repo}:{tag}", self.addr),
        }
    }

    fn oci_ref(&self, repo: &str, tag_or_digest: &str) -> Reference {
        let text = if tag_or_digest.starts_with("sha256:") {
            format!("{}/{repo}@{tag_or_digest}", self.addr)
        } else {
            format!("{}/{repo}:{tag_or_digest}", self.addr)
        };
        Reference::try_from(text.as_str()).expect("oci reference")
    }

    async fn login(&self, r: &Reference) {
        self.client
            .auth(r, &self.auth, RegistryOperation::Push)
            .await
            .expect("registry auth for push");
    }

    async fn push_blob(&self, repo: &str, data: Vec<u8>) -> (String, usize) {
        let digest = sha256(&data);
        let r = self.oci_ref(repo, "latest");
        self.login(&r).await;
        let len = data.len();
        self.client
            .push_blob(&r, data, &digest)
            .await
            .expect("push blob");
        (digest, len)
    }

    /// Pushes a manifest body under `tag_or_digest`; returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        tag_or_digest: &str,
        body: &[u8],
        media_type: &str,
    ) -> String {
        let r = self.oci_ref(repo, tag_or_digest);
        self.login(&r).await;
        self.client
            .push_manifest_raw(&r, body.to_vec(), media_type.parse().unwrap())
            .await
            .expect("push manifest");
        sha256(body)
    }

    /// Pushes a single-platform image (config + one layer + manifest, Docker v2 or OCI
    /// types), tagged with `tag` if given, else by digest only.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        platform: &str,
        salt: &str,
        docker: bool,
    ) -> Image {
        let mut parts = platform.split('/');
        let os = parts.next().unwrap();
        let arch = parts.next().unwrap();
        let variant = parts.next();
        let layer = format!("layer {platform} {salt}").into_bytes();
        let (layer_digest, layer_size) = self.push_blob(repo, layer).await;
        let mut config = json!({
            "architecture": arch,
            "os": os,
            "created": "2026-11-01T12:00:00Z",
            "config": {"Labels": {
                "org.opencontainers.image.revision": format!("rev-{salt}"),
                "org.opencontainers.image.source": "https://github.com/example/image"
            }},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest.clone()]}
        });
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        let config = serde_json::to_vec(&config).unwrap();
        let (config_digest, config_size) = self.push_blob(repo, config).await;
        let (mt, config_mt, layer_mt) = if docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
            )
        } else {
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.oci.image.layer.v1.tar",
            )
        };
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": mt,
            "config": {"mediaType": config_mt, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": layer_mt, "digest": layer_digest, "size": layer_size}]
        }))
        .unwrap();
        let digest = sha256(&manifest);
        self.push_manifest(repo, tag.unwrap_or(&digest), &manifest, mt)
            .await;
        Image {
            digest,
            size: manifest.len(),
            media_type: mt,
            platform: platform.to_string(),
        }
    }

    /// Pushes an index (OCI) or manifest list (Docker) of `images` under `tag`. `salt` goes
    /// into an annotation so a re-push with the same images gets a new digest; `attestation`
    /// adds an `unknown/unknown` attestation entry, as BuildKit does.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        images: &[&Image],
        docker: bool,
        salt: &str,
        attestation: bool,
    ) -> String {
        let mut manifests: Vec<serde_json::Value> = images
            .iter()
            .map(|i| {
                let mut parts = i.platform.split('/');
                let mut platform = json!({"os": parts.next(), "architecture": parts.next()});
                if let Some(v) = parts.next() {
                    platform["variant"] = json!(v);
                }
                json!({"mediaType": i.media_type, "digest": i.digest, "size": i.size, "platform": platform})
            })
            .collect();
        if attestation && let Some(first) = images.first() {
            let att = self
                .push_image(repo, None, "unknown/unknown", &format!("att-{salt}"), false)
                .await;
            manifests.push(json!({
                "mediaType": OCI_MANIFEST, "digest": att.digest, "size": att.size,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": first.digest
                }
            }));
        }
        let mt = if docker { DOCKER_LIST } else { OCI_INDEX };
        let mut index = json!({"schemaVersion": 2, "mediaType": mt, "manifests": manifests});
        if !docker {
            index["annotations"] = json!({"org.opencontainers.image.created": salt});
        } else {
            // Manifest lists have no annotations; vary an entry-free field instead.
            index["manifests"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .for_each(|m| m["annotations"] = json!({"salt": salt}));
        }
        let body = serde_json::to_vec(&index).unwrap();
        self.push_manifest(repo, tag, &body, mt).await
    }

    /// Removes a tag straight from the storage (distribution's API cannot untag).
    pub fn delete_tag(&self, repo: &str, tag: &str) {
        let dir = self
            .dir
            .path()
            .join("storage/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag);
        std::fs::remove_dir_all(&dir).expect("tag directory");
    }
}

/// A pushed single-platform image.
#[derive(Debug, Clone)]
pub struct Image {
    pub digest: String,
    pub size: usize,
    pub media_type: &'static str,
    pub platform: String,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The token server for distribution's `auth: token`.
mod token {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use base64::Engine as _;
    use serde_json::json;

    struct Keys {
        key: jsonwebtoken::EncodingKey,
        x5c: String,
        user: String,
        pass: String,
    }

    #[derive(serde::Deserialize)]
    struct Params {
        service: Option<String>,
        scope: Option<String>,
    }

    /// Returns the server task, its address and the cert bundle for distribution.
    pub async fn start(
        dir: &Path,
        user: String,
        pass: String,
    ) -> (tokio::task::JoinHandle<()>, String, PathBuf) {
        let (key, cert) = (dir.join("token.key"), dir.join("token.pem"));
        super::run(
            std::process::Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=digestif token signer"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        let pem = std::fs::read_to_string(&cert).unwrap();
        // The base64 DER of the certificate is the PEM body.
        let x5c: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<Vec<_>>()
            .concat();
        let keys = Arc::new(Keys {
            key: jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap())
                .expect("RSA key"),
            x5c,
            user,
            pass,
        });
        let app = axum::Router::new()
            .route("/token", axum::routing::get(issue))
            .with_state(keys);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (handle, addr, cert)
    }

    async fn issue(
        State(keys): State<Arc<Keys>>,
        headers: HeaderMap,
        Query(p): Query<Params>,
    ) -> Response {
        let authed = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .is_some_and(|raw| raw == format!("{}:{}", keys.user, keys.pass).into_bytes());
        if headers.contains_key("authorization") && !authed {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        // Anonymous callers may pull; the credential holder may also push.
        let mut access = Vec::new();
        if let Some(scope) = &p.scope {
            for s in scope.split(' ') {
                let mut parts = s.splitn(3, ':');
                let (Some(kind), Some(name), Some(actions)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let actions: Vec<&str> = actions
                    .split(',')
                    .filter(|a| authed || *a == "pull")
                    .collect();
                access.push(json!({"type": kind, "name": name, "actions": actions}));
            }
        }
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": "digestif-test-issuer",
            "sub": if authed { keys.user.as_str() } else { "" },
            "aud": p.service.unwrap_or_default(),
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("{now}-{}", rand::random::<u64>()),
            "access": access,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.x5c = Some(vec![keys.x5c.clone()]);
        match jsonwebtoken::encode(&header, &claims, &keys.key) {
            Ok(token) => axum::Json(json!({"token": token, "expires_in": 300})).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}
