//! Git objects as git stores them: every id is the SHA-1 of `"{kind} {len}\0{payload}"`, trees
//! are sorted the way git sorts them, commits carry the exact header text. The fake computes
//! ids from that canonical text so a sha it hands out is the sha `git` would compute
//! (`tests/fake_github.rs` checks this against the real `git` CLI).

use std::collections::{BTreeMap, HashMap};

use sha1::{Digest, Sha1};

pub const MODE_FILE: &str = "100644";
pub const MODE_EXEC: &str = "100755";
pub const MODE_TREE: &str = "040000";
pub const MODE_LINK: &str = "120000";
pub const MODE_SUBMODULE: &str = "160000";
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Id of an object of `kind` ("blob", "tree", "commit") with this payload.
pub fn hash_object(kind: &str, payload: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("{kind} {}\0", payload.len()).as_bytes());
    h.update(payload);
    hex::encode(h.finalize())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// As the API shows it: six digits, trees as `040000`.
    pub mode: String,
    pub name: String,
    pub sha: String,
}

impl TreeEntry {
    pub fn kind(&self) -> &'static str {
        match self.mode.as_str() {
            MODE_TREE => "tree",
            MODE_SUBMODULE => "commit",
            _ => "blob",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// Offset as git writes it, e.g. `+0000`, `-0700`.
    pub tz: String,
}

impl Signature {
    pub fn rfc3339(&self) -> String {
        chrono::DateTime::from_timestamp(self.time, 0)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn line(&self) -> String {
        format!("{} <{}> {} {}", self.name, self.email, self.time, self.tz)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub tree: String,
    pub parents: Vec<String>,
    pub author: Signature,
    pub committer: Signature,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    Blob(Vec<u8>),
    Tree(Vec<TreeEntry>),
    Commit(Box<Commit>),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Blob(_) => "blob",
            Object::Tree(_) => "tree",
            Object::Commit(_) => "commit",
        }
    }

    /// The payload git hashes (and stores) for this object.
    pub fn payload(&self) -> Vec<u8> {
        match self {
            Object::Blob(b) => b.clone(),
            Object::Tree(entries) => {
                let mut sorted = entries.clone();
                sort_entries(&mut sorted);
                let mut out = Vec::new();
                for e in &sorted {
                    // git writes tree modes without the leading zero ("40000").
                    out.extend_from_slice(e.mode.trim_start_matches('0').as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(e.name.as_bytes());
                    out.push(0);
                    out.extend_from_slice(&hex::decode(&e.sha).unwrap_or_else(|_| vec![0; 20]));
                }
                out
            }
            Object::Commit(c) => {
                let mut s = format!("tree {}\n", c.tree);
                for p in &c.parents {
                    s.push_str(&format!("parent {p}\n"));
                }
                s.push_str(&format!("author {}\n", c.author.line()));
                s.push_str(&format!("committer {}\n", c.committer.line()));
                s.push('\n');
                s.push_str(&c.message);
                s.into_bytes()
            }
        }
    }

    pub fn id(&self) -> String {
        hash_object(self.kind(), &self.payload())
    }
}

/// git orders tree entries by name bytes, comparing a subtree's name as if it ended in '/'.
pub fn sort_entries(entries: &mut [TreeEntry]) {
    fn key(e: &TreeEntry) -> Vec<u8> {
        let mut k = e.name.as_bytes().to_vec();
        if e.mode == MODE_TREE {
            k.push(b'/');
        }
        k
    }
    entries.sort_by_key(key);
}

/// One repository's object database.
#[derive(Clone, Debug, Default)]
pub struct ObjectStore {
    objects: HashMap<String, Object>,
}

/// A flattened view of a tree: path → (mode, blob sha).
pub type FileMap = BTreeMap<String, (String, String)>;

impl ObjectStore {
    pub fn insert(&mut self, obj: Object) -> String {
        let id = obj.id();
        self.objects.entry(id.clone()).or_insert(obj);
        id
    }

    pub fn get(&self, sha: &str) -> Option<&Object> {
        self.objects.get(sha)
    }

    pub fn blob(&self, sha: &str) -> Option<&[u8]> {
        match self.objects.get(sha) {
            Some(Object::Blob(b)) => Some(b),
            _ => None,
        }
    }

