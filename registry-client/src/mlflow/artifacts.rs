//! Run artifacts through an MLflow artifact proxy (`mlflow-artifacts:` URIs, served by
//! `mlflow server --serve-artifacts` under `/api/2.0/mlflow-artifacts/artifacts`), or at a
//! plain HTTP address that takes `PUT` and `GET` of each file.

use std::path::Path;

use url::Url;

use super::api::ListArtifactsResponse;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::http::HttpClient;

/// Path of the artifact proxy below the server's base URL.
const PROXY: &str = "api/2.0/mlflow-artifacts/artifacts";

/// Where a run's artifacts live.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactRoot {
    /// Files are at this address followed by their relative path.
    files: Url,
    /// The listing endpoint and the root's path below it, where the proxy offers one.
    listing: Option<(Url, String)>,
}

impl ArtifactRoot {
    /// The root for a run's `artifact_uri`; `None` for storage the client cannot reach
    /// through the server (`s3://`, local paths, ...).
    pub(crate) fn parse(base: &Url, artifact_uri: &str) -> Option<Self> {
        let uri = Url::parse(artifact_uri).ok()?;
        match uri.scheme() {
            "mlflow-artifacts" => {
                let root = uri.path().trim_matches('/').to_owned();
                let endpoint = base.join(PROXY).ok()?;
                let files = base.join(&format!("{PROXY}/{root}/")).ok()?;
                Some(Self { files, listing: Some((endpoint, root)) })
            }
            "http" | "https" => {
                let marker = "/mlflow-artifacts/artifacts";
                let listing = uri.path().find(marker).map(|at| {
                    let mut endpoint = uri.clone();
                    endpoint.set_path(&uri.path()[..at + marker.len()]);
                    let root = uri.path()[at + marker.len()..].trim_matches('/').to_owned();
                    (endpoint, root)
                });
                let mut files = uri;
                if !files.path().ends_with('/') {
                    files.set_path(&format!("{}/", files.path()));
                }
                Some(Self { files, listing })
            }
            _ => None,
        }
    }

    /// The address of the file at `rel`.
    pub(crate) fn file_url(&self, rel: &str) -> Result<Url> {
        fsutil::check_relative(rel)?;
        let mut url = self.files.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Invalid(format!("{} cannot hold files", self.files)))?
            .pop_if_empty()
            .extend(rel.split('/'));
        Ok(url)
    }

    /// Downloads the file at `rel` to `to`, creating folders.
    pub(crate) fn download(&self, http: &HttpClient, rel: &str, to: &Path) -> Result<()> {
        fsutil::create_dir_all(fsutil::parent_of(to))?;
        http.download(&self.file_url(rel)?, to).map_err(|e| match e {
            Error::Http { status: 404, .. } | Error::NotFound { .. } => {
                Error::not_found(format!("artifact {rel}"))
            }
            e => e,
        })
    }

    /// Every file under `dir`, relative to it.
    pub(crate) fn list(&self, http: &HttpClient, dir: &str) -> Result<Vec<String>> {
        let Some((endpoint, root)) = &self.listing else {
            return Err(Error::Unsupported {
                backend: "this artifact store",
                what: "listing run artifacts; register from a local model directory (--dir)".into(),
            });
        };
        let mut found = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(sub) = pending.pop() {
            let path = [root.as_str(), dir, sub.as_str()]
                .iter()
                .filter(|p| !p.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            let page: ListArtifactsResponse = http.get_json(endpoint, &[("path", &path)])?;
            for file in page.files {
                // The proxy answers base names; some servers answer whole paths.
                let name = file.path.rsplit('/').next().unwrap_or(&file.path);
                let rel = if sub.is_empty() { name.to_owned() } else { format!("{sub}/{name}") };
                if file.is_dir {
                    pending.push(rel);
                } else {
                    found.push(rel);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}
