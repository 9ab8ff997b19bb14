//! The scan cache: what the last scan of a repository read (branch head, ETag, candidate
//! files by blob sha), so the next scan fetches only blobs that changed.

use chrono::{DateTime, Utc};

use super::{Result, Store, in_tx, on_pool};

/// A candidate file as the last scan saw it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CachedFile {
    pub path: String,
    pub blob_sha: String,
    /// Git file mode (`100644`, `100755`): a commit that edits the file keeps it.
    pub mode: String,
    /// `None`: the file yields no reference, so its text is not kept.
    pub content: Option<String>,
}

/// The branch head the last scan read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScanState {
    pub head_sha: String,
    pub tree_sha: String,
    pub head_etag: Option<String>,
    pub extractor_version: i32,
}

impl Store {
    pub async fn cached_files(&self, repository_id: i64) -> Result<Vec<CachedFile>> {
        let sql = "SELECT path, blob_sha, mode, content FROM scanned_files
                   WHERE repository_id = $1 ORDER BY path";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(repository_id)
            .fetch_all(p)
            .await)?)
    }

    pub async fn scan_state(&self, repository_id: i64) -> Result<Option<ScanState>> {
        let sql = "SELECT head_sha, tree_sha, head_etag, extractor_version FROM scan_states
                   WHERE repository_id = $1";
        Ok(on_pool!(self, |p| sqlx::query_as(sql)
            .bind(repository_id)
            .fetch_optional(p)
            .await)?)
    }

    /// Replaces the cache with what a scan of `head` read.
    pub async fn replace_cached_files(
        &self,
        repository_id: i64,
        head: &ScanState,
        files: &[CachedFile],
        now: DateTime<Utc>,
    ) -> Result<()> {
        in_tx!(self, |tx| {
            sqlx::query("DELETE FROM scanned_files WHERE repository_id = $1")
                .bind(repository_id)
                .execute(&mut *tx)
                .await?;
            for f in files {
                sqlx::query(
                    "INSERT INTO scanned_files (repository_id, path, blob_sha, mode, content)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(repository_id)
                .bind(&f.path)
                .bind(&f.blob_sha)
                .bind(&f.mode)
                .bind(f.content.as_deref())
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO scan_states (repository_id, head_sha, tree_sha, head_etag, extractor_version, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (repository_id) DO UPDATE SET head_sha = excluded.head_sha,
                     tree_sha = excluded.tree_sha,
                     head_etag = excluded.head_etag, extractor_version = excluded.extractor_version,
                     updated_at = excluded.updated_at",
            )
            .bind(repository_id)
            .bind(&head.head_sha)
            .bind(&head.tree_sha)
            .bind(head.head_etag.as_deref())
            .bind(head.extractor_version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(())
        })
    }
}
