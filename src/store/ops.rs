//! Read-only views for operators: the status page, `digestif repos` and the metrics
//! gauges that describe the database.

use chrono::{DateTime, Utc};

use super::{Repository, Result, Store, on_pool};

/// A repository with its installation's account, for `digestif repos` and the status page.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RepoOverview {
    #[sqlx(flatten)]
    pub repo: Repository,
    /// `None` when the installation row is missing (should not happen: foreign key).
    pub account_login: Option<String>,
    pub installation_suspended_at: Option<DateTime<Utc>>,
}

impl RepoOverview {
    /// One word for the repository's state, the same on the status page, in
    /// `digestif repos` and in the `digestif_repositories` gauge.
    pub fn status(&self) -> String {
        if self.installation_suspended_at.is_some() {
            return "suspended".into();
        }
        if self.repo.archived {
            return "archived".into();
        }
        if self.repo.config_error.is_some() {
            return "config-error".into();
        }
        self.repo
            .last_scan_status
            .clone()
            .unwrap_or_else(|| "pending".into())
    }
}

/// `RepoOverview::status` in SQL, for counting.
const STATUS_SQL: &str = "CASE WHEN i.suspended_at IS NOT NULL THEN 'suspended'
         WHEN r.archived THEN 'archived'
         WHEN r.config_error IS NOT NULL THEN 'config-error'
         ELSE coalesce(r.last_scan_status, 'pending') END";

impl Store {
    /// Repositories with their installation's account, ordered by name.
    pub async fn repositories_overview(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<RepoOverview>> {
        let sql = "SELECT r.*, i.account_login AS account_login,
                          i.suspended_at AS installation_suspended_at
                   FROM repositories r LEFT JOIN installations i ON i.id = r.installation_id
                   ORDER BY lower(r.full_name), r.id LIMIT CAST($1 AS BIGINT) OFFSET CAST($2 AS BIGINT)";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(p)
            .await)?)
    }

    pub async fn count_repositories(&self) -> Result<i64> {
        let sql = "SELECT count(*) FROM repositories";
        Ok(on_pool!(self, |p| sqlx::query_scalar(sql)
            .fetch_one(p)
            .await)?)
    }

    /// How many references each status has across every repository.
    pub async fn reference_counts(&self) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT status, count(*) FROM image_refs GROUP BY status ORDER BY status";
        Ok(on_pool!(self, |p| sqlx::query_as(sql).fetch_all(p).await)?)
    }

    /// How many repositories each [`RepoOverview::status`] has.
    pub async fn repository_status_counts(&self) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            "SELECT {STATUS_SQL} AS status, count(*) FROM repositories r
             LEFT JOIN installations i ON i.id = r.installation_id
             GROUP BY 1 ORDER BY 1"
        );
        Ok(on_pool!(self, |p| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .fetch_all(p)
        .await)?)
    }
}