    pub fn tree(&self, sha: &str) -> Option<&[TreeEntry]> {
        match self.objects.get(sha) {
            Some(Object::Tree(t)) => Some(t),
            _ => None,
        }
    }

    pub fn commit(&self, sha: &str) -> Option<&Commit> {
        match self.objects.get(sha) {
            Some(Object::Commit(c)) => Some(c.as_ref()),
            _ => None,
        }
    }

    pub fn insert_blob(&mut self, content: &[u8]) -> String {
        self.insert(Object::Blob(content.to_vec()))
    }

    /// All entries below `tree`, depth first, with full paths; subtrees included (as the
    /// recursive tree API lists them), in git's order.
    pub fn walk(&self, tree: &str) -> Vec<(String, TreeEntry)> {
        let mut out = Vec::new();
        self.walk_into(tree, "", &mut out);
        out
    }

    fn walk_into(&self, tree: &str, prefix: &str, out: &mut Vec<(String, TreeEntry)>) {
        let Some(entries) = self.tree(tree) else {
            return;
        };
        let mut entries = entries.to_vec();
        sort_entries(&mut entries);
        for e in entries {
            let path = format!("{prefix}{}", e.name);
            out.push((path.clone(), e.clone()));
            if e.mode == MODE_TREE {
                self.walk_into(&e.sha, &format!("{path}/"), out);
            }
        }
    }

    /// Every non-tree entry below `tree` by full path.
    pub fn files(&self, tree: &str) -> FileMap {
        self.walk(tree)
            .into_iter()
            .filter(|(_, e)| e.mode != MODE_TREE)
            .map(|(p, e)| (p, (e.mode, e.sha)))
            .collect()
    }

    /// Writes the nested trees for a flat path map and returns the root tree id.
    pub fn write_files(&mut self, files: &FileMap) -> String {
        #[derive(Default)]
        struct Dir {
            files: Vec<TreeEntry>,
            dirs: BTreeMap<String, Dir>,
        }
        fn write(store: &mut ObjectStore, dir: Dir) -> String {
            let mut entries = dir.files;
            for (name, sub) in dir.dirs {
                let sha = write(store, sub);
                entries.push(TreeEntry {
                    mode: MODE_TREE.into(),
                    name,
                    sha,
                });
            }
            sort_entries(&mut entries);
            store.insert(Object::Tree(entries))
        }
        let mut root = Dir::default();
        for (path, (mode, sha)) in files {
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().unwrap_or_default();
            let mut dir = &mut root;
            for p in parts {
                dir = dir.dirs.entry(p.to_string()).or_default();
            }
            dir.files.push(TreeEntry {
                mode: mode.clone(),
                name: name.to_string(),
                sha: sha.clone(),
            });
        }
        write(self, root)
    }

    /// File content at `path` in the tree of `commit`.
    pub fn file_at_commit(&self, commit: &str, path: &str) -> Option<Vec<u8>> {
        let c = self.commit(commit)?;
        let (_, sha) = self.files(&c.tree).get(path)?.clone();
        self.blob(&sha).map(<[u8]>::to_vec)
    }

    /// Looks up a path (file or directory) below `tree`.
    pub fn lookup(&self, tree: &str, path: &str) -> Option<TreeEntry> {
        let path = path.trim_matches('/');
        if path.is_empty() {
            return Some(TreeEntry {
                mode: MODE_TREE.into(),
                name: String::new(),
                sha: tree.into(),
            });
        }
        let mut current = tree.to_string();
        let parts: Vec<&str> = path.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let entry = self
                .tree(&current)?
                .iter()
                .find(|e| e.name == *part)?
                .clone();
            if i + 1 == parts.len() {
                return Some(entry);
            }
            if entry.mode != MODE_TREE {
                return None;
            }
            current = entry.sha;
        }
        None
    }

    /// Whether `ancestor` is reachable from `descendant` through parent links.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> bool {
        let mut stack = vec![descendant.to_string()];
        let mut seen = std::collections::HashSet::new();
        while let Some(s) = stack.pop() {
            if s == ancestor {
                return true;
            }
            if !seen.insert(s.clone()) {
                continue;
            }
            if let Some(c) = self.commit(&s) {
                stack.extend(c.parents.iter().cloned());
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_blob_and_tree_ids_are_gits() {
        assert_eq!(
            hash_object("blob", b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(Object::Tree(vec![]).id(), EMPTY_TREE);
    }
}
