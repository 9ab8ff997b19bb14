//! The App's own calls: its installations, the repositories an installation covers, and
//! turning a manifest code into a new App's credentials.

use serde::Deserialize;

use super::api::{Api, ApiError};

/// An installation as the App sees it (`GET /app/installations/{id}`).
#[derive(Debug, Clone, Deserialize)]
pub struct Installation {
    pub id: i64,
    pub account: Account,
    #[serde(default)]
    pub suspended_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub login: String,
    /// `User` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A repository an installation may access.
#[derive(Debug, Clone, Deserialize)]
pub struct InstalledRepository {
    pub id: i64,
    pub full_name: String,
    pub default_branch: Option<String>,
    #[serde(default)]
    pub archived: bool,
}

/// Installation `id`, or `None` if GitHub no longer has it. `app` is the App's own identity
/// ([`super::GitHubApp::as_app`]).
pub async fn installation(app: &Api, id: i64) -> Result<Option<Installation>, ApiError> {
    app.get_opt(&format!("/app/installations/{id}")).await
}

/// The ids of every installation of the App. `app` is the App's own identity.
pub async fn installation_ids(app: &Api) -> Result<Vec<i64>, ApiError> {
    #[derive(Deserialize)]
    struct Id {
        id: i64,
    }
    let all: Vec<Id> = app.get_all("/app/installations", None).await?;
    Ok(all.into_iter().map(|i| i.id).collect())
}

/// Every repository installation `api` (an installation's identity) may access.
pub async fn installation_repositories(api: &Api) -> Result<Vec<InstalledRepository>, ApiError> {
    api.get_all("/installation/repositories", Some("repositories"))
        .await
}

/// What GitHub hands out once for an App registered from a manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Conversion {
    pub id: u64,
    pub slug: Option<String>,
    pub html_url: Option<String>,
    pub pem: String,
    pub webhook_secret: Option<String>,
}

/// Exchanges the `code` GitHub's manifest flow returned for the new App's credentials.
/// The call takes no authentication (`api` from [`Api::anonymous`]); a code works once,
/// so it is never retried after GitHub may have processed it.
pub async fn convert_manifest(api: &Api, code: &str) -> Result<Conversion, ApiError> {
    let path = format!(
        "/app-manifests/{}/conversions",
        super::repo::encode_path(code)
    );
    api.expect_ok(http::Method::POST, &path, None)
        .await?
        .json(&path)
}
